//! Background jobs: stored, claimed under a lease by one instance at a time, renewed by a
//! heartbeat, ended, cancelled and purged.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend,
    EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use steward_domain::jobs::{
    CancelDecision, JOB_BLOB_CHUNK, JobEnd, JobFilter, JobKind, JobRecord, JobStatus, JobStore, NewJob,
    decide_cancel,
};
use steward_domain::{AuditEntry, PageRequest, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{job_blobs, jobs, org_users};
use crate::error::db_err_to_repository as db;

fn job(row: jobs::Model) -> Result<JobRecord, RepositoryError> {
    Ok(JobRecord {
        id: row.id,
        kind: JobKind::parse(&row.kind)
            .ok_or_else(|| RepositoryError::Other(format!("unknown job kind {:?}", row.kind)))?,
        status: JobStatus::parse(&row.status)
            .ok_or_else(|| RepositoryError::Other(format!("unknown job status {:?}", row.status)))?,
        owner_id: row.owner_id,
        organization_id: row.organization_id,
        parameters: row.parameters,
        progress_done: row.progress_done,
        progress_total: row.progress_total,
        progress_message: row.progress_message,
        result: row.result,
        error: row.error,
        file: row.file_name.zip(row.file_content_type),
        cancel_requested: row.cancel_requested,
        attempts: row.attempts,
        claimed_by: row.claimed_by,
        lease_until: row.lease_until,
        created_at: row.created_at,
        updated_at: row.updated_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
    })
}

async fn insert_blob<C: ConnectionTrait>(
    connection: &C,
    job: Uuid,
    part: &str,
    bytes: &[u8],
) -> Result<(), RepositoryError> {
    for (seq, chunk) in bytes.chunks(JOB_BLOB_CHUNK).enumerate() {
        job_blobs::ActiveModel {
            id: Set(Uuid::now_v7()),
            job_id: Set(job),
            part: Set(part.to_owned()),
            seq: Set(i32::try_from(seq).unwrap_or(i32::MAX)),
            data: Set(chunk.to_vec()),
        }
        .insert(connection)
        .await
        .map_err(db)?;
    }
    Ok(())
}

/// Stores a pending job and its input (inside the caller's transaction).
pub(crate) async fn insert_job<C: ConnectionTrait>(
    connection: &C,
    new: &NewJob,
) -> Result<jobs::Model, RepositoryError> {
    let row = jobs::ActiveModel {
        id: Set(new.id),
        kind: Set(new.kind.as_str().to_owned()),
        status: Set(JobStatus::Pending.as_str().to_owned()),
        owner_id: Set(new.owner_id),
        organization_id: Set(new.organization_id),
        parameters: Set(new.parameters.clone()),
        progress_done: Set(0),
        progress_total: Set(None),
        progress_message: Set(None),
        result: Set(None),
        error: Set(None),
        file_name: Set(None),
        file_content_type: Set(None),
        cancel_requested: Set(false),
        attempts: Set(0),
        claimed_by: Set(None),
        lease_until: Set(None),
        created_at: Set(new.created_at),
        updated_at: Set(new.created_at),
        started_at: Set(None),
        finished_at: Set(None),
    }
    .insert(connection)
    .await
    .map_err(db)?;
    if let Some(input) = &new.input {
        insert_blob(connection, new.id, "input", input).await?;
    }
    Ok(row)
}

/// A statement's claim of one job: the oldest one that is pending or whose lease ran out,
/// outside organizations already running their share, marked running for the instance. (An
/// instance that claims a job it still runs, its heartbeat late, leaves it running: the worker
/// checks its board.)
fn claim_sql(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => {
            r#"UPDATE "jobs" SET "status" = 'running', "claimed_by" = $1, "lease_until" = $2,
                 "started_at" = COALESCE("started_at", $3), "updated_at" = $3, "attempts" = "attempts" + 1
               WHERE "id" = (
                 SELECT j."id" FROM "jobs" j
                 WHERE (j."status" = 'pending' OR (j."status" = 'running' AND j."lease_until" < $3))
                   AND (j."organization_id" IS NULL OR (
                     SELECT COUNT(*) FROM "jobs" r WHERE r."organization_id" = j."organization_id"
                       AND r."status" = 'running' AND r."lease_until" >= $3) < $4)
                 ORDER BY j."created_at", j."id"
                 LIMIT 1
                 FOR UPDATE SKIP LOCKED)
               RETURNING *"#
        }
        _ => {
            r#"UPDATE "jobs" SET "status" = 'running', "claimed_by" = ?1, "lease_until" = ?2,
                 "started_at" = COALESCE("started_at", ?3), "updated_at" = ?3, "attempts" = "attempts" + 1
               WHERE "id" = (
                 SELECT j."id" FROM "jobs" j
                 WHERE (j."status" = 'pending' OR (j."status" = 'running' AND j."lease_until" < ?3))
                   AND (j."organization_id" IS NULL OR (
                     SELECT COUNT(*) FROM "jobs" r WHERE r."organization_id" = j."organization_id"
                       AND r."status" = 'running' AND r."lease_until" >= ?3) < ?4)
                 ORDER BY j."created_at", j."id"
                 LIMIT 1)
               RETURNING *"#
        }
    }
}

/// The owner's jobs waiting or running.
async fn count_open<C: sea_orm::ConnectionTrait>(
    connection: &C,
    owner: Uuid,
) -> Result<u64, RepositoryError> {
    jobs::Entity::find()
        .filter(jobs::Column::OwnerId.eq(owner))
        .filter(jobs::Column::Status.is_in([JobStatus::Pending.as_str(), JobStatus::Running.as_str()]))
        .count(connection)
        .await
        .map_err(db)
}

impl JobStore for Database {
    async fn create_job(&self, new: &NewJob, audit: &AuditEntry) -> Result<JobRecord, RepositoryError> {
        self.create_job_within(new, audit, u64::MAX)
            .await?
            .ok_or(RepositoryError::Conflict("too many open jobs".to_owned()))
    }

    async fn create_job_within(
        &self,
        new: &NewJob,
        audit: &AuditEntry,
        max_open: u64,
    ) -> Result<Option<JobRecord>, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let row = insert_job(&transaction, new).await?;
        // Counted after the writes (this job included), so the owner's lock is held only for
        // the count and the commit, not while the input is written.
        if max_open < u64::MAX {
            crate::user_quotas::lock_user(&transaction, new.owner_id).await?;
            if count_open(&transaction, new.owner_id).await? > max_open {
                transaction.rollback().await.map_err(db)?;
                return Ok(None);
            }
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        job(row).map(Some)
    }

    async fn find_job(&self, id: Uuid) -> Result<Option<JobRecord>, RepositoryError> {
        jobs::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(job)
            .transpose()
    }

    async fn list_jobs(
        &self,
        filter: &JobFilter,
        page: PageRequest,
    ) -> Result<(Vec<JobRecord>, u64), RepositoryError> {
        let mut select = jobs::Entity::find();
        if let Some((user, organizations)) = &filter.visible_to {
            let mut visible = Condition::any().add(jobs::Column::OwnerId.eq(*user));
            if !organizations.is_empty() {
                visible = visible.add(jobs::Column::OrganizationId.is_in(organizations.clone()));
            }
            select = select.filter(visible);
        }
        if let Some(status) = filter.status {
            select = select.filter(jobs::Column::Status.eq(status.as_str()));
        }
        if let Some(kind) = filter.kind {
            select = select.filter(jobs::Column::Kind.eq(kind.as_str()));
        }
        if let Some(organization) = filter.organization {
            select = select.filter(jobs::Column::OrganizationId.eq(organization));
        }
        let total = select.clone().count(self.connection()).await.map_err(db)?;
        let rows = select
            .order_by_desc(jobs::Column::CreatedAt)
            .order_by_desc(jobs::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .all(self.connection())
            .await
            .map_err(db)?;
        let jobs = rows.into_iter().map(job).collect::<Result<Vec<_>, _>>()?;
        Ok((jobs, total))
    }

    async fn claim_job(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        max_running_per_org: u32,
    ) -> Result<Option<JobRecord>, RepositoryError> {
        let backend = self.connection().get_database_backend();
        // SQLite: one writer at a time, so the statement's read and write cannot interleave
        // with another claim. PostgreSQL: SKIP LOCKED hands concurrent claims different rows.
        let row = self
            .writer()
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                claim_sql(backend),
                [
                    instance.into(),
                    lease_until.into(),
                    now.into(),
                    i64::from(max_running_per_org).into(),
                ],
            ))
            .await
            .map_err(db)?;
        match row {
            Some(row) => Ok(Some(job(jobs::Model::from_query_result(&row, "").map_err(db)?)?)),
            None => Ok(None),
        }
    }

    async fn heartbeat_job(
        &self,
        id: Uuid,
        instance: &str,
        lease_until: DateTime<Utc>,
        (done, total, message): (i64, Option<i64>, Option<String>),
    ) -> Result<bool, RepositoryError> {
        let renewed = jobs::Entity::update_many()
            .col_expr(jobs::Column::LeaseUntil, Expr::value(Some(lease_until)))
            .col_expr(jobs::Column::ProgressDone, Expr::value(done))
            .col_expr(jobs::Column::ProgressTotal, Expr::value(total))
            .col_expr(jobs::Column::ProgressMessage, Expr::value(message))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(jobs::Column::Id.eq(id))
            .filter(jobs::Column::ClaimedBy.eq(instance))
            .filter(jobs::Column::Status.eq(JobStatus::Running.as_str()))
            .exec(self.writer())
            .await
            .map_err(db)?;
        if renewed.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        let cancel: Option<bool> = jobs::Entity::find_by_id(id)
            .select_only()
            .column(jobs::Column::CancelRequested)
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(db)?;
        Ok(cancel.unwrap_or(false))
    }

    async fn requeue_job(&self, id: Uuid, instance: &str, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        let requeued = jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, Expr::value(JobStatus::Pending.as_str()))
            .col_expr(jobs::Column::ClaimedBy, Expr::value(Option::<String>::None))
            .col_expr(
                jobs::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .filter(jobs::Column::Id.eq(id))
            .filter(jobs::Column::ClaimedBy.eq(instance))
            .filter(jobs::Column::Status.eq(JobStatus::Running.as_str()))
            .exec(self.writer())
            .await
            .map_err(db)?;
        if requeued.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        Ok(())
    }

    async fn count_open_jobs(&self, owner: Uuid) -> Result<u64, RepositoryError> {
        count_open(self.connection(), owner).await
    }

    async fn finish_job(
        &self,
        id: Uuid,
        instance: &str,
        end: &JobEnd,
        now: DateTime<Utc>,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let (file_name, content_type, bytes) = match &end.file {
            Some((name, content_type, bytes)) => {
                (Some(name.clone()), Some(content_type.clone()), Some(bytes))
            }
            None => (None, None, None),
        };
        let mut update = jobs::Entity::update_many();
        if end.status == JobStatus::Cancelled {
            // Stopped by a request another instance (or this one, in memory) received.
            update = update.col_expr(jobs::Column::CancelRequested, Expr::value(true));
        }
        let ended = update
            .col_expr(jobs::Column::Status, Expr::value(end.status.as_str()))
            .col_expr(jobs::Column::Result, Expr::value(end.result.clone()))
            .col_expr(jobs::Column::Error, Expr::value(end.error.clone()))
            .col_expr(jobs::Column::FileName, Expr::value(file_name))
            .col_expr(jobs::Column::FileContentType, Expr::value(content_type))
            .col_expr(jobs::Column::ProgressDone, Expr::value(end.progress_done))
            .col_expr(jobs::Column::ProgressTotal, Expr::value(end.progress_total))
            .col_expr(
                jobs::Column::ProgressMessage,
                Expr::value(end.progress_message.clone()),
            )
            .col_expr(
                jobs::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(jobs::Column::FinishedAt, Expr::value(Some(now)))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .filter(jobs::Column::Id.eq(id))
            .filter(jobs::Column::ClaimedBy.eq(instance))
            .filter(jobs::Column::Status.eq(JobStatus::Running.as_str()))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if ended.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        if let Some(bytes) = bytes {
            insert_blob(&transaction, id, "result", bytes).await?;
        }
        // The input is spent: an import's body need not outlive the import.
        job_blobs::Entity::delete_many()
            .filter(job_blobs::Column::JobId.eq(id))
            .filter(job_blobs::Column::Part.eq("input"))
            .exec(&transaction)
            .await
            .map_err(db)?;
        transaction.commit().await.map_err(db)
    }

    async fn cancel_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<CancelDecision, RepositoryError> {
        // A job that moves on between the read and the write (claimed, or finished) is decided
        // again; it can move at most twice (pending → running → finished).
        for _ in 0..3 {
            if let Some(decision) = self.try_cancel_job(id, now, audit).await? {
                return Ok(decision);
            }
        }
        Err(RepositoryError::Unavailable(
            "the job kept changing; try again".to_owned(),
        ))
    }

    async fn job_blob_chunks(&self, id: Uuid, part: &str) -> Result<Vec<(i32, u64)>, RepositoryError> {
        let chunks: Vec<(i32, i64)> = job_blobs::Entity::find()
            .select_only()
            .column(job_blobs::Column::Seq)
            .column_as(
                sea_orm::sea_query::Expr::cust(r#"CAST(LENGTH("data") AS BIGINT)"#),
                "size",
            )
            .filter(job_blobs::Column::JobId.eq(id))
            .filter(job_blobs::Column::Part.eq(part))
            .order_by_asc(job_blobs::Column::Seq)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok(chunks
            .into_iter()
            .map(|(seq, size)| (seq, u64::try_from(size).unwrap_or(0)))
            .collect())
    }

    async fn job_blob_chunk(
        &self,
        id: Uuid,
        part: &str,
        seq: i32,
    ) -> Result<Option<Vec<u8>>, RepositoryError> {
        Ok(job_blobs::Entity::find()
            .filter(job_blobs::Column::JobId.eq(id))
            .filter(job_blobs::Column::Part.eq(part))
            .filter(job_blobs::Column::Seq.eq(seq))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(|chunk| chunk.data))
    }

    async fn job_blob(&self, id: Uuid, part: &str) -> Result<Option<Vec<u8>>, RepositoryError> {
        let chunks = job_blobs::Entity::find()
            .filter(job_blobs::Column::JobId.eq(id))
            .filter(job_blobs::Column::Part.eq(part))
            .order_by_asc(job_blobs::Column::Seq)
            .all(self.connection())
            .await
            .map_err(db)?;
        if chunks.is_empty() {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(chunks.iter().map(|chunk| chunk.data.len()).sum());
        for chunk in chunks {
            bytes.extend_from_slice(&chunk.data);
        }
        Ok(Some(bytes))
    }

    async fn organization_roles(&self, user: Uuid) -> Result<Vec<(Uuid, String)>, RepositoryError> {
        org_users::Entity::find()
            .select_only()
            .column(org_users::Column::OrganizationId)
            .column(org_users::Column::Role)
            .filter(org_users::Column::UserId.eq(user))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)
    }

    async fn purge_finished_jobs(&self, before: DateTime<Utc>, limit: u64) -> Result<u64, RepositoryError> {
        let finished = [
            JobStatus::Succeeded.as_str(),
            JobStatus::Failed.as_str(),
            JobStatus::Cancelled.as_str(),
        ];
        let ids = Query::select()
            .column(jobs::Column::Id)
            .from(jobs::Entity)
            .and_where(jobs::Column::Status.is_in(finished))
            .and_where(jobs::Column::FinishedAt.lt(before))
            .limit(limit)
            .to_owned();
        // Reads, then writes: on SQLite the write lock is taken first (BEGIN IMMEDIATE).
        let transaction = self.begin_write().await.map_err(db)?;
        let doomed: Vec<Uuid> = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Id)
            .filter(jobs::Column::Id.in_subquery(ids))
            .into_tuple()
            .all(&transaction)
            .await
            .map_err(db)?;
        if doomed.is_empty() {
            return Ok(0);
        }
        job_blobs::Entity::delete_many()
            .filter(job_blobs::Column::JobId.is_in(doomed.clone()))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let deleted = jobs::Entity::delete_many()
            .filter(jobs::Column::Id.is_in(doomed))
            .exec(&transaction)
            .await
            .map_err(db)?
            .rows_affected;
        transaction.commit().await.map_err(db)?;
        Ok(deleted)
    }
}

impl Database {
    /// One attempt of [`JobStore::cancel_job`]: `None` when the job changed meanwhile.
    async fn try_cancel_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<CancelDecision>, RepositoryError> {
        // Reads, then writes: on SQLite the write lock is taken first (BEGIN IMMEDIATE).
        let transaction = self.begin_write().await.map_err(db)?;
        let Some(current) = jobs::Entity::find_by_id(id).one(&transaction).await.map_err(db)? else {
            return Err(RepositoryError::NotFound);
        };
        let status = JobStatus::parse(&current.status)
            .ok_or_else(|| RepositoryError::Other(format!("unknown job status {:?}", current.status)))?;
        let decision = decide_cancel(status);
        let changed = match decision {
            CancelDecision::CancelNow => {
                jobs::Entity::update_many()
                    .col_expr(jobs::Column::Status, Expr::value(JobStatus::Cancelled.as_str()))
                    .col_expr(jobs::Column::CancelRequested, Expr::value(true))
                    .col_expr(jobs::Column::FinishedAt, Expr::value(Some(now)))
                    .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
                    .filter(jobs::Column::Id.eq(id))
                    .filter(jobs::Column::Status.eq(JobStatus::Pending.as_str()))
                    .exec(&transaction)
                    .await
                    .map_err(db)?
                    .rows_affected
            }
            CancelDecision::AskToStop => {
                jobs::Entity::update_many()
                    .col_expr(jobs::Column::CancelRequested, Expr::value(true))
                    .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
                    .filter(jobs::Column::Id.eq(id))
                    .filter(jobs::Column::Status.eq(JobStatus::Running.as_str()))
                    .exec(&transaction)
                    .await
                    .map_err(db)?
                    .rows_affected
            }
            CancelDecision::AlreadyFinished => return Ok(Some(decision)),
        };
        if changed == 0 {
            return Ok(None);
        }
        if decision == CancelDecision::CancelNow {
            job_blobs::Entity::delete_many()
                .filter(job_blobs::Column::JobId.eq(id))
                .exec(&transaction)
                .await
                .map_err(db)?;
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(Some(decision))
    }
}
