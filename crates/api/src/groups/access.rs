//! `GroupAccess<A>`: the caller, their role in the group of the path's `{groupId}`, and proof
//! that the role allows action `A`. Outsiders (and deleted groups) get 404, members whose role
//! lacks the permission 403, so handlers never compare role names.

use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use steward_app::groups::GroupService;
use steward_domain::group_store::GroupSummary;
use steward_domain::groups::{GroupPermission, GroupRole, GroupRuleError};
use uuid::Uuid;

use crate::auth::extractor_support::{bearer_token, identify, scope_error, state};
use crate::error::ApiError;

/// An action on a group: the permission it needs and the token scope that reaches it.
pub trait GroupAction {
    const PERMISSION: GroupPermission;
    const SCOPE: &'static str;
}

/// The actions group endpoints take.
pub mod actions {
    use super::GroupAction;
    use steward_domain::groups::GroupPermission;

    macro_rules! action {
        ($name:ident, $permission:ident, $scope:literal) => {
            #[derive(Debug)]
            pub struct $name;
            impl GroupAction for $name {
                const PERMISSION: GroupPermission = GroupPermission::$permission;
                const SCOPE: &'static str = $scope;
            }
        };
    }

    action!(View, ViewGroup, "groups:read");
    action!(ViewMembers, ViewMembers, "groups:read");
    // Any member acting on the membership (leave, or change others as the domain allows):
    // the finer rules are decided on fresh data inside the transaction.
    action!(ChangeMembership, ViewGroup, "groups:write");
    action!(Update, UpdateGroup, "groups:write");
    action!(Delete, DeleteGroup, "groups:write");
    action!(ManageInvites, ManageInvites, "groups:write");
    action!(TransferOwnership, TransferOwnership, "groups:write");
    action!(ReviewSettings, ChangeMemberSettings, "groups:read");
}

/// A member of the group in the path, allowed to take action `A`.
#[derive(Debug)]
pub struct GroupAccess<A: GroupAction> {
    pub user_id: Uuid,
    pub group: GroupSummary,
    action: PhantomData<A>,
}

impl<A: GroupAction> GroupAccess<A> {
    pub fn group_id(&self) -> Uuid {
        self.group.group.id
    }

    pub fn role(&self) -> GroupRole {
        self.group.my_role
    }
}

impl<A: GroupAction + 'static> FromRequest for GroupAccess<A> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let gate = crate::extractors::AuthGate::begin(request);
        let token = bearer_token(request);
        let ip = crate::extractors::client_ip(request).map(|ip| ip.to_string());
        let group_id = request.match_info().get("groupId").map(str::parse::<Uuid>);
        let malformed = crate::extractors::malformed_path_id(request);
        let state = state(request);
        Box::pin(async move {
            let _gate = gate;
            let state = state?;
            let principal = identify(&state, token, ip).await?;
            if !principal.has_scope(A::SCOPE) {
                return Err(scope_error(A::SCOPE).into());
            }
            let user_id = principal.user;
            // A malformed id is a bad request, as everywhere (api-conventions.md).
            if let Some(malformed) = malformed {
                return Err(malformed.into());
            }
            let Some(Ok(group_id)) = group_id else {
                return Err(ApiError::from(GroupRuleError::NotFound).into());
            };
            let group = GroupService::new(&state.store)
                .standing(user_id, group_id, A::PERMISSION)
                .await
                .map_err(ApiError::from)?;
            Ok(GroupAccess {
                user_id,
                group,
                action: PhantomData,
            })
        })
    }
}
