//! The admin API's identity and user lookup; more admin endpoints build on the same
//! `RequirePermission` extractor.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use steward_app::admin_users::{UserAdminService, UserDetail};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::UserProfile;
use crate::auth::{RequirePermission, permissions};
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
    /// Where the caller stands with admin MFA enforcement.
    pub mfa: AdminMfaView,
    /// Notifications you may see and have not read (`GET /api/admin/v1/notifications?unread=true`).
    pub unread_notifications: u64,
}

/// Admin MFA enforcement as it applies to the caller.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminMfaView {
    /// `STEWARD_ADMIN_MFA_REQUIRED`.
    pub enforced: bool,
    /// `satisfied` (a second factor, an exemption, or enforcement off), `grace` (allowed
    /// until `deadline`) or `required` (every other admin endpoint answers `403 MFA_REQUIRED`).
    pub status: String,
    pub deadline: Option<DateTime<Utc>>,
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
    request: actix_web::HttpRequest,
    state: web::Data<AppState>,
    admin: RequirePermission<permissions::AnySystemRole>,
) -> Result<HttpResponse, ApiError> {
    use actix_web::HttpMessage;
    use steward_domain::mfa::AdminMfaVerdict;
    let verdict = request
        .extensions()
        .get::<crate::admin_guard::CallerMfaVerdict>()
        .map(|verdict| verdict.0);
    let (status, deadline) = match verdict {
        Some(AdminMfaVerdict::Grace { deadline }) => ("grace", Some(deadline)),
        Some(AdminMfaVerdict::Required { deadline }) => ("required", Some(deadline)),
        Some(AdminMfaVerdict::Satisfied) | None => ("satisfied", None),
    };
    let mfa = AdminMfaView {
        enforced: state.auth.admin_mfa_enforced(),
        status: status.to_owned(),
        deadline,
    };
    let identity = admin.0;
    let mut granted: Vec<String> = identity
        .principal
        .catalog
        .roles()
        .iter()
        .filter(|role| identity.roles.contains(&role.name))
        .flat_map(|role| role.permissions.iter().cloned())
        .collect();
    granted.sort();
    granted.dedup();
    let unread_notifications = steward_app::notifications::NotificationService::new(&state)
        .unread_count(identity.principal.clone())
        .await?;
    Ok(envelope::ok(AdminIdentityView {
        user_id: identity.user_id,
        roles: identity.roles,
        permissions: granted,
        mfa,
        unread_notifications,
    }))
}

/// The operator's feature switches, as this instance started with them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FeaturesView {
    /// `STEWARD_USER_MGMT_CORE`: off, the admin API's `users`, `roles`, `audit-logs` and
    /// `organizations` routes answer 404 and the OIDC provider creates no accounts.
    pub user_mgmt_core: bool,
    /// The route families the switch above governs.
    pub core_routes: Vec<String>,
    /// `STEWARD_ENFORCE`: the default of `rlsEnforce` (never a permissive mode).
    pub enforce: bool,
    /// `STEWARD_RLS_ENFORCE` (else `STEWARD_ENFORCE`): PostgreSQL row-level security turned on
    /// at start-up ([`GET /api/admin/v1/database/rls`] reports it).
    pub rls_enforce: bool,
}

/// The feature switches this instance runs with; for any holder of a system role.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<FeaturesView>),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "No system role", body = ErrorEnvelope),
    )
)]
#[get("/features")]
pub async fn admin_features(
    state: web::Data<AppState>,
    _admin: RequirePermission<permissions::AnySystemRole>,
) -> Result<HttpResponse, ApiError> {
    Ok(envelope::ok(FeaturesView {
        user_mgmt_core: state.features.user_mgmt_core,
        core_routes: crate::admin_guard::CORE_ROUTES
            .iter()
            .map(|family| (*family).to_owned())
            .collect(),
        enforce: state.features.enforce,
        rls_enforce: state.features.rls_enforce,
    }))
}

/// An organization or group the account belongs to, and its role there.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MembershipView {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

/// One account as operators see it: the profile, status, roles, memberships and counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminUserDetail {
    #[serde(flatten)]
    pub profile: UserProfile,
    /// `active` or `locked`.
    pub status: String,
    pub last_login_at: Option<DateTime<Utc>>,
    pub system_roles: Vec<String>,
    /// Organizations (the first 100) with the account's role.
    pub organizations: Vec<MembershipView>,
    /// Groups (the first 100) with the account's role.
    pub groups: Vec<MembershipView>,
    pub live_sessions: usize,
    /// Devices the account owns.
    pub devices: usize,
    /// Live personal access tokens.
    pub personal_tokens: usize,
    /// Role overrides for identity-provider role sync, if any were set.
    #[schema(value_type = Option<Object>)]
    pub role_overrides: Option<serde_json::Value>,
    /// Whether sign-in asks this account for a second factor (TOTP).
    pub mfa_enrolled: bool,
    /// An exemption from admin MFA enforcement, if one was set (`expiresAt` may be past).
    pub mfa_exemption: Option<MfaExemptionView>,
}

/// An operator's exemption of an account from admin MFA enforcement.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MfaExemptionView {
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<steward_domain::mfa::MfaExemption> for MfaExemptionView {
    fn from(exemption: steward_domain::mfa::MfaExemption) -> Self {
        Self {
            reason: exemption.reason,
            expires_at: exemption.expires_at,
            created_by: exemption.created_by,
            created_at: exemption.created_at,
        }
    }
}

impl From<UserDetail> for AdminUserDetail {
    fn from(detail: UserDetail) -> Self {
        let membership = |(id, name, role): (Uuid, String, String)| MembershipView { id, name, role };
        Self {
            status: detail.user.status.clone(),
            last_login_at: detail.user.last_login_at,
            profile: UserProfile::from(detail.user),
            system_roles: detail.roles,
            organizations: detail.organizations.into_iter().map(membership).collect(),
            groups: detail.groups.into_iter().map(membership).collect(),
            live_sessions: detail.live_sessions,
            devices: detail.devices,
            personal_tokens: detail.personal_tokens,
            role_overrides: detail.role_overrides.map(|overrides| {
                serde_json::json!({
                    "enabled": overrides.enabled,
                    "preserved": overrides.preserved,
                    "suppressed": overrides.suppressed,
                })
            }),
            mfa_enrolled: detail.mfa_enrolled,
            mfa_exemption: detail.mfa_exemption.map(MfaExemptionView::from),
        }
    }
}

/// One account, for support and user administration (`users:read`): the profile, status
/// (locked accounts included), system roles, organizations and groups with roles, and how many
/// live sessions, devices and personal access tokens it has. Erased accounts are 404.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("userId" = Uuid, Path, description = "The user")),
    responses(
        (status = 200, body = Envelope<AdminUserDetail>),
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
    let detail = UserAdminService::new(&state).detail(user_id.into_inner()).await?;
    Ok(envelope::ok(AdminUserDetail::from(detail)))
}
