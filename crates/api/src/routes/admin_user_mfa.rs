//! `/api/admin/v1/users/{userId}/mfa…`: an operator resets an account's second factor, and a
//! super_admin exempts an account from admin MFA enforcement.

use actix_web::{HttpResponse, delete, put, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use steward_app::admin_users::UserAdminService;
use utoipa::ToSchema;
use uuid::Uuid;

use super::admin::MfaExemptionView;
use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MfaExemptionRequest {
    /// Why this account may work without a second factor (1–500 characters).
    pub reason: String,
    /// When the exemption ends; none: until removed.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Exempt an account from admin MFA enforcement (`super_admin` only; others 403), until
/// `expiresAt` when given. Setting it again replaces it. Audited as
/// `admin.mfa_exemption_set`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    request_body = MfaExemptionRequest,
    responses(
        (status = 200, body = Envelope<MfaExemptionView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, description = "Not a super_admin", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[put("/users/{userId}/mfa-exemption")]
pub async fn set_mfa_exemption(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<MfaExemptionRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let exemption = UserAdminService::new(&state)
        .set_mfa_exemption(
            &admin.0.principal,
            path.into_inner(),
            &body.reason,
            body.expires_at,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(MfaExemptionView::from(exemption)))
}

/// End an account's exemption (`super_admin` only). Audited as `admin.mfa_exemption_removed`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Not a super_admin", body = ErrorEnvelope),
        (status = 404, description = "No such user, or no exemption", body = ErrorEnvelope),
    )
)]
#[delete("/users/{userId}/mfa-exemption")]
pub async fn remove_mfa_exemption(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    UserAdminService::new(&state)
        .remove_mfa_exemption(&admin.0.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Remove an account's second factor (`users:write`) when its holder lost the device and the
/// recovery codes: its sessions end, it signs in with the password alone and enrols again.
/// Nobody resets an account more powerful than their own (403). Audited as `admin.mfa_reset`.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses(
        (status = 204, description = "Removed; sessions ended"),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The account has no second factor", body = ErrorEnvelope),
    )
)]
#[delete("/users/{userId}/mfa")]
pub async fn reset_mfa(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    UserAdminService::new(&state)
        .reset_mfa(&admin.0.principal, path.into_inner(), &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
