//! The daily rollup of audit entries: per action and UTC day, counted by the clean-up pass once
//! a day has ended, with the mark of how far it got in `instance_flags`. The whole system's
//! statistics read it for whole days and count only the edges entry by entry.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use steward_domain::RepositoryError;
use steward_domain::dashboard::{Interval, truncate};

use crate::database::Database;
use crate::entities::instance_flags;
use crate::error::db_err_to_repository as db;
use crate::sql::{Sql, all, one};

/// The `instance_flags` row holding the first day not yet counted (RFC 3339).
pub(crate) const ROLLED_THROUGH: &str = "audit_rollup_through";

/// Every day before this one is in the rollup; `None` before the first pass.
pub(crate) async fn rolled_through<C: ConnectionTrait>(
    connection: &C,
) -> Result<Option<DateTime<Utc>>, RepositoryError> {
    let row = instance_flags::Entity::find_by_id(ROLLED_THROUGH.to_owned())
        .one(connection)
        .await
        .map_err(db)?;
    Ok(row.and_then(|row| {
        DateTime::parse_from_rfc3339(&row.value)
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }))
}

async fn mark<C: ConnectionTrait>(connection: &C, through: DateTime<Utc>) -> Result<(), RepositoryError> {
    instance_flags::Entity::insert(instance_flags::ActiveModel {
        name: Set(ROLLED_THROUGH.to_owned()),
        value: Set(through.to_rfc3339()),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(instance_flags::Column::Name)
            .update_columns([instance_flags::Column::Value, instance_flags::Column::UpdatedAt])
            .to_owned(),
    )
    .exec_without_returning(connection)
    .await
    .map_err(db)?;
    Ok(())
}

/// The day counts of `action` for the days in `[start, end)`.
pub(crate) async fn day_counts<C: ConnectionTrait>(
    connection: &C,
    action: &str,
    (start, end): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Vec<(DateTime<Utc>, u64)>, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push("SELECT day, entries FROM audit_daily_counts WHERE action = ")
        .bind(action)
        .push(" AND day >= ")
        .bind(start)
        .push(" AND day < ")
        .bind(end);
    let mut days = Vec::new();
    for row in all(connection, &sql).await? {
        let day: DateTime<Utc> = row.try_get("", "day").map_err(db)?;
        let entries: i64 = row.try_get("", "entries").map_err(db)?;
        days.push((day, entries.max(0).unsigned_abs()));
    }
    Ok(days)
}

impl Database {
    /// See `MaintenanceStore::roll_up_audit_days`.
    pub(crate) async fn roll_up(&self, until: DateTime<Utc>, max_days: u32) -> Result<u64, RepositoryError> {
        let connection = self.connection();
        let backend = connection.get_database_backend();
        let start = match rolled_through(connection).await? {
            Some(through) => through,
            None => {
                let first = one(
                    connection,
                    Sql::new(backend).push("SELECT MIN(occurred_at) AS first FROM audit_logs"),
                )
                .await?;
                let first: Option<DateTime<Utc>> = first.try_get("", "first").map_err(db)?;
                let Some(first) = first else {
                    // No entries yet: every day before `until` is (trivially) counted.
                    mark(self.writer(), until).await?;
                    return Ok(0);
                };
                let start = truncate(first, Interval::Day);
                mark(self.writer(), start.min(until)).await?;
                start.min(until)
            }
        };
        let mut day = start;
        let mut counted = 0;
        while day < until && counted < u64::from(max_days) {
            let next = day + Duration::days(1);
            let transaction = self.begin_write().await.map_err(db)?;
            let mut clear = Sql::new(backend);
            clear
                .push("DELETE FROM audit_daily_counts WHERE day = ")
                .bind(day);
            transaction.execute_raw(clear.statement()).await.map_err(db)?;
            let mut insert = Sql::new(backend);
            insert
                .push("INSERT INTO audit_daily_counts (day, action, entries) SELECT ")
                .bind(day)
                .push(", action, COUNT(*) FROM audit_logs WHERE occurred_at >= ")
                .bind(day)
                .push(" AND occurred_at < ")
                .bind(next)
                .push(" GROUP BY action");
            transaction.execute_raw(insert.statement()).await.map_err(db)?;
            mark(&transaction, next).await?;
            transaction.commit().await.map_err(db)?;
            day = next;
            counted += 1;
        }
        Ok(counted)
    }
}
