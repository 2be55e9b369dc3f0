//! Setting definitions, device values and locks, unlock requests and the push outbox.

pub(crate) mod catalog;
mod device_state;
mod push_queue;
mod unlocks;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, ExprTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::{Value, json};
use steward_domain::settings::definitions::{Constraints, MergeRule, SettingDefinition, ValueType};
use steward_domain::settings::locks::SettingRuleError;
use steward_domain::settings::resolution::LayerKind;
use steward_domain::settings::store::{
    AppliedPolicy, DeviceSettingValue, DeviceSettingsSnapshot, PushNotification, SettingChange,
    SettingsStoreError, UnlockDecision, UnlockRequest, UnlockStatus,
};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{
    device_policies, device_settings, devices, groups, push_notifications, setting_definitions,
    unlock_requests,
};
use crate::error::db_err_to_repository as db;

pub(crate) fn definition(model: setting_definitions::Model) -> Result<SettingDefinition, RepositoryError> {
    let corrupt =
        |what: &str| RepositoryError::Other(format!("setting definition `{}`: bad {what}", model.key));
    Ok(SettingDefinition {
        value_type: ValueType::parse(&model.value_type).ok_or_else(|| corrupt("value_type"))?,
        merge_rule: MergeRule::parse(&model.merge_rule).ok_or_else(|| corrupt("merge_rule"))?,
        constraints: match &model.constraints {
            Some(value) => {
                serde_json::from_value::<Constraints>(value.clone()).map_err(|_| corrupt("constraints"))?
            }
            None => Constraints::default(),
        },
        key: model.key,
        default_value: model.default_value,
        category: model.category,
        description: model.description,
        is_lockable: model.is_lockable,
        sort_order: model.sort_order,
    })
}

fn setting_value(model: device_settings::Model) -> DeviceSettingValue {
    DeviceSettingValue {
        key: model.setting_key,
        value: model.value,
        locked: model.is_locked,
        locked_by: model.locked_by,
        locked_at: model.locked_at,
        unlocked_until: model.unlocked_until,
        lock_reason: model.lock_reason,
        updated_by: model.updated_by,
        changed_in_version: model.changed_in_version,
    }
}

fn unlock_request(model: unlock_requests::Model) -> Result<UnlockRequest, RepositoryError> {
    Ok(UnlockRequest {
        status: UnlockStatus::parse(&model.status)
            .ok_or_else(|| RepositoryError::Other(format!("unknown unlock status `{}`", model.status)))?,
        id: model.id,
        device_id: model.device_id,
        setting_key: model.setting_key,
        requested_by: model.requested_by,
        reason: model.reason,
        decided_by: model.decided_by,
        decided_at: model.decided_at,
        decision_note: model.decision_note,
        unlock_until: model.unlock_until,
        created_at: model.created_at,
    })
}

fn push(model: push_notifications::Model, push_token: Option<String>) -> PushNotification {
    PushNotification {
        id: model.id,
        device_id: model.device_id,
        reason: model.reason,
        status: model.status,
        attempts: model.attempts,
        next_attempt_at: model.next_attempt_at,
        last_error: model.last_error,
        created_at: model.created_at,
        sent_at: model.sent_at,
        push_token,
    }
}

pub(crate) fn definition_row(
    definition: &SettingDefinition,
    now: DateTime<Utc>,
) -> setting_definitions::ActiveModel {
    setting_definitions::ActiveModel {
        id: Set(Uuid::now_v7()),
        key: Set(definition.key.clone()),
        value_type: Set(definition.value_type.as_str().to_owned()),
        default_value: Set(definition.default_value.clone()),
        constraints: Set(Some(json!(definition.constraints))),
        category: Set(definition.category.clone()),
        description: Set(definition.description.clone()),
        is_lockable: Set(definition.is_lockable),
        merge_rule: Set(definition.merge_rule.as_str().to_owned()),
        sort_order: Set(definition.sort_order),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

async fn snapshot<C: ConnectionTrait>(
    connection: &C,
    device: Uuid,
) -> Result<Option<DeviceSettingsSnapshot>, RepositoryError> {
    let Some(row) = devices::Entity::find_by_id(device)
        .one(connection)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    let values = device_settings::Entity::find()
        .filter(device_settings::Column::DeviceId.eq(device))
        .order_by_asc(device_settings::Column::SettingKey)
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(setting_value)
        .collect();
    Ok(Some(DeviceSettingsSnapshot {
        device_id: row.id,
        owner_user_id: row.owner_user_id,
        settings_version: row.settings_version,
        values,
        applied_version: row.applied_settings_version,
        applied_at: row.applied_at,
        apply_failures: row.apply_failures.clone(),
        policies: applied_policies(connection, &row).await?,
    }))
}

/// The policies of a managed device, most general first: its organization's default, its
/// fleet group's, its own. Unmanaged devices have none (and cost no query).
pub(crate) async fn applied_policies<C: ConnectionTrait>(
    connection: &C,
    device: &devices::Model,
) -> Result<Vec<AppliedPolicy>, RepositoryError> {
    let Some(organization) = device.organization_id.filter(|_| device.is_managed) else {
        return Ok(Vec::new());
    };
    let group_policy = match device.fleet_group_id {
        Some(group) => groups::Entity::find_by_id(group)
            .filter(groups::Column::DeletedAt.is_null())
            .select_only()
            .column(groups::Column::PolicyId)
            .into_tuple::<Option<Uuid>>()
            .one(connection)
            .await
            .map_err(db)?
            .flatten(),
        None => None,
    };
    let mut wanted = Condition::any().add(
        Condition::all()
            .add(device_policies::Column::OrganizationId.eq(organization))
            .add(device_policies::Column::IsDefault.eq(true)),
    );
    for id in [group_policy, device.policy_id].into_iter().flatten() {
        wanted = wanted.add(device_policies::Column::Id.eq(id));
    }
    let found = device_policies::Entity::find()
        .filter(wanted)
        .filter(device_policies::Column::OrganizationId.eq(organization))
        .all(connection)
        .await
        .map_err(db)?;
    let mut applied = Vec::new();
    let layers = [
        (
            LayerKind::OrganizationDefault,
            found.iter().find(|p| p.is_default),
        ),
        (
            LayerKind::Group,
            group_policy.and_then(|id| found.iter().find(|p| p.id == id)),
        ),
        (
            LayerKind::DevicePolicy,
            device.policy_id.and_then(|id| found.iter().find(|p| p.id == id)),
        ),
    ];
    for (layer, policy) in layers {
        if let Some(policy) = policy {
            applied.push(AppliedPolicy {
                layer,
                id: policy.id,
                name: policy.name.clone(),
                settings: serde_json::from_value(policy.settings.clone()).unwrap_or_default(),
                locks: serde_json::from_value(policy.locked_keys.clone()).unwrap_or_default(),
            });
        }
    }
    Ok(applied)
}

/// Queues one push per device: a pending one absorbs later changes.
pub(crate) async fn enqueue<C: ConnectionTrait>(
    connection: &C,
    device: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let pending = push_notifications::Entity::find()
        .filter(push_notifications::Column::DeviceId.eq(device))
        .filter(crate::database::literal_eq(
            push_notifications::Column::Status,
            "pending",
        ))
        .one(connection)
        .await
        .map_err(db)?;
    if pending.is_some() {
        return Ok(());
    }
    push_notifications::Entity::insert(push_notifications::ActiveModel {
        id: Set(Uuid::now_v7()),
        device_id: Set(device),
        reason: Set(reason.to_owned()),
        status: Set("pending".to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
    })
    .exec_without_returning(connection)
    .await
    .map(|_| ())
    .or_else(|error| match db(error) {
        // A concurrent change queued it first: collapsed.
        RepositoryError::Conflict(_) => Ok(()),
        other => Err(other),
    })
}

/// Writes one decided change at `version`.
async fn apply_change(
    transaction: &DatabaseTransaction,
    device: Uuid,
    change: &SettingChange,
    actor: Option<Uuid>,
    version: i64,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let existing = device_settings::Entity::find()
        .filter(device_settings::Column::DeviceId.eq(device))
        .filter(device_settings::Column::SettingKey.eq(change.key()))
        .one(transaction)
        .await
        .map_err(db)?;
    let Some(row) = existing else {
        // Unlocking or lifting a lock that was never stored changes nothing.
        let (value, locked, reason) = match change {
            SettingChange::SetValue { value, .. } => (value.clone(), false, None),
            SettingChange::Lock {
                value: Some(value),
                reason,
                ..
            } => (value.clone(), true, reason.clone()),
            _ => return Ok(()),
        };
        device_settings::Entity::insert(device_settings::ActiveModel {
            id: Set(Uuid::now_v7()),
            device_id: Set(device),
            setting_key: Set(change.key().to_owned()),
            value: Set(value),
            is_locked: Set(locked),
            locked_by: Set(if locked { actor } else { None }),
            locked_at: Set(locked.then_some(now)),
            unlocked_until: Set(None),
            updated_by: Set(actor),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            changed_in_version: Set(version),
            lock_reason: Set(reason),
        })
        .exec_without_returning(transaction)
        .await
        .map_err(db)?;
        return Ok(());
    };
    let mut update = device_settings::Entity::update_many()
        .col_expr(
            device_settings::Column::Version,
            Expr::col(device_settings::Column::Version).add(1),
        )
        .col_expr(device_settings::Column::UpdatedAt, Expr::value(now))
        .col_expr(device_settings::Column::ChangedInVersion, Expr::value(version))
        .col_expr(device_settings::Column::UpdatedBy, Expr::value(actor));
    match change {
        SettingChange::SetValue { value, .. } => {
            update = update.col_expr(device_settings::Column::Value, Expr::value(value.clone()));
        }
        SettingChange::Lock { value, reason, .. } => {
            if let Some(value) = value {
                update = update.col_expr(device_settings::Column::Value, Expr::value(value.clone()));
            }
            update = update
                .col_expr(device_settings::Column::IsLocked, Expr::value(true))
                .col_expr(device_settings::Column::LockedBy, Expr::value(actor))
                .col_expr(device_settings::Column::LockedAt, Expr::value(Some(now)))
                .col_expr(
                    device_settings::Column::UnlockedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(device_settings::Column::LockReason, Expr::value(reason.clone()));
        }
        SettingChange::Unlock { .. } => {
            update = update
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
                );
        }
        SettingChange::LiftLockUntil { until, .. } => {
            update = update.col_expr(device_settings::Column::UnlockedUntil, Expr::value(Some(*until)));
        }
    }
    update
        .filter(device_settings::Column::Id.eq(row.id))
        .exec(transaction)
        .await
        .map_err(db)?;
    Ok(())
}

/// Takes the device's settings lock by bumping its version (only from `expected` when given);
/// answers the new version.
pub(crate) async fn bump_version(
    transaction: &DatabaseTransaction,
    device: Uuid,
    expected: Option<i64>,
    now: DateTime<Utc>,
) -> Result<i64, RepositoryError> {
    let mut bump = devices::Entity::update_many()
        .col_expr(
            devices::Column::SettingsVersion,
            Expr::col(devices::Column::SettingsVersion).add(1),
        )
        .col_expr(devices::Column::UpdatedAt, Expr::value(now))
        .filter(devices::Column::Id.eq(device));
    if let Some(expected) = expected {
        bump = bump.filter(devices::Column::SettingsVersion.eq(expected));
    }
    if bump.exec(transaction).await.map_err(db)?.rows_affected == 0 {
        let exists = devices::Entity::find_by_id(device)
            .one(transaction)
            .await
            .map_err(db)?;
        return Err(match exists {
            Some(_) => RepositoryError::VersionConflict,
            None => RepositoryError::NotFound,
        });
    }
    devices::Entity::find_by_id(device)
        .select_only()
        .column(devices::Column::SettingsVersion)
        .into_tuple::<i64>()
        .one(transaction)
        .await
        .map_err(db)?
        .ok_or(RepositoryError::NotFound)
}
