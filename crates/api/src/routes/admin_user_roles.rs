//! A user's system roles: `PUT /api/admin/v1/users/{id}/roles` and
//! `POST|DELETE /users/{id}/roles/{role}`.

use actix_web::{HttpResponse, delete, post, put, web};
use serde::{Deserialize, Serialize};
use steward_app::admin_users::{RoleRequest, UserAdminService};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::extractors::{Json, Origin};
use crate::state::AppState;

/// Exactly the roles the user should hold.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetRolesRequest {
    pub roles: Vec<String>,
}

/// A user's system roles after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRolesView {
    pub roles: Vec<String>,
}

fn role_name(role: &str) -> Result<&str, ApiError> {
    if role.trim().is_empty() || role.chars().count() > 64 {
        return Err(ApiError::invalid("role", "must be 1 to 64 characters"));
    }
    Ok(role)
}

async fn change_roles(
    state: &AppState,
    admin: &crate::auth::AdminIdentity,
    user: Uuid,
    request: RoleRequest,
    origin: &Origin,
) -> Result<HttpResponse, ApiError> {
    let roles = UserAdminService::new(state)
        .change_roles(&admin.principal, user, request, &origin.0)
        .await?;
    Ok(envelope::ok(UserRolesView { roles }))
}

/// Set a user's system roles (`users:write`). Every role that changes must be one you could
/// grant — all its permissions are yours, so only a `super_admin` grants or revokes
/// `super_admin` (403 otherwise); unknown roles are 400; the last unlocked `super_admin` keeps
/// the role (409, also when two demotions race). Each grant and revocation is audited.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path)),
    request_body = SetRolesRequest,
    responses(
        (status = 200, body = Envelope<UserRolesView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The last super_admin", body = ErrorEnvelope),
    )
)]
#[put("/users/{userId}/roles")]
pub async fn set_user_roles(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<Uuid>,
    body: Json<SetRolesRequest>,
) -> Result<HttpResponse, ApiError> {
    let roles = body.into_inner().roles;
    if roles.len() > 32 {
        return Err(ApiError::invalid("roles", "at most 32 roles"));
    }
    for role in &roles {
        role_name(role)?;
    }
    change_roles(
        &state,
        &admin.0,
        path.into_inner(),
        RoleRequest::Exactly(roles),
        &origin,
    )
    .await
}

/// Grant one system role (`users:write`; the rules of `PUT …/roles`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("role" = String, Path)),
    responses(
        (status = 200, body = Envelope<UserRolesView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[post("/users/{userId}/roles/{role}")]
pub async fn grant_user_role(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user, role) = path.into_inner();
    role_name(&role)?;
    change_roles(&state, &admin.0, user, RoleRequest::Add(role), &origin).await
}

/// Revoke one system role (`users:write`; the rules of `PUT …/roles`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path), ("role" = String, Path)),
    responses(
        (status = 200, body = Envelope<UserRolesView>),
        (status = 400, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
        (status = 409, description = "The last super_admin", body = ErrorEnvelope),
    )
)]
#[delete("/users/{userId}/roles/{role}")]
pub async fn revoke_user_role(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::UsersWrite>,
    origin: Origin,
    path: web::Path<(Uuid, String)>,
) -> Result<HttpResponse, ApiError> {
    let (user, role) = path.into_inner();
    role_name(&role)?;
    change_roles(&state, &admin.0, user, RoleRequest::Remove(role), &origin).await
}
