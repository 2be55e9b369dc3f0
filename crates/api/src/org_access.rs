//! `OrgAccess<A>`: the caller, their standing in the organization of the path's `{orgId}`, and
//! proof that it allows action `A` — checked before the body is read. A personal access token
//! needs the action's scope (`organizations:read` or `organizations:write`, 403 naming it);
//! system administrators need the matching system permission; everyone else needs an
//! organization role that allows the action. Outsiders get 404, members whose role lacks it 403.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use steward_app::organizations::{OrgStanding, OrganizationService};
use steward_domain::organizations::{OrgActor, OrgPermission, OrgRuleError, OrganizationRecord};
use steward_domain::rbac::Permission;
use uuid::Uuid;

use crate::auth::extractor_support::{bearer_token, identify, known_principal, scope_error, state};
use crate::error::ApiError;
use crate::extractors::AuthGate;

/// An action on an organization: the organization permission it needs, and the system
/// permission that reaches every organization (whose name is also the token scope it needs).
pub trait OrgAction {
    const PERMISSION: OrgPermission;
    const SYSTEM: Permission;
}

/// The actions organization endpoints take.
pub mod actions {
    use super::OrgAction;
    use steward_domain::organizations::OrgPermission;

    use steward_domain::rbac::Permission;

    macro_rules! action {
        ($name:ident, $permission:ident, $system:ident) => {
            #[derive(Debug)]
            pub struct $name;
            impl OrgAction for $name {
                const PERMISSION: OrgPermission = OrgPermission::$permission;
                const SYSTEM: Permission = Permission::$system;
            }
        };
    }

    action!(View, View, OrganizationsRead);
    action!(Manage, Manage, OrganizationsWrite);
    action!(ManageUsers, ManageUsers, OrganizationsWrite);
    // A bulk copy of the users: the managers' among members, a read for operators and tokens.
    action!(ExportUsers, ManageUsers, OrganizationsRead);
    action!(Delete, Delete, OrganizationsWrite);
}

/// A caller allowed to take action `A` in the organization of the path.
#[derive(Debug)]
pub struct OrgAccess<A: OrgAction> {
    pub user_id: Uuid,
    pub actor: OrgActor,
    pub organization: OrganizationRecord,
    /// The same, for the organization use cases.
    pub standing: OrgStanding,
    /// Who called and how (a session, or a token with its scopes).
    pub principal: steward_app::Principal,
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
        let known = known_principal(request);
        Box::pin(async move {
            let _gate = gate;
            let state = state?;
            let principal = match known {
                Some(principal) => principal,
                None => identify(&state, token, ip).await?,
            };
            state.rate_limits.check_admin(principal.user).await?;
            if !principal.has_scope(A::SYSTEM.as_str()) {
                return Err(scope_error(A::SYSTEM.as_str()).into());
            }
            if let Some(malformed) = malformed {
                return Err(malformed.into());
            }
            let Some(Ok(organization)) = organization else {
                return Err(ApiError::from(OrgRuleError::NotFound).into());
            };
            let service = OrganizationService::new(&state);
            let standing = service
                .standing(principal.clone(), organization, A::PERMISSION, A::SYSTEM)
                .await
                .map_err(ApiError::from)?;
            service.count_request(&standing).await.map_err(ApiError::from)?;
            Ok(Self {
                user_id: standing.user,
                actor: standing.actor,
                organization: standing.organization.clone(),
                standing,
                principal,
                action: PhantomData,
            })
        })
    }
}

impl<A: OrgAction> OrgAccess<A> {
    pub fn organization_id(&self) -> Uuid {
        self.organization.id
    }
}
