//! Reading, sealing and verifying the audit trail.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};
use steward_domain::audit_log::{
    AuditCursor, AuditFilter, AuditLogStore, AuditRecord, ChainBreak, ChainReport, chain_material,
};
use steward_domain::{PageRequest, RepositoryError};
use uuid::Uuid;

use crate::database::Database;
use crate::entities::{audit_chain, audit_logs};
use crate::error::db_err_to_repository as db;

fn record(model: audit_logs::Model) -> AuditRecord {
    AuditRecord {
        id: model.id,
        occurred_at: model.occurred_at,
        actor_kind: model.actor_kind,
        actor_id: model.actor_id,
        action: model.action,
        resource_type: model.resource_type,
        resource_id: model.resource_id,
        organization_id: model.organization_id,
        before: model.before,
        after: model.after,
        ip_address: model.ip_address,
        user_agent: model.user_agent,
        request_id: model.request_id,
        chain_seq: model.chain_seq,
        session_id: model.session_id,
    }
}

fn conditions(filter: &AuditFilter) -> Condition {
    let mut condition = Condition::all();
    if let Some(actor) = filter.actor_id {
        condition = condition.add(audit_logs::Column::ActorId.eq(actor));
    }
    if let Some(action) = &filter.action {
        condition = condition.add(audit_logs::Column::Action.eq(action.as_str()));
    }
    if let Some(kind) = &filter.resource_type {
        condition = condition.add(audit_logs::Column::ResourceType.eq(kind.as_str()));
    }
    if let Some(id) = &filter.resource_id {
        condition = condition.add(audit_logs::Column::ResourceId.eq(id.as_str()));
    }
    if let Some(organization) = filter.organization_id {
        condition = condition.add(audit_logs::Column::OrganizationId.eq(organization));
    }
    if let Some(from) = filter.from {
        condition = condition.add(audit_logs::Column::OccurredAt.gte(from));
    }
    if let Some(to) = filter.to {
        condition = condition.add(audit_logs::Column::OccurredAt.lt(to));
    }
    condition
}

fn link_hash(previous: &str, seq: i64, entry: &AuditRecord) -> String {
    let digest = Sha256::digest(chain_material(previous, seq, entry).as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

const VERIFY_BATCH: u64 = 1000;

impl Database {
    /// The entries with `ids` (at most a page), newest first.
    async fn audit_rows(&self, ids: Vec<Uuid>) -> Result<Vec<AuditRecord>, RepositoryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(audit_logs::Entity::find()
            .filter(audit_logs::Column::Id.is_in(ids))
            .order_by_desc(audit_logs::Column::OccurredAt)
            .order_by_desc(audit_logs::Column::Id)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(record)
            .collect())
    }
}

impl AuditLogStore for Database {
    async fn audit_logs(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<(Vec<AuditRecord>, u64), RepositoryError> {
        let condition = conditions(filter);
        let total = audit_logs::Entity::find()
            .filter(condition.clone())
            .count(self.connection())
            .await
            .map_err(db)?;
        // The page's ids first, from the indexes alone, then only those rows: a deep page skips
        // index entries rather than whole entries with their before and after documents.
        let ids: Vec<Uuid> = audit_logs::Entity::find()
            .select_only()
            .column(audit_logs::Column::Id)
            .filter(condition)
            .order_by_desc(audit_logs::Column::OccurredAt)
            .order_by_desc(audit_logs::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok((self.audit_rows(ids).await?, total))
    }

    async fn audit_logs_after(
        &self,
        filter: &AuditFilter,
        cursor: AuditCursor,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, RepositoryError> {
        // The first condition alone bounds the index range the newest-first walk starts from;
        // the second drops the cursor's own instant up to and including its entry.
        let condition = conditions(filter)
            .add(audit_logs::Column::OccurredAt.lte(cursor.occurred_at))
            .add(
                Condition::any()
                    .add(audit_logs::Column::OccurredAt.lt(cursor.occurred_at))
                    .add(
                        Condition::all()
                            .add(audit_logs::Column::OccurredAt.eq(cursor.occurred_at))
                            .add(audit_logs::Column::Id.lt(cursor.id)),
                    ),
            );
        let ids: Vec<Uuid> = audit_logs::Entity::find()
            .select_only()
            .column(audit_logs::Column::Id)
            .filter(condition)
            .order_by_desc(audit_logs::Column::OccurredAt)
            .order_by_desc(audit_logs::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        self.audit_rows(ids).await
    }

    async fn audit_batch(
        &self,
        filter: &AuditFilter,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u64,
    ) -> Result<Vec<AuditRecord>, RepositoryError> {
        let mut condition = conditions(filter);
        if let Some((at, id)) = after {
            // `occurred_at >= at` alone bounds the index range each batch starts from.
            condition = condition.add(audit_logs::Column::OccurredAt.gte(at)).add(
                Condition::any().add(audit_logs::Column::OccurredAt.gt(at)).add(
                    Condition::all()
                        .add(audit_logs::Column::OccurredAt.eq(at))
                        .add(audit_logs::Column::Id.gt(id)),
                ),
            );
        }
        Ok(audit_logs::Entity::find()
            .filter(condition)
            .order_by_asc(audit_logs::Column::OccurredAt)
            .order_by_asc(audit_logs::Column::Id)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(record)
            .collect())
    }

    async fn seal_audit_chain(&self, limit: u64) -> Result<u64, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // A write first: the chain's head row is the lock every sealer queues on.
        audit_chain::Entity::update_many()
            .col_expr(
                audit_chain::Column::HeadSeq,
                Expr::col(audit_chain::Column::HeadSeq),
            )
            .filter(audit_chain::Column::Id.eq(1))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let head = audit_chain::Entity::find_by_id(1)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let pending = audit_logs::Entity::find()
            .filter(audit_logs::Column::ChainSeq.is_null())
            .order_by_asc(audit_logs::Column::OccurredAt)
            .order_by_asc(audit_logs::Column::Id)
            .limit(limit)
            .all(&transaction)
            .await
            .map_err(db)?;
        if pending.is_empty() {
            transaction.rollback().await.map_err(db)?;
            return Ok(0);
        }
        let (mut seq, mut hash) = (head.head_seq, head.head_hash);
        let count = pending.len() as u64;
        let mut links = Vec::with_capacity(pending.len());
        for row in pending {
            seq += 1;
            let entry = record(row);
            hash = link_hash(&hash, seq, &entry);
            links.push((entry.id, seq, hash.clone()));
        }
        // A statement per 100 links rather than per entry: the pass holds SQLite's one write
        // lock, which the requests writing entries wait for.
        for chunk in links.chunks(100) {
            use sea_orm::sea_query::{CaseStatement, ExprTrait};
            let (mut seqs, mut hashes) = (CaseStatement::new(), CaseStatement::new());
            for (id, seq, hash) in chunk {
                seqs = seqs.case(Expr::col(audit_logs::Column::Id).eq(*id), Expr::val(*seq));
                hashes = hashes.case(Expr::col(audit_logs::Column::Id).eq(*id), Expr::val(hash.clone()));
            }
            audit_logs::Entity::update_many()
                .col_expr(audit_logs::Column::ChainSeq, seqs.into())
                .col_expr(audit_logs::Column::ChainHash, hashes.into())
                .filter(audit_logs::Column::Id.is_in(chunk.iter().map(|(id, _, _)| *id)))
                .exec(&transaction)
                .await
                .map_err(db)?;
        }
        audit_chain::Entity::update_many()
            .col_expr(audit_chain::Column::HeadSeq, Expr::value(seq))
            .col_expr(audit_chain::Column::HeadHash, Expr::value(hash))
            .filter(audit_chain::Column::Id.eq(1))
            .exec(&transaction)
            .await
            .map_err(db)?;
        transaction.commit().await.map_err(db)?;
        Ok(count)
    }

    async fn verify_audit_chain(&self) -> Result<ChainReport, RepositoryError> {
        let connection = self.connection();
        let unsealed = audit_logs::Entity::find()
            .filter(audit_logs::Column::ChainSeq.is_null())
            .count(connection)
            .await
            .map_err(db)?;
        let head = audit_chain::Entity::find_by_id(1)
            .one(connection)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let mut previous = "genesis".to_owned();
        let mut expected_seq = 0_i64;
        let mut first_break = None;
        'walk: loop {
            let batch = audit_logs::Entity::find()
                .filter(audit_logs::Column::ChainSeq.gt(expected_seq))
                .order_by_asc(audit_logs::Column::ChainSeq)
                .limit(VERIFY_BATCH)
                .all(connection)
                .await
                .map_err(db)?;
            if batch.is_empty() {
                break;
            }
            for row in batch {
                expected_seq += 1;
                let seq = row.chain_seq.unwrap_or_default();
                let stored = row.chain_hash.clone().unwrap_or_default();
                let entry = record(row);
                if seq != expected_seq {
                    first_break = Some(ChainBreak {
                        seq: expected_seq,
                        entry_id: None,
                        reason: "an entry is missing".to_owned(),
                    });
                    break 'walk;
                }
                let computed = link_hash(&previous, seq, &entry);
                if computed != stored {
                    first_break = Some(ChainBreak {
                        seq,
                        entry_id: Some(entry.id),
                        reason: "the entry or its hash was changed".to_owned(),
                    });
                    break 'walk;
                }
                previous = stored;
            }
        }
        if first_break.is_none() && (expected_seq != head.head_seq || previous != head.head_hash) {
            first_break = Some(ChainBreak {
                seq: expected_seq + 1,
                entry_id: None,
                reason: "entries at the end of the chain are missing".to_owned(),
            });
        }
        Ok(ChainReport {
            sealed: u64::try_from(expected_seq).unwrap_or_default(),
            unsealed,
            intact: first_break.is_none(),
            first_break,
        })
    }
}
