//! The admin API's identity and user lookup; more admin endpoints build on the same
//! `RequirePermission` extractor.

use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::UserProfile;
use crate::auth::{AuthError, RequirePermission, permissions};
use crate::envelope::{self, Envelope};
use crate::error::{ApiError, ErrorEnvelope};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminIdentityView {
    pub user_id: Uuid,
    pub roles: Vec<String>,
    /// Every permission the roles grant; `*` means all.
    pub permissions: Vec<String>,
}

/// The calling administrator: roles and effective permissions.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<AdminIdentityView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "No system role", body = ErrorEnvelope),
    )
)]
#[get("/me")]
pub async fn admin_me(
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::AnySystemRole>,
) -> HttpResponse {
    let identity = admin.0;
    let mut granted: Vec<String> = state
        .auth
        .roles()
        .roles()
        .iter()
        .filter(|role| identity.roles.contains(&role.name))
        .flat_map(|role| role.permissions.iter().cloned())
        .collect();
    granted.sort();
    granted.dedup();
    envelope::ok(AdminIdentityView {
        user_id: identity.user_id,
        roles: identity.roles,
        permissions: granted,
    })
}

/// One user's profile, for support and user administration (`users:read`).
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, body = Envelope<UserProfile>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope),
    )
)]
#[get("/users/{userId}")]
pub async fn admin_get_user(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::UsersRead>,
    user_id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let user = state
        .auth
        .current_user(user_id.into_inner())
        .await
        .map_err(|error| match error {
            AuthError::Unauthenticated => AuthError::NotFound,
            other => other,
        })?;
    Ok(envelope::ok(UserProfile::from(user)))
}
