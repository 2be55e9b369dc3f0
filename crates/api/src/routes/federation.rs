//! Sign-in with Google, Apple or the configured OIDC provider, provider links, and the admin
//! endpoints for role-sync overrides.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use steward_domain::federation::RoleOverrides;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::TokenResponse;
use crate::auth::{Authenticated, FederatedSignIn, RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::rate_limit::{Login, RateLimited};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSignInRequest {
    /// The ID token the provider's SDK returned.
    pub id_token: String,
    /// The nonce your app passed to the provider, if any (Apple: the raw nonce).
    pub nonce: Option<String>,
    /// Apple sends the user's name only at the first sign-in, outside the token.
    pub name: Option<String>,
    /// `oidc` only: the provider's access token, used to ask its UserInfo endpoint
    /// (`STEWARD_OIDC_USERINFO_URL`) for email, name or groups the ID token lacks.
    pub access_token: Option<String>,
}

/// Sign in with a provider's ID token (`google`, `apple`, or `oidc` for the configured OpenID
/// Connect provider). The first sign-in creates the account (email verified) or links an
/// existing account whose email is verified; an existing unverified account answers
/// `409 ACCOUNT_LINK_REQUIRED` (sign in with the password, then link).
#[utoipa::path(
    tag = "auth",
    params(("provider" = String, Path, description = "google, apple or oidc")),
    request_body = ProviderSignInRequest,
    responses(
        (status = 200, body = Envelope<TokenResponse>),
        (status = 401, description = "Invalid, expired, foreign or replayed ID token", body = ErrorEnvelope),
        (status = 403, description = "The provider has not verified the email", body = ErrorEnvelope),
        (status = 404, description = "Provider not configured", body = ErrorEnvelope),
        (status = 409, description = "ACCOUNT_LINK_REQUIRED", body = ErrorEnvelope),
    )
)]
#[post("/oauth/{provider}")]
pub async fn provider_sign_in(
    _limit: RateLimited<Login>,
    state: web::Data<AppState>,
    origin: Origin,
    provider: web::Path<String>,
    body: Json<ProviderSignInRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let issued = state
        .auth
        .federated_sign_in(
            &provider,
            FederatedSignIn {
                id_token: body.id_token,
                nonce: body.nonce,
                name: body.name,
                access_token: body.access_token,
            },
            &origin.0,
        )
        .await;
    crate::metrics::record_sign_in(match &issued {
        Ok(steward_app::auth::SignInOutcome::Complete(_)) => "success",
        Ok(steward_app::auth::SignInOutcome::SecondFactor { .. }) => "mfa_required",
        Err(error) => super::auth::sign_in_failure(error),
    });
    Ok(super::auth_mfa::sign_in_answer(issued?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkProviderRequest {
    pub id_token: String,
    pub nonce: Option<String>,
    /// Accounts with a second factor: a current code (unless `STEWARD_MFA_FOR_FEDERATED`).
    pub code: Option<String>,
    /// In place of `code`: one unused recovery code.
    pub recovery_code: Option<String>,
}

/// Link a provider account to the signed-in user. An account with a second factor also sends
/// `code` (or `recoveryCode`) — else `400` — unless provider sign-ins ask for the code too
/// (`STEWARD_MFA_FOR_FEDERATED=true`).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("provider" = String, Path)),
    request_body = LinkProviderRequest,
    responses(
        (status = 204, description = "Linked"),
        (status = 401, body = ErrorEnvelope),
        (status = 409, description = "Linked to another user", body = ErrorEnvelope),
    )
)]
#[post("/oauth/{provider}/link")]
pub async fn link_provider(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    provider: web::Path<String>,
    body: Json<LinkProviderRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let proof = match (body.code, body.recovery_code) {
        (None, None) => None,
        (Some(code), None) => Some(steward_app::auth::MfaProof::Code(code)),
        (None, Some(recovery)) => Some(steward_app::auth::MfaProof::RecoveryCode(recovery)),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "code",
                "give exactly one of code and recoveryCode",
            ));
        }
    };
    state
        .auth
        .link_provider(
            caller.user_id,
            &provider,
            &body.id_token,
            body.nonce.as_deref(),
            proof,
            &origin.0,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Unlink a provider. The last way to sign in (no password, one provider) cannot be removed.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("provider" = String, Path)),
    responses(
        (status = 204, description = "Unlinked"),
        (status = 404, description = "Not linked", body = ErrorEnvelope),
        (status = 409, description = "The last way to sign in", body = ErrorEnvelope),
    )
)]
#[delete("/oauth/{provider}/link")]
pub async fn unlink_provider(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    provider: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .unlink_provider(caller.user_id, &provider, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A user's adjustments to automatic role synchronisation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleOverridesView {
    /// `false` pauses automatic revocation.
    pub enabled: bool,
    /// Never revoked by synchronisation.
    pub preserved: Vec<String>,
    /// Never granted from the identity provider.
    pub suppressed: Vec<String>,
    /// Whether overrides are stored (otherwise these are the defaults).
    #[serde(default)]
    pub configured: bool,
}

fn view(overrides: RoleOverrides, configured: bool) -> RoleOverridesView {
    RoleOverridesView {
        enabled: overrides.enabled,
        preserved: overrides.preserved.into_iter().collect(),
        suppressed: overrides.suppressed.into_iter().collect(),
        configured,
    }
}

/// A user's role-sync overrides (`users:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses((status = 200, body = Envelope<RoleOverridesView>), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[get("/users/{userId}/role-overrides")]
pub async fn get_role_overrides(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::UsersRead>,
    user: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (overrides, configured) = state.auth.role_overrides(user.into_inner()).await?;
    Ok(envelope::ok(view(overrides, configured)))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct RoleOverridesRequest {
    pub enabled: bool,
    #[serde(default)]
    pub preserved: Vec<String>,
    #[serde(default)]
    pub suppressed: Vec<String>,
}

/// Set a user's role-sync overrides (`users:write`). Audited.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    request_body = RoleOverridesRequest,
    responses((status = 200, body = Envelope<RoleOverridesView>), (status = 400, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[put("/users/{userId}/role-overrides")]
pub async fn put_role_overrides(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    user: web::Path<Uuid>,
    body: Json<RoleOverridesRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = user.into_inner();
    let overrides = RoleOverrides::normalised(body.enabled, &body.preserved, &body.suppressed);
    state
        .auth
        .set_role_overrides(admin.0.user_id, user, Some(overrides.clone()), &origin.0)
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: view(overrides, true),
        }))
}

/// Remove a user's role-sync overrides (`users:write`). Audited.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses((status = 204, description = "Cleared"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[delete("/users/{userId}/role-overrides")]
pub async fn delete_role_overrides(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    user: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .set_role_overrides(admin.0.user_id, user.into_inner(), None, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
