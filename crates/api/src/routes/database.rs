//! `/api/admin/v1/database/rls`: PostgreSQL row-level security, read with `audit:read`
//! (super_admin, auditor) and turned on or off with `settings:write` (super_admin), like the IP
//! allowlist. On SQLite the report says `unsupported`.

use actix_web::{HttpResponse, get, post, web};
use serde::{Deserialize, Serialize};
use steward_domain::Actor;
use steward_domain::tenancy::{RlsReport, RlsStatus, RlsTable};
use utoipa::ToSchema;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// One organization-owned table.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RlsTableView {
    pub table: String,
    pub rls_enabled: bool,
    /// The table's owner is bound by the policy too (`FORCE ROW LEVEL SECURITY`).
    pub forced: bool,
    /// The policies on the table; Steward's is `steward_tenant_v3`.
    pub policies: Vec<String>,
    /// `ok` (a read: on with Steward's policy), `changed` (this call changed it), `unchanged`
    /// (already as asked), `warning` (not as it should be, or the change was refused: see
    /// `message`), `unsupported` (SQLite).
    #[schema(example = "ok")]
    pub status: String,
    pub message: Option<String>,
}

/// The report: every organization-owned table, and whether the policies bind the server.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RlsReportView {
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// `status`, `enable` or `disable`.
    pub action: String,
    /// Every table has Steward's policy on and forced, alone, and the server's role is bound by
    /// it (always `false` after a disable).
    pub enforced: bool,
    /// Whether the role the server connects as is bound by the policies (`false`: a superuser
    /// or `BYPASSRLS`); absent on SQLite.
    pub applies_to_server_role: Option<bool>,
    /// Warnings about the whole database.
    pub warnings: Vec<String>,
    pub tables: Vec<RlsTableView>,
}

fn status_name(status: RlsStatus) -> &'static str {
    match status {
        RlsStatus::Ok => "ok",
        RlsStatus::Changed => "changed",
        RlsStatus::Unchanged => "unchanged",
        RlsStatus::Warning => "warning",
        RlsStatus::Unsupported => "unsupported",
    }
}

impl From<RlsTable> for RlsTableView {
    fn from(table: RlsTable) -> Self {
        Self {
            table: table.table,
            rls_enabled: table.rls_enabled,
            forced: table.forced,
            policies: table.policies,
            status: status_name(table.status).to_owned(),
            message: table.message,
        }
    }
}

impl From<RlsReport> for RlsReportView {
    fn from(report: RlsReport) -> Self {
        Self {
            backend: report.backend,
            action: report.action,
            enforced: report.enforced,
            applies_to_server_role: report.applies_to_server_role,
            warnings: report.warnings,
            tables: report.tables.into_iter().map(RlsTableView::from).collect(),
        }
    }
}

/// Every organization-owned table's row-level security as it stands.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<RlsReportView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Not `audit:read` (super_admin, auditor)", body = ErrorEnvelope),
    )
)]
#[get("/database/rls")]
pub async fn rls_status(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::AuditRead>,
    origin: Origin,
) -> Result<HttpResponse, ApiError> {
    let report = steward_app::tenancy::row_level_security(
        &state.steward.store,
        None,
        Actor::admin(admin.0.user_id),
        origin.0,
    )
    .await?;
    Ok(envelope::ok(RlsReportView::from(report)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RlsChangeRequest {
    /// `true` puts Steward's policy on every organization-owned table and forces it; `false`
    /// takes row-level security off them.
    pub enable: bool,
}

/// Turns row-level security on or off; idempotent (a second call reports `unchanged`). A
/// statement the database refuses (missing privileges) is a `warning` line, not an error.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = RlsChangeRequest,
    responses(
        (status = 200, body = Envelope<RlsReportView>),
        (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Not `settings:write` (super_admin)", body = ErrorEnvelope),
    )
)]
#[post("/database/rls")]
pub async fn change_rls(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::SettingsWrite>,
    origin: Origin,
    body: Json<RlsChangeRequest>,
) -> Result<HttpResponse, ApiError> {
    let report = steward_app::tenancy::row_level_security(
        &state.steward.store,
        Some(body.into_inner().enable),
        Actor::admin(admin.0.user_id),
        origin.0,
    )
    .await?;
    Ok(envelope::ok(RlsReportView::from(report)))
}
