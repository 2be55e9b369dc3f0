//! `/api/v1/auth/me/tokens`: personal access tokens for scripts and integrations.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Authenticated;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// A personal access token as listed (the secret is shown only when it is created).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PersonalTokenView {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the secret.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
}

impl From<steward_domain::accounts::PersonalToken> for PersonalTokenView {
    fn from(token: steward_domain::accounts::PersonalToken) -> Self {
        Self {
            id: token.id,
            name: token.name,
            prefix: token.prefix,
            scopes: token.scopes,
            created_at: token.created_at,
            expires_at: token.expires_at,
            last_used_at: token.last_used_at,
            last_used_ip: token.last_used_ip,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedPersonalToken {
    /// `stw_pat_…`: send as `Authorization: Bearer …`. Shown once; store it now.
    pub secret: String,
    pub token: PersonalTokenView,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatePersonalTokenRequest {
    pub name: String,
    /// `account:read`, `account:write`, and any permission your system roles grant
    /// (`users:read` …).
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Your personal access tokens (live ones), newest first. Needs a signed-in session.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<PersonalTokenView>>), (status = 401, body = ErrorEnvelope))
)]
#[get("/me/tokens")]
pub async fn list_tokens(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let tokens: Vec<PersonalTokenView> = state
        .auth
        .personal_tokens(caller.user_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(envelope::ok(tokens))
}

/// Create a personal access token, limited to scopes you hold. The secret is in this response
/// only. Needs a signed-in session (a token cannot mint tokens).
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = CreatePersonalTokenRequest,
    responses(
        (status = 201, body = Envelope<CreatedPersonalToken>),
        (status = 400, description = "Bad name, expiry, or scopes you do not hold", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
    )
)]
#[post("/me/tokens")]
pub async fn create_token(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    body: Json<CreatePersonalTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (token, secret) = state
        .auth
        .create_personal_token(
            caller.user_id,
            &body.name,
            body.scopes,
            crate::extractors::checked_time("expiresAt", body.expires_at)?,
            &origin.0,
        )
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: CreatedPersonalToken {
                secret,
                token: token.into(),
            },
        }))
}

/// Revoke a personal access token at once.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    params(("tokenId" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[delete("/me/tokens/{tokenId}")]
pub async fn revoke_token(
    state: web::Data<AppState>,
    caller: Authenticated,
    origin: Origin,
    token: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .revoke_personal_token(caller.user_id, token.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
