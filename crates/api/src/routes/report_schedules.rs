//! `/api/admin/v1/report-schedules`: scheduled reports mailed to recipients (reading needs
//! `reports:read`, changing and test-sending `reports:manage`), and
//! `/api/v1/report-unsubscribe`: a recipient leaving a schedule through the signed link in its
//! mail, without signing in.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::reports::ReportService;
use steward_domain::reports::{ReportRun, ScheduleFields, ScheduleRecord, weekday_name};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// One recipient of a schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecipientView {
    pub email: String,
    /// When they left the schedule through the link in its mail; they get no more mail from it
    /// while it lists them.
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

/// One run of a schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportRunView {
    pub id: Uuid,
    /// `scheduled` or `test`.
    pub kind: String,
    /// The slot it ran for (a test: the minute it was asked).
    pub due_at: DateTime<Utc>,
    /// The window its figures cover, `[windowFrom, windowTo)`.
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    /// `pending` (its job waits or runs), `sent` or `failed`.
    pub status: String,
    /// The background job that sends it (`GET /jobs/{jobId}`); none for a test.
    pub job_id: Option<Uuid>,
    /// Mails queued: one per subscribed recipient.
    pub mailed: i32,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<ReportRun> for ReportRunView {
    fn from(run: ReportRun) -> Self {
        Self {
            id: run.id,
            kind: run.kind.as_str().to_owned(),
            due_at: run.due_at,
            window_from: run.window_from,
            window_to: run.window_to,
            status: run.status.as_str().to_owned(),
            job_id: run.job_id,
            mailed: run.mailed,
            error: run.error,
            created_at: run.created_at,
            finished_at: run.finished_at,
        }
    }
}

/// A report schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportScheduleView {
    pub id: Uuid,
    pub name: String,
    /// `security_summary`, `user_activity`, `fleet_compliance` or `audit_digest`.
    pub report_type: String,
    /// `daily`, `weekly` or `monthly`.
    pub frequency: String,
    /// Local time of day, `HH:MM`.
    pub time: String,
    /// Weekly schedules: `monday` … `sunday`.
    pub weekday: Option<String>,
    /// Monthly schedules: 1–31 (the last day in shorter months).
    pub day_of_month: Option<u32>,
    /// IANA time zone.
    pub time_zone: String,
    /// `csv` (the figures in the mail and attached as CSV) or `html` (in the mail only).
    pub format: String,
    /// One organization's figures; `null`: the whole system's.
    pub organization_id: Option<Uuid>,
    pub enabled: bool,
    /// The operator the runs act for: whoever last saved the schedule (`null` once their account
    /// was deleted: runs fail until someone saves it again).
    pub owner_id: Option<Uuid>,
    /// When the next run is due (`null` while disabled).
    pub next_run_at: Option<DateTime<Utc>>,
    pub recipients: Vec<RecipientView>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest runs, newest first (at most 20; only when one schedule is read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recent_runs: Option<Vec<ReportRunView>>,
}

impl ReportScheduleView {
    fn new(schedule: ScheduleRecord, runs: Option<Vec<ReportRun>>) -> Self {
        Self {
            id: schedule.id,
            name: schedule.name,
            report_type: schedule.report_type.as_str().to_owned(),
            frequency: schedule.timing.frequency.as_str().to_owned(),
            time: schedule.timing.time.format("%H:%M").to_string(),
            weekday: schedule.timing.weekday.map(|day| weekday_name(day).to_owned()),
            day_of_month: schedule.timing.day_of_month,
            time_zone: schedule.timing.time_zone.name().to_owned(),
            format: schedule.format.as_str().to_owned(),
            organization_id: schedule.organization,
            enabled: schedule.enabled,
            owner_id: schedule.owner,
            next_run_at: schedule.next_run_at,
            recipients: schedule
                .recipients
                .into_iter()
                .map(|recipient| RecipientView {
                    email: recipient.email,
                    unsubscribed_at: recipient.unsubscribed_at,
                })
                .collect(),
            version: schedule.version,
            created_at: schedule.created_at,
            updated_at: schedule.updated_at,
            recent_runs: runs.map(|runs| runs.into_iter().map(ReportRunView::from).collect()),
        }
    }
}

/// A schedule to create, or its new state.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportScheduleRequest {
    /// 1–100 characters, no control characters.
    pub name: String,
    /// `security_summary`, `user_activity`, `fleet_compliance` or `audit_digest`.
    pub report_type: String,
    /// `daily`, `weekly` or `monthly`.
    pub frequency: String,
    /// Local time of day, `HH:MM` (`00:00` to `23:59`).
    pub time: String,
    /// Required for weekly schedules, refused for others: `monday` … `sunday`.
    #[serde(default)]
    pub weekday: Option<String>,
    /// Required for monthly schedules, refused for others: 1–31 (the last day in shorter
    /// months).
    #[serde(default)]
    pub day_of_month: Option<i64>,
    /// An IANA time zone (`Europe/Berlin`); default `UTC`.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `csv` or `html`.
    pub format: String,
    /// 1–50 addresses (`local@domain`, at most 254 characters each); duplicates are kept once.
    pub recipients: Vec<String>,
    /// Report one organization's figures instead of the whole system's.
    #[serde(default)]
    pub organization_id: Option<Uuid>,
    /// Default `true`.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// On `PUT`: the version you read; a schedule changed since is `409 VERSION_CONFLICT`.
    #[serde(default)]
    pub version: Option<i32>,
}

impl ReportScheduleRequest {
    fn into_fields(self) -> (ScheduleFields, Option<i32>) {
        (
            ScheduleFields {
                name: self.name,
                report_type: self.report_type,
                frequency: self.frequency,
                time: self.time,
                weekday: self.weekday,
                day_of_month: self.day_of_month,
                time_zone: self.time_zone,
                format: self.format,
                recipients: self.recipients,
                organization: self.organization_id,
                enabled: self.enabled,
            },
            self.version,
        )
    }
}

/// Every report schedule, oldest first (`reports:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<Vec<ReportScheduleView>>),
        (status = 403, description = "Without `reports:read`", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/report-schedules")]
pub async fn list_report_schedules(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::ReportsRead>,
) -> Result<HttpResponse, ApiError> {
    let schedules = ReportService::new(&state).list().await?;
    Ok(envelope::ok(
        schedules
            .into_iter()
            .map(|schedule| ReportScheduleView::new(schedule, None))
            .collect::<Vec<_>>(),
    ))
}

/// Create a schedule (`reports:manage`, `dashboard:read` and `audit:read`; from a token, its
/// scopes too). Its runs act for you; it is first due at its next slot.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = ReportScheduleRequest,
    responses(
        (status = 201, body = Envelope<ReportScheduleView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 409, description = "200 schedules already", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[post("/report-schedules")]
pub async fn create_report_schedule(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ReportsManage>,
    origin: Origin,
    body: Json<ReportScheduleRequest>,
) -> Result<HttpResponse, ApiError> {
    let (fields, _) = body.into_inner().into_fields();
    let schedule = ReportService::new(&state)
        .create(&admin.0.principal, fields, &origin.0)
        .await?;
    Ok(envelope::created(ReportScheduleView::new(
        schedule,
        Some(Vec::new()),
    )))
}

/// A schedule with its latest runs (`reports:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("scheduleId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<ReportScheduleView>),
        (status = 404, body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/report-schedules/{scheduleId}")]
pub async fn get_report_schedule(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::ReportsRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (schedule, runs) = ReportService::new(&state).get(path.into_inner()).await?;
    Ok(envelope::ok(ReportScheduleView::new(schedule, Some(runs))))
}

/// Replace a schedule (`reports:manage`, as for creating); its runs act for you from now on.
/// Recipients who stay keep their unsubscription; the next run is recomputed when the timing
/// changes or the schedule is turned back on.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("scheduleId" = Uuid, Path)),
    request_body = ReportScheduleRequest,
    responses(
        (status = 200, body = Envelope<ReportScheduleView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "VERSION_CONFLICT", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[put("/report-schedules/{scheduleId}")]
pub async fn update_report_schedule(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ReportsManage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<ReportScheduleRequest>,
) -> Result<HttpResponse, ApiError> {
    let (fields, version) = body.into_inner().into_fields();
    let service = ReportService::new(&state);
    let id = path.into_inner();
    let schedule = service
        .update(&admin.0.principal, id, fields, version, &origin.0)
        .await?;
    let (_, runs) = service.get(id).await?;
    Ok(envelope::ok(ReportScheduleView::new(schedule, Some(runs))))
}

/// Delete a schedule with its recipients and runs (`reports:manage`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("scheduleId" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[delete("/report-schedules/{scheduleId}")]
pub async fn delete_report_schedule(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ReportsManage>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ReportService::new(&state)
        .delete(&admin.0.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Mail the report now, for the period up to now, to every subscribed recipient, marked as a
/// test (`reports:manage`, `dashboard:read`, `audit:read`). `202` with the run; one test per
/// schedule and minute (`429`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("scheduleId" = Uuid, Path)),
    responses(
        (status = 202, body = Envelope<ReportRunView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Every recipient unsubscribed", body = ErrorEnvelope),
        (status = 429, description = "A test was sent this minute, or the admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[post("/report-schedules/{scheduleId}/send-test")]
pub async fn send_test_report(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ReportsManage>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let run = ReportService::new(&state)
        .send_test(&admin.0.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(envelope::accepted(ReportRunView::from(run)))
}

/// The token of an unsubscribe link.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UnsubscribeQuery {
    /// From the link in the report's mail.
    pub token: String,
}

/// A recipient's subscription to one schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    /// The schedule's name.
    pub schedule_name: String,
    pub email: String,
    pub unsubscribed: bool,
}

fn subscription(recipient: steward_domain::reports::Recipient, name: String) -> SubscriptionView {
    SubscriptionView {
        schedule_name: name,
        email: recipient.email,
        unsubscribed: recipient.unsubscribed_at.is_some(),
    }
}

/// Which schedule an unsubscribe link is for, and whether its recipient already left it. No
/// credential: the signed token is the proof. A token that is not genuine, or whose recipient
/// was removed, is `404`.
#[utoipa::path(
    tag = "auth",
    params(UnsubscribeQuery),
    responses(
        (status = 200, body = Envelope<SubscriptionView>),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("")]
pub async fn report_subscription(
    state: web::Data<AppState>,
    query: web::Query<UnsubscribeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (recipient, name) = ReportService::new(&state).recipient(&query.token).await?;
    Ok(envelope::ok(subscription(recipient, name)))
}

/// Leave the schedule (idempotent). No credential: the signed token is the proof. Any body is
/// ignored, so mail clients' one-click unsubscribe (RFC 8058,
/// `List-Unsubscribe=One-Click`) works as well.
#[utoipa::path(
    tag = "auth",
    params(UnsubscribeQuery),
    responses(
        (status = 200, body = Envelope<SubscriptionView>),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("")]
pub async fn report_unsubscribe(
    state: web::Data<AppState>,
    origin: Origin,
    query: web::Query<UnsubscribeQuery>,
) -> Result<HttpResponse, ApiError> {
    let (recipient, name) = ReportService::new(&state)
        .unsubscribe(&query.token, &origin.0)
        .await?;
    Ok(envelope::ok(subscription(recipient, name)))
}
