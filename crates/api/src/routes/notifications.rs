//! `/api/admin/v1/notifications`: what the notification rules raised, for the operators who
//! may see it — holders of `notifications:read` (super_admin, user_admin, auditor) see every
//! one, owners and admins of an organization that organization's — with read marks per
//! operator; `/api/admin/v1/me/notification-preferences`: which of them are mailed. A token
//! needs the scope `notifications:read`, and `account:write` as well to mark them read or to
//! change preferences.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::notifications::NotificationService;
use steward_domain::notifications::{
    NotificationFilter, NotificationView as Stored, Preferences, Rule, Severity,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Caller, scopes};
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin, PageQuery};
use crate::state::AppState;

/// A notification.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: Uuid,
    /// The rule that raised it (`failed_sign_ins`, `account_locked`, …; see docs/events.md).
    pub rule: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    pub title: String,
    pub message: String,
    pub organization_id: Option<Uuid>,
    /// The event that raised it (its audit entry).
    pub event_id: Uuid,
    /// `event`: the event as webhooks receive it.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// When you marked it read; `null` while unread.
    pub read_at: Option<DateTime<Utc>>,
}

impl From<Stored> for NotificationView {
    fn from(view: Stored) -> Self {
        let notification = view.notification;
        Self {
            id: notification.id,
            rule: notification.rule.as_str().to_owned(),
            severity: notification.severity.as_str().to_owned(),
            title: notification.title,
            message: notification.message,
            organization_id: notification.organization_id,
            event_id: notification.event_id,
            data: notification.data,
            created_at: notification.created_at,
            read_at: view.read_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct NotificationListQuery {
    /// `true`: only those you have not read; `false`: only those you have.
    pub unread: Option<bool>,
    /// `low`, `medium`, `high` or `critical` (exactly that severity).
    pub severity: Option<String>,
    pub page: Option<u64>,
    pub per_page: Option<u64>,
}

/// Notifications you may see, newest first, with your read marks.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(NotificationListQuery),
    responses(
        (status = 200, body = ListEnvelope<NotificationView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "A token without `notifications:read`", body = ErrorEnvelope),
    )
)]
#[get("/notifications")]
pub async fn list_notifications(
    state: web::Data<AppState>,
    caller: Caller<scopes::NotificationsRead>,
    query: web::Query<NotificationListQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageQuery {
        page: query.page,
        per_page: query.per_page,
    }
    .into_request()?;
    let filter = NotificationFilter {
        unread: query.unread,
        severity: query
            .severity
            .as_deref()
            .map(|severity| {
                Severity::parse(severity)
                    .ok_or_else(|| ApiError::invalid("severity", "must be low, medium, high or critical"))
            })
            .transpose()?,
    };
    let (notifications, total) = NotificationService::new(&state)
        .list(caller.principal, &filter, page)
        .await?;
    Ok(envelope::page(
        notifications.into_iter().map(NotificationView::from).collect(),
        page,
        total,
    ))
}

/// Mark one notification read (for you; others keep their own marks). Again is fine.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    params(("notificationId" = Uuid, Path)),
    responses(
        (status = 204, description = "Read"),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, description = "No such notification, or not yours to see", body = ErrorEnvelope),
    )
)]
#[post("/notifications/{notificationId}/read")]
pub async fn read_notification(
    state: web::Data<AppState>,
    caller: Caller<scopes::AccountWrite>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    NotificationService::new(&state)
        .mark_read(caller.principal, path.into_inner())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// How many were marked read.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReadAllView {
    pub marked: u64,
}

/// Mark every notification you see read.
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<ReadAllView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[post("/notifications/read-all")]
pub async fn read_all_notifications(
    state: web::Data<AppState>,
    caller: Caller<scopes::AccountWrite>,
) -> Result<HttpResponse, ApiError> {
    let marked = NotificationService::new(&state)
        .mark_all_read(caller.principal)
        .await?;
    Ok(envelope::ok(ReadAllView { marked }))
}

/// Which notifications are mailed (and posted) to you.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationPreferencesView {
    /// Mail at all (default `true`).
    pub email_enabled: bool,
    /// Mail (and post) notifications of this severity and above: `low`, `medium` (default),
    /// `high` or `critical`.
    pub email_severity_threshold: String,
    /// Rules never mailed or posted to you (they are still listed): `failed_sign_ins`,
    /// `failed_sign_ins_from_ip`, `account_locked`, `admin_granted`, `admin_new_ip`,
    /// `bulk_operation`, `settings_changed`, `webhook_disabled`.
    pub muted_rules: Vec<String>,
    /// Your personal webhook: every notification you would be mailed (by threshold and muted
    /// rules, whether mail is on or not) is posted there, signed like any delivery.
    pub webhook_url: Option<String>,
    /// The personal webhook's signing secret: only in the answer that set the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
}

fn view(
    preferences: Preferences,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
) -> NotificationPreferencesView {
    NotificationPreferencesView {
        email_enabled: preferences.email_enabled,
        email_severity_threshold: preferences.email_threshold.as_str().to_owned(),
        muted_rules: preferences
            .muted_rules
            .iter()
            .map(|rule| rule.as_str().to_owned())
            .collect(),
        webhook_url,
        webhook_secret,
    }
}

/// New notification preferences.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationPreferencesRequest {
    pub email_enabled: bool,
    /// `low`, `medium`, `high` or `critical`.
    pub email_severity_threshold: String,
    /// Rule names (see the view).
    pub muted_rules: Vec<String>,
    /// A URL sets your personal webhook (with a new secret, answered once; `https://` to a
    /// public address, as for organizations' subscriptions), `null` removes it, absent leaves
    /// it as it is.
    #[serde(default, deserialize_with = "super::auth::present")]
    #[schema(value_type = Option<String>)]
    pub webhook_url: Option<Option<String>>,
}

/// Your notification preferences (defaults until you save some).
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<NotificationPreferencesView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/me/notification-preferences")]
pub async fn get_preferences(
    state: web::Data<AppState>,
    caller: Caller<scopes::NotificationsRead>,
) -> Result<HttpResponse, ApiError> {
    let (preferences, webhook_url) = NotificationService::new(&state)
        .preferences(caller.user_id)
        .await?;
    Ok(envelope::ok(view(preferences, webhook_url, None)))
}

/// Replace your notification preferences (`webhookUrl` optional: absent keeps the personal
/// webhook as it is).
#[utoipa::path(
    tag = "notifications",
    security(("bearer" = [])),
    request_body = NotificationPreferencesRequest,
    responses(
        (status = 200, body = Envelope<NotificationPreferencesView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "A token without `account:write`", body = ErrorEnvelope),
    )
)]
#[put("/me/notification-preferences")]
pub async fn put_preferences(
    state: web::Data<AppState>,
    caller: Caller<scopes::AccountWrite>,
    origin: Origin,
    body: Json<NotificationPreferencesRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let email_threshold = Severity::parse(&body.email_severity_threshold).ok_or_else(|| {
        ApiError::invalid("emailSeverityThreshold", "must be low, medium, high or critical")
    })?;
    if body.muted_rules.len() > Rule::ALL.len() * 2 {
        return Err(ApiError::invalid("mutedRules", "names too many rules"));
    }
    let mut muted_rules = Vec::new();
    for name in &body.muted_rules {
        let rule = Rule::parse(name)
            .ok_or_else(|| ApiError::invalid("mutedRules", "names a rule that does not exist"))?;
        if !muted_rules.contains(&rule) {
            muted_rules.push(rule);
        }
    }
    let (saved, webhook_url, webhook_secret) = NotificationService::new(&state)
        .set_preferences(
            caller.user_id,
            Preferences {
                email_enabled: body.email_enabled,
                email_threshold,
                muted_rules,
            },
            body.webhook_url,
            &origin.0,
        )
        .await?;
    let mut response = envelope::ok(view(saved, webhook_url, webhook_secret));
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
