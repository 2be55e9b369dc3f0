//! Enrollment, device tokens, fleet queries and actions, device commands, policy application
//! and bulk import. Decisions that can race start their transaction with the write that claims
//! the rows they decide on (a conditional or no-op UPDATE of the token, device, policy, groups
//! or organization), so SQLite takes its write lock first and PostgreSQL holds the rows until
//! commit; an adoption is decided by its conditional UPDATE itself.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait, ExprTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::Value;
use steward_domain::fleet::{
    Assignment, CommandStatus, DeviceCommand, DeviceStatus, DeviceTokenGrant, EnrolledDevice, Enrollment,
    EnrollmentRefusal, EnrollmentToken, FleetDevice, FleetGroup, FleetQuery, FleetRuleError, FleetSort,
    FleetStore, FleetStoreError, ImportCounts, NewDeviceToken, OnDuplicate, PolicyTargets,
    ResolvedDeviceImport, ResolvedUserImport, may_acknowledge, next_status,
};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::{insert_audit_entries, insert_audit_entry};
use crate::database::Database;
use crate::entities::{
    device_commands, device_policies, device_tokens, devices, enrollment_tokens, group_memberships, groups,
    org_users, users,
};
use crate::error::db_err_to_repository as db;
use crate::settings::enqueue;

/// Rows per multi-row statement: far below SQLite's and PostgreSQL's bind-parameter limits.
const CHUNK: usize = 400;

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
                .clone()
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
fn search_pattern(text: &str) -> LikeExpr {
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

impl FleetStore for Database {
    async fn fleet_groups(&self, organization: Uuid) -> Result<Vec<FleetGroup>, RepositoryError> {
        Ok(groups::Entity::find()
            .filter(groups::Column::OrganizationId.eq(organization))
            .filter(groups::Column::DeletedAt.is_null())
            .order_by_asc(groups::Column::Name)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|group| FleetGroup {
                id: group.id,
                organization_id: organization,
                name: group.name,
                description: group.description,
                policy_id: group.policy_id,
                created_at: group.created_at,
            })
            .collect())
    }

    async fn create_fleet_group(
        &self,
        group: &FleetGroup,
        creator: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        if let Some(policy) = group.policy_id
            && !policy_is_the_orgs(&transaction, group.organization_id, policy).await?
        {
            return Err(RepositoryError::NotFound);
        }
        groups::Entity::insert(groups::ActiveModel {
            id: Set(group.id),
            name: Set(group.name.clone()),
            description: Set(group.description.clone()),
            organization_id: Set(Some(group.organization_id)),
            created_by: Set(Some(creator)),
            settings: Set(None),
            version: Set(1),
            created_at: Set(group.created_at),
            updated_at: Set(group.created_at),
            deleted_at: Set(None),
            archived_at: Set(None),
            policy_id: Set(group.policy_id),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        group_memberships::Entity::insert(group_memberships::ActiveModel {
            id: Set(Uuid::now_v7()),
            group_id: Set(group.id),
            user_id: Set(creator),
            role: Set("owner".to_owned()),
            invited_by: Set(None),
            joined_at: Set(group.created_at),
            updated_at: Set(group.created_at),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn create_enrollment_token(
        &self,
        token: &EnrollmentToken,
        hash: &str,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        enrollment_tokens::Entity::insert(enrollment_tokens::ActiveModel {
            id: Set(token.id),
            organization_id: Set(token.organization_id),
            name: Set(token.name.clone()),
            token_prefix: Set(token.prefix.clone()),
            token_hash: Set(hash.to_owned()),
            policy_id: Set(token.policy_id),
            group_id: Set(token.group_id),
            max_uses: Set(token.max_uses),
            use_count: Set(0),
            expires_at: Set(token.expires_at),
            revoked_at: Set(None),
            created_by: Set(token.created_by),
            created_at: Set(token.created_at),
            note: Set(token.note.clone()),
            additional_data: Set(token.additional_data.clone()),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn enrollment_tokens(&self, organization: Uuid) -> Result<Vec<EnrollmentToken>, RepositoryError> {
        Ok(enrollment_tokens::Entity::find()
            .filter(enrollment_tokens::Column::OrganizationId.eq(organization))
            .order_by_desc(enrollment_tokens::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(token_record)
            .collect())
    }

    async fn find_enrollment_token(
        &self,
        organization: Uuid,
        id: Uuid,
    ) -> Result<Option<EnrollmentToken>, RepositoryError> {
        Ok(enrollment_tokens::Entity::find_by_id(id)
            .filter(enrollment_tokens::Column::OrganizationId.eq(organization))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(token_record))
    }

    async fn revoke_enrollment_token(
        &self,
        organization: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let revoked = enrollment_tokens::Entity::update_many()
            .col_expr(enrollment_tokens::Column::RevokedAt, Expr::value(Some(now)))
            .filter(enrollment_tokens::Column::Id.eq(id))
            .filter(enrollment_tokens::Column::OrganizationId.eq(organization))
            .filter(enrollment_tokens::Column::RevokedAt.is_null())
            .exec(&transaction)
            .await
            .map_err(db)?;
        if revoked.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn enroll(
        &self,
        token_hash: &str,
        enrollment: &Enrollment,
        device_token: &NewDeviceToken,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Result<EnrolledDevice, EnrollmentRefusal>, FleetStoreError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        // Taking the use is the first write: of racing enrollments, exactly as many as the
        // token has uses left get a row back.
        let taken = enrollment_tokens::Entity::update_many()
            .col_expr(
                enrollment_tokens::Column::UseCount,
                Expr::col(enrollment_tokens::Column::UseCount).add(1),
            )
            .filter(enrollment_tokens::Column::TokenHash.eq(token_hash))
            .filter(enrollment_tokens::Column::RevokedAt.is_null())
            .filter(
                Condition::any()
                    .add(enrollment_tokens::Column::ExpiresAt.is_null())
                    .add(enrollment_tokens::Column::ExpiresAt.gt(now)),
            )
            .filter(
                Condition::any()
                    .add(enrollment_tokens::Column::MaxUses.is_null())
                    .add(
                        Expr::col(enrollment_tokens::Column::UseCount)
                            .lt(Expr::col(enrollment_tokens::Column::MaxUses)),
                    ),
            )
            .exec(&transaction)
            .await
            .map_err(db)?;
        let token = enrollment_tokens::Entity::find()
            .filter(enrollment_tokens::Column::TokenHash.eq(token_hash))
            .one(&transaction)
            .await
            .map_err(db)?
            .map(token_record);
        let token = match (taken.rows_affected, token) {
            (1, Some(token)) => token,
            (_, token) => {
                transaction.rollback().await.map_err(db)?;
                let refusal = token
                    .and_then(|token| token.refusal(now))
                    .unwrap_or(EnrollmentRefusal::Unknown);
                return Ok(Err(refusal));
            }
        };
        let organization = token.organization_id;
        let device = &enrollment.device;
        let existing = devices::Entity::find()
            .filter(devices::Column::DeviceIdentifier.eq(device.identifier.clone()))
            .one(&transaction)
            .await
            .map_err(db)?;
        let (device_id, adopted) = match existing {
            Some(found) => {
                let hardware = &enrollment.hardware;
                let update = managed_device_update(
                    organization,
                    &device.display_name,
                    &[
                        (devices::Column::Platform, &device.platform),
                        (devices::Column::OsVersion, &device.os_version),
                        (devices::Column::AppVersion, &device.app_version),
                        (devices::Column::PushToken, &device.push_token),
                        (devices::Column::SerialNumber, &hardware.serial_number),
                        (devices::Column::Manufacturer, &hardware.manufacturer),
                        (devices::Column::Model, &hardware.model),
                    ],
                    now,
                )
                .col_expr(devices::Column::EnrollmentStatus, Expr::value("enrolled"))
                .col_expr(devices::Column::PolicyId, Expr::value(token.policy_id))
                .col_expr(devices::Column::FleetGroupId, Expr::value(token.group_id))
                .col_expr(devices::Column::EnrolledAt, Expr::value(Some(now)))
                .col_expr(devices::Column::LastSeenAt, Expr::value(Some(now)));
                // Adopt only a device no other organization manages, decided by the write
                // itself so a concurrent enrollment elsewhere cannot be overwritten. A
                // suspended device stays suspended.
                let adopted = update
                    .filter(devices::Column::Id.eq(found.id))
                    .filter(
                        Condition::any()
                            .add(devices::Column::IsManaged.eq(false))
                            .add(devices::Column::OrganizationId.eq(organization)),
                    )
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                if adopted.rows_affected == 0 {
                    return Err(FleetRuleError::Conflict(
                        "this device is managed by another organization; it must be retired there first",
                    )
                    .into());
                }
                (found.id, true)
            }
            None => {
                let id = Uuid::now_v7();
                let mut row = new_device_row(
                    id,
                    organization,
                    &device.identifier,
                    &device.display_name,
                    device.platform.clone(),
                    &enrollment.hardware,
                    token.policy_id,
                    token.group_id,
                    None,
                    "enrolled",
                    now,
                );
                row.os_version = Set(device.os_version.clone());
                row.app_version = Set(device.app_version.clone());
                row.push_token = Set(device.push_token.clone());
                row.enrolled_at = Set(Some(now));
                row.last_seen_at = Set(Some(now));
                devices::Entity::insert(row)
                    .exec_without_returning(&transaction)
                    .await
                    .map_err(|error| match db(error) {
                        RepositoryError::Conflict(_) => FleetStoreError::Rule(FleetRuleError::Conflict(
                            "the device enrolled concurrently; retry",
                        )),
                        other => other.into(),
                    })?;
                (id, false)
            }
        };
        revoke_device_tokens(&transaction, device_id, now).await?;
        device_tokens::Entity::insert(insert_token(device_id, device_token, Some(token.id), now))
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        let entry = audit
            .clone()
            .resource_id(device_id)
            .organization(organization)
            .change(
                None,
                Some(serde_json::json!({
                    "enrollmentTokenId": token.id,
                    "identifier": device.identifier,
                    "adopted": adopted,
                    "policyId": token.policy_id,
                    "groupId": token.group_id,
                })),
            );
        insert_audit_entry(&transaction, &entry).await?;
        transaction.commit().await.map_err(db)?;
        Ok(Ok(EnrolledDevice {
            device_id,
            organization_id: organization,
            adopted,
            additional_data: token.additional_data,
        }))
    }

    async fn device_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DeviceTokenGrant>, RepositoryError> {
        let found = device_tokens::Entity::find()
            .filter(device_tokens::Column::TokenHash.eq(hash))
            .filter(device_tokens::Column::RevokedAt.is_null())
            .filter(device_tokens::Column::ExpiresAt.gt(now))
            .one(self.connection())
            .await
            .map_err(db)?;
        Ok(found.map(|token| DeviceTokenGrant {
            token_id: token.id,
            device_id: token.device_id,
            expires_at: token.expires_at,
        }))
    }

    async fn refresh_device_token(
        &self,
        old_hash: &str,
        new: &NewDeviceToken,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<Uuid>, RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let revoked = device_tokens::Entity::update_many()
            .col_expr(device_tokens::Column::RevokedAt, Expr::value(Some(now)))
            .filter(device_tokens::Column::TokenHash.eq(old_hash))
            .filter(device_tokens::Column::RevokedAt.is_null())
            .filter(device_tokens::Column::ExpiresAt.gt(now))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if revoked.rows_affected == 0 {
            transaction.rollback().await.map_err(db)?;
            return Ok(None);
        }
        let old = device_tokens::Entity::find()
            .filter(device_tokens::Column::TokenHash.eq(old_hash))
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        device_tokens::Entity::insert(insert_token(old.device_id, new, old.enrollment_token_id, now))
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        insert_audit_entry(&transaction, &audit.clone().resource_id(old.device_id)).await?;
        transaction.commit().await.map_err(db)?;
        Ok(Some(old.device_id))
    }

    async fn device_status(&self, device: Uuid) -> Result<Option<DeviceStatus>, RepositoryError> {
        let status: Option<String> = devices::Entity::find_by_id(device)
            .select_only()
            .column(devices::Column::Status)
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(db)?;
        Ok(status.map(|s| DeviceStatus::parse(&s).unwrap_or(DeviceStatus::Active)))
    }

    async fn fleet_devices(
        &self,
        organization: Uuid,
        query: &FleetQuery,
    ) -> Result<(Vec<FleetDevice>, u64), RepositoryError> {
        let mut select = devices::Entity::find().filter(managed_in(organization));
        if let Some(status) = query.status {
            select = select.filter(devices::Column::Status.eq(status.as_str()));
        }
        if let Some(policy) = query.policy_id {
            select = select.filter(devices::Column::PolicyId.eq(policy));
        }
        if let Some(group) = query.group_id {
            select = select.filter(devices::Column::FleetGroupId.eq(group));
        }
        if let Some(platform) = &query.platform {
            select = select.filter(devices::Column::Platform.eq(platform.to_lowercase()));
        }
        if let Some(user) = query.assigned_user_id {
            select = select.filter(devices::Column::AssignedUserId.eq(user));
        }
        if let Some(before) = query.last_seen_before {
            select = select.filter(devices::Column::LastSeenAt.lt(before));
        }
        if let Some(after) = query.last_seen_after {
            select = select.filter(devices::Column::LastSeenAt.gt(after));
        }
        if let Some(text) = query.search.as_deref().filter(|t| !t.trim().is_empty()) {
            let pattern = search_pattern(text.trim());
            let lower = |column: devices::Column| Expr::expr(Func::lower(Expr::col(column)));
            select = select.filter(
                Condition::any()
                    .add(lower(devices::Column::DisplayName).like(pattern.clone()))
                    .add(lower(devices::Column::SerialNumber).like(pattern.clone()))
                    .add(lower(devices::Column::DeviceIdentifier).like(pattern)),
            );
        }
        let total = select.clone().count(self.connection()).await.map_err(db)?;
        let column = match query.sort {
            FleetSort::Name => devices::Column::DisplayName,
            FleetSort::LastSeen => devices::Column::LastSeenAt,
            FleetSort::EnrolledAt => devices::Column::EnrolledAt,
            FleetSort::Status => devices::Column::Status,
            FleetSort::Platform => devices::Column::Platform,
        };
        select = if query.descending {
            select.order_by_desc(column).order_by_desc(devices::Column::Id)
        } else {
            select.order_by_asc(column).order_by_asc(devices::Column::Id)
        };
        let page = select
            .offset(query.offset)
            .limit(query.limit)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(fleet_device)
            .collect();
        Ok((page, total))
    }

    async fn find_fleet_device(
        &self,
        organization: Uuid,
        device: Uuid,
    ) -> Result<Option<FleetDevice>, RepositoryError> {
        Ok(devices::Entity::find_by_id(device)
            .filter(managed_in(organization))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(fleet_device))
    }

    async fn fleet_devices_in_groups(
        &self,
        organization: Uuid,
        groups: &[Uuid],
    ) -> Result<Vec<Uuid>, RepositoryError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        devices::Entity::find()
            .select_only()
            .column(devices::Column::Id)
            .filter(managed_in(organization))
            .filter(devices::Column::FleetGroupId.is_in(groups.iter().copied()))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)
    }

    async fn assign_device(
        &self,
        organization: Uuid,
        device: Uuid,
        assignment: &Assignment,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), FleetStoreError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let before = claim_device(&transaction, organization, device, now).await?;
        if let Some(Some(policy)) = assignment.policy_id
            && !policy_is_the_orgs(&transaction, organization, policy).await?
        {
            return Err(FleetRuleError::Invalid {
                field: "policyId",
                message: "no such policy in this organization",
            }
            .into());
        }
        if let Some(Some(group)) = assignment.group_id
            && !group_is_the_orgs(&transaction, organization, group).await?
        {
            return Err(FleetRuleError::Invalid {
                field: "groupId",
                message: "no such group in this organization",
            }
            .into());
        }
        if let Some(Some(user)) = assignment.assigned_user_id
            && !user_is_the_orgs(&transaction, organization, user).await?
        {
            return Err(FleetRuleError::Invalid {
                field: "userId",
                message: "the user is not a member of this organization",
            }
            .into());
        }
        let mut update = devices::Entity::update_many().filter(devices::Column::Id.eq(device));
        if let Some(policy) = assignment.policy_id {
            update = update.col_expr(devices::Column::PolicyId, Expr::value(policy));
        }
        if let Some(group) = assignment.group_id {
            update = update.col_expr(devices::Column::FleetGroupId, Expr::value(group));
        }
        if let Some(user) = assignment.assigned_user_id {
            update = update.col_expr(devices::Column::AssignedUserId, Expr::value(user));
        }
        update.exec(&transaction).await.map_err(db)?;
        let entry = audit
            .clone()
            .resource_id(device)
            .organization(organization)
            .change(
                Some(serde_json::json!({
                    "policyId": before.policy_id,
                    "groupId": before.fleet_group_id,
                    "userId": before.assigned_user_id,
                })),
                Some(serde_json::json!({
                    "policyId": assignment.policy_id.unwrap_or(before.policy_id),
                    "groupId": assignment.group_id.unwrap_or(before.fleet_group_id),
                    "userId": assignment.assigned_user_id.unwrap_or(before.assigned_user_id),
                })),
            );
        insert_audit_entry(&transaction, &entry).await?;
        enqueue(&transaction, device, "assigned", now).await?;
        transaction.commit().await.map_err(db)?;
        Ok(())
    }

    async fn set_device_suspended(
        &self,
        organization: Uuid,
        device: Uuid,
        suspend: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DeviceStatus, FleetStoreError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let current = claim_device(&transaction, organization, device, now).await?;
        let status = next_status(
            DeviceStatus::parse(&current.status).unwrap_or(DeviceStatus::Active),
            suspend,
        )?;
        devices::Entity::update_many()
            .col_expr(devices::Column::Status, Expr::value(status.as_str()))
            .filter(devices::Column::Id.eq(device))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let entry = audit
            .clone()
            .resource_id(device)
            .organization(organization)
            .change(
                Some(serde_json::json!({"status": current.status})),
                Some(serde_json::json!({"status": status.as_str()})),
            );
        insert_audit_entry(&transaction, &entry).await?;
        enqueue(
            &transaction,
            device,
            if suspend { "suspended" } else { "resumed" },
            now,
        )
        .await?;
        transaction.commit().await.map_err(db)?;
        Ok(status)
    }

    async fn retire_device(
        &self,
        organization: Uuid,
        device: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), FleetStoreError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        // The claim decides against a concurrent retirement or adoption; then the same end
        // state as an organization's deletion gives each of its devices.
        let before = claim_device(&transaction, organization, device, now).await?;
        retire_devices(&transaction, organization, &[before], now, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(())
    }

    async fn create_command(
        &self,
        command: &DeviceCommand,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        // Claim the device as one the organization still manages: a retirement either
        // happened before (no command) or waits and expires it.
        if let Some(organization) = command.organization_id {
            let claimed = devices::Entity::update_many()
                .col_expr(
                    devices::Column::Version,
                    Expr::col(devices::Column::Version).add(1),
                )
                .filter(devices::Column::Id.eq(command.device_id))
                .filter(managed_in(organization))
                .exec(&transaction)
                .await
                .map_err(db)?;
            if claimed.rows_affected == 0 {
                return Err(RepositoryError::NotFound);
            }
        }
        device_commands::Entity::insert(device_commands::ActiveModel {
            id: Set(command.id),
            device_id: Set(command.device_id),
            organization_id: Set(command.organization_id),
            command: Set(command.command.clone()),
            status: Set(command.status.as_str().to_owned()),
            payload: Set(command.payload.clone()),
            created_by: Set(command.created_by),
            created_at: Set(command.created_at),
            expires_at: Set(command.expires_at),
            delivered_at: Set(None),
            acknowledged_at: Set(None),
            result: Set(None),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        enqueue(&transaction, command.device_id, "command", command.created_at).await?;
        transaction.commit().await.map_err(db)
    }

    async fn device_commands(&self, device: Uuid) -> Result<Vec<DeviceCommand>, RepositoryError> {
        Ok(device_commands::Entity::find()
            .filter(device_commands::Column::DeviceId.eq(device))
            .order_by_desc(device_commands::Column::CreatedAt)
            .order_by_desc(device_commands::Column::Id)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(command_record)
            .collect())
    }

    async fn deliver_commands(
        &self,
        device: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Vec<DeviceCommand>, RepositoryError> {
        let open = device_commands::Entity::find()
            .filter(device_commands::Column::DeviceId.eq(device))
            .filter(
                device_commands::Column::Status
                    .is_in([CommandStatus::Pending.as_str(), CommandStatus::Delivered.as_str()]),
            )
            .filter(device_commands::Column::ExpiresAt.gt(now))
            .order_by_asc(device_commands::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?;
        let pending: Vec<(Uuid, Option<Uuid>)> = open
            .iter()
            .filter(|command| command.status == CommandStatus::Pending.as_str())
            .map(|command| (command.id, command.organization_id))
            .collect();
        if !pending.is_empty() {
            // Marked delivered and audited together; a concurrent sync delivering the same
            // commands updates nothing and records nothing.
            let transaction = self.connection().begin().await.map_err(db)?;
            let mut entries = Vec::new();
            for (id, organization) in &pending {
                let delivered = device_commands::Entity::update_many()
                    .col_expr(
                        device_commands::Column::Status,
                        Expr::value(CommandStatus::Delivered.as_str()),
                    )
                    .col_expr(device_commands::Column::DeliveredAt, Expr::value(Some(now)))
                    .filter(device_commands::Column::Id.eq(*id))
                    .filter(device_commands::Column::Status.eq(CommandStatus::Pending.as_str()))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                if delivered.rows_affected == 1 {
                    let mut entry = audit.clone().resource_id(*id).change(
                        None,
                        Some(serde_json::json!({"status": "delivered", "deviceId": device})),
                    );
                    if let Some(organization) = organization {
                        entry = entry.organization(*organization);
                    }
                    entries.push(entry);
                }
            }
            insert_audit_entries(&transaction, entries).await?;
            transaction.commit().await.map_err(db)?;
        }
        Ok(open
            .into_iter()
            .map(|model| {
                let mut command = command_record(model);
                if command.status == CommandStatus::Pending {
                    command.status = CommandStatus::Delivered;
                    command.delivered_at = Some(now);
                }
                command
            })
            .collect())
    }

    async fn acknowledge_command(
        &self,
        device: Uuid,
        command: Uuid,
        result: Option<Value>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DeviceCommand, FleetStoreError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        // Claim the row before deciding, so two acknowledgements cannot both pass.
        let claimed = device_commands::Entity::update_many()
            .col_expr(
                device_commands::Column::Status,
                Expr::col(device_commands::Column::Status),
            )
            .filter(device_commands::Column::Id.eq(command))
            .filter(device_commands::Column::DeviceId.eq(device))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if claimed.rows_affected == 0 {
            return Err(FleetRuleError::NotFound.into());
        }
        let current = device_commands::Entity::find_by_id(command)
            .one(&transaction)
            .await
            .map_err(db)?
            .map(command_record)
            .ok_or(RepositoryError::NotFound)?;
        may_acknowledge(&current, now)?;
        device_commands::Entity::update_many()
            .col_expr(
                device_commands::Column::Status,
                Expr::value(CommandStatus::Acknowledged.as_str()),
            )
            .col_expr(device_commands::Column::AcknowledgedAt, Expr::value(Some(now)))
            .col_expr(
                device_commands::Column::DeliveredAt,
                Expr::value(Some(current.delivered_at.unwrap_or(now))),
            )
            .col_expr(device_commands::Column::Result, Expr::value(result.clone()))
            .filter(device_commands::Column::Id.eq(command))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let mut entry = audit.clone().resource_id(command).change(
            Some(serde_json::json!({"status": current.status.as_str()})),
            Some(serde_json::json!({"status": "acknowledged", "deviceId": device, "result": result})),
        );
        if let Some(organization) = current.organization_id {
            entry = entry.organization(organization);
        }
        insert_audit_entry(&transaction, &entry).await?;
        transaction.commit().await.map_err(db)?;
        Ok(DeviceCommand {
            status: CommandStatus::Acknowledged,
            acknowledged_at: Some(now),
            delivered_at: Some(current.delivered_at.unwrap_or(now)),
            result,
            ..current
        })
    }

    async fn apply_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
        targets: &PolicyTargets,
        apply: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let value = if apply { Some(policy) } else { None };
        // Whether a target's current policy changes: applying changes those without it,
        // unapplying those that carry it.
        let changes = |current: Option<Uuid>| {
            if apply {
                current != Some(policy)
            } else {
                current == Some(policy)
            }
        };
        let touched = match targets {
            PolicyTargets::Devices(ids) => {
                let ids: Vec<Uuid> = ids.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
                let targets = Condition::all()
                    .add(devices::Column::Id.is_in(ids.iter().copied()))
                    .add(managed_in(organization));
                // Claim the targets (a write, so the decision below holds until commit).
                let claimed = devices::Entity::update_many()
                    .col_expr(
                        devices::Column::Version,
                        Expr::col(devices::Column::Version).add(1),
                    )
                    .filter(targets.clone())
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                if claimed.rows_affected != ids.len() as u64 {
                    return Err(RepositoryError::NotFound);
                }
                let carried: Vec<(Uuid, Option<Uuid>)> = devices::Entity::find()
                    .select_only()
                    .column(devices::Column::Id)
                    .column(devices::Column::PolicyId)
                    .filter(targets)
                    .into_tuple()
                    .all(&transaction)
                    .await
                    .map_err(db)?;
                let changed: Vec<Uuid> = carried
                    .into_iter()
                    .filter(|(_, current)| changes(*current))
                    .map(|(id, _)| id)
                    .collect();
                if !changed.is_empty() {
                    devices::Entity::update_many()
                        .col_expr(devices::Column::PolicyId, Expr::value(value))
                        .filter(devices::Column::Id.is_in(changed.iter().copied()))
                        .exec(&transaction)
                        .await
                        .map_err(db)?;
                }
                changed
            }
            PolicyTargets::Groups(ids) => {
                let ids: Vec<Uuid> = ids.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
                let targets = Condition::all()
                    .add(groups::Column::Id.is_in(ids.iter().copied()))
                    .add(groups::Column::OrganizationId.eq(organization))
                    .add(groups::Column::DeletedAt.is_null());
                let claimed = groups::Entity::update_many()
                    .col_expr(groups::Column::Version, Expr::col(groups::Column::Version).add(1))
                    .filter(targets.clone())
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                if claimed.rows_affected != ids.len() as u64 {
                    return Err(RepositoryError::NotFound);
                }
                let carried: Vec<(Uuid, Option<Uuid>)> = groups::Entity::find()
                    .select_only()
                    .column(groups::Column::Id)
                    .column(groups::Column::PolicyId)
                    .filter(targets)
                    .into_tuple()
                    .all(&transaction)
                    .await
                    .map_err(db)?;
                let changed: Vec<Uuid> = carried
                    .into_iter()
                    .filter(|(_, current)| changes(*current))
                    .map(|(id, _)| id)
                    .collect();
                if changed.is_empty() {
                    Vec::new()
                } else {
                    groups::Entity::update_many()
                        .col_expr(groups::Column::PolicyId, Expr::value(value))
                        .filter(groups::Column::Id.is_in(changed.iter().copied()))
                        .exec(&transaction)
                        .await
                        .map_err(db)?;
                    devices::Entity::find()
                        .select_only()
                        .column(devices::Column::Id)
                        .filter(managed_in(organization))
                        .filter(devices::Column::FleetGroupId.is_in(changed))
                        .into_tuple()
                        .all(&transaction)
                        .await
                        .map_err(db)?
                }
            }
        };
        touch_devices(&transaction, &touched, "policy_changed", now).await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(touched)
    }

    async fn user_ids_by_email(&self, emails: &[String]) -> Result<BTreeMap<String, Uuid>, RepositoryError> {
        let mut found = BTreeMap::new();
        for chunk in emails.chunks(CHUNK) {
            let rows: Vec<(String, Uuid)> = users::Entity::find()
                .select_only()
                .column(users::Column::Email)
                .column(users::Column::Id)
                .filter(users::Column::Email.is_in(chunk.iter().cloned()))
                .filter(users::Column::DeletedAt.is_null())
                .into_tuple()
                .all(self.connection())
                .await
                .map_err(db)?;
            found.extend(rows);
        }
        Ok(found)
    }

    async fn import_org_users<A>(
        &self,
        organization: Uuid,
        rows: &[ResolvedUserImport],
        on_duplicate: OnDuplicate,
        now: DateTime<Utc>,
        audit: A,
    ) -> Result<ImportCounts, RepositoryError>
    where
        A: Fn(&ResolvedUserImport, bool) -> AuditEntry + Send + Sync,
    {
        let transaction = self.connection().begin().await.map_err(db)?;
        crate::organizations::claim_organization(&transaction, organization).await?;
        let current: BTreeMap<Uuid, String> = org_users::Entity::find()
            .select_only()
            .column(org_users::Column::UserId)
            .column(org_users::Column::Role)
            .filter(org_users::Column::OrganizationId.eq(organization))
            .into_tuple::<(Uuid, String)>()
            .all(&transaction)
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        let mut counts = ImportCounts::default();
        let mut inserts = Vec::new();
        let mut entries = Vec::new();
        for resolved in rows {
            let role = resolved.row.role.as_str();
            match current.get(&resolved.user_id) {
                None => {
                    inserts.push(org_users::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        organization_id: Set(organization),
                        user_id: Set(resolved.user_id),
                        role: Set(role.to_owned()),
                        permissions: Set(None),
                        created_at: Set(now),
                        updated_at: Set(now),
                    });
                    counts.created += 1;
                    entries.push(audit(resolved, true));
                }
                Some(existing)
                    if on_duplicate == OnDuplicate::Skip || existing == "owner" || existing == role =>
                {
                    counts.skipped += 1;
                }
                Some(_) => {
                    org_users::Entity::update_many()
                        .col_expr(org_users::Column::Role, Expr::value(role))
                        .col_expr(org_users::Column::UpdatedAt, Expr::value(now))
                        .filter(org_users::Column::OrganizationId.eq(organization))
                        .filter(org_users::Column::UserId.eq(resolved.user_id))
                        .exec(&transaction)
                        .await
                        .map_err(db)?;
                    counts.updated += 1;
                    entries.push(audit(resolved, false));
                }
            }
        }
        for chunk in inserts.chunks(500) {
            org_users::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
        }
        insert_audit_entries(&transaction, entries).await?;
        transaction.commit().await.map_err(db)?;
        Ok(counts)
    }

    async fn existing_devices(
        &self,
        identifiers: &[String],
    ) -> Result<BTreeMap<String, Option<Uuid>>, RepositoryError> {
        let mut found = BTreeMap::new();
        for chunk in identifiers.chunks(CHUNK) {
            let rows: Vec<(String, Option<Uuid>)> = devices::Entity::find()
                .select_only()
                .column(devices::Column::DeviceIdentifier)
                .column(devices::Column::OrganizationId)
                .filter(devices::Column::DeviceIdentifier.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(self.connection())
                .await
                .map_err(db)?;
            found.extend(rows);
        }
        Ok(found)
    }

    async fn import_devices<A>(
        &self,
        organization: Uuid,
        rows: &[ResolvedDeviceImport],
        on_duplicate: OnDuplicate,
        now: DateTime<Utc>,
        audit: A,
    ) -> Result<ImportCounts, FleetStoreError>
    where
        A: Fn(&ResolvedDeviceImport, Uuid, bool) -> AuditEntry + Send + Sync,
    {
        let transaction = self.connection().begin().await.map_err(db)?;
        // Take the write lock first (SQLite), then see what exists as of this transaction.
        crate::organizations::claim_organization(&transaction, organization).await?;
        let identifiers: Vec<String> = rows.iter().map(|r| r.row.identifier.clone()).collect();
        let mut existing: BTreeMap<String, (Uuid, Option<Uuid>)> = BTreeMap::new();
        for chunk in identifiers.chunks(CHUNK) {
            let found: Vec<(String, Uuid, Option<Uuid>)> = devices::Entity::find()
                .select_only()
                .column(devices::Column::DeviceIdentifier)
                .column(devices::Column::Id)
                .column(devices::Column::OrganizationId)
                .filter(devices::Column::DeviceIdentifier.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(&transaction)
                .await
                .map_err(db)?;
            existing.extend(
                found
                    .into_iter()
                    .map(|(identifier, id, org)| (identifier, (id, org))),
            );
        }
        let mut counts = ImportCounts::default();
        let mut inserts = Vec::new();
        let mut entries = Vec::new();
        for resolved in rows {
            let row = &resolved.row;
            match existing.get(&row.identifier) {
                Some((_, owner)) if *owner != Some(organization) => {
                    return Err(FleetRuleError::Conflict(
                        "a device of the import was registered outside this organization meanwhile; run the import again",
                    )
                    .into());
                }
                Some(_) if on_duplicate == OnDuplicate::Skip => counts.skipped += 1,
                Some((id, _)) => {
                    let mut update = managed_device_update(
                        organization,
                        &row.display_name,
                        &[
                            (devices::Column::Platform, &row.platform),
                            (devices::Column::SerialNumber, &row.hardware.serial_number),
                            (devices::Column::Manufacturer, &row.hardware.manufacturer),
                            (devices::Column::Model, &row.hardware.model),
                        ],
                        now,
                    );
                    for (column, value) in [
                        (devices::Column::PolicyId, row.policy_id),
                        (devices::Column::FleetGroupId, row.group_id),
                        (devices::Column::AssignedUserId, resolved.assigned_user_id),
                    ] {
                        if let Some(value) = value {
                            update = update.col_expr(column, Expr::value(value));
                        }
                    }
                    update
                        .filter(devices::Column::Id.eq(*id))
                        .exec(&transaction)
                        .await
                        .map_err(db)?;
                    enqueue(&transaction, *id, "imported", now).await?;
                    counts.updated += 1;
                    entries.push(audit(resolved, *id, false));
                }
                None => {
                    let id = Uuid::now_v7();
                    inserts.push(new_device_row(
                        id,
                        organization,
                        &row.identifier,
                        &row.display_name,
                        row.platform.clone(),
                        &row.hardware,
                        row.policy_id,
                        row.group_id,
                        resolved.assigned_user_id,
                        "pending",
                        now,
                    ));
                    counts.created += 1;
                    entries.push(audit(resolved, id, true));
                }
            }
        }
        let mut pending = inserts.into_iter().peekable();
        while pending.peek().is_some() {
            let chunk: Vec<devices::ActiveModel> = pending.by_ref().take(500).collect();
            devices::Entity::insert_many(chunk)
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
        }
        insert_audit_entries(&transaction, entries).await?;
        transaction.commit().await.map_err(db)?;
        Ok(counts)
    }
}
