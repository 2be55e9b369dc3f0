//! An organization's quotas: `GET` for its members and operators, `PUT` for super_admin.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, put, web};
use serde::{Deserialize, Serialize};
use steward_app::organizations::{OrganizationService, QuotaReport};
use steward_domain::quotas::{Limits, QuotaKey};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

/// The largest limit an override may set.
const MAX_LIMIT: i64 = 1_000_000_000;

/// One quota: its limit beside its use.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaLineView {
    /// An organization's: `devices`, `users`, `enrollment_tokens`, `policies`, `imports_per_day` or `api_requests_per_minute`; an
    /// account's: `personal_devices`, `groups`, `group_members` or `personal_access_tokens`.
    pub key: String,
    /// `null`: unlimited.
    pub limit: Option<u64>,
    pub used: u64,
    /// Set for this organization (or account) rather than by its plan.
    pub overridden: bool,
}

/// An organization's or account's plan, its overrides and every quota.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotasView {
    pub plan: String,
    /// Limits set for this organization or account (`null`: unlimited); the others come from
    /// the plan.
    #[schema(value_type = Object)]
    pub overrides: BTreeMap<String, Option<u64>>,
    pub quotas: Vec<QuotaLineView>,
}

impl From<QuotaReport> for QuotasView {
    fn from(report: QuotaReport) -> Self {
        Self {
            plan: report.plan,
            overrides: report
                .overrides
                .into_iter()
                .map(|(key, limit)| (key.as_str().to_owned(), limit))
                .collect(),
            quotas: report
                .lines
                .into_iter()
                .map(|line| QuotaLineView {
                    key: line.key.as_str().to_owned(),
                    limit: line.limit,
                    used: line.used,
                    overridden: line.overridden,
                })
                .collect(),
        }
    }
}

/// Overrides as sent, checked: each key one of `keys`, each value `null` or 0 to 1,000,000,000.
pub(crate) fn parse_overrides(
    sent: BTreeMap<String, Option<i64>>,
    keys: &[QuotaKey],
) -> Result<Limits, ApiError> {
    let mut overrides = Limits::new();
    for (key, value) in sent {
        let key = QuotaKey::parse(&key)
            .filter(|key| keys.contains(key))
            .ok_or_else(|| {
                ApiError::invalid(
                    "overrides",
                    format!(
                        "unknown limit `{}`: use {}",
                        key.chars().take(64).collect::<String>(),
                        keys.iter().map(|key| key.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
        let value = match value {
            None => None,
            Some(value) if (0..=MAX_LIMIT).contains(&value) => Some(value.unsigned_abs()),
            Some(_) => {
                return Err(ApiError::invalid(
                    "overrides",
                    "a limit is a whole number from 0 to 1000000000, or null for unlimited",
                ));
            }
        };
        overrides.insert(key, value);
    }
    Ok(overrides)
}

/// A new plan and overrides.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetQuotas {
    /// A configured plan (`free` always exists); absent keeps the current one.
    pub plan: Option<String>,
    /// Limit → a number (0 to 1,000,000,000) or `null` (unlimited). Replaces every override;
    /// `{}` goes back to the plan's limits.
    #[schema(value_type = Object)]
    pub overrides: BTreeMap<String, Option<i64>>,
}

/// An organization's plan, overrides and each quota beside its use (its members and operators).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses(
        (status = 200, description = "The quotas", body = Envelope<QuotasView>),
        (status = 403, description = "A token without `organizations:read`", body = ErrorEnvelope),
        (status = 404, description = "No such organization, or not yours", body = ErrorEnvelope),
    )
)]
#[get("/organizations/{orgId}/quotas")]
pub async fn get_quotas(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::View>,
) -> Result<HttpResponse, ApiError> {
    let report = OrganizationService::new(&state)
        .quotas(&caller.organization)
        .await?;
    Ok(envelope::ok(QuotasView::from(report)))
}

/// Set an organization's plan and quota overrides (`quotas:write`: super_admin). Audited as
/// `organization.quota_changed` with the values before and after. Lowering a limit below the
/// current use removes nothing; further creations are refused with `409 QUOTA_EXCEEDED`.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    request_body = SetQuotas,
    responses(
        (status = 200, description = "The quotas now", body = Envelope<QuotasView>),
        (status = 400, description = "An unknown plan or limit, or a value out of range", body = ErrorEnvelope),
        (status = 403, description = "Without `quotas:write`", body = ErrorEnvelope),
        (status = 404, description = "No such organization", body = ErrorEnvelope),
    )
)]
#[put("/organizations/{orgId}/quotas")]
pub async fn set_quotas(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::QuotasWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<SetQuotas>,
) -> Result<HttpResponse, ApiError> {
    let body = body.0;
    let overrides = parse_overrides(body.overrides, &QuotaKey::ORGANIZATION)?;
    let report = OrganizationService::new(&state)
        .set_quotas(
            admin.0.user_id,
            path.into_inner(),
            body.plan,
            overrides,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(QuotasView::from(report)))
}
