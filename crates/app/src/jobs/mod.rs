//! Background jobs as their submitters and operators see them: submitted (answered at once
//! with the job), listed, read with their progress, cancelled, and their result files fetched.
//! Who sees a job is [`steward_domain::jobs::may_see_job`]: its owner, managers of its
//! organization, holders of `jobs:read`; everyone else gets 404.

mod runner;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use steward_domain::jobs::{
    CancelDecision, JobFilter, JobKind, JobRecord, JobStatus, JobViewer, MAX_OPEN_JOBS_PER_OWNER, NewJob,
    may_see_job,
};
use steward_domain::organizations::{OrgPermission, OrgRole};
use steward_domain::rbac::Permission;
use steward_domain::{Actor, AuditAction, AuditEntry, PageRequest, RequestOrigin};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::error::AppError;
use crate::principal::{Credential, Principal};
use crate::steward::{Steward, Store};

pub(crate) use runner::AbortOnDrop;
pub use runner::run_jobs;

/// How long a cancel waits for a job running on this instance to stop before it answers.
const LOCAL_STOP_WAIT: Duration = Duration::from_secs(15);

/// How this instance runs jobs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// A job running longer fails (`STEWARD_JOB_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// Time limits of their own for some kinds (`STEWARD_JOB_TIMEOUTS`).
    pub timeouts: std::collections::BTreeMap<JobKind, Duration>,
    /// How long a claim lasts without a heartbeat; a job whose instance died is taken over
    /// after it.
    pub lease: Duration,
    /// How often an idle worker looks for work (a job submitted here wakes it at once).
    pub poll: Duration,
    /// Jobs this instance runs at once.
    pub workers: usize,
    /// Jobs of one organization running at once, over every instance.
    pub max_running_per_org: u32,
    /// Finished jobs (and their files) are deleted this long after they finished.
    pub retention: Duration,
}

impl JobSettings {
    /// The time limit of a job of `kind`.
    pub fn timeout_for(&self, kind: JobKind) -> Duration {
        self.timeouts.get(&kind).copied().unwrap_or(self.timeout)
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            timeouts: std::collections::BTreeMap::new(),
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            workers: 2,
            max_running_per_org: 1,
            retention: Duration::from_secs(24 * 3600),
        }
    }
}

/// A running job's progress as this instance knows it, and whether it was asked to stop.
#[derive(Debug, Default)]
pub struct JobProgress {
    done: AtomicI64,
    /// `-1`: unknown.
    total: AtomicI64,
    message: Mutex<Option<String>>,
    stop: AtomicBool,
    halted: AtomicBool,
    timed_out: AtomicBool,
}

impl JobProgress {
    fn new() -> Self {
        Self {
            total: AtomicI64::new(-1),
            ..Self::default()
        }
    }

    pub fn set_total(&self, total: usize) {
        self.total
            .store(i64::try_from(total).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub fn set_done(&self, done: usize) {
        self.done
            .store(i64::try_from(done).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    pub fn set_message(&self, message: &str) {
        if let Ok(mut slot) = self.message.lock() {
            *slot = Some(message.to_owned());
        }
    }

    /// Whether someone asked the job to stop.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// A checkpoint at `done` units: answers whether to go on; when not, the job stopped here
    /// and what it did is undone (an import's transaction is dropped).
    pub fn checkpoint(&self, done: usize) -> bool {
        self.set_done(done);
        if self.stopping() {
            self.halted.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Whether the work stopped at a checkpoint (and so wrote nothing).
    pub fn halted(&self) -> bool {
        self.halted.load(Ordering::Relaxed)
    }

    /// The job reached its time limit: it is asked to stop, and ends failed.
    fn time_out(&self) {
        self.timed_out.store(true, Ordering::Relaxed);
        self.ask_to_stop();
    }

    fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    fn ask_to_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn snapshot(&self) -> (i64, Option<i64>, Option<String>) {
        let total = self.total.load(Ordering::Relaxed);
        (
            self.done.load(Ordering::Relaxed),
            (total >= 0).then_some(total),
            self.message.lock().ok().and_then(|m| m.clone()),
        )
    }
}

/// This instance's jobs: its name (which holds leases), the jobs it runs now, and the bell that
/// wakes its workers when a job is submitted here.
#[derive(Debug)]
pub struct JobBoard {
    pub settings: JobSettings,
    instance: String,
    running: Mutex<HashMap<Uuid, Arc<JobProgress>>>,
    wake: Notify,
}

impl Default for JobBoard {
    fn default() -> Self {
        Self::new(JobSettings::default())
    }
}

impl JobBoard {
    pub fn new(settings: JobSettings) -> Self {
        Self {
            settings,
            instance: format!("steward-{}", Uuid::now_v7()),
            running: Mutex::new(HashMap::new()),
            wake: Notify::new(),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Wakes this instance's workers (a job was stored here by something other than `submit`).
    pub fn wake_workers(&self) {
        self.wake.notify_one();
    }

    fn progress(&self, job: Uuid) -> Option<Arc<JobProgress>> {
        self.running.lock().ok()?.get(&job).cloned()
    }

    fn start(&self, job: Uuid) -> Arc<JobProgress> {
        let progress = Arc::new(JobProgress::new());
        if let Ok(mut running) = self.running.lock() {
            running.insert(job, Arc::clone(&progress));
        }
        progress
    }

    fn end(&self, job: Uuid) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(&job);
        }
    }
}

/// An organization import's body and options, as submitted (devices or users).
#[derive(Debug, Clone)]
pub struct DeviceImportRequest {
    pub organization: Uuid,
    pub body: Vec<u8>,
    pub csv: bool,
    pub dry_run: bool,
    pub update_duplicates: bool,
}

/// A job's result file.
#[derive(Debug, Clone)]
/// A job's result file, sent chunk by chunk ([`JobService::result_chunk`]) so a large file is
/// never held in memory whole.
pub struct JobFile {
    pub job: Uuid,
    pub name: String,
    pub content_type: String,
    /// Its size in bytes.
    pub length: u64,
    /// Its chunks' numbers, in order.
    pub chunks: Vec<i32>,
}

pub struct JobService<'a, S> {
    steward: &'a Steward<S>,
}

/// The token scopes a job acts within later: a session's (`None`: everything its owner may
/// do) or a personal access token's.
fn scopes_of(principal: &Principal) -> Option<Vec<String>> {
    match &principal.credential {
        Credential::Session { .. } => None,
        Credential::PersonalToken { scopes } => Some(scopes.clone()),
    }
}

impl<'a, S: Store> JobService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// Queues a device import for `owner` (already allowed to manage the organization) and
    /// answers the pending job; the body is checked and imported by a worker.
    pub async fn submit_device_import(
        &self,
        owner: &Principal,
        request: DeviceImportRequest,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        let parameters = json!({
            "format": if request.csv { "csv" } else { "json" },
            "dryRun": request.dry_run,
            "onDuplicate": if request.update_duplicates { "update" } else { "skip" },
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(
            owner.user,
            JobKind::DeviceImport,
            Some(request.organization),
            parameters,
            Some(request.body),
            origin,
        )
        .await
    }

    /// Queues an organization-user import for `owner` (already allowed to manage the
    /// organization's users). All or nothing when it runs; a cancel stops it only before.
    pub async fn submit_org_user_import(
        &self,
        owner: &Principal,
        request: DeviceImportRequest,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        let parameters = json!({
            "format": if request.csv { "csv" } else { "json" },
            "dryRun": request.dry_run,
            "onDuplicate": if request.update_duplicates { "update" } else { "skip" },
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(
            owner.user,
            JobKind::OrgUserImport,
            Some(request.organization),
            parameters,
            Some(request.body),
            origin,
        )
        .await
    }

    /// Queues an operator's account import for `owner` (already holding `users:write`). Rows
    /// are applied one by one; a cancel stops before the next row and the job reports what was
    /// done.
    pub async fn submit_account_import(
        &self,
        owner: &Principal,
        body: Vec<u8>,
        csv: bool,
        options: crate::admin_user_import::AccountImportOptions,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        let parameters = json!({
            "format": if csv { "csv" } else { "json" },
            "dryRun": options.dry_run,
            "onDuplicate": if options.on_duplicate == steward_domain::fleet::OnDuplicate::Update { "update" } else { "skip" },
            "sendInvitations": options.invite,
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(
            owner.user,
            JobKind::AccountImport,
            None,
            parameters,
            Some(body),
            origin,
        )
        .await
    }

    /// Queues an export of the audit entries matching `filter` for `owner` (already holding
    /// `audit:export`), as CSV or JSON; the job's file is the export.
    pub async fn submit_audit_export(
        &self,
        owner: &Principal,
        filter: &steward_domain::audit_log::AuditFilter,
        csv: bool,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        // Without an end, the export ends where the trail stood when it was asked for.
        let mut filter = filter.clone();
        filter.to.get_or_insert_with(Utc::now);
        let parameters = json!({
            "format": if csv { "csv" } else { "json" },
            "filter": filter,
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(owner.user, JobKind::AuditExport, None, parameters, None, origin)
            .await
    }

    /// Queues an export of the accounts matching `filter` for `owner` (already holding
    /// `users:read`), as CSV or JSON; the job's file is the export.
    pub async fn submit_user_export(
        &self,
        owner: &Principal,
        filter: &steward_domain::accounts::UserFilter,
        csv: bool,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        let parameters = json!({
            "format": if csv { "csv" } else { "json" },
            "filter": filter,
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(owner.user, JobKind::UserExport, None, parameters, None, origin)
            .await
    }

    /// Queues an export of every group `filter` selects, with its members, for `owner` (who
    /// holds `groups:read`); the job's file is the export.
    pub async fn submit_group_export(
        &self,
        owner: &Principal,
        filter: &steward_domain::group_admin::GroupFilter,
        csv: bool,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        let parameters = json!({
            "format": if csv { "csv" } else { "json" },
            "filter": crate::groups::export::filter_to_json(filter),
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(owner.user, JobKind::GroupExport, None, parameters, None, origin)
            .await
    }

    /// Queues an export of `organization`'s devices matching `query` (its page ignored) for
    /// `owner` (already allowed to view the organization); the job's file is the export.
    pub async fn submit_fleet_export(
        &self,
        owner: &Principal,
        organization: Uuid,
        query: &steward_domain::fleet::FleetQuery,
        csv: bool,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        let parameters = json!({
            "format": if csv { "csv" } else { "json" },
            "filter": query,
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(
            owner.user,
            JobKind::FleetExport,
            Some(organization),
            parameters,
            None,
            origin,
        )
        .await
    }

    /// Queues an export of the configuration's `include` categories for `owner` (who holds
    /// `config:manage`); with a passphrase the file is sealed and holds webhook secrets. The
    /// passphrase waits as the job's input, sealed with this instance's key, and is never shown.
    pub async fn submit_config_export(
        &self,
        owner: &Principal,
        include: &std::collections::BTreeSet<steward_domain::config_backup::Category>,
        passphrase: Option<&str>,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        if let Some(passphrase) = passphrase {
            crate::config_backup::check_passphrase(passphrase)?;
        }
        let input = match passphrase {
            None => None,
            Some(passphrase) => Some(
                self.steward
                    .auth
                    .secret_box()
                    .seal(passphrase.as_bytes(), crate::config_backup::PASSPHRASE_CONTEXT)
                    .map_err(|_| AppError::internal())?
                    .into_bytes(),
            ),
        };
        let parameters = json!({
            "include": include,
            "sealed": passphrase.is_some(),
            "scopes": scopes_of(owner),
            "origin": {"ip": origin.ip_address, "userAgent": origin.user_agent, "requestId": origin.request_id, "session": origin.session.get()},
        });
        self.submit(owner.user, JobKind::ConfigExport, None, parameters, input, origin)
            .await
    }

    async fn submit(
        &self,
        owner: Uuid,
        kind: JobKind,
        organization: Option<Uuid>,
        parameters: serde_json::Value,
        input: Option<Vec<u8>>,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        // Asked first to spare writing the input of a job that would be refused.
        if self.steward.store.count_open_jobs(owner).await? >= MAX_OPEN_JOBS_PER_OWNER {
            return Err(too_many_jobs());
        }
        let job = NewJob {
            id: Uuid::now_v7(),
            kind,
            owner_id: owner,
            organization_id: organization,
            parameters,
            input,
            created_at: Utc::now(),
        };
        let mut audit = AuditEntry::new(Actor::user(owner), AuditAction::known("job.submitted"), "job")
            .resource_id(job.id)
            .change(None, Some(json!({"kind": kind.as_str()})))
            .origin(origin.clone());
        if let Some(organization) = organization {
            audit = audit.organization(organization);
        }
        // Asked again in the writing transaction, under the owner's lock: racing submissions.
        let stored = self
            .steward
            .store
            .create_job_within(&job, &audit, MAX_OPEN_JOBS_PER_OWNER)
            .await?
            .ok_or_else(too_many_jobs)?;
        self.steward.jobs.wake.notify_one();
        Ok(stored)
    }

    /// What `principal` may see of the jobs: all of them, or their own and those of the
    /// organizations they manage.
    async fn viewer(&self, principal: Principal) -> Result<JobViewer, AppError> {
        let principal = self.steward.auth.with_roles(principal).await?;
        let organizations = self
            .steward
            .store
            .organization_roles(principal.user)
            .await?
            .into_iter()
            .filter(|(_, role)| OrgRole::parse(role).is_some_and(|role| role.allows(OrgPermission::Manage)))
            .map(|(organization, _)| organization)
            .collect();
        // A token sees its organizations' jobs only if it may read the organizations.
        let organizations = if principal.has_scope("organizations:read") {
            organizations
        } else {
            Vec::new()
        };
        Ok(JobViewer {
            user: principal.user,
            sees_all: principal.allows(Permission::JobsRead),
            organizations,
        })
    }

    /// The job with its live progress if this instance runs it; 404 for those who may not see it.
    pub async fn get(&self, principal: Principal, id: Uuid) -> Result<JobRecord, AppError> {
        let viewer = self.viewer(principal).await?;
        let mut job = self
            .steward
            .store
            .find_job(id)
            .await?
            .filter(|job| may_see_job(&viewer, job))
            .ok_or_else(|| AppError::not_found("no such job"))?;
        if let Some(progress) = self.steward.jobs.progress(id) {
            let (done, total, message) = progress.snapshot();
            job.progress_done = done;
            job.progress_total = total.or(job.progress_total);
            job.progress_message = message.or(job.progress_message);
        }
        Ok(job)
    }

    /// The jobs `principal` sees, newest first.
    pub async fn list(
        &self,
        principal: Principal,
        mut filter: JobFilter,
        page: PageRequest,
    ) -> Result<(Vec<JobRecord>, u64), AppError> {
        let viewer = self.viewer(principal).await?;
        filter.visible_to = (!viewer.sees_all).then_some((viewer.user, viewer.organizations));
        Ok(self.steward.store.list_jobs(&filter, page).await?)
    }

    /// The job's result file; 404 when it has none (yet).
    pub async fn result(
        &self,
        principal: Principal,
        id: Uuid,
        origin: &RequestOrigin,
    ) -> Result<JobFile, AppError> {
        let job = self.get(principal.clone(), id).await?;
        let Some((name, content_type)) = job.file.clone() else {
            return Err(AppError::not_found("this job has no result file"));
        };
        // Seeing a job is not enough to read its file: the reader needs, now, what the export
        // itself needs (a demoted owner or a token with only `jobs:read` gets 403).
        let reader = self.steward.auth.with_roles(principal).await?;
        let allowed = match job.kind {
            JobKind::AuditExport => reader.allows(Permission::AuditExport),
            JobKind::UserExport => reader.allows(Permission::UsersRead),
            JobKind::GroupExport => reader.allows(Permission::GroupsRead),
            JobKind::ConfigExport => reader.allows(Permission::ConfigManage),
            JobKind::FleetExport => match job.organization_id {
                Some(organization) => crate::organizations::OrganizationService::new(self.steward)
                    .standing(
                        reader.clone(),
                        organization,
                        OrgPermission::View,
                        Permission::OrganizationsRead,
                    )
                    .await
                    .is_ok(),
                None => false,
            },
            JobKind::DeviceImport | JobKind::OrgUserImport | JobKind::AccountImport => true,
            // A report run writes no file.
            JobKind::ScheduledReport => false,
        };
        if !allowed {
            return Err(AppError::forbidden(
                "reading this file needs the permission its export needs (audit:export, users:read, or viewing the organization)",
            ));
        }
        let chunks = self.steward.store.job_blob_chunks(id, "result").await?;
        if chunks.is_empty() {
            return Err(AppError::not_found("this job has no result file"));
        }
        let length = chunks
            .iter()
            .map(|(_, size)| *size)
            .fold(0u64, u64::saturating_add);
        let mut audit = AuditEntry::new(
            Actor::user(reader.user),
            AuditAction::known("job.result_downloaded"),
            "job",
        )
        .resource_id(id)
        .change(None, Some(json!({"kind": job.kind.as_str(), "bytes": length})))
        .origin(origin.clone());
        if let Some(organization) = job.organization_id {
            audit = audit.organization(organization);
        }
        self.steward.store.record(&audit).await?;
        Ok(JobFile {
            job: id,
            name,
            content_type,
            length,
            chunks: chunks.into_iter().map(|(seq, _)| seq).collect(),
        })
    }

    /// One chunk of a result file [`result`](Self::result) allowed; an error when the file is
    /// gone meanwhile (the job was deleted), so a download ends short rather than wrong.
    pub async fn result_chunk(&self, job: Uuid, seq: i32) -> Result<Vec<u8>, AppError> {
        self.steward
            .store
            .job_blob_chunk(job, "result", seq)
            .await?
            .ok_or_else(|| AppError::not_found("the file was deleted while it was read"))
    }

    /// Cancels a job: a pending one at once, a running one at its next checkpoint (an import
    /// then writes nothing). Its owner, managers of its organization and holders of
    /// `jobs:write` may; a finished job is `409`.
    pub async fn cancel(
        &self,
        principal: Principal,
        id: Uuid,
        origin: &RequestOrigin,
    ) -> Result<JobRecord, AppError> {
        let user = principal.user;
        let operator = self
            .steward
            .auth
            .with_roles(principal.clone())
            .await?
            .allows(Permission::JobsWrite);
        let job = self.get(principal, id).await?;
        let viewer_may_cancel = operator
            || job.owner_id == user
            || job.organization_id.is_some() && self.viewer_manages(user, job.organization_id).await?;
        if !viewer_may_cancel {
            return Err(AppError::forbidden("cancelling another's job needs jobs:write"));
        }
        let mut audit = AuditEntry::new(Actor::user(user), AuditAction::known("job.cancelled"), "job")
            .resource_id(id)
            .change(Some(json!({"status": job.status.as_str()})), None)
            .origin(origin.clone());
        if let Some(organization) = job.organization_id {
            audit = audit.organization(organization);
        }
        // Running here: told at once, in memory, and answered once it stopped (on SQLite a
        // running import holds the write lock, so a stored request would wait for it anyway).
        if let Some(progress) = self.steward.jobs.progress(id) {
            progress.ask_to_stop();
            let deadline = std::time::Instant::now() + LOCAL_STOP_WAIT;
            while self.steward.jobs.progress(id).is_some() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let now = self
                .steward
                .store
                .find_job(id)
                .await?
                .ok_or_else(|| AppError::not_found("no such job"))?;
            match now.status {
                JobStatus::Cancelled => {
                    self.steward.store.record(&audit).await?;
                    return Ok(now);
                }
                JobStatus::Succeeded | JobStatus::Failed => {
                    return Err(AppError::conflict(
                        "the job finished before it could stop; see its result",
                    ));
                }
                // Still running (or requeued): ask through the database as well.
                JobStatus::Pending | JobStatus::Running => {}
            }
        }
        match self.steward.store.cancel_job(id, Utc::now(), &audit).await? {
            CancelDecision::AlreadyFinished => {
                return Err(AppError::conflict(
                    "the job has finished; there is nothing to cancel",
                ));
            }
            CancelDecision::AskToStop | CancelDecision::CancelNow => {}
        }
        self.steward
            .store
            .find_job(id)
            .await?
            .ok_or_else(|| AppError::not_found("no such job"))
    }

    async fn viewer_manages(&self, user: Uuid, organization: Option<Uuid>) -> Result<bool, AppError> {
        let Some(organization) = organization else {
            return Ok(false);
        };
        Ok(self
            .steward
            .store
            .organization_roles(user)
            .await?
            .into_iter()
            .any(|(org, role)| {
                org == organization
                    && OrgRole::parse(&role).is_some_and(|role| role.allows(OrgPermission::Manage))
            }))
    }
}

/// The refusal of a job past [`MAX_OPEN_JOBS_PER_OWNER`].
fn too_many_jobs() -> AppError {
    AppError::new(
        crate::error::ErrorKind::RateLimited,
        format!(
            "at most {MAX_OPEN_JOBS_PER_OWNER} of your jobs may wait or run at once; wait for one to finish or cancel one"
        ),
    )
    .with_retry_after(10)
    .with_limit("open_jobs")
}
