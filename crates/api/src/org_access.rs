//! `OrgAccess<A>`: the caller, their standing in the organization of the path's `{orgId}`, and
//! proof that it allows action `A` — checked before the body is read. A personal access token
//! needs the action's scope (`organizations:read` or `organizations:write`, 403 naming it);
//! system administrators need the matching system permission; everyone else needs an
//! organization role that allows the action. Outsiders get 404, members whose role lacks it 403.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use steward_domain::organizations::{
    OrgActor, OrgPermission, OrgRuleError, OrganizationRecord, OrganizationStore,
};
use uuid::Uuid;

use crate::auth::extractor_support::{bearer_token, identify, scope_error, state};
use crate::error::ApiError;
use crate::extractors::AuthGate;

/// An action on an organization: the organization permission it needs, and the token scope
/// (also the system permission that reaches every organization).
pub trait OrgAction {
    const PERMISSION: OrgPermission;
    const SCOPE: &'static str;
}

/// The actions organization endpoints take.
pub mod actions {
    use super::OrgAction;
    use steward_domain::organizations::OrgPermission;

    macro_rules! action {
        ($name:ident, $permission:ident, $scope:literal) => {
            #[derive(Debug)]
            pub struct $name;
            impl OrgAction for $name {
                const PERMISSION: OrgPermission = OrgPermission::$permission;
                const SCOPE: &'static str = $scope;
            }
        };
    }

    action!(View, View, "organizations:read");
    action!(Manage, Manage, "organizations:write");
    action!(ManageUsers, ManageUsers, "organizations:write");
    action!(Delete, Delete, "organizations:write");
}

/// A caller allowed to take action `A` in the organization of the path.
#[derive(Debug)]
pub struct OrgAccess<A: OrgAction> {
    pub user_id: Uuid,
    pub actor: OrgActor,
    pub organization: OrganizationRecord,
    action: PhantomData<A>,
}

impl<A: OrgAction + 'static> FromRequest for OrgAccess<A> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gate = AuthGate::begin(request);
        let token = bearer_token(request);
        let ip = crate::extractors::client_ip(request).map(|ip| ip.to_string());
        let organization = request.match_info().get("orgId").map(str::parse::<Uuid>);
        let malformed = crate::extractors::malformed_path_id(request);
        let state = state(request);
        Box::pin(async move {
            let _gate = gate;
            let state = state?;
            let (user_id, scopes) = identify(&state, token, ip).await?;
            if scopes.is_some_and(|scopes| !scopes.iter().any(|s| s == A::SCOPE)) {
                return Err(scope_error(A::SCOPE).into());
            }
            if let Some(malformed) = malformed {
                return Err(malformed.into());
            }
            let Some(Ok(organization)) = organization else {
                return Err(ApiError::from(OrgRuleError::NotFound).into());
            };
            let found = state
                .database
                .find_organization(organization)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::from(OrgRuleError::NotFound))?;
            let roles = state.auth.system_roles(user_id).await.map_err(ApiError::from)?;
            if state.auth.roles().allows(&roles, A::SCOPE) {
                return Ok(Self::new(user_id, OrgActor::SystemAdmin, found));
            }
            let role = state
                .database
                .org_role(organization, user_id)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::from(OrgRuleError::NotFound))?;
            if !role.allows(A::PERMISSION) {
                return Err(ApiError::from(OrgRuleError::Forbidden(
                    "your organization role does not allow this",
                ))
                .into());
            }
            Ok(Self::new(user_id, OrgActor::Member(role), found))
        })
    }
}

impl<A: OrgAction> OrgAccess<A> {
    fn new(user_id: Uuid, actor: OrgActor, organization: OrganizationRecord) -> Self {
        Self {
            user_id,
            actor,
            organization,
            action: PhantomData,
        }
    }

    pub fn organization_id(&self) -> Uuid {
        self.organization.id
    }
}
