//! Organizations and their users.

mod user_import;

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;
use steward_domain::organizations::{
    OrgMember, OrgRole, OrgRuleError, OrgStoreError, OrgUsage, OrganizationRecord, OrganizationStore,
};
use steward_domain::{AuditEntry, PageRequest, RepositoryError};
use uuid::Uuid;

use steward_domain::RuleStoreError;
use steward_domain::quotas::{Limits, OrgQuota, QuotaKey, QuotaPlans, check_quota};

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{devices, org_users, organizations, users};
use crate::error::db_err_to_repository as db;

pub(crate) fn record(model: organizations::Model) -> OrganizationRecord {
    OrganizationRecord {
        id: model.id,
        name: model.name,
        slug: model.slug,
        description: model.description,
        status: model.status,
        is_default: model.is_default,
        settings: model.default_settings,
        version: model.version,
        created_at: model.created_at,
        updated_at: model.updated_at,
        quota: quota_of(&model.plan, model.quota_overrides.as_ref()),
    }
}

/// The row of a new organization (version 1, never the default one).
pub(crate) fn new_organization_row(organization: &OrganizationRecord) -> organizations::ActiveModel {
    organizations::ActiveModel {
        id: Set(organization.id),
        name: Set(organization.name.clone()),
        slug: Set(organization.slug.clone()),
        status: Set(organization.status.clone()),
        contact_email: Set(None),
        max_devices: Set(None),
        max_users: Set(None),
        default_settings: Set(organization.settings.clone()),
        version: Set(1),
        created_at: Set(organization.created_at),
        updated_at: Set(organization.created_at),
        description: Set(organization.description.clone()),
        is_default: Set(false),
        plan: Set(organization.quota.plan.clone()),
        quota_overrides: Set(quota_json(&organization.quota.overrides)),
    }
}

/// Overrides as stored: `None` when there are none.
pub(crate) fn quota_json(overrides: &Limits) -> Option<serde_json::Value> {
    (!overrides.is_empty()).then(|| serde_json::json!(overrides))
}

/// An organization's plan and overrides as stored. Read entry by entry and failing closed: an
/// unknown key is ignored, an unreadable value counts as a limit of 0 (and is logged), so a
/// damaged row never lifts a limit.
fn quota_of(plan: &str, overrides: Option<&serde_json::Value>) -> OrgQuota {
    quota_with_keys(plan, overrides, &QuotaKey::ORGANIZATION)
}

/// [`quota_of`] for an organization's (`keys`: [`QuotaKey::ORGANIZATION`]) or an account's
/// ([`QuotaKey::USER`]) limits; a key of the other kind is ignored.
pub(crate) fn quota_with_keys(
    plan: &str,
    overrides: Option<&serde_json::Value>,
    keys: &[QuotaKey],
) -> OrgQuota {
    let mut limits = Limits::new();
    if let Some(object) = overrides.and_then(serde_json::Value::as_object) {
        for (key, value) in object {
            let Some(key) = QuotaKey::parse(key).filter(|key| keys.contains(key)) else {
                tracing::warn!(%key, "an unknown quota override is ignored");
                continue;
            };
            let limit = match value {
                serde_json::Value::Null => None,
                value => match value.as_u64() {
                    Some(limit) => Some(limit),
                    None => {
                        tracing::warn!(key = key.as_str(), %value, "an unreadable quota override counts as 0");
                        Some(0)
                    }
                },
            };
            limits.insert(key, limit);
        }
    } else if overrides.is_some_and(|value| !value.is_null()) {
        tracing::warn!("unreadable quota overrides: every limit counts as 0");
        for key in keys {
            limits.insert(*key, Some(0));
        }
    }
    OrgQuota {
        plan: plan.to_owned(),
        overrides: limits,
    }
}

/// Whether `adding` more of `key` fit the organization's quota, counted under its lock (taken
/// here, for the rest of the transaction, when the organization has a limit for `key`): N+1
/// concurrent creations against a limit of N take turns at the lock, so exactly N pass. Adding
/// nothing is never refused, and an organization without a limit takes no lock. On SQLite the
/// transaction must already write (or be `begin_write`), as the limit is read first.
pub(crate) async fn check_quota_locked<C: sea_orm::ConnectionTrait>(
    connection: &C,
    plans: &QuotaPlans,
    organization: Uuid,
    key: QuotaKey,
    adding: u64,
) -> Result<(), RuleStoreError> {
    if adding == 0 {
        return Ok(());
    }
    let limit_now = |found: &organizations::Model| {
        plans.limit(&quota_of(&found.plan, found.quota_overrides.as_ref()), key)
    };
    let found = organizations::Entity::find_by_id(organization)
        .one(connection)
        .await
        .map_err(db)?
        .ok_or(RepositoryError::NotFound)?;
    if limit_now(&found).is_none() {
        return Ok(());
    }
    claim_organization(connection, organization).await?;
    // Read again under the lock: the limit as it is now.
    let found = organizations::Entity::find_by_id(organization)
        .one(connection)
        .await
        .map_err(db)?
        .ok_or(RepositoryError::NotFound)?;
    let Some(limit) = limit_now(&found) else {
        return Ok(());
    };
    let used = quota_use(connection, organization, key).await?;
    check_quota(key, Some(limit), used, adding).map_err(|exceeded| RuleStoreError::Rule(exceeded.into()))?;
    // Crossing 80 % or 100 % is an event (and raises the operators' notification), decided
    // under the lock; a level is announced at most once a day under one limit.
    for percent in steward_domain::quotas::thresholds_crossed(limit, used, adding) {
        if !claim_announcement(connection, organization, key, percent, limit).await? {
            continue;
        }
        let entry = AuditEntry::new(
            steward_domain::Actor::system(),
            steward_domain::AuditAction::known("organization.quota_threshold"),
            "organization",
        )
        .resource_id(organization)
        .organization(organization)
        .change(
            None,
            Some(
                json!({"organization": found.slug, "key": key.as_str(), "limit": limit,
                        "used": used.saturating_add(adding), "percent": percent}),
            ),
        );
        insert_audit_entry(connection, &entry).await?;
    }
    Ok(())
}

/// Records that `level` of `key` is announced now under `limit`, unless it was within the day
/// under the same limit (`false`). Called under the organization's lock.
async fn claim_announcement<C: sea_orm::ConnectionTrait>(
    connection: &C,
    organization: Uuid,
    key: QuotaKey,
    level: u8,
    limit: u64,
) -> Result<bool, RepositoryError> {
    use crate::entities::quota_alerts;
    let now = Utc::now();
    let stored_limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let last = quota_alerts::Entity::find()
        .filter(quota_alerts::Column::OrganizationId.eq(organization))
        .filter(quota_alerts::Column::QuotaKey.eq(key.as_str()))
        .filter(quota_alerts::Column::Level.eq(i32::from(level)))
        .one(connection)
        .await
        .map_err(db)?;
    let previous = last
        .as_ref()
        .map(|row| (u64::try_from(row.quota_limit).unwrap_or(0), row.announced_at));
    if !steward_domain::quotas::announce_again(previous, limit, now) {
        return Ok(false);
    }
    match last {
        Some(row) => {
            quota_alerts::Entity::update_many()
                .col_expr(quota_alerts::Column::QuotaLimit, Expr::value(stored_limit))
                .col_expr(quota_alerts::Column::AnnouncedAt, Expr::value(now))
                .filter(quota_alerts::Column::Id.eq(row.id))
                .exec(connection)
                .await
                .map_err(db)?;
        }
        None => {
            quota_alerts::Entity::insert(quota_alerts::ActiveModel {
                id: Set(Uuid::now_v7()),
                organization_id: Set(organization),
                quota_key: Set(key.as_str().to_owned()),
                level: Set(i32::from(level)),
                quota_limit: Set(stored_limit),
                announced_at: Set(now),
            })
            .exec_without_returning(connection)
            .await
            .map_err(db)?;
        }
    }
    Ok(true)
}

/// Spends one use of a quota over a window (`imports_per_day`): refused when the last 24 hours
/// used it up (counted under the organization's lock, as [`check_quota_locked`]), else
/// recorded in this transaction, so a refused or failed import spends nothing.
pub(crate) async fn spend_quota_locked<C: sea_orm::ConnectionTrait>(
    connection: &C,
    plans: &QuotaPlans,
    organization: Uuid,
    key: QuotaKey,
) -> Result<(), RuleStoreError> {
    use crate::entities::quota_spends;
    check_quota_locked(connection, plans, organization, key, 1).await?;
    quota_spends::Entity::insert(quota_spends::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization),
        quota_key: Set(key.as_str().to_owned()),
        spent_at: Set(Utc::now()),
    })
    .exec_without_returning(connection)
    .await
    .map_err(db)?;
    Ok(())
}

/// How much of `key` the organization has now.
pub(crate) async fn quota_use<C: sea_orm::ConnectionTrait>(
    connection: &C,
    organization: Uuid,
    key: QuotaKey,
) -> Result<u64, RepositoryError> {
    use crate::entities::{device_policies, enrollment_tokens};
    match key {
        QuotaKey::Devices => devices::Entity::find()
            .filter(devices::Column::OrganizationId.eq(organization))
            .count(connection)
            .await
            .map_err(db),
        QuotaKey::Users => org_users::Entity::find()
            .filter(org_users::Column::OrganizationId.eq(organization))
            .count(connection)
            .await
            .map_err(db),
        // Live ones: not revoked, not expired, not used up.
        QuotaKey::EnrollmentTokens => enrollment_tokens::Entity::find()
            .filter(enrollment_tokens::Column::OrganizationId.eq(organization))
            .filter(enrollment_tokens::Column::RevokedAt.is_null())
            .filter(
                sea_orm::Condition::any()
                    .add(enrollment_tokens::Column::ExpiresAt.is_null())
                    .add(enrollment_tokens::Column::ExpiresAt.gt(Utc::now())),
            )
            .filter(
                sea_orm::Condition::any()
                    .add(enrollment_tokens::Column::MaxUses.is_null())
                    .add(
                        Expr::col(enrollment_tokens::Column::UseCount)
                            .lt(Expr::col(enrollment_tokens::Column::MaxUses)),
                    ),
            )
            .count(connection)
            .await
            .map_err(db),
        QuotaKey::Policies => device_policies::Entity::find()
            .filter(device_policies::Column::OrganizationId.eq(organization))
            .count(connection)
            .await
            .map_err(db),
        QuotaKey::ImportsPerDay => {
            use crate::entities::quota_spends;
            quota_spends::Entity::find()
                .filter(quota_spends::Column::OrganizationId.eq(organization))
                .filter(quota_spends::Column::QuotaKey.eq(key.as_str()))
                .filter(quota_spends::Column::SpentAt.gt(Utc::now() - chrono::Duration::hours(24)))
                .count(connection)
                .await
                .map_err(db)
        }
        // A rate, counted by each instance in memory (`steward_app::quotas::RequestCounter`).
        QuotaKey::ApiRequestsPerMinute => Ok(0),
        // An account's limits, not an organization's: nothing counts against them here.
        QuotaKey::PersonalDevices
        | QuotaKey::Groups
        | QuotaKey::GroupMembers
        | QuotaKey::PersonalAccessTokens => Ok(0),
    }
}

/// Takes the organization's row as the lock of a change to its members or fleet; `false` when
/// there is no such organization.
async fn claim_organization_at<C: sea_orm::ConnectionTrait>(
    connection: &C,
    organization: Uuid,
    now: chrono::DateTime<Utc>,
) -> Result<bool, RepositoryError> {
    let locked = organizations::Entity::update_many()
        .col_expr(organizations::Column::UpdatedAt, Expr::value(now))
        .filter(organizations::Column::Id.eq(organization))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(locked.rows_affected > 0)
}

/// [`claim_organization_at`] now, `NotFound` when there is no such organization.
pub(crate) async fn claim_organization<C: sea_orm::ConnectionTrait>(
    connection: &C,
    organization: Uuid,
) -> Result<(), RepositoryError> {
    if claim_organization_at(connection, organization, Utc::now()).await? {
        Ok(())
    } else {
        Err(RepositoryError::NotFound)
    }
}

/// Rows of `table` (a fixed name, never input) belonging to `organization`.
async fn count_in<C: sea_orm::ConnectionTrait>(
    connection: &C,
    table: &str,
    organization: Uuid,
) -> Result<u64, RepositoryError> {
    use sea_orm::sea_query::{Alias, Asterisk, Func, Query};
    let select = Query::select()
        .expr_as(Func::count(Expr::col(Asterisk)), Alias::new("n"))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new("organization_id")).eq(organization))
        .to_owned();
    let statement = connection.get_database_backend().build(&select);
    let row = connection.query_one_raw(statement).await.map_err(db)?;
    let n: i64 = match row {
        Some(row) => row.try_get("", "n").map_err(db)?,
        None => 0,
    };
    Ok(n.unsigned_abs())
}

fn role(stored: &str) -> Result<OrgRole, RepositoryError> {
    OrgRole::parse(stored)
        .ok_or_else(|| RepositoryError::Other(format!("unknown organization role `{stored}`")))
}

impl OrganizationStore for Database {
    async fn create_organization(
        &self,
        organization: &OrganizationRecord,
        owner: Option<Uuid>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        organizations::Entity::insert(new_organization_row(organization))
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        if let Some(owner) = owner {
            org_users::Entity::insert(org_users::ActiveModel {
                id: Set(Uuid::now_v7()),
                organization_id: Set(organization.id),
                user_id: Set(owner),
                role: Set(OrgRole::Owner.as_str().to_owned()),
                permissions: Set(None),
                created_at: Set(organization.created_at),
                updated_at: Set(organization.created_at),
            })
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn find_organization(&self, id: Uuid) -> Result<Option<OrganizationRecord>, RepositoryError> {
        Ok(organizations::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(record))
    }

    async fn find_organization_by_slug(
        &self,
        slug: &str,
    ) -> Result<Option<OrganizationRecord>, RepositoryError> {
        Ok(organizations::Entity::find()
            .filter(organizations::Column::Slug.eq(slug))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(record))
    }

    async fn organizations(
        &self,
        member: Option<Uuid>,
        page: PageRequest,
    ) -> Result<(Vec<OrganizationRecord>, u64), RepositoryError> {
        let mut query = organizations::Entity::find();
        if let Some(user) = member {
            query = query.filter(
                organizations::Column::Id.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(org_users::Column::OrganizationId)
                        .from(org_users::Entity)
                        .and_where(org_users::Column::UserId.eq(user))
                        // A member belongs without reading anything of the organization.
                        .and_where(org_users::Column::Role.ne(OrgRole::Member.as_str()))
                        .to_owned(),
                ),
            );
        }
        let total = query.clone().count(self.connection()).await.map_err(db)?;
        let rows = query
            .order_by_asc(organizations::Column::Name)
            .order_by_asc(organizations::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok((rows.into_iter().map(record).collect(), total))
    }

    async fn update_organization(
        &self,
        organization: &OrganizationRecord,
        expected_version: Option<i32>,
        audit: &AuditEntry,
    ) -> Result<OrganizationRecord, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let mut update = organizations::Entity::update_many()
            .col_expr(
                organizations::Column::Name,
                Expr::value(organization.name.clone()),
            )
            .col_expr(
                organizations::Column::Slug,
                Expr::value(organization.slug.clone()),
            )
            .col_expr(
                organizations::Column::Description,
                Expr::value(organization.description.clone()),
            )
            .col_expr(
                organizations::Column::DefaultSettings,
                Expr::value(organization.settings.clone()),
            )
            .col_expr(
                organizations::Column::Version,
                Expr::col(organizations::Column::Version).add(1),
            )
            .col_expr(organizations::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(organizations::Column::Id.eq(organization.id));
        if let Some(version) = expected_version {
            update = update.filter(organizations::Column::Version.eq(version));
        }
        if update.exec(&transaction).await.map_err(db)?.rows_affected == 0 {
            let exists = organizations::Entity::find_by_id(organization.id)
                .one(&transaction)
                .await
                .map_err(db)?;
            return Err(match exists {
                Some(_) if expected_version.is_some() => RepositoryError::VersionConflict,
                _ => RepositoryError::NotFound,
            });
        }
        insert_audit_entry(&transaction, audit).await?;
        let stored = organizations::Entity::find_by_id(organization.id)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        transaction.commit().await.map_err(db)?;
        Ok(record(stored))
    }

    async fn delete_organization(
        &self,
        id: Uuid,
        force: bool,
        audit: &AuditEntry,
        retire_audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        // The organization's row lock first: the devices read next are the ones it has.
        let locked = organizations::Entity::update_many()
            .col_expr(organizations::Column::UpdatedAt, Expr::value(now))
            .filter(organizations::Column::Id.eq(id))
            .filter(organizations::Column::IsDefault.eq(false))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if locked.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        // PostgreSQL: the UPDATE's lock does not conflict with the key-share lock an enrollment's
        // foreign-key check takes; FOR UPDATE does, so no device joins while it is deleted.
        if transaction.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            organizations::Entity::find_by_id(id)
                .lock_exclusive()
                .one(&transaction)
                .await
                .map_err(db)?;
        }
        let members: Vec<devices::Model> = devices::Entity::find()
            .filter(devices::Column::OrganizationId.eq(id))
            .all(&transaction)
            .await
            .map_err(db)?;
        if !members.is_empty() && !force {
            return Err(RepositoryError::Conflict(format!(
                "the organization still has {} device(s): retire them, or delete with ?force=true to retire them all",
                members.len()
            )));
        }
        let ids: Vec<Uuid> = members.iter().map(|device| device.id).collect();
        if !ids.is_empty() {
            crate::fleet::retire_devices(&transaction, id, &members, now, retire_audit).await?;
        }
        organizations::Entity::delete_many()
            .filter(organizations::Column::Id.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(ids)
    }

    async fn org_role(&self, organization: Uuid, user: Uuid) -> Result<Option<OrgRole>, RepositoryError> {
        org_users::Entity::find()
            .filter(org_users::Column::OrganizationId.eq(organization))
            .filter(org_users::Column::UserId.eq(user))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(|row| role(&row.role))
            .transpose()
    }

    async fn org_members(&self, organization: Uuid) -> Result<Vec<OrgMember>, RepositoryError> {
        members_of(organization)
            .into_tuple::<MemberRow>()
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(org_member)
            .collect()
    }

    async fn org_member_page(
        &self,
        organization: Uuid,
        page: PageRequest,
    ) -> Result<(Vec<OrgMember>, u64), RepositoryError> {
        // Every row has its account: org_users.user_id cascades when an account is deleted.
        let total = org_users::Entity::find()
            .filter(org_users::Column::OrganizationId.eq(organization))
            .count(self.connection())
            .await
            .map_err(db)?;
        // The page's memberships first, from the index alone, then only their accounts: a deep
        // page skips index entries rather than joined rows.
        let ids: Vec<Uuid> = org_users::Entity::find()
            .select_only()
            .column(org_users::Column::Id)
            .filter(org_users::Column::OrganizationId.eq(organization))
            .order_by_asc(org_users::Column::CreatedAt)
            .order_by_asc(org_users::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        if ids.is_empty() {
            return Ok((Vec::new(), total));
        }
        let members = members_of(organization)
            .filter(org_users::Column::Id.is_in(ids))
            .into_tuple::<MemberRow>()
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(org_member)
            .collect::<Result<_, _>>()?;
        Ok((members, total))
    }

    async fn change_org_user<F>(
        &self,
        organization: Uuid,
        user: Uuid,
        new_role: Option<OrgRole>,
        decide: F,
        audit: &AuditEntry,
    ) -> Result<(), OrgStoreError>
    where
        F: FnOnce(Option<OrgRole>, usize) -> Result<(), OrgRuleError> + Send,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        // The organization's row is the lock every change to its users queues on.
        if !claim_organization_at(&transaction, organization, now).await? {
            return Err(OrgRuleError::NotFound.into());
        }
        let members = org_users::Entity::find()
            .filter(org_users::Column::OrganizationId.eq(organization))
            .all(&transaction)
            .await
            .map_err(db)?;
        let current = members
            .iter()
            .find(|row| row.user_id == user)
            .map(|row| role(&row.role))
            .transpose()?;
        let owners = members
            .iter()
            .filter(|row| row.role == OrgRole::Owner.as_str())
            .count();
        decide(current, owners)?;
        match (current, new_role) {
            (None, None) => return Err(OrgRuleError::NotFound.into()),
            (None, Some(new_role)) => {
                check_quota_locked(&transaction, self.quota_plans(), organization, QuotaKey::Users, 1)
                    .await?;
                org_users::Entity::insert(org_users::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    organization_id: Set(organization),
                    user_id: Set(user),
                    role: Set(new_role.as_str().to_owned()),
                    permissions: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                })
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
            }
            (Some(_), Some(new_role)) => {
                org_users::Entity::update_many()
                    .col_expr(org_users::Column::Role, Expr::value(new_role.as_str()))
                    .col_expr(org_users::Column::UpdatedAt, Expr::value(now))
                    .filter(org_users::Column::OrganizationId.eq(organization))
                    .filter(org_users::Column::UserId.eq(user))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
            }
            (Some(_), None) => {
                org_users::Entity::delete_many()
                    .filter(org_users::Column::OrganizationId.eq(organization))
                    .filter(org_users::Column::UserId.eq(user))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
            }
        }
        let entry = audit.clone().change(
            Some(json!({"userId": user, "role": current})),
            Some(json!({"userId": user, "role": new_role})),
        );
        insert_audit_entry(&transaction, &entry).await?;
        transaction.commit().await.map_err(db)?;
        Ok(())
    }

    async fn quota_usage(
        &self,
        organization: Uuid,
    ) -> Result<std::collections::BTreeMap<QuotaKey, u64>, RepositoryError> {
        let mut usage = std::collections::BTreeMap::new();
        for key in QuotaKey::ORGANIZATION {
            usage.insert(key, quota_use(self.connection(), organization, key).await?);
        }
        Ok(usage)
    }

    async fn limited_organizations_usage(
        &self,
        plans: &QuotaPlans,
    ) -> Result<Vec<steward_domain::organizations::OrganizationUsage>, RepositoryError> {
        use crate::entities::{device_policies, enrollment_tokens, quota_spends};
        let connection = self.connection();
        let rows: Vec<(Uuid, String, String, Option<serde_json::Value>)> = organizations::Entity::find()
            .select_only()
            .column(organizations::Column::Id)
            .column(organizations::Column::Slug)
            .column(organizations::Column::Plan)
            .column(organizations::Column::QuotaOverrides)
            .into_tuple()
            .all(connection)
            .await
            .map_err(db)?;
        let limited: Vec<(Uuid, String, OrgQuota)> = rows
            .into_iter()
            .map(|(id, slug, plan, overrides)| (id, slug, quota_of(&plan, overrides.as_ref())))
            .filter(|(_, _, quota)| {
                QuotaKey::ORGANIZATION
                    .iter()
                    .any(|key| plans.limit(quota, *key).is_some())
            })
            .collect();
        if limited.is_empty() {
            return Ok(Vec::new());
        }
        // Only the keys some organization limits are counted, and only for the limited
        // organizations when they are few (a grouped scan otherwise).
        let wanted = |key: QuotaKey| {
            limited
                .iter()
                .any(|(_, _, quota)| plans.limit(quota, key).is_some())
        };
        let ids: Option<Vec<Uuid>> =
            (limited.len() <= 1000).then(|| limited.iter().map(|(id, _, _)| *id).collect());
        let now = Utc::now();
        let grouped = |rows: Vec<(Uuid, i64)>| -> HashMap<Uuid, u64> {
            rows.into_iter()
                .map(|(org, n)| (org, u64::try_from(n).unwrap_or(0)))
                .collect()
        };
        let mut devices = HashMap::new();
        if wanted(QuotaKey::Devices) {
            let mut query = devices::Entity::find()
                .select_only()
                .column(devices::Column::OrganizationId)
                .column_as(devices::Column::Id.count(), "n")
                .filter(devices::Column::OrganizationId.is_not_null());
            if let Some(ids) = &ids {
                query = query.filter(devices::Column::OrganizationId.is_in(ids.clone()));
            }
            devices = grouped(
                query
                    .group_by(devices::Column::OrganizationId)
                    .into_tuple()
                    .all(connection)
                    .await
                    .map_err(db)?,
            );
        }
        let mut users = HashMap::new();
        if wanted(QuotaKey::Users) {
            let mut query = org_users::Entity::find()
                .select_only()
                .column(org_users::Column::OrganizationId)
                .column_as(org_users::Column::UserId.count(), "n");
            if let Some(ids) = &ids {
                query = query.filter(org_users::Column::OrganizationId.is_in(ids.clone()));
            }
            users = grouped(
                query
                    .group_by(org_users::Column::OrganizationId)
                    .into_tuple()
                    .all(connection)
                    .await
                    .map_err(db)?,
            );
        }
        let mut tokens = HashMap::new();
        if wanted(QuotaKey::EnrollmentTokens) {
            let mut query = enrollment_tokens::Entity::find()
                .select_only()
                .column(enrollment_tokens::Column::OrganizationId)
                .column_as(enrollment_tokens::Column::Id.count(), "n")
                .filter(enrollment_tokens::Column::RevokedAt.is_null())
                .filter(
                    sea_orm::Condition::any()
                        .add(enrollment_tokens::Column::ExpiresAt.is_null())
                        .add(enrollment_tokens::Column::ExpiresAt.gt(now)),
                )
                .filter(
                    sea_orm::Condition::any()
                        .add(enrollment_tokens::Column::MaxUses.is_null())
                        .add(
                            Expr::col(enrollment_tokens::Column::UseCount)
                                .lt(Expr::col(enrollment_tokens::Column::MaxUses)),
                        ),
                );
            if let Some(ids) = &ids {
                query = query.filter(enrollment_tokens::Column::OrganizationId.is_in(ids.clone()));
            }
            tokens = grouped(
                query
                    .group_by(enrollment_tokens::Column::OrganizationId)
                    .into_tuple()
                    .all(connection)
                    .await
                    .map_err(db)?,
            );
        }
        let mut policies = HashMap::new();
        if wanted(QuotaKey::Policies) {
            let mut query = device_policies::Entity::find()
                .select_only()
                .column(device_policies::Column::OrganizationId)
                .column_as(device_policies::Column::Id.count(), "n");
            if let Some(ids) = &ids {
                query = query.filter(device_policies::Column::OrganizationId.is_in(ids.clone()));
            }
            policies = grouped(
                query
                    .group_by(device_policies::Column::OrganizationId)
                    .into_tuple()
                    .all(connection)
                    .await
                    .map_err(db)?,
            );
        }
        let mut imports = HashMap::new();
        if wanted(QuotaKey::ImportsPerDay) {
            imports = grouped(
                quota_spends::Entity::find()
                    .select_only()
                    .column(quota_spends::Column::OrganizationId)
                    .column_as(quota_spends::Column::Id.count(), "n")
                    .filter(quota_spends::Column::QuotaKey.eq(QuotaKey::ImportsPerDay.as_str()))
                    .filter(quota_spends::Column::SpentAt.gt(now - chrono::Duration::hours(24)))
                    .group_by(quota_spends::Column::OrganizationId)
                    .into_tuple()
                    .all(connection)
                    .await
                    .map_err(db)?,
            );
        }
        Ok(limited
            .into_iter()
            .map(|(id, slug, quota)| {
                let of = |counts: &HashMap<Uuid, u64>| counts.get(&id).copied().unwrap_or(0);
                steward_domain::organizations::OrganizationUsage {
                    id,
                    slug,
                    quota,
                    used: [
                        (QuotaKey::Devices, of(&devices)),
                        (QuotaKey::Users, of(&users)),
                        (QuotaKey::EnrollmentTokens, of(&tokens)),
                        (QuotaKey::Policies, of(&policies)),
                        (QuotaKey::ImportsPerDay, of(&imports)),
                    ]
                    .into(),
                }
            })
            .collect())
    }

    async fn set_org_quota(
        &self,
        organization: Uuid,
        quota: &OrgQuota,
        audit: &AuditEntry,
    ) -> Result<OrganizationRecord, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let updated = organizations::Entity::update_many()
            .col_expr(organizations::Column::Plan, Expr::value(quota.plan.clone()))
            .col_expr(
                organizations::Column::QuotaOverrides,
                Expr::value(quota_json(&quota.overrides)),
            )
            .col_expr(
                organizations::Column::Version,
                Expr::col(organizations::Column::Version).add(1),
            )
            .col_expr(organizations::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(organizations::Column::Id.eq(organization))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if updated.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        insert_audit_entry(&transaction, audit).await?;
        let stored = organizations::Entity::find_by_id(organization)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        transaction.commit().await.map_err(db)?;
        Ok(record(stored))
    }

    async fn org_usage(&self, organization: Uuid) -> Result<OrgUsage, RepositoryError> {
        let connection = self.connection();
        let by_status: BTreeMap<String, u64> = devices::Entity::find()
            .select_only()
            .column(devices::Column::Status)
            .column_as(devices::Column::Id.count(), "n")
            .filter(devices::Column::OrganizationId.eq(organization))
            .group_by(devices::Column::Status)
            .into_tuple::<(String, i64)>()
            .all(connection)
            .await
            .map_err(db)?
            .into_iter()
            .map(|(status, n)| (status, n.unsigned_abs()))
            .collect();
        let users = org_users::Entity::find()
            .filter(org_users::Column::OrganizationId.eq(organization))
            .count(connection)
            .await
            .map_err(db)?;
        let policies = count_in(connection, "device_policies", organization).await?;
        let enrollment_tokens = count_in(connection, "enrollment_tokens", organization).await?;
        Ok(OrgUsage {
            devices_by_status: by_status,
            users,
            policies,
            enrollment_tokens,
        })
    }
}

type MemberRow = (Uuid, String, String, String, chrono::DateTime<Utc>);

/// The organization's users with their accounts, oldest membership first: one joined statement
/// (an id list of every member would pass the databases' bound-parameter limits in a large
/// organization).
fn members_of(organization: Uuid) -> sea_orm::Select<org_users::Entity> {
    org_users::Entity::find()
        .select_only()
        .column(org_users::Column::UserId)
        .column(users::Column::Email)
        .column(users::Column::DisplayName)
        .column(org_users::Column::Role)
        .column(org_users::Column::CreatedAt)
        .join(
            sea_orm::JoinType::InnerJoin,
            org_users::Entity::belongs_to(users::Entity)
                .from(org_users::Column::UserId)
                .to(users::Column::Id)
                .into(),
        )
        .filter(org_users::Column::OrganizationId.eq(organization))
        .order_by_asc(org_users::Column::CreatedAt)
        .order_by_asc(org_users::Column::Id)
}

fn org_member(
    (user_id, email, display_name, member_role, joined_at): MemberRow,
) -> Result<OrgMember, RepositoryError> {
    Ok(OrgMember {
        user_id,
        email,
        display_name,
        role: role(&member_role)?,
        joined_at,
    })
}
