//! `/api/admin/v1/ip-allowlist`: the networks administrators must call from when the list is
//! enabled, its switch, and bypass tokens. Reading needs `audit:read` (super_admin, auditor),
//! changing `settings:write` (super_admin).

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::ip_allowlist::{AllowlistDecision, AllowlistService, EntryInput};
use steward_domain::ip_allowlist::{AllowlistEntry, BypassToken};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin};
use crate::state::AppState;

/// Whether this request passed the list with a bypass token: such a request can neither
/// force a change nor mint a new token (a token must not outlive its 24 hours).
fn bypassed(request: &HttpRequest) -> bool {
    use actix_web::HttpMessage;
    request
        .extensions()
        .get::<AllowlistDecision>()
        .is_some_and(|decision| *decision == AllowlistDecision::Bypassed)
}

/// One allowed network.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowlistEntryView {
    pub id: Uuid,
    /// The network in CIDR form (`203.0.113.0/24`, `198.51.100.7/32`, `2001:db8::/32`).
    pub cidr: String,
    pub name: String,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AllowlistEntry> for AllowlistEntryView {
    fn from(entry: AllowlistEntry) -> Self {
        Self {
            id: entry.id,
            cidr: entry.network.to_string(),
            name: entry.name,
            description: entry.description,
            created_by: entry.created_by,
            created_at: entry.created_at,
            updated_at: entry.updated_at,
        }
    }
}

/// The list and whether it is enforced.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowlistView {
    pub enabled: bool,
    pub entries: Vec<AllowlistEntryView>,
}

/// The list's entries, oldest first, and whether it is enforced.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<AllowlistView>))
)]
#[get("/ip-allowlist")]
pub async fn list_allowlist(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AuditRead>,
) -> Result<HttpResponse, ApiError> {
    let (enabled, entries) = AllowlistService::new(&state).list().await?;
    Ok(envelope::ok(AllowlistView {
        enabled,
        entries: entries.into_iter().map(AllowlistEntryView::from).collect(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewAllowlistEntryRequest {
    /// An IPv4 or IPv6 address or CIDR network; host bits are cleared.
    pub cidr: String,
    /// 1–100 characters.
    pub name: String,
    /// At most 500 characters.
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistEntryRequest {
    /// An IPv4 or IPv6 address or CIDR network; host bits are cleared.
    pub cidr: String,
    /// 1–100 characters.
    pub name: String,
    /// At most 500 characters.
    pub description: Option<String>,
    /// Make the change even if it refuses your own address (super_admin, not through a
    /// bypass token).
    #[serde(default)]
    pub force: bool,
}

/// Add a network (at most 1,000 entries). An invalid `cidr` is `400` naming it.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = NewAllowlistEntryRequest,
    responses(
        (status = 201, body = Envelope<AllowlistEntryView>),
        (status = 400, body = ErrorEnvelope),
        (status = 409, description = "The list is full", body = ErrorEnvelope),
    )
)]
#[post("/ip-allowlist")]
pub async fn create_allowlist_entry(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    body: Json<NewAllowlistEntryRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let entry = AllowlistService::new(&state)
        .create(
            &admin.0.principal,
            EntryInput {
                network: body.cidr,
                name: body.name,
                description: body.description,
            },
            &origin.0,
        )
        .await?;
    Ok(envelope::created(AllowlistEntryView::from(entry)))
}

/// Change an entry. With the list enabled, a change that would refuse your own address is
/// `409 ALLOWLIST_WOULD_LOCK_OUT` unless a super_admin sends `force: true`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("entryId" = Uuid, Path)),
    request_body = AllowlistEntryRequest,
    responses(
        (status = 200, body = Envelope<AllowlistEntryView>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "ALLOWLIST_WOULD_LOCK_OUT", body = ErrorEnvelope),
    )
)]
#[put("/ip-allowlist/{entryId}")]
pub async fn update_allowlist_entry(
    request: HttpRequest,
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<AllowlistEntryRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let entry = AllowlistService::new(&state)
        .update(
            &admin.0.principal,
            path.into_inner(),
            EntryInput {
                network: body.cidr,
                name: body.name,
                description: body.description,
            },
            body.force && !bypassed(&request),
            crate::extractors::certain_client_ip(&request),
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(AllowlistEntryView::from(entry)))
}

/// `force: true` makes a change that refuses your own address (super_admin only).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ForceRequest {
    #[serde(default)]
    pub force: bool,
}

/// Remove an entry; `409 ALLOWLIST_WOULD_LOCK_OUT` when that would refuse your own address
/// (body `{"force": true}` as a super_admin to do it anyway).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("entryId" = Uuid, Path)),
    request_body(content = ForceRequest, description = "Optional"),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "ALLOWLIST_WOULD_LOCK_OUT", body = ErrorEnvelope),
    )
)]
#[delete("/ip-allowlist/{entryId}")]
pub async fn delete_allowlist_entry(
    request: HttpRequest,
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: OptionalJson<ForceRequest>,
) -> Result<HttpResponse, ApiError> {
    AllowlistService::new(&state)
        .delete(
            &admin.0.principal,
            path.into_inner(),
            body.into_inner().force && !bypassed(&request),
            crate::extractors::certain_client_ip(&request),
            &origin.0,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Whether the list is enforced.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllowlistSettingsView {
    pub enabled: bool,
}

/// Whether the allowlist is enforced (`audit:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<AllowlistSettingsView>))
)]
#[get("/ip-allowlist/settings")]
pub async fn allowlist_settings(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AuditRead>,
) -> Result<HttpResponse, ApiError> {
    let (enabled, _) = AllowlistService::new(&state).list().await?;
    Ok(envelope::ok(AllowlistSettingsView { enabled }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowlistSettingsRequest {
    pub enabled: bool,
    /// Enable even though your own address is not on the list (super_admin only).
    #[serde(default)]
    pub force: bool,
}

/// Switch enforcement on or off. Switching it on from an address the list does not hold is
/// `409 ALLOWLIST_WOULD_LOCK_OUT` unless a super_admin sends `force: true`. Every instance
/// enforces a change within 5 seconds.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = AllowlistSettingsRequest,
    responses(
        (status = 200, body = Envelope<AllowlistSettingsView>),
        (status = 409, description = "ALLOWLIST_WOULD_LOCK_OUT", body = ErrorEnvelope),
    )
)]
#[put("/ip-allowlist/settings")]
pub async fn set_allowlist_settings(
    request: HttpRequest,
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    body: Json<AllowlistSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let enabled = AllowlistService::new(&state)
        .set_enabled(
            &admin.0.principal,
            body.enabled,
            body.force && !bypassed(&request),
            crate::extractors::certain_client_ip(&request),
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(AllowlistSettingsView { enabled }))
}

/// A bypass token (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BypassTokenView {
    pub id: Uuid,
    /// The secret's first characters (`stw_byp_AbCd`).
    pub prefix: String,
    pub reason: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<BypassToken> for BypassTokenView {
    fn from(token: BypassToken) -> Self {
        Self {
            id: token.id,
            prefix: token.prefix,
            reason: token.reason,
            created_by: token.created_by,
            created_at: token.created_at,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            last_used_at: token.last_used_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BypassTokenRequest {
    /// Why (1–500 characters); audited.
    pub reason: String,
    /// 1–24.
    pub ttl_hours: i64,
}

/// A new bypass token and its secret (shown once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedBypassToken {
    pub token: BypassTokenView,
    /// Send it as `X-Steward-Allowlist-Bypass` from an address outside the list.
    pub secret: String,
}

/// Create a bypass token: requests carrying it pass the allowlist from any address until it
/// expires (at most 24 hours) or is revoked; every use is audited with the address. A request
/// that itself came in with a bypass token is refused (403).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = BypassTokenRequest,
    responses(
        (status = 201, body = Envelope<CreatedBypassToken>),
        (status = 400, body = ErrorEnvelope),
    )
)]
#[post("/ip-allowlist/bypass-tokens")]
pub async fn create_bypass_token(
    request: HttpRequest,
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    body: Json<BypassTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    if bypassed(&request) {
        return Err(ApiError::new(
            crate::error::ErrorCode::Forbidden,
            "a request let in by a bypass token cannot create another one",
        ));
    }
    let body = body.into_inner();
    let (token, secret) = AllowlistService::new(&state)
        .create_bypass_token(&admin.0.principal, &body.reason, body.ttl_hours, &origin.0)
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(Envelope {
            success: true,
            data: CreatedBypassToken {
                token: BypassTokenView::from(token),
                secret,
            },
        }))
}

/// Every bypass token, newest first (live, expired and revoked).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<BypassTokenView>>))
)]
#[get("/ip-allowlist/bypass-tokens")]
pub async fn list_bypass_tokens(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AuditRead>,
) -> Result<HttpResponse, ApiError> {
    let tokens = AllowlistService::new(&state).bypass_tokens().await?;
    Ok(envelope::ok(
        tokens.into_iter().map(BypassTokenView::from).collect::<Vec<_>>(),
    ))
}

/// Revoke a live bypass token; `404` when it is unknown, expired or already revoked.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("tokenId" = Uuid, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[delete("/ip-allowlist/bypass-tokens/{tokenId}")]
pub async fn revoke_bypass_token(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    AllowlistService::new(&state)
        .revoke_bypass_token(&admin.0.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
