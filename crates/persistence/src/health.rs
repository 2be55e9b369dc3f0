//! What the operators' health report reads from the database: the pool, the migrations, the
//! outgoing queues' backlogs, and the size of the database and each table.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult, Statement};
use steward_domain::RepositoryError;
use steward_domain::health::{
    DatabaseSize, HealthStore, MigrationFigures, PoolFigures, QueueDepth, QueueDepths, TableSize,
};

use crate::database::{Backend, Database};
use crate::error::db_err_to_repository as db;

async fn rows(connection: &impl ConnectionTrait, sql: &str) -> Result<Vec<QueryResult>, RepositoryError> {
    connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            sql.to_owned(),
        ))
        .await
        .map_err(db)
}

fn unsigned(row: &QueryResult, column: &str) -> Result<u64, RepositoryError> {
    let value: Option<i64> = row.try_get("", column).map_err(db)?;
    Ok(value.unwrap_or(0).max(0).unsigned_abs())
}

/// One queue's waiting messages (a literal status: the `(status, next_attempt_at)` index).
async fn queue(connection: &impl ConnectionTrait, table: &str) -> Result<QueueDepth, RepositoryError> {
    let found = rows(
        connection,
        &format!("SELECT COUNT(*) AS n, MIN(created_at) AS oldest FROM {table} WHERE status = 'pending'"),
    )
    .await?;
    let Some(row) = found.first() else {
        return Ok(QueueDepth::default());
    };
    let oldest = match connection.get_database_backend() {
        DatabaseBackend::Postgres => row.try_get::<Option<DateTime<Utc>>>("", "oldest").map_err(db)?,
        // SQLite's MIN of stored RFC 3339 text is text.
        _ => row
            .try_get::<Option<String>>("", "oldest")
            .map_err(db)?
            .and_then(|text| parse_sqlite_time(&text)),
    };
    Ok(QueueDepth {
        pending: unsigned(row, "n")?,
        oldest,
    })
}

/// A timestamp as SQLx stores it in SQLite (`2026-12-01 10:00:00.123456+00:00` or RFC 3339).
fn parse_sqlite_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .map(|time| time.to_utc())
        .ok()
}

async fn postgres_size(connection: &impl ConnectionTrait) -> Result<DatabaseSize, RepositoryError> {
    let total = rows(connection, "SELECT pg_database_size(current_database()) AS bytes").await?;
    let bytes = total
        .first()
        .map(|row| unsigned(row, "bytes"))
        .transpose()?
        .unwrap_or(0);
    let mut tables = Vec::new();
    for row in rows(
        connection,
        "SELECT relname AS name, pg_total_relation_size(relid) AS bytes, n_live_tup AS rows_ \
         FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY 2 DESC, 1",
    )
    .await?
    {
        tables.push(TableSize {
            name: row.try_get("", "name").map_err(db)?,
            rows: unsigned(&row, "rows_")?,
            rows_estimated: true,
            bytes: Some(unsigned(&row, "bytes")?),
        });
    }
    Ok(DatabaseSize { bytes, tables })
}

async fn sqlite_size(connection: &impl ConnectionTrait) -> Result<DatabaseSize, RepositoryError> {
    let total = rows(
        connection,
        "SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()",
    )
    .await?;
    let bytes = total
        .first()
        .map(|row| unsigned(row, "bytes"))
        .transpose()?
        .unwrap_or(0);
    // Pages per table with its indexes, where the build has the dbstat table.
    let mut sizes = std::collections::HashMap::new();
    if let Ok(found) = rows(
        connection,
        "SELECT m.tbl_name AS name, SUM(s.pgsize) AS bytes FROM dbstat s \
         JOIN sqlite_master m ON m.name = s.name GROUP BY m.tbl_name",
    )
    .await
    {
        for row in found {
            let name: String = row.try_get("", "name").map_err(db)?;
            sizes.insert(name, unsigned(&row, "bytes")?);
        }
    }
    let names = rows(
        connection,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND sql NOT LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
    )
    .await?;
    let mut tables = Vec::with_capacity(names.len());
    for row in names {
        let name: String = row.try_get("", "name").map_err(db)?;
        // Names come from the schema, not from a request; quoted all the same.
        let counted = rows(
            connection,
            &format!("SELECT COUNT(*) AS n FROM \"{}\"", name.replace('"', "\"\"")),
        )
        .await?;
        let rows = counted
            .first()
            .map(|row| unsigned(row, "n"))
            .transpose()?
            .unwrap_or(0);
        tables.push(TableSize {
            bytes: sizes.get(&name).copied(),
            name,
            rows,
            rows_estimated: false,
        });
    }
    tables.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(b.rows.cmp(&a.rows))
            .then(a.name.cmp(&b.name))
    });
    Ok(DatabaseSize { bytes, tables })
}

impl HealthStore for Database {
    fn backend_name(&self) -> &'static str {
        match self.backend() {
            Backend::Postgres => "postgresql",
            Backend::Sqlite => "sqlite",
        }
    }

    fn pool_figures(&self) -> PoolFigures {
        let stats = self.pool_stats();
        PoolFigures {
            size: stats.size,
            idle: stats.idle,
            max: stats.max,
        }
    }

    async fn migration_figures(&self) -> Result<MigrationFigures, RepositoryError> {
        let state = self
            .migration_state()
            .await
            .map_err(|error| RepositoryError::Other(error.to_string()))?;
        Ok(MigrationFigures {
            applied: state.applied.len(),
            pending: state.pending,
        })
    }

    async fn queue_depths(&self) -> Result<QueueDepths, RepositoryError> {
        let connection = self.connection();
        let (mail, push, webhooks) = tokio::try_join!(
            queue(connection, "outbox_emails"),
            queue(connection, "push_notifications"),
            queue(connection, "webhook_deliveries"),
        )?;
        Ok(QueueDepths { mail, push, webhooks })
    }

    async fn database_size(&self) -> Result<DatabaseSize, RepositoryError> {
        match self.backend() {
            Backend::Postgres => postgres_size(self.connection()).await,
            Backend::Sqlite => sqlite_size(self.connection()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_parse_in_both_stored_forms() {
        let expected = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(parse_sqlite_time("2026-12-01T10:00:00.5Z"), Some(expected));
        assert_eq!(
            parse_sqlite_time("2026-12-01 10:00:00.500000+00:00"),
            Some(expected)
        );
        assert_eq!(parse_sqlite_time("yesterday"), None);
    }
}
