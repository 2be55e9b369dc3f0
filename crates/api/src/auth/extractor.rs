//! Who is calling: the bearer-token extractor for the user API, and the permission-checking
//! extractor for the admin API (the permission is part of the handler's signature, so a
//! handler cannot forget to check it).

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use uuid::Uuid;

use super::error::AuthError;
use crate::error::ApiError;
use crate::extractors::AuthGate;
use crate::state::AppState;

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
    pub struct OrganizationsRead;
    impl Scope for OrganizationsRead {
        const NAME: &'static str = "organizations:read";
    }

    #[derive(Debug)]
    pub struct DevicesRead;
    impl Scope for DevicesRead {
        const NAME: &'static str = "devices:read";
    }

    #[derive(Debug)]
    pub struct DevicesWrite;
    impl Scope for DevicesWrite {
        const NAME: &'static str = "devices:write";
    }
}

/// Who a bearer token speaks for: a session's access token, or a personal access token
/// (`stw_pat_…`) with its scopes.
pub(crate) async fn identify(
    state: &web::Data<AppState>,
    token: Option<String>,
    ip: Option<String>,
) -> Result<(Uuid, Option<Vec<String>>), ApiError> {
    let token = token.ok_or(AuthError::Unauthenticated)?;
    if token.starts_with(super::PAT_PREFIX) {
        let (user, scopes) = state.auth.authenticate_personal_token(&token, ip).await?;
        return Ok((user, Some(scopes)));
    }
    let claims = state.auth.authenticate(&token).await?;
    Ok((claims.sub, None))
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
            let (user_id, scopes) = identify(&state?, token, ip).await?;
            if scopes.is_some_and(|scopes| !scopes.iter().any(|s| s == S::NAME)) {
                return Err(scope_error(S::NAME).into());
            }
            Ok(Caller {
                user_id,
                scope: PhantomData,
            })
        })
    }
}

/// A permission of the admin API (`resource:action`), as a type.
pub trait Permission {
    const NAME: &'static str;
}

/// The permissions admin endpoints require.
pub mod permissions {
    use super::Permission;

    macro_rules! permission {
        ($name:ident, $value:literal) => {
            #[derive(Debug)]
            pub struct $name;
            impl Permission for $name {
                const NAME: &'static str = $value;
            }
        };
    }

    permission!(UsersRead, "users:read");
    permission!(UsersWrite, "users:write");
    permission!(DevicesRead, "devices:read");
    permission!(AuditRead, "audit:read");
    permission!(OrganizationsWrite, "organizations:write");
    permission!(AuditExport, "audit:export");
    // Only `super_admin` (`*`) holds it: the catalog is shared by every tenant.
    permission!(SettingsWrite, "settings:write");
    // Held by every system role: the admin API's own identity endpoint.
    permission!(AnySystemRole, "");
}

/// A user with a system role.
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    pub user_id: Uuid,
    pub roles: Vec<String>,
}

/// An admin caller holding permission `P`; others get 401 (no valid token) or 403.
#[derive(Debug)]
pub struct RequirePermission<P: Permission>(pub AdminIdentity, PhantomData<P>);

impl<P: Permission + 'static> FromRequest for RequirePermission<P> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gate = AuthGate::begin(request);
        let token = bearer_token(request);
        let ip = crate::extractors::client_ip(request).map(|ip| ip.to_string());
        let state = state(request);
        Box::pin(async move {
            let _gate = gate;
            let state = state?;
            let (user_id, scopes) = identify(&state, token, ip).await?;
            if let Some(scopes) = &scopes
                && !P::NAME.is_empty()
                && !scopes.iter().any(|s| s == P::NAME)
            {
                return Err(scope_error(P::NAME).into());
            }
            let roles = state.auth.system_roles(user_id).await.map_err(ApiError::from)?;
            let allowed = if P::NAME.is_empty() {
                roles.iter().any(|role| state.auth.roles().contains(role))
            } else {
                state.auth.roles().allows(&roles, P::NAME)
            };
            if !allowed {
                return Err(ApiError::from(AuthError::Forbidden).into());
            }
            Ok(RequirePermission(AdminIdentity { user_id, roles }, PhantomData))
        })
    }
}
