//! Family and team groups: roles ranked owner > admin > member > viewer, the permission table
//! every group endpoint consults, and the rules about who may change whom.
//!
//! Every mutation of a group's membership is decided here as a list of [`GroupChange`]s from a
//! [`GroupSnapshot`] read inside the storing transaction, so two racing requests are decided one
//! after the other on fresh data and a group never ends with zero or two owners.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::rules::RuleError as GroupRuleError;

/// A member's role in a group, most powerful first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupRole {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl GroupRole {
    pub const ALL: [GroupRole; 4] = [Self::Owner, Self::Admin, Self::Member, Self::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(value.trim()))
    }

    /// Higher is more powerful.
    pub fn rank(self) -> u8 {
        match self {
            Self::Owner => 3,
            Self::Admin => 2,
            Self::Member => 1,
            Self::Viewer => 0,
        }
    }

    pub fn outranks(self, other: GroupRole) -> bool {
        self.rank() > other.rank()
    }

    pub fn allows(self, permission: GroupPermission) -> bool {
        GROUP_PERMISSIONS
            .iter()
            .find(|(role, _)| *role == self)
            .is_some_and(|(_, granted)| granted.contains(&permission))
    }
}

impl fmt::Display for GroupRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a group role may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupPermission {
    ViewGroup,
    ViewMembers,
    /// Members' devices' basic info and locations.
    ViewMemberDevices,
    UpdateGroup,
    DeleteGroup,
    ManageInvites,
    /// Change roles of and remove members ranked below oneself.
    ManageMembers,
    TransferOwnership,
    LockSettings,
    ChangeMemberSettings,
}

impl GroupPermission {
    pub const ALL: [GroupPermission; 10] = [
        Self::ViewGroup,
        Self::ViewMembers,
        Self::ViewMemberDevices,
        Self::UpdateGroup,
        Self::DeleteGroup,
        Self::ManageInvites,
        Self::ManageMembers,
        Self::TransferOwnership,
        Self::LockSettings,
        Self::ChangeMemberSettings,
    ];
}

use GroupPermission as P;

/// The permission table of PRODUCT.md "Groups and RBAC", as data.
pub const GROUP_PERMISSIONS: &[(GroupRole, &[GroupPermission])] = &[
    (
        GroupRole::Owner,
        &[
            P::ViewGroup,
            P::ViewMembers,
            P::ViewMemberDevices,
            P::UpdateGroup,
            P::DeleteGroup,
            P::ManageInvites,
            P::ManageMembers,
            P::TransferOwnership,
            P::LockSettings,
            P::ChangeMemberSettings,
        ],
    ),
    (
        GroupRole::Admin,
        &[
            P::ViewGroup,
            P::ViewMembers,
            P::ViewMemberDevices,
            P::UpdateGroup,
            P::ManageInvites,
            P::ManageMembers,
            P::LockSettings,
            P::ChangeMemberSettings,
        ],
    ),
    (
        GroupRole::Member,
        &[P::ViewGroup, P::ViewMembers, P::ViewMemberDevices],
    ),
    (GroupRole::Viewer, &[P::ViewGroup, P::ViewMembers]),
];

fn require(role: GroupRole, permission: GroupPermission) -> Result<(), GroupRuleError> {
    if role.allows(permission) {
        Ok(())
    } else {
        Err(GroupRuleError::Forbidden(
            "your role in this group does not allow this",
        ))
    }
}

/// A group's state as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Set when the only owner's account was deleted and no admin could take over.
    pub archived_at: Option<DateTime<Utc>>,
}

/// One membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: Uuid,
    pub role: GroupRole,
    pub joined_at: DateTime<Utc>,
}

/// A group and its members, read in the transaction that will apply a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub group: GroupRecord,
    pub members: Vec<Member>,
}

impl GroupSnapshot {
    pub fn role_of(&self, user: Uuid) -> Option<GroupRole> {
        self.members
            .iter()
            .find(|member| member.user_id == user)
            .map(|member| member.role)
    }

    /// The caller's role, or `NotFound` for outsiders; archived groups refuse every change.
    pub fn actor_role_for_change(&self, actor: Uuid) -> Result<GroupRole, GroupRuleError> {
        let role = self.role_of(actor).ok_or(GroupRuleError::NotFound)?;
        if self.group.archived_at.is_some() {
            return Err(GroupRuleError::Conflict("the group is archived"));
        }
        Ok(role)
    }

    /// Applies `changes` to a copy, as the store will (used by tests and invariant checks).
    pub fn apply(&self, changes: &[GroupChange]) -> GroupSnapshot {
        let mut next = self.clone();
        for change in changes {
            match change {
                GroupChange::SetRole { user_id, role } => {
                    if let Some(member) = next.members.iter_mut().find(|m| m.user_id == *user_id) {
                        member.role = *role;
                    }
                }
                GroupChange::Remove { user_id } => next.members.retain(|m| m.user_id != *user_id),
                GroupChange::Archive => {
                    next.group.archived_at = Some(next.group.updated_at);
                }
            }
        }
        next
    }

    pub fn owner_count(&self) -> usize {
        self.members
            .iter()
            .filter(|member| member.role == GroupRole::Owner)
            .count()
    }
}

/// One step of a decided membership change, applied in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    SetRole { user_id: Uuid, role: GroupRole },
    Remove { user_id: Uuid },
    Archive,
}

/// `actor` sets `target`'s role to `new_role`. Ownership moves only by [`transfer_ownership`].
pub fn change_role(
    snapshot: &GroupSnapshot,
    actor: Uuid,
    target: Uuid,
    new_role: GroupRole,
) -> Result<Vec<GroupChange>, GroupRuleError> {
    let actor_role = snapshot.actor_role_for_change(actor)?;
    let target_role = snapshot.role_of(target).ok_or(GroupRuleError::NotFound)?;
    require(actor_role, P::ManageMembers)?;
    if new_role == GroupRole::Owner {
        return Err(GroupRuleError::Invalid {
            field: "role",
            message: "ownership moves only by a transfer",
        });
    }
    if actor == target {
        return Err(if actor_role == GroupRole::Owner {
            GroupRuleError::Conflict("the group would have no owner; transfer ownership first")
        } else {
            GroupRuleError::Forbidden("you cannot change your own role")
        });
    }
    if !actor_role.outranks(target_role) {
        return Err(GroupRuleError::Forbidden(
            "you cannot change the role of someone at or above your own role",
        ));
    }
    if new_role.outranks(actor_role) {
        return Err(GroupRuleError::Forbidden(
            "you cannot grant a role above your own",
        ));
    }
    if new_role == target_role {
        return Ok(Vec::new());
    }
    Ok(vec![GroupChange::SetRole {
        user_id: target,
        role: new_role,
    }])
}

/// `actor` removes `target`; removing oneself is leaving, which the owner cannot do.
pub fn remove_member(
    snapshot: &GroupSnapshot,
    actor: Uuid,
    target: Uuid,
) -> Result<Vec<GroupChange>, GroupRuleError> {
    // Leaving is allowed even from an archived group.
    let actor_role = if actor == target {
        snapshot.role_of(actor).ok_or(GroupRuleError::NotFound)?
    } else {
        snapshot.actor_role_for_change(actor)?
    };
    let target_role = snapshot.role_of(target).ok_or(GroupRuleError::NotFound)?;
    if actor == target {
        if actor_role == GroupRole::Owner {
            return Err(GroupRuleError::Conflict(
                "the owner cannot leave; transfer ownership or delete the group",
            ));
        }
        return Ok(vec![GroupChange::Remove { user_id: actor }]);
    }
    require(actor_role, P::ManageMembers)?;
    if !actor_role.outranks(target_role) {
        return Err(GroupRuleError::Forbidden(
            "you cannot remove someone at or above your own role",
        ));
    }
    Ok(vec![GroupChange::Remove { user_id: target }])
}

/// The owner hands ownership to an existing member and becomes an admin.
pub fn transfer_ownership(
    snapshot: &GroupSnapshot,
    actor: Uuid,
    target: Uuid,
) -> Result<Vec<GroupChange>, GroupRuleError> {
    let actor_role = snapshot.actor_role_for_change(actor)?;
    require(actor_role, P::TransferOwnership)?;
    if actor == target {
        return Err(GroupRuleError::Invalid {
            field: "userId",
            message: "you already own the group",
        });
    }
    if snapshot.role_of(target).is_none() {
        return Err(GroupRuleError::Invalid {
            field: "userId",
            message: "must be a member of the group",
        });
    }
    // Demote first: the store refuses a second owner at any moment.
    Ok(vec![
        GroupChange::SetRole {
            user_id: actor,
            role: GroupRole::Admin,
        },
        GroupChange::SetRole {
            user_id: target,
            role: GroupRole::Owner,
        },
    ])
}

/// Whether an invite still works when someone joins with it: its creator must still be a
/// member who may invite with its role. A demoted or departed creator's invites stop working
/// (answered like a revoked invite), so nobody gains through an invite a role its creator no
/// longer could grant.
pub fn invite_still_grants(creator: Option<GroupRole>, granted: GroupRole) -> Result<(), GroupRuleError> {
    match creator {
        Some(creator) if invite_role(creator, granted).is_ok() => Ok(()),
        _ => Err(GroupRuleError::NotFound),
    }
}

/// The role an invite may grant: never owner, never above the inviter's.
pub fn invite_role(inviter: GroupRole, requested: GroupRole) -> Result<GroupRole, GroupRuleError> {
    require(inviter, P::ManageInvites)?;
    if requested == GroupRole::Owner {
        return Err(GroupRuleError::Invalid {
            field: "role",
            message: "an invite cannot grant ownership",
        });
    }
    if requested.outranks(inviter) {
        return Err(GroupRuleError::Forbidden(
            "you cannot invite with a role above your own",
        ));
    }
    Ok(requested)
}

/// Whether a member holding `mine` may manage (read, write, lock) the device settings of a
/// member holding `theirs` in the same group: managers act on those ranked below them.
pub fn manages_devices_of(mine: GroupRole, theirs: GroupRole) -> bool {
    mine.allows(GroupPermission::ChangeMemberSettings) && mine.outranks(theirs)
}

/// What happens to a group when `leaving`'s account is deleted: their membership goes; if they
/// owned it, the longest-standing admin becomes owner, or else the group is archived.
pub fn succession_on_account_deletion(snapshot: &GroupSnapshot, leaving: Uuid) -> Vec<GroupChange> {
    let Some(role) = snapshot.role_of(leaving) else {
        return Vec::new();
    };
    let mut changes = vec![GroupChange::Remove { user_id: leaving }];
    if role == GroupRole::Owner {
        let heir = snapshot
            .members
            .iter()
            .filter(|member| member.role == GroupRole::Admin && member.user_id != leaving)
            .min_by_key(|member| (member.joined_at, member.user_id));
        changes.push(match heir {
            Some(heir) => GroupChange::SetRole {
                user_id: heir.user_id,
                role: GroupRole::Owner,
            },
            None => GroupChange::Archive,
        });
    }
    changes
}

/// A group's name: trimmed, 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(value: &str) -> Result<Self, GroupRuleError> {
        let trimmed = value.trim();
        let length = trimmed.chars().count();
        if length == 0 || length > 100 || trimmed.chars().any(char::is_control) {
            return Err(GroupRuleError::Invalid {
                field: "name",
                message: "must be 1 to 100 printable characters",
            });
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// A group description: at most 1000 characters; blank means none.
pub fn parse_description(value: Option<&str>) -> Result<Option<String>, GroupRuleError> {
    let Some(text) = value.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > 1000 {
        return Err(GroupRuleError::Invalid {
            field: "description",
            message: "must be at most 1000 characters",
        });
    }
    Ok(Some(text.to_owned()))
}

/// Invite codes avoid characters people confuse when reading them aloud or off a screen
/// (0/O, 1/I/L).
pub const INVITE_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
pub const INVITE_CODE_LENGTH: usize = 8;

/// An invite code: 8 characters of [`INVITE_CODE_ALPHABET`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteCode(String);

impl InviteCode {
    /// Draws a code from random bytes without modulo bias (bytes past the last whole multiple
    /// of the alphabet's size are skipped); `None` if the bytes run out.
    pub fn from_random_bytes(bytes: impl IntoIterator<Item = u8>) -> Option<Self> {
        let size = INVITE_CODE_ALPHABET.len();
        let limit = (256 / size) * size;
        let code: String = bytes
            .into_iter()
            .filter(|byte| usize::from(*byte) < limit)
            .take(INVITE_CODE_LENGTH)
            .map(|byte| char::from(INVITE_CODE_ALPHABET[usize::from(byte) % size]))
            .collect();
        (code.len() == INVITE_CODE_LENGTH).then_some(Self(code))
    }

    /// Accepts what people type: any case, with spaces or dashes between groups of letters.
    pub fn parse(value: &str) -> Result<Self, GroupRuleError> {
        let code: String = value
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid =
            code.len() == INVITE_CODE_LENGTH && code.bytes().all(|byte| INVITE_CODE_ALPHABET.contains(&byte));
        if valid {
            Ok(Self(code))
        } else {
            Err(GroupRuleError::Invalid {
                field: "code",
                message: "must be 8 characters of the invite alphabet",
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn snapshot(roles: &[GroupRole]) -> (GroupSnapshot, Vec<Uuid>) {
        let ids: Vec<Uuid> = roles.iter().map(|_| Uuid::now_v7()).collect();
        let members = roles
            .iter()
            .zip(&ids)
            .enumerate()
            .map(|(i, (role, id))| Member {
                user_id: *id,
                role: *role,
                joined_at: at(i as i64),
            })
            .collect();
        let group = GroupRecord {
            id: Uuid::now_v7(),
            name: "Family".into(),
            description: None,
            created_by: None,
            version: 1,
            created_at: at(0),
            updated_at: at(0),
            archived_at: None,
        };
        (GroupSnapshot { group, members }, ids)
    }

    /// A group with the owner first, then one member of each role as actor and target.
    fn scene(actor: GroupRole, target: GroupRole) -> (GroupSnapshot, Uuid, Uuid) {
        let mut roles = vec![GroupRole::Owner];
        if actor != GroupRole::Owner {
            roles.push(actor);
        }
        let actor_index = roles.len() - 1;
        let target_index = if target == GroupRole::Owner {
            0
        } else {
            roles.push(target);
            roles.len() - 1
        };
        let (snapshot, ids) = snapshot(&roles);
        (snapshot, ids[actor_index], ids[target_index])
    }

    #[test]
    fn the_permission_table_matches_the_product_contract() {
        use GroupRole::*;
        let expected: &[(GroupPermission, &[GroupRole])] = &[
            (P::ViewGroup, &[Owner, Admin, Member, Viewer]),
            (P::ViewMembers, &[Owner, Admin, Member, Viewer]),
            (P::ViewMemberDevices, &[Owner, Admin, Member]),
            (P::UpdateGroup, &[Owner, Admin]),
            (P::DeleteGroup, &[Owner]),
            (P::ManageInvites, &[Owner, Admin]),
            (P::ManageMembers, &[Owner, Admin]),
            (P::TransferOwnership, &[Owner]),
            (P::LockSettings, &[Owner, Admin]),
            (P::ChangeMemberSettings, &[Owner, Admin]),
        ];
        assert_eq!(expected.len(), GroupPermission::ALL.len());
        for (permission, allowed) in expected {
            for role in GroupRole::ALL {
                assert_eq!(
                    role.allows(*permission),
                    allowed.contains(&role),
                    "{role} × {permission:?}"
                );
            }
        }
    }

    #[test]
    fn every_role_change_by_every_role_on_every_role() {
        use GroupRole::*;
        for actor_role in GroupRole::ALL {
            for target_role in GroupRole::ALL {
                for new_role in GroupRole::ALL {
                    let (group, actor, target) = scene(actor_role, target_role);
                    let outcome = change_role(&group, actor, target, new_role);
                    let self_change = actor == target;
                    let permitted = matches!(actor_role, Owner | Admin)
                        && !self_change
                        && actor_role.outranks(target_role)
                        && !new_role.outranks(actor_role)
                        && new_role != Owner;
                    assert_eq!(
                        outcome.is_ok(),
                        permitted,
                        "{actor_role} sets {target_role} to {new_role}: {outcome:?}"
                    );
                    if let Ok(changes) = &outcome {
                        let after = group.apply(changes);
                        assert_eq!(after.owner_count(), 1);
                        assert_eq!(after.role_of(target), Some(new_role));
                    }
                    match (actor_role, &outcome) {
                        (Member | Viewer, Err(error)) => {
                            assert!(matches!(error, GroupRuleError::Forbidden(_)), "{error:?}")
                        }
                        (Owner, Err(GroupRuleError::Conflict(_))) => assert!(self_change),
                        _ => {}
                    }
                }
            }
        }
        // The concrete cases people ask about.
        let (group, admin, other_admin) = scene(Admin, Admin);
        assert!(change_role(&group, admin, other_admin, Member).is_err());
        let (group, admin, member) = scene(Admin, Member);
        assert!(
            change_role(&group, admin, member, Admin).is_ok(),
            "admin may promote to admin"
        );
        let (group, owner, admin) = scene(Owner, Admin);
        assert!(change_role(&group, owner, admin, Viewer).is_ok());
    }

    #[test]
    fn every_removal_and_leave_keeps_exactly_one_owner() {
        use GroupRole::*;
        for actor_role in GroupRole::ALL {
            for target_role in GroupRole::ALL {
                let (group, actor, target) = scene(actor_role, target_role);
                let outcome = remove_member(&group, actor, target);
                let leaving = actor == target;
                let permitted = if leaving {
                    actor_role != Owner
                } else {
                    matches!(actor_role, Owner | Admin) && actor_role.outranks(target_role)
                };
                assert_eq!(
                    outcome.is_ok(),
                    permitted,
                    "{actor_role} removes {target_role}: {outcome:?}"
                );
                if let Ok(changes) = outcome {
                    let after = group.apply(&changes);
                    assert_eq!(after.owner_count(), 1);
                    assert_eq!(after.role_of(target), None);
                }
            }
            // Leaving as oneself, whatever the role.
            let (group, actor, _) = scene(actor_role, Viewer);
            let outcome = remove_member(&group, actor, actor);
            assert_eq!(outcome.is_ok(), actor_role != Owner, "{actor_role} leaves");
        }
    }

    #[test]
    fn only_the_owner_transfers_and_only_to_a_member() {
        use GroupRole::*;
        for actor_role in GroupRole::ALL {
            for target_role in [Admin, Member, Viewer] {
                let (group, actor, target) = scene(actor_role, target_role);
                let outcome = transfer_ownership(&group, actor, target);
                assert_eq!(
                    outcome.is_ok(),
                    actor_role == Owner,
                    "{actor_role} → {target_role}"
                );
                if let Ok(changes) = outcome {
                    let after = group.apply(&changes);
                    assert_eq!(after.owner_count(), 1);
                    assert_eq!(after.role_of(target), Some(Owner));
                    assert_eq!(after.role_of(actor), Some(Admin));
                    // Demotion comes first, so no moment has two owners.
                    assert_eq!(group.apply(&changes[..1]).owner_count(), 0);
                }
            }
        }
        let (group, owner, _) = scene(Owner, Member);
        assert!(matches!(
            transfer_ownership(&group, owner, Uuid::now_v7()),
            Err(GroupRuleError::Invalid { .. })
        ));
        assert!(transfer_ownership(&group, owner, owner).is_err());
        assert_eq!(
            transfer_ownership(&group, Uuid::now_v7(), owner),
            Err(GroupRuleError::NotFound),
            "outsiders learn nothing"
        );
    }

    #[test]
    fn invites_never_grant_ownership_or_more_than_the_inviter_has() {
        use GroupRole::*;
        for inviter in GroupRole::ALL {
            for requested in GroupRole::ALL {
                let outcome = invite_role(inviter, requested);
                let permitted =
                    matches!(inviter, Owner | Admin) && requested != Owner && !requested.outranks(inviter);
                assert_eq!(outcome.is_ok(), permitted, "{inviter} invites as {requested}");
            }
        }
    }

    #[test]
    fn managers_reach_the_devices_of_those_below_them_only() {
        use GroupRole::*;
        for mine in GroupRole::ALL {
            for theirs in GroupRole::ALL {
                let expected = matches!(
                    (mine, theirs),
                    (Owner, Admin | Member | Viewer) | (Admin, Member | Viewer)
                );
                assert_eq!(manages_devices_of(mine, theirs), expected, "{mine} over {theirs}");
            }
        }
    }

    #[test]
    fn archived_groups_refuse_changes() {
        let (mut group, ids) = snapshot(&[GroupRole::Owner, GroupRole::Member]);
        group.group.archived_at = Some(at(5));
        assert!(matches!(
            remove_member(&group, ids[0], ids[1]),
            Err(GroupRuleError::Conflict(_))
        ));
        assert!(matches!(
            change_role(&group, ids[0], ids[1], GroupRole::Viewer),
            Err(GroupRuleError::Conflict(_))
        ));
        assert!(
            remove_member(&group, ids[1], ids[1]).is_ok(),
            "members may still leave"
        );
    }

    #[test]
    fn a_deleted_owner_is_succeeded_by_the_longest_standing_admin_or_the_group_is_archived() {
        use GroupRole::*;
        let (group, ids) = snapshot(&[Owner, Member, Admin, Admin]);
        let changes = succession_on_account_deletion(&group, ids[0]);
        let after = group.apply(&changes);
        assert_eq!(after.role_of(ids[2]), Some(Owner), "the earlier admin inherits");
        assert_eq!(after.role_of(ids[3]), Some(Admin));
        assert_eq!(after.owner_count(), 1);

        let (group, ids) = snapshot(&[Owner, Member, Viewer]);
        let changes = succession_on_account_deletion(&group, ids[0]);
        assert_eq!(changes.last(), Some(&GroupChange::Archive));
        assert!(group.apply(&changes).group.archived_at.is_some());

        let (group, ids) = snapshot(&[Owner, Member]);
        assert_eq!(
            succession_on_account_deletion(&group, ids[1]),
            vec![GroupChange::Remove { user_id: ids[1] }]
        );
    }

    #[test]
    fn invites_die_with_their_creators_right_to_grant_them() {
        use GroupRole::{Admin, Member, Owner, Viewer};
        assert!(invite_still_grants(Some(Admin), Admin).is_ok());
        assert!(invite_still_grants(Some(Owner), Admin).is_ok());
        assert!(invite_still_grants(Some(Member), Admin).is_err(), "demoted");
        assert!(
            invite_still_grants(Some(Member), Member).is_err(),
            "members do not invite"
        );
        assert!(invite_still_grants(None, Viewer).is_err(), "removed or gone");
    }

    #[test]
    fn invite_codes_are_unambiguous_and_forgiving_to_type() {
        let code = InviteCode::from_random_bytes((0..=255u8).cycle().skip(7).take(64)).unwrap();
        assert_eq!(code.as_str().len(), 8);
        for confusing in ['0', 'O', '1', 'I', 'L'] {
            assert!(!INVITE_CODE_ALPHABET.contains(&(confusing as u8)));
        }
        assert_eq!(InviteCode::parse(" abcd-efgh ").unwrap().as_str(), "ABCDEFGH");
        assert!(InviteCode::parse("ABCDEFG0").is_err());
        assert!(InviteCode::parse("ABCDEFG").is_err());
        assert!(
            InviteCode::from_random_bytes([255u8; 40]).is_none(),
            "biased bytes are skipped"
        );
        assert!(GroupRole::parse(" Admin ").is_some() && GroupRole::parse("boss").is_none());
        assert!(
            GroupName::parse("  ").is_err() && GroupName::parse(" Home ").unwrap().into_inner() == "Home"
        );
    }
}
