//! `/api/admin/v1/organizations/{orgId}/groups`: the fleet groups an organization's devices
//! join.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use steward_domain::fleet::FleetGroup;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::fleet::FleetService;
use crate::org_access::{OrgAccess, actions as org_actions};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetGroupView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    /// The policy the group carries: its devices' group layer.
    pub policy_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<FleetGroup> for FleetGroupView {
    fn from(group: FleetGroup) -> Self {
        Self {
            id: group.id,
            organization_id: group.organization_id,
            name: group.name,
            description: group.description,
            policy_id: group.policy_id,
            created_at: group.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetGroupRequest {
    pub name: String,
    pub description: Option<String>,
    /// A policy of the organization for the group to carry (or apply one later).
    pub policy_id: Option<Uuid>,
}

/// The organization's fleet groups.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    responses((status = 200, body = Envelope<Vec<FleetGroupView>>), (status = 404, body = ErrorEnvelope))
)]
#[get("/organizations/{orgId}/groups")]
pub async fn list_fleet_groups(
    state: web::Data<AppState>,
    _caller: OrgAccess<org_actions::View>,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let groups = FleetService::new(&state).groups(organization).await?;
    Ok(envelope::ok(
        groups.into_iter().map(FleetGroupView::from).collect::<Vec<_>>(),
    ))
}

/// Create a fleet group (owners and admins); the creator is its owner.
#[utoipa::path(
    tag = "organizations",
    security(("bearer" = [])),
    params(("orgId" = Uuid, Path)),
    request_body = FleetGroupRequest,
    responses(
        (status = 201, body = Envelope<FleetGroupView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/organizations/{orgId}/groups")]
pub async fn create_fleet_group(
    state: web::Data<AppState>,
    caller: OrgAccess<org_actions::Manage>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<FleetGroupRequest>,
) -> Result<HttpResponse, ApiError> {
    let organization = path.into_inner();
    let group = FleetService::new(&state)
        .create_group(
            organization,
            caller.user_id,
            &body.name,
            body.description.as_deref(),
            body.policy_id,
            &origin.0,
        )
        .await?;
    Ok(envelope::created(FleetGroupView::from(group)))
}
