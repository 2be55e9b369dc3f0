//! `/api/admin/v1/organizations/{orgId}/policies`: an organization's device policies.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use steward_domain::organizations::OrgRuleError;
use steward_domain::policies::{PolicyRecord, PolicyStore, validate_policy};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorCode, ErrorEnvelope, FieldError};
use crate::extractors::{Json, Origin};
use crate::fleet::FleetService;
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

/// Validates the request against the catalog into a record (id and times from `base`).
async fn checked(
    state: &AppState,
    body: &PolicyRequest,
    mut base: PolicyRecord,
) -> Result<PolicyRecord, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(OrgRuleError::Invalid {
            field: "name",
            message: "must be 1 to 100 characters",
        }
        .into());
    }
    let catalog = state.settings_catalog.load(&state.store).await?;
    let (settings, locks) =
        validate_policy(&catalog.definitions, &body.settings, &body.locks).map_err(|problems| {
            ApiError::validation("the policy does not fit the setting catalog").with_details(
                problems
                    .into_iter()
                    .map(|(field, message)| FieldError { field, message })
                    .collect(),
            )
        })?;
    base.name = name.to_owned();
    base.description = body
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    base.settings = settings;
    base.locks = locks;
    base.priority = body.priority;
    base.is_default = body.is_default;
    Ok(base)
}

fn audit(actor: Uuid, action: &'static str, organization: Uuid, policy: Uuid, origin: &Origin) -> AuditEntry {
    AuditEntry::new(Actor::admin(actor), AuditAction::known(action), "device_policy")
        .resource_id(policy)
        .organization(organization)
        .origin(origin.0.clone())
}

fn name_taken(error: RepositoryError) -> ApiError {
    match error {
        RepositoryError::Conflict(_) => {
            ApiError::new(ErrorCode::Conflict, "the organization has a policy of that name")
        }
        other => other.into(),
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
    let views: Vec<PolicyView> = state
        .store
        .policies(organization)
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
    let now = Utc::now();
    let base = PolicyRecord {
        id: Uuid::now_v7(),
        organization_id: organization,
        name: String::new(),
        description: None,
        settings: BTreeMap::new(),
        locks: Vec::new(),
        priority: 0,
        is_default: false,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let policy = checked(&state, &body, base).await?;
    let entry = audit(caller.user_id, "policy.created", organization, policy.id, &origin).change(
        None,
        Some(json!({"name": policy.name, "settings": policy.settings, "locks": policy.locks})),
    );
    let touched = state
        .store
        .create_policy(&policy, &entry)
        .await
        .map_err(name_taken)?;
    FleetService::new(&state).forget(&touched);
    Ok(envelope::created(PolicyView::from(policy)))
}

async fn found(state: &AppState, organization: Uuid, policy: Uuid) -> Result<PolicyRecord, ApiError> {
    Ok(state
        .store
        .find_policy(organization, policy)
        .await?
        .ok_or(OrgRuleError::NotFound)?)
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
        found(&state, organization, policy).await?,
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
    let current = found(&state, organization, policy).await?;
    let expected = super::auth::if_match_version(&request)?.or(body.version);
    let updated = checked(&state, &body, current).await?;
    let entry = audit(caller.user_id, "policy.updated", organization, policy, &origin).change(
        None,
        Some(json!({"name": updated.name, "settings": updated.settings, "locks": updated.locks})),
    );
    let (stored, touched) = state
        .store
        .update_policy(&updated, expected, &entry)
        .await
        .map_err(name_taken)?;
    FleetService::new(&state).forget(&touched);
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
    let entry = audit(caller.user_id, "policy.deleted", organization, policy, &origin);
    let touched = state.store.delete_policy(organization, policy, &entry).await?;
    FleetService::new(&state).forget(&touched);
    Ok(HttpResponse::NoContent().finish())
}
