//! What the group rules need from storage. Every membership change goes through
//! [`GroupStore::change_membership`], which locks the group, reads a fresh [`GroupSnapshot`],
//! lets the domain decide, applies the decision and writes the audit entry in one transaction.

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::groups::{GroupChange, GroupRecord, GroupRole, GroupRuleError, GroupSnapshot};
pub use crate::rules::RuleStoreError as GroupStoreError;
use crate::{AuditEntry, PageRequest, RepositoryError};

/// A group as one of its members sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group: GroupRecord,
    pub my_role: GroupRole,
    pub member_count: u64,
}

/// A member with the profile fields other members may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberProfile {
    pub user_id: Uuid,
    pub display_name: String,
    pub email: String,
    pub avatar_url: Option<String>,
    pub role: GroupRole,
    pub joined_at: DateTime<Utc>,
}

/// An invitation code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInvite {
    pub id: Uuid,
    pub group_id: Uuid,
    pub code: String,
    pub role: GroupRole,
    pub created_by: Option<Uuid>,
    pub max_uses: i32,
    pub use_count: i32,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A new group and its creator, who becomes the owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub owner: Uuid,
    pub created_at: DateTime<Utc>,
}

pub trait GroupStore {
    /// Creates the group with its owner; answers the owner's view of it as committed, so the
    /// caller's answer never depends on a read after the commit.
    fn create_group(
        &self,
        group: &NewGroup,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<GroupSummary, GroupStoreError>> + Send;

    /// The groups `user` belongs to (deleted groups excluded), newest membership first.
    fn groups_of(
        &self,
        user: Uuid,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<GroupSummary>, u64), RepositoryError>> + Send;

    /// `user`'s view of a group they belong to; `None` for outsiders and deleted groups.
    fn group_for_member(
        &self,
        group: Uuid,
        user: Uuid,
    ) -> impl Future<Output = Result<Option<GroupSummary>, RepositoryError>> + Send;

    /// Renames or re-describes a group; `expected_version` guards against lost updates.
    fn update_group(
        &self,
        group: Uuid,
        expected_version: Option<i32>,
        name: String,
        description: Option<String>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<GroupRecord, RepositoryError>> + Send;

    /// Soft-deletes: the rows stay for the audit trail; invites stop working.
    fn delete_group(
        &self,
        group: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn members(
        &self,
        group: Uuid,
    ) -> impl Future<Output = Result<Vec<MemberProfile>, RepositoryError>> + Send;
    /// The members of each of `groups` (as [`GroupStore::members`] orders them), in one read
    /// however many groups: for exports. A group without members is absent.
    fn members_of_groups(
        &self,
        groups: &[Uuid],
    ) -> impl Future<Output = Result<std::collections::HashMap<Uuid, Vec<MemberProfile>>, RepositoryError>> + Send;

    /// Locks the group, reads it fresh, applies what `decide` answers, audits it (the entry
    /// gains the affected members' roles before and after). Nothing is written when `decide`
    /// refuses or decides nothing.
    fn change_membership<F>(
        &self,
        group: Uuid,
        decide: F,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Vec<GroupChange>, GroupStoreError>> + Send
    where
        F: FnOnce(&GroupSnapshot) -> Result<Vec<GroupChange>, GroupRuleError> + Send;

    fn create_invite(
        &self,
        invite: &GroupInvite,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Invites that can still be used.
    fn live_invites(
        &self,
        group: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<GroupInvite>, RepositoryError>> + Send;

    /// `false` when there is no such live invite in the group.
    fn revoke_invite(
        &self,
        group: Uuid,
        invite: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Spends one use of `code` and adds `user` with the invite's role, atomically: of many
    /// concurrent joins on the last use, exactly one succeeds. Answers the group joined.
    /// `NotFound` for unknown, expired, revoked or used-up codes; `Conflict` for members.
    fn redeem_invite(
        &self,
        code: &str,
        user: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Uuid, GroupStoreError>> + Send;

    /// For each live, unarchived group both users belong to: the viewer's role and the other's.
    fn role_pairs(
        &self,
        viewer: Uuid,
        other: Uuid,
    ) -> impl Future<Output = Result<Vec<(GroupRole, GroupRole)>, RepositoryError>> + Send;

    /// The users in a live group (for listing their devices' unlock requests).
    fn member_ids(
        &self,
        group: Uuid,
    ) -> impl Future<Output = Result<Vec<(Uuid, GroupRole)>, RepositoryError>> + Send;

    /// Whether two users share a live group (for seeing each other's basic profile), and the
    /// viewer's highest role over the other across such groups.
    fn shared_group_role(
        &self,
        viewer: Uuid,
        other: Uuid,
    ) -> impl Future<Output = Result<Option<GroupRole>, RepositoryError>> + Send;
}
