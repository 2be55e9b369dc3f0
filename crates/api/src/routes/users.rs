//! `/api/v1/users/{userId}`: a user's profile, devices, links and transfers. Only the user
//! (or a system admin) acts; everyone else gets 404.

use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_domain::devices::{DeviceTransfer, TransferStatus};
use steward_domain::rbac::Permission;
use utoipa::ToSchema;
use uuid::Uuid;

use super::devices::DeviceView;
use crate::auth::Caller;
use crate::auth::scopes::{AccountRead, DevicesRead, DevicesWrite};
use crate::devices::{DeviceService, DeviceVisibility, TransferOutcome, TransferTarget};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// A user as the caller may see them: email and status for themself and admins only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    pub display_name: String,
    pub avatar_url: Option<String>,
    pub email: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A user: in full for themself and admins (`users:read`), the public part for people who
/// share a group with them, 404 for everyone else.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses((status = 200, body = Envelope<UserView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{userId}")]
pub async fn get_user(
    state: web::Data<AppState>,
    caller: Caller<AccountRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (user, full) = DeviceService::new(&state)
        .user_for(caller.user_id, path.into_inner())
        .await?;
    Ok(envelope::ok(UserView {
        id: user.id,
        display_name: user.display_name,
        avatar_url: user.avatar_url,
        email: full.then_some(user.email),
        created_at: full.then_some(user.created_at),
    }))
}

/// The user's devices.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<DeviceView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{userId}/devices")]
pub async fn user_devices(
    state: web::Data<AppState>,
    caller: Caller<DevicesRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = path.into_inner();
    let service = DeviceService::new(&state);
    service
        .acting_for(caller.user_id, user, Permission::DevicesRead)
        .await?;
    let views: Vec<DeviceView> = service
        .devices_of(user)
        .await?
        .into_iter()
        .map(|device| DeviceView::new(device, DeviceVisibility::Full))
        .collect();
    Ok(envelope::ok(views))
}

/// Link a registered, unowned device to the user (idempotent for their own devices). A device
/// owned by someone else answers 404.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    responses((status = 200, body = Envelope<DeviceView>), (status = 404, body = ErrorEnvelope))
)]
#[post("/{userId}/devices/{deviceId}/link")]
pub async fn link_device(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (user, device) = path.into_inner();
    let service = DeviceService::new(&state);
    let access = service
        .acting_for(caller.user_id, user, Permission::DevicesWrite)
        .await?;
    let device = service
        .link(caller.user_id, access, user, device, &origin.0)
        .await?;
    Ok(envelope::ok(DeviceView::new(device, DeviceVisibility::Full)))
}

/// Unlink the user's device; it stays registered, owned by nobody.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    responses((status = 204, description = "Unlinked"), (status = 404, body = ErrorEnvelope))
)]
#[delete("/{userId}/devices/{deviceId}/unlink")]
pub async fn unlink_device(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (user, device) = path.into_inner();
    let service = DeviceService::new(&state);
    let access = service
        .acting_for(caller.user_id, user, Permission::DevicesWrite)
        .await?;
    service
        .unlink(caller.user_id, access, user, device, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferDeviceRequest {
    /// The recipient's id, or
    pub to_user_id: Option<Uuid>,
    /// their email.
    pub to_email: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransferView {
    pub id: Uuid,
    pub device_id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Uuid,
    /// pending, accepted, declined or cancelled.
    pub status: String,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<DeviceTransfer> for TransferView {
    fn from(transfer: DeviceTransfer) -> Self {
        Self {
            id: transfer.id,
            device_id: transfer.device_id,
            from_user_id: transfer.from_user_id,
            to_user_id: transfer.to_user_id,
            status: transfer.status.as_str().to_owned(),
            expires_at: transfer.expires_at,
            decided_at: transfer.decided_at,
            created_at: transfer.created_at,
        }
    }
}

/// Transfer the device to another user. The recipient must accept within 7 days
/// (`202` with the pending transfer); a system admin's transfer takes effect at once (`200`
/// with the device).
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    request_body = TransferDeviceRequest,
    responses(
        (status = 202, description = "Pending the recipient's acceptance", body = Envelope<TransferView>),
        (status = 200, description = "Transferred by an admin", body = Envelope<DeviceView>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "A transfer is already pending", body = ErrorEnvelope),
    )
)]
#[post("/{userId}/devices/{deviceId}/transfer")]
pub async fn transfer_device(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<TransferDeviceRequest>,
) -> Result<HttpResponse, ApiError> {
    let (user, device) = path.into_inner();
    let body = body.into_inner();
    let target = match (body.to_user_id, body.to_email) {
        (Some(id), None) => TransferTarget::User(id),
        (None, Some(email)) => TransferTarget::Email(email),
        _ => {
            return Err(ApiError::invalid(
                "toUserId",
                "give exactly one of toUserId and toEmail",
            ));
        }
    };
    let service = DeviceService::new(&state);
    let access = service
        .acting_for(caller.user_id, user, Permission::DevicesWrite)
        .await?;
    Ok(
        match service
            .transfer(caller.user_id, access, user, device, target, &origin.0)
            .await?
        {
            TransferOutcome::Pending(transfer) => envelope::accepted(TransferView::from(transfer)),
            TransferOutcome::Completed(device) => {
                envelope::ok(DeviceView::new(device, DeviceVisibility::Full))
            }
        },
    )
}

/// Pending transfers to or from the user.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<TransferView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{userId}/device-transfers")]
pub async fn list_transfers(
    state: web::Data<AppState>,
    caller: Caller<DevicesRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = path.into_inner();
    let service = DeviceService::new(&state);
    service
        .acting_for(caller.user_id, user, Permission::DevicesRead)
        .await?;
    let views: Vec<TransferView> = service
        .transfers(user)
        .await?
        .into_iter()
        .map(TransferView::from)
        .collect();
    Ok(envelope::ok(views))
}

async fn decide(
    state: &AppState,
    caller: Uuid,
    user: Uuid,
    transfer: Uuid,
    decision: TransferStatus,
    origin: &Origin,
) -> Result<HttpResponse, ApiError> {
    let decided = DeviceService::new(state)
        .decide(caller, user, transfer, decision, &origin.0)
        .await?;
    Ok(envelope::ok(TransferView::from(decided)))
}

/// Accept a transfer addressed to you; the device becomes yours.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("transferId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<TransferView>),
        (status = 404, description = "No such pending transfer to you", body = ErrorEnvelope),
        (status = 409, description = "The sender no longer owns the device", body = ErrorEnvelope),
    )
)]
#[post("/{userId}/device-transfers/{transferId}/accept")]
pub async fn accept_transfer(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (user, transfer) = path.into_inner();
    decide(
        &state,
        caller.user_id,
        user,
        transfer,
        TransferStatus::Accepted,
        &origin,
    )
    .await
}

/// Decline a transfer addressed to you.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("transferId" = Uuid, Path)),
    responses((status = 200, body = Envelope<TransferView>), (status = 404, body = ErrorEnvelope))
)]
#[post("/{userId}/device-transfers/{transferId}/decline")]
pub async fn decline_transfer(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (user, transfer) = path.into_inner();
    decide(
        &state,
        caller.user_id,
        user,
        transfer,
        TransferStatus::Declined,
        &origin,
    )
    .await
}

/// Cancel a transfer you sent.
#[utoipa::path(
    tag = "users",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("transferId" = Uuid, Path)),
    responses((status = 200, body = Envelope<TransferView>), (status = 404, body = ErrorEnvelope))
)]
#[delete("/{userId}/device-transfers/{transferId}")]
pub async fn cancel_transfer(
    state: web::Data<AppState>,
    caller: Caller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (user, transfer) = path.into_inner();
    decide(
        &state,
        caller.user_id,
        user,
        transfer,
        TransferStatus::Cancelled,
        &origin,
    )
    .await
}
