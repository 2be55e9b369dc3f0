//! Configuration backup and restore: the snapshot an export reads, and an import applied in
//! one transaction (imports take turns, and allowlist changes wait for them).

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, ExprTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};
use serde_json::json;
use steward_domain::config_backup::{AppliedImport, ConfigChanges, ConfigSnapshot, ConfigStore, Write};
use steward_domain::quotas::QuotaKey;
use steward_domain::{AuditEntry, RepositoryError, RuleStoreError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{
    custom_roles, device_policies, instance_flags, ip_allowlist, organizations, setting_definitions, webhooks,
};
use crate::error::db_err_to_repository as db;
use crate::fleet::{policy_device_ids, touch_devices};

async fn read_snapshot<C: ConnectionTrait>(connection: &C) -> Result<ConfigSnapshot, RepositoryError> {
    let definitions = setting_definitions::Entity::find()
        .order_by_asc(setting_definitions::Column::Key)
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(crate::settings::definition)
        .collect::<Result<Vec<_>, _>>()?;
    let organizations = organizations::Entity::find()
        .order_by_asc(organizations::Column::Slug)
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(crate::organizations::record)
        .collect();
    let policies = device_policies::Entity::find()
        .order_by_asc(device_policies::Column::Name)
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(crate::policies::record)
        .collect();
    let roles = crate::roles::read_custom_roles(connection, false).await?;
    let (allowlist_enabled, allowlist) = crate::ip_allowlist::read_list(connection).await?;
    let webhooks = webhooks::Entity::find()
        .filter(webhooks::Column::PersonalUserId.is_null())
        .order_by_asc(webhooks::Column::CreatedAt)
        .order_by_asc(webhooks::Column::Id)
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(crate::events::webhook)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ConfigSnapshot {
        definitions,
        organizations,
        policies,
        roles,
        allowlist_enabled,
        allowlist,
        webhooks,
    })
}

/// An update that found its row changed (or gone) since the snapshot: the import is refused
/// whole (409), to be tried again on what is there now.
fn changed_meanwhile(rows: u64) -> Result<(), RepositoryError> {
    if rows == 0 {
        return Err(RepositoryError::VersionConflict);
    }
    Ok(())
}

async fn apply(
    transaction: &DatabaseTransaction,
    database: &Database,
    changes: &ConfigChanges,
) -> Result<AppliedImport, RuleStoreError> {
    let now = Utc::now();
    for write in &changes.definitions {
        let definition = write.record();
        match write {
            Write::Create(_) => {
                setting_definitions::Entity::insert(crate::settings::definition_row(definition, now))
                    .exec_without_returning(transaction)
                    .await
                    .map_err(db)?;
            }
            Write::Update(_) => {
                crate::settings::catalog::update_definition_row(transaction, definition, now).await?;
            }
        }
    }
    for write in &changes.organizations {
        let organization = write.record();
        match write {
            Write::Create(_) => {
                organizations::Entity::insert(crate::organizations::new_organization_row(organization))
                    .exec_without_returning(transaction)
                    .await
                    .map_err(db)?;
            }
            Write::Update(_) => {
                let updated = organizations::Entity::update_many()
                    .col_expr(
                        organizations::Column::Name,
                        Expr::value(organization.name.clone()),
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
                        organizations::Column::Plan,
                        Expr::value(organization.quota.plan.clone()),
                    )
                    .col_expr(
                        organizations::Column::QuotaOverrides,
                        Expr::value(crate::organizations::quota_json(&organization.quota.overrides)),
                    )
                    .col_expr(
                        organizations::Column::Version,
                        Expr::col(organizations::Column::Version).add(1),
                    )
                    .col_expr(organizations::Column::UpdatedAt, Expr::value(now))
                    .filter(organizations::Column::Id.eq(organization.id))
                    .filter(organizations::Column::Version.eq(organization.version))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
                changed_meanwhile(updated.rows_affected)?;
            }
        }
    }
    // Policies count against their organization's quota, all of one organization at once.
    let mut created_per_organization: BTreeMap<Uuid, u64> = BTreeMap::new();
    for write in &changes.policies {
        if let Write::Create(policy) = write {
            *created_per_organization
                .entry(policy.organization_id)
                .or_default() += 1;
        }
    }
    for (organization, adding) in created_per_organization {
        crate::organizations::check_quota_locked(
            transaction,
            database.quota_plans(),
            organization,
            QuotaKey::Policies,
            adding,
        )
        .await?;
    }
    let mut touched = Vec::new();
    for write in &changes.policies {
        let policy = write.record();
        let was_default = match write {
            Write::Create(_) => {
                crate::policies::unset_other_defaults(transaction, policy).await?;
                device_policies::Entity::insert(crate::policies::new_policy_row(policy))
                    .exec_without_returning(transaction)
                    .await
                    .map_err(db)?;
                false
            }
            Write::Update(_) => {
                let was_default = device_policies::Entity::find_by_id(policy.id)
                    .one(transaction)
                    .await
                    .map_err(db)?
                    .is_some_and(|current| current.is_default);
                let updated = device_policies::Entity::update_many()
                    .col_expr(
                        device_policies::Column::Description,
                        Expr::value(policy.description.clone()),
                    )
                    .col_expr(
                        device_policies::Column::Settings,
                        Expr::value(json!(policy.settings)),
                    )
                    .col_expr(
                        device_policies::Column::LockedKeys,
                        Expr::value(json!(policy.locks)),
                    )
                    .col_expr(device_policies::Column::Priority, Expr::value(policy.priority))
                    .col_expr(device_policies::Column::IsDefault, Expr::value(policy.is_default))
                    .col_expr(
                        device_policies::Column::Version,
                        Expr::col(device_policies::Column::Version).add(1),
                    )
                    .col_expr(device_policies::Column::UpdatedAt, Expr::value(now))
                    .filter(device_policies::Column::Id.eq(policy.id))
                    .filter(device_policies::Column::Version.eq(policy.version))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
                changed_meanwhile(updated.rows_affected)?;
                crate::policies::unset_other_defaults(transaction, policy).await?;
                was_default
            }
        };
        let devices = policy_device_ids(
            transaction,
            policy.organization_id,
            policy.id,
            was_default || policy.is_default,
        )
        .await?;
        touch_devices(transaction, &devices, "policy_changed", now).await?;
        touched.extend(devices);
    }
    for write in &changes.roles {
        let role = write.record();
        match write {
            Write::Create(_) => {
                custom_roles::Entity::insert(custom_roles::ActiveModel {
                    name: Set(role.name.clone()),
                    description: Set(role.description.clone()),
                    permissions: Set(json!(role.permissions)),
                    created_at: Set(role.created_at),
                    updated_at: Set(role.updated_at),
                })
                .exec_without_returning(transaction)
                .await
                .map_err(db)?;
            }
            Write::Update(_) => {
                custom_roles::Entity::update_many()
                    .col_expr(
                        custom_roles::Column::Description,
                        Expr::value(role.description.clone()),
                    )
                    .col_expr(
                        custom_roles::Column::Permissions,
                        Expr::value(json!(role.permissions)),
                    )
                    .col_expr(custom_roles::Column::UpdatedAt, Expr::value(now))
                    .filter(custom_roles::Column::Name.eq(role.name.as_str()))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
            }
        }
    }
    for write in &changes.allowlist {
        let entry = write.record();
        match write {
            Write::Create(_) => {
                ip_allowlist::Entity::insert(ip_allowlist::ActiveModel {
                    id: Set(entry.id),
                    network: Set(entry.network.to_string()),
                    name: Set(entry.name.clone()),
                    description: Set(entry.description.clone()),
                    created_by: Set(entry.created_by),
                    created_at: Set(entry.created_at),
                    updated_at: Set(entry.updated_at),
                })
                .exec_without_returning(transaction)
                .await
                .map_err(db)?;
            }
            Write::Update(_) => {
                ip_allowlist::Entity::update_many()
                    .col_expr(ip_allowlist::Column::Name, Expr::value(entry.name.clone()))
                    .col_expr(
                        ip_allowlist::Column::Description,
                        Expr::value(entry.description.clone()),
                    )
                    .col_expr(ip_allowlist::Column::UpdatedAt, Expr::value(now))
                    .filter(ip_allowlist::Column::Id.eq(entry.id))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
            }
        }
    }
    if let Some(enabled) = changes.allowlist_enabled {
        instance_flags::Entity::update_many()
            .col_expr(instance_flags::Column::Value, Expr::value(enabled.to_string()))
            .col_expr(instance_flags::Column::UpdatedAt, Expr::value(now))
            .filter(instance_flags::Column::Name.eq(crate::ip_allowlist::ENABLED))
            .exec(transaction)
            .await
            .map_err(db)?;
    }
    for write in &changes.webhooks {
        let webhook = write.record();
        match write {
            Write::Create(_) => {
                webhooks::Entity::insert(crate::events::webhook_row(webhook))
                    .exec_without_returning(transaction)
                    .await
                    .map_err(db)?;
            }
            Write::Update(_) => {
                let updated = webhooks::Entity::update_many()
                    .col_expr(
                        webhooks::Column::Description,
                        Expr::value(webhook.description.clone()),
                    )
                    .col_expr(
                        webhooks::Column::Events,
                        Expr::value(json!(webhook.events.as_slice())),
                    )
                    .col_expr(webhooks::Column::Enabled, Expr::value(webhook.enabled))
                    .col_expr(
                        webhooks::Column::SecretSealed,
                        Expr::value(webhook.secret_sealed.clone()),
                    )
                    .col_expr(
                        webhooks::Column::PreviousSecretSealed,
                        Expr::value(webhook.previous_secret_sealed.clone()),
                    )
                    .col_expr(
                        webhooks::Column::PreviousSecretUntil,
                        Expr::value(webhook.previous_secret_until),
                    )
                    .col_expr(
                        webhooks::Column::ConsecutiveFailures,
                        Expr::value(webhook.consecutive_failures),
                    )
                    .col_expr(
                        webhooks::Column::DisabledReason,
                        Expr::value(webhook.disabled_reason.clone()),
                    )
                    .col_expr(
                        webhooks::Column::Version,
                        Expr::col(webhooks::Column::Version).add(1),
                    )
                    .col_expr(webhooks::Column::UpdatedAt, Expr::value(now))
                    .filter(webhooks::Column::Id.eq(webhook.id))
                    .filter(webhooks::Column::Version.eq(webhook.version))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
                changed_meanwhile(updated.rows_affected)?;
                if !webhook.enabled {
                    crate::events::fail_pending(
                        transaction,
                        webhook.id,
                        "the webhook was turned off by a configuration import",
                        now,
                    )
                    .await?;
                }
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    Ok(AppliedImport {
        touched_devices: touched,
    })
}

impl ConfigStore for Database {
    async fn config_snapshot(&self) -> Result<ConfigSnapshot, RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let snapshot = read_snapshot(&transaction).await?;
        transaction.commit().await.map_err(db)?;
        Ok(snapshot)
    }

    async fn import_config<E, F>(&self, decide: F) -> Result<Result<AppliedImport, E>, RuleStoreError>
    where
        E: Send,
        F: FnOnce(&ConfigSnapshot) -> Result<(ConfigChanges, AuditEntry), E> + Send,
    {
        let transaction = self.begin_turn("config_import").await?;
        // Every turn the writes below would take on their own, always in this order.
        crate::ip_allowlist::take_allowlist_turn(&transaction).await?;
        crate::database::take_turn(&transaction, "lock.custom_roles").await?;
        crate::database::take_turn(&transaction, "lock.webhooks").await?;
        let snapshot = read_snapshot(&transaction).await?;
        let (changes, audit) = match decide(&snapshot) {
            Ok(decided) => decided,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let applied = apply(&transaction, self, &changes).await?;
        insert_audit_entry(&transaction, &audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(Ok(applied))
    }
}
