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
use crate::state::AppState;

/// A caller with a valid access token whose session is live.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    pub user_id: Uuid,
    pub session_id: Uuid,
}

fn bearer_token(request: &HttpRequest) -> Option<String> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn state(request: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
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
        let token = bearer_token(request);
        let state = state(request);
        Box::pin(async move { Ok(authenticate(state?, token).await?) })
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
    // Held by every system role: the admin API's own identity endpoint.
    permission!(AnySystemRole, "");
}

/// A user with a system role.
#[derive(Debug, Clone)]
pub struct AdminIdentity {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub roles: Vec<String>,
}

/// An admin caller holding permission `P`; others get 401 (no valid token) or 403.
#[derive(Debug)]
pub struct RequirePermission<P: Permission>(pub AdminIdentity, PhantomData<P>);

impl<P: Permission + 'static> FromRequest for RequirePermission<P> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(request);
        let state = state(request);
        Box::pin(async move {
            let state = state?;
            let caller = authenticate(state.clone(), token).await?;
            let roles = state
                .auth
                .system_roles(caller.user_id)
                .await
                .map_err(ApiError::from)?;
            let allowed = if P::NAME.is_empty() {
                roles.iter().any(|role| state.auth.roles().contains(role))
            } else {
                state.auth.roles().allows(&roles, P::NAME)
            };
            if !allowed {
                return Err(ApiError::from(AuthError::Forbidden).into());
            }
            Ok(RequirePermission(
                AdminIdentity {
                    user_id: caller.user_id,
                    session_id: caller.session_id,
                    roles,
                },
                PhantomData,
            ))
        })
    }
}
