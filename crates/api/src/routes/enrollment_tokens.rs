//! `/api/admin/v1/organizations/{orgId}/enrollment-tokens`: how devices join an organization's
//! fleet, and the QR codes that carry a token.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_domain::fleet::{EnrollmentToken, EnrollmentTokenSpec};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::fleet::FleetService;
use crate::fleet::qr::QrFormat;
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentTokenView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: Option<String>,
    /// The first characters of the secret, for recognising it.
    pub prefix: String,
    /// Only in the answer to its creation; afterwards only inside the QR code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub max_uses: Option<i32>,
    pub use_count: i32,
    pub uses_left: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// `active`, `revoked`, `expired` or `used_up`.
    pub state: String,
    pub note: Option<String>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub additional_data: Option<Value>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl EnrollmentTokenView {
    fn new(token: EnrollmentToken, secret: Option<String>) -> Self {
        Self {
            state: token.state(Utc::now()).to_owned(),
            uses_left: token.uses_left(),
            id: token.id,
            organization_id: token.organization_id,
            name: token.name,
            prefix: token.prefix,
            token: secret,
            policy_id: token.policy_id,
            group_id: token.group_id,
            max_uses: token.max_uses,
            use_count: token.use_count,
            expires_at: token.expires_at,
            revoked_at: token.revoked_at,
            note: token.note,
            additional_data: token.additional_data,
            created_by: token.created_by,
            created_at: token.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentTokenRequest {
    pub name: Option<String>,
    /// The policy enrolled devices get (their device policy layer).
    pub policy_id: Option<Uuid>,
    /// The fleet group enrolled devices join.
    pub group_id: Option<Uuid>,
    /// 1 to 1,000,000; none for unlimited.
    pub max_uses: Option<i64>,
    /// Shorthand for `maxUses: 1`.
    #[serde(default)]
    pub one_time: bool,
    /// Within 365 days; none for no expiry.
    pub expires_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// A JSON object (≤ 8 KiB) handed to every device that enrolls with the token.
    #[schema(value_type = Option<serde_json::Value>)]
    pub additional_data: Option<Value>,
}

/// Create an enrollment token (owners and admins). The answer carries the secret `token` —
/// the only time the API shows it; the QR code endpoint renders it again.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    request_body = EnrollmentTokenRequest,
    responses(
        (status = 201, body = Envelope<EnrollmentTokenView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/enrollment-tokens")]
pub async fn create_enrollment_token(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<EnrollmentTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let body = body.into_inner();
    let spec = EnrollmentTokenSpec::parse(
        body.name.as_deref(),
        body.policy_id,
        body.group_id,
        body.max_uses,
        body.one_time,
        crate::extractors::checked_time("expiresAt", body.expires_at)?,
        body.note.as_deref(),
        body.additional_data,
        Utc::now(),
    )?;
    let (token, secret) = FleetService::new(&state)
        .create_token(organization, caller.user_id, spec, &origin.0)
        .await?;
    Ok(envelope::created(EnrollmentTokenView::new(token, Some(secret))))
}

/// The organization's enrollment tokens, newest first (never their secrets).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<EnrollmentTokenView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/enrollment-tokens")]
pub async fn list_enrollment_tokens(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let tokens = FleetService::new(&state).tokens(organization).await?;
    Ok(envelope::ok(
        tokens
            .into_iter()
            .map(|token| EnrollmentTokenView::new(token, None))
            .collect::<Vec<_>>(),
    ))
}

/// One enrollment token (never its secret).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("tokenId" = Uuid, Path)),
    responses((status = 200, body = Envelope<EnrollmentTokenView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/enrollment-tokens/{tokenId}")]
pub async fn get_enrollment_token(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, token) = path.into_inner();
    let token = FleetService::new(&state).token(organization, token).await?;
    Ok(envelope::ok(EnrollmentTokenView::new(token, None)))
}

/// Revoke an enrollment token (owners and admins): devices can no longer enroll with it.
/// Devices already enrolled keep their device tokens.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("tokenId" = Uuid, Path)),
    responses((status = 204, description = "Revoked"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[delete("/organizations/{orgId}/enrollment-tokens/{tokenId}")]
pub async fn revoke_enrollment_token(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, token) = path.into_inner();
    FleetService::new(&state)
        .revoke_token(organization, token, caller.user_id, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QrQuery {
    /// `png` (default) or `svg`.
    pub format: Option<String>,
    /// Minimum width and height in pixels, 64 to 2048 (default 512).
    pub size: Option<u32>,
}

/// The token's QR code (owners and admins): the JSON payload of docs/organizations.md with
/// the server URL, the organization and the secret token. 409 for a token that cannot be used.
/// Each rendering is audited (`enrollment_token.qr_rendered`).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("tokenId" = Uuid, Path), QrQuery),
    responses(
        (status = 200, description = "The QR code", content_type = "image/png"),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[get("/organizations/{orgId}/enrollment-tokens/{tokenId}/qr")]
pub async fn enrollment_token_qr(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<QrQuery>,
) -> Result<HttpResponse, ApiError> {
    let (organization, token) = path.into_inner();
    // The QR carries the secret: readers may not see it.
    let format = match query.format.as_deref().unwrap_or("png") {
        "png" => QrFormat::Png,
        "svg" => QrFormat::Svg,
        _ => return Err(ApiError::invalid("format", "must be png or svg")),
    };
    let size = query.size.unwrap_or(512);
    if !(64..=2048).contains(&size) {
        return Err(ApiError::invalid("size", "must be between 64 and 2048"));
    }
    let (bytes, content_type) = FleetService::new(&state)
        .qr(organization, token, format, size, caller.user_id, &origin.0)
        .await?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-store"))
        .body(bytes))
}
