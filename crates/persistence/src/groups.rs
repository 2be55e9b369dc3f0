//! Groups, memberships and invites.
//!
//! Every transaction that changes memberships starts with a write to the group's row (or the
//! invite's), so PostgreSQL serialises it behind a row lock and SQLite takes its write lock up
//! front instead of failing a read-to-write upgrade; the decision is then made on data read
//! under that lock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use steward_domain::group_store::{
    GroupInvite, GroupStore, GroupStoreError, GroupSummary, MemberProfile, NewGroup,
};
use steward_domain::groups::{
    GroupChange, GroupRecord, GroupRole, GroupRuleError, GroupSnapshot, Member, invite_still_grants,
};
use steward_domain::{AuditEntry, PageRequest, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{group_invites, group_memberships, groups, users};
use crate::error::db_err_to_repository as db;

pub(crate) fn record(model: groups::Model) -> GroupRecord {
    GroupRecord {
        id: model.id,
        name: model.name,
        description: model.description,
        created_by: model.created_by,
        version: model.version,
        created_at: model.created_at,
        updated_at: model.updated_at,
        archived_at: model.archived_at,
    }
}

fn role(stored: &str) -> Result<GroupRole, RepositoryError> {
    GroupRole::parse(stored).ok_or_else(|| RepositoryError::Other(format!("unknown group role `{stored}`")))
}

fn invite(model: group_invites::Model) -> Result<GroupInvite, RepositoryError> {
    Ok(GroupInvite {
        id: model.id,
        group_id: model.group_id,
        role: role(&model.role)?,
        code: model.code,
        created_by: model.created_by,
        max_uses: model.max_uses,
        use_count: model.use_count,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
        created_at: model.created_at,
    })
}

async fn member_count<C: ConnectionTrait>(connection: &C, group: Uuid) -> Result<u64, RepositoryError> {
    group_memberships::Entity::find()
        .filter(group_memberships::Column::GroupId.eq(group))
        .count(connection)
        .await
        .map_err(db)
}

async fn live_group<C: ConnectionTrait>(
    connection: &C,
    group: Uuid,
) -> Result<Option<groups::Model>, RepositoryError> {
    groups::Entity::find_by_id(group)
        .filter(groups::Column::DeletedAt.is_null())
        .one(connection)
        .await
        .map_err(db)
}

/// Reads a group and its members inside `transaction`.
pub(crate) async fn snapshot(
    transaction: &DatabaseTransaction,
    group: groups::Model,
) -> Result<GroupSnapshot, RepositoryError> {
    let rows = group_memberships::Entity::find()
        .filter(group_memberships::Column::GroupId.eq(group.id))
        .order_by_asc(group_memberships::Column::JoinedAt)
        .all(transaction)
        .await
        .map_err(db)?;
    let members = rows
        .into_iter()
        .map(|row| {
            Ok(Member {
                user_id: row.user_id,
                role: role(&row.role)?,
                joined_at: row.joined_at,
            })
        })
        .collect::<Result<Vec<_>, RepositoryError>>()?;
    Ok(GroupSnapshot {
        group: record(group),
        members,
    })
}

/// Writes decided changes in order, then returns the affected members' roles before and after
/// for the audit entry.
pub(crate) async fn apply_changes(
    transaction: &DatabaseTransaction,
    snapshot: &GroupSnapshot,
    changes: &[GroupChange],
    now: DateTime<Utc>,
) -> Result<(Value, Value), RepositoryError> {
    let group = snapshot.group.id;
    let mut before = serde_json::Map::new();
    let mut after = serde_json::Map::new();
    for change in changes {
        match change {
            GroupChange::SetRole { user_id, role } => {
                group_memberships::Entity::update_many()
                    .col_expr(group_memberships::Column::Role, Expr::value(role.as_str()))
                    .col_expr(group_memberships::Column::UpdatedAt, Expr::value(now))
                    .filter(group_memberships::Column::GroupId.eq(group))
                    .filter(group_memberships::Column::UserId.eq(*user_id))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
                let key = user_id.to_string();
                before
                    .entry(key.clone())
                    .or_insert_with(|| json!(snapshot.role_of(*user_id)));
                after.insert(key, json!(role));
            }
            GroupChange::Remove { user_id } => {
                group_memberships::Entity::delete_many()
                    .filter(group_memberships::Column::GroupId.eq(group))
                    .filter(group_memberships::Column::UserId.eq(*user_id))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
                let key = user_id.to_string();
                before
                    .entry(key.clone())
                    .or_insert_with(|| json!(snapshot.role_of(*user_id)));
                after.insert(key, Value::Null);
            }
            GroupChange::Archive => {
                groups::Entity::update_many()
                    .col_expr(groups::Column::ArchivedAt, Expr::value(Some(now)))
                    .filter(groups::Column::Id.eq(group))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
                invalidate_invites(transaction, group, now).await?;
                after.insert("archived".to_owned(), json!(true));
            }
        }
    }
    Ok((Value::Object(before), Value::Object(after)))
}

async fn invalidate_invites(
    transaction: &DatabaseTransaction,
    group: Uuid,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    group_invites::Entity::update_many()
        .col_expr(group_invites::Column::RevokedAt, Expr::value(Some(now)))
        .filter(group_invites::Column::GroupId.eq(group))
        .filter(group_invites::Column::RevokedAt.is_null())
        .exec(transaction)
        .await
        .map_err(db)?;
    Ok(())
}

/// Takes the group's lock by bumping its version; `None` when it is gone.
pub(crate) async fn lock_group(
    transaction: &DatabaseTransaction,
    group: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<groups::Model>, RepositoryError> {
    let locked = groups::Entity::update_many()
        .col_expr(groups::Column::Version, Expr::col(groups::Column::Version).add(1))
        .col_expr(groups::Column::UpdatedAt, Expr::value(now))
        .filter(groups::Column::Id.eq(group))
        .filter(groups::Column::DeletedAt.is_null())
        .exec(transaction)
        .await
        .map_err(db)?;
    if locked.rows_affected == 0 {
        return Ok(None);
    }
    groups::Entity::find_by_id(group)
        .one(transaction)
        .await
        .map_err(db)
}

/// What a new group row holds: a family group (no organization) or a fleet group.
pub(crate) struct GroupRow<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub organization: Option<Uuid>,
    pub creator: Uuid,
    pub policy: Option<Uuid>,
    pub at: DateTime<Utc>,
}

/// The one place a `groups` row is built, for family and fleet groups alike.
pub(crate) fn group_row(row: GroupRow<'_>) -> groups::ActiveModel {
    groups::ActiveModel {
        id: Set(row.id),
        name: Set(row.name.to_owned()),
        description: Set(row.description.map(str::to_owned)),
        organization_id: Set(row.organization),
        created_by: Set(Some(row.creator)),
        settings: Set(None),
        version: Set(1),
        created_at: Set(row.at),
        updated_at: Set(row.at),
        deleted_at: Set(None),
        archived_at: Set(None),
        policy_id: Set(row.policy),
    }
}

impl GroupStore for Database {
    async fn create_group(
        &self,
        group: &NewGroup,
        audit: &AuditEntry,
    ) -> Result<GroupSummary, GroupStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let created = groups::Entity::insert(group_row(GroupRow {
            id: group.id,
            name: &group.name,
            description: group.description.as_deref(),
            organization: None,
            creator: group.owner,
            policy: None,
            at: group.created_at,
        }))
        .exec_with_returning(&transaction)
        .await
        .map_err(db)?;
        group_memberships::Entity::insert(group_memberships::ActiveModel {
            id: Set(Uuid::now_v7()),
            group_id: Set(group.id),
            user_id: Set(group.owner),
            role: Set(GroupRole::Owner.as_str().to_owned()),
            invited_by: Set(None),
            joined_at: Set(group.created_at),
            updated_at: Set(group.created_at),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        crate::user_quotas::check_user_quota_after(
            &transaction,
            self.quota_plans(),
            group.owner,
            steward_domain::quotas::QuotaKey::Groups,
            1,
        )
        .await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(GroupSummary {
            group: record(created),
            my_role: GroupRole::Owner,
            member_count: 1,
        })
    }

    async fn groups_of(
        &self,
        user: Uuid,
        page: PageRequest,
    ) -> Result<(Vec<GroupSummary>, u64), RepositoryError> {
        let connection = self.connection();
        let memberships = group_memberships::Entity::find()
            .filter(group_memberships::Column::UserId.eq(user))
            .filter(
                group_memberships::Column::GroupId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(groups::Column::Id)
                        .from(groups::Entity)
                        .and_where(groups::Column::DeletedAt.is_null())
                        .to_owned(),
                ),
            );
        let total = memberships.clone().count(connection).await.map_err(db)?;
        let rows = memberships
            .order_by_desc(group_memberships::Column::JoinedAt)
            .order_by_asc(group_memberships::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .all(connection)
            .await
            .map_err(db)?;
        let ids: Vec<Uuid> = rows.iter().map(|row| row.group_id).collect();
        let mut found: HashMap<Uuid, groups::Model> = groups::Entity::find()
            .filter(groups::Column::Id.is_in(ids.clone()))
            .all(connection)
            .await
            .map_err(db)?
            .into_iter()
            .map(|group| (group.id, group))
            .collect();
        let counts: HashMap<Uuid, i64> = group_memberships::Entity::find()
            .select_only()
            .column(group_memberships::Column::GroupId)
            .column_as(group_memberships::Column::Id.count(), "members")
            .filter(group_memberships::Column::GroupId.is_in(ids))
            .group_by(group_memberships::Column::GroupId)
            .into_tuple::<(Uuid, i64)>()
            .all(connection)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        let mut summaries = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(group) = found.remove(&row.group_id) {
                summaries.push(GroupSummary {
                    member_count: counts.get(&group.id).copied().unwrap_or(0).unsigned_abs(),
                    group: record(group),
                    my_role: role(&row.role)?,
                });
            }
        }
        Ok((summaries, total))
    }

    async fn group_for_member(
        &self,
        group: Uuid,
        user: Uuid,
    ) -> Result<Option<GroupSummary>, RepositoryError> {
        let connection = self.connection();
        let Some(membership) = group_memberships::Entity::find()
            .filter(group_memberships::Column::GroupId.eq(group))
            .filter(group_memberships::Column::UserId.eq(user))
            .one(connection)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let Some(model) = live_group(connection, group).await? else {
            return Ok(None);
        };
        Ok(Some(GroupSummary {
            member_count: member_count(connection, group).await?,
            group: record(model),
            my_role: role(&membership.role)?,
        }))
    }

    async fn update_group(
        &self,
        group: Uuid,
        expected_version: Option<i32>,
        name: String,
        description: Option<String>,
        audit: &AuditEntry,
    ) -> Result<GroupRecord, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let mut update = groups::Entity::update_many()
            .col_expr(groups::Column::Version, Expr::col(groups::Column::Version).add(1))
            .col_expr(groups::Column::UpdatedAt, Expr::value(now))
            .col_expr(groups::Column::Name, Expr::value(name.clone()))
            .col_expr(groups::Column::Description, Expr::value(description.clone()))
            .filter(groups::Column::Id.eq(group))
            .filter(groups::Column::DeletedAt.is_null())
            .filter(groups::Column::ArchivedAt.is_null());
        if let Some(version) = expected_version {
            update = update.filter(groups::Column::Version.eq(version));
        }
        let result = update.exec(&transaction).await.map_err(db)?;
        if result.rows_affected == 0 {
            let exists = live_group(&transaction, group).await?;
            return Err(match exists {
                Some(found) if found.archived_at.is_some() => {
                    RepositoryError::Conflict("the group is archived".to_owned())
                }
                Some(_) if expected_version.is_some() => RepositoryError::VersionConflict,
                _ => RepositoryError::NotFound,
            });
        }
        insert_audit_entry(
            &transaction,
            &audit
                .clone()
                .change(None, Some(json!({"name": name, "description": description}))),
        )
        .await?;
        let model = live_group(&transaction, group)
            .await?
            .ok_or(RepositoryError::NotFound)?;
        transaction.commit().await.map_err(db)?;
        Ok(record(model))
    }

    async fn delete_group(&self, group: Uuid, audit: &AuditEntry) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let deleted = groups::Entity::update_many()
            .col_expr(groups::Column::DeletedAt, Expr::value(Some(now)))
            .col_expr(groups::Column::Version, Expr::col(groups::Column::Version).add(1))
            .col_expr(groups::Column::UpdatedAt, Expr::value(now))
            .filter(groups::Column::Id.eq(group))
            .filter(groups::Column::DeletedAt.is_null())
            .exec(&transaction)
            .await
            .map_err(db)?;
        if deleted.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        invalidate_invites(&transaction, group, now).await?;
        insert_audit_entry(&transaction, audit).await?;
        let members: std::collections::BTreeSet<Uuid> = group_memberships::Entity::find()
            .filter(group_memberships::Column::GroupId.eq(group))
            .all(&transaction)
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| row.user_id)
            .collect();
        crate::lock_reach::release_unreachable_locks(&transaction, &members, now).await?;
        transaction.commit().await.map_err(db)
    }

    async fn members(&self, group: Uuid) -> Result<Vec<MemberProfile>, RepositoryError> {
        Ok(self
            .members_of_groups(&[group])
            .await?
            .remove(&group)
            .unwrap_or_default())
    }

    async fn members_of_groups(
        &self,
        groups: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<MemberProfile>>, RepositoryError> {
        let connection = self.connection();
        let mut members: HashMap<Uuid, Vec<MemberProfile>> = HashMap::new();
        // Bounded IN lists: an export asks for a page of 100 groups at a time.
        for chunk in groups.chunks(500) {
            let rows = group_memberships::Entity::find()
                .filter(group_memberships::Column::GroupId.is_in(chunk.iter().copied()))
                .order_by_asc(group_memberships::Column::JoinedAt)
                .all(connection)
                .await
                .map_err(db)?;
            let mut people: HashMap<Uuid, users::Model> = HashMap::new();
            let ids: Vec<Uuid> = rows.iter().map(|row| row.user_id).collect();
            for users_chunk in ids.chunks(500) {
                for user in users::Entity::find()
                    .filter(users::Column::Id.is_in(users_chunk.iter().copied()))
                    .all(connection)
                    .await
                    .map_err(db)?
                {
                    people.insert(user.id, user);
                }
            }
            for row in rows {
                let Some(person) = people.get(&row.user_id) else {
                    continue;
                };
                members.entry(row.group_id).or_default().push(MemberProfile {
                    user_id: row.user_id,
                    display_name: person.display_name.clone(),
                    email: person.email.clone(),
                    avatar_url: person.avatar_url.clone(),
                    role: role(&row.role)?,
                    joined_at: row.joined_at,
                });
            }
        }
        // Most powerful first, then by seniority.
        for list in members.values_mut() {
            list.sort_by_key(|member| (std::cmp::Reverse(member.role.rank()), member.joined_at));
        }
        Ok(members)
    }

    async fn change_membership<F>(
        &self,
        group: Uuid,
        decide: F,
        audit: &AuditEntry,
    ) -> Result<Vec<GroupChange>, GroupStoreError>
    where
        F: FnOnce(&GroupSnapshot) -> Result<Vec<GroupChange>, GroupRuleError> + Send,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let model = lock_group(&transaction, group, now)
            .await?
            .ok_or(GroupRuleError::NotFound)?;
        let current = snapshot(&transaction, model).await?;
        let changes = decide(&current)?;
        if changes.is_empty() {
            transaction.rollback().await.map_err(db)?;
            return Ok(changes);
        }
        if current.apply(&changes).owner_count() > 1 {
            return Err(GroupStoreError::Rule(GroupRuleError::Conflict(
                "a group has exactly one owner",
            )));
        }
        let (before, after) = apply_changes(&transaction, &current, &changes, now).await?;
        insert_audit_entry(&transaction, &audit.clone().change(Some(before), Some(after))).await?;
        // Whoever stopped managing whom: their locks must not outlive that.
        let members: std::collections::BTreeSet<Uuid> =
            current.members.iter().map(|member| member.user_id).collect();
        crate::lock_reach::release_unreachable_locks(&transaction, &members, now).await?;
        transaction.commit().await.map_err(db)?;
        Ok(changes)
    }

    async fn create_invite(&self, invite: &GroupInvite, audit: &AuditEntry) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        group_invites::Entity::insert(group_invites::ActiveModel {
            id: Set(invite.id),
            group_id: Set(invite.group_id),
            code: Set(invite.code.clone()),
            role: Set(invite.role.as_str().to_owned()),
            created_by: Set(invite.created_by),
            max_uses: Set(invite.max_uses),
            use_count: Set(0),
            expires_at: Set(invite.expires_at),
            revoked_at: Set(None),
            created_at: Set(invite.created_at),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn live_invites(
        &self,
        group: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<GroupInvite>, RepositoryError> {
        group_invites::Entity::find()
            .filter(group_invites::Column::GroupId.eq(group))
            .filter(group_invites::Column::RevokedAt.is_null())
            .filter(group_invites::Column::ExpiresAt.gt(now))
            .filter(Expr::col(group_invites::Column::UseCount).lt(Expr::col(group_invites::Column::MaxUses)))
            .order_by_desc(group_invites::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(invite)
            .collect()
    }

    async fn revoke_invite(
        &self,
        group: Uuid,
        invite: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let revoked = group_invites::Entity::update_many()
            .col_expr(group_invites::Column::RevokedAt, Expr::value(Some(now)))
            .filter(group_invites::Column::Id.eq(invite))
            .filter(group_invites::Column::GroupId.eq(group))
            .filter(group_invites::Column::RevokedAt.is_null())
            .exec(&transaction)
            .await
            .map_err(db)?;
        if revoked.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn redeem_invite(
        &self,
        code: &str,
        user: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Uuid, GroupStoreError> {
        // Decided by the use case for this caller; the rows span organizations the
        // caller need not belong to: as the system.
        crate::tenancy::as_system(self.redeem_invite_as_system(code, user, now, audit)).await
    }

    async fn shared_group_role(
        &self,
        viewer: Uuid,
        other: Uuid,
    ) -> Result<Option<GroupRole>, RepositoryError> {
        let connection = self.connection();
        let theirs: Vec<Uuid> = group_memberships::Entity::find()
            .filter(group_memberships::Column::UserId.eq(other))
            .all(connection)
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| row.group_id)
            .collect();
        if theirs.is_empty() {
            return Ok(None);
        }
        let mine = group_memberships::Entity::find()
            .filter(group_memberships::Column::UserId.eq(viewer))
            .filter(group_memberships::Column::GroupId.is_in(theirs))
            .filter(
                group_memberships::Column::GroupId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(groups::Column::Id)
                        .from(groups::Entity)
                        .and_where(groups::Column::DeletedAt.is_null())
                        .to_owned(),
                ),
            )
            .all(connection)
            .await
            .map_err(db)?;
        let mut best: Option<GroupRole> = None;
        for row in mine {
            let held = role(&row.role)?;
            if best.is_none_or(|current| held.outranks(current)) {
                best = Some(held);
            }
        }
        Ok(best)
    }

    async fn role_pairs(
        &self,
        viewer: Uuid,
        other: Uuid,
    ) -> Result<Vec<(GroupRole, GroupRole)>, RepositoryError> {
        role_pairs_in(self.connection(), viewer, other).await
    }

    async fn member_ids(&self, group: Uuid) -> Result<Vec<(Uuid, GroupRole)>, RepositoryError> {
        group_memberships::Entity::find()
            .filter(group_memberships::Column::GroupId.eq(group))
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| Ok((row.user_id, role(&row.role)?)))
            .collect()
    }
}

/// The (viewer's role, other's role) pairs of every live group both belong to.
pub(crate) async fn role_pairs_in<C: ConnectionTrait>(
    connection: &C,
    viewer: Uuid,
    other: Uuid,
) -> Result<Vec<(GroupRole, GroupRole)>, RepositoryError> {
    let theirs: HashMap<Uuid, String> = group_memberships::Entity::find()
        .filter(group_memberships::Column::UserId.eq(other))
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(|row| (row.group_id, row.role))
        .collect();
    if theirs.is_empty() {
        return Ok(Vec::new());
    }
    let mine = group_memberships::Entity::find()
        .filter(group_memberships::Column::UserId.eq(viewer))
        .filter(group_memberships::Column::GroupId.is_in(theirs.keys().copied()))
        .filter(
            group_memberships::Column::GroupId.in_subquery(
                sea_orm::sea_query::Query::select()
                    .column(groups::Column::Id)
                    .from(groups::Entity)
                    .and_where(groups::Column::DeletedAt.is_null())
                    .and_where(groups::Column::ArchivedAt.is_null())
                    .to_owned(),
            ),
        )
        .all(connection)
        .await
        .map_err(db)?;
    let mut pairs = Vec::with_capacity(mine.len());
    for row in mine {
        if let Some(their_role) = theirs.get(&row.group_id) {
            pairs.push((role(&row.role)?, role(their_role)?));
        }
    }
    Ok(pairs)
}

impl Database {
    pub(crate) async fn redeem_invite_as_system(
        &self,
        code: &str,
        user: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Uuid, GroupStoreError> {
        // The code names its group for good: read it before the transaction, so the group's lock
        // can be taken first, in the order deletion, archiving and role changes take it (group,
        // then its invites) — two orders could deadlock.
        let group_id = group_invites::Entity::find()
            .filter(group_invites::Column::Code.eq(code))
            .one(self.connection())
            .await
            .map_err(db)?
            .ok_or(GroupRuleError::NotFound)?
            .group_id;
        let transaction = self.begin_write().await.map_err(db)?;
        // The group's lock also orders this join with role changes: the creator's standing read
        // below is the one in force when the member joins.
        let group = lock_group(&transaction, group_id, now)
            .await?
            .filter(|group| group.archived_at.is_none())
            .ok_or(GroupRuleError::NotFound)?;
        // Then spend the use: the conditional update is the arbiter between racing joins.
        let spent = group_invites::Entity::update_many()
            .col_expr(
                group_invites::Column::UseCount,
                Expr::col(group_invites::Column::UseCount).add(1),
            )
            .filter(group_invites::Column::Code.eq(code))
            .filter(group_invites::Column::GroupId.eq(group_id))
            .filter(group_invites::Column::RevokedAt.is_null())
            .filter(group_invites::Column::ExpiresAt.gt(now))
            .filter(Expr::col(group_invites::Column::UseCount).lt(Expr::col(group_invites::Column::MaxUses)))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if spent.rows_affected == 0 {
            return Err(GroupRuleError::NotFound.into());
        }
        let invite = group_invites::Entity::find()
            .filter(group_invites::Column::Code.eq(code))
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(GroupRuleError::NotFound)?;
        let granted = role(&invite.role)?;
        let creator_role = group_memberships::Entity::find()
            .filter(group_memberships::Column::GroupId.eq(group.id))
            .filter(group_memberships::Column::UserId.eq(invite.created_by))
            .one(&transaction)
            .await
            .map_err(db)?
            .map(|membership| role(&membership.role))
            .transpose()?;
        invite_still_grants(creator_role, granted)?;
        let already = group_memberships::Entity::find()
            .filter(group_memberships::Column::GroupId.eq(group.id))
            .filter(group_memberships::Column::UserId.eq(user))
            .one(&transaction)
            .await
            .map_err(db)?;
        if already.is_some() {
            return Err(GroupRuleError::Conflict("you are already a member of this group").into());
        }
        group_memberships::Entity::insert(group_memberships::ActiveModel {
            id: Set(Uuid::now_v7()),
            group_id: Set(group.id),
            user_id: Set(user),
            role: Set(granted.as_str().to_owned()),
            invited_by: Set(invite.created_by),
            joined_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(|error| match db(error) {
            RepositoryError::Conflict(_) => {
                GroupStoreError::Rule(GroupRuleError::Conflict("you are already a member of this group"))
            }
            other => other.into(),
        })?;
        // A family group holds as many members as its owner's quota allows.
        if group.organization_id.is_none() {
            crate::user_quotas::check_group_members_after(&transaction, self.quota_plans(), group.id).await?;
        }
        let entry = audit
            .clone()
            .resource_id(group.id)
            .change(None, Some(json!({"inviteId": invite.id, "role": granted})));
        insert_audit_entry(&transaction, &entry).await?;
        transaction.commit().await.map_err(db)?;
        Ok(group.id)
    }
}
