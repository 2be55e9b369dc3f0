//! Audit queries: the trail, a keyset-paged export that streams without holding the whole
//! trail in memory, and the hash chain's verification.

use chrono::{DateTime, Utc};
use steward_domain::PageRequest;
use steward_domain::audit_log::{AuditFilter, AuditRecord, ChainReport};
use uuid::Uuid;

use crate::error::AppError;
use crate::steward::{Steward, Store};

/// Entries one export step reads.
pub const EXPORT_BATCH: u64 = 500;

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
