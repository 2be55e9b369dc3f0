//! Groups as operators see them: every group (family groups and organizations' fleet groups),
//! found by name, kind, organization, archive state and owner, and an ownership transfer an
//! operator forces (an owner who left, a dispute).

use std::future::Future;

use uuid::Uuid;

use crate::groups::{GroupChange, GroupRecord, GroupRole, GroupSnapshot};
use crate::pagination::PageRequest;
use crate::repository::RepositoryError;
use crate::rules::RuleError;

/// A family group belongs to people; a fleet group to an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupKind {
    Family,
    Fleet,
}

impl GroupKind {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "family" => Some(Self::Family),
            "fleet" => Some(Self::Fleet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Family => "family",
            Self::Fleet => "fleet",
        }
    }
}

/// What the operators' group listing narrows to; each present filter narrows further.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupFilter {
    /// Part of the name, case-insensitive.
    pub text: Option<String>,
    pub kind: Option<GroupKind>,
    pub organization: Option<Uuid>,
    /// `Some(true)`: archived groups only; `Some(false)`: live ones only.
    pub archived: Option<bool>,
    /// Owned by this user.
    pub owner: Option<Uuid>,
    /// Only groups that come after this one (`created_at`, id) in the listing's order (newest
    /// first): the exports' keyset cursor, so a group created or deleted meanwhile neither
    /// repeats nor hides another. Not a query parameter.
    pub after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
}

/// A group's owner as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOwner {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
}

/// One group in the operators' listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: GroupRecord,
    pub organization_id: Option<Uuid>,
    pub member_count: u64,
    pub owner: Option<GroupOwner>,
}

impl GroupListing {
    pub fn kind(&self) -> GroupKind {
        if self.organization_id.is_some() {
            GroupKind::Fleet
        } else {
            GroupKind::Family
        }
    }
}

pub trait GroupAdminStore {
    /// Every live (not deleted) group the filter selects, newest first, and how many there are.
    fn list_all_groups(
        &self,
        filter: &GroupFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<GroupListing>, u64), RepositoryError>> + Send;

    /// One live group as listed; `None` for unknown and deleted groups.
    fn group_listing(
        &self,
        group: Uuid,
    ) -> impl Future<Output = Result<Option<GroupListing>, RepositoryError>> + Send;
}

/// An operator makes `target`, a member, the owner; the owner so far becomes an admin. Archived
/// groups change nothing (409); a non-member or the owner already is 400.
pub fn force_ownership_transfer(
    snapshot: &GroupSnapshot,
    target: Uuid,
) -> Result<Vec<GroupChange>, RuleError> {
    if snapshot.group.archived_at.is_some() {
        return Err(RuleError::Conflict("the group is archived"));
    }
    match snapshot.role_of(target) {
        None => {
            return Err(RuleError::Invalid {
                field: "userId",
                message: "must be a member of the group",
            });
        }
        Some(GroupRole::Owner) => {
            return Err(RuleError::Invalid {
                field: "userId",
                message: "already owns the group",
            });
        }
        Some(_) => {}
    }
    // Demote first: the store refuses a second owner at any moment.
    let mut changes: Vec<GroupChange> = snapshot
        .members
        .iter()
        .filter(|member| member.role == GroupRole::Owner)
        .map(|member| GroupChange::SetRole {
            user_id: member.user_id,
            role: GroupRole::Admin,
        })
        .collect();
    changes.push(GroupChange::SetRole {
        user_id: target,
        role: GroupRole::Owner,
    });
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::Member;
    use chrono::Utc;

    fn snapshot(members: &[(Uuid, GroupRole)], archived: bool) -> GroupSnapshot {
        let now = Utc::now();
        GroupSnapshot {
            group: GroupRecord {
                id: Uuid::now_v7(),
                name: "Family".into(),
                description: None,
                created_by: None,
                version: 1,
                created_at: now,
                updated_at: now,
                archived_at: archived.then_some(now),
            },
            members: members
                .iter()
                .map(|(user_id, role)| Member {
                    user_id: *user_id,
                    role: *role,
                    joined_at: now,
                })
                .collect(),
        }
    }

    #[test]
    fn operators_hand_ownership_to_a_member() {
        let (owner, member, stranger) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let group = snapshot(&[(owner, GroupRole::Owner), (member, GroupRole::Member)], false);
        let changes = force_ownership_transfer(&group, member).unwrap();
        let after = group.apply(&changes);
        assert_eq!(after.role_of(member), Some(GroupRole::Owner));
        assert_eq!(after.role_of(owner), Some(GroupRole::Admin));
        assert!(force_ownership_transfer(&group, stranger).is_err());
        assert!(force_ownership_transfer(&group, owner).is_err());
        let archived = snapshot(&[(owner, GroupRole::Owner), (member, GroupRole::Member)], true);
        assert!(matches!(
            force_ownership_transfer(&archived, member),
            Err(RuleError::Conflict(_))
        ));
        // An ownerless group gets one.
        let ownerless = snapshot(&[(member, GroupRole::Admin)], false);
        let after = ownerless.apply(&force_ownership_transfer(&ownerless, member).unwrap());
        assert_eq!(after.role_of(member), Some(GroupRole::Owner));
    }
}
