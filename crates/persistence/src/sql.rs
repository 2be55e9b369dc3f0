//! Hand-written statements both backends run: SQL with placeholders numbered for the backend,
//! and reading their aggregate rows.

use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Statement, Value};
use steward_domain::RepositoryError;

use crate::error::db_err_to_repository as db;

/// A statement under construction: SQL with placeholders numbered for the backend.
pub(crate) struct Sql {
    backend: DatabaseBackend,
    text: String,
    values: Vec<Value>,
}

impl Sql {
    pub(crate) fn new(backend: DatabaseBackend) -> Self {
        Self {
            backend,
            text: String::new(),
            values: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: impl Into<Value>) -> &mut Self {
        self.values.push(value.into());
        if self.backend == DatabaseBackend::Postgres {
            self.text.push_str(&format!("${}", self.values.len()));
        } else {
            self.text.push('?');
        }
        self
    }

    pub(crate) fn statement(&self) -> Statement {
        Statement::from_sql_and_values(self.backend, self.text.clone(), self.values.clone())
    }
}

pub(crate) fn count(row: &QueryResult, column: &str) -> Result<u64, RepositoryError> {
    let value: Option<i64> = row.try_get("", column).map_err(db)?;
    Ok(value.unwrap_or(0).max(0).unsigned_abs())
}

pub(crate) async fn one(
    connection: &impl ConnectionTrait,
    sql: &Sql,
) -> Result<QueryResult, RepositoryError> {
    connection
        .query_one_raw(sql.statement())
        .await
        .map_err(db)?
        .ok_or_else(|| RepositoryError::Other("an aggregate answered no row".to_owned()))
}

pub(crate) async fn all(
    connection: &impl ConnectionTrait,
    sql: &Sql,
) -> Result<Vec<QueryResult>, RepositoryError> {
    connection.query_all_raw(sql.statement()).await.map_err(db)
}
