//! `/api/v1/devices`: the device app's registration (legacy `X-API-Key`, optional user) and
//! reading one device.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_domain::devices::{DeviceRecord, DeviceRegistration};
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

/// A device. `pushToken` and `ownerUserId` are shown to its owner and admins only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceView {
    pub id: Uuid,
    /// The identifier the app registered with.
    pub device_id: String,
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
            device_id: device.identifier,
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

/// Register or update a device. Needs the app's `X-API-Key`; with a user's bearer token as
/// well, the device is also linked to that user. Re-registering updates the device; a device
/// another user owns cannot be taken over (409).
#[utoipa::path(
    tag = "devices",
    security(("apiKey" = []), ("apiKey" = [], "bearer" = [])),
    request_body = RegisterDeviceRequest,
    responses(
        (status = 201, description = "Registered", body = Envelope<DeviceView>),
        (status = 200, description = "Updated", body = Envelope<DeviceView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, description = "Missing or invalid X-API-Key, or an invalid bearer token", body = ErrorEnvelope),
        (status = 409, description = "Owned by another account", body = ErrorEnvelope),
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
    // The bearer token is optional here, but when present it must be valid.
    let user = match bearer_token(&request) {
        Some(token) => {
            let ip = crate::extractors::client_ip(&request).map(|ip| ip.to_string());
            Some(identify(&state, Some(token), ip).await?.0)
        }
        None => None,
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
    let (device, created) = DeviceService::new(&state)
        .register(registration, user, &origin.0)
        .await?;
    let view = DeviceView::new(device, DeviceVisibility::Full);
    Ok(if created {
        envelope::created(view)
    } else {
        envelope::ok(view)
    })
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
