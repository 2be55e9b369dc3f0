//! Bulk imports, as CSV or JSON, with dry runs that report every problem by line: devices and
//! members into an organization (`…/devices/import`, `…/users/import`) and accounts for
//! operators (`/api/admin/v1/users/import`).

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, post, web};
use futures_util::StreamExt;
use serde::Deserialize;
use steward_domain::fleet::OnDuplicate;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extractors::Origin;
use crate::fleet::import::{ImportRows, MAX_IMPORT_BYTES, parse_csv, parse_json};
use steward_app::jobs::{DeviceImportRequest, JobService};
use steward_app::organizations::OrganizationService;

use crate::fleet::{FleetService, ImportReport};
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ImportQuery {
    /// Validate and report by line without importing.
    #[serde(default)]
    pub dry_run: bool,
    /// For devices that already exist: `skip` (default) or `update`.
    pub on_duplicate: Option<String>,
    /// Run as a background job: `202` at once with `Location: /api/admin/v1/jobs/{id}`; the
    /// job's result is the report (device imports only).
    #[serde(default, rename = "async")]
    #[param(rename = "async")]
    pub run_async: bool,
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
        (status = 202, description = "With `async=true`: the job, at `Location`", body = Envelope<crate::routes::jobs::JobView>),
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
    if query.run_async {
        let (body, csv) = read_import_body(&request, payload).await?;
        let principal = caller.principal.clone();
        let job = JobService::new(&state)
            .submit_device_import(
                &principal,
                DeviceImportRequest {
                    organization,
                    body,
                    csv,
                    dry_run: query.dry_run,
                    update_duplicates: on_duplicate == OnDuplicate::Update,
                },
                &origin.0,
            )
            .await?;
        return Ok(crate::routes::jobs::accepted(job));
    }
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
async fn read_import(request: &HttpRequest, payload: web::Payload) -> Result<ImportRows, ApiError> {
    let (body, csv) = read_import_body(request, payload).await?;
    Ok(if csv { parse_csv(&body) } else { parse_json(&body) }?)
}

/// An import body's bytes and whether they are CSV (else JSON), checked for type, size and NUL
/// bytes but not parsed.
async fn read_import_body(
    request: &HttpRequest,
    mut payload: web::Payload,
) -> Result<(Vec<u8>, bool), ApiError> {
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
    Ok((body.to_vec(), csv))
}

/// Add existing accounts to the organization from CSV (`email,role`) or JSON (`[{email,
/// role}]`); `role` is `owner`, `admin`, `viewer` (default) or `member`. `dryRun=true` reports problems by
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
    if query.run_async {
        let (body, csv) = read_import_body(&request, payload).await?;
        let principal = caller.principal.clone();
        let job = JobService::new(&state)
            .submit_org_user_import(
                &principal,
                DeviceImportRequest {
                    organization,
                    body,
                    csv,
                    dry_run: query.dry_run,
                    update_duplicates: on_duplicate(&query)? == OnDuplicate::Update,
                },
                &origin.0,
            )
            .await?;
        return Ok(crate::routes::jobs::accepted(job));
    }
    let on_duplicate = on_duplicate(&query)?;
    let rows = read_import(&request, payload).await?;
    let report = OrganizationService::new(&state)
        .import_users(
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct AccountImportQuery {
    /// Validate and report by line without importing.
    #[serde(default)]
    pub dry_run: bool,
    /// For addresses that already have an account: `skip` (default) or `update`.
    pub on_duplicate: Option<String>,
    /// Mail new accounts their invitation (default `true`).
    pub send_invitations: Option<bool>,
    /// Run as a background job: `202` at once with `Location: /api/admin/v1/jobs/{id}`; the
    /// job's result is the report.
    #[serde(default, rename = "async")]
    #[param(rename = "async")]
    pub run_async: bool,
}

/// Import accounts (`users:write`) from CSV (`text/csv`, header line:
/// `email,displayName,roles,organizationSlug,orgRole`; several roles separated by `;`) or JSON
/// (an array of objects with those fields, or `{"rows": [...]}`). Every row is checked first —
/// addresses, names, repeated addresses, roles that exist and that you could grant,
/// organizations that exist (adding people to them needs `organizations:write`) — and any
/// problem refuses the whole import with the problems by line (`dryRun=true` reports them and
/// what would be created, updated or skipped). New accounts have no password and get the
/// invitation mail (`sendInvitations=false`: none). Existing accounts are skipped, or with
/// `onDuplicate=update` get the row's name, its roles added and its organization joined. Each
/// row is applied and audited like its single-account endpoints.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(AccountImportQuery),
    request_body(content = String, content_type = "text/csv"),
    responses(
        (status = 200, body = Envelope<ImportReport>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 415, body = ErrorEnvelope),
    )
)]
#[post("/users/import")]
pub async fn import_accounts(
    request: HttpRequest,
    state: web::Data<AppState>,
    admin: crate::auth::RequirePermission<crate::auth::permissions::UsersWrite>,
    origin: Origin,
    query: web::Query<AccountImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let on_duplicate = match query.on_duplicate.as_deref() {
        None | Some("skip") => OnDuplicate::Skip,
        Some("update") => OnDuplicate::Update,
        Some(_) => return Err(ApiError::invalid("onDuplicate", "must be skip or update")),
    };
    let options = steward_app::admin_user_import::AccountImportOptions {
        dry_run: query.dry_run,
        on_duplicate,
        invite: query.send_invitations.unwrap_or(true),
    };
    if query.run_async {
        let (body, csv) = read_import_body(&request, payload).await?;
        let job = JobService::new(&state)
            .submit_account_import(&admin.0.principal, body, csv, options, &origin.0)
            .await?;
        return Ok(crate::routes::jobs::accepted(job));
    }
    let rows = read_import(&request, payload).await?;
    let report = state
        .steward
        .import_accounts(&admin.0.principal, rows, options, &origin.0)
        .await?;
    Ok(envelope::ok(ImportReport::from(report)))
}
