//! The fleet stores: enrollment and device tokens, fleet devices and groups, device commands,
//! policy application and bulk import, one module each; the helpers they share are here. Decisions that can race start their transaction with the write that claims
//! the rows they decide on (a conditional or no-op UPDATE of the token, device, policy, groups
//! or organization), so SQLite takes its write lock first and PostgreSQL holds the rows until
//! commit; an adoption is decided by its conditional UPDATE itself.

mod commands;
mod enrollment;
mod fleet_devices;
mod import;
mod policy_application;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::Value;
use steward_domain::fleet::{
    Assignment, CommandStatus, DeviceCommand, DeviceStatus, DeviceTokenGrant, EnrolledDevice, Enrollment,
    EnrollmentRefusal, EnrollmentToken, FleetDevice, FleetGroup, FleetQuery, FleetRuleError, FleetSort,
    FleetStoreError, ImportCounts, NewDeviceToken, OnDuplicate, PolicyTargets, ResolvedDeviceImport,
    may_acknowledge, next_status,
};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::{insert_audit_entries, insert_audit_entry};
use crate::database::Database;
use crate::entities::{
    device_commands, device_policies, device_tokens, devices, enrollment_tokens, group_memberships, groups,
    org_users,
};
use crate::error::db_err_to_repository as db;
use crate::settings::enqueue;

/// Rows per multi-row statement: far below SQLite's and PostgreSQL's bind-parameter limits.
pub(crate) const CHUNK: usize = 400;

fn token_record(model: enrollment_tokens::Model) -> EnrollmentToken {
    EnrollmentToken {
        id: model.id,
        organization_id: model.organization_id,
        name: model.name,
        prefix: model.token_prefix,
        policy_id: model.policy_id,
        group_id: model.group_id,
        max_uses: model.max_uses,
        use_count: model.use_count,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
        created_by: model.created_by,
        created_at: model.created_at,
        note: model.note,
        additional_data: model.additional_data,
    }
}

fn fleet_device(model: devices::Model) -> FleetDevice {
    FleetDevice {
        id: model.id,
        identifier: model.device_identifier,
        display_name: model.display_name,
        platform: model.platform,
        os_version: model.os_version,
        app_version: model.app_version,
        serial_number: model.serial_number,
        manufacturer: model.manufacturer,
        model: model.model,
        status: DeviceStatus::parse(&model.status).unwrap_or(DeviceStatus::Active),
        enrollment_status: model.enrollment_status,
        policy_id: model.policy_id,
        group_id: model.fleet_group_id,
        assigned_user_id: model.assigned_user_id,
        owner_user_id: model.owner_user_id,
        last_seen_at: model.last_seen_at,
        enrolled_at: model.enrolled_at,
        settings_version: model.settings_version,
        applied_version: model.applied_settings_version,
    }
}

fn command_record(model: device_commands::Model) -> DeviceCommand {
    DeviceCommand {
        id: model.id,
        device_id: model.device_id,
        organization_id: model.organization_id,
        command: model.command,
        status: CommandStatus::parse(&model.status).unwrap_or(CommandStatus::Expired),
        payload: model.payload,
        created_by: model.created_by,
        created_at: model.created_at,
        expires_at: model.expires_at,
        delivered_at: model.delivered_at,
        acknowledged_at: model.acknowledged_at,
        result: model.result,
    }
}

fn managed_in(organization: Uuid) -> Condition {
    Condition::all()
        .add(devices::Column::OrganizationId.eq(organization))
        .add(devices::Column::IsManaged.eq(true))
}

/// Bumps the settings version of `ids` (so polls see a new ETag) and queues each a push.
pub(crate) async fn touch_devices<C: ConnectionTrait>(
    connection: &C,
    ids: &[Uuid],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    for chunk in ids.chunks(CHUNK) {
        devices::Entity::update_many()
            .col_expr(
                devices::Column::SettingsVersion,
                Expr::col(devices::Column::SettingsVersion).add(1),
            )
            .col_expr(devices::Column::UpdatedAt, Expr::value(now))
            .filter(devices::Column::Id.is_in(chunk.iter().copied()))
            .exec(connection)
            .await
            .map_err(db)?;
    }
    for id in ids {
        enqueue(connection, *id, reason, now).await?;
    }
    Ok(())
}

/// The organization's managed devices a change of `policy` reaches.
pub(crate) async fn policy_device_ids<C: ConnectionTrait>(
    connection: &C,
    organization: Uuid,
    policy: Uuid,
    organization_wide: bool,
) -> Result<Vec<Uuid>, RepositoryError> {
    let mut reach = Condition::any();
    if organization_wide {
        reach = reach.add(devices::Column::OrganizationId.eq(organization));
    } else {
        let groups: Vec<Uuid> = groups::Entity::find()
            .select_only()
            .column(groups::Column::Id)
            .filter(groups::Column::OrganizationId.eq(organization))
            .filter(groups::Column::PolicyId.eq(policy))
            .into_tuple()
            .all(connection)
            .await
            .map_err(db)?;
        reach = reach.add(devices::Column::PolicyId.eq(policy));
        if !groups.is_empty() {
            reach = reach.add(devices::Column::FleetGroupId.is_in(groups));
        }
    }
    devices::Entity::find()
        .select_only()
        .column(devices::Column::Id)
        .filter(managed_in(organization))
        .filter(reach)
        .into_tuple()
        .all(connection)
        .await
        .map_err(db)
}

/// Claims a managed device of the organization for a change (bumping its versions);
/// `NotFound` when it is not one.
async fn claim_device(
    transaction: &DatabaseTransaction,
    organization: Uuid,
    device: Uuid,
    now: DateTime<Utc>,
) -> Result<devices::Model, FleetStoreError> {
    let claimed = devices::Entity::update_many()
        .col_expr(
            devices::Column::Version,
            Expr::col(devices::Column::Version).add(1),
        )
        .col_expr(
            devices::Column::SettingsVersion,
            Expr::col(devices::Column::SettingsVersion).add(1),
        )
        .col_expr(devices::Column::UpdatedAt, Expr::value(now))
        .filter(devices::Column::Id.eq(device))
        .filter(managed_in(organization))
        .exec(transaction)
        .await
        .map_err(db)?;
    if claimed.rows_affected == 0 {
        return Err(FleetRuleError::NotFound.into());
    }
    Ok(devices::Entity::find_by_id(device)
        .one(transaction)
        .await
        .map_err(db)?
        .ok_or(RepositoryError::NotFound)?)
}

async fn policy_is_the_orgs<C: ConnectionTrait>(
    connection: &C,
    organization: Uuid,
    policy: Uuid,
) -> Result<bool, RepositoryError> {
    Ok(device_policies::Entity::find()
        .filter(device_policies::Column::Id.eq(policy))
        .filter(device_policies::Column::OrganizationId.eq(organization))
        .count(connection)
        .await
        .map_err(db)?
        > 0)
}

async fn group_is_the_orgs<C: ConnectionTrait>(
    connection: &C,
    organization: Uuid,
    group: Uuid,
) -> Result<bool, RepositoryError> {
    Ok(groups::Entity::find()
        .filter(groups::Column::Id.eq(group))
        .filter(groups::Column::OrganizationId.eq(organization))
        .filter(groups::Column::DeletedAt.is_null())
        .count(connection)
        .await
        .map_err(db)?
        > 0)
}

async fn user_is_the_orgs<C: ConnectionTrait>(
    connection: &C,
    organization: Uuid,
    user: Uuid,
) -> Result<bool, RepositoryError> {
    Ok(org_users::Entity::find()
        .filter(org_users::Column::UserId.eq(user))
        .filter(org_users::Column::OrganizationId.eq(organization))
        .count(connection)
        .await
        .map_err(db)?
        > 0)
}

/// Retires `members` of `organization` inside `transaction` (its deletion): the same end
/// state as retiring each by hand, in a few statements.
pub(crate) async fn retire_devices(
    transaction: &DatabaseTransaction,
    organization: Uuid,
    members: &[devices::Model],
    now: DateTime<Utc>,
    audit: &AuditEntry,
) -> Result<(), RepositoryError> {
    let ids: Vec<Uuid> = members.iter().map(|device| device.id).collect();
    for chunk in ids.chunks(500) {
        devices::Entity::update_many()
            .col_expr(devices::Column::OrganizationId, Expr::value(Option::<Uuid>::None))
            .col_expr(devices::Column::IsManaged, Expr::value(false))
            .col_expr(devices::Column::EnrollmentStatus, Expr::value("retired"))
            .col_expr(
                devices::Column::Status,
                Expr::value(DeviceStatus::Active.as_str()),
            )
            .col_expr(devices::Column::PolicyId, Expr::value(Option::<Uuid>::None))
            .col_expr(devices::Column::FleetGroupId, Expr::value(Option::<Uuid>::None))
            .col_expr(devices::Column::AssignedUserId, Expr::value(Option::<Uuid>::None))
            .col_expr(
                devices::Column::Version,
                Expr::col(devices::Column::Version).add(1),
            )
            .col_expr(
                devices::Column::SettingsVersion,
                Expr::col(devices::Column::SettingsVersion).add(1),
            )
            .col_expr(devices::Column::UpdatedAt, Expr::value(now))
            .filter(devices::Column::Id.is_in(chunk.iter().copied()))
            .exec(transaction)
            .await
            .map_err(db)?;
        device_tokens::Entity::update_many()
            .col_expr(device_tokens::Column::RevokedAt, Expr::value(Some(now)))
            .filter(device_tokens::Column::DeviceId.is_in(chunk.iter().copied()))
            .filter(device_tokens::Column::RevokedAt.is_null())
            .exec(transaction)
            .await
            .map_err(db)?;
        device_commands::Entity::update_many()
            .col_expr(
                device_commands::Column::Status,
                Expr::value(CommandStatus::Expired.as_str()),
            )
            .filter(device_commands::Column::DeviceId.is_in(chunk.iter().copied()))
            .filter(
                device_commands::Column::Status
                    .is_in([CommandStatus::Pending.as_str(), CommandStatus::Delivered.as_str()]),
            )
            .exec(transaction)
            .await
            .map_err(db)?;
    }
    let entries = members
        .iter()
        .map(|device| {
            audit
                .another()
                .resource_id(device.id)
                .organization(organization)
                .change(
                    Some(serde_json::json!({
                        "organizationId": organization,
                        "policyId": device.policy_id,
                        "groupId": device.fleet_group_id,
                        "status": device.status,
                    })),
                    Some(serde_json::json!({"enrollmentStatus": "retired"})),
                )
        })
        .collect();
    insert_audit_entries(transaction, entries).await?;
    for id in ids {
        enqueue(transaction, id, "retired", now).await?;
    }
    Ok(())
}

pub(crate) fn insert_token(
    device: Uuid,
    token: &NewDeviceToken,
    enrollment: Option<Uuid>,
    now: DateTime<Utc>,
) -> device_tokens::ActiveModel {
    device_tokens::ActiveModel {
        id: Set(token.id),
        device_id: Set(device),
        token_prefix: Set(token.prefix.clone()),
        token_hash: Set(token.hash.clone()),
        enrollment_token_id: Set(enrollment),
        expires_at: Set(token.expires_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
        created_at: Set(now),
    }
}

pub(crate) async fn revoke_device_tokens<C: ConnectionTrait>(
    connection: &C,
    device: Uuid,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    device_tokens::Entity::update_many()
        .col_expr(device_tokens::Column::RevokedAt, Expr::value(Some(now)))
        .filter(device_tokens::Column::DeviceId.eq(device))
        .filter(device_tokens::Column::RevokedAt.is_null())
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn new_device_row(
    id: Uuid,
    organization: Uuid,
    identifier: &str,
    display_name: &str,
    platform: Option<String>,
    hardware: &steward_domain::fleet::Hardware,
    policy: Option<Uuid>,
    group: Option<Uuid>,
    assigned: Option<Uuid>,
    enrollment_status: &str,
    now: DateTime<Utc>,
) -> devices::ActiveModel {
    devices::ActiveModel {
        id: Set(id),
        device_identifier: Set(identifier.to_owned()),
        display_name: Set(display_name.to_owned()),
        platform: Set(platform),
        os_version: Set(None),
        app_version: Set(None),
        push_token: Set(None),
        owner_user_id: Set(None),
        organization_id: Set(Some(organization)),
        policy_id: Set(policy),
        is_managed: Set(true),
        enrollment_status: Set(enrollment_status.to_owned()),
        group_id: Set(None),
        status: Set(DeviceStatus::Active.as_str().to_owned()),
        last_seen_at: Set(None),
        settings_version: Set(1),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        applied_settings_version: Set(None),
        applied_at: Set(None),
        apply_failures: Set(None),
        fleet_group_id: Set(group),
        assigned_user_id: Set(assigned),
        serial_number: Set(hardware.serial_number.clone()),
        manufacturer: Set(hardware.manufacturer.clone()),
        model: Set(hardware.model.clone()),
        enrolled_at: Set(None),
    }
}

/// The update both enrollment and import make to an existing device: its name, the
/// organization, managed, both versions bumped, and each fact that is given.
fn managed_device_update(
    organization: Uuid,
    display_name: &str,
    facts: &[(devices::Column, &Option<String>)],
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<devices::Entity> {
    let mut update = devices::Entity::update_many()
        .col_expr(devices::Column::DisplayName, Expr::value(display_name.to_owned()))
        .col_expr(devices::Column::OrganizationId, Expr::value(Some(organization)))
        .col_expr(devices::Column::IsManaged, Expr::value(true))
        .col_expr(devices::Column::UpdatedAt, Expr::value(now))
        .col_expr(
            devices::Column::Version,
            Expr::col(devices::Column::Version).add(1),
        )
        .col_expr(
            devices::Column::SettingsVersion,
            Expr::col(devices::Column::SettingsVersion).add(1),
        );
    for (column, value) in facts {
        if let Some(value) = value {
            update = update.col_expr(*column, Expr::value(value.clone()));
        }
    }
    update
}

/// `%text%` in lower case with `%`, `_` and the escape character `!` taken literally.
pub(crate) fn search_pattern(text: &str) -> LikeExpr {
    let mut pattern = String::from("%");
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    LikeExpr::new(pattern).escape('!')
}
