//! `/api/admin/v1/organizations/{orgId}/devices…`: the fleet list, one device and its
//! effective settings, actions (assign, suspend, resume, retire, wipe) and commands.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_domain::fleet::{Assignment, DeviceCommand, DeviceStatus, FleetDevice, FleetQuery, FleetSort};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin, PageQuery};

use crate::fleet::FleetService;
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::settings::{DeviceSettingsView, SettingsService};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetDeviceView {
    pub id: Uuid,
    /// The identifier the device app chose.
    pub device_id: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    /// `active` or `suspended`.
    pub status: String,
    /// `enrolled`, or `pending` for an imported device that has not enrolled yet.
    pub enrollment_status: String,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub assigned_user_id: Option<Uuid>,
    pub owner_user_id: Option<Uuid>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub settings_version: i64,
    pub applied_version: Option<i64>,
}

impl From<FleetDevice> for FleetDeviceView {
    fn from(device: FleetDevice) -> Self {
        Self {
            id: device.id,
            device_id: device.identifier,
            display_name: device.display_name,
            platform: device.platform,
            os_version: device.os_version,
            app_version: device.app_version,
            serial_number: device.serial_number,
            manufacturer: device.manufacturer,
            model: device.model,
            status: device.status.as_str().to_owned(),
            enrollment_status: device.enrollment_status,
            policy_id: device.policy_id,
            group_id: device.group_id,
            assigned_user_id: device.assigned_user_id,
            owner_user_id: device.owner_user_id,
            last_seen_at: device.last_seen_at,
            enrolled_at: device.enrolled_at,
            settings_version: device.settings_version,
            applied_version: device.applied_version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommandView {
    pub id: Uuid,
    pub device_id: Uuid,
    /// `wipe`.
    pub command: String,
    /// `pending`, `delivered`, `acknowledged` or `expired`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<serde_json::Value>)]
    pub result: Option<Value>,
}

impl From<DeviceCommand> for CommandView {
    fn from(command: DeviceCommand) -> Self {
        Self {
            id: command.id,
            device_id: command.device_id,
            command: command.command,
            status: command.status.as_str().to_owned(),
            created_at: command.created_at,
            expires_at: command.expires_at,
            delivered_at: command.delivered_at,
            acknowledged_at: command.acknowledged_at,
            result: command.result,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct FleetFilter {
    /// `active` or `suspended`.
    pub status: Option<String>,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub platform: Option<String>,
    pub assigned_user_id: Option<Uuid>,
    /// Last seen before this time (RFC 3339).
    pub last_seen_before: Option<DateTime<Utc>>,
    pub last_seen_after: Option<DateTime<Utc>>,
    /// Text in the name, serial number or device identifier (case-insensitive).
    pub q: Option<String>,
    /// `name` (default), `lastSeenAt`, `enrolledAt`, `status` or `platform`.
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
}

fn fleet_query(
    filter: FleetFilter,
    page: PageQuery,
) -> Result<(FleetQuery, steward_domain::PageRequest), ApiError> {
    let page = page.into_request()?;
    let status = filter
        .status
        .as_deref()
        .map(|s| {
            DeviceStatus::parse(s).ok_or_else(|| ApiError::invalid("status", "must be active or suspended"))
        })
        .transpose()?;
    let sort = filter
        .sort
        .as_deref()
        .map(|s| {
            FleetSort::parse(s).ok_or_else(|| {
                ApiError::invalid("sort", "must be name, lastSeenAt, enrolledAt, status or platform")
            })
        })
        .transpose()?
        .unwrap_or(FleetSort::Name);
    let descending = match filter.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(ApiError::invalid("order", "must be asc or desc")),
    };
    if filter.q.as_deref().is_some_and(|q| q.chars().count() > 100) {
        return Err(ApiError::invalid("q", "must be at most 100 characters"));
    }
    Ok((
        FleetQuery {
            status,
            policy_id: filter.policy_id,
            group_id: filter.group_id,
            platform: filter.platform,
            assigned_user_id: filter.assigned_user_id,
            last_seen_before: crate::extractors::checked_time("lastSeenBefore", filter.last_seen_before)?,
            last_seen_after: crate::extractors::checked_time("lastSeenAfter", filter.last_seen_after)?,
            search: filter.q,
            sort,
            descending,
            offset: page.offset(),
            limit: page.per_page(),
        },
        page,
    ))
}

/// The organization's managed devices, filtered, sorted and paged.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), FleetFilter, PageQuery),
    responses(
        (status = 200, body = ListEnvelope<FleetDeviceView>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/organizations/{orgId}/devices")]
pub async fn list_fleet_devices(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<Uuid>,
    filter: web::Query<FleetFilter>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let (query, page) = fleet_query(filter.into_inner(), page.into_inner())?;
    let (devices, total) = FleetService::new(&state).fleet(organization, &query).await?;
    let views: Vec<FleetDeviceView> = devices.into_iter().map(FleetDeviceView::from).collect();
    Ok(envelope::page(views, page, total))
}

/// One managed device of the organization.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    responses((status = 200, body = Envelope<FleetDeviceView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/devices/{deviceId}")]
pub async fn get_fleet_device(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, device) = path.into_inner();
    let device = FleetService::new(&state).device(organization, device).await?;
    Ok(envelope::ok(FleetDeviceView::from(device)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainParam {
    /// Add each key's explanation: winning layer, overridden layers, conflicts.
    pub explain: Option<bool>,
}

/// A managed device's effective settings as the organization sees them (any org role);
/// `?explain=true` shows which policy layer won each key and the conflicts.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path), ExplainParam),
    responses((status = 200, body = Envelope<DeviceSettingsView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/devices/{deviceId}/settings")]
pub async fn fleet_device_settings(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<ExplainParam>,
) -> Result<HttpResponse, ApiError> {
    let (organization, device) = path.into_inner();
    FleetService::new(&state).device(organization, device).await?;
    let (view, _) = SettingsService::new(&state)
        .effective(device, query.explain.unwrap_or(false))
        .await?;
    Ok(envelope::ok(DeviceSettingsView::from(view)))
}

/// A field that may be left out (unchanged), `null` (cleared) or a value.
fn patch<'de, D>(deserializer: D) -> Result<Option<Option<Uuid>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<Uuid>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssignRequest {
    /// The device policy; `null` removes it, leaving it out keeps it.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Uuid>)]
    pub policy_id: Option<Option<Uuid>>,
    /// The fleet group; `null` removes the device from its group.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Uuid>)]
    pub group_id: Option<Option<Uuid>>,
    /// The organization member using the device; `null` unassigns.
    #[serde(default, deserialize_with = "patch")]
    #[schema(value_type = Option<Uuid>)]
    pub user_id: Option<Option<Uuid>>,
}

/// Assign a policy, group and/or user (owners and admins); audited, pushes the device.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    request_body = AssignRequest,
    responses(
        (status = 200, body = Envelope<FleetDeviceView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/devices/{deviceId}/assign")]
pub async fn assign_fleet_device(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<AssignRequest>,
) -> Result<HttpResponse, ApiError> {
    let (organization, device) = path.into_inner();
    let body = body.into_inner();
    let assignment = Assignment {
        policy_id: body.policy_id,
        group_id: body.group_id,
        assigned_user_id: body.user_id,
    };
    let device = FleetService::new(&state)
        .assign(organization, device, assignment, caller.user_id, &origin.0)
        .await?;
    Ok(envelope::ok(FleetDeviceView::from(device)))
}

async fn set_suspended(
    state: &AppState,
    caller: &OrgAccess<org_actions::Manage>,
    origin: &Origin,
    path: (Uuid, Uuid),
    suspend: bool,
) -> Result<HttpResponse, ApiError> {
    let (organization, device) = path;
    let device = FleetService::new(state)
        .set_suspended(organization, device, suspend, caller.user_id, &origin.0)
        .await?;
    Ok(envelope::ok(FleetDeviceView::from(device)))
}

/// Suspend a device (owners and admins): its device token and API key calls answer 403
/// `DEVICE_SUSPENDED` until it is resumed. 409 when already suspended.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<FleetDeviceView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/devices/{deviceId}/suspend")]
pub async fn suspend_fleet_device(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    set_suspended(&state, &caller, &origin, path.into_inner(), true).await
}

/// Resume a suspended device (owners and admins). 409 when it is not suspended.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    responses(
        (status = 200, body = Envelope<FleetDeviceView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/devices/{deviceId}/resume")]
pub async fn resume_fleet_device(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    set_suspended(&state, &caller, &origin, path.into_inner(), false).await
}

/// Retire a device (owners and admins): it becomes unmanaged and leaves the organization, its
/// policy, group and assignment are cleared, its device tokens revoked and open commands
/// expired. Its owner (if any) keeps it as a personal device.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    responses((status = 204, description = "Retired"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[post("/organizations/{orgId}/devices/{deviceId}/retire")]
pub async fn retire_fleet_device(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, device) = path.into_inner();
    FleetService::new(&state)
        .retire(organization, device, caller.user_id, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WipeRequest {
    /// How long the device has to take the command: 60 s to 30 days (default 7 days).
    pub expires_in_seconds: Option<i64>,
}

/// Wipe a device (owners and admins): a command the device receives at its next sync
/// (pending → delivered) and acknowledges (→ acknowledged); expired when it did not within
/// its lifetime. Pushes the device. Answers 202 with the command.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    request_body(content = Option<WipeRequest>),
    responses(
        (status = 202, body = Envelope<CommandView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/devices/{deviceId}/wipe")]
pub async fn wipe_fleet_device(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: OptionalJson<WipeRequest>,
) -> Result<HttpResponse, ApiError> {
    let (organization, device) = path.into_inner();
    let body = body.into_inner();
    let command = FleetService::new(&state)
        .wipe(
            organization,
            device,
            body.expires_in_seconds,
            caller.user_id,
            &origin.0,
        )
        .await?;
    Ok(envelope::accepted(CommandView::from(command)))
}

/// The device's commands and their status, newest first.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("deviceId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<CommandView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/devices/{deviceId}/commands")]
pub async fn fleet_device_commands(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, device) = path.into_inner();
    let commands = FleetService::new(&state).commands(organization, device).await?;
    Ok(envelope::ok(
        commands.into_iter().map(CommandView::from).collect::<Vec<_>>(),
    ))
}

/// The export's format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FleetExportFormat {
    /// `csv` or `json` (default).
    pub format: Option<String>,
}

/// Export the organization's devices matching the fleet list's filters and order as a
/// background job (anyone who may view the organization): `202` at once with
/// `Location: /api/admin/v1/jobs/{id}`; the job's file (`GET /jobs/{id}/result`) is CSV with a
/// header row or a JSON array.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), FleetFilter, FleetExportFormat),
    responses(
        (status = 202, description = "The export job, at `Location`", body = crate::envelope::Envelope<crate::routes::jobs::JobView>),
        (status = 400, description = "A filter or format that does not parse", body = ErrorEnvelope),
        (status = 404, description = "No such organization, or not yours", body = ErrorEnvelope),
        (status = 429, description = "Ten of your jobs are already waiting or running", body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/devices/export")]
pub async fn export_fleet_devices(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
    origin: crate::extractors::Origin,
    filter: web::Query<FleetFilter>,
    format: web::Query<FleetExportFormat>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be csv or json")),
    };
    let (query, _) = fleet_query(
        filter.into_inner(),
        PageQuery {
            page: None,
            per_page: None,
        },
    )?;
    let job = steward_app::jobs::JobService::new(&state)
        .submit_fleet_export(&caller.principal, caller.organization.id, &query, csv, &origin.0)
        .await?;
    Ok(crate::routes::jobs::accepted(job))
}
