//! An operator's audit entries for the activity timeline, and their usual hours and addresses
//! (read on the `(actor_id, occurred_at)` index).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use steward_domain::RepositoryError;
use steward_domain::admin_activity::{ActivityBaseline, ActivityEntry, AdminActivityStore};
use uuid::Uuid;

use crate::database::Database;
use crate::entities::audit_logs;
use crate::error::db_err_to_repository as db;

/// When, what, in which session, from where, with what.
type EntryRow = (
    DateTime<Utc>,
    String,
    Option<Uuid>,
    Option<String>,
    Option<String>,
);

/// Addresses of the baseline read at most (an operator uses a handful; past this bound an
/// arbitrary subset is kept, and addresses left out would be flagged as new).
const MAX_ADDRESSES: u64 = 10_000;

impl AdminActivityStore for Database {
    async fn actor_entries(
        &self,
        actor: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ActivityEntry>, RepositoryError> {
        let rows: Vec<EntryRow> = audit_logs::Entity::find()
            .select_only()
            .columns([
                audit_logs::Column::OccurredAt,
                audit_logs::Column::Action,
                audit_logs::Column::SessionId,
                audit_logs::Column::IpAddress,
                audit_logs::Column::UserAgent,
            ])
            .filter(audit_logs::Column::ActorId.eq(actor))
            .filter(audit_logs::Column::OccurredAt.gte(from))
            .filter(audit_logs::Column::OccurredAt.lt(to))
            .order_by_asc(audit_logs::Column::OccurredAt)
            .order_by_asc(audit_logs::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(
                |(occurred_at, action, session_id, ip_address, user_agent)| ActivityEntry {
                    occurred_at,
                    action,
                    session_id,
                    ip_address,
                    user_agent,
                },
            )
            .collect())
    }

    async fn actor_baseline(
        &self,
        actor: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<ActivityBaseline, RepositoryError> {
        let connection = self.connection();
        let backend = connection.get_database_backend();
        // The hour of day (UTC): SQLite keeps RFC 3339 text, whose hour is at 12–13.
        let (hour, placeholders) = match backend {
            DatabaseBackend::Postgres => (
                "CAST(EXTRACT(HOUR FROM occurred_at AT TIME ZONE 'UTC') AS INTEGER)",
                ["$1", "$2", "$3"],
            ),
            _ => ("CAST(substr(occurred_at, 12, 2) AS INTEGER)", ["?", "?", "?"]),
        };
        let sql = format!(
            "SELECT {hour} AS hour_, COUNT(*) AS n FROM audit_logs \
             WHERE actor_id = {} AND occurred_at >= {} AND occurred_at < {} GROUP BY 1",
            placeholders[0], placeholders[1], placeholders[2]
        );
        let rows = connection
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [actor.into(), from.into(), to.into()],
            ))
            .await
            .map_err(db)?;
        let mut baseline = ActivityBaseline::default();
        for row in rows {
            let hour: Option<i32> = row.try_get("", "hour_").map_err(db)?;
            let count: i64 = row.try_get("", "n").map_err(db)?;
            if let Some(slot) = hour
                .and_then(|hour| usize::try_from(hour).ok())
                .and_then(|hour| baseline.hours.get_mut(hour))
            {
                *slot += count.max(0).unsigned_abs();
            }
        }
        let addresses: Vec<Option<String>> = audit_logs::Entity::find()
            .select_only()
            .column(audit_logs::Column::IpAddress)
            .distinct()
            .filter(audit_logs::Column::ActorId.eq(actor))
            .filter(audit_logs::Column::OccurredAt.gte(from))
            .filter(audit_logs::Column::OccurredAt.lt(to))
            .filter(audit_logs::Column::IpAddress.is_not_null())
            .limit(MAX_ADDRESSES)
            .into_tuple()
            .all(connection)
            .await
            .map_err(db)?;
        baseline.addresses = addresses.into_iter().flatten().collect();
        Ok(baseline)
    }
}
