//! `/api/admin/v1/users…`: creating accounts, locking and unlocking them, resets, erasure and
//! ending their sessions.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::admin_users::UserAdminService;
use steward_domain::accounts::UserRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{SessionView, session_view};
use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin};
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
            &admin.0.principal,
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

/// Options of an administrator's password reset.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminResetPasswordRequest {
    /// Also end every session at once (default `false`).
    #[serde(default)]
    pub revoke_sessions: bool,
}

/// Whether the reset mail went out.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResetMailSent {
    pub sent: bool,
}

/// Send the user a password-reset mail (`users:reset_password`): the same single-use link as
/// `forgot-password`, valid for an hour; at most 3 reset mails per account and hour (`429`
/// beyond). Optionally ends every session at once. A locked account must be unlocked first
/// (`400`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    request_body(content = AdminResetPasswordRequest, description = "Optional"),
    responses(
        (status = 202, body = Envelope<ResetMailSent>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 429, description = "The hourly cap of reset mails is reached", body = ErrorEnvelope),
    )
)]
#[post("/users/{userId}/reset-password")]
pub async fn admin_reset_password(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersResetPassword>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: OptionalJson<AdminResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let sent = state
        .auth
        .admin_reset_password(
            admin.0.user_id,
            path.into_inner(),
            body.into_inner().revoke_sessions,
            &origin.0,
        )
        .await?;
    if !sent {
        crate::metrics::record_rate_limited("admin_reset_mail");
        return Err(ApiError::new(
            ErrorCode::RateLimited,
            "at most 3 reset mails per account and hour; try again later",
        )
        .with_retry_after(3600));
    }
    Ok(envelope::accepted(ResetMailSent { sent }))
}

/// Mark the user's email address verified (`users:write`), for an operator who confirmed it
/// another way.
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
#[post("/users/{userId}/verify-email")]
pub async fn admin_verify_email(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .admin_verify_email(admin.0.user_id, path.into_inner(), &origin.0)
        .await?;
    Ok(envelope::ok(AdminUserView::from(user)))
}

/// Erase an account (`users:write`), as self-service deletion does: personal data removed,
/// sessions and tokens deleted, owned groups passed on, devices unlinked, the audit trail kept.
/// Not your own account (`409`: use `DELETE /api/v1/auth/me`), never the last unlocked
/// `super_admin` (`409`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses(
        (status = 204, description = "Erased"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Your own account, or the last super_admin", body = ErrorEnvelope),
    )
)]
#[delete("/users/{userId}")]
pub async fn delete_user(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    UserAdminService::new(&state)
        .delete(&admin.0.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new account, made by an operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    pub email: String,
    pub display_name: String,
    /// The registration rules apply. Without one, an invitation mail goes out whose link sets
    /// the password (72 hours, once).
    pub password: Option<String>,
    /// System roles to grant (each one you could grant yourself).
    #[serde(default)]
    pub roles: Vec<String>,
    /// A BCP 47 tag (`de-AT`): the account's mails, this one's invitation or verification mail
    /// first, come in that language where a translation exists.
    pub locale: Option<String>,
}

/// Create an account (`users:write`). With a `password` the account can sign in at once and a
/// verification mail goes to the address; without one, an invitation mail does (its link sets
/// the password via `POST /api/v1/auth/accept-invitation`, within 72 hours, once, and confirms
/// the address). Answers the account as `GET /users/{id}` shows it.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateUserRequest,
    responses(
        (status = 201, body = Envelope<super::admin::AdminUserDetail>),
        (status = 400, description = "Bad address, name, password or role", body = ErrorEnvelope),
        (status = 403, description = "No `users:write`, or a role you may not grant", body = ErrorEnvelope),
        (status = 409, description = "The address is taken", body = ErrorEnvelope),
    )
)]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    body: Json<CreateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let account = steward_app::auth::AdminNewAccount {
        email: body.email,
        display_name: body.display_name,
        password: body.password,
        invite: true,
        locale: body.locale,
    };
    let detail = UserAdminService::new(&state)
        .create(&admin.0.principal, account, body.roles, &origin.0)
        .await?;
    Ok(envelope::created(super::admin::AdminUserDetail::from(detail)))
}

/// An operator's change of an account; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub display_name: Option<String>,
    /// A new address: in effect at once, unverified; a verification mail goes to it.
    pub email: Option<String>,
    /// A BCP 47 tag such as `en-GB`, or `null`.
    #[serde(default, deserialize_with = "super::auth::present")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
    /// An IANA zone such as `Europe/Berlin`, or `null`.
    #[serde(default, deserialize_with = "super::auth::present")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    /// `active` (unlock, needs `users:unlock`) or `locked` (lock, needs `users:lock`).
    pub status: Option<String>,
    /// The version you read; alternatively send `If-Match`.
    pub version: Option<i32>,
}

/// Change an account (`users:write`): name, address, locale, time zone and status. Honours
/// `If-Match` / `version` (stale: `409 VERSION_CONFLICT`). Answers the account as
/// `GET /users/{id}` shows it.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The version you read")),
    request_body = UpdateUserRequest,
    responses(
        (status = 200, body = Envelope<super::admin::AdminUserDetail>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "VERSION_CONFLICT, the address is taken, or the last super_admin", body = ErrorEnvelope),
    )
)]
#[patch("/users/{userId}")]
pub async fn update_user(
    request: actix_web::HttpRequest,
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<UpdateUserRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let update = steward_app::auth::AdminProfileUpdate {
        display_name: body.display_name,
        email: body.email,
        locale: body.locale,
        timezone: body.timezone,
        expected_version: super::auth::if_match_version(&request)?.or(body.version),
    };
    let detail = UserAdminService::new(&state)
        .update(
            &admin.0.principal,
            path.into_inner(),
            update,
            body.status.as_deref(),
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(super::admin::AdminUserDetail::from(detail)))
}
