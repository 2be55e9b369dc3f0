//! Background jobs: work that outlives its request (a 50,000-row import, an export), claimed
//! by one instance at a time under a lease, with progress, a result and a way to cancel.
//!
//! The rules here are pure: which states a job moves through, who may see it, and what a
//! cancel request does in each state. The store keeps the jobs and hands them out.

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{AuditEntry, PageRequest, RepositoryError};

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobKind {
    /// `POST /organizations/{orgId}/devices/import?async=true`.
    DeviceImport,
    /// `POST /organizations/{orgId}/users/import?async=true`.
    OrgUserImport,
    /// `POST /users/import?async=true` (operators' account import).
    AccountImport,
    /// `POST /audit-logs/export`: the matching audit entries as a CSV or JSON file.
    AuditExport,
    /// `POST /users/export`: the matching accounts as a CSV or JSON file.
    UserExport,
    /// `POST /organizations/{orgId}/devices/export`: the organization's devices as a file.
    FleetExport,
    /// `POST /groups/export`: every matching group with its members as a file.
    GroupExport,
    /// `POST /config/export`: the instance's configuration as a (possibly sealed) file.
    ConfigExport,
    /// A scheduled report's run, started by the scheduler at its due time: mails the report.
    ScheduledReport,
}

impl JobKind {
    pub const ALL: [JobKind; 9] = [
        JobKind::DeviceImport,
        JobKind::OrgUserImport,
        JobKind::AccountImport,
        JobKind::AuditExport,
        JobKind::UserExport,
        JobKind::FleetExport,
        JobKind::GroupExport,
        JobKind::ConfigExport,
        JobKind::ScheduledReport,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::DeviceImport => "device_import",
            JobKind::OrgUserImport => "org_user_import",
            JobKind::AccountImport => "account_import",
            JobKind::AuditExport => "audit_export",
            JobKind::UserExport => "user_export",
            JobKind::FleetExport => "fleet_export",
            JobKind::GroupExport => "group_export",
            JobKind::ConfigExport => "config_export",
            JobKind::ScheduledReport => "scheduled_report",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// Where a job stands. `pending → running → succeeded | failed | cancelled`; a pending job may
/// be cancelled before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Succeeded, failed or cancelled: nothing changes it any more.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    pub owner_id: Uuid,
    pub organization_id: Option<Uuid>,
    /// What the job was asked (kind-specific: `dryRun`, `onDuplicate`, `format`, filters, and
    /// the owner's token scopes when a personal access token asked).
    pub parameters: serde_json::Value,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub progress_message: Option<String>,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    /// The result file's name and media type, when the job wrote one.
    pub file: Option<(String, String)>,
    pub cancel_requested: bool,
    pub attempts: i32,
    pub claimed_by: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job to store, `pending`, with the bytes it will read.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub owner_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub parameters: serde_json::Value,
    pub input: Option<Vec<u8>>,
    pub created_at: DateTime<Utc>,
}

/// How a running job ends.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub status: JobStatus,
    pub result: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    /// Name, media type and bytes of the result file.
    pub file: Option<(String, String, Vec<u8>)>,
    pub progress_done: i64,
    pub progress_total: Option<i64>,
    pub progress_message: Option<String>,
}

/// Which jobs a listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// `None`: every job (a holder of `jobs:read`). Otherwise jobs owned by this user or
    /// belonging to one of `organizations`.
    pub visible_to: Option<(Uuid, Vec<Uuid>)>,
    pub status: Option<JobStatus>,
    pub kind: Option<JobKind>,
    pub organization: Option<Uuid>,
}

/// What a reader knows about themself when a job's visibility is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobViewer {
    pub user: Uuid,
    /// Holds the system permission `jobs:read` (and the token scope): sees every job.
    pub sees_all: bool,
    /// Organizations whose jobs the user sees: those where their role may manage.
    pub organizations: Vec<Uuid>,
}

/// Whether `viewer` may see `job`: its owner, a manager of its organization, or an operator
/// who sees every job. Everyone else is answered as if the job did not exist.
pub fn may_see_job(viewer: &JobViewer, job: &JobRecord) -> bool {
    viewer.sees_all
        || job.owner_id == viewer.user
        || job
            .organization_id
            .is_some_and(|org| viewer.organizations.contains(&org))
}

/// What a cancel request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelDecision {
    /// Not started: it is cancelled at once and never runs.
    CancelNow,
    /// Running: asked to stop at its next checkpoint (an import rolls back; an export stops).
    AskToStop,
    /// Already finished: nothing to cancel (`409`).
    AlreadyFinished,
}

pub fn decide_cancel(status: JobStatus) -> CancelDecision {
    match status {
        JobStatus::Pending => CancelDecision::CancelNow,
        JobStatus::Running => CancelDecision::AskToStop,
        _ => CancelDecision::AlreadyFinished,
    }
}

/// How often a job is taken up again after its instance stopped holding it; after that many
/// attempts it fails ("interrupted").
pub const MAX_JOB_ATTEMPTS: i32 = 3;

/// Jobs one account may have pending or running at once; more are refused (`429`).
pub const MAX_OPEN_JOBS_PER_OWNER: u64 = 10;

/// The largest result file a job writes; an export past it fails (narrow its filter).
pub const MAX_RESULT_BYTES: usize = 256 << 20;

/// The bytes of one stored part are kept in chunks of at most this many bytes.
pub const JOB_BLOB_CHUNK: usize = 1 << 20;

pub trait JobStore {
    /// Stores a pending job, its input and the audit entry of its submission.
    fn create_job(
        &self,
        job: &NewJob,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<JobRecord, RepositoryError>> + Send;

    /// [`create_job`](Self::create_job) unless the owner already has `max_open` jobs waiting or
    /// running (`None`): counted under the owner's lock in the same transaction, so racing
    /// submissions cannot pass the cap together.
    fn create_job_within(
        &self,
        job: &NewJob,
        audit: &AuditEntry,
        max_open: u64,
    ) -> impl Future<Output = Result<Option<JobRecord>, RepositoryError>> + Send;

    fn find_job(&self, id: Uuid) -> impl Future<Output = Result<Option<JobRecord>, RepositoryError>> + Send;

    /// One page of the jobs `filter` shows, newest first, and how many it shows in all.
    fn list_jobs(
        &self,
        filter: &JobFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<JobRecord>, u64), RepositoryError>> + Send;

    /// Takes the oldest job that is pending, or running under a lease that ran out (its
    /// instance died), for `instance` until `lease_until`: one conditional statement, so of
    /// several instances exactly one gets each job. Skips organizations that already run
    /// `max_running_per_org` jobs.
    fn claim_job(
        &self,
        instance: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        max_running_per_org: u32,
    ) -> impl Future<Output = Result<Option<JobRecord>, RepositoryError>> + Send;

    /// Renews the lease of a job `instance` holds and records its progress. Answers whether
    /// someone asked it to stop; `NotFound` when the instance no longer holds it.
    fn heartbeat_job(
        &self,
        id: Uuid,
        instance: &str,
        lease_until: DateTime<Utc>,
        progress: (i64, Option<i64>, Option<String>),
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Puts a job `instance` holds back to pending (a passing failure: the database was busy),
    /// for any instance to take up again. Its attempts count on.
    fn requeue_job(
        &self,
        id: Uuid,
        instance: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// How many of `owner`'s jobs are pending or running.
    fn count_open_jobs(&self, owner: Uuid) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    /// Ends a job `instance` holds, with its file if any. `NotFound` when it no longer holds it.
    fn finish_job(
        &self,
        id: Uuid,
        instance: &str,
        end: &JobEnd,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Applies [`decide_cancel`] to the job as stored now (one conditional statement per
    /// outcome, so a job that just finished is not marked cancelled). Answers the decision.
    fn cancel_job(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<CancelDecision, RepositoryError>> + Send;

    /// The chunks of a part of a job, in order: each chunk's number and size (no bytes), so a
    /// file can be sent chunk by chunk.
    fn job_blob_chunks(
        &self,
        id: Uuid,
        part: &str,
    ) -> impl Future<Output = Result<Vec<(i32, u64)>, RepositoryError>> + Send;

    /// One chunk's bytes (`None` once the job and its files were deleted).
    fn job_blob_chunk(
        &self,
        id: Uuid,
        part: &str,
        seq: i32,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, RepositoryError>> + Send;

    /// The bytes of a part (`input` or `result`) of a job, in order.
    fn job_blob(
        &self,
        id: Uuid,
        part: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, RepositoryError>> + Send;

    /// Every organization `user` belongs to, with their role there (`owner`, `admin`, …).
    fn organization_roles(
        &self,
        user: Uuid,
    ) -> impl Future<Output = Result<Vec<(Uuid, String)>, RepositoryError>> + Send;

    /// Deletes finished jobs (and their files) that finished before `before`, up to `limit`;
    /// answers how many.
    fn purge_finished_jobs(
        &self,
        before: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(owner: Uuid, organization: Option<Uuid>) -> JobRecord {
        let now = Utc::now();
        JobRecord {
            id: Uuid::now_v7(),
            kind: JobKind::DeviceImport,
            status: JobStatus::Pending,
            owner_id: owner,
            organization_id: organization,
            parameters: serde_json::json!({}),
            progress_done: 0,
            progress_total: None,
            progress_message: None,
            result: None,
            error: None,
            file: None,
            cancel_requested: false,
            attempts: 0,
            claimed_by: None,
            lease_until: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn owners_managers_and_operators_see_a_job_and_nobody_else() {
        let (owner, other, org, elsewhere) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let job = job(owner, Some(org));
        let viewer = |user, sees_all, organizations: Vec<Uuid>| JobViewer {
            user,
            sees_all,
            organizations,
        };
        assert!(may_see_job(&viewer(owner, false, vec![]), &job));
        assert!(may_see_job(&viewer(other, false, vec![org]), &job));
        assert!(may_see_job(&viewer(other, true, vec![]), &job));
        assert!(!may_see_job(&viewer(other, false, vec![elsewhere]), &job));
        let personal = self::job(owner, None);
        assert!(!may_see_job(&viewer(other, false, vec![org]), &personal));
    }

    #[test]
    fn cancelling_depends_on_where_the_job_stands() {
        assert_eq!(decide_cancel(JobStatus::Pending), CancelDecision::CancelNow);
        assert_eq!(decide_cancel(JobStatus::Running), CancelDecision::AskToStop);
        for finished in [JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled] {
            assert!(finished.is_finished());
            assert_eq!(decide_cancel(finished), CancelDecision::AlreadyFinished);
        }
        for kind in JobKind::ALL {
            assert_eq!(JobKind::parse(kind.as_str()), Some(kind));
        }
        // Every kind is listed (a kind missing from ALL could be stored but not read back).
        let listed = |kind: JobKind| JobKind::ALL.contains(&kind);
        for kind in [
            JobKind::DeviceImport,
            JobKind::OrgUserImport,
            JobKind::AccountImport,
            JobKind::AuditExport,
            JobKind::UserExport,
            JobKind::FleetExport,
            JobKind::GroupExport,
            JobKind::ConfigExport,
            JobKind::ScheduledReport,
        ] {
            // Adding a kind breaks this match until it is added to the list above and ALL.
            match kind {
                JobKind::DeviceImport
                | JobKind::OrgUserImport
                | JobKind::AccountImport
                | JobKind::AuditExport
                | JobKind::UserExport
                | JobKind::FleetExport
                | JobKind::GroupExport
                | JobKind::ConfigExport
                | JobKind::ScheduledReport => assert!(listed(kind), "{kind:?}"),
            }
        }
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
        }
    }
}
