//! `/api/v1/auth` flows through the user's mailbox: forgotten and reset passwords, email
//! verification.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::rate_limit::{PasswordReset, RateLimited};
use crate::state::AppState;

use super::auth::UserProfile;

#[derive(Debug, Deserialize, ToSchema)]
pub struct ForgotPasswordRequest {
    pub email: String,
}

/// Mail a password-reset link (valid 1 hour, once; at most 3 per account and hour). Answers 202
/// at once whether or not the account exists: the lookup and the mail happen after the answer,
/// so its timing tells nothing either.
#[utoipa::path(
    tag = "auth",
    request_body = ForgotPasswordRequest,
    responses((status = 202, description = "Accepted"), (status = 429, body = ErrorEnvelope))
)]
#[post("/forgot-password")]
pub async fn forgot_password(
    _limit: RateLimited<PasswordReset>,
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<ForgotPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let auth = state.auth.clone();
    let email = body.into_inner().email;
    actix_web::rt::spawn(async move {
        if let Err(error) = auth.forgot_password(&email, &origin.0).await {
            tracing::warn!(%error, "a password-reset request could not be handled");
        }
    });
    Ok(HttpResponse::Accepted().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResetPasswordRequest {
    /// The token from the mailed link.
    pub token: String,
    pub new_password: String,
}

/// Set a new password with a reset token. Signs out every session of the account.
#[utoipa::path(
    tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password reset"),
        (status = 400, description = "Invalid, expired or used token; weak password", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    )
)]
#[post("/reset-password")]
pub async fn reset_password(
    _limit: RateLimited<PasswordReset>,
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state
        .auth
        .reset_password(&body.token, body.new_password, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcceptInvitationRequest {
    /// The token from the invitation link (valid 72 hours, once).
    pub token: String,
    /// The account's first password (the registration rules).
    pub password: String,
}

/// Accept an operator's invitation: set the account's first password and confirm its address.
/// Sign in afterwards as usual.
#[utoipa::path(
    tag = "auth",
    request_body = AcceptInvitationRequest,
    responses(
        (status = 204, description = "Password set, address confirmed"),
        (status = 400, description = "Invalid, expired or used token; weak password", body = ErrorEnvelope),
        (status = 429, body = ErrorEnvelope),
    )
)]
#[post("/accept-invitation")]
pub async fn accept_invitation(
    _limit: RateLimited<PasswordReset>,
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<AcceptInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    state
        .auth
        .accept_invitation(&body.token, body.password, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct VerifyEmailRequest {
    /// The token from the mailed link (valid 24 hours, once).
    pub token: String,
}

/// Confirm an email address (the account's, or a new one from a profile change).
#[utoipa::path(
    tag = "auth",
    request_body = VerifyEmailRequest,
    responses((status = 200, body = Envelope<UserProfile>), (status = 400, body = ErrorEnvelope))
)]
#[post("/verify-email")]
pub async fn verify_email(
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<VerifyEmailRequest>,
) -> Result<HttpResponse, ApiError> {
    let user = state.auth.verify_email(&body.token, &origin.0).await?;
    Ok(envelope::ok(UserProfile::from(user)))
}

/// Mail a new verification link (to the pending address if there is one).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 202, description = "Accepted"), (status = 401, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope))
)]
#[post("/resend-verification")]
pub async fn resend_verification(
    _limit: RateLimited<PasswordReset>,
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    state.auth.resend_verification(caller.user_id).await?;
    Ok(HttpResponse::Accepted().finish())
}
