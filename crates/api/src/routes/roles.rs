//! System roles: the built-in ones and custom ones operators define
//! (`/api/admin/v1/roles`).

use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use steward_app::roles::{RoleEntry, RoleInput, RoleService};
use utoipa::ToSchema;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// A system role and the permissions it grants.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoleView {
    pub name: String,
    pub description: Option<String>,
    /// `resource:action` permissions; `*` grants every permission.
    pub permissions: Vec<String>,
    /// Built into Steward (cannot be edited or deleted).
    pub system: bool,
}

impl From<RoleEntry> for RoleView {
    fn from(role: RoleEntry) -> Self {
        Self {
            name: role.name,
            description: role.description,
            permissions: role.permissions,
            system: role.system,
        }
    }
}

/// A new custom role.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// 2–64 characters of `a-z`, `0-9` and `_`, starting with a letter; not a built-in name.
    pub name: String,
    /// Permissions Steward checks (see `GET /roles`); `*` is not allowed.
    pub permissions: Vec<String>,
    pub description: Option<String>,
}

/// A custom role's new permissions and description (both replaced).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateRoleRequest {
    pub permissions: Vec<String>,
    pub description: Option<String>,
}

/// The system roles, built-in (`system: true`) and custom, with their permissions (any
/// system role may read them).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<Vec<RoleView>>), (status = 403, body = ErrorEnvelope))
)]
#[get("/roles")]
pub async fn list_roles(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AnySystemRole>,
) -> Result<HttpResponse, ApiError> {
    let roles = RoleService::new(&state).list().await?;
    Ok(envelope::ok(
        roles.into_iter().map(RoleView::from).collect::<Vec<_>>(),
    ))
}

/// One role.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The role")),
    responses(
        (status = 200, body = Envelope<RoleView>),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/roles/{name}")]
pub async fn get_role(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AnySystemRole>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let role = RoleService::new(&state).get(&name).await?;
    Ok(envelope::ok(RoleView::from(role)))
}

/// Creates a custom role (`roles:write`). Every permission in it must be one the caller holds.
/// Holders of the role get exactly its permissions, checked like a built-in role's.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    request_body = CreateRoleRequest,
    responses(
        (status = 201, body = Envelope<RoleView>),
        (status = 400, description = "Bad name, description or unknown permission", body = ErrorEnvelope),
        (status = 403, description = "No `roles:write`, or a permission you do not hold", body = ErrorEnvelope),
        (status = 409, description = "The name is taken or built in, or 100 custom roles exist", body = ErrorEnvelope),
    )
)]
#[post("/roles")]
pub async fn create_role(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::RolesWrite>,
    origin: Origin,
    body: Json<CreateRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = RoleInput {
        permissions: body.permissions,
        description: body.description,
    };
    let role = RoleService::new(&state)
        .create(&admin.0.principal, &body.name, input, &origin.0)
        .await?;
    Ok(envelope::created(RoleView::from(role)))
}

/// Replaces a custom role's permissions and description (`roles:write`); built-in roles are
/// 409. Holders get the new permissions on their next request.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The role")),
    request_body = UpdateRoleRequest,
    responses(
        (status = 200, body = Envelope<RoleView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "A built-in role", body = ErrorEnvelope),
    )
)]
#[put("/roles/{name}")]
pub async fn update_role(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::RolesWrite>,
    origin: Origin,
    name: web::Path<String>,
    body: Json<UpdateRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let input = RoleInput {
        permissions: body.permissions,
        description: body.description,
    };
    let role = RoleService::new(&state)
        .update(&admin.0.principal, &name, input, &origin.0)
        .await?;
    Ok(envelope::ok(RoleView::from(role)))
}

/// Deletes a custom role nobody holds (`roles:write`); 409 names how many accounts hold it,
/// and built-in roles are 409 too.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "The role")),
    responses(
        (status = 204),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "Built in, or held by someone", body = ErrorEnvelope),
    )
)]
#[delete("/roles/{name}")]
pub async fn delete_role(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::RolesWrite>,
    origin: Origin,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    RoleService::new(&state)
        .delete(&admin.0.principal, &name, &origin.0)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
