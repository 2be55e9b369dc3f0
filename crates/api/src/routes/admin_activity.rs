//! `/api/admin/v1/admin-activity`: one operator's activity over a window — their audit entries
//! grouped by sign-in session, counted by action per day, and flagged where a pattern deserves
//! a look (a burst of deletions, an unusual hour, a new IP address), each flag with its rule.
//! `audit:read` (`super_admin`, `auditor`); the export needs `audit:export`.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use steward_app::admin_activity::{ActivityRequest, AdminActivity, AdminActivityService, activity_csv};
use steward_domain::rbac::Permission;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ActivityQuery {
    /// Required: the operator (a user id) whose activity to show.
    #[param(required = true)]
    pub admin_id: Option<Uuid>,
    /// Start (RFC 3339, inclusive); default seven days before `to`. At most 92 days before
    /// `to`.
    pub from: Option<DateTime<Utc>>,
    /// End (RFC 3339, exclusive); default now.
    pub to: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ActivityExportQuery {
    /// Required: the operator (a user id) whose activity to export.
    #[param(required = true)]
    pub admin_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `json` (default: the answer of `GET /admin-activity` without the envelope) or `csv`.
    pub format: Option<String>,
}

/// An action and how often.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionCount {
    pub action: String,
    pub count: u64,
}

/// The entries of one sign-in session in the window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionActivityView {
    /// `null`: entries made without a sign-in session (a personal access token, a background
    /// job submitted with one, entries from before sessions were recorded).
    pub session_id: Option<Uuid>,
    /// The session's first entry in the window (its sign-in, when that is in the window).
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// Client addresses of its entries, in the order first used.
    pub ip_addresses: Vec<String>,
    /// Its latest entry's user agent.
    pub user_agent: Option<String>,
    pub total: u64,
    /// Most frequent first.
    pub actions: Vec<ActionCount>,
}

/// One day (UTC) of the operator's actions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DayActivityView {
    pub day: NaiveDate,
    pub total: u64,
    /// By action name.
    pub actions: Vec<ActionCount>,
}

/// A pattern worth a look, and the rule that raised it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityFlagView {
    /// `deletion_burst`, `unusual_hour` or `new_ip`.
    pub rule: String,
    /// The rule in words.
    pub description: String,
    /// The first and last matching entry.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub count: u64,
    /// The session of the first matching entry.
    pub session_id: Option<Uuid>,
    /// `new_ip`: the address; `unusual_hour`: the hour (`HH:00`, UTC).
    pub subject: Option<String>,
}

/// One operator's activity over the window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminActivityView {
    pub admin_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Entries in the window.
    pub total: u64,
    /// Most recently active first.
    pub sessions: Vec<SessionActivityView>,
    /// Oldest first; days without entries are left out.
    pub days: Vec<DayActivityView>,
    /// Oldest first.
    pub flags: Vec<ActivityFlagView>,
}

fn counts<'a>(actions: impl Iterator<Item = (&'a String, &'a u64)>) -> Vec<ActionCount> {
    actions
        .map(|(action, count)| ActionCount {
            action: action.clone(),
            count: *count,
        })
        .collect()
}

impl From<&AdminActivity> for AdminActivityView {
    fn from(report: &AdminActivity) -> Self {
        let activity = &report.activity;
        Self {
            admin_id: report.admin,
            from: report.from,
            to: report.to,
            total: activity.total,
            sessions: activity
                .sessions
                .iter()
                .map(|session| SessionActivityView {
                    session_id: session.session_id,
                    first_at: session.first,
                    last_at: session.last,
                    ip_addresses: session.ip_addresses.clone(),
                    user_agent: session.user_agent.clone(),
                    total: session.total,
                    actions: counts(session.actions.iter().map(|(action, count)| (action, count))),
                })
                .collect(),
            days: activity
                .days
                .iter()
                .map(|(day, actions)| DayActivityView {
                    day: *day,
                    total: actions.values().sum(),
                    actions: counts(actions.iter()),
                })
                .collect(),
            flags: activity
                .flags
                .iter()
                .map(|flag| ActivityFlagView {
                    rule: flag.rule.as_str().to_owned(),
                    description: flag.rule.rule(),
                    from: flag.from,
                    to: flag.to,
                    count: flag.count,
                    session_id: flag.session_id,
                    subject: flag.subject.clone(),
                })
                .collect(),
        }
    }
}

/// One operator's activity: sessions, actions per day, flags.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ActivityQuery),
    responses(
        (status = 200, body = Envelope<AdminActivityView>),
        (status = 400, description = "No `adminId`, `from` not before `to`, a window over 92 days or with more than 50,000 entries", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Without `audit:read`, or a token without that scope (audited as `admin.access_denied`)", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/admin-activity")]
pub async fn get_admin_activity(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::AuditRead>,
    query: web::Query<ActivityQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let report = AdminActivityService::new(&state)
        .activity(
            &admin.0.principal,
            Permission::AuditRead,
            ActivityRequest {
                admin: query.admin_id,
                from: query.from,
                to: query.to,
            },
        )
        .await?;
    Ok(envelope::ok(AdminActivityView::from(&report)))
}

/// The same activity as a file: JSON, or CSV with a row per session and action, per day and
/// action, and per flag (`section,sessionId,from,to,action,count,ipAddresses,userAgent,rule,
/// subject,note`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ActivityExportQuery),
    responses(
        (status = 200, description = "`admin-activity-<adminId>.json` or `.csv`, as an attachment", content(
            (AdminActivityView = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "As for `GET /admin-activity`, or a format other than `json` or `csv`", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Without `audit:export`, or a token without that scope (audited as `admin.access_denied`)", body = ErrorEnvelope),
        (status = 429, description = "The admin API's per-operator rate limit", body = ErrorEnvelope),
    )
)]
#[get("/admin-activity/export")]
pub async fn export_admin_activity(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::AuditExport>,
    query: web::Query<ActivityExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be json or csv")),
    };
    let report = AdminActivityService::new(&state)
        .activity(
            &admin.0.principal,
            Permission::AuditExport,
            ActivityRequest {
                admin: query.admin_id,
                from: query.from,
                to: query.to,
            },
        )
        .await?;
    let (content_type, extension, body) = if csv {
        let body = activity_csv(&report).map_err(|_| ApiError::internal())?;
        ("text/csv; charset=utf-8", "csv", body)
    } else {
        let body =
            serde_json::to_vec_pretty(&AdminActivityView::from(&report)).map_err(|_| ApiError::internal())?;
        ("application/json", "json", body)
    };
    Ok(crate::envelope::attachment(
        content_type,
        &format!("admin-activity-{}.{extension}", report.admin),
    )
    .body(body))
}
