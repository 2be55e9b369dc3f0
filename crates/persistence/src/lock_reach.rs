//! Locks nobody may lift any more. A group admin's lock on a member's device rests on the
//! admin managing that member; when that ends (the member leaves or is removed, the admin is
//! demoted or leaves, the group is deleted), the lock would stay with nobody allowed to lift it
//! or to approve its unlock requests. Such locks are released in the same transaction as the
//! change that orphaned them — audited, the device's settings version bumped, a push queued —
//! and their pending unlock requests are denied with a note saying why.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde_json::json;
use steward_domain::groups::manages_devices_of;
use steward_domain::rbac::{Permission, RoleCatalog};
use steward_domain::settings::store::UnlockStatus;
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entries;
use crate::entities::{device_settings, devices, unlock_requests, user_system_roles};
use crate::error::db_err_to_repository as db;
use crate::groups::role_pairs_in;
use crate::settings::enqueue;

/// Releases the device-layer locks on devices owned by `owners` whose locker no longer
/// manages the owner through any live group (system administrators' locks stay: their right
/// does not come from a group). Answers the devices touched.
pub(crate) async fn release_unreachable_locks(
    transaction: &DatabaseTransaction,
    owners: &BTreeSet<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, RepositoryError> {
    if owners.is_empty() {
        return Ok(Vec::new());
    }
    let owned = devices::Entity::find()
        .filter(devices::Column::OwnerUserId.is_in(owners.iter().copied()))
        .all(transaction)
        .await
        .map_err(db)?;
    let mut touched = Vec::new();
    let mut entries = Vec::new();
    for device in owned {
        let Some(owner) = device.owner_user_id else {
            continue;
        };
        let locks = device_settings::Entity::find()
            .filter(device_settings::Column::DeviceId.eq(device.id))
            .filter(device_settings::Column::IsLocked.eq(true))
            .filter(device_settings::Column::LockedBy.is_not_null())
            .filter(device_settings::Column::LockedBy.ne(owner))
            .all(transaction)
            .await
            .map_err(db)?;
        let mut released = Vec::new();
        for lock in locks {
            let Some(locker) = lock.locked_by else { continue };
            let still_manages = role_pairs_in(transaction, locker, owner)
                .await?
                .into_iter()
                .any(|(mine, theirs)| manages_devices_of(mine, theirs));
            if still_manages || is_system_admin(transaction, locker).await? {
                continue;
            }
            released.push((lock.setting_key, locker));
        }
        if released.is_empty() {
            continue;
        }
        let version = crate::settings::bump_version(transaction, device.id, None, now).await?;
        for (key, locker) in &released {
            device_settings::Entity::update_many()
                .col_expr(device_settings::Column::IsLocked, Expr::value(false))
                .col_expr(
                    device_settings::Column::LockedBy,
                    Expr::value(Option::<Uuid>::None),
                )
                .col_expr(
                    device_settings::Column::LockedAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(
                    device_settings::Column::UnlockedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(
                    device_settings::Column::LockReason,
                    Expr::value(Option::<String>::None),
                )
                .col_expr(device_settings::Column::ChangedInVersion, Expr::value(version))
                .col_expr(device_settings::Column::UpdatedAt, Expr::value(now))
                .filter(device_settings::Column::DeviceId.eq(device.id))
                .filter(device_settings::Column::SettingKey.eq(key.as_str()))
                .exec(transaction)
                .await
                .map_err(db)?;
            unlock_requests::Entity::update_many()
                .col_expr(
                    unlock_requests::Column::Status,
                    Expr::value(UnlockStatus::Denied.as_str()),
                )
                .col_expr(
                    unlock_requests::Column::DecisionNote,
                    Expr::value(Some(
                        "the lock was released: whoever set it no longer manages this device",
                    )),
                )
                .col_expr(unlock_requests::Column::DecidedAt, Expr::value(Some(now)))
                .filter(unlock_requests::Column::DeviceId.eq(device.id))
                .filter(unlock_requests::Column::SettingKey.eq(key.as_str()))
                .filter(unlock_requests::Column::Status.eq(UnlockStatus::Pending.as_str()))
                .exec(transaction)
                .await
                .map_err(db)?;
            entries.push(
                AuditEntry::new(
                    Actor::system(),
                    AuditAction::known("settings.lock_released"),
                    "device",
                )
                .resource_id(device.id)
                .change(
                    Some(json!({"key": key, "locked": true, "lockedBy": locker})),
                    Some(json!({"key": key, "locked": false, "version": version,
                            "reason": "the locker no longer manages the device's owner"})),
                ),
            );
        }
        enqueue(transaction, device.id, "settings_changed", now).await?;
        touched.push(device.id);
    }
    insert_audit_entries(transaction, entries).await?;
    Ok(touched)
}

/// Whether `user` may change any device's settings by a system role (`devices:write`, from a
/// built-in or a custom role): such a locker can still lift their lock.
async fn is_system_admin<C: ConnectionTrait>(connection: &C, user: Uuid) -> Result<bool, RepositoryError> {
    let roles: Vec<String> = user_system_roles::Entity::find()
        .filter(user_system_roles::Column::UserId.eq(user))
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(|row| row.role)
        .collect();
    let catalog = RoleCatalog::built_in();
    if roles.iter().all(|role| RoleCatalog::is_built_in(role)) {
        return Ok(catalog.allows(&roles, Permission::DevicesWrite));
    }
    let custom = crate::roles::read_custom_roles(connection, false).await?;
    Ok(catalog
        .with_custom(custom.iter().map(|role| role.definition()))
        .allows(&roles, Permission::DevicesWrite))
}
