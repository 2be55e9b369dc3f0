//! `/api/admin/v1/dashboard` and `/api/admin/v1/statistics`: the figures an operator reads at a
//! glance, for the whole system (permission `dashboard:read`: `super_admin`, `auditor`) or one
//! organization (`organizationId`: its owners and admins, or holders of `dashboard:read` or
//! `organizations:read`). Outsiders of the organization get 404, its members without an owner
//! or admin role 403. A token needs the scope `dashboard:read`; both count against the admin
//! API's per-operator rate limit.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::dashboard::{Asked, DashboardService, StatisticsRequest};
use steward_domain::dashboard::Dashboard;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Caller, scopes};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::Origin;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DashboardQuery {
    /// One organization's view instead of the whole system's.
    pub organization_id: Option<Uuid>,
}

/// Accounts (erased ones are not counted; in an organization's view, its members).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserFigures {
    pub total: u64,
    /// Signed in within the last 24 hours.
    #[serde(rename = "active24h")]
    pub active_24h: u64,
    #[serde(rename = "active7d")]
    pub active_7d: u64,
    #[serde(rename = "active30d")]
    pub active_30d: u64,
    /// Locked by an operator.
    pub locked: u64,
    /// E-mail address not verified.
    pub unverified: u64,
}

/// One hour of sign-ins.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInHourView {
    /// The hour's start (UTC).
    pub hour: DateTime<Utc>,
    pub succeeded: u64,
    pub failed: u64,
    pub lockouts: u64,
}

/// Sign-ins over the current hour and the 23 before it; the totals are the sums of `hourly`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignInFigures {
    pub succeeded: u64,
    /// Wrong passwords and unknown addresses.
    pub failed: u64,
    /// Accounts locked for a while after too many failures.
    pub lockouts: u64,
    /// 24 entries, oldest first.
    pub hourly: Vec<SignInHourView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceFigures {
    pub total: u64,
    /// `active`, `suspended`, …: how many of each.
    pub by_status: BTreeMap<String, u64>,
    /// By the platform the device reported (`unknown` when it named none).
    pub by_platform: BTreeMap<String, u64>,
    /// Devices whose last applied settings version differs from the one they should have.
    pub non_compliant: u64,
    pub pending_unlock_requests: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobFigures {
    pub pending: u64,
    pub running: u64,
    /// Failed within the last 24 hours.
    #[serde(rename = "failed24h")]
    pub failed_24h: u64,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFigures {
    pub total: u64,
    /// Enabled, and the last delivery failed.
    pub failing: u64,
    /// Turned off by an operator or after too many failures in a row.
    pub disabled: u64,
}

/// The dashboard.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DashboardView {
    /// The organization whose view this is; `null` for the whole system.
    pub organization_id: Option<Uuid>,
    /// When the figures were computed (each instance computes a view at most every 10 s).
    pub generated_at: DateTime<Utc>,
    pub users: UserFigures,
    /// Sessions neither revoked nor expired.
    pub live_sessions: u64,
    pub sign_ins: SignInFigures,
    pub devices: DeviceFigures,
    /// Organizations in the system; `null` in an organization's view.
    pub organizations: Option<u64>,
    /// Groups not deleted (in an organization's view, its groups).
    pub groups: u64,
    pub jobs: JobFigures,
    pub webhooks: WebhookFigures,
}

impl From<&Dashboard> for DashboardView {
    fn from(dashboard: &Dashboard) -> Self {
        let counts = &dashboard.counts;
        let (succeeded, failed, lockouts) = dashboard.sign_in_totals();
        Self {
            organization_id: dashboard.scope.organization(),
            generated_at: dashboard.generated_at,
            users: UserFigures {
                total: counts.users.total,
                active_24h: counts.users.active_24h,
                active_7d: counts.users.active_7d,
                active_30d: counts.users.active_30d,
                locked: counts.users.locked,
                unverified: counts.users.unverified,
            },
            live_sessions: counts.live_sessions,
            sign_ins: SignInFigures {
                succeeded,
                failed,
                lockouts,
                hourly: dashboard
                    .sign_ins
                    .iter()
                    .map(|hour| SignInHourView {
                        hour: hour.hour,
                        succeeded: hour.succeeded,
                        failed: hour.failed,
                        lockouts: hour.lockouts,
                    })
                    .collect(),
            },
            devices: DeviceFigures {
                total: counts.devices.total,
                by_status: counts.devices.by_status.clone(),
                by_platform: counts.devices.by_platform.clone(),
                non_compliant: counts.devices.non_compliant,
                pending_unlock_requests: counts.devices.pending_unlock_requests,
            },
            organizations: counts.organizations,
            groups: counts.groups,
            jobs: JobFigures {
                pending: counts.jobs.pending,
                running: counts.jobs.running,
                failed_24h: counts.jobs.failed_24h,
            },
            webhooks: WebhookFigures {
                total: counts.webhooks.total,
                failing: counts.webhooks.failing,
                disabled: counts.webhooks.disabled,
            },
        }
    }
}

/// The dashboard of the whole system, or of one organization with `organizationId`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(DashboardQuery),
    responses(
        (status = 200, body = Envelope<DashboardView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Without `dashboard:read` for the whole system; a member of the organization who is not its owner or admin; a token without the scope `dashboard:read`", body = ErrorEnvelope),
        (status = 404, description = "No such organization, or you are not in it", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/dashboard")]
pub async fn get_dashboard(
    state: web::Data<AppState>,
    caller: Caller<scopes::DashboardRead>,
    origin: Origin,
    request: HttpRequest,
    query: web::Query<DashboardQuery>,
) -> Result<HttpResponse, ApiError> {
    state.rate_limits.check_admin(caller.user_id).await?;
    let target = format!("{} {}", request.method(), request.path());
    let asked = Asked {
        target: &target,
        origin: &origin.0,
    };
    let dashboard = DashboardService::new(&state)
        .dashboard(caller.principal, query.organization_id, &asked)
        .await?;
    Ok(envelope::ok(DashboardView::from(dashboard.as_ref())))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct StatisticsQueryParams {
    /// Required: `signins`, `registrations`, `devices_enrolled`, `commands` or
    /// `api_key_requests`.
    #[param(required = true, value_type = String)]
    pub metric: Option<String>,
    /// `hour`, `day` (default) or `week` (UTC; weeks start on Monday). `api_key_requests` are
    /// kept per day: `day` or `week`.
    pub interval: Option<String>,
    /// Start (RFC 3339), rounded down to its bucket; default: 24 hours, 30 days or 12 weeks
    /// before `to`, by interval.
    pub from: Option<DateTime<Utc>>,
    /// End, exclusive (RFC 3339); default: now. At most 1,000 buckets from `from`.
    pub to: Option<DateTime<Utc>>,
    /// One organization's figures (not for `api_key_requests`, which are global).
    pub organization_id: Option<Uuid>,
}

/// One bucket of a statistic.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatisticsPoint {
    /// The bucket's start (UTC).
    pub start: DateTime<Utc>,
    pub count: u64,
}

/// A usage statistic over time: every bucket of the window, zero where nothing happened.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatisticsView {
    pub metric: String,
    pub interval: String,
    /// The first bucket's start.
    pub from: DateTime<Utc>,
    /// The end of the window (exclusive).
    pub to: DateTime<Utc>,
    pub organization_id: Option<Uuid>,
    /// The sum of the series.
    pub total: u64,
    pub series: Vec<StatisticsPoint>,
}

/// A usage statistic as a time series.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(StatisticsQueryParams),
    responses(
        (status = 200, body = Envelope<StatisticsView>),
        (status = 400, description = "An unknown metric or interval, `from` not before `to`, more than 1,000 buckets, `api_key_requests` per hour or per organization", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, description = "No such organization, or you are not in it", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/statistics")]
pub async fn get_statistics(
    state: web::Data<AppState>,
    caller: Caller<scopes::DashboardRead>,
    origin: Origin,
    request: HttpRequest,
    query: web::Query<StatisticsQueryParams>,
) -> Result<HttpResponse, ApiError> {
    state.rate_limits.check_admin(caller.user_id).await?;
    let target = format!("{} {}", request.method(), request.path());
    let asked = Asked {
        target: &target,
        origin: &origin.0,
    };
    let query = query.into_inner();
    let statistics = DashboardService::new(&state)
        .statistics(
            caller.principal,
            StatisticsRequest {
                metric: query.metric,
                interval: query.interval,
                from: query.from,
                to: query.to,
                organization: query.organization_id,
            },
            &asked,
        )
        .await?;
    Ok(envelope::ok(StatisticsView {
        metric: statistics.query.metric.as_str().to_owned(),
        interval: statistics.query.interval.as_str().to_owned(),
        from: statistics.query.from,
        to: statistics.query.to,
        organization_id: statistics.query.scope.organization(),
        total: statistics.total(),
        series: statistics
            .series
            .iter()
            .map(|(start, count)| StatisticsPoint {
                start: *start,
                count: *count,
            })
            .collect(),
    }))
}
