//! `/api/admin/v1/audit-logs`: query, streaming export and chain verification.

use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_app::audit::{AuditExport, AuditService};
use steward_domain::audit_log::{AuditCursor, AuditFilter, AuditRecord, ChainReport};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::PageQuery;
use crate::state::{AppState, Store};

/// Filters; each narrows the result.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct AuditQuery {
    pub actor_id: Option<Uuid>,
    /// e.g. `auth.login_succeeded`.
    pub action: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub organization_id: Option<Uuid>,
    /// From this time (inclusive, RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Up to this time (exclusive).
    pub to: Option<DateTime<Utc>>,
}

impl AuditQuery {
    fn into_filter(self) -> Result<AuditFilter, ApiError> {
        let from = crate::extractors::checked_time("from", self.from)?;
        let to = crate::extractors::checked_time("to", self.to)?;
        for (field, value) in [
            ("action", &self.action),
            ("resourceType", &self.resource_type),
            ("resourceId", &self.resource_id),
        ] {
            if value.as_deref().is_some_and(|v| v.chars().count() > 200) {
                return Err(ApiError::invalid(field, "must be at most 200 characters"));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(ApiError::validation("from: must not be after `to`"));
        }
        Ok(AuditFilter {
            actor_id: self.actor_id,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            organization_id: self.organization_id,
            from,
            to,
        })
    }
}

/// Where to continue: the `meta.nextCursor` of the previous page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct AuditCursorQuery {
    /// The previous page's `meta.nextCursor`: the entries after it, newest first, `perPage` of
    /// them, without `page` or `total` (not with `page`).
    pub cursor: Option<String>,
}

/// Where a page of the audit trail sits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPageMeta {
    /// The page number (absent on a page read by cursor).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub page: Option<u64>,
    pub per_page: u64,
    /// How many entries match (absent on a page read by cursor).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub total: Option<u64>,
    /// Send as `cursor=` for the next page; `null` on the last.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

fn audit_page(records: Vec<AuditRecord>, meta: AuditPageMeta) -> HttpResponse {
    #[derive(Serialize)]
    struct Body {
        success: bool,
        data: Vec<AuditRecord>,
        meta: AuditPageMeta,
    }
    HttpResponse::Ok().json(Body {
        success: true,
        data: records,
        meta,
    })
}

/// Audit entries, newest first (`audit:read`), by page number or, from any page's
/// `meta.nextCursor`, by cursor.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery, PageQuery, AuditCursorQuery),
    responses(
        (status = 200, body = crate::response_schemas::AuditPageEnvelope),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/audit-logs")]
pub async fn list_audit_logs(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AuditRead>,
    query: web::Query<AuditQuery>,
    page: web::Query<PageQuery>,
    cursor: web::Query<AuditCursorQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = page.into_inner();
    let filter = query.into_inner().into_filter()?;
    let service = AuditService::new(&state);
    if let Some(cursor) = cursor.into_inner().cursor {
        if page.page.is_some() {
            return Err(ApiError::invalid("cursor", "cannot be combined with page"));
        }
        let cursor = AuditCursor::parse(&cursor)
            .ok_or_else(|| ApiError::invalid("cursor", "is not a cursor this API gave"))?;
        let request = page.into_request()?;
        let (records, next) = service.query_after(&filter, cursor, request.per_page()).await?;
        return Ok(audit_page(
            records,
            AuditPageMeta {
                page: None,
                per_page: request.per_page(),
                total: None,
                next_cursor: next.map(AuditCursor::encode),
            },
        ));
    }
    let request = page.into_request()?;
    let (records, total) = service.query(&filter, request).await?;
    let seen = request.offset().saturating_add(records.len() as u64);
    let next = if seen < total && records.len() as u64 == request.per_page() {
        records.last().map(|last| AuditCursor::of(last).encode())
    } else {
        None
    };
    Ok(audit_page(
        records,
        AuditPageMeta {
            page: Some(request.page()),
            per_page: request.per_page(),
            total: Some(total),
            next_cursor: next,
        },
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportFormat {
    /// csv or json (default).
    pub format: Option<String>,
}

fn csv_rows(records: &[AuditRecord], header: bool) -> Result<Bytes, csv::Error> {
    steward_app::audit::csv_rows(records, header).map(Bytes::from)
}

fn json_rows(records: &[AuditRecord], first: bool) -> Result<Bytes, serde_json::Error> {
    steward_app::audit::json_rows(records, first).map(Bytes::from)
}

enum Stage {
    Start(AuditExport<Store>),
    /// The export and whether no row was written yet.
    Rows(AuditExport<Store>, bool),
    Done,
}

/// Streams every matching entry, oldest first, in batches of 500: the export never holds the
/// whole trail in memory (`audit:export`). JSON is an array; CSV has a header row.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery, ExportFormat),
    responses(
        (status = 200, description = "The entries as CSV or a JSON array"),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    )
)]
#[get("/audit-logs/export")]
pub async fn export_audit_logs(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AuditExport>,
    query: web::Query<AuditQuery>,
    format: web::Query<ExportFormat>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::validation("format: must be csv or json")),
    };
    let filter = query.into_inner().into_filter()?;
    let export = AuditService::new(&state).export(filter);
    let stream = futures_util::stream::unfold(Stage::Start(export), move |stage| async move {
        let (mut export, first) = match stage {
            Stage::Done => return None,
            Stage::Start(export) => {
                let opening = if csv {
                    Bytes::new()
                } else {
                    Bytes::from_static(b"[")
                };
                return Some((Ok::<_, actix_web::Error>(opening), Stage::Rows(export, true)));
            }
            Stage::Rows(export, first) => (export, first),
        };
        let batch = match export.next_batch().await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "audit export failed mid-stream");
                return Some((Err(ApiError::from(error).into()), Stage::Done));
            }
        };
        if batch.is_empty() {
            let closing = if csv && first {
                csv_rows(&[], true).unwrap_or_default()
            } else if csv {
                Bytes::new()
            } else {
                Bytes::from_static(b"]")
            };
            return Some((Ok(closing), Stage::Done));
        }
        let chunk = if csv {
            csv_rows(&batch, first).map_err(|_| ApiError::internal().into())
        } else {
            json_rows(&batch, first).map_err(|_| ApiError::internal().into())
        };
        Some((chunk, Stage::Rows(export, false)))
    });
    let (content_type, name) = if csv {
        ("text/csv; charset=utf-8", "audit-logs.csv")
    } else {
        ("application/json", "audit-logs.json")
    };
    Ok(crate::envelope::attachment(content_type, name).streaming(stream))
}

/// Export the matching entries as a background job (`audit:export`): `202` at once with
/// `Location: /api/admin/v1/jobs/{id}`; the job's file (`GET /jobs/{id}/result`) is the export,
/// CSV with a header row or a JSON array, as `GET …/export` streams it.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(AuditQuery, ExportFormat),
    responses(
        (status = 202, description = "The export job, at `Location`", body = Envelope<crate::routes::jobs::JobView>),
        (status = 400, description = "A filter or format that does not parse", body = ErrorEnvelope),
        (status = 403, description = "Without `audit:export`", body = ErrorEnvelope),
        (status = 429, description = "Ten of your jobs are already waiting or running", body = ErrorEnvelope),
    )
)]
#[post("/audit-logs/export")]
pub async fn export_audit_logs_job(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::AuditExport>,
    origin: crate::extractors::Origin,
    query: web::Query<AuditQuery>,
    format: web::Query<ExportFormat>,
) -> Result<HttpResponse, ApiError> {
    let csv = match format.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::validation("format: must be csv or json")),
    };
    let filter = query.into_inner().into_filter()?;
    let job = steward_app::jobs::JobService::new(&state)
        .submit_audit_export(&admin.0.principal, &filter, csv, &origin.0)
        .await?;
    Ok(crate::routes::jobs::accepted(job))
}

/// Walks the hash chain and reports the first broken link, if any (`audit:read`). Entries are
/// sealed within seconds of being written; `unsealed` counts those not yet in the chain.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<crate::response_schemas::ChainReportView>), (status = 403, body = ErrorEnvelope))
)]
#[get("/audit-logs/verify")]
pub async fn verify_audit_logs(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AuditRead>,
) -> Result<HttpResponse, ApiError> {
    let report: ChainReport = AuditService::new(&state).verify().await?;
    Ok(envelope::ok(report))
}
