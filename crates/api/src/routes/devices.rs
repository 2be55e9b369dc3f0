//! `/api/v1/devices`: the device app's registration (legacy `X-API-Key`, optional user) and
//! reading one device.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::devices::DeviceCredentials;
use steward_domain::devices::{DeviceRecord, DeviceRegistration};
use steward_domain::fleet::DEVICE_TOKEN_PREFIX;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::auth::extractor_support::{bearer_token, identify};
use crate::auth::scopes::DevicesRead;
use crate::devices::{AppApiKey, DeviceService, DeviceVisibility};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// A device. `deviceId` (the app's identifier), `pushToken` and `ownerUserId` are shown to its
/// owner and admins only (`null` for fellow group members).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    pub id: Uuid,
    /// The identifier the app registered with (owner and admins only).
    pub device_id: Option<String>,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub push_token: Option<String>,
    pub owner_user_id: Option<Uuid>,
    /// The legacy group string older apps send, kept as given.
    pub group_id: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl DeviceView {
    pub fn new(device: DeviceRecord, visibility: DeviceVisibility) -> Self {
        let full = visibility == DeviceVisibility::Full;
        Self {
            id: device.id,
            device_id: Some(device.identifier).filter(|_| full),
            display_name: device.display_name,
            platform: device.platform,
            os_version: device.os_version,
            app_version: device.app_version,
            push_token: device.push_token.filter(|_| full),
            owner_user_id: device.owner_user_id.filter(|_| full),
            group_id: device.legacy_group_id.filter(|_| full),
            last_seen_at: device.last_seen_at,
            version: device.version,
            created_at: device.created_at,
            updated_at: device.updated_at,
        }
    }
}

/// A registration's answer: the device, and — for a new device, its owner or the device
/// itself — its new device token (`stw_dev_…`, 90 days, shown once; older ones are revoked).
/// The device uses it as `Authorization: Bearer …` on the device API (settings, sync, command
/// acknowledgements) and to register again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredDeviceView {
    #[serde(flatten)]
    pub device: DeviceView,
    pub device_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterDeviceRequest {
    /// The app's stable identifier for this device (1 to 128 characters).
    pub device_id: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub push_token: Option<String>,
    /// Legacy free-form group string; accepted and kept.
    pub group_id: Option<String>,
}

/// Register or update a device. Needs the app's `X-API-Key`; with a user's bearer token the
/// device is also linked to that user. A new device, its owner or the device itself (its
/// device token as the bearer) receive a fresh `deviceToken` for the device API. A registered
/// device is not updated by the app's key alone (409), nor taken over from another user (409).
#[utoipa::path(
    tag = "devices",
    security(("apiKey" = []), ("apiKey" = [], "bearer" = []), ("apiKey" = [], "deviceToken" = [])),
    request_body = RegisterDeviceRequest,
    responses(
        (status = 201, description = "Registered", body = Envelope<RegisteredDeviceView>),
        (status = 200, description = "Updated", body = Envelope<RegisteredDeviceView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid X-API-Key, or an invalid bearer token", body = ErrorEnvelope),
        (status = 409, description = "Owned by another account, or registered already and not re-registered by its owner or itself", body = ErrorEnvelope),
    )
)]
#[post("/register")]
pub async fn register_device(
    request: HttpRequest,
    state: web::Data<AppState>,
    _key: AppApiKey,
    origin: Origin,
    body: Json<RegisterDeviceRequest>,
) -> Result<HttpResponse, ApiError> {
    // The bearer token is optional here, but when present it must be valid: a user's token
    // (the device joins or stays with that user), or the device's own token.
    let (user, acting_device) = match bearer_token(&request) {
        Some(token) if token.starts_with(DEVICE_TOKEN_PREFIX) => {
            // A suspended device may not mint itself a new token.
            let device = DeviceCredentials::new(&state).device_token(&token).await?;
            (None, Some(device))
        }
        Some(token) => {
            let ip = crate::extractors::client_ip(&request).map(|ip| ip.to_string());
            (Some(identify(&state, Some(token), ip).await?.user), None)
        }
        None => (None, None),
    };
    let body = body.into_inner();
    let registration = DeviceRegistration::parse(
        &body.device_id,
        &body.display_name,
        body.platform.as_deref(),
        body.os_version.as_deref(),
        body.app_version.as_deref(),
        body.push_token.as_deref(),
        body.group_id.as_deref(),
    )?;
    let (device, created, device_token) = DeviceService::new(&state)
        .register(registration, user, acting_device, &origin.0)
        .await?;
    let view = RegisteredDeviceView {
        device: DeviceView::new(device, DeviceVisibility::Full),
        device_token,
    };
    let mut response = if created {
        envelope::created(view)
    } else {
        envelope::ok(view)
    };
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// One device, for its owner, system admins, and fellow group members (member or above,
/// basic info). Everyone else gets 404.
#[utoipa::path(
    tag = "devices",
    security(("bearer" = [])),
    params(("deviceId" = Uuid, Path, description = "Steward's device id")),
    responses((status = 200, body = Envelope<DeviceView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{deviceId}")]
pub async fn get_device(
    state: web::Data<AppState>,
    caller: Caller<DevicesRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (device, visibility) = DeviceService::new(&state)
        .device_for(caller.user_id, path.into_inner())
        .await?;
    Ok(envelope::ok(DeviceView::new(device, visibility)))
}
