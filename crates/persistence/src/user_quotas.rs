//! Per-account quotas: the account's plan and overrides (`user_quotas`), how much it uses, and
//! the check a creation makes after writing its row, under the account's lock.

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use steward_domain::groups::GroupRole;
use steward_domain::quotas::{OrgQuota, QuotaKey, QuotaPlans, UserQuotaStore, check_quota};
use steward_domain::{AuditEntry, RepositoryError, RuleStoreError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{api_keys, devices, group_memberships, groups, user_quotas, users};
use crate::error::db_err_to_repository as db;
use crate::organizations::{quota_json, quota_with_keys};

/// The account's plan and overrides as stored (`free`, none, without a row).
pub(crate) async fn read_user_quota<C: ConnectionTrait>(
    connection: &C,
    user: Uuid,
) -> Result<OrgQuota, RepositoryError> {
    let found = user_quotas::Entity::find_by_id(user)
        .one(connection)
        .await
        .map_err(db)?;
    Ok(match found {
        Some(row) => quota_with_keys(&row.plan, row.overrides.as_ref(), &QuotaKey::USER),
        None => OrgQuota {
            plan: steward_domain::quotas::DEFAULT_PLAN.to_owned(),
            overrides: Default::default(),
        },
    })
}

/// Takes the account's row as the lock of its quota counts for the rest of the transaction
/// (PostgreSQL: `FOR NO KEY UPDATE`, which the foreign-key checks of the rows just written —
/// `FOR KEY SHARE` — do not block, so two creators cannot deadlock; SQLite's write
/// transactions already take turns).
pub(crate) async fn lock_user<C: ConnectionTrait>(connection: &C, user: Uuid) -> Result<(), RepositoryError> {
    if connection.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        users::Entity::find_by_id(user)
            .select_only()
            .column(users::Column::Id)
            .lock(sea_orm::sea_query::LockType::NoKeyUpdate)
            .into_tuple::<Uuid>()
            .one(connection)
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// The account's limit for `key` now, if it has one.
pub(crate) async fn user_limit<C: ConnectionTrait>(
    connection: &C,
    plans: &QuotaPlans,
    user: Uuid,
    key: QuotaKey,
) -> Result<Option<u64>, RepositoryError> {
    Ok(plans.limit(&read_user_quota(connection, user).await?, key))
}

/// Takes the account's lock at the start of a transaction that may give it `key` (before any
/// other row is locked, in the order erasing an account takes them: the account, then its
/// devices and groups), when the account has a limit for `key`.
pub(crate) async fn lock_user_for<C: ConnectionTrait>(
    connection: &C,
    plans: &QuotaPlans,
    user: Uuid,
    key: QuotaKey,
) -> Result<(), RepositoryError> {
    if user_limit(connection, plans, user, key).await?.is_some() {
        lock_user(connection, user).await?;
    }
    Ok(())
}

/// Whether the `added` rows of `key` this transaction has just written for `user` fit the
/// account's limit: counted (the new rows included) under the account's lock, so N+1
/// concurrent creations against a limit of N admit exactly N; the caller rolls back on
/// refusal. On SQLite the transaction must already write.
pub(crate) async fn check_user_quota_after<C: ConnectionTrait>(
    connection: &C,
    plans: &QuotaPlans,
    user: Uuid,
    key: QuotaKey,
    added: u64,
) -> Result<(), RuleStoreError> {
    if added == 0 || user_limit(connection, plans, user, key).await?.is_none() {
        return Ok(());
    }
    lock_user(connection, user).await?;
    // Read again under the lock: the limit as it is now.
    let Some(limit) = user_limit(connection, plans, user, key).await? else {
        return Ok(());
    };
    let used = user_quota_use(connection, user, key).await?;
    check_quota(key, Some(limit), used.saturating_sub(added), added)
        .map_err(|exceeded| RuleStoreError::Rule(exceeded.into()))
}

/// Whether the member just added to `group` (a family group, whose lock this transaction
/// holds) fits its owner's `group_members` limit. The group's lock orders joins, so the
/// owner's account is not locked (a join never waits for an account being erased).
pub(crate) async fn check_group_members_after<C: ConnectionTrait>(
    connection: &C,
    plans: &QuotaPlans,
    group: Uuid,
) -> Result<(), RuleStoreError> {
    let owner: Option<Uuid> = group_memberships::Entity::find()
        .select_only()
        .column(group_memberships::Column::UserId)
        .filter(group_memberships::Column::GroupId.eq(group))
        .filter(crate::database::literal_eq(
            group_memberships::Column::Role,
            GroupRole::Owner.as_str(),
        ))
        .into_tuple()
        .one(connection)
        .await
        .map_err(db)?;
    let Some(owner) = owner else {
        return Ok(());
    };
    let Some(limit) = user_limit(connection, plans, owner, QuotaKey::GroupMembers).await? else {
        return Ok(());
    };
    let used = group_members(connection, group).await?;
    check_quota(QuotaKey::GroupMembers, Some(limit), used.saturating_sub(1), 1)
        .map_err(|exceeded| RuleStoreError::Rule(exceeded.into()))
}

/// The family groups `user` owns that still exist.
async fn owned_groups<C: ConnectionTrait>(connection: &C, user: Uuid) -> Result<Vec<Uuid>, RepositoryError> {
    let owned: Vec<Uuid> = group_memberships::Entity::find()
        .select_only()
        .column(group_memberships::Column::GroupId)
        .filter(group_memberships::Column::UserId.eq(user))
        .filter(crate::database::literal_eq(
            group_memberships::Column::Role,
            GroupRole::Owner.as_str(),
        ))
        .into_tuple()
        .all(connection)
        .await
        .map_err(db)?;
    if owned.is_empty() {
        return Ok(owned);
    }
    groups::Entity::find()
        .select_only()
        .column(groups::Column::Id)
        .filter(groups::Column::Id.is_in(owned))
        .filter(groups::Column::OrganizationId.is_null())
        .filter(groups::Column::DeletedAt.is_null())
        .into_tuple()
        .all(connection)
        .await
        .map_err(db)
}

async fn group_members<C: ConnectionTrait>(connection: &C, group: Uuid) -> Result<u64, RepositoryError> {
    group_memberships::Entity::find()
        .filter(group_memberships::Column::GroupId.eq(group))
        .count(connection)
        .await
        .map_err(db)
}

/// How much of `key` (one of [`QuotaKey::USER`]) the account has now.
pub(crate) async fn user_quota_use<C: ConnectionTrait>(
    connection: &C,
    user: Uuid,
    key: QuotaKey,
) -> Result<u64, RepositoryError> {
    match key {
        QuotaKey::PersonalDevices => devices::Entity::find()
            .filter(devices::Column::OwnerUserId.eq(user))
            .filter(devices::Column::OrganizationId.is_null())
            .count(connection)
            .await
            .map_err(db),
        QuotaKey::Groups => Ok(owned_groups(connection, user).await?.len() as u64),
        // The largest of the groups the account owns.
        QuotaKey::GroupMembers => {
            let owned = owned_groups(connection, user).await?;
            if owned.is_empty() {
                return Ok(0);
            }
            let largest: Option<i64> = group_memberships::Entity::find()
                .select_only()
                .column_as(group_memberships::Column::Id.count(), "n")
                .filter(group_memberships::Column::GroupId.is_in(owned))
                .group_by(group_memberships::Column::GroupId)
                .into_tuple::<i64>()
                .all(connection)
                .await
                .map_err(db)?
                .into_iter()
                .max();
            Ok(largest.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
        }
        QuotaKey::PersonalAccessTokens => api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(user))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(
                sea_orm::Condition::any()
                    .add(api_keys::Column::ExpiresAt.is_null())
                    .add(api_keys::Column::ExpiresAt.gt(Utc::now())),
            )
            .count(connection)
            .await
            .map_err(db),
        QuotaKey::Devices
        | QuotaKey::Users
        | QuotaKey::EnrollmentTokens
        | QuotaKey::Policies
        | QuotaKey::ImportsPerDay
        | QuotaKey::ApiRequestsPerMinute => Ok(0),
    }
}

impl UserQuotaStore for Database {
    async fn user_quota(&self, user: Uuid) -> Result<OrgQuota, RepositoryError> {
        read_user_quota(self.connection(), user).await
    }

    async fn user_quota_usage(&self, user: Uuid) -> Result<BTreeMap<QuotaKey, u64>, RepositoryError> {
        let mut usage = BTreeMap::new();
        for key in QuotaKey::USER {
            usage.insert(key, user_quota_use(self.connection(), user, key).await?);
        }
        Ok(usage)
    }

    async fn set_user_quota(
        &self,
        user: Uuid,
        quota: &OrgQuota,
        audit: &AuditEntry,
    ) -> Result<OrgQuota, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let exists = users::Entity::find_by_id(user)
            .filter(users::Column::DeletedAt.is_null())
            .select_only()
            .column(users::Column::Id)
            .into_tuple::<Uuid>()
            .one(&transaction)
            .await
            .map_err(db)?;
        if exists.is_none() {
            return Err(RepositoryError::NotFound);
        }
        user_quotas::Entity::insert(user_quotas::ActiveModel {
            user_id: Set(user),
            plan: Set(quota.plan.clone()),
            overrides: Set(quota_json(&quota.overrides)),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(user_quotas::Column::UserId)
                .update_columns([
                    user_quotas::Column::Plan,
                    user_quotas::Column::Overrides,
                    user_quotas::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        let stored = read_user_quota(&transaction, user).await?;
        transaction.commit().await.map_err(db)?;
        Ok(stored)
    }
}
