//! `/api/admin/v1/health`: the operators' health report of the instance that answers — its
//! requests and latency over the last 1, 5 and 15 minutes, memory, the database's pool,
//! migrations and size per table, the outgoing queues with their last deliveries, and each
//! background worker's last pass — every rated figure `ok`, `warn` or `critical` against the
//! configured thresholds (`STEWARD_HEALTH_*`). Permission and token scope `dashboard:read`
//! (`super_admin`, `auditor`); counts against the admin API's per-operator rate limit.
//! `GET …/health/report?format=json|csv` is the same report as a file.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::health::{CheckValue, HealthReport, HealthService};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    /// This instance's id (the one its job and delivery claims carry).
    pub id: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub uptime_seconds: i64,
    /// Resident memory; `null` where the system does not tell (Linux does).
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolView {
    /// Open connections.
    pub size: u32,
    pub in_use: u32,
    pub idle: u32,
    /// `STEWARD_DATABASE_MAX_CONNECTIONS`.
    pub max: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationsView {
    pub applied: usize,
    /// Carried by this binary and not applied (the instance is not ready while any are).
    pub pending: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableView {
    pub name: String,
    pub rows: u64,
    /// `true` on PostgreSQL, where rows are the statistics' estimate (`n_live_tup`); SQLite
    /// counts them.
    pub rows_estimated: bool,
    /// On disk with its indexes; `null` on a SQLite build without the `dbstat` table.
    pub bytes: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseView {
    /// `sqlite` or `postgresql`.
    pub backend: String,
    pub pool: PoolView,
    pub migrations: MigrationsView,
    pub size_bytes: u64,
    /// Largest first.
    pub tables: Vec<TableView>,
    /// When the size and row figures were read: they are kept for a minute.
    pub sizes_read_at: DateTime<Utc>,
}

/// Percentiles in milliseconds, each the upper bound of its histogram bucket (buckets are
/// about 19 % apart); `null` while the window holds no request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LatencyView {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
}

/// Requests this instance answered over one window (every route, health checks included).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestWindowView {
    /// 1, 5 or 15.
    pub window_minutes: u32,
    /// Seconds the window covers: kept in ten-second steps, so up to ten seconds less than
    /// the window, and less while the process is younger than it.
    pub seconds: f64,
    pub requests: u64,
    pub per_second: f64,
    /// 4xx answers.
    pub client_errors: u64,
    /// 5xx answers.
    pub server_errors: u64,
    /// Server errors in percent of the requests.
    pub error_percent: f64,
    pub latency_ms: LatencyView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub at: DateTime<Utc>,
    /// `sent`; `failed`: the channel failed (a refused connection, a timeout, a temporary
    /// refusal); `rejected`: the message's own permanent refusal (an unknown recipient, a device
    /// without a push token), which says nothing about the channel.
    pub outcome: String,
    /// Why it failed (the mail server's or push service's answer, at most 500 characters).
    pub error: Option<String>,
}

/// An outgoing queue: mail, push or webhook deliveries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    /// `mail`, `push` or `webhooks`.
    pub name: String,
    /// Mail: `smtp` (`STEWARD_SMTP_URL`) or `directory` (none configured: files in the data
    /// directory); push: `fcm`, `webhook` or `log`; webhooks: `http`.
    pub transport: String,
    /// Waiting: due now or waiting for a retry (over every instance).
    pub pending: u64,
    pub oldest_queued_at: Option<DateTime<Utc>>,
    pub oldest_age_seconds: f64,
    /// This instance's last attempt, since it started (mail and push).
    pub last_delivery: Option<DeliveryView>,
    /// The worst of the queue's checks.
    pub status: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    /// `mail`, `push`, `audit_sealer`, `jobs`, `event_dispatcher`, `webhook_deliveries`,
    /// `notification_mail`, `maintenance`, `quota_metrics`.
    pub name: String,
    /// Whether this instance runs it (`maintenance` and `quota_metrics` can be turned off).
    pub enabled: bool,
    pub interval_seconds: f64,
    /// Its last pass on this instance that reached what it works on (the database, the outbox;
    /// one that found nothing to do counts, one that failed does not).
    pub last_pass_at: Option<DateTime<Utc>>,
    /// `warn` after three intervals without a pass (at least a minute), `critical` after ten
    /// (at least five minutes); `null` when not enabled.
    pub status: Option<String>,
}

/// One rated figure.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    /// `requests.p99_ms`, `requests.error_percent`, `instance.memory_mb`, `database.reachable`,
    /// `database.pool_in_use_percent`, `database.migrations_pending`, `database.size_mb`,
    /// `queues.<queue>.pending`, `queues.<queue>.oldest_age_secs`,
    /// `queues.<queue>.last_delivery`, `workers.<worker>.last_pass_age_secs`.
    pub name: String,
    /// A number; for `…last_delivery` `sent`, `failed` or `rejected`, for `database.reachable`
    /// `yes` or `no`.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    pub unit: String,
    /// `ok`, `warn` or `critical`.
    pub status: String,
    /// The configured levels; `null` for fixed rules (pending migrations are critical, a failed
    /// delivery warns, a late worker as above).
    pub warn: Option<f64>,
    pub critical: Option<f64>,
    pub note: Option<String>,
}

/// The health report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthReportView {
    /// The worst check's status: `ok`, `warn` or `critical`.
    pub status: String,
    pub checked_at: DateTime<Utc>,
    pub instance: InstanceView,
    pub database: DatabaseView,
    /// The last 1, 5 and 15 minutes.
    pub requests: Vec<RequestWindowView>,
    pub queues: Vec<QueueView>,
    pub workers: Vec<WorkerView>,
    pub checks: Vec<CheckView>,
}

impl From<&HealthReport> for HealthReportView {
    fn from(report: &HealthReport) -> Self {
        Self {
            status: report.level.as_str().to_owned(),
            checked_at: report.checked_at,
            instance: InstanceView {
                id: report.instance.clone(),
                version: report.version.to_owned(),
                started_at: report.started,
                uptime_seconds: (report.checked_at - report.started).num_seconds().max(0),
                memory_bytes: report.memory_bytes,
            },
            database: DatabaseView {
                backend: report.backend.to_owned(),
                pool: PoolView {
                    size: report.pool.size,
                    in_use: report.pool.in_use(),
                    idle: report.pool.idle,
                    max: report.pool.max,
                },
                migrations: MigrationsView {
                    applied: report.migrations.applied,
                    pending: report.migrations.pending.clone(),
                },
                size_bytes: report.size.bytes,
                tables: report
                    .size
                    .tables
                    .iter()
                    .map(|table| TableView {
                        name: table.name.clone(),
                        rows: table.rows,
                        rows_estimated: table.rows_estimated,
                        bytes: table.bytes,
                    })
                    .collect(),
                sizes_read_at: report.size_read_at,
            },
            requests: report
                .requests
                .iter()
                .map(|window| RequestWindowView {
                    window_minutes: window.minutes,
                    seconds: window.seconds,
                    requests: window.requests,
                    per_second: window.per_second(),
                    client_errors: window.client_errors,
                    server_errors: window.server_errors,
                    error_percent: window.error_percent(),
                    latency_ms: LatencyView {
                        p50: window.p50_ms,
                        p95: window.p95_ms,
                        p99: window.p99_ms,
                    },
                })
                .collect(),
            queues: report
                .queues
                .iter()
                .map(|queue| QueueView {
                    name: queue.name.to_owned(),
                    transport: queue.transport.to_owned(),
                    pending: queue.depth.pending,
                    oldest_queued_at: queue.depth.oldest,
                    oldest_age_seconds: queue
                        .depth
                        .oldest
                        .map(|oldest| (report.checked_at - oldest).num_milliseconds().max(0) as f64 / 1000.0)
                        .unwrap_or(0.0),
                    last_delivery: queue.last_delivery.as_ref().map(|delivery| DeliveryView {
                        at: delivery.at,
                        outcome: steward_app::health::delivery_outcome(delivery).to_owned(),
                        error: delivery.error.clone(),
                    }),
                    status: queue.level.as_str().to_owned(),
                })
                .collect(),
            workers: report
                .workers
                .iter()
                .map(|worker| WorkerView {
                    name: worker.state.worker.as_str().to_owned(),
                    enabled: worker.state.enabled,
                    interval_seconds: worker.state.every.as_secs_f64(),
                    last_pass_at: worker.state.last_pass,
                    status: worker.level.map(|level| level.as_str().to_owned()),
                })
                .collect(),
            checks: report
                .checks
                .iter()
                .map(|check| CheckView {
                    name: check.name.clone(),
                    value: match &check.value {
                        CheckValue::Number(number) => serde_json::Number::from_f64(*number)
                            .map_or(serde_json::Value::Null, serde_json::Value::Number),
                        CheckValue::Text(text) => serde_json::Value::String(text.clone()),
                    },
                    unit: check.unit.to_owned(),
                    status: check.level.as_str().to_owned(),
                    warn: check.threshold.map(|threshold| threshold.warn),
                    critical: check.threshold.map(|threshold| threshold.critical),
                    note: check.note.clone(),
                })
                .collect(),
        }
    }
}

/// The health report of the instance that answers (its own requests, memory, workers and last
/// deliveries; the database and queues are shared by every instance).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<HealthReportView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Without `dashboard:read`, or a token without that scope (audited as `admin.access_denied`)", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/health")]
pub async fn get_health(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::DashboardRead>,
) -> Result<HttpResponse, ApiError> {
    let report = HealthService::new(&state).report(&admin.0.principal).await?;
    let mut response = envelope::ok(HealthReportView::from(&report));
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportFormat {
    /// `json` (default: the report as `GET /health` answers it, without the envelope) or `csv`
    /// (one figure a row: `figure,value,unit,status,warn,critical,note`).
    pub format: Option<String>,
}

/// The health report as a file to keep or attach to a ticket.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ReportFormat),
    responses(
        (status = 200, description = "`steward-health-<time>.json` or `.csv`, as an attachment", content(
            (HealthReportView = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A format other than `json` or `csv`", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Without `dashboard:read`, or a token without that scope (audited as `admin.access_denied`)", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/health/report")]
pub async fn get_health_report(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::DashboardRead>,
    format: web::Query<ReportFormat>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or csv")),
    };
    let report = HealthService::new(&state).report(&admin.0.principal).await?;
    let stamp = report.checked_at.format("%Y%m%dT%H%M%SZ");
    let (content_type, name, body) = if csv {
        let body = steward_app::health::report_csv(&report).map_err(|_| ApiError::internal())?;
        (
            "text/csv; charset=utf-8",
            format!("steward-health-{stamp}.csv"),
            body,
        )
    } else {
        let body =
            serde_json::to_vec_pretty(&HealthReportView::from(&report)).map_err(|_| ApiError::internal())?;
        ("application/json", format!("steward-health-{stamp}.json"), body)
    };
    Ok(crate::envelope::attachment(content_type, &name).body(body))
}
