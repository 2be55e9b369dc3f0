//! `/api/admin/v1/organizations/{orgId}/policies/{policyId}/apply|unapply`: give policies to
//! devices or fleet groups, or take them away, with dry runs.

use actix_web::{HttpResponse, post, web};
use serde::Deserialize;
use steward_domain::fleet::PolicyTargets;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};

use crate::fleet::{FleetService, PolicyApplication};
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

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
