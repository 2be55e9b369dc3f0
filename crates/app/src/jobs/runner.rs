//! The worker every instance runs: claims jobs (one conditional statement, so each job runs on
//! one instance), renews their lease while they run, takes over jobs whose instance died, and
//! records how each ended.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use steward_domain::RequestOrigin;
use steward_domain::jobs::{JobEnd, JobKind, JobRecord, JobStatus, MAX_JOB_ATTEMPTS};
use steward_domain::organizations::OrgPermission;
use steward_domain::rbac::Permission;
use tokio::task::JoinSet;

use super::JobProgress;
use crate::error::{AppError, ErrorKind};
use crate::fleet::FleetService;
use crate::fleet::import::{parse_csv, parse_json};
use crate::organizations::OrganizationService;
use crate::principal::{Credential, Principal};
use crate::steward::{Steward, Store};

/// What a finished job leaves: a summary and maybe a file (name, media type, bytes).
struct JobOutput {
    summary: serde_json::Value,
    file: Option<(String, String, Vec<u8>)>,
}

/// Runs jobs until the task is dropped: up to `settings.workers` at once on this instance.
pub async fn run_jobs<S: Store>(steward: Steward<S>) {
    let settings = steward.jobs.settings.clone();
    let mut running = JoinSet::new();
    let mut last_purge: Option<std::time::Instant> = None;
    steward
        .health
        .vitals
        .start(crate::health::Worker::Jobs, settings.poll);
    loop {
        while running.try_join_next().is_some() {}
        if last_purge.is_none_or(|at| at.elapsed() > PURGE_EVERY) {
            last_purge = Some(std::time::Instant::now());
            purge(&steward).await;
        }
        let mut claimed = false;
        let mut reached = true;
        if running.len() < settings.workers.max(1) {
            let now = Utc::now();
            let lease_until =
                now + chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(30));
            match steward
                .store
                .claim_job(
                    steward.jobs.instance(),
                    now,
                    lease_until,
                    settings.max_running_per_org.max(1),
                )
                .await
            {
                // Its own job whose heartbeat was late (on SQLite a long import holds the write
                // lock): still running here, so the claim only renewed its lease.
                Ok(Some(job)) if steward.jobs.progress(job.id).is_some() => {}
                Ok(Some(job)) => {
                    claimed = true;
                    let steward = steward.clone();
                    running.spawn(async move { run_one(steward, job).await });
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not claim a job");
                    reached = false;
                }
            }
        }
        // A pass counts when the queue could be read, or every worker is busy.
        if reached {
            steward.health.vitals.beat(crate::health::Worker::Jobs);
        }
        if claimed {
            continue;
        }
        tokio::select! {
            _ = steward.jobs.wake.notified() => {}
            _ = tokio::time::sleep(settings.poll) => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

/// How often an instance deletes expired finished jobs.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Deletes finished jobs (and their files) older than the retention, in batches.
async fn purge<S: Store>(steward: &Steward<S>) {
    let retention =
        chrono::Duration::from_std(steward.jobs.settings.retention).unwrap_or(chrono::Duration::hours(24));
    let before = Utc::now() - retention;
    loop {
        match steward.store.purge_finished_jobs(before, 500).await {
            Ok(500) => continue,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(%error, "could not delete expired jobs");
                return;
            }
        }
    }
}

/// Aborts the task it holds when dropped: a job's heartbeat never outlives the job, whether it
/// ends, panics or its worker is stopped.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Takes a job off the board of running jobs when dropped.
struct OnBoard {
    board: Arc<super::JobBoard>,
    job: uuid::Uuid,
}

impl Drop for OnBoard {
    fn drop(&mut self) {
        self.board.end(self.job);
    }
}

async fn run_one<S: Store>(steward: Steward<S>, job: JobRecord) {
    let board = Arc::clone(&steward.jobs);
    let progress = board.start(job.id);
    let _on_board = OnBoard {
        board: Arc::clone(&board),
        job: job.id,
    };
    let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
        steward.clone(),
        job.id,
        Arc::clone(&progress),
    )));
    // The time limit asks the job to stop at its next checkpoint, so it ends between rows or
    // batches (an account import then reports what it applied); only a job that does not reach
    // a checkpoint within a grace period after it is dropped where it stands.
    let limit = board.settings.timeout_for(job.kind);
    let deadline = AbortOnDrop(tokio::spawn({
        let progress = Arc::clone(&progress);
        async move {
            tokio::time::sleep(limit).await;
            progress.time_out();
        }
    }));
    let end = if job.attempts > MAX_JOB_ATTEMPTS {
        failed(
            &progress,
            "the job was interrupted too often (its instance stopped while running it)",
        )
    } else if job.kind == JobKind::AccountImport && job.attempts > 1 {
        // Rows are applied one by one: running it again from the start would skip the rows
        // the interrupted attempt created (they exist now) without their roles.
        failed(
            &progress,
            "the import was interrupted (its instance stopped); check which accounts exist and import the rest again",
        )
    } else if job.cancel_requested {
        cancelled(&progress, None)
    } else {
        // The outcome is what the work answered: a cancel that arrives after the import's last
        // checkpoint changes nothing (the import committed; the job succeeded).
        match tokio::time::timeout(limit + TIMEOUT_GRACE, execute(&steward, &job, &progress)).await {
            Err(_) => failed(
                &progress,
                "the job ran longer than its time limit (STEWARD_JOB_TIMEOUT_SECS, or STEWARD_JOB_TIMEOUTS for its kind)",
            ),
            Ok(Ok(output)) if progress.timed_out() => {
                let mut end = failed(
                    &progress,
                    "the job ran longer than its time limit (STEWARD_JOB_TIMEOUT_SECS, or STEWARD_JOB_TIMEOUTS for its kind); the result says what it did",
                );
                end.result = Some(output.summary);
                end
            }
            Ok(Err(_)) if progress.timed_out() => failed(
                &progress,
                "the job ran longer than its time limit (STEWARD_JOB_TIMEOUT_SECS, or STEWARD_JOB_TIMEOUTS for its kind)",
            ),
            // Stopped at a checkpoint after doing part of the work, and said what it did.
            Ok(Ok(output)) if progress.halted() => cancelled(&progress, Some(output.summary)),
            Ok(Ok(output)) => {
                let (done, total, message) = progress.snapshot();
                JobEnd {
                    status: JobStatus::Succeeded,
                    result: Some(output.summary),
                    error: None,
                    file: output.file,
                    progress_done: done,
                    progress_total: total,
                    progress_message: message,
                }
            }
            Ok(Err(_)) if progress.halted() => cancelled(&progress, None),
            Ok(Err(error)) if error.kind == ErrorKind::Unavailable => {
                // The database could not take the work now (on SQLite, another writer held
                // the lock past the busy timeout): back to pending, for a later attempt.
                drop(heartbeat);
                if let Err(error) = steward
                    .store
                    .requeue_job(job.id, board.instance(), Utc::now())
                    .await
                {
                    tracing::warn!(%error, job = %job.id, "could not put a job back in the queue");
                }
                return;
            }
            Ok(Err(error)) => {
                let (done, total, message) = progress.snapshot();
                JobEnd {
                    status: JobStatus::Failed,
                    result: None,
                    error: Some(error_json(&error)),
                    file: None,
                    progress_done: done,
                    progress_total: total,
                    progress_message: message,
                }
            }
        }
    };
    drop(deadline);
    drop(heartbeat);
    // Recorded with a few retries (a busy database); a job left `running` is taken up again
    // once its lease runs out, by this instance too.
    for attempt in 0..5u32 {
        match steward
            .store
            .finish_job(job.id, board.instance(), &end, Utc::now())
            .await
        {
            Ok(()) => return,
            // Another instance took it over (our lease ran out): its outcome counts.
            Err(steward_domain::RepositoryError::NotFound) => {
                tracing::warn!(job = %job.id, "a job's lease was lost before its end was recorded");
                return;
            }
            Err(error) => {
                tracing::warn!(%error, job = %job.id, attempt, "could not record the end of a job");
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
        }
    }
}

/// How long a job that was asked to stop at its time limit has to reach a checkpoint.
const TIMEOUT_GRACE: Duration = Duration::from_secs(60);

/// Renews the lease a third of its length apart and records progress. A cancel request stored
/// by another instance asks the job to stop; so does losing the lease to another instance, or
/// failing to renew it for a whole lease (another instance may take the job over by then).
async fn heartbeat<S: Store>(steward: Steward<S>, job: uuid::Uuid, progress: Arc<JobProgress>) {
    let lease = steward.jobs.settings.lease;
    let every = (lease / 3).max(Duration::from_millis(100));
    let mut renewed = std::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        let lease_until =
            Utc::now() + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::seconds(30));
        match steward
            .store
            .heartbeat_job(job, steward.jobs.instance(), lease_until, progress.snapshot())
            .await
        {
            Ok(cancel) => {
                renewed = std::time::Instant::now();
                if cancel {
                    progress.ask_to_stop();
                }
            }
            Err(steward_domain::RepositoryError::NotFound) => {
                tracing::warn!(%job, "lost the lease of a running job; stopping it");
                progress.ask_to_stop();
                return;
            }
            Err(error) => {
                tracing::warn!(%error, %job, "could not renew a job's lease");
                if renewed.elapsed() >= lease {
                    progress.ask_to_stop();
                    return;
                }
            }
        }
    }
}

fn error_json(error: &AppError) -> serde_json::Value {
    let mut json = json!({
        "message": error.message,
        "details": error
            .details
            .iter()
            .map(|detail| json!({"field": detail.field, "message": detail.message}))
            .collect::<Vec<_>>(),
    });
    if let (Some(quota), Some(object)) = (error.quota, json.as_object_mut()) {
        object.insert(
            "quota".to_owned(),
            json!({"key": quota.key.as_str(), "limit": quota.limit, "used": quota.used}),
        );
    }
    json
}

fn failed(progress: &JobProgress, message: &str) -> JobEnd {
    let (done, total, last) = progress.snapshot();
    JobEnd {
        status: JobStatus::Failed,
        result: None,
        error: Some(json!({"message": message, "details": []})),
        file: None,
        progress_done: done,
        progress_total: total,
        progress_message: last,
    }
}

fn cancelled(progress: &JobProgress, summary: Option<serde_json::Value>) -> JobEnd {
    let (done, total, _) = progress.snapshot();
    let message = if summary.is_some() {
        "cancelled; the result says what was done before it stopped"
    } else {
        "cancelled; nothing was written"
    };
    JobEnd {
        status: JobStatus::Cancelled,
        result: summary,
        error: None,
        file: None,
        progress_done: done,
        progress_total: total,
        progress_message: Some(message.to_owned()),
    }
}

/// The owner as they act in the job: their roles now, within the scopes of the token that
/// submitted it.
async fn acting_owner<S: Store>(steward: &Steward<S>, job: &JobRecord) -> Result<Principal, AppError> {
    let user = steward
        .store
        .find_user(job.owner_id)
        .await?
        .filter(|user| user.is_active())
        .ok_or_else(|| AppError::forbidden("the job's owner can no longer act (locked or deleted)"))?;
    let credential = match job.parameters.get("scopes") {
        Some(serde_json::Value::Array(scopes)) => Credential::PersonalToken {
            scopes: scopes
                .iter()
                .filter_map(|scope| scope.as_str().map(str::to_owned))
                .collect(),
        },
        _ => Credential::Session {
            session: uuid::Uuid::nil(),
        },
    };
    Ok(steward
        .auth
        .with_roles(Principal::new(user.id, credential))
        .await?)
}

fn origin_of(job: &JobRecord) -> RequestOrigin {
    let text = |key: &str| {
        job.parameters
            .get("origin")
            .and_then(|origin| origin.get(key))
            .and_then(|value| value.as_str())
            .map(str::to_owned)
    };
    RequestOrigin {
        ip_address: text("ip"),
        user_agent: text("userAgent"),
        request_id: text("requestId"),
        // The session that submitted the job: its entries join that session's activity.
        session: text("session")
            .and_then(|session| session.parse().ok())
            .map_or_else(Default::default, steward_domain::SessionSlot::known),
    }
}

async fn execute<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    match job.kind {
        JobKind::DeviceImport => device_import(steward, job, progress).await,
        JobKind::OrgUserImport => org_user_import(steward, job, progress).await,
        JobKind::AccountImport => account_import(steward, job, progress).await,
        JobKind::AuditExport => audit_export(steward, job, progress).await,
        JobKind::UserExport => user_export(steward, job, progress).await,
        JobKind::GroupExport => group_export(steward, job, progress).await,
        JobKind::FleetExport => fleet_export(steward, job, progress).await,
        JobKind::ConfigExport => config_export(steward, job, progress).await,
        JobKind::ScheduledReport => Ok(JobOutput {
            summary: crate::reports::ReportService::new(steward).run_job(job).await?,
            file: None,
        }),
    }
}

/// The configuration export, decided on the owner's standing when it runs.
async fn config_export<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    use steward_domain::config_backup::Category;
    let owner = acting_owner(steward, job).await?;
    if !owner.allows(Permission::ConfigManage) {
        return Err(AppError::forbidden(
            "the job's owner no longer holds config:manage",
        ));
    }
    let include: std::collections::BTreeSet<Category> = job
        .parameters
        .get("include")
        .cloned()
        .and_then(|include| serde_json::from_value(include).ok())
        .ok_or_else(|| AppError::validation("the export names no categories"))?;
    let passphrase = if job.parameters.get("sealed").and_then(|sealed| sealed.as_bool()) == Some(true) {
        let sealed = steward
            .store
            .job_blob(job.id, "input")
            .await?
            .ok_or_else(|| AppError::validation("the export's passphrase is gone"))?;
        let sealed = String::from_utf8(sealed).map_err(|_| AppError::internal())?;
        let opened = steward
            .auth
            .secret_box()
            .open(&sealed, crate::config_backup::PASSPHRASE_CONTEXT)
            .map_err(|_| AppError::internal())?;
        Some(String::from_utf8(opened).map_err(|_| AppError::internal())?)
    } else {
        None
    };
    crate::config_backup::check_export(&owner, &include, passphrase.is_some())?;
    progress.set_message("writing the configuration");
    let exported_by = steward
        .store
        .find_user(owner.user)
        .await?
        .map_or_else(|| owner.user.to_string(), |user| user.email);
    use steward_domain::audit::{Actor, AuditAction, AuditEntry};
    let audit = AuditEntry::new(
        Actor::admin(owner.user),
        AuditAction::known("config.exported"),
        "configuration",
    )
    .resource_id(job.id)
    .origin(origin_of(job));
    let file = crate::config_backup::ConfigBackup::new(steward)
        .export(
            &exported_by,
            &include,
            passphrase,
            steward_auth::sealed::KdfCost::default(),
            Some(audit),
        )
        .await?;
    Ok(JobOutput {
        summary: json!({"include": include, "sealed": file.sealed, "checksum": file.checksum, "bytes": file.bytes.len()}),
        file: Some((file.name, "application/json".to_owned(), file.bytes)),
    })
}

/// An export of an organization's devices, page by page into the job's file, decided on the
/// owner's standing when it runs; a cancel stops it at the next page and leaves no file.
async fn fleet_export<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    use crate::fleet::export::{ExportedDevice, fleet_csv_rows, fleet_json_rows};
    use steward_domain::jobs::MAX_RESULT_BYTES;
    const BATCH: u64 = 100;
    let organization = job
        .organization_id
        .ok_or_else(|| AppError::not_found("the job's organization is gone"))?;
    let owner = acting_owner(steward, job).await?;
    if !owner.has_scope(Permission::OrganizationsRead.as_str()) {
        return Err(AppError::forbidden(
            "the token that submitted the job lacks organizations:read",
        ));
    }
    OrganizationService::new(steward)
        .standing(
            owner.clone(),
            organization,
            OrgPermission::View,
            Permission::OrganizationsRead,
        )
        .await?;
    let mut query: steward_domain::fleet::FleetQuery = job
        .parameters
        .get("filter")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| AppError::validation("the export's filter is unreadable"))?
        .ok_or_else(|| AppError::validation("the export has no filter"))?;
    let csv = job.parameters.get("format").and_then(|f| f.as_str()) == Some("csv");
    let fleet = FleetService::new(steward);
    let mut bytes: Vec<u8> = if csv {
        fleet_csv_rows(&[], true).map_err(|_| AppError::internal())?
    } else {
        b"[".to_vec()
    };
    let mut exported = 0usize;
    progress.set_message("writing the devices");
    query.limit = BATCH;
    query.offset = 0;
    loop {
        if !progress.checkpoint(exported) {
            return Err(AppError::conflict("cancelled"));
        }
        let (devices, total) = fleet.fleet(organization, &query).await?;
        progress.set_total(usize::try_from(total).unwrap_or(usize::MAX));
        let last = (devices.len() as u64) < BATCH;
        let rows: Vec<ExportedDevice> = devices.into_iter().map(ExportedDevice::from).collect();
        let chunk = if csv {
            fleet_csv_rows(&rows, false).map_err(|_| AppError::internal())?
        } else {
            fleet_json_rows(&rows, exported == 0).map_err(|_| AppError::internal())?
        };
        if bytes.len() + chunk.len() > MAX_RESULT_BYTES {
            return Err(AppError::new(
                crate::error::ErrorKind::TooLarge,
                "the export passed 256 MiB; narrow it with the fleet list's filters",
            ));
        }
        bytes.extend_from_slice(&chunk);
        exported += rows.len();
        if last {
            break;
        }
        query.offset = query.offset.saturating_add(BATCH);
    }
    if !csv {
        bytes.push(b']');
    }
    progress.set_done(exported);
    progress.set_message("exported");
    let (name, content_type) = if csv {
        ("devices.csv", "text/csv; charset=utf-8")
    } else {
        ("devices.json", "application/json")
    };
    Ok(JobOutput {
        summary: json!({"devices": exported, "format": if csv { "csv" } else { "json" }, "bytes": bytes.len()}),
        file: Some((name.to_owned(), content_type.to_owned(), bytes)),
    })
}

/// An export of accounts, page by page into the job's file; a cancel stops it at the next page
/// and leaves no file.
async fn user_export<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    use crate::user_export::{ExportedUser, user_csv_rows, user_json_rows};
    use steward_domain::jobs::MAX_RESULT_BYTES;
    const BATCH: u64 = 100;
    let owner = acting_owner(steward, job).await?;
    if !owner.allows(Permission::UsersRead) {
        return Err(AppError::forbidden("the job's owner no longer holds users:read"));
    }
    let filter: steward_domain::accounts::UserFilter = job
        .parameters
        .get("filter")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| AppError::validation("the export's filter is unreadable"))?
        .ok_or_else(|| AppError::validation("the export has no filter"))?;
    let csv = job.parameters.get("format").and_then(|f| f.as_str()) == Some("csv");
    let service = crate::admin_users::UserAdminService::new(steward);
    let mut bytes: Vec<u8> = if csv {
        user_csv_rows(&[], true).map_err(|_| AppError::internal())?
    } else {
        b"[".to_vec()
    };
    let mut exported = 0usize;
    progress.set_message("writing the accounts");
    for page in 1.. {
        if !progress.checkpoint(exported) {
            return Err(AppError::conflict("cancelled"));
        }
        let request = steward_domain::PageRequest::parse(Some(page), Some(BATCH))
            .map_err(|_| AppError::new(crate::error::ErrorKind::TooLarge, "the export has too many pages"))?;
        let (rows, total) = service.list(&filter, request).await?;
        progress.set_total(usize::try_from(total).unwrap_or(usize::MAX));
        let last = (rows.len() as u64) < BATCH;
        let users: Vec<ExportedUser> = rows.into_iter().map(ExportedUser::from).collect();
        let chunk = if csv {
            user_csv_rows(&users, false).map_err(|_| AppError::internal())?
        } else {
            user_json_rows(&users, exported == 0).map_err(|_| AppError::internal())?
        };
        if bytes.len() + chunk.len() > MAX_RESULT_BYTES {
            return Err(AppError::new(
                crate::error::ErrorKind::TooLarge,
                "the export passed 256 MiB; narrow it with the listing's filters",
            ));
        }
        bytes.extend_from_slice(&chunk);
        exported += users.len();
        if last {
            break;
        }
    }
    if !csv {
        bytes.push(b']');
    }
    progress.set_done(exported);
    progress.set_message("exported");
    let (name, content_type) = if csv {
        ("users.csv", "text/csv; charset=utf-8")
    } else {
        ("users.json", "application/json")
    };
    Ok(JobOutput {
        summary: json!({"accounts": exported, "format": if csv { "csv" } else { "json" }, "bytes": bytes.len()}),
        file: Some((name.to_owned(), content_type.to_owned(), bytes)),
    })
}

/// An export of groups with their members, a page of 100 groups at a time into the job's file;
/// a cancel stops it at the next page and leaves no file.
async fn group_export<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    use crate::groups::export::{filter_from_json, group_csv_rows, group_json_rows};
    use steward_domain::jobs::MAX_RESULT_BYTES;
    const BATCH: u64 = 100;
    let owner = acting_owner(steward, job).await?;
    if !owner.allows(Permission::GroupsRead) {
        return Err(AppError::forbidden("the job's owner no longer holds groups:read"));
    }
    let filter = filter_from_json(
        job.parameters
            .get("filter")
            .ok_or_else(|| AppError::validation("the export has no filter"))?,
    )?;
    let csv = job.parameters.get("format").and_then(|f| f.as_str()) == Some("csv");
    let service = crate::groups::GroupAdminService::new(&steward.store);
    let mut bytes: Vec<u8> = if csv {
        group_csv_rows(&[], true).map_err(|_| AppError::internal())?
    } else {
        b"[".to_vec()
    };
    let mut exported = 0usize;
    progress.set_message("writing the groups");
    // Page after page along a keyset cursor: groups created or deleted meanwhile neither
    // repeat nor hide others.
    let mut cursor = None;
    loop {
        if !progress.checkpoint(exported) {
            return Err(AppError::conflict("cancelled"));
        }
        let page = service.export_page(&filter, cursor, BATCH).await?;
        if cursor.is_none() {
            progress.set_total(usize::try_from(page.remaining).unwrap_or(usize::MAX));
        }
        let (groups, last) = (page.groups, page.last);
        cursor = page.next;
        let chunk = if csv {
            group_csv_rows(&groups, false).map_err(|_| AppError::internal())?
        } else {
            group_json_rows(&groups, exported == 0).map_err(|_| AppError::internal())?
        };
        if bytes.len() + chunk.len() > MAX_RESULT_BYTES {
            return Err(AppError::new(
                crate::error::ErrorKind::TooLarge,
                "the export passed 256 MiB; narrow it with the listing's filters",
            ));
        }
        bytes.extend_from_slice(&chunk);
        exported += groups.len();
        if last {
            break;
        }
    }
    if !csv {
        bytes.push(b']');
    }
    progress.set_done(exported);
    progress.set_message("exported");
    let (name, content_type) = if csv {
        ("groups.csv", "text/csv; charset=utf-8")
    } else {
        ("groups.json", "application/json")
    };
    Ok(JobOutput {
        summary: json!({"groups": exported, "format": if csv { "csv" } else { "json" }, "bytes": bytes.len()}),
        file: Some((name.to_owned(), content_type.to_owned(), bytes)),
    })
}

/// An export of audit entries, batch by batch into the job's file; a cancel stops it at the
/// next batch and leaves no file.
async fn audit_export<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    use steward_domain::jobs::MAX_RESULT_BYTES;
    let owner = acting_owner(steward, job).await?;
    if !owner.allows(Permission::AuditExport) {
        return Err(AppError::forbidden(
            "the job's owner no longer holds audit:export",
        ));
    }
    let filter: steward_domain::audit_log::AuditFilter = job
        .parameters
        .get("filter")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|_| AppError::validation("the export's filter is unreadable"))?
        .unwrap_or_default();
    let csv = job.parameters.get("format").and_then(|f| f.as_str()) == Some("csv");
    let mut export = crate::audit::AuditService::new(steward).export(filter);
    let mut bytes: Vec<u8> = if csv {
        crate::audit::csv_rows(&[], true).map_err(|_| AppError::internal())?
    } else {
        b"[".to_vec()
    };
    let mut entries = 0usize;
    progress.set_message("writing the entries");
    loop {
        if !progress.checkpoint(entries) {
            return Err(AppError::conflict("cancelled"));
        }
        let batch = export.next_batch().await?;
        if batch.is_empty() {
            break;
        }
        let chunk = if csv {
            crate::audit::csv_rows(&batch, false).map_err(|_| AppError::internal())?
        } else {
            crate::audit::json_rows(&batch, entries == 0).map_err(|_| AppError::internal())?
        };
        if bytes.len() + chunk.len() > MAX_RESULT_BYTES {
            return Err(AppError::new(
                crate::error::ErrorKind::TooLarge,
                "the export passed 256 MiB; narrow it (from/to, action, organizationId)",
            ));
        }
        bytes.extend_from_slice(&chunk);
        entries += batch.len();
    }
    if !csv {
        bytes.push(b']');
    }
    progress.set_done(entries);
    progress.set_total(entries);
    progress.set_message("exported");
    let (name, content_type) = if csv {
        ("audit-logs.csv", "text/csv; charset=utf-8")
    } else {
        ("audit-logs.json", "application/json")
    };
    Ok(JobOutput {
        summary: json!({"entries": entries, "format": if csv { "csv" } else { "json" }, "bytes": bytes.len()}),
        file: Some((name.to_owned(), content_type.to_owned(), bytes)),
    })
}

/// The job's body, parsed as it was sent (CSV or JSON).
async fn job_rows<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &JobProgress,
) -> Result<crate::fleet::import::ImportRows, AppError> {
    progress.set_message("reading the rows");
    let body = steward
        .store
        .job_blob(job.id, "input")
        .await?
        .ok_or_else(|| AppError::validation("the import's body is gone"))?;
    let csv = job.parameters.get("format").and_then(|f| f.as_str()) == Some("csv");
    let rows = if csv {
        parse_csv(&body)?
    } else {
        parse_json(&body)?
    };
    progress.set_total(rows.len());
    Ok(rows)
}

fn flag(job: &JobRecord, key: &str) -> bool {
    job.parameters.get(key).and_then(|v| v.as_bool()).unwrap_or(false)
}

fn on_duplicate(job: &JobRecord) -> steward_domain::fleet::OnDuplicate {
    if job.parameters.get("onDuplicate").and_then(|v| v.as_str()) == Some("update") {
        steward_domain::fleet::OnDuplicate::Update
    } else {
        steward_domain::fleet::OnDuplicate::Skip
    }
}

/// An organization's user import: decided on the owner's standing now, all or nothing; a
/// cancel stops it only before it writes.
async fn org_user_import<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    let organization = job
        .organization_id
        .ok_or_else(|| AppError::not_found("the job's organization is gone"))?;
    let owner = acting_owner(steward, job).await?;
    if !owner.has_scope(Permission::OrganizationsWrite.as_str()) {
        return Err(AppError::forbidden(
            "the token that submitted the job lacks organizations:write",
        ));
    }
    let standing = OrganizationService::new(steward)
        .standing(
            owner.clone(),
            organization,
            OrgPermission::ManageUsers,
            Permission::OrganizationsWrite,
        )
        .await?;
    let rows = job_rows(steward, job, progress).await?;
    let total = rows.len();
    if !progress.checkpoint(0) {
        return Err(AppError::conflict("cancelled"));
    }
    progress.set_message("adding the users");
    let report = OrganizationService::new(steward)
        .import_users(
            organization,
            standing.actor,
            rows,
            flag(job, "dryRun"),
            on_duplicate(job),
            owner.user,
            &origin_of(job),
        )
        .await?;
    progress.set_done(total);
    progress.set_message("imported");
    Ok(JobOutput {
        summary: serde_json::to_value(&report).map_err(|_| AppError::internal())?,
        file: None,
    })
}

/// An operator's account import: decided on the owner's roles now; rows applied one by one, so
/// a cancel stops before the next row and the job reports what it did.
async fn account_import<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    let owner = acting_owner(steward, job).await?;
    if !owner.allows(Permission::UsersWrite) {
        return Err(AppError::forbidden("the job's owner no longer holds users:write"));
    }
    let rows = job_rows(steward, job, progress).await?;
    let options = crate::admin_user_import::AccountImportOptions {
        dry_run: flag(job, "dryRun"),
        on_duplicate: on_duplicate(job),
        invite: job
            .parameters
            .get("sendInvitations")
            .and_then(|v| v.as_bool())
            .unwrap_or(true),
    };
    if !progress.checkpoint(0) {
        return Err(AppError::conflict("cancelled"));
    }
    progress.set_message("applying the rows");
    let checkpoint = {
        let progress = Arc::clone(progress);
        move |done: usize| progress.checkpoint(done)
    };
    let report = steward
        .import_accounts_with(&owner, rows, options, &origin_of(job), checkpoint)
        .await?;
    if !progress.halted() {
        progress.set_done(report.rows);
        progress.set_message("imported");
    }
    let mut summary = serde_json::to_value(&report).map_err(|_| AppError::internal())?;
    if let Some(object) = summary.as_object_mut() {
        // How many rows were applied (all of them unless it was stopped).
        let applied = if progress.halted() {
            progress.snapshot().0
        } else {
            i64::try_from(report.rows).unwrap_or(i64::MAX)
        };
        object.insert("appliedRows".to_owned(), json!(applied));
    }
    Ok(JobOutput { summary, file: None })
}

/// An organization's device import: decided on the owner's standing now (a demoted or removed
/// owner's job fails), checked and written all or nothing, stopped (nothing written) by a cancel.
async fn device_import<S: Store>(
    steward: &Steward<S>,
    job: &JobRecord,
    progress: &Arc<JobProgress>,
) -> Result<JobOutput, AppError> {
    let organization = job
        .organization_id
        .ok_or_else(|| AppError::not_found("the job's organization is gone"))?;
    let owner = acting_owner(steward, job).await?;
    if !owner.has_scope(Permission::OrganizationsWrite.as_str()) {
        return Err(AppError::forbidden(
            "the token that submitted the job lacks organizations:write",
        ));
    }
    OrganizationService::new(steward)
        .standing(
            owner.clone(),
            organization,
            OrgPermission::Manage,
            Permission::OrganizationsWrite,
        )
        .await?;
    progress.set_message("reading the rows");
    let body = steward
        .store
        .job_blob(job.id, "input")
        .await?
        .ok_or_else(|| AppError::validation("the import's body is gone"))?;
    let csv = job.parameters.get("format").and_then(|f| f.as_str()) == Some("csv");
    let rows = if csv {
        parse_csv(&body)?
    } else {
        parse_json(&body)?
    };
    drop(body);
    progress.set_total(rows.len());
    progress.set_message("checking the rows");
    let dry_run = job
        .parameters
        .get("dryRun")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let on_duplicate = if job.parameters.get("onDuplicate").and_then(|v| v.as_str()) == Some("update") {
        steward_domain::fleet::OnDuplicate::Update
    } else {
        steward_domain::fleet::OnDuplicate::Skip
    };
    if !progress.checkpoint(0) {
        return Err(AppError::conflict("cancelled"));
    }
    let checkpoint = {
        let progress = Arc::clone(progress);
        move |done: usize| {
            progress.set_message("writing the devices");
            progress.checkpoint(done)
        }
    };
    let report = FleetService::new(steward)
        .import_devices_with(
            organization,
            rows,
            dry_run,
            on_duplicate,
            owner.user,
            &origin_of(job),
            checkpoint,
        )
        .await?;
    progress.set_done(report.rows);
    progress.set_message(if dry_run { "checked" } else { "imported" });
    Ok(JobOutput {
        summary: serde_json::to_value(&report).map_err(|_| AppError::internal())?,
        file: None,
    })
}
