//! `/api/admin/v1/organizations/{orgId}/devices…`: the fleet list, actions (assign, suspend,
//! resume, retire, wipe), commands and bulk import; `…/policies/{id}/apply|unapply`.

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_domain::fleet::{
    Assignment, DeviceCommand, DeviceStatus, FleetDevice, FleetQuery, FleetSort, OnDuplicate, PolicyTargets,
};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::envelope::{self, Envelope, ListEnvelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin, PageQuery};
use crate::fleet::import::{ImportRows, MAX_IMPORT_BYTES, parse_csv, parse_json};
use crate::fleet::{FleetService, ImportReport, PolicyApplication};
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ImportQuery {
    /// Validate and report by line without importing.
    #[serde(default)]
    pub dry_run: bool,
    /// For devices that already exist: `skip` (default) or `update`.
    pub on_duplicate: Option<String>,
}

/// Import devices from CSV (`text/csv`, header line: `deviceId,displayName,platform,
/// serialNumber,manufacturer,model,policyId,groupId,assignedUserEmail`) or JSON (an array of
/// objects with those fields). `dryRun=true` reports every problem by line and what would be
/// created, updated or skipped. A real import is all or nothing (any problem: 400 with the
/// problems by line) and audited per device; imported devices wait in `pending` for their
/// enrollment.
#[utoipa::path(
    tag = "fleet",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, body = Envelope<ImportReport>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/devices/import")]
pub async fn import_fleet_devices(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<Uuid>,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let on_duplicate = on_duplicate(&query)?;
    let rows = read_import(&request, payload).await?;
    let report = FleetService::new(&state)
        .import_devices(
            organization,
            rows,
            query.dry_run,
            on_duplicate,
            caller.user_id,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(ImportReport::from(report)))
}

fn on_duplicate(query: &ImportQuery) -> Result<OnDuplicate, ApiError> {
    match query.on_duplicate.as_deref() {
        None | Some("skip") => Ok(OnDuplicate::Skip),
        Some("update") => Ok(OnDuplicate::Update),
        Some(_) => Err(ApiError::invalid("onDuplicate", "must be skip or update")),
    }
}

/// An import body, CSV or JSON by content type, read up to the import limit (larger than the
/// limit of other bodies).
async fn read_import(request: &HttpRequest, mut payload: web::Payload) -> Result<ImportRows, ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let csv = content_type.starts_with("text/csv");
    if !csv && !content_type.starts_with("application/json") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send text/csv or application/json",
        ));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ApiError::validation("the request body could not be read"))?;
        if body.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("an import body is at most {MAX_IMPORT_BYTES} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    // No database stores a NUL alike: refused in any cell, raw (CSV) or escaped (JSON).
    if body.contains(&0) || (!csv && crate::extractors::has_escaped_nul(&body)) {
        return Err(ApiError::invalid(
            "body",
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(if csv { parse_csv(&body) } else { parse_json(&body) }?)
}

/// Add existing accounts to the organization from CSV (`email,role`) or JSON (`[{email,
/// role}]`); `role` is `owner`, `admin` or `viewer` (default). `dryRun=true` reports problems by
/// line (unknown accounts, roles you may not grant, repeated emails); existing users are
/// skipped or, with `onDuplicate=update`, given the new role (owners are never changed by an
/// import). A real import is all or nothing and audited per user.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, body = Envelope<ImportReport>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/users/import")]
pub async fn import_org_users(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::ManageUsers>,
    origin: Origin,
    path: web::Path<Uuid>,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let actor = caller.actor;
    let on_duplicate = on_duplicate(&query)?;
    let rows = read_import(&request, payload).await?;
    let report = FleetService::new(&state)
        .import_org_users(
            organization,
            actor,
            rows,
            query.dry_run,
            on_duplicate,
            caller.user_id,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(ImportReport::from(report)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyRequest {
    /// Devices to give (or take) the policy as their device policy.
    #[serde(default)]
    pub device_ids: Vec<Uuid>,
    /// Fleet groups to give (or take) the policy as their group policy.
    #[serde(default)]
    pub group_ids: Vec<Uuid>,
    /// Answer, per device, the effective settings that would change; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn targets(body: ApplyRequest) -> Result<(PolicyTargets, bool), ApiError> {
    match (body.device_ids.is_empty(), body.group_ids.is_empty()) {
        (false, true) => Ok((PolicyTargets::Devices(body.device_ids), body.dry_run)),
        (true, false) => Ok((PolicyTargets::Groups(body.group_ids), body.dry_run)),
        _ => Err(ApiError::validation("name either deviceIds or groupIds")),
    }
}

async fn apply_or_unapply(
    state: &AppState,
    caller: &OrgAccess<org_actions::Manage>,
    origin: &Origin,
    path: (Uuid, Uuid),
    body: ApplyRequest,
    apply: bool,
) -> Result<HttpResponse, ApiError> {
    let (organization, policy) = path;
    let (targets, dry_run) = targets(body)?;
    let outcome = FleetService::new(state)
        .apply_policy(
            organization,
            policy,
            targets,
            apply,
            dry_run,
            caller.user_id,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(PolicyApplication::from(outcome)))
}

/// Apply a policy to devices (their device policy) or fleet groups (their group policy);
/// with `dryRun` answer each device's effective-settings diff and write nothing.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("policyId" = Uuid, Path)),
    request_body = ApplyRequest,
    responses(
        (status = 200, body = Envelope<PolicyApplication>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/policies/{policyId}/apply")]
pub async fn apply_policy(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<ApplyRequest>,
) -> Result<HttpResponse, ApiError> {
    apply_or_unapply(
        &state,
        &caller,
        &origin,
        path.into_inner(),
        body.into_inner(),
        true,
    )
    .await
}

/// Remove a policy from devices or fleet groups that carry it; `dryRun` as for apply.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("policyId" = Uuid, Path)),
    request_body = ApplyRequest,
    responses(
        (status = 200, body = Envelope<PolicyApplication>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/policies/{policyId}/unapply")]
pub async fn unapply_policy(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<ApplyRequest>,
) -> Result<HttpResponse, ApiError> {
    apply_or_unapply(
        &state,
        &caller,
        &origin,
        path.into_inner(),
        body.into_inner(),
        false,
    )
    .await
}
