//! Device events: batches stored in one transaction (their `Idempotency-Key` first), pages in
//! the query order with a keyset cursor, arrivals after a number for the live stream, counts
//! per bucket, and the organizations' own retention. Searches use FTS5 on SQLite and the
//! `tsvector` expression index of migration 30 on PostgreSQL; both see the words of letters
//! and digits of the type, summary and data.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, QueryResult};
use steward_domain::RepositoryError;
use steward_domain::device_events::{
    BatchKey, Bucket, Cursor, DeviceEvent, DeviceEventStore, EventFilter, EventScope, EventSource, GroupBy,
    NewEvent, Severity, StoredBatch,
};
use uuid::Uuid;

use crate::database::{Backend, Database};
use crate::error::db_err_to_repository as db;
use crate::sql::{Sql, all, one};

const COLUMNS: &str = "seq, id, device_id, organization_id, owner_user_id, source, type, severity, summary, \
     data, occurred_at, received_at";

/// PostgreSQL's text search over an event, as the index of migration 30 spells it.
/// PostgreSQL's search: the stored words (migration 32) hold every word of the query.
const PG_SEARCH: &str = "search @@ CAST(";

/// Longest word a `tsvector` holds (PostgreSQL refuses longer lexemes; such a word is not
/// searchable).
const PG_MAX_WORD_BYTES: usize = 2046;

/// A `tsvector` literal of the words of an event as a search sees them (runs of letters and
/// digits, lower-cased; see `search_words`): each quoted, repeats left to PostgreSQL. Letters
/// and digits never include a quote or a backslash, so no escaping is needed.
fn pg_search_vector(event: &NewEvent) -> String {
    let mut vector = String::new();
    for text in [
        event.kind.as_str(),
        event.summary.as_deref().unwrap_or(""),
        event.data.as_str(),
    ] {
        for word in text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|word| !word.is_empty())
        {
            let word = word.to_lowercase();
            if word.len() > PG_MAX_WORD_BYTES || word.contains(['\'', '\\']) {
                continue;
            }
            if !vector.is_empty() {
                vector.push(' ');
            }
            vector.push('\'');
            vector.push_str(&word);
            vector.push('\'');
        }
    }
    vector
}

/// The `tsquery` literal asking for every one of `words` (already letters and digits).
fn pg_search_query(words: &[String]) -> String {
    words
        .iter()
        .filter(|word| word.len() <= PG_MAX_WORD_BYTES && !word.contains(['\'', '\\']))
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" & ")
}

fn corrupt(what: &str, value: &str) -> RepositoryError {
    RepositoryError::Other(format!("unknown {what} {value:?} in device_events"))
}

fn event(row: &QueryResult) -> Result<DeviceEvent, RepositoryError> {
    let source: String = row.try_get("", "source").map_err(db)?;
    let severity: String = row.try_get("", "severity").map_err(db)?;
    Ok(DeviceEvent {
        seq: row.try_get("", "seq").map_err(db)?,
        id: row.try_get("", "id").map_err(db)?,
        device: row.try_get("", "device_id").map_err(db)?,
        organization: row.try_get("", "organization_id").map_err(db)?,
        owner: row.try_get("", "owner_user_id").map_err(db)?,
        source: EventSource::parse(&source).ok_or_else(|| corrupt("source", &source))?,
        kind: row.try_get("", "type").map_err(db)?,
        severity: Severity::parse(&severity).ok_or_else(|| corrupt("severity", &severity))?,
        summary: row.try_get("", "summary").map_err(db)?,
        data: row.try_get("", "data").map_err(db)?,
        occurred_at: row.try_get("", "occurred_at").map_err(db)?,
        received_at: row.try_get("", "received_at").map_err(db)?,
    })
}

impl Database {
    fn sql(&self) -> Sql {
        Sql::new(match self.backend() {
            Backend::Sqlite => DatabaseBackend::Sqlite,
            Backend::Postgres => DatabaseBackend::Postgres,
        })
    }

    /// ` AND …` for every filter (the scope included).
    fn event_conditions(&self, sql: &mut Sql, filter: &EventFilter) {
        match filter.scope {
            EventScope::Device(device) => {
                sql.push(" AND device_id = ").bind(device);
            }
            EventScope::Organization(organization) => {
                sql.push(" AND organization_id = ").bind(organization);
            }
        }
        if let Some(device) = filter.device {
            sql.push(" AND device_id = ").bind(device);
        }
        match filter.owner {
            Some(Some(owner)) => {
                sql.push(" AND owner_user_id = ").bind(owner);
            }
            Some(None) => {
                sql.push(" AND owner_user_id IS NULL");
            }
            None => {}
        }
        if let Some(prefix) = filter.type_prefix.as_deref().filter(|prefix| !prefix.is_empty()) {
            // A bounded length from the code, not from the request's text.
            sql.push(&format!(" AND substr(type, 1, {}) = ", prefix.chars().count()))
                .bind(prefix.to_owned());
        }
        if let Some(severity) = filter.severity {
            sql.push(" AND severity IN (");
            for (index, name) in severity.at_least().into_iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.bind(name);
            }
            sql.push(")");
        }
        if let Some(from) = filter.from {
            sql.push(" AND occurred_at >= ").bind(from);
        }
        if let Some(to) = filter.to {
            sql.push(" AND occurred_at < ").bind(to);
        }
        if !filter.words.is_empty() {
            match self.backend() {
                Backend::Sqlite => {
                    // Words are letters and digits only; quoted, each is a plain term.
                    let query = filter
                        .words
                        .iter()
                        .map(|word| format!("\"{word}\""))
                        .collect::<Vec<_>>()
                        .join(" ");
                    sql.push(
                        " AND seq IN (SELECT rowid FROM device_events_fts WHERE device_events_fts MATCH ",
                    )
                    .bind(query)
                    .push(")");
                }
                Backend::Postgres => {
                    sql.push(" AND ")
                        .push(PG_SEARCH)
                        .bind(pg_search_query(&filter.words))
                        .push(" AS tsquery)");
                }
            }
        }
    }
}

impl DeviceEventStore for Database {
    async fn store_device_events(
        &self,
        device: Uuid,
        key: Option<&BatchKey>,
        events: &[NewEvent],
        received_at: DateTime<Utc>,
    ) -> Result<StoredBatch, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        if let Some(key) = key {
            let mut sql = self.sql();
            sql.push(
                "INSERT INTO device_event_batches (device_id, idempotency_key, fingerprint, answer, created_at) \
                 VALUES (",
            )
            .bind(device)
            .push(", ")
            .bind(key.key.clone())
            .push(", ")
            .bind(key.fingerprint.clone())
            .push(", ")
            .bind(key.answer.clone())
            .push(", ")
            .bind(received_at)
            // A key older than a day is free again (whether or not the clean-up took it yet).
            .push(
                ") ON CONFLICT (device_id, idempotency_key) DO UPDATE SET fingerprint = excluded.fingerprint, \
                 answer = excluded.answer, created_at = excluded.created_at \
                 WHERE device_event_batches.created_at < ",
            )
            .bind(received_at - Duration::hours(steward_domain::device_events::BATCH_KEY_HOURS));
            let inserted = transaction.execute_raw(sql.statement()).await.map_err(db)?;
            if inserted.rows_affected() == 0 {
                let mut sql = self.sql();
                sql.push("SELECT fingerprint, answer FROM device_event_batches WHERE device_id = ")
                    .bind(device)
                    .push(" AND idempotency_key = ")
                    .bind(key.key.clone());
                let row = one(&transaction, &sql).await?;
                let seen = StoredBatch::Seen {
                    fingerprint: row.try_get("", "fingerprint").map_err(db)?,
                    answer: row.try_get("", "answer").map_err(db)?,
                };
                transaction.commit().await.map_err(db)?;
                return Ok(seen);
            }
        }
        let mut sql = self.sql();
        sql.push("SELECT organization_id, owner_user_id FROM devices WHERE id = ")
            .bind(device);
        let (organization, owner): (Option<Uuid>, Option<Uuid>) =
            match transaction.query_one_raw(sql.statement()).await.map_err(db)? {
                Some(row) => (
                    row.try_get("", "organization_id").map_err(db)?,
                    row.try_get("", "owner_user_id").map_err(db)?,
                ),
                None => return Err(RepositoryError::NotFound),
            };
        let mut seqs = Vec::with_capacity(events.len());
        let postgres = self.backend() == Backend::Postgres;
        for chunk in events.chunks(500) {
            let mut sql = self.sql();
            sql.push(
                "INSERT INTO device_events (id, device_id, organization_id, owner_user_id, source, type, severity, \
                 summary, data, occurred_at, received_at",
            )
            .push(if postgres { ", search) VALUES " } else { ") VALUES " });
            for (index, event) in chunk.iter().enumerate() {
                sql.push(if index == 0 { "(" } else { ", (" })
                    .bind(event.id)
                    .push(", ")
                    .bind(device)
                    .push(", ")
                    .bind(organization)
                    .push(", ")
                    .bind(owner)
                    .push(", 'device', ")
                    .bind(event.kind.clone())
                    .push(", ")
                    .bind(event.severity.as_str())
                    .push(", ")
                    .bind(event.summary.clone())
                    .push(", ")
                    .bind(event.data.clone())
                    .push(", ")
                    .bind(event.occurred_at)
                    .push(", ")
                    .bind(received_at);
                if postgres {
                    sql.push(", CAST(")
                        .bind(pg_search_vector(event))
                        .push(" AS tsvector)");
                }
                sql.push(")");
            }
            sql.push(" RETURNING seq");
            for row in all(&transaction, &sql).await? {
                seqs.push(row.try_get::<i64>("", "seq").map_err(db)?);
            }
        }
        transaction.commit().await.map_err(db)?;
        seqs.sort_unstable();
        Ok(StoredBatch::Stored { seqs })
    }

    async fn device_events_page(
        &self,
        filter: &EventFilter,
        after: Option<Cursor>,
        limit: u64,
    ) -> Result<Vec<DeviceEvent>, RepositoryError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {COLUMNS} FROM device_events WHERE 1 = 1"));
        self.event_conditions(&mut sql, filter);
        if let Some(cursor) = after {
            sql.push(" AND (occurred_at < ")
                .bind(cursor.occurred_at)
                .push(" OR (occurred_at = ")
                .bind(cursor.occurred_at)
                .push(" AND seq < ")
                .bind(cursor.seq)
                .push("))");
        }
        sql.push(" ORDER BY occurred_at DESC, seq DESC LIMIT ")
            .bind(limit.min(1000) as i64);
        all(self.connection(), &sql).await?.iter().map(event).collect()
    }

    async fn device_events_since(
        &self,
        filter: Option<&EventFilter>,
        seq: i64,
        limit: u64,
    ) -> Result<Vec<DeviceEvent>, RepositoryError> {
        let mut sql = self.sql();
        sql.push(&format!("SELECT {COLUMNS} FROM device_events WHERE seq > "))
            .bind(seq);
        if let Some(filter) = filter {
            self.event_conditions(&mut sql, filter);
        }
        sql.push(" ORDER BY seq LIMIT ").bind(limit.min(10_000) as i64);
        all(self.connection(), &sql).await?.iter().map(event).collect()
    }

    async fn latest_device_event_seq(&self) -> Result<i64, RepositoryError> {
        let mut sql = self.sql();
        sql.push("SELECT COALESCE(MAX(seq), 0) AS seq FROM device_events");
        let row = one(self.connection(), &sql).await?;
        row.try_get("", "seq").map_err(db)
    }

    async fn count_device_events(
        &self,
        filter: &EventFilter,
        group_by: GroupBy,
        limit: u64,
    ) -> Result<Vec<Bucket>, RepositoryError> {
        let bucket = match (group_by, self.backend()) {
            (GroupBy::Type, _) => "type",
            (GroupBy::Device, _) => "device_id",
            (GroupBy::Day, Backend::Sqlite) => "substr(occurred_at, 1, 10)",
            (GroupBy::Day, Backend::Postgres) => "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        };
        let mut sql = self.sql();
        sql.push(&format!(
            "SELECT {bucket} AS bucket, COUNT(*) AS entries FROM device_events WHERE 1 = 1"
        ));
        self.event_conditions(&mut sql, filter);
        sql.push(&format!(" GROUP BY {bucket}"));
        // Days newest first under the limit (the latest ones kept), then put in order.
        sql.push(match group_by {
            GroupBy::Day => " ORDER BY bucket DESC",
            _ => " ORDER BY entries DESC, bucket",
        });
        sql.push(" LIMIT ").bind(limit.min(10_000) as i64);
        let mut rows = all(self.connection(), &sql).await?;
        if group_by == GroupBy::Day {
            rows.reverse();
        }
        rows.iter()
            .map(|row| {
                let key = match group_by {
                    GroupBy::Device => row.try_get::<Uuid>("", "bucket").map_err(db)?.to_string(),
                    _ => row.try_get::<String>("", "bucket").map_err(db)?,
                };
                Ok(Bucket {
                    key,
                    count: crate::sql::count(row, "entries")?,
                })
            })
            .collect()
    }

    async fn device_event_retention(&self, device: Uuid) -> Result<Option<u32>, RepositoryError> {
        let mut sql = self.sql();
        sql.push(
            "SELECT o.event_retention_days AS days FROM devices d JOIN organizations o \
             ON o.id = d.organization_id WHERE d.id = ",
        )
        .bind(device);
        retention(
            self.connection()
                .query_one_raw(sql.statement())
                .await
                .map_err(db)?,
        )
    }

    async fn organization_event_retention(&self, organization: Uuid) -> Result<Option<u32>, RepositoryError> {
        let mut sql = self.sql();
        sql.push("SELECT event_retention_days AS days FROM organizations WHERE id = ")
            .bind(organization);
        retention(
            self.connection()
                .query_one_raw(sql.statement())
                .await
                .map_err(db)?,
        )
    }

    async fn set_organization_event_retention(
        &self,
        organization: Uuid,
        days: Option<u32>,
    ) -> Result<bool, RepositoryError> {
        let mut sql = self.sql();
        sql.push("UPDATE organizations SET event_retention_days = ")
            .bind(days.and_then(|days| i32::try_from(days).ok()))
            .push(" WHERE id = ")
            .bind(organization);
        let result = self.writer().execute_raw(sql.statement()).await.map_err(db)?;
        Ok(result.rows_affected() == 1)
    }
}

fn retention(row: Option<QueryResult>) -> Result<Option<u32>, RepositoryError> {
    let Some(row) = row else { return Ok(None) };
    let days: Option<i32> = row.try_get("", "days").map_err(db)?;
    Ok(days.and_then(|days| u32::try_from(days).ok()))
}

impl Database {
    /// Events older than their retention (`default_cutoff`, or their organization's own), at
    /// most `limit` deleted (a statement per organization with its own retention, so the
    /// statements stay small however many there are); or, with `count`, how many there are.
    pub(crate) async fn expired_device_events(
        &self,
        default_cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
        count: bool,
    ) -> Result<u64, RepositoryError> {
        const OWN: &str = "SELECT id FROM organizations WHERE event_retention_days IS NOT NULL";
        let mut done = self
            .expired_events_where(
                &format!("(organization_id IS NULL OR organization_id NOT IN ({OWN}))"),
                None,
                default_cutoff,
                limit,
                count,
            )
            .await?;
        let mut sql = self.sql();
        sql.push("SELECT id, event_retention_days AS days FROM organizations WHERE event_retention_days IS NOT NULL");
        for row in all(self.connection(), &sql).await? {
            if !count && done >= limit {
                break;
            }
            let organization: Uuid = row.try_get("", "id").map_err(db)?;
            let days: i32 = row.try_get("", "days").map_err(db)?;
            let days = i64::from(days).clamp(1, i64::from(steward_domain::device_events::MAX_RETENTION_DAYS));
            done += self
                .expired_events_where(
                    "organization_id = ",
                    Some(organization),
                    now - Duration::days(days),
                    limit - done.min(limit),
                    count,
                )
                .await?;
        }
        Ok(done)
    }

    /// `condition` (ending in a placeholder for `organization` when one is given) and
    /// `occurred_at < cutoff`: counted, or at most `limit` deleted.
    async fn expired_events_where(
        &self,
        condition: &str,
        organization: Option<Uuid>,
        cutoff: DateTime<Utc>,
        limit: u64,
        count: bool,
    ) -> Result<u64, RepositoryError> {
        let mut sql = self.sql();
        sql.push(if count {
            "SELECT COUNT(*) AS entries FROM device_events WHERE "
        } else {
            "DELETE FROM device_events WHERE seq IN (SELECT seq FROM device_events WHERE "
        });
        sql.push(condition);
        if let Some(organization) = organization {
            sql.bind(organization);
        }
        sql.push(" AND occurred_at < ").bind(cutoff);
        if count {
            let row = one(self.connection(), &sql).await?;
            return crate::sql::count(&row, "entries");
        }
        sql.push(" LIMIT ").bind(limit as i64).push(")");
        let transaction = self.begin_write().await.map_err(db)?;
        let deleted = transaction.execute_raw(sql.statement()).await.map_err(db)?;
        transaction.commit().await.map_err(db)?;
        Ok(deleted.rows_affected())
    }

    /// Batch keys older than `cutoff`.
    pub(crate) async fn expired_event_batches(
        &self,
        cutoff: DateTime<Utc>,
        limit: u64,
        count: bool,
    ) -> Result<u64, RepositoryError> {
        let mut sql = self.sql();
        if count {
            sql.push("SELECT COUNT(*) AS entries FROM device_event_batches WHERE created_at < ")
                .bind(cutoff);
            let row = one(self.connection(), &sql).await?;
            return crate::sql::count(&row, "entries");
        }
        // Keys are (device, key) pairs: delete by both, a batch at a time.
        sql.push(
            "DELETE FROM device_event_batches WHERE (device_id, idempotency_key) IN \
             (SELECT device_id, idempotency_key FROM device_event_batches WHERE created_at < ",
        )
        .bind(cutoff)
        .push(" LIMIT ")
        .bind(limit as i64)
        .push(")");
        let deleted = self.writer().execute_raw(sql.statement()).await.map_err(db)?;
        Ok(deleted.rows_affected())
    }
}

/// What the PostgreSQL listener tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSignal {
    /// Listening (again): whatever was announced while not may have been missed.
    Listening,
    /// The connection was lost; it is being reopened.
    Lost,
    /// A statement stored the arrival numbers `low..=high`.
    Stored(i64, i64),
}

impl Database {
    /// On PostgreSQL: listens to `steward_device_events` for as long as the returned future
    /// runs, reconnecting after a second when the connection drops, and tells `on` what it
    /// hears. On SQLite it returns at once (one instance: the hub polls).
    pub async fn listen_device_events(&self, on: impl Fn(EventSignal)) {
        if self.backend() != Backend::Postgres {
            return;
        }
        let pool = self.connection().get_postgres_connection_pool().clone();
        loop {
            match sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(mut listener) => match listener.listen("steward_device_events").await {
                    Ok(()) => {
                        on(EventSignal::Listening);
                        // `try_recv` answers `None` when the connection was lost (and reconnects
                        // on the next call): what was sent meanwhile is read by a catch-up.
                        loop {
                            match listener.try_recv().await {
                                Ok(Some(notification)) => {
                                    if let Some((low, high)) = notification
                                        .payload()
                                        .split_once('-')
                                        .and_then(|(low, high)| Some((low.parse().ok()?, high.parse().ok()?)))
                                    {
                                        on(EventSignal::Stored(low, high));
                                    }
                                }
                                Ok(None) => {
                                    on(EventSignal::Lost);
                                    on(EventSignal::Listening);
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "the device event listener stopped");
                                    break;
                                }
                            }
                        }
                    }
                    Err(error) => tracing::warn!(%error, "could not LISTEN for device events"),
                },
                Err(error) => tracing::warn!(%error, "could not connect the device event listener"),
            }
            on(EventSignal::Lost);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_literals_hold_the_words_a_search_sees() {
        let event = NewEvent {
            id: Uuid::nil(),
            kind: "app.installed".to_owned(),
            severity: steward_domain::device_events::Severity::Info,
            summary: Some("Installed Maps, v2".to_owned()),
            data: format!(
                r#"{{"packageName":"com.Example.maps","x":"{}"}}"#,
                "a".repeat(3000)
            ),
            occurred_at: Utc::now(),
        };
        assert_eq!(
            pg_search_vector(&event),
            "'app' 'installed' 'installed' 'maps' 'v2' 'packagename' 'com' 'example' 'maps' 'x'"
        );
        assert_eq!(
            pg_search_query(&["example".to_owned(), "maps".to_owned()]),
            "'example' & 'maps'"
        );
    }
}
