//! `/api/admin/v1/api-keys`: the application API keys device apps register devices with.
//! Global, so only `super_admin` manages them (`api_keys:read`, `api_keys:write`).

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::devices::ApiKeyService;
use steward_domain::devices::ApiKeyRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// An API key as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKeyRecord> for ApiKeyView {
    fn from(key: ApiKeyRecord) -> Self {
        Self {
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            scopes: key.scopes,
            created_at: key.created_at,
            last_used_at: key.last_used_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new key and its secret, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Send as `X-API-Key` when registering devices. Shown once.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateApiKeyRequest {
    /// 1 to 100 characters, e.g. the app it ships in.
    pub name: String,
}

/// Every API key, revoked ones included, oldest first (`api_keys:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<ApiKeyView>>), (status = 403, body = ErrorEnvelope))
)]
#[get("/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::ApiKeysRead>,
) -> Result<HttpResponse, ApiError> {
    let keys: Vec<ApiKeyView> = ApiKeyService::new(&state)
        .list()
        .await?
        .into_iter()
        .map(ApiKeyView::from)
        .collect();
    Ok(envelope::ok(keys))
}

/// Mint an API key (`api_keys:write`); its secret is in this answer only.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = Envelope<CreatedApiKey>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[post("/api-keys")]
pub async fn create_api_key(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ApiKeysWrite>,
    origin: Origin,
    body: Json<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let (key, secret) = ApiKeyService::new(&state)
        .create(admin.0.user_id, &body.into_inner().name, &origin.0)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: CreatedApiKey {
                key: ApiKeyView::from(key),
                secret,
            },
        }))
}

/// Revoke an API key (`api_keys:write`): refused at once on this instance, within 5 seconds on
/// others. Devices registered with it keep their device tokens.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("keyId" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, description = "No such live key", body = ErrorEnvelope),
    )
)]
#[delete("/api-keys/{keyId}")]
pub async fn revoke_api_key(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ApiKeysWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    ApiKeyService::new(&state)
        .revoke(admin.0.user_id, path.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
