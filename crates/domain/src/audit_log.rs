//! Reading the audit trail back: filters, records, and the hash chain that makes tampering
//! evident.
//!
//! Entries are written unsealed inside the transactions that make the changes; a sealer then
//! gives them, in order, a position in one chain and a hash over the previous hash and the
//! entry's content ([`chain_material`]). Editing, deleting or reordering a sealed entry breaks
//! every later link. The IP address and user agent are outside the hash: GDPR erasure clears
//! them legitimately.

use std::future::Future;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::{PageRequest, RepositoryError};

/// Where a page of the trail (newest first) ended: the next page starts after this entry.
/// Opaque to clients: `<nanoseconds since the epoch>-<id as 32 hex digits>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditCursor {
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
}

impl AuditCursor {
    pub fn of(record: &AuditRecord) -> Self {
        Self {
            occurred_at: record.occurred_at,
            id: record.id,
        }
    }

    pub fn encode(self) -> String {
        let nanos = i128::from(self.occurred_at.timestamp()) * 1_000_000_000
            + i128::from(self.occurred_at.timestamp_subsec_nanos());
        format!("{nanos}-{}", self.id.simple())
    }

    /// `None` for anything [`AuditCursor::encode`] does not make.
    pub fn parse(text: &str) -> Option<Self> {
        let (nanos, id) = text.split_once('-')?;
        if nanos.is_empty() || nanos.len() > 30 || !nanos.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if id.len() != 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let nanos: i128 = nanos.parse().ok()?;
        let seconds = i64::try_from(nanos / 1_000_000_000).ok()?;
        let subsec = u32::try_from(nanos % 1_000_000_000).ok()?;
        Some(Self {
            occurred_at: DateTime::from_timestamp(seconds, subsec)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// Which entries to read; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub organization_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One stored entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<String>,
    pub organization_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// The entry's position in the chain; `None` until sealed (within seconds).
    pub chain_seq: Option<i64>,
    /// The actor's sign-in session, when the change was made in one.
    pub session_id: Option<Uuid>,
}

/// The first place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainBreak {
    pub seq: i64,
    pub entry_id: Option<Uuid>,
    pub reason: String,
}

/// What verifying the chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainReport {
    pub sealed: u64,
    pub unsealed: u64,
    pub intact: bool,
    pub first_break: Option<ChainBreak>,
}

fn optional<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// The exact text a link's hash covers: the previous hash, the position and the entry's
/// content (not its IP address, user agent or session: request metadata, which an instance of
/// an older version sealing the entry would not know), one field per line.
pub fn chain_material(previous_hash: &str, seq: i64, record: &AuditRecord) -> String {
    let json = |value: &Option<Value>| value.as_ref().map(Value::to_string).unwrap_or_default();
    [
        previous_hash.to_owned(),
        seq.to_string(),
        record.id.to_string(),
        record.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
        record.actor_kind.clone(),
        optional(&record.actor_id),
        record.action.clone(),
        record.resource_type.clone(),
        optional(&record.resource_id),
        optional(&record.organization_id),
        json(&record.before),
        json(&record.after),
        optional(&record.request_id),
    ]
    .join("\n")
}

pub trait AuditLogStore {
    fn audit_logs(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<AuditRecord>, u64), RepositoryError>> + Send;

    /// Up to `limit` entries matching `filter` that come after `cursor` newest first (older, or
    /// as old with a smaller id): keyset paging that never counts or skips rows.
    fn audit_logs_after(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, RepositoryError>> + Send;

    /// Up to `limit` entries after `after` (by time, then id), oldest first: keyset paging for
    /// exports that never hold the whole trail in memory.
    fn audit_batch(
        &self,
        filter: &AuditFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, RepositoryError>> + Send;

    /// Seals up to `limit` unsealed entries, oldest first; answers how many.
    fn seal_audit_chain(&self, limit: u64) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    fn verify_audit_chain(&self) -> impl Future<Output = Result<ChainReport, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_material_covers_content_but_not_erasable_personal_fields() {
        let record = AuditRecord {
            id: Uuid::nil(),
            occurred_at: DateTime::from_timestamp(0, 0).unwrap(),
            actor_kind: "user".into(),
            actor_id: None,
            action: "auth.login_succeeded".into(),
            resource_type: "session".into(),
            resource_id: Some("s".into()),
            organization_id: None,
            before: None,
            after: Some(serde_json::json!({"a": 1})),
            ip_address: Some("10.0.0.1".into()),
            user_agent: Some("curl".into()),
            request_id: None,
            chain_seq: None,
            session_id: None,
        };
        let base = chain_material("genesis", 1, &record);
        let mut erased = record.clone();
        erased.ip_address = None;
        erased.user_agent = None;
        assert_eq!(chain_material("genesis", 1, &erased), base);
        let mut edited = record.clone();
        edited.action = "auth.logout".into();
        assert_ne!(chain_material("genesis", 1, &edited), base);
        assert_ne!(chain_material("other", 1, &record), base);
        assert_ne!(chain_material("genesis", 2, &record), base);
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_as_written() {
        let cursor = AuditCursor {
            occurred_at: DateTime::from_timestamp(1_764_777_600, 123_456_789).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(AuditCursor::parse(&cursor.encode()), Some(cursor));
    }

    #[test]
    fn anything_else_is_not_a_cursor() {
        let id = Uuid::nil().simple().to_string();
        for text in [
            String::new(),
            "-".to_owned(),
            format!("-{id}"),
            format!("12-{}", &id[..31]),
            format!("12-{}", id.to_uppercase().replace('0', "A")),
            format!("+12-{id}"),
            format!("{}-{id}", "9".repeat(31)),
            format!("{}-{id}", "9".repeat(30)),
            "12-00000000-0000-0000-0000-000000000000".to_owned(),
            "12\0-x".to_owned(),
        ] {
            assert_eq!(AuditCursor::parse(&text), None, "{text:?}");
        }
    }
}
