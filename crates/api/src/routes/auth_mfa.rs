//! `/api/v1/auth/mfa` and `/api/v1/auth/login/mfa`: a second factor (TOTP with recovery
//! codes) for every account, managed with a session (never with a personal access token).

use actix_web::http::StatusCode;
use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::auth::{MfaProof, SignInOutcome, png_data_url};
use utoipa::ToSchema;

use crate::auth::Authenticated;
use crate::envelope::Envelope;
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::rate_limit::{Login, RateLimited};
use crate::state::AppState;

/// The account's second factor.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaStatusResponse {
    /// Sign-in asks for a code.
    pub enabled: bool,
    /// An enrollment waits for its first code (`POST /auth/mfa/totp/verify`).
    pub pending: bool,
    pub enabled_at: Option<DateTime<Utc>>,
    /// Unused recovery codes.
    pub recovery_codes_left: u64,
}

/// Whether the account has a second factor.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<MfaStatusResponse>))
)]
#[get("/mfa")]
pub async fn mfa_status(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let status = state.auth.mfa_status(caller.user_id).await?;
    Ok(crate::envelope::ok(MfaStatusResponse {
        enabled: status.enabled,
        pending: status.pending,
        enabled_at: status.confirmed_at,
        recovery_codes_left: status.recovery_codes_left,
    }))
}

/// A new TOTP secret for an authenticator app.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TotpSetupResponse {
    /// The secret in base32, for typing into the app by hand.
    pub secret: String,
    /// `otpauth://totp/<issuer>:<email>?secret=…&issuer=…` (SHA-1, 6 digits, 30 s).
    pub otpauth_uri: String,
    /// The URI as a QR code: a `data:image/png;base64,…` URL.
    pub qr_png: String,
    /// The URI as a QR code: an SVG document.
    pub qr_svg: String,
}

/// Start a TOTP enrollment (session only). The secret is not used for sign-in until
/// `POST /auth/mfa/totp/verify` proves it with a code; starting again replaces a pending
/// secret. 409 while a second factor is enabled.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<TotpSetupResponse>),
        (status = 409, description = "A second factor is already enabled", body = ErrorEnvelope),
    )
)]
#[post("/mfa/totp")]
pub async fn begin_totp(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
) -> Result<HttpResponse, ApiError> {
    let setup = state.auth.begin_totp(caller.user_id, &origin.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: TotpSetupResponse {
                secret: setup.secret,
                otpauth_uri: setup.otpauth_uri,
                qr_png: png_data_url(&setup.qr_png),
                qr_svg: setup.qr_svg,
            },
        }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TotpCodeRequest {
    /// The six digits the app shows now.
    pub code: String,
}

/// Recovery codes: each signs in once in place of a code. Shown only in this answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryCodesResponse {
    pub recovery_codes: Vec<String>,
}

fn recovery_codes(codes: Vec<String>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: RecoveryCodesResponse {
                recovery_codes: codes,
            },
        })
}

/// Prove the pending TOTP secret with a current code: the second factor is on from now on,
/// and the answer holds ten single-use recovery codes (shown once). A wrong code counts
/// toward the account's sign-in lockout.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = TotpCodeRequest,
    responses(
        (status = 200, body = Envelope<RecoveryCodesResponse>),
        (status = 401, description = "INVALID_MFA_CODE", body = ErrorEnvelope),
        (status = 409, description = "No enrollment is pending", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED", body = ErrorEnvelope),
    )
)]
#[post("/mfa/totp/verify")]
pub async fn verify_totp(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    body: Json<TotpCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let codes = state
        .auth
        .confirm_totp(caller.user_id, &body.code, &origin.0)
        .await?;
    Ok(recovery_codes(codes))
}

/// A second-factor proof: exactly one of `code` and `recoveryCode`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaProofRequest {
    /// The six digits the app shows now.
    pub code: Option<String>,
    /// One unused recovery code (dashes and case do not matter).
    pub recovery_code: Option<String>,
}

fn proof(code: Option<String>, recovery_code: Option<String>) -> Result<MfaProof, ApiError> {
    match (code, recovery_code) {
        (Some(code), None) => Ok(MfaProof::Code(code)),
        (None, Some(recovery)) => Ok(MfaProof::RecoveryCode(recovery)),
        _ => Err(ApiError::invalid(
            "code",
            "give exactly one of code and recoveryCode",
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DisableMfaRequest {
    /// The account's password (accounts without one, signed up through a provider, omit it).
    pub password: Option<String>,
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

/// Remove the second factor: needs the password and a current code (or a recovery code).
/// A pending enrollment is dropped without them.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = DisableMfaRequest,
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "INVALID_CREDENTIALS or INVALID_MFA_CODE", body = ErrorEnvelope),
        (status = 409, description = "No second factor", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED", body = ErrorEnvelope),
    )
)]
#[delete("/mfa/totp")]
pub async fn disable_totp(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    body: Json<DisableMfaRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // A pending enrollment needs no proof; an enabled one is refused without (400).
    let proof = match (body.code, body.recovery_code) {
        (None, None) => None,
        (code, recovery_code) => Some(proof(code, recovery_code)?),
    };
    state
        .auth
        .disable_mfa(caller.user_id, body.password, proof, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ten new recovery codes in place of all the old ones; needs a current code (or a
/// recovery code).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = MfaProofRequest,
    responses(
        (status = 200, body = Envelope<RecoveryCodesResponse>),
        (status = 401, description = "INVALID_MFA_CODE", body = ErrorEnvelope),
        (status = 409, description = "No second factor", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED", body = ErrorEnvelope),
    )
)]
#[post("/mfa/recovery-codes")]
pub async fn regenerate_recovery_codes(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    body: Json<MfaProofRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let proof = proof(body.code, body.recovery_code)?;
    let codes = state
        .auth
        .regenerate_recovery_codes(caller.user_id, proof, &origin.0)
        .await?;
    Ok(recovery_codes(codes))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaLoginRequest {
    /// From the sign-in answer; 5 minutes, spent by the sign-in it completes.
    pub mfa_token: String,
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

/// Complete a sign-in that answered `mfaRequired: true`, with a current code or a recovery
/// code. Each code is accepted once; wrong ones count toward the same lockout as wrong
/// passwords, and the `mfaToken` stays usable after a wrong code until it expires.
#[utoipa::path(
    tag = "auth",
    request_body = MfaLoginRequest,
    responses(
        (status = 200, body = Envelope<super::auth::TokenResponse>),
        (status = 401, description = "INVALID_MFA_CODE, or UNAUTHORIZED for an invalid, expired or spent mfaToken", body = ErrorEnvelope),
        (status = 429, description = "ACCOUNT_LOCKED or RATE_LIMITED, with Retry-After", body = ErrorEnvelope),
    )
)]
#[post("/login/mfa")]
pub async fn login_mfa(
    _limit: RateLimited<Login>,
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<MfaLoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let proof = proof(body.code, body.recovery_code)?;
    let issued = state
        .auth
        .complete_mfa_login(&body.mfa_token, proof, &origin.0)
        .await;
    crate::metrics::record_sign_in(match &issued {
        Ok(_) => "success",
        Err(error) => super::auth::sign_in_failure(error),
    });
    Ok(super::auth::tokens(StatusCode::OK, issued?))
}

/// The sign-in answer of an account with a second factor: no tokens yet.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaChallengeResponse {
    /// Always `true`.
    pub mfa_required: bool,
    /// Send it with a code to `POST /api/v1/auth/login/mfa`.
    pub mfa_token: String,
    /// Seconds the `mfaToken` lives (300).
    pub expires_in: i64,
}

/// What sign-in answers: tokens, or (`mfaRequired: true`) a challenge for the second factor.
// Describes the answer in the spec (and for clients deserializing it); never built in a hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SignInResponse {
    Tokens(super::auth::TokenResponse),
    SecondFactor(MfaChallengeResponse),
}

/// Renders a sign-in outcome.
pub(crate) fn sign_in_answer(outcome: SignInOutcome) -> HttpResponse {
    match outcome {
        SignInOutcome::Complete(issued) => super::auth::tokens(StatusCode::OK, *issued),
        SignInOutcome::SecondFactor {
            mfa_token,
            expires_in,
        } => HttpResponse::Ok()
            .insert_header((CACHE_CONTROL, "no-store"))
            .json(Envelope {
                success: true,
                data: MfaChallengeResponse {
                    mfa_required: true,
                    mfa_token,
                    expires_in,
                },
            }),
    }
}
