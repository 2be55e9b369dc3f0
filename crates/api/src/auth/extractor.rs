//! Who is calling: the bearer-token extractor for the user API, and the permission-checking
//! extractor for the admin API (the permission is part of the handler's signature, so a
//! handler cannot forget to check it).

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use crate::error::ApiError;
use crate::extractors::AuthGate;
use crate::state::AppState;
use steward_app::Principal;
use steward_app::auth::AuthError;

/// A caller with a valid access token whose session is live.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

pub(crate) fn bearer_token(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

pub(crate) fn state(request: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    request
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(ApiError::internal)
}

async fn authenticate(state: web::Data<AppState>, token: Option<String>) -> Result<Authenticated, ApiError> {
    let token = token.ok_or(AuthError::Unauthenticated)?;
    let claims = state.auth.authenticate(&token).await?;
    crate::request_id::note_principal(&steward_app::Principal::new(
        claims.sub,
        steward_app::Credential::Session { session: claims.sid },
    ));
    Ok(Authenticated {
        user_id: claims.sub,
        session_id: claims.sid,
    })
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gate = AuthGate::begin(request);
        let token = bearer_token(request);
        let state = state(request);
        Box::pin(async move {
            let _gate = gate;
            Ok(authenticate(state?, token).await?)
        })
    }
}

/// A scope a personal access token must carry to use an endpoint.
pub trait Scope {
    const NAME: &'static str;
}

/// The scopes of the user API.
pub mod scopes {
    use super::Scope;

    #[derive(Debug)]
    pub struct AccountRead;
    impl Scope for AccountRead {
        const NAME: &'static str = "account:read";
    }

    #[derive(Debug)]
    pub struct AccountWrite;
    impl Scope for AccountWrite {
        const NAME: &'static str = "account:write";
    }

    #[derive(Debug)]
    pub struct GroupsRead;
    impl Scope for GroupsRead {
        const NAME: &'static str = "groups:read";
    }

    #[derive(Debug)]
    pub struct GroupsWrite;
    impl Scope for GroupsWrite {
        const NAME: &'static str = "groups:write";
    }

    #[derive(Debug)]
    pub struct JobsRead;
    impl Scope for JobsRead {
        const NAME: &'static str = "jobs:read";
    }

    #[derive(Debug)]
    pub struct JobsWrite;
    impl Scope for JobsWrite {
        const NAME: &'static str = "jobs:write";
    }

    #[derive(Debug)]
    pub struct WebhooksRead;
    impl Scope for WebhooksRead {
        const NAME: &'static str = "webhooks:read";
    }

    #[derive(Debug)]
    pub struct WebhooksManage;
    impl Scope for WebhooksManage {
        const NAME: &'static str = "webhooks:manage";
    }

    #[derive(Debug)]
    pub struct NotificationsRead;
    impl Scope for NotificationsRead {
        const NAME: &'static str = "notifications:read";
    }

    #[derive(Debug)]
    pub struct DashboardRead;
    impl Scope for DashboardRead {
        const NAME: &'static str = "dashboard:read";
    }

    #[derive(Debug)]
    pub struct OrganizationsRead;
    impl Scope for OrganizationsRead {
        const NAME: &'static str = "organizations:read";
    }

    #[derive(Debug)]
    pub struct DevicesRead;
    impl Scope for DevicesRead {
        const NAME: &'static str = "devices:read";
    }
    impl super::DeviceScope for DevicesRead {
        const PERMISSION: steward_domain::rbac::Permission = steward_domain::rbac::Permission::DevicesRead;
    }

    #[derive(Debug)]
    pub struct DevicesWrite;
    impl Scope for DevicesWrite {
        const NAME: &'static str = "devices:write";
    }
    impl super::DeviceScope for DevicesWrite {
        const PERMISSION: steward_domain::rbac::Permission = steward_domain::rbac::Permission::DevicesWrite;
    }
}

/// A device scope: reading or changing a device, and the system permission that reaches any
/// device the same way.
pub trait DeviceScope: Scope {
    const PERMISSION: steward_domain::rbac::Permission;
}

/// Who a bearer token speaks for: a session's access token, or a personal access token
/// (`stw_pat_…`) with its scopes. System roles are loaded only where a check needs them.
pub(crate) async fn identify(
    state: &web::Data<AppState>,
    token: Option<String>,
    ip: Option<String>,
) -> Result<Principal, ApiError> {
    let token = token.ok_or(AuthError::Unauthenticated)?;
    let principal = state.auth.principal(&token, ip).await?;
    crate::request_id::note_principal(&principal);
    Ok(principal)
}

/// The caller the admin guard already identified for this request, if it did.
pub(crate) fn known_principal(request: &HttpRequest) -> Option<Principal> {
    use actix_web::HttpMessage;
    request.extensions().get::<Principal>().cloned()
}

pub(crate) fn scope_error(scope: &str) -> ApiError {
    ApiError::new(
        crate::error::ErrorCode::Forbidden,
        format!("this personal access token lacks the scope `{scope}`"),
    )
}

/// A caller allowed to act with scope `S`: any signed-in session, or a personal access token
/// that carries `S`. Endpoints that must not be reachable with a token (password, deletion,
/// token management) take [`Authenticated`] instead, which accepts sessions only.
#[derive(Debug)]
pub struct Caller<S: Scope> {
    pub user_id: Uuid,
    /// Who is calling and how; system roles not loaded.
    pub principal: Principal,
    scope: PhantomData<S>,
}

impl<S: Scope + 'static> FromRequest for Caller<S> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gate = AuthGate::begin(request);
        let token = bearer_token(request);
        let ip = crate::extractors::client_ip(request).map(|ip| ip.to_string());
        let state = state(request);
        Box::pin(async move {
            let _gate = gate;
            let principal = identify(&state?, token, ip).await?;
            if !principal.has_scope(S::NAME) {
                return Err(scope_error(S::NAME).into());
            }
            Ok(Caller {
                user_id: principal.user,
                principal,
                scope: PhantomData,
            })
        })
    }
}

/// A permission of the admin API, as a type: the domain's [`steward_domain::rbac::Permission`],
/// or `None` for "any system role".
pub trait Permission {
    const PERMISSION: Option<steward_domain::rbac::Permission>;
}

/// The permissions admin endpoints require.
pub mod permissions {
    use super::Permission;

    macro_rules! permission {
        ($name:ident) => {
            #[derive(Debug)]
            pub struct $name;
            impl Permission for $name {
                const PERMISSION: Option<steward_domain::rbac::Permission> =
                    Some(steward_domain::rbac::Permission::$name);
            }
        };
    }

    permission!(UsersRead);
    permission!(UsersWrite);
    permission!(UsersLock);
    permission!(UsersUnlock);
    permission!(UsersResetPassword);
    permission!(SessionsRead);
    permission!(SessionsRevoke);
    permission!(DevicesRead);
    permission!(AuditRead);
    permission!(OrganizationsWrite);
    permission!(AuditExport);
    // Only `super_admin` (`*`) holds it: the catalog is shared by every tenant.
    permission!(SettingsWrite);
    // Only `super_admin` (`*`) holds these: API keys are global.
    permission!(ApiKeysRead);
    permission!(ApiKeysWrite);
    // Only `super_admin` (`*`) holds it unless a custom role grants it.
    permission!(RolesWrite);
    permission!(GroupsManage);
    permission!(GroupsRead);
    // Only `super_admin` (`*`) holds it: plans and quotas are the operator's.
    permission!(QuotasWrite);
    permission!(DashboardRead);
    // Only `super_admin` (`*`) holds it unless a custom role grants it.
    permission!(ConfigManage);
    permission!(ReportsRead);
    // Only `super_admin` (`*`) holds it unless a custom role grants it.
    permission!(ReportsManage);

    /// Held by every system role: the admin API's own identity endpoint.
    #[derive(Debug)]
    pub struct AnySystemRole;
    impl Permission for AnySystemRole {
        const PERMISSION: Option<steward_domain::rbac::Permission> = None;
    }
}

/// A user with a system role.
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    pub user_id: Uuid,
    pub roles: Vec<String>,
    /// Who is calling and how, roles loaded.
    pub principal: Principal,
}

/// An admin caller holding permission `P`; others get 401 (no valid token) or 403. A personal
/// access token needs `P`'s scope too (403 naming it).
#[derive(Debug)]
pub struct RequirePermission<P: Permission>(pub AdminIdentity, PhantomData<P>);

impl<P: Permission + 'static> FromRequest for RequirePermission<P> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gate = AuthGate::begin(request);
        let token = bearer_token(request);
        let ip = crate::extractors::client_ip(request).map(|ip| ip.to_string());
        let origin = crate::extractors::Origin::of(request).0;
        let target = format!("{} {}", request.method(), request.path());
        let state = state(request);
        let known = known_principal(request);
        Box::pin(async move {
            let _gate = gate;
            let state = state?;
            let principal = match known {
                Some(principal) => principal,
                None => identify(&state, token, ip).await?,
            };
            state.rate_limits.check_admin(principal.user).await?;
            let permission = P::PERMISSION.map(|p| p.as_str());
            // Every refusal from here on is an identified caller asking for too much: audited.
            let denied = |scope: bool| {
                let state = state.clone();
                let principal = principal.clone();
                let (origin, target) = (origin.clone(), target.clone());
                async move {
                    if let Err(error) = state
                        .auth
                        .record_access_denied(&principal, permission, scope, &target, &origin)
                        .await
                    {
                        tracing::warn!(%error, "could not audit a denied admin request");
                    }
                }
            };
            if let Some(name) = permission
                && !principal.has_scope(name)
            {
                denied(true).await;
                return Err(scope_error(name).into());
            }
            let principal = state
                .auth
                .with_roles(principal.clone())
                .await
                .map_err(ApiError::from)?;
            let allowed = match P::PERMISSION {
                Some(permission) => principal.allows(permission),
                None => principal.has_system_role(),
            };
            if !allowed {
                denied(false).await;
                return Err(ApiError::from(AuthError::Forbidden).into());
            }
            let identity = AdminIdentity {
                user_id: principal.user,
                roles: principal.roles.clone(),
                principal,
            };
            Ok(RequirePermission(identity, PhantomData))
        })
    }
}
