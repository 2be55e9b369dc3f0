//! Background jobs (`/api/admin/v1/jobs`): read, list, cancel, and fetch a result file. Jobs
//! are submitted by the endpoints that start them (`…/devices/import?async=true`).

use actix_web::{HttpResponse, delete, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::jobs::JobService;
use steward_domain::jobs::{JobFilter, JobKind, JobRecord, JobStatus};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Caller, scopes};
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Origin, PageQuery};
use crate::state::AppState;

/// How far a job got.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobProgressView {
    /// Units done (rows written, for an import).
    pub done: i64,
    /// Units in all, once known.
    pub total: Option<i64>,
    /// What the job is doing now.
    pub message: Option<String>,
}

/// A background job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: Uuid,
    /// `device_import`, `org_user_import`, `account_import`, `audit_export`, `user_export` or `fleet_export`.
    pub kind: String,
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    pub owner_id: Uuid,
    pub organization_id: Option<Uuid>,
    /// What the job was asked (`format`, `dryRun`, `onDuplicate`, …).
    #[schema(value_type = Object)]
    pub parameters: serde_json::Value,
    pub progress: JobProgressView,
    /// The job's summary once it succeeded (for an import: the report, as the synchronous
    /// import answers it).
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Why it failed: `message` and `details` (for an import, the problems by line).
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
    /// Where its result file is, when it wrote one.
    pub result_url: Option<String>,
    /// Someone asked it to stop; a running job stops at its next checkpoint.
    pub cancel_requested: bool,
    /// How often an instance took it up (more than once after an instance stopped while
    /// running it).
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobRecord> for JobView {
    fn from(job: JobRecord) -> Self {
        let mut parameters = job.parameters;
        if let Some(object) = parameters.as_object_mut() {
            // Who asked from where is the audit log's business.
            object.remove("origin");
            object.remove("scopes");
        }
        Self {
            result_url: job
                .file
                .as_ref()
                .map(|_| format!("/api/admin/v1/jobs/{}/result", job.id)),
            id: job.id,
            kind: job.kind.as_str().to_owned(),
            status: job.status.as_str().to_owned(),
            owner_id: job.owner_id,
            organization_id: job.organization_id,
            parameters,
            progress: JobProgressView {
                done: job.progress_done,
                total: job.progress_total,
                message: job.progress_message,
            },
            result: job.result,
            error: job.error,
            cancel_requested: job.cancel_requested,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// The answer to a submission: `202` with `Location: /api/admin/v1/jobs/{id}` and the job.
pub(crate) fn accepted(job: JobRecord) -> HttpResponse {
    let location = format!("/api/admin/v1/jobs/{}", job.id);
    let mut response = envelope::accepted(JobView::from(job));
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&location) {
        response
            .headers_mut()
            .insert(actix_web::http::header::LOCATION, value);
    }
    response
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct JobListQuery {
    /// `pending`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: Option<String>,
    /// `device_import`, `org_user_import`, `account_import`, `audit_export`, `user_export` or `fleet_export`.
    pub kind: Option<String>,
    /// Only this organization's jobs.
    pub organization_id: Option<Uuid>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// Background jobs you can see, newest first: your own, those of organizations you manage
/// (owner or admin), or every job with `jobs:read` (super_admin). A token needs the scope
/// `jobs:read`.
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(JobListQuery),
    responses(
        (status = 200, description = "One page of jobs", body = ListEnvelope<JobView>),
        (status = 400, description = "A filter that does not parse", body = ErrorEnvelope),
        (status = 401, description = "No valid credential", body = ErrorEnvelope),
        (status = 403, description = "A token without `jobs:read`", body = ErrorEnvelope),
    )
)]
#[get("/jobs")]
pub async fn list_jobs(
    state: web::Data<AppState>,
    caller: Caller<scopes::JobsRead>,
    query: web::Query<JobListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    }
    .into_request()?;
    let filter = JobFilter {
        visible_to: None,
        status: query
            .status
            .as_deref()
            .map(|s| {
                JobStatus::parse(s).ok_or_else(|| {
                    ApiError::invalid(
                        "status",
                        "must be pending, running, succeeded, failed or cancelled",
                    )
                })
            })
            .transpose()?,
        kind: query
            .kind
            .as_deref()
            .map(|k| {
                JobKind::parse(k).ok_or_else(|| {
                    ApiError::invalid(
                        "kind",
                        "must be device_import, org_user_import, account_import, audit_export, user_export or fleet_export",
                    )
                })
            })
            .transpose()?,
        organization: query.organization_id,
    };
    let (jobs, total) = JobService::new(&state)
        .list(caller.principal, filter, page)
        .await?;
    Ok(envelope::page(
        jobs.into_iter().map(JobView::from).collect(),
        page,
        total,
    ))
}

/// One job with its progress (live when this instance runs it). Jobs you may not see are 404.
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(("jobId" = Uuid, Path)),
    responses(
        (status = 200, description = "The job", body = Envelope<JobView>),
        (status = 401, description = "No valid credential", body = ErrorEnvelope),
        (status = 403, description = "A token without `jobs:read`", body = ErrorEnvelope),
        (status = 404, description = "No such job, or not yours to see", body = ErrorEnvelope),
    )
)]
#[get("/jobs/{jobId}")]
pub async fn get_job(
    state: web::Data<AppState>,
    caller: Caller<scopes::JobsRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = JobService::new(&state)
        .get(caller.principal, path.into_inner())
        .await?;
    Ok(envelope::ok(JobView::from(job)))
}

/// The job's result file (when its `resultUrl` is set), with its media type. Reading it needs,
/// besides seeing the job, what its export needs now (`audit:export`, `users:read`, or viewing
/// the organization; a token also their scopes); audited as `job.result_downloaded`.
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(("jobId" = Uuid, Path)),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 401, description = "No valid credential", body = ErrorEnvelope),
        (status = 403, description = "A token without `jobs:read`, or a reader without the export's permission", body = ErrorEnvelope),
        (status = 404, description = "No such job, or no file", body = ErrorEnvelope),
    )
)]
#[get("/jobs/{jobId}/result")]
pub async fn job_result(
    state: web::Data<AppState>,
    caller: Caller<scopes::JobsRead>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let file = JobService::new(&state)
        .result(caller.principal, path.into_inner(), &origin.0)
        .await?;
    let (job, length) = (file.job, file.length);
    // Chunk by chunk from the database (1 MiB each), never the whole file in memory.
    let body = futures_util::stream::unfold(
        (state.clone(), file.chunks.into_iter()),
        move |(state, mut chunks)| async move {
            let seq = chunks.next()?;
            let chunk = JobService::new(&state)
                .result_chunk(job, seq)
                .await
                .map(actix_web::web::Bytes::from)
                .map_err(ApiError::from);
            Some((chunk, (state, chunks)))
        },
    );
    Ok(HttpResponse::Ok()
        .content_type(file.content_type)
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}\"", file.name.replace('"', "")),
        ))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .no_chunking(length)
        .streaming(body))
}

/// Cancel a job: a pending one never runs; a running one stops at its next checkpoint (an
/// import then writes nothing) and ends `cancelled`. Its owner, managers of its organization,
/// and holders of `jobs:write` may; a token needs `jobs:write`. A finished job is `409`.
#[utoipa::path(
    tag = "jobs",
    security(("bearer" = [])),
    params(("jobId" = Uuid, Path)),
    responses(
        (status = 200, description = "The job after the request", body = Envelope<JobView>),
        (status = 401, description = "No valid credential", body = ErrorEnvelope),
        (status = 403, description = "A token without `jobs:write`", body = ErrorEnvelope),
        (status = 404, description = "No such job, or not yours to see", body = ErrorEnvelope),
        (status = 409, description = "The job has finished", body = ErrorEnvelope),
    )
)]
#[delete("/jobs/{jobId}")]
pub async fn cancel_job(
    state: web::Data<AppState>,
    caller: Caller<scopes::JobsWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let job = JobService::new(&state)
        .cancel(caller.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(envelope::ok(JobView::from(job)))
}
