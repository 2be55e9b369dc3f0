//! Unlock requests: a device's user asks `…/settings/{key}/unlock-request`; group owners and
//! admins list (`…/unlock-requests` per device or group) and approve or deny
//! (`/api/v1/unlock-requests/{id}/approve|deny`).

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_domain::settings::store::{UnlockRequest, UnlockStatus};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::auth::scopes::{DevicesRead, DevicesWrite};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{OptionalJson, Origin};
use crate::groups::{GroupAccess, actions};
use crate::settings::{SettingsCaller, SettingsService, UnlockWindow};
use crate::state::AppState;

use super::settings::access;

/// An unlock request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnlockRequestView {
    pub id: Uuid,
    pub device_id: Uuid,
    pub key: String,
    pub requested_by: Uuid,
    pub reason: Option<String>,
    /// pending, approved or denied.
    pub status: String,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    /// An approval for a limited time: when the lock returns.
    pub unlock_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<UnlockRequest> for UnlockRequestView {
    fn from(request: UnlockRequest) -> Self {
        Self {
            id: request.id,
            device_id: request.device_id,
            key: request.setting_key,
            requested_by: request.requested_by,
            reason: request.reason,
            status: request.status.as_str().to_owned(),
            decided_by: request.decided_by,
            decided_at: request.decided_at,
            note: request.decision_note,
            unlock_until: request.unlock_until,
            created_at: request.created_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnlockRequestBody {
    pub reason: Option<String>,
}

/// Ask for a locked key to be unlocked (the device's user). One pending request per key.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), ("key" = String, Path)),
    request_body = UnlockRequestBody,
    responses(
        (status = 201, body = Envelope<UnlockRequestView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Not locked, locked by a policy, or already requested", body = ErrorEnvelope),
    )
)]
#[post("/{deviceId}/settings/{key}/unlock-request")]
pub async fn request_unlock(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, String)>,
    body: OptionalJson<UnlockRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let (device, key) = path.into_inner();
    let access = access(&state, &caller, device).await?;
    let reason = body.into_inner().reason;
    let request = SettingsService::new(&state)
        .request_unlock(&access, &key, reason, &origin.0)
        .await?;
    crate::metrics::record_unlock_request("requested");
    Ok(envelope::created(UnlockRequestView::from(request)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// pending, approved or denied.
    pub status: Option<String>,
}

fn parse_status(query: &StatusQuery) -> Result<Option<UnlockStatus>, ApiError> {
    query
        .status
        .as_deref()
        .map(|status| {
            UnlockStatus::parse(status)
                .ok_or_else(|| ApiError::validation("status: must be pending, approved or denied"))
        })
        .transpose()
}

/// The device's unlock requests, newest first.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), StatusQuery),
    responses((status = 200, body = Envelope<Vec<UnlockRequestView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{deviceId}/unlock-requests")]
pub async fn device_unlock_requests(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<Uuid>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    access(&state, &caller, device).await?;
    let requests = SettingsService::new(&state)
        .device_unlock_requests(device, parse_status(&query)?)
        .await?;
    let views: Vec<UnlockRequestView> = requests.into_iter().map(UnlockRequestView::from).collect();
    Ok(envelope::ok(views))
}

/// Unlock requests on the devices of the members you manage in this group (owners and admins).
#[utoipa::path(
    tag = "groups",
    security(("bearer" = [])),
    params(("groupId" = Uuid, Path), StatusQuery),
    responses(
        (status = 200, body = Envelope<Vec<UnlockRequestView>>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/{groupId}/unlock-requests")]
pub async fn group_unlock_requests(
    state: web::Data<AppState>,
    access: GroupAccess<actions::ReviewSettings>,
    query: web::Query<StatusQuery>,
) -> Result<HttpResponse, ApiError> {
    let requests = SettingsService::new(&state)
        .group_unlock_requests(access.group_id(), access.role(), parse_status(&query)?)
        .await?;
    let views: Vec<UnlockRequestView> = requests.into_iter().map(UnlockRequestView::from).collect();
    Ok(envelope::ok(views))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DecideUnlockRequest {
    pub note: Option<String>,
    /// Approvals: lift the lock for this many minutes (e.g. 15, 60) …
    pub duration_minutes: Option<i64>,
    /// … or until this time; neither lifts it for good.
    pub until: Option<DateTime<Utc>>,
}

/// Approve an unlock request: the lock is lifted for good, for `durationMinutes`, or until
/// `until`, after which it returns by itself.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = [])),
    params(("requestId" = Uuid, Path)),
    request_body = DecideUnlockRequest,
    responses(
        (status = 200, body = Envelope<UnlockRequestView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Already decided", body = ErrorEnvelope),
    )
)]
#[post("/{requestId}/approve")]
pub async fn approve_unlock(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: OptionalJson<DecideUnlockRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let until = crate::extractors::checked_time("until", body.until)?;
    let window = UnlockWindow::parse(body.duration_minutes, until)?;
    let decided = SettingsService::new(&state)
        .decide_unlock(
            caller.user_id,
            path.into_inner(),
            true,
            body.note,
            window,
            &origin.0,
        )
        .await?;
    crate::metrics::record_unlock_request("approved");
    Ok(envelope::ok(UnlockRequestView::from(decided)))
}

/// Deny an unlock request, with a note.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = [])),
    params(("requestId" = Uuid, Path)),
    request_body = DecideUnlockRequest,
    responses(
        (status = 200, body = Envelope<UnlockRequestView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Already decided", body = ErrorEnvelope),
    )
)]
#[post("/{requestId}/deny")]
pub async fn deny_unlock(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: OptionalJson<DecideUnlockRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let decided = SettingsService::new(&state)
        .decide_unlock(
            caller.user_id,
            path.into_inner(),
            false,
            body.note,
            UnlockWindow::Forever,
            &origin.0,
        )
        .await?;
    crate::metrics::record_unlock_request("denied");
    Ok(envelope::ok(UnlockRequestView::from(decided)))
}
