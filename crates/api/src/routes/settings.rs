//! `/api/v1/devices/{deviceId}/settings…`, unlock requests and the setting catalog.

use std::collections::BTreeMap;

use actix_web::http::header::{ETAG, IF_NONE_MATCH};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::fleet_devices::CommandView;
use crate::auth::DeviceScope;
use crate::auth::scopes::{DevicesRead, DevicesWrite};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, OptionalJson, Origin};
use crate::fleet::FleetService;
use crate::settings::{DeviceSettingsView, SettingsCaller, SettingsService, SyncOutcome};
use crate::settings::{LockRequest, SettingView};
use crate::state::AppState;

/// `If-Match: "<version>"` or `"<version>.<catalog>"` as the settings ETag carries it.
fn if_match_settings_version(request: &HttpRequest) -> Result<Option<i64>, ApiError> {
    let Some(value) = request.headers().get(actix_web::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    let version = text.split('.').next().unwrap_or_default();
    version
        .parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::validation("If-Match must be the settings version you read, e.g. \"7\""))
}

fn with_etag(mut response: HttpResponse, tag: &str) -> HttpResponse {
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(tag) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// `If-None-Match` uses the weak comparison (RFC 9110 §13.1.2): `W/"x"` matches `"x"`.
fn not_modified(request: &HttpRequest, tag: &str) -> bool {
    let opaque = |candidate: &str| {
        let candidate = candidate.trim();
        candidate.strip_prefix("W/").unwrap_or(candidate).to_owned()
    };
    let ours = opaque(tag);
    request
        .headers()
        .get_all(IF_NONE_MATCH)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|candidate| candidate.trim() == "*" || opaque(candidate) == ours)
}

/// The caller's standing on `device`: decided by the extractor already (before the body was
/// parsed) on every route that names the device.
pub(super) async fn access<S: DeviceScope>(
    state: &AppState,
    caller: &SettingsCaller<S>,
    device: Uuid,
) -> Result<crate::settings::SettingsAccess, ApiError> {
    match caller.access {
        Some(access) if access.device == device => Ok(access),
        _ => SettingsService::new(state)
            .access(caller.kind, device, S::PERMISSION)
            .await
            .map_err(ApiError::from),
    }
}

async fn current(state: &AppState, device: Uuid) -> Result<HttpResponse, ApiError> {
    let (view, tag) = SettingsService::new(state).effective(device, false).await?;
    Ok(with_etag(envelope::ok(DeviceSettingsView::from(view)), &tag))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// Add each key's explanation: winning layer, overridden layers, conflicts.
    pub explain: Option<bool>,
}

/// The device's effective settings with lock state. Answers an `ETag`; `If-None-Match` with it
/// answers 304 without a body. Callable by the owner, group owners/admins over the owner, system
/// admins, and the device itself (`X-API-Key` + `X-Device-Id`).
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), ExplainQuery, ("If-None-Match" = Option<String>, Header)),
    responses(
        (status = 200, body = Envelope<DeviceSettingsView>),
        (status = 304, description = "Unchanged since the ETag you sent"),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/{deviceId}/settings")]
pub async fn get_settings(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<Uuid>,
    query: web::Query<ExplainQuery>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let service = SettingsService::new(&state);
    access(&state, &caller, device).await?;
    if request.headers().contains_key(IF_NONE_MATCH) {
        let tag = service.current_etag(device).await?;
        if not_modified(&request, &tag) {
            return Ok(with_etag(HttpResponse::NotModified().finish(), &tag));
        }
    }
    if query.explain.unwrap_or(false) {
        let (view, tag) = service.effective(device, true).await?;
        return Ok(with_etag(envelope::ok(DeviceSettingsView::from(view)), &tag));
    }
    let (rendered, tag) = service.rendered(device).await?;
    let body = format!(
        r#"{{"success":true,"data":{{"version":{},"settings":{}}}}}"#,
        rendered.version, rendered.json
    );
    Ok(with_etag(json_body(body), &tag))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSettingsRequest {
    /// Key → new value.
    #[schema(value_type = serde_json::Value)]
    pub settings: BTreeMap<String, Value>,
    /// The settings version you read (or send `If-Match`).
    pub version: Option<i64>,
}

/// Set several values at once, all or nothing: one refused key (unknown, invalid, locked)
/// refuses the request and every refusal is listed in `details`.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateSettingsRequest,
    responses(
        (status = 200, body = Envelope<DeviceSettingsView>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "SETTING_LOCKED or VERSION_CONFLICT", body = ErrorEnvelope),
    )
)]
#[put("/{deviceId}/settings")]
pub async fn update_settings(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<UpdateSettingsRequest>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let access = access(&state, &caller, device).await?;
    let body = body.into_inner();
    let expected = if_match_settings_version(&request)?.or(body.version);
    SettingsService::new(&state)
        .write_values(&access, body.settings, expected, &origin.0)
        .await?;
    current(&state, device).await
}

async fn one_setting(state: &AppState, device: Uuid, key: &str) -> Result<HttpResponse, ApiError> {
    let (view, tag) = SettingsService::new(state).effective(device, false).await?;
    let setting = view
        .settings
        .get(key)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("unknown setting `{key}`")))?;
    Ok(with_etag(
        envelope::ok(KeySettingView {
            key: key.to_owned(),
            version: view.version,
            setting: setting.into(),
        }),
        &tag,
    ))
}

/// One key's effective state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeySettingView {
    pub key: String,
    pub version: i64,
    #[serde(flatten)]
    pub setting: SettingView,
}

/// The device's locked settings.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<KeySettingView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{deviceId}/settings/locks")]
pub async fn get_locks(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    access(&state, &caller, device).await?;
    let (view, _) = SettingsService::new(&state).effective(device, false).await?;
    let locks: Vec<KeySettingView> = view
        .settings
        .into_iter()
        .filter(|(_, setting)| setting.locked)
        .map(|(key, setting)| KeySettingView {
            key,
            version: view.version,
            setting: setting.into(),
        })
        .collect();
    Ok(envelope::ok(locks))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockChange {
    pub key: String,
    pub locked: bool,
    /// Locking only: the value to pin (default: the current effective value).
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Value>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateLocksRequest {
    pub locks: Vec<LockChange>,
    pub version: Option<i64>,
}

/// Lock and unlock several keys, all or nothing (group owners/admins over the device's owner,
/// and system admins).
#[utoipa::path(
    tag = "settings",
    security(("bearer" = [])),
    params(("deviceId" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateLocksRequest,
    responses(
        (status = 200, body = Envelope<DeviceSettingsView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, description = "The caller does not hold device locks", body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[put("/{deviceId}/settings/locks")]
pub async fn update_locks(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<UpdateLocksRequest>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let access = access(&state, &caller, device).await?;
    let body = body.into_inner();
    let expected = if_match_settings_version(&request)?.or(body.version);
    let requests = body
        .locks
        .into_iter()
        .map(|lock| LockRequest {
            key: lock.key,
            locked: lock.locked,
            value: lock.value,
            reason: lock.reason,
        })
        .collect();
    SettingsService::new(&state)
        .change_locks(&access, requests, expected, &origin.0)
        .await?;
    current(&state, device).await
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncFailure {
    /// The setting's key: 1–128 characters.
    #[schema(min_length = 1, max_length = 128)]
    pub key: String,
    /// Why the device could not apply it: at most 500 characters.
    #[schema(max_length = 500)]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRequest {
    /// The version the device last received.
    pub base_version: i64,
    /// Local changes since then.
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub changes: BTreeMap<String, Value>,
    /// The version the device has applied.
    pub applied_version: Option<i64>,
    /// Keys it could not apply: at most 100.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub failures: Vec<SyncFailure>,
}

/// Control characters, and the format characters that reorder or hide text (bidirectional
/// overrides and isolates, zero-width characters, line and paragraph separators).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// At most this many failures in one sync report.
pub const MAX_SYNC_FAILURES: usize = 100;

/// A sync report's failures, bounded (at most [`MAX_SYNC_FAILURES`], keys of 1–128 and
/// reasons of at most 500 characters, no control or [`invisible`] characters) and in one order (by key, then
/// reason, repeats dropped), so the same failures reported in another order are the same
/// report and do not count as a change.
fn checked_failures(mut failures: Vec<SyncFailure>) -> Result<Vec<SyncFailure>, ApiError> {
    if failures.len() > MAX_SYNC_FAILURES {
        return Err(ApiError::invalid(
            "failures",
            format!("must hold at most {MAX_SYNC_FAILURES} entries"),
        ));
    }
    for failure in &failures {
        let key_chars = failure.key.chars().count();
        if key_chars == 0 || key_chars > 128 || failure.key.chars().any(invisible) {
            return Err(ApiError::invalid(
                "failures.key",
                "must be 1-128 characters without control characters",
            ));
        }
        if failure.reason.chars().count() > 500 || failure.reason.chars().any(invisible) {
            return Err(ApiError::invalid(
                "failures.reason",
                "must be at most 500 characters without control characters",
            ));
        }
    }
    failures.sort_by(|a, b| (&a.key, &a.reason).cmp(&(&b.key, &b.reason)));
    failures.dedup_by(|a, b| a.key == b.key && a.reason == b.reason);
    Ok(failures)
}

/// The device's sync: applies its local changes that locks allow (a key changed on the server
/// since `baseVersion` keeps the server's value), records what it applied, and answers the
/// full effective state with its version, the refused keys and — for the device itself — its
/// open `commands` (a wipe; acknowledge each with `POST …/commands/{id}/ack`).
#[utoipa::path(
    tag = "settings",
    security(("deviceToken" = []), ("bearer" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path)),
    request_body = SyncRequest,
    responses(
        (status = 200, body = Envelope<SyncOutcome>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/{deviceId}/settings/sync")]
pub async fn sync_settings(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<SyncRequest>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let access = access(&state, &caller, device).await?;
    let body = body.into_inner();
    let failures = checked_failures(body.failures)?;
    let failures = (!failures.is_empty()).then(|| serde_json::json!(failures));
    let applied = body.applied_version.map(|version| (version, failures));
    let (rendered, rejected, tag) = SettingsService::new(&state)
        .sync(&access, body.base_version, body.changes, applied, &origin.0)
        .await?;
    let rejected = serde_json::to_string(&rejected).map_err(|_| ApiError::internal())?;
    let commands = FleetService::new(&state).deliver(&access, &origin.0).await?;
    let commands: Vec<CommandView> = commands.into_iter().map(CommandView::from).collect();
    let commands = serde_json::to_string(&commands).map_err(|_| ApiError::internal())?;
    let body = format!(
        r#"{{"success":true,"data":{{"version":{},"settings":{},"rejected":{rejected},"commands":{commands}}}}}"#,
        rendered.version, rendered.json
    );
    Ok(with_etag(json_body(body), &tag))
}

/// A success envelope assembled from already serialised parts (the cached settings).
fn json_body(body: String) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// Desired versus applied state: a device whose applied version lags or that reported
/// failures is not compliant.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path)),
    responses((status = 200, body = Envelope<crate::response_schemas::SettingsStatusView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{deviceId}/settings/status")]
pub async fn settings_status(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    access(&state, &caller, device).await?;
    Ok(envelope::ok(SettingsService::new(&state).status(device).await?))
}

/// Ask the device to sync now: queues a push notification (202).
#[utoipa::path(
    tag = "settings",
    security(("bearer" = [])),
    params(("deviceId" = Uuid, Path)),
    responses((status = 202, description = "Queued"), (status = 404, body = ErrorEnvelope))
)]
#[post("/{deviceId}/settings/sync-request")]
pub async fn request_sync(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let device = path.into_inner();
    let access = access(&state, &caller, device).await?;
    SettingsService::new(&state)
        .request_sync(&access, &origin.0)
        .await?;
    Ok(HttpResponse::Accepted().finish())
}

/// One key's effective state.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), ("key" = String, Path)),
    responses((status = 200, body = Envelope<KeySettingView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/{deviceId}/settings/{key}")]
pub async fn get_setting(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesRead>,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (device, key) = path.into_inner();
    access(&state, &caller, device).await?;
    one_setting(&state, device, &key).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSettingRequest {
    #[schema(value_type = serde_json::Value)]
    pub value: Value,
    pub version: Option<i64>,
}

/// Set one value. Locked keys answer `SETTING_LOCKED` and change nothing.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = []), ("deviceToken" = []), ("apiKey" = [], "legacyDeviceId" = [])),
    params(("deviceId" = Uuid, Path), ("key" = String, Path), ("If-Match" = Option<String>, Header)),
    request_body = UpdateSettingRequest,
    responses(
        (status = 200, body = Envelope<KeySettingView>),
        (status = 400, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "SETTING_LOCKED or VERSION_CONFLICT", body = ErrorEnvelope),
    )
)]
#[put("/{deviceId}/settings/{key}")]
pub async fn update_setting(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, String)>,
    body: Json<UpdateSettingRequest>,
) -> Result<HttpResponse, ApiError> {
    let (device, key) = path.into_inner();
    let access = access(&state, &caller, device).await?;
    let body = body.into_inner();
    let expected = if_match_settings_version(&request)?.or(body.version);
    SettingsService::new(&state)
        .write_values(
            &access,
            BTreeMap::from([(key.clone(), body.value)]),
            expected,
            &origin.0,
        )
        .await?;
    one_setting(&state, device, &key).await
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LockSettingRequest {
    /// The value to pin (default: the current effective value).
    #[schema(value_type = Option<serde_json::Value>)]
    pub value: Option<Value>,
    pub reason: Option<String>,
}

/// Lock one key, optionally setting its value (group owners/admins over the owner, system
/// admins).
#[utoipa::path(
    tag = "settings",
    security(("bearer" = [])),
    params(("deviceId" = Uuid, Path), ("key" = String, Path)),
    request_body = LockSettingRequest,
    responses(
        (status = 200, body = Envelope<KeySettingView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[post("/{deviceId}/settings/{key}/lock")]
pub async fn lock_setting(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, String)>,
    body: OptionalJson<LockSettingRequest>,
) -> Result<HttpResponse, ApiError> {
    let (device, key) = path.into_inner();
    let access = access(&state, &caller, device).await?;
    let body = body.into_inner();
    let lock = LockRequest {
        key: key.clone(),
        locked: true,
        value: body.value,
        reason: body.reason,
    };
    SettingsService::new(&state)
        .change_locks(&access, vec![lock], None, &origin.0)
        .await?;
    one_setting(&state, device, &key).await
}

/// Unlock one key.
#[utoipa::path(
    tag = "settings",
    security(("bearer" = [])),
    params(("deviceId" = Uuid, Path), ("key" = String, Path)),
    responses(
        (status = 200, body = Envelope<KeySettingView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[delete("/{deviceId}/settings/{key}/lock")]
pub async fn unlock_setting(
    state: web::Data<AppState>,
    caller: SettingsCaller<DevicesWrite>,
    origin: Origin,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (device, key) = path.into_inner();
    let access = access(&state, &caller, device).await?;
    let lock = LockRequest {
        key: key.clone(),
        locked: false,
        value: None,
        reason: None,
    };
    SettingsService::new(&state)
        .change_locks(&access, vec![lock], None, &origin.0)
        .await?;
    one_setting(&state, device, &key).await
}
