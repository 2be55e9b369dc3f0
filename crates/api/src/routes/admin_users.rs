//! `/api/admin/v1/users/{userId}/…`: locking and unlocking accounts and ending their sessions.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::admin_users::UserAdminService;
use steward_domain::accounts::UserRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{SessionView, session_view};
use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{OptionalJson, Origin};
use crate::state::AppState;

/// An account as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserView {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    /// `active` or `locked`.
    pub status: String,
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
    pub version: i32,
}

impl From<UserRecord> for AdminUserView {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            status: user.status,
            email_verified: user.email_verified_at.is_some(),
            created_at: user.created_at,
            last_login_at: user.last_login_at,
            version: user.version,
        }
    }
}

/// Why the account is locked (kept in the audit trail).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct LockUserRequest {
    /// At most 500 characters.
    pub reason: Option<String>,
}

/// Lock an account (`users:lock`): sign-in is refused with `ACCOUNT_DISABLED` (after the right
/// password only), every session ends at once on this instance and within 2 seconds on others,
/// and personal access tokens are refused. Never your own account, never the last unlocked
/// `super_admin` (409).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    request_body(content = LockUserRequest, description = "Optional"),
    responses(
        (status = 200, body = Envelope<AdminUserView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Your own account, or the last super_admin", body = ErrorEnvelope),
    )
)]
#[post("/users/{userId}/lock")]
pub async fn lock_user(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersLock>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: OptionalJson<LockUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user = UserAdminService::new(&state)
        .lock(
            admin.0.user_id,
            path.into_inner(),
            body.reason.as_deref(),
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(AdminUserView::from(user)))
}

/// Unlock an account (`users:unlock`); also clears an automatic sign-in lockout and its
/// failure counter.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<AdminUserView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/users/{userId}/unlock")]
pub async fn unlock_user(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersUnlock>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = UserAdminService::new(&state)
        .unlock(admin.0.user_id, path.into_inner(), &origin.0)
        .await?;
    Ok(envelope::ok(AdminUserView::from(user)))
}

/// An account's live sessions, newest first (`sessions:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<Vec<SessionView>>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/users/{userId}/sessions")]
pub async fn user_sessions(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::SessionsRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let views: Vec<SessionView> = UserAdminService::new(&state)
        .sessions(path.into_inner())
        .await?
        .into_iter()
        .map(|session| session_view(session, Uuid::nil()))
        .collect();
    Ok(envelope::ok(views))
}

/// End one session of an account (`sessions:revoke`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("sessionId" = Uuid, Path)),
    responses(
        (status = 204, description = "Ended"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, description = "No such live session of this user", body = ErrorEnvelope),
    )
)]
#[delete("/users/{userId}/sessions/{sessionId}")]
pub async fn revoke_user_session(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SessionsRevoke>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (user, session) = path.into_inner();
    UserAdminService::new(&state)
        .revoke_session(admin.0.user_id, user, session, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// How many sessions ended.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedSessions {
    pub revoked: u64,
}

/// End every session of an account (`sessions:revoke`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<RevokedSessions>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[delete("/users/{userId}/sessions")]
pub async fn revoke_user_sessions(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SessionsRevoke>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let revoked = UserAdminService::new(&state)
        .revoke_sessions(admin.0.user_id, path.into_inner(), &origin.0)
        .await?;
    Ok(envelope::ok(RevokedSessions { revoked }))
}
