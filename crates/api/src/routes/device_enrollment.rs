//! The device side of fleets under `/api/v1/devices`: enrolling with a token, refreshing the
//! device token, and acknowledging commands.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::Deserialize;
use serde_json::Value;
use steward_domain::devices::DeviceRegistration;
use steward_domain::fleet::{DEVICE_TOKEN_PREFIX, Enrollment, Hardware};
use utoipa::ToSchema;
use uuid::Uuid;

use super::fleet_devices::CommandView;
use crate::auth::extractor_support::bearer_token;
use crate::auth::scopes::DevicesWrite;
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin};
use crate::fleet::{DeviceTokenView, EnrollmentOutcome, FleetService};
use crate::settings::SettingsCaller;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollRequest {
    /// The secret from the enrollment token or its QR code.
    pub enrollment_token: String,
    /// The identifier the device app chose (as in registration).
    pub device_id: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub push_token: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
}

/// Enroll a device with an organization's enrollment token: creates the device (or adopts the
/// registered one) as managed by the organization, with the token's policy and group, and
/// answers a 90-day device token, the effective settings and the token's `additionalData`.
/// Unknown tokens answer 401 `ENROLLMENT_TOKEN_INVALID`, revoked or expired ones 410
/// `ENROLLMENT_TOKEN_EXPIRED`, used-up ones 409 `ENROLLMENT_TOKEN_USED_UP`.
#[utoipa::path(
    tag = "devices",
    request_body = EnrollRequest,
    responses(
        (status = 201, body = Envelope<EnrollmentOutcome>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 410, body = ErrorEnvelope),
    )
)]
#[post("/enroll")]
pub async fn enroll_device(
    state: web::Data<AppState>,
    origin: Origin,
    body: Json<EnrollRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.enrollment_token.trim().is_empty() {
        return Err(ApiError::invalid("enrollmentToken", "is required"));
    }
    let device = DeviceRegistration::parse(
        &body.device_id,
        body.display_name.as_deref().unwrap_or(&body.device_id),
        body.platform.as_deref(),
        body.os_version.as_deref(),
        body.app_version.as_deref(),
        body.push_token.as_deref(),
        None,
    )?;
    let hardware = Hardware::parse(
        body.serial_number.as_deref(),
        body.manufacturer.as_deref(),
        body.model.as_deref(),
    )?;
    let outcome = FleetService::new(&state)
        .enroll(&body.enrollment_token, Enrollment { device, hardware }, &origin.0)
        .await?;
    crate::metrics::record_enrollment();
    Ok(envelope::created(EnrollmentOutcome::from(outcome)))
}

/// Exchange a live device token (`Authorization: Bearer stw_dev_…`) for a new one with a fresh
/// 90 days; the old one stops working.
#[utoipa::path(
    tag = "devices",
    security(("deviceToken" = [])),
    responses((status = 200, body = Envelope<DeviceTokenView>), (status = 401, body = ErrorEnvelope))
)]
#[post("/token/refresh")]
pub async fn refresh_device_token(
    request: HttpRequest,
    state: web::Data<AppState>,
    origin: Origin,
) -> Result<HttpResponse, ApiError> {
    let token = bearer_token(&request)
        .filter(|token| token.starts_with(DEVICE_TOKEN_PREFIX))
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "send the device token as a bearer token"))?;
    let view = FleetService::new(&state)
        .refresh_device_token(&token, &origin.0)
        .await?;
    Ok(envelope::ok(DeviceTokenView::from(view)))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgeRequest {
    /// What the device reports (e.g. `{"outcome": "wiped"}`).
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Value>,
}

/// The device acknowledges a command it received at a sync (device token or API key). 409
/// when it was already acknowledged or has expired.
#[utoipa::path(
    tag = "devices",
    security(("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), ("commandId" = Uuid, Path)),
    request_body(content = Option<AcknowledgeRequest>),
    responses(
        (status = 200, body = Envelope<CommandView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[post("/{deviceId}/commands/{commandId}/ack")]
pub async fn acknowledge_command(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: OptionalJson<AcknowledgeRequest>,
) -> Result<HttpResponse, ApiError> {
    let (device, command) = path.into_inner();
    let result = body.into_inner().result;
    let command = FleetService::new(&state)
        .acknowledge(caller.kind, device, command, result, &origin.0)
        .await?;
    Ok(envelope::ok(CommandView::from(command)))
}
