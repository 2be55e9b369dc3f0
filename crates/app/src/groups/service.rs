//! Group use cases: each builds its audit entry, asks the domain to decide and the store to
//! apply. Rules about roles live in `steward_domain::groups`, never here.

use chrono::{Duration, Utc};
use serde_json::json;
use steward_domain::group_store::{GroupInvite, GroupStore, GroupSummary, MemberProfile, NewGroup};
use steward_domain::groups::{self, GroupName, GroupPermission, GroupRole, GroupRuleError, InviteCode};
use steward_domain::{Actor, AuditAction, AuditEntry, PageRequest, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;

/// What an inviter asks for; absent fields take the defaults (member, 1 use, 72 hours).
#[derive(Debug, Clone, Default)]
pub struct InviteRequest {
    pub role: Option<GroupRole>,
    pub max_uses: Option<i32>,
    pub expires_in_hours: Option<i64>,
}

/// A rename or re-description; absent fields keep their value, `Some(None)` clears the
/// description.
#[derive(Debug, Clone, Default)]
pub struct GroupUpdate {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub expected_version: Option<i32>,
}

pub struct GroupService<'a, S> {
    store: &'a S,
}

fn audit(actor: Uuid, action: &'static str, group: Uuid, origin: &RequestOrigin) -> AuditEntry {
    AuditEntry::new(Actor::user(actor), AuditAction::known(action), "group")
        .resource_id(group)
        .origin(origin.clone())
}

impl<'a, S: GroupStore> GroupService<'a, S> {
    pub fn new(store: &'a S) -> Self {
        Self { store }
    }

    pub async fn create(
        &self,
        owner: Uuid,
        name: &str,
        description: Option<&str>,
        origin: &RequestOrigin,
    ) -> Result<GroupSummary, AppError> {
        let name = GroupName::parse(name)?.into_inner();
        let description = groups::parse_description(description)?;
        let group = NewGroup {
            id: Uuid::now_v7(),
            name,
            description,
            owner,
            created_at: Utc::now(),
        };
        let entry = audit(owner, "group.created", group.id, origin).change(
            None,
            Some(json!({"name": group.name, "description": group.description})),
        );
        Ok(self.store.create_group(&group, &entry).await?)
    }

    /// The caller's view of a group whose role there allows `permission`: `NotFound` for
    /// outsiders (and deleted groups), `Forbidden` for members whose role lacks it.
    pub async fn standing(
        &self,
        user: Uuid,
        group: Uuid,
        permission: GroupPermission,
    ) -> Result<GroupSummary, AppError> {
        let summary = self.summary(group, user).await?;
        if !summary.my_role.allows(permission) {
            return Err(GroupRuleError::Forbidden("your role in this group does not allow this").into());
        }
        Ok(summary)
    }

    /// The caller's view of a group they belong to.
    pub async fn summary(&self, group: Uuid, user: Uuid) -> Result<GroupSummary, AppError> {
        Ok(self
            .store
            .group_for_member(group, user)
            .await?
            .ok_or(GroupRuleError::NotFound)?)
    }

    pub async fn list(&self, user: Uuid, page: PageRequest) -> Result<(Vec<GroupSummary>, u64), AppError> {
        Ok(self.store.groups_of(user, page).await?)
    }

    pub async fn update(
        &self,
        actor: Uuid,
        current: &GroupSummary,
        changes: GroupUpdate,
        origin: &RequestOrigin,
    ) -> Result<GroupSummary, AppError> {
        let group = current.group.id;
        let name = match changes.name.as_deref() {
            Some(name) => GroupName::parse(name)?.into_inner(),
            None => current.group.name.clone(),
        };
        let description = match &changes.description {
            Some(text) => groups::parse_description(text.as_deref())?,
            None => current.group.description.clone(),
        };
        let expected_version = changes.expected_version;
        let entry = audit(actor, "group.updated", group, origin);
        self.store
            .update_group(group, expected_version, name, description, &entry)
            .await?;
        self.summary(group, actor).await
    }

    pub async fn delete(&self, actor: Uuid, group: Uuid, origin: &RequestOrigin) -> Result<(), AppError> {
        let entry = audit(actor, "group.deleted", group, origin);
        Ok(self.store.delete_group(group, &entry).await?)
    }

    pub async fn members(&self, group: Uuid) -> Result<Vec<MemberProfile>, AppError> {
        Ok(self.store.members(group).await?)
    }

    pub async fn change_role(
        &self,
        actor: Uuid,
        group: Uuid,
        target: Uuid,
        role: GroupRole,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = audit(actor, "group.member_role_changed", group, origin);
        self.store
            .change_membership(
                group,
                |snapshot| groups::change_role(snapshot, actor, target, role),
                &entry,
            )
            .await?;
        Ok(())
    }

    /// Removes `target`, or — when the caller names themself — leaves the group.
    pub async fn remove_member(
        &self,
        actor: Uuid,
        group: Uuid,
        target: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let action = if actor == target {
            "group.member_left"
        } else {
            "group.member_removed"
        };
        let entry = audit(actor, action, group, origin);
        self.store
            .change_membership(
                group,
                |snapshot| groups::remove_member(snapshot, actor, target),
                &entry,
            )
            .await?;
        Ok(())
    }

    pub async fn transfer_ownership(
        &self,
        actor: Uuid,
        group: Uuid,
        target: Uuid,
        origin: &RequestOrigin,
    ) -> Result<GroupSummary, AppError> {
        let entry = audit(actor, "group.ownership_transferred", group, origin);
        self.store
            .change_membership(
                group,
                |snapshot| groups::transfer_ownership(snapshot, actor, target),
                &entry,
            )
            .await?;
        self.summary(group, actor).await
    }

    pub async fn create_invite(
        &self,
        actor: Uuid,
        actor_role: GroupRole,
        group: Uuid,
        request: InviteRequest,
        origin: &RequestOrigin,
    ) -> Result<GroupInvite, AppError> {
        let role = groups::invite_role(actor_role, request.role.unwrap_or(GroupRole::Member))?;
        let max_uses = request.max_uses.unwrap_or(1);
        if !(1..=100).contains(&max_uses) {
            return Err(GroupRuleError::Invalid {
                field: "maxUses",
                message: "must be between 1 and 100",
            }
            .into());
        }
        let hours = request.expires_in_hours.unwrap_or(72);
        if !(1..=720).contains(&hours) {
            return Err(GroupRuleError::Invalid {
                field: "expiresInHours",
                message: "must be between 1 and 720 (30 days)",
            }
            .into());
        }
        let now = Utc::now();
        // A collision with a live code is astronomically unlikely (31^8 codes) but would surface
        // as a unique-constraint conflict, so draw again a few times before giving up.
        for _ in 0..3 {
            let code = InviteCode::from_random_bytes(steward_auth::random_bytes(32))
                .ok_or_else(AppError::internal)?;
            let invite = GroupInvite {
                id: Uuid::now_v7(),
                group_id: group,
                code: code.as_str().to_owned(),
                role,
                created_by: Some(actor),
                max_uses,
                use_count: 0,
                expires_at: now + Duration::hours(hours),
                revoked_at: None,
                created_at: now,
            };
            let entry = AuditEntry::new(Actor::user(actor), AuditAction::known("group.invite_created"), "group_invite")
                .resource_id(invite.id)
                .origin(origin.clone())
                .change(
                    None,
                    Some(json!({"groupId": group, "role": role, "maxUses": max_uses, "expiresAt": invite.expires_at})),
                );
            match self.store.create_invite(&invite, &entry).await {
                Ok(()) => return Ok(invite),
                Err(steward_domain::RepositoryError::Conflict(_)) => continue,
                Err(other) => return Err(other.into()),
            }
        }
        Err(AppError::internal())
    }

    pub async fn invites(&self, group: Uuid) -> Result<Vec<GroupInvite>, AppError> {
        Ok(self.store.live_invites(group, Utc::now()).await?)
    }

    pub async fn revoke_invite(
        &self,
        actor: Uuid,
        group: Uuid,
        invite: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = AuditEntry::new(
            Actor::user(actor),
            AuditAction::known("group.invite_revoked"),
            "group_invite",
        )
        .resource_id(invite)
        .origin(origin.clone());
        if self
            .store
            .revoke_invite(group, invite, Utc::now(), &entry)
            .await?
        {
            Ok(())
        } else {
            Err(GroupRuleError::NotFound.into())
        }
    }

    pub async fn join(
        &self,
        user: Uuid,
        code: &str,
        origin: &RequestOrigin,
    ) -> Result<GroupSummary, AppError> {
        let code = InviteCode::parse(code)?;
        let entry = AuditEntry::new(
            Actor::user(user),
            AuditAction::known("group.member_joined"),
            "group",
        )
        .origin(origin.clone());
        let group = self
            .store
            .redeem_invite(code.as_str(), user, Utc::now(), &entry)
            .await
            .map_err(|error| match error {
                steward_domain::group_store::GroupStoreError::Rule(GroupRuleError::NotFound) => {
                    AppError::not_found("this invite code is unknown, expired, revoked or used up")
                }
                // A code holder learns that the group is full, not its size or its owner's plan.
                steward_domain::group_store::GroupStoreError::Rule(GroupRuleError::QuotaExceeded(_)) => {
                    AppError::new(
                        crate::error::ErrorKind::QuotaExceeded,
                        "this group cannot take more members; ask its owner",
                    )
                }
                other => other.into(),
            })?;
        self.summary(group, user).await
    }
}
