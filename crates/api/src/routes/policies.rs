//! `/api/admin/v1/organizations/{orgId}/policies`: an organization's device policies.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use steward_app::policies::{PolicyDraft, PolicyService};
use steward_domain::policies::PolicyRecord;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// Setting key → value.
    #[schema(value_type = serde_json::Value)]
    pub settings: BTreeMap<String, Value>,
    /// Keys the policy locks.
    pub locks: Vec<String>,
    pub priority: i32,
    pub is_default: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PolicyRecord> for PolicyView {
    fn from(policy: PolicyRecord) -> Self {
        Self {
            id: policy.id,
            organization_id: policy.organization_id,
            name: policy.name,
            description: policy.description,
            settings: policy.settings,
            locks: policy.locks,
            priority: policy.priority,
            is_default: policy.is_default,
            version: policy.version,
            created_at: policy.created_at,
            updated_at: policy.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRequest {
    pub name: String,
    pub description: Option<String>,
    #[serde(default)]
    #[schema(value_type = serde_json::Value)]
    pub settings: BTreeMap<String, Value>,
    #[serde(default)]
    pub locks: Vec<String>,
    #[serde(default)]
    pub priority: i32,
    /// Makes this the organization's default policy (the previous default stops being one).
    #[serde(default)]
    pub is_default: bool,
    /// Updates: the version you read (or send `If-Match`).
    pub version: Option<i32>,
}

impl PolicyRequest {
    fn draft(self) -> PolicyDraft {
        PolicyDraft {
            name: self.name,
            description: self.description,
            settings: self.settings,
            locks: self.locks,
            priority: self.priority,
            is_default: self.is_default,
        }
    }
}

/// The organization's policies, highest priority first.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<PolicyView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/policies")]
pub async fn list_policies(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let views: Vec<PolicyView> = PolicyService::new(&state)
        .list(organization)
        .await?
        .into_iter()
        .map(PolicyView::from)
        .collect();
    Ok(envelope::ok(views))
}

/// Create a policy; its settings and locks are validated against the catalog and every problem
/// is listed in `details` (owners and admins).
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    request_body = PolicyRequest,
    responses(
        (status = 201, body = Envelope<PolicyView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The name is taken", body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/policies")]
pub async fn create_policy(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<PolicyRequest>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let policy = PolicyService::new(&state)
        .create(caller.user_id, organization, body.into_inner().draft(), &origin.0)
        .await?;
    Ok(envelope::created(PolicyView::from(policy)))
}

/// One policy.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("policyId" = Uuid, Path)),
    responses((status = 200, body = Envelope<PolicyView>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/policies/{policyId}")]
pub async fn get_policy(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, policy) = path.into_inner();
    Ok(envelope::ok(PolicyView::from(
        PolicyService::new(&state).get(organization, policy).await?,
    )))
}

/// Replace a policy (owners and admins); honours `If-Match` / `version`.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("policyId" = Uuid, Path), ("If-Match" = Option<String>, Header)),
    request_body = PolicyRequest,
    responses(
        (status = 200, body = Envelope<PolicyView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope),
    )
)]
#[put("/organizations/{orgId}/policies/{policyId}")]
pub async fn update_policy(
    request: HttpRequest,
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
    body: Json<PolicyRequest>,
) -> Result<HttpResponse, ApiError> {
    let (organization, policy) = path.into_inner();
    let body = body.into_inner();
    let expected = super::auth::if_match_version(&request)?.or(body.version);
    let stored = PolicyService::new(&state)
        .update(
            caller.user_id,
            organization,
            policy,
            body.draft(),
            expected,
            &origin.0,
        )
        .await?;
    Ok(envelope::ok(PolicyView::from(stored)))
}

/// Delete a policy (owners and admins); devices and groups that carried it lose it.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path), ("policyId" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope))
)]
#[delete("/organizations/{orgId}/policies/{policyId}")]
pub async fn delete_policy(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (organization, policy) = path.into_inner();
    PolicyService::new(&state)
        .delete(caller.user_id, organization, policy, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
