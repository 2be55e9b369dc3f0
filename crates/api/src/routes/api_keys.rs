//! `/api/admin/v1/api-keys`: the application API keys device apps register devices with.
//! Global, so only `super_admin` manages them (`api_keys:read`, `api_keys:write`).

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::devices::{ApiKeyListing, ApiKeyService};
use steward_domain::devices::ApiKeyRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin};
use crate::state::AppState;

/// An API key (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyView {
    pub id: Uuid,
    pub name: String,
    /// The first characters of the current secret, to recognise it.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Where the key was last used from.
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// After a rotation: until when the previous secret still works.
    pub previous_valid_until: Option<DateTime<Utc>>,
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
            last_used_ip: key.last_used_ip,
            revoked_at: key.revoked_at,
            previous_valid_until: key.previous_valid_until,
        }
    }
}

/// Requests one day (UTC).
#[derive(Debug, Serialize, ToSchema)]
pub struct DayUsage {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub requests: u64,
}

/// An API key as listed, with its requests per day over the last 30 days.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyListView {
    #[serde(flatten)]
    pub key: ApiKeyView,
    /// Days with requests, oldest first (UTC; at most the last 30 days).
    pub usage: Vec<DayUsage>,
}

impl From<ApiKeyListing> for ApiKeyListView {
    fn from(listing: ApiKeyListing) -> Self {
        Self {
            key: ApiKeyView::from(listing.key),
            usage: listing
                .usage
                .into_iter()
                .map(|(day, requests)| DayUsage { day, requests })
                .collect(),
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

/// Every API key, revoked ones included, oldest first, with requests per day over the last
/// 30 days (`api_keys:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<ApiKeyListView>>), (status = 403, body = ErrorEnvelope))
)]
#[get("/api-keys")]
pub async fn list_api_keys(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::ApiKeysRead>,
) -> Result<HttpResponse, ApiError> {
    let keys: Vec<ApiKeyListView> = ApiKeyService::new(&state)
        .list()
        .await?
        .into_iter()
        .map(ApiKeyListView::from)
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

/// How long the old secret keeps working.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateApiKeyRequest {
    /// 0 to 2592000 (30 days); default 86400 (24 hours).
    pub overlap_seconds: Option<i64>,
}

/// Rotate an API key (`api_keys:write`): a new secret, in this answer only; the old one keeps
/// working for the overlap (default 24 hours) and then stops. Rotating again ends an earlier
/// overlap at once.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("keyId" = Uuid, Path)),
    request_body(content = Option<RotateApiKeyRequest>),
    responses(
        (status = 200, body = Envelope<CreatedApiKey>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, description = "No such live key", body = ErrorEnvelope),
    )
)]
#[post("/api-keys/{keyId}/rotate")]
pub async fn rotate_api_key(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ApiKeysWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: OptionalJson<RotateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let (key, secret) = ApiKeyService::new(&state)
        .rotate(
            admin.0.user_id,
            path.into_inner(),
            request.overlap_seconds,
            &origin.0,
        )
        .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: CreatedApiKey {
                key: ApiKeyView::from(key),
                secret,
            },
        }))
}
