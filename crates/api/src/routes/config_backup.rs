//! `/api/admin/v1/config`: configuration backup and restore (`config:manage`).

use actix_multipart::Multipart;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, post, web};
use futures_util::StreamExt as _;
use serde::Deserialize;
use steward_app::config_backup::{ConfigBackup, ImportOptions, ImportReport, Importer, parse_include};
use steward_domain::config_backup::{MAX_DOCUMENT_BYTES, OnConflict};
use utoipa::{IntoParams, ToSchema};

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// What to export.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigExportRequest {
    /// The categories: `settingDefinitions`, `organizations`, `policies`, `roles`,
    /// `ipAllowlist`, `webhooks`, `notificationRules`, `plans`. Absent or empty: all of them.
    #[serde(default)]
    pub include: Vec<String>,
    /// Seals the file with this passphrase (12 to 1024 characters): Argon2id and AES-256-GCM.
    /// Webhook secrets are included only in a sealed file.
    #[serde(default)]
    pub passphrase: Option<String>,
}

/// Export the configuration as a background job (`config:manage`): `202` at once with
/// `Location: /api/admin/v1/jobs/{id}`; the job's file (`GET /jobs/{id}/result`) is the
/// document (`steward-config`, or `steward-sealed` with a passphrase). User data never travels.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = ConfigExportRequest,
    responses(
        (status = 202, description = "The export job, at `Location`", body = Envelope<crate::routes::jobs::JobView>),
        (status = 400, description = "An unknown category, a short passphrase, a body that does not parse", body = ErrorEnvelope),
        (status = 403, description = "Without `config:manage`", body = ErrorEnvelope),
        (status = 429, description = "Ten of your jobs are already waiting or running", body = ErrorEnvelope),
    )
)]
#[post("/config/export")]
pub async fn export_config(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ConfigManage>,
    origin: Origin,
    body: Json<ConfigExportRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let include = parse_include(&body.include)?;
    steward_app::config_backup::check_export(&admin.0.principal, &include, body.passphrase.is_some())?;
    let job = steward_app::jobs::JobService::new(&state)
        .submit_config_export(
            &admin.0.principal,
            &include,
            body.passphrase.as_deref(),
            &origin.0,
        )
        .await?;
    Ok(crate::routes::jobs::accepted(job))
}

/// How to import.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ConfigImportQuery {
    /// `true`: check and answer the diff, change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// For items that exist here and differ: `skip` (default; reported as `conflict`) or
    /// `overwrite` (reported as `update`).
    pub on_conflict: Option<String>,
}

/// A file to import, sent as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigImportRequest {
    /// The exported file as it was downloaded (a `steward-config` or `steward-sealed` document).
    #[schema(value_type = Object)]
    pub file: serde_json::Value,
    /// The passphrase of a sealed file.
    #[serde(default)]
    pub passphrase: Option<String>,
}

/// Import a configuration file (`config:manage`), as JSON (`{file, passphrase?}`) or as
/// `multipart/form-data` (parts `file` and `passphrase`). Everything is checked first (schema
/// version, checksum, references, the setting catalog, each kind's rules); the answer is the
/// diff, item by item (`create`, `update`, `unchanged`, `conflict`). Without `dryRun` the
/// changes are applied in one transaction and audited (`config.imported`, with the diff). A
/// wrong passphrase, a changed file or any problem is 400 and nothing changes. Items absent
/// from the file are left as they are; plans and notification rules are compared, never changed.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ConfigImportQuery),
    request_body = ConfigImportRequest,
    responses(
        (status = 200, body = Envelope<ConfigImportReportView>),
        (status = 400, description = "A file that does not read, a wrong passphrase, a changed file, problems by field", body = ErrorEnvelope),
        (status = 403, description = "Without `config:manage`, or roles holding permissions you do not hold", body = ErrorEnvelope),
        (status = 409, description = "ALLOWLIST_WOULD_LOCK_OUT: the allowlist it leaves refuses your address; QUOTA_EXCEEDED: an organization's policy quota; VERSION_CONFLICT: an item changed while importing", body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope),
        (status = 415, description = "Neither JSON nor multipart/form-data", body = ErrorEnvelope),
        (status = 429, description = "Other sealed files are being opened on this instance", body = ErrorEnvelope),
    )
)]
#[post("/config/import")]
pub async fn import_config(
    request: HttpRequest,
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::ConfigManage>,
    origin: Origin,
    query: web::Query<ConfigImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let on_conflict = match query.on_conflict.as_deref() {
        None => OnConflict::Skip,
        Some(text) => OnConflict::parse(text)
            .ok_or_else(|| ApiError::invalid("onConflict", "must be skip or overwrite"))?,
    };
    let (file, passphrase) = read_upload(&request, payload).await?;
    let report = ConfigBackup::new(&state)
        .import(
            &Importer::Operator {
                principal: admin.0.principal.clone(),
                ip: crate::extractors::certain_client_ip(&request),
            },
            &file,
            passphrase,
            ImportOptions {
                dry_run: query.dry_run,
                on_conflict,
            },
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(ConfigImportReportView::from(report)))
}

/// The file and passphrase of an import, from JSON or multipart.
async fn read_upload(
    request: &HttpRequest,
    mut payload: web::Payload,
) -> Result<(Vec<u8>, Option<String>), ApiError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let limit = MAX_DOCUMENT_BYTES + 64 * 1024;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a configuration file is at most {MAX_DOCUMENT_BYTES} bytes"),
        )
    };
    if content_type.starts_with("application/json") {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| ApiError::validation("the request body could not be read"))?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        if body.contains(&0) || crate::extractors::has_escaped_nul(&body) {
            return Err(ApiError::invalid(
                "body",
                "must not contain the NUL character (U+0000)",
            ));
        }
        let upload: ConfigImportRequest = serde_json::from_slice(&body)
            .map_err(|error| ApiError::invalid("body", format!("does not parse: {error}")))?;
        let file =
            serde_json::to_vec(&upload.file).map_err(|_| ApiError::validation("the file does not read"))?;
        return Ok((file, upload.passphrase));
    }
    if !content_type.starts_with("multipart/form-data") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send application/json ({file, passphrase}) or multipart/form-data (parts file and passphrase)",
        ));
    }
    let mut multipart = Multipart::new(request.headers(), payload);
    let mut file: Option<Vec<u8>> = None;
    let mut passphrase: Option<String> = None;
    let mut total = 0usize;
    while let Some(field) = multipart.next().await {
        let mut field =
            field.map_err(|error| ApiError::invalid("body", format!("malformed multipart body: {error}")))?;
        let name = field.name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = field.next().await {
            let chunk = chunk
                .map_err(|error| ApiError::invalid("body", format!("malformed multipart body: {error}")))?;
            total += chunk.len();
            if total > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "file" if file.is_none() => file = Some(bytes),
            "passphrase" if passphrase.is_none() => {
                let text = String::from_utf8(bytes)
                    .map_err(|_| ApiError::invalid("passphrase", "must be UTF-8 text"))?;
                passphrase = Some(text.trim_end_matches(['\r', '\n']).to_owned());
            }
            "file" | "passphrase" => {
                return Err(ApiError::invalid(name.as_str(), "sent twice"));
            }
            _ => {
                return Err(ApiError::invalid("body", "the parts are `file` and `passphrase`"));
            }
        }
    }
    let file = file.ok_or_else(|| ApiError::invalid("file", "the part `file` is missing"))?;
    if file.contains(&0) || crate::extractors::has_escaped_nul(&file) {
        return Err(ApiError::invalid(
            "file",
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok((file, passphrase))
}

/// An import's answer.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigImportReportView {
    pub dry_run: bool,
    /// True when the changes were written.
    pub applied: bool,
    /// `skip` or `overwrite`.
    pub on_conflict: String,
    /// The file's header: `schemaVersion`, `stewardVersion`, `createdAt`, `exportedBy`,
    /// `include`, `sealed`, `secretsIncluded`, `checksum`.
    #[schema(value_type = Object)]
    pub document: serde_json::Value,
    /// Items per action: `create`, `update`, `unchanged`, `conflict`.
    #[schema(value_type = Object)]
    pub counts: serde_json::Value,
    /// Every item of the file: `category`, `organization` (policies and organizations'
    /// webhooks), `key`, `action`, `fields` (what differs), `reason` (of a conflict).
    #[schema(value_type = Vec<Object>)]
    pub items: serde_json::Value,
}

impl From<ImportReport> for ConfigImportReportView {
    fn from(report: ImportReport) -> Self {
        Self {
            dry_run: report.dry_run,
            applied: report.applied,
            on_conflict: report.on_conflict.to_owned(),
            document: serde_json::to_value(&report.document).unwrap_or_default(),
            counts: serde_json::to_value(&report.counts).unwrap_or_default(),
            items: serde_json::to_value(&report.items).unwrap_or_default(),
        }
    }
}
