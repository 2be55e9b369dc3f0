//! Audit queries: the trail, a keyset-paged export that streams without holding the whole
//! trail in memory, and the hash chain's verification.

use chrono::{DateTime, Utc};
use steward_domain::PageRequest;
use steward_domain::audit_log::{AuditCursor, AuditFilter, AuditRecord, ChainReport};
use uuid::Uuid;

use crate::error::AppError;
use crate::steward::{Steward, Store};

/// Entries one export step reads.
pub const EXPORT_BATCH: u64 = 500;

/// The columns of an audit export in CSV.
pub const CSV_HEADER: &[&str] = &[
    "id",
    "occurredAt",
    "actorKind",
    "actorId",
    "action",
    "resourceType",
    "resourceId",
    "organizationId",
    "before",
    "after",
    "ipAddress",
    "userAgent",
    "requestId",
    "chainSeq",
    "sessionId",
];

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab or carriage return
/// first) is prefixed with `'`, OWASP's rule against CSV injection: a user agent like
/// `=HYPERLINK(…)` stays text when an auditor opens the export.
pub fn csv_cell(value: String) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value
    }
}

/// Entries as CSV lines (with the header row first when `header`).
pub fn csv_rows(records: &[AuditRecord], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        writer.write_record(CSV_HEADER)?;
    }
    let text = |value: &Option<serde_json::Value>| value.as_ref().map(|v| v.to_string()).unwrap_or_default();
    for record in records {
        writer.write_record(
            [
                record.id.to_string(),
                record.occurred_at.to_rfc3339(),
                record.actor_kind.clone(),
                record.actor_id.map(|id| id.to_string()).unwrap_or_default(),
                record.action.clone(),
                record.resource_type.clone(),
                record.resource_id.clone().unwrap_or_default(),
                record
                    .organization_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                text(&record.before),
                text(&record.after),
                record.ip_address.clone().unwrap_or_default(),
                record.user_agent.clone().unwrap_or_default(),
                record.request_id.clone().unwrap_or_default(),
                record.chain_seq.map(|seq| seq.to_string()).unwrap_or_default(),
                record.session_id.map(|id| id.to_string()).unwrap_or_default(),
            ]
            .map(csv_cell),
        )?;
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

/// Entries as the inside of a JSON array (a comma before each but the very first).
pub fn json_rows(records: &[AuditRecord], first: bool) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for (index, record) in records.iter().enumerate() {
        if !(first && index == 0) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, record)?;
    }
    Ok(out)
}

pub struct AuditService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> AuditService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// Entries matching `filter`, newest first, and how many match.
    pub async fn query(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<(Vec<AuditRecord>, u64), AppError> {
        Ok(self.steward.store.audit_logs(filter, page).await?)
    }

    /// Up to `limit` entries matching `filter` after `cursor`, newest first, and the cursor of
    /// the page after them (`None` on the last).
    pub async fn query_after(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
        limit: u64,
    ) -> Result<(Vec<AuditRecord>, Option<AuditCursor>), AppError> {
        let mut records = self
            .steward
            .store
            .audit_logs_after(filter, cursor, limit.saturating_add(1))
            .await?;
        let more = records.len() as u64 > limit;
        records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more {
            records.last().map(AuditCursor::of)
        } else {
            None
        };
        Ok((records, next))
    }

    /// An export of the entries matching `filter`, oldest first, read batch by batch.
    pub fn export(&self, filter: AuditFilter) -> AuditExport<S> {
        AuditExport {
            store: self.steward.store.clone(),
            filter,
            after: None,
        }
    }

    /// Walks the hash chain; reports the first broken link, if any.
    pub async fn verify(&self) -> Result<ChainReport, AppError> {
        Ok(self.steward.store.verify_audit_chain().await?)
    }
}

/// An export in progress: owns what it needs, so a response stream can carry it.
pub struct AuditExport<S> {
    store: S,
    filter: AuditFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
}

impl<S: Store> AuditExport<S> {
    /// The next batch (empty when the export is complete).
    pub async fn next_batch(&mut self) -> Result<Vec<AuditRecord>, AppError> {
        let batch = self
            .store
            .audit_batch(&self.filter, self.after, EXPORT_BATCH)
            .await?;
        if let Some(last) = batch.last() {
            self.after = Some((last.occurred_at, last.id));
        }
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::csv_cell;

    #[test]
    fn formula_cells_are_defused_and_others_kept() {
        for formula in ["=HYPERLINK(\"http://x\")", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(csv_cell(formula.to_owned()), format!("'{formula}"));
        }
        for plain in ["curl/8.0", "", "{\"a\":1}", "0193-abc"] {
            assert_eq!(csv_cell(plain.to_owned()), plain);
        }
    }
}
