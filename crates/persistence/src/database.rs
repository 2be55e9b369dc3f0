//! The connection pool, migrations and units of work.

use std::path::Path;
use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, DatabaseConnection, DbBackend};
use steward_migration::{Migrator, MigratorTrait};

use crate::error::PersistenceError;

/// `column = 'value'` with the value written into the SQL instead of bound. SQLite is built with
/// the planner's stability guarantee (see `.cargo/config.toml`), so it matches a partial index's
/// `WHERE column = 'value'` (the one pending transfer of a device, a group's owner) only against
/// a literal; bound, the lookup would scan. `value` is a fixed word from the code.
pub(crate) fn literal_eq(
    column: impl sea_orm::ColumnTrait,
    value: &'static str,
) -> sea_orm::sea_query::SimpleExpr {
    debug_assert!(value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    use sea_orm::sea_query::{Expr, ExprTrait};
    ExprTrait::eq(Expr::col(column), Expr::cust(format!("'{value}'")))
}

/// Which database engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, PersistenceError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(PersistenceError::UnsupportedUrl(redact_url(url)))
        }
    }
}

/// Pool settings. The defaults suit one instance on a small machine.
#[derive(Debug, Clone)]
pub struct DatabaseOptions {
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    /// How long to wait for the server when opening a connection; also bounds start-up.
    pub connect_timeout: Duration,
    /// How long a request waits for a free pooled connection before failing.
    pub acquire_timeout: Duration,
    /// How long SQLite waits on a locked database before answering "busy".
    pub sqlite_busy_timeout: Duration,
}

impl DatabaseOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 16,
            min_connections: 1,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Connection counts of the pool, for the `/metrics` gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

/// Where the schema stands relative to the migrations this binary carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationState {
    pub applied: Vec<String>,
    pub pending: Vec<String>,
}

/// A pooled connection to Steward's database.
#[derive(Debug, Clone)]
pub struct Database {
    connection: DatabaseConnection,
    /// SQLite (on a file): the one connection write transactions take turns on.
    writer: Option<DatabaseConnection>,
    /// SQLite (on a file): small writes grouped into shared transactions on `writer`.
    pub(crate) group: Option<crate::group_commit::GroupCommit>,
    /// PostgreSQL: devices' settings versions read in batches (see [`crate::version_reads`]).
    pub(crate) version_reads: Option<crate::version_reads::VersionReads>,
    backend: Backend,
    max_connections: u32,
    /// The quota plans the organizations' limits come from (configuration).
    quota_plans: std::sync::Arc<steward_domain::quotas::QuotaPlans>,
    /// PostgreSQL: where row-level security is changed from (the schema owner's URL,
    /// `STEWARD_DATABASE_MIGRATION_URL`); the pool's own URL when not set.
    owner_url: std::sync::Arc<String>,
}

impl Database {
    /// Opens the pool and checks the database answers, so a wrong URL fails at start.
    pub async fn connect(options: &DatabaseOptions) -> Result<Self, PersistenceError> {
        let backend = Backend::from_url(&options.url)?;
        if backend == Backend::Sqlite {
            create_sqlite_parent_dir(&options.url)?;
        }
        let mut connect = ConnectOptions::new(options.url.clone());
        connect
            .max_connections(options.max_connections)
            .min_connections(options.min_connections)
            .connect_timeout(options.connect_timeout)
            .acquire_timeout(options.acquire_timeout)
            .idle_timeout(Duration::from_secs(600))
            .sqlx_logging(false);
        let busy_timeout = options.sqlite_busy_timeout;
        // WAL lets readers proceed while one writer writes; the busy timeout makes concurrent
        // writers wait for each other instead of failing with "database is locked".
        connect.map_sqlx_sqlite_opts(move |sqlite| {
            sqlite
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(busy_timeout)
                .foreign_keys(true)
        });
        // PostgreSQL's JIT compiles a statement whose estimated cost is high, which the
        // dashboard's correlated counts reach: 280 ms of compiling for 2 ms of work. Steward's
        // statements are short; every connection turns it off (a statement after connecting,
        // not a startup option, which PgBouncer refuses).
        // Every checkout also tells the connection whom it acts for (row-level security, see
        // `crate::tenancy`): one statement, in place of the liveness ping sqlx would send
        // (a broken connection fails it the same way and is replaced).
        connect.map_sqlx_postgres_pool_opts(|pool| {
            pool.test_before_acquire(false)
                .after_connect(|connection, _| {
                    Box::pin(async move {
                        use sea_orm::sqlx::Executor;
                        connection.execute("SET jit = off").await?;
                        crate::tenancy::apply(connection).await
                    })
                })
                .before_acquire(|connection, _| {
                    Box::pin(async move { crate::tenancy::apply(connection).await.map(|()| true) })
                })
        });
        // SQLite has one writer at a time. Write transactions take turns on a connection of
        // their own, queued in order by its pool, instead of polling SQLite's lock from every
        // pooled connection (whose busy handler sleeps up to 100 ms between tries, leaving the
        // lock idle while writers wait).
        let writer = if backend == Backend::Sqlite && !is_memory_sqlite(&options.url) {
            let mut writer = connect.clone();
            writer.max_connections(1).min_connections(0);
            let writer_future = sea_orm::Database::connect(writer);
            Some(
                tokio_timeout(options.connect_timeout * 2, writer_future)
                    .await
                    .map_err(|reason| PersistenceError::Connect {
                        url: redact_url(&options.url),
                        reason,
                    })?,
            )
        } else {
            None
        };
        let connect_future = sea_orm::Database::connect(connect);
        let connection = tokio_timeout(options.connect_timeout * 2, connect_future)
            .await
            .map_err(|reason| PersistenceError::Connect {
                url: redact_url(&options.url),
                reason,
            })?;
        let group = writer.clone().map(crate::group_commit::GroupCommit::start);
        let version_reads = (backend == Backend::Postgres)
            .then(|| crate::version_reads::VersionReads::start(connection.clone()));
        let database = Self {
            connection,
            writer,
            group,
            version_reads,
            backend,
            max_connections: options.max_connections,
            quota_plans: std::sync::Arc::new(steward_domain::quotas::QuotaPlans::new(Default::default())),
            owner_url: std::sync::Arc::new(options.url.clone()),
        };
        database.ping().await.map_err(|error| PersistenceError::Connect {
            url: redact_url(&options.url),
            reason: error.to_string(),
        })?;
        if backend == Backend::Sqlite && !database.sqlite_plans_are_stable().await {
            tracing::warn!(
                "this build's SQLite lacks SQLITE_ENABLE_QPSG (set by the repository's .cargo/config.toml): every cached statement with a bound LIMIT is prepared again on each use, which costs about a seventh of a busy server's CPU"
            );
        }
        Ok(database)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that writes from its first statement on: on SQLite `BEGIN IMMEDIATE`, so
    /// the write lock is taken (waiting up to the busy timeout) before anything is read. Needed
    /// where the first statement fires the `users_search` triggers: the FTS5 table is read as
    /// the statement starts, and a read-then-write transaction fails as "locked" when another
    /// writer commits in between.
    pub(crate) async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
        use sea_orm::TransactionTrait;
        if self.backend != Backend::Sqlite {
            return self.connection.begin().await;
        }
        self.writer()
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
    }

    /// A [`begin_write`](Self::begin_write) transaction in which writers of one kind take
    /// turns: on PostgreSQL it first locks the `instance_flags` row `lock_name` (created if
    /// missing) until it ends, so a decision read from several rows (a count, a list) cannot
    /// be made by two transactions at once; on SQLite `BEGIN IMMEDIATE` already does that.
    pub(crate) async fn begin_turn(
        &self,
        lock_name: &str,
    ) -> Result<sea_orm::DatabaseTransaction, steward_domain::RepositoryError> {
        use crate::error::db_err_to_repository as db;
        let transaction = self.begin_write().await.map_err(db)?;
        take_turn(&transaction, lock_name).await?;
        Ok(transaction)
    }

    /// Decides organizations' quotas with these plans (`free`, unlimited, when not configured).
    pub fn with_quota_plans(mut self, plans: steward_domain::quotas::QuotaPlans) -> Self {
        self.quota_plans = std::sync::Arc::new(plans);
        self
    }

    /// Changes row-level security through `url` (the schema owner's) instead of the pool's URL.
    pub fn with_owner_url(mut self, url: impl Into<String>) -> Self {
        self.owner_url = std::sync::Arc::new(url.into());
        self
    }

    /// The URL row-level security is changed through.
    pub(crate) fn owner_url(&self) -> &str {
        &self.owner_url
    }

    /// The quota plans in force.
    pub fn quota_plans(&self) -> &steward_domain::quotas::QuotaPlans {
        &self.quota_plans
    }

    /// The SeaORM connection, for repositories in this crate and for tests.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Where a write outside a [`begin_write`](Self::begin_write) transaction goes: on SQLite
    /// (a file) the writer connection, so it queues in turn with the write transactions instead
    /// of polling the lock they hand to each other (and timing out under a steady stream of
    /// them). Never call it while this task holds a `begin_write` transaction.
    pub(crate) fn writer(&self) -> &DatabaseConnection {
        self.writer.as_ref().unwrap_or(&self.connection)
    }

    /// Runs `job` in a write transaction: on SQLite (a file) grouped with the other small writes
    /// waiting at that moment into one transaction (see [`crate::group_commit`]), elsewhere in a
    /// transaction of its own. The job must write only through the transaction it is given, and
    /// answer an inner error (not the outer one) only when it wrote nothing.
    pub(crate) async fn write_grouped<T, F>(&self, job: F) -> Result<T, steward_domain::RepositoryError>
    where
        T: Send + 'static,
        F: for<'a> Fn(&'a sea_orm::DatabaseTransaction) -> crate::group_commit::JobFuture<'a, T>
            + Send
            + Sync
            + 'static,
    {
        match &self.group {
            Some(group) => group.run(self.writer(), job).await,
            None => crate::group_commit::alone(self.writer(), &job).await,
        }
    }

    /// Whether the linked SQLite keeps a statement's query plan whatever values are bound
    /// (`SQLITE_ENABLE_QPSG`), so cached statements are not prepared again on every use.
    pub async fn sqlite_plans_are_stable(&self) -> bool {
        use sea_orm::Statement;
        self.connection
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT 1 AS on_ FROM pragma_compile_options WHERE compile_options = 'ENABLE_QPSG'",
            ))
            .await
            .ok()
            .flatten()
            .is_some()
    }

    /// Checks the database answers a trivial query now.
    pub async fn ping(&self) -> Result<(), PersistenceError> {
        self.connection.execute_unprepared("SELECT 1").await?;
        Ok(())
    }

    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle) = match self.connection.get_database_backend() {
            DbBackend::Postgres => {
                let pool = self.connection.get_postgres_connection_pool();
                (pool.size(), pool.num_idle() as u32)
            }
            _ => {
                let pool = self.connection.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle() as u32)
            }
        };
        PoolStats {
            size,
            idle,
            max: self.max_connections,
        }
    }

    /// Applies every pending migration.
    pub async fn migrate_up(&self) -> Result<(), PersistenceError> {
        Migrator::up(&self.connection, None)
            .await
            .map_err(|error| PersistenceError::Migration(error.to_string()))
    }

    /// Rolls back the last `steps` migrations (all of them when `None`).
    pub async fn migrate_down(&self, steps: Option<u32>) -> Result<(), PersistenceError> {
        Migrator::down(&self.connection, steps)
            .await
            .map_err(|error| PersistenceError::Migration(error.to_string()))
    }

    /// Rolls every migration back and applies them all again. Destroys all data.
    ///
    /// Runs the migrations' own `down` steps rather than SeaORM's drop-everything `fresh`, which
    /// drops tables in an order SQLite's foreign-key checks refuse.
    pub async fn migrate_fresh(&self) -> Result<(), PersistenceError> {
        self.migrate_down(None).await?;
        self.migrate_up().await
    }

    pub async fn migration_state(&self) -> Result<MigrationState, PersistenceError> {
        // Read only: SeaORM's own listing first creates its table if missing, which a role
        // that may not create tables (the application role under row-level security) may not.
        let done: std::collections::HashSet<String> = if self.has_table("seaql_migrations").await? {
            self.connection
                .query_all_raw(sea_orm::Statement::from_string(
                    self.connection.get_database_backend(),
                    "SELECT version FROM seaql_migrations",
                ))
                .await?
                .iter()
                .map(|row| row.try_get::<String>("", "version"))
                .collect::<Result<_, _>>()?
        } else {
            Default::default()
        };
        let (applied, pending) = Migrator::migrations()
            .iter()
            .map(|migration| migration.name().to_owned())
            .partition(|name| done.contains(name));
        Ok(MigrationState { applied, pending })
    }

    /// Whether a table exists, for schema checks.
    pub async fn has_table(&self, table: &str) -> Result<bool, PersistenceError> {
        let manager = sea_orm_migration_manager(&self.connection);
        Ok(manager.has_table(table).await?)
    }

    pub async fn close(self) -> Result<(), PersistenceError> {
        if let Some(writer) = self.writer {
            writer.close().await?;
        }
        Ok(self.connection.close().await?)
    }
}

fn sea_orm_migration_manager(connection: &DatabaseConnection) -> steward_migration::SchemaManager<'_> {
    steward_migration::SchemaManager::new(connection)
}

async fn tokio_timeout<T>(
    limit: Duration,
    future: impl Future<Output = Result<T, sea_orm::DbErr>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", limit.as_secs())),
    }
}

/// An in-memory SQLite database: each connection would open a database of its own.
fn is_memory_sqlite(url: &str) -> bool {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    path.split('?').next().unwrap_or_default() == ":memory:" || url.contains("mode=memory")
}

/// Makes sure the directory of a SQLite file exists, so the default `./data/steward.db` works
/// on a fresh checkout.
fn create_sqlite_parent_dir(url: &str) -> Result<(), PersistenceError> {
    let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = path.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| PersistenceError::Connect {
            url: url.to_owned(),
            reason: format!("cannot create directory {}: {error}", parent.display()),
        })?;
    }
    Ok(())
}

/// Hides the password of a database URL for messages and logs.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://{credentials}@{host}"),
    }
}

/// Inside `transaction`, waits for the turn `lock_name` (see [`Database::begin_turn`]): on
/// PostgreSQL the `instance_flags` row of that name is locked until the transaction ends.
pub(crate) async fn take_turn(
    transaction: &sea_orm::DatabaseTransaction,
    lock_name: &str,
) -> Result<(), steward_domain::RepositoryError> {
    use crate::entities::instance_flags;
    use crate::error::db_err_to_repository as db;
    use sea_orm::sea_query::OnConflict;
    use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, QuerySelect};
    if transaction.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        instance_flags::Entity::insert(instance_flags::ActiveModel {
            name: Set(lock_name.to_owned()),
            value: Set(String::new()),
            updated_at: Set(chrono::Utc::now()),
        })
        .on_conflict(
            OnConflict::column(instance_flags::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(transaction)
        .await
        .map_err(db)?;
        instance_flags::Entity::find_by_id(lock_name.to_owned())
            .lock_exclusive()
            .one(transaction)
            .await
            .map_err(db)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact_url("postgres://app:secret@db:5432/steward"),
            "postgres://app:***@db:5432/steward"
        );
        assert_eq!(
            redact_url("postgres://app@db/steward"),
            "postgres://app@db/steward"
        );
        assert_eq!(
            redact_url("sqlite://./data/steward.db?mode=rwc"),
            "sqlite://./data/steward.db?mode=rwc"
        );
    }

    #[test]
    fn the_backend_follows_the_url() {
        assert_eq!(Backend::from_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("postgresql://x/y").unwrap(), Backend::Postgres);
        assert!(Backend::from_url("mysql://x/y").is_err());
    }

    #[tokio::test]
    async fn a_fresh_sqlite_file_is_created_with_its_directory_and_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/nested/steward.db?mode=rwc", dir.path().display());
        let database = Database::connect(&DatabaseOptions::new(url)).await.unwrap();
        database.migrate_up().await.unwrap();
        let state = database.migration_state().await.unwrap();
        assert!(state.pending.is_empty());
        assert_eq!(state.applied.len(), Migrator::migrations().len());
        assert!(database.has_table("audit_logs").await.unwrap());
        assert!(dir.path().join("nested/steward.db").exists());
    }

    /// Without the planner's stability guarantee every SeaORM `.one()` (a bound `LIMIT ?`) is
    /// prepared again on each use: the repository's `.cargo/config.toml` builds SQLite with it.
    #[tokio::test]
    async fn the_bundled_sqlite_keeps_query_plans_stable() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/steward.db?mode=rwc", dir.path().display());
        let database = Database::connect(&DatabaseOptions::new(url)).await.unwrap();
        assert!(database.sqlite_plans_are_stable().await);
    }
}
