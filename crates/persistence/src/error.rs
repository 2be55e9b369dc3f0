use sea_orm::{DbErr, RuntimeErr, SqlErr};
use steward_domain::RepositoryError;

/// What can go wrong talking to the database. Converted into the domain's
/// [`RepositoryError`] at the repository boundary and into the HTTP envelope at the edge.
#[derive(Debug, thiserror::Error)]
pub enum PersistenceError {
    /// The URL does not name a database Steward supports.
    #[error("unsupported database URL `{0}`: use sqlite:… or postgres://…")]
    UnsupportedUrl(String),
    /// The database did not answer when connecting (down, wrong host or credentials).
    #[error("cannot connect to the database at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// A migration failed; the message names it.
    #[error("migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Database(#[from] DbErr),
}

impl From<PersistenceError> for RepositoryError {
    fn from(error: PersistenceError) -> Self {
        match error {
            PersistenceError::Database(db) => db_err_to_repository(db),
            other => RepositoryError::Unavailable(other.to_string()),
        }
    }
}

/// Classifies a SeaORM error by what the caller can do about it.
pub(crate) fn db_err_to_repository(error: DbErr) -> RepositoryError {
    if let Some(reason) = transient(&error) {
        return RepositoryError::Unavailable(reason);
    }
    if let Some(sql) = error.sql_err() {
        return match sql {
            SqlErr::UniqueConstraintViolation(message) => RepositoryError::Conflict(message),
            SqlErr::ForeignKeyConstraintViolation(message) => RepositoryError::Conflict(message),
            other => RepositoryError::Other(format!("{other:?}")),
        };
    }
    match error {
        DbErr::RecordNotFound(_) => RepositoryError::NotFound,
        DbErr::ConnectionAcquire(reason) => RepositoryError::Unavailable(reason.to_string()),
        DbErr::Conn(RuntimeErr::SqlxError(reason)) => RepositoryError::Unavailable(reason.to_string()),
        other => RepositoryError::Other(other.to_string()),
    }
}

/// Failures that say nothing about the request and may pass on retry: the connection died or
/// was closed by the server (PostgreSQL's class 08 and 57P01–57P03: "terminating connection
/// due to administrator command"), I/O errors, pool exhaustion, or SQLite's "database is
/// locked" (a write lock held longer than the busy timeout, or a snapshot that went stale),
/// and PostgreSQL's deadlock and serialization failures (the transaction was rolled back).
/// Such a statement did not commit, so the caller answers 503 with `Retry-After`.
fn transient(error: &DbErr) -> Option<String> {
    let sqlx = match error {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx))
        | DbErr::Query(RuntimeErr::SqlxError(sqlx))
        | DbErr::Conn(RuntimeErr::SqlxError(sqlx)) => sqlx,
        _ => return None,
    };
    use sea_orm::sqlx::Error as Sqlx;
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed | Sqlx::Tls(_) => {
            Some(sqlx.to_string())
        }
        Sqlx::Database(database) => {
            let code = database.code().map(|code| code.into_owned()).unwrap_or_default();
            let transient = code.starts_with("08")
                || matches!(
                    code.as_str(),
                    // connection ended by the server; deadlock or serialization failure (rolled
                    // back); SQLite busy or locked.
                    "57P01" | "57P02" | "57P03" | "40P01" | "40001" | "5" | "517" | "6" | "262"
                );
            transient.then(|| database.message().to_owned())
        }
        _ => None,
    }
}
