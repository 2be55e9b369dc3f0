//! `/api/v1/auth`: accounts, sign-in, tokens, sessions, password and email flows.

use actix_web::http::header::{CACHE_CONTROL, IF_MATCH};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use steward_domain::accounts::{SessionRecord, UserRecord};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::scopes::{AccountRead, AccountWrite};
use crate::auth::{Authenticated, Caller, IssuedTokens, NewAccount, ProfileUpdate, SignIn};
use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin, PageQuery};
use crate::rate_limit::{Login, RateLimited, Refresh, Register};
use crate::state::AppState;

/// A user's own view of their account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserProfile {
    pub id: Uuid,
    pub email: String,
    /// A new address waiting for verification; `email` changes once it is verified.
    pub pending_email: Option<String>,
    pub email_verified: bool,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Send it back in `If-Match` (or `version`) to update without overwriting others' changes.
    pub version: i32,
}

impl From<UserRecord> for UserProfile {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            email: user.email,
            pending_email: user.pending_email,
            email_verified: user.email_verified_at.is_some(),
            display_name: user.display_name,
            avatar_url: user.avatar_url,
            locale: user.locale,
            timezone: user.timezone,
            created_at: user.created_at,
            updated_at: user.updated_at,
            version: user.version,
        }
    }
}

/// What register, login and refresh answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// RS256 JWT for `Authorization: Bearer …`.
    pub access_token: String,
    /// Opaque; exchange it at `/refresh`. Each use returns a new one.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub user: UserProfile,
}

pub(crate) fn tokens(status: actix_web::http::StatusCode, issued: IssuedTokens) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: TokenResponse {
                access_token: issued.access_token,
                refresh_token: issued.refresh_token,
                token_type: "Bearer".to_owned(),
                expires_in: issued.expires_in,
                user: issued.user.into(),
            },
        })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    pub email: String,
    /// 8–128 characters, not a common password, not the email.
    pub password: String,
    pub display_name: String,
    /// A BCP 47 tag (`de-AT`): the account's mails, the verification mail first, come in that
    /// language where a translation exists (docs/mail.md).
    pub locale: Option<String>,
}

/// Create an account and sign in. A verification mail is sent; unverified users can sign in.
#[utoipa::path(
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, body = Envelope<TokenResponse>),
        (status = 400, description = "Invalid email, display name or weak password", body = ErrorEnvelope),
        (status = 409, description = "The email is taken", body = ErrorEnvelope),
        (status = 429, description = "Rate limited", body = ErrorEnvelope),
    )
)]
#[post("/register")]
pub async fn register(
    _limit: RateLimited<Register>,
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let account = NewAccount {
        email: body.email,
        password: body.password,
        display_name: body.display_name,
        locale: body.locale,
    };
    let issued = state.auth.register(account, &origin.0).await?;
    Ok(tokens(actix_web::http::StatusCode::CREATED, issued))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// Sign in with email and password. Unknown emails and wrong passwords get the same answer;
/// 5 failures for one email within 15 minutes lock it for 15 minutes. An account with a
/// second factor gets `{mfaRequired: true, mfaToken, expiresIn}` and no tokens: complete the
/// sign-in at `POST /auth/login/mfa`.
#[utoipa::path(
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Tokens, or a second-factor challenge (`mfaRequired: true`)", body = Envelope<super::auth_mfa::SignInResponse>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, description = "INVALID_CREDENTIALS", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED or RATE_LIMITED, with Retry-After", body = ErrorEnvelope),
    )
)]
#[post("/login")]
pub async fn login(
    _limit: RateLimited<Login>,
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let outcome = state
        .auth
        .login(
            SignIn {
                email: body.email,
                password: body.password,
            },
            &origin.0,
        )
        .await;
    crate::metrics::record_sign_in(match &outcome {
        Ok(steward_app::auth::SignInOutcome::Complete(_)) => "success",
        Ok(steward_app::auth::SignInOutcome::SecondFactor { .. }) => "mfa_required",
        Err(error) => sign_in_failure(error),
    });
    Ok(super::auth_mfa::sign_in_answer(outcome?))
}

/// The `outcome` label of a refused sign-in step.
pub(crate) fn sign_in_failure(error: &steward_app::auth::AuthError) -> &'static str {
    use steward_app::auth::AuthError;
    match error {
        AuthError::InvalidCredentials => "invalid_credentials",
        AuthError::AccountLocked { .. } => "locked",
        AuthError::AccountDisabled => "disabled",
        AuthError::InvalidMfaCode | AuthError::InvalidMfaToken => "invalid_mfa",
        _ => "refused",
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange a refresh token for a new access and refresh token. Replaying a used token revokes
/// the whole session, except for the previous token within a few seconds of its rotation,
/// which answers the same new refresh token (parallel tabs, lost responses).
#[utoipa::path(
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, body = Envelope<TokenResponse>),
        (status = 401, body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    )
)]
#[post("/refresh")]
pub async fn refresh(
    _limit: RateLimited<Refresh>,
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let issued = state.auth.refresh(&body.refresh_token, &origin.0).await?;
    Ok(tokens(actix_web::http::StatusCode::OK, issued))
}

/// Sign out: revokes the caller's session and every refresh token of it.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 204, description = "Signed out"), (status = 401, body = ErrorEnvelope))
)]
#[post("/logout")]
pub async fn logout(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .logout(caller.user_id, caller.session_id, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's profile.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<UserProfile>), (status = 401, body = ErrorEnvelope))
)]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, caller: Caller<AccountRead>) -> Result<HttpResponse, ApiError> {
    let user = state.auth.profile(caller.user_id).await?;
    Ok(envelope::ok(UserProfile::from(user)))
}

/// Distinguishes an absent field (leave alone) from `null` (clear).
pub(crate) fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateProfileRequest {
    pub display_name: Option<String>,
    /// A new address: it takes effect once the link mailed to it is followed.
    pub email: Option<String>,
    /// `https://…`, or `null` to remove.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
    /// A BCP 47 tag such as `en-GB`, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub locale: Option<Option<String>>,
    /// An IANA zone such as `Europe/Berlin`, or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
    /// The version you read; alternatively send `If-Match`.
    pub version: Option<i32>,
}

pub(crate) fn if_match_version(request: &HttpRequest) -> Result<Option<i32>, ApiError> {
    let Some(value) = request.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    text.parse::<i32>()
        .map(Some)
        .map_err(|_| ApiError::validation("If-Match must be the resource's version, e.g. \"3\""))
}

/// Update the caller's profile. Honours `If-Match` / `version`: a stale version answers
/// `VERSION_CONFLICT`.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    params(("If-Match" = Option<String>, Header, description = "The version you read")),
    responses(
        (status = 200, body = Envelope<UserProfile>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 409, description = "VERSION_CONFLICT or the new email is taken", body = ErrorEnvelope),
    )
)]
#[put("/me")]
pub async fn update_me(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller<AccountWrite>,
    origin: Origin,
    body: Json<UpdateProfileRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let expected_version = if_match_version(&request)?.or(body.version);
    let update = ProfileUpdate {
        display_name: body.display_name,
        email: body.email,
        avatar_url: body.avatar_url,
        locale: body.locale,
        timezone: body.timezone,
        expected_version,
    };
    let user = state
        .auth
        .update_profile(caller.user_id, update, &origin.0)
        .await?;
    Ok(envelope::ok(UserProfile::from(user)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Change the password. Other sessions are signed out; this one stays.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Weak or recently used password", body = ErrorEnvelope),
        (status = 401, description = "Wrong current password", body = ErrorEnvelope),
    )
)]
#[put("/me/password")]
pub async fn change_password(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    body: Json<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state
        .auth
        .change_password(
            caller.user_id,
            caller.session_id,
            body.current_password,
            body.new_password,
            &origin.0,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub id: Uuid,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: DateTime<Utc>,
    /// The session of the token making this request.
    pub current: bool,
}

pub(crate) fn session_view(session: SessionRecord, current: Uuid) -> SessionView {
    SessionView {
        current: session.id == current,
        id: session.id,
        ip_address: session.ip_address,
        user_agent: session.user_agent,
        created_at: session.created_at,
        last_used_at: session.last_used_at,
        expires_at: session.expires_at,
    }
}

/// The caller's live sessions, newest first.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = ListEnvelope<SessionView>), (status = 401, body = ErrorEnvelope))
)]
#[get("/sessions")]
pub async fn sessions(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.into_inner().into_request()?;
    let all = state.auth.sessions(caller.user_id).await?;
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(page.offset() as usize)
        .take(page.per_page() as usize)
        .map(|session| session_view(session, caller.session_id))
        .collect();
    Ok(envelope::page(items, page, total))
}

/// Sign out one session (another device, say).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("sessionId" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[delete("/sessions/{sessionId}")]
pub async fn revoke_session(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    session: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .revoke_session(caller.user_id, session.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DeleteAccountRequest {
    /// Required for accounts that have a password.
    pub password: Option<String>,
}

/// Delete the account (GDPR erasure): personal data is removed or anonymised, sessions end,
/// the audit trail is kept without the person's addresses.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Erased"),
        (status = 401, description = "Wrong password", body = ErrorEnvelope),
    )
)]
#[delete("/me")]
pub async fn delete_me(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    body: Json<DeleteAccountRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .delete_account(caller.user_id, body.into_inner().password, &origin.0)
        .await?;
    // Locks the account held over others' devices were released with it.
    state.device_states.forget_versions();
    Ok(HttpResponse::NoContent().finish())
}

/// Everything Steward stores about the caller (GDPR access), as JSON.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<crate::response_schemas::GdprExport>), (status = 401, body = ErrorEnvelope))
)]
#[get("/me/export")]
pub async fn export_me(
    state: web::Data<AppState>,
    caller: Caller<AccountRead>,
) -> Result<HttpResponse, ApiError> {
    let export = state.auth.export(caller.user_id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((
            "Content-Disposition",
            "attachment; filename=\"steward-export.json\"",
        ))
        .json(Envelope {
            success: true,
            data: export,
        }))
}
