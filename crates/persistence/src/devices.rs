//! Devices, their ownership and transfers, and the application API keys of the device API.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, ExprTrait, QueryFilter, QueryOrder, QuerySelect};
use serde_json::json;
use steward_domain::devices::{
    ApiKeyRecord, ApiKeyStore, ApiKeyUse, DeviceRecord, DeviceRegistration, DeviceRuleError, DeviceStore,
    DeviceStoreError, DeviceTransfer, RegisteredDevice, Registrant, TransferStatus, decide_registration,
};
use steward_domain::fleet::NewDeviceToken;
use steward_domain::quotas::QuotaKey;
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{api_key_usage, api_keys, device_tokens, device_transfers, devices};
use crate::error::db_err_to_repository as db;

fn device(model: devices::Model) -> DeviceRecord {
    DeviceRecord {
        id: model.id,
        identifier: model.device_identifier,
        display_name: model.display_name,
        platform: model.platform,
        os_version: model.os_version,
        app_version: model.app_version,
        push_token: model.push_token,
        owner_user_id: model.owner_user_id,
        legacy_group_id: model.group_id,
        last_seen_at: model.last_seen_at,
        version: model.version,
        created_at: model.created_at,
        updated_at: model.updated_at,
    }
}

fn transfer(model: device_transfers::Model) -> Result<DeviceTransfer, RepositoryError> {
    Ok(DeviceTransfer {
        id: model.id,
        device_id: model.device_id,
        from_user_id: model.from_user_id,
        to_user_id: model.to_user_id,
        status: TransferStatus::parse(&model.status)
            .ok_or_else(|| RepositoryError::Other(format!("unknown transfer status `{}`", model.status)))?,
        expires_at: model.expires_at,
        decided_at: model.decided_at,
        created_at: model.created_at,
    })
}

fn api_key(model: api_keys::Model) -> ApiKeyRecord {
    ApiKeyRecord {
        id: model.id,
        name: model.name,
        prefix: model.key_prefix,
        scopes: serde_json::from_value(model.scopes).unwrap_or_default(),
        created_at: model.created_at,
        last_used_at: model.last_used_at,
        last_used_ip: model.last_used_ip,
        revoked_at: model.revoked_at,
        previous_valid_until: model.previous_valid_until,
    }
}

/// Whether `device`, just given to `owner`, fits the owner's quota of personal devices (a
/// device of an organization does not count).
async fn check_personal_device(
    transaction: &sea_orm::DatabaseTransaction,
    plans: &steward_domain::quotas::QuotaPlans,
    device: Uuid,
    owner: Uuid,
) -> Result<(), DeviceStoreError> {
    let organization: Option<Option<Uuid>> = devices::Entity::find_by_id(device)
        .select_only()
        .column(devices::Column::OrganizationId)
        .into_tuple()
        .one(transaction)
        .await
        .map_err(db)?;
    if organization.flatten().is_none() {
        crate::user_quotas::check_user_quota_after(transaction, plans, owner, QuotaKey::PersonalDevices, 1)
            .await?;
    }
    Ok(())
}

impl DeviceStore for Database {
    async fn register_device(
        &self,
        registration: &DeviceRegistration,
        registrant: Registrant,
        token: &NewDeviceToken,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(DeviceRecord, bool, bool), DeviceStoreError> {
        let caller = registrant.user;
        let transaction = self.begin_write().await.map_err(db)?;
        if let Some(user) = caller {
            crate::user_quotas::lock_user_for(
                &transaction,
                self.quota_plans(),
                user,
                QuotaKey::PersonalDevices,
            )
            .await?;
        }
        // Touch first so the transaction holds the write lock before it reads the owner.
        let touched = devices::Entity::update_many()
            .col_expr(devices::Column::LastSeenAt, Expr::value(Some(now)))
            .filter(devices::Column::DeviceIdentifier.eq(registration.identifier.as_str()))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let existing = if touched.rows_affected > 0 {
            devices::Entity::find()
                .filter(devices::Column::DeviceIdentifier.eq(registration.identifier.as_str()))
                .one(&transaction)
                .await
                .map_err(db)?
        } else {
            None
        };
        let created = existing.is_none();
        let previous_owner = existing.as_ref().and_then(|current| current.owner_user_id);
        let outcome = decide_registration(
            existing.as_ref().map(|current| RegisteredDevice {
                id: current.id,
                owner: current.owner_user_id,
                managed: current.is_managed || current.organization_id.is_some(),
            }),
            registrant,
        )?;
        let id = match existing {
            Some(current) => {
                let owner = outcome.owner;
                let mut update = devices::Entity::update_many()
                    .col_expr(
                        devices::Column::DisplayName,
                        Expr::value(registration.display_name.clone()),
                    )
                    .col_expr(devices::Column::OwnerUserId, Expr::value(owner))
                    .col_expr(
                        devices::Column::Version,
                        Expr::col(devices::Column::Version).add(1),
                    )
                    .col_expr(devices::Column::UpdatedAt, Expr::value(now));
                // Absent optional fields keep what the device sent before.
                let optional = [
                    (devices::Column::Platform, &registration.platform),
                    (devices::Column::OsVersion, &registration.os_version),
                    (devices::Column::AppVersion, &registration.app_version),
                    (devices::Column::PushToken, &registration.push_token),
                    (devices::Column::GroupId, &registration.legacy_group_id),
                ];
                for (column, value) in optional {
                    if let Some(value) = value {
                        update = update.col_expr(column, Expr::value(value.clone()));
                    }
                }
                update
                    .filter(devices::Column::Id.eq(current.id))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                current.id
            }
            None => {
                let id = Uuid::now_v7();
                devices::Entity::insert(devices::ActiveModel {
                    id: Set(id),
                    device_identifier: Set(registration.identifier.clone()),
                    display_name: Set(registration.display_name.clone()),
                    platform: Set(registration.platform.clone()),
                    os_version: Set(registration.os_version.clone()),
                    app_version: Set(registration.app_version.clone()),
                    push_token: Set(registration.push_token.clone()),
                    owner_user_id: Set(caller),
                    organization_id: Set(None),
                    policy_id: Set(None),
                    is_managed: Set(false),
                    enrollment_status: Set("unenrolled".to_owned()),
                    group_id: Set(registration.legacy_group_id.clone()),
                    status: Set("active".to_owned()),
                    last_seen_at: Set(Some(now)),
                    settings_version: Set(0),
                    version: Set(1),
                    created_at: Set(now),
                    updated_at: Set(now),
                    applied_settings_version: Set(None),
                    applied_at: Set(None),
                    apply_failures: Set(None),
                    fleet_group_id: Set(None),
                    assigned_user_id: Set(None),
                    serial_number: Set(None),
                    manufacturer: Set(None),
                    model: Set(None),
                    enrolled_at: Set(None),
                })
                .exec_without_returning(&transaction)
                .await
                .map_err(|error| match db(error) {
                    // Two first registrations raced; the loser retries as an update.
                    RepositoryError::Conflict(_) => DeviceStoreError::Rule(DeviceRuleError::Conflict(
                        "the device was registered concurrently; retry",
                    )),
                    other => other.into(),
                })?;
                id
            }
        };
        let stored = devices::Entity::find_by_id(id)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        // A personal device that is new to its owner counts against the owner's quota.
        if let Some(owner) = stored.owner_user_id
            && stored.organization_id.is_none()
            && previous_owner != Some(owner)
        {
            crate::user_quotas::check_user_quota_after(
                &transaction,
                self.quota_plans(),
                owner,
                QuotaKey::PersonalDevices,
                1,
            )
            .await?;
        }
        let entry = audit.clone().resource_id(id).change(
            None,
            Some(
                json!({"deviceId": stored.device_identifier, "ownerUserId": stored.owner_user_id,
                        "created": created}),
            ),
        );
        insert_audit_entry(&transaction, &entry).await?;
        if outcome.issue_token {
            crate::fleet::revoke_device_tokens(&transaction, id, now).await?;
            device_tokens::Entity::insert(crate::fleet::insert_token(id, token, None, now))
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
        }
        transaction.commit().await.map_err(db)?;
        Ok((device(stored), created, outcome.issue_token))
    }

    async fn find_device(&self, id: Uuid) -> Result<Option<DeviceRecord>, RepositoryError> {
        Ok(devices::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(device))
    }

    async fn device_id_for_identifier(&self, identifier: &str) -> Result<Option<Uuid>, RepositoryError> {
        devices::Entity::find()
            .select_only()
            .column(devices::Column::Id)
            .filter(devices::Column::DeviceIdentifier.eq(identifier))
            .into_tuple::<Uuid>()
            .one(self.connection())
            .await
            .map_err(db)
    }

    async fn devices_owned_by(&self, owners: &[Uuid]) -> Result<Vec<DeviceRecord>, RepositoryError> {
        if owners.is_empty() {
            return Ok(Vec::new());
        }
        Ok(devices::Entity::find()
            .filter(devices::Column::OwnerUserId.is_in(owners.iter().copied()))
            .order_by_asc(devices::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(device)
            .collect())
    }

    async fn set_device_owner(
        &self,
        id: Uuid,
        expected_owner: Option<Uuid>,
        new_owner: Option<Uuid>,
        audit: &AuditEntry,
    ) -> Result<bool, DeviceStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        if let Some(owner) = new_owner {
            crate::user_quotas::lock_user_for(
                &transaction,
                self.quota_plans(),
                owner,
                QuotaKey::PersonalDevices,
            )
            .await?;
        }
        let now = Utc::now();
        let guard = match expected_owner {
            Some(owner) => devices::Column::OwnerUserId.eq(owner),
            None => devices::Column::OwnerUserId.is_null(),
        };
        let changed = devices::Entity::update_many()
            .col_expr(devices::Column::OwnerUserId, Expr::value(new_owner))
            .col_expr(
                devices::Column::Version,
                Expr::col(devices::Column::Version).add(1),
            )
            .col_expr(devices::Column::UpdatedAt, Expr::value(now))
            .filter(devices::Column::Id.eq(id))
            .filter(guard)
            .exec(&transaction)
            .await
            .map_err(db)?;
        if changed.rows_affected == 0 {
            return Ok(false);
        }
        if let Some(owner) = new_owner {
            check_personal_device(&transaction, self.quota_plans(), id, owner).await?;
        }
        // A device that changes hands outside a transfer ends any pending one.
        device_transfers::Entity::update_many()
            .col_expr(
                device_transfers::Column::Status,
                Expr::value(TransferStatus::Cancelled.as_str()),
            )
            .col_expr(device_transfers::Column::DecidedAt, Expr::value(Some(now)))
            .filter(device_transfers::Column::DeviceId.eq(id))
            .filter(crate::database::literal_eq(
                device_transfers::Column::Status,
                TransferStatus::Pending.as_str(),
            ))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let entry = audit.clone().resource_id(id).change(
            Some(json!({"ownerUserId": expected_owner})),
            Some(json!({"ownerUserId": new_owner})),
        );
        insert_audit_entry(&transaction, &entry).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn create_transfer(
        &self,
        transfer: &DeviceTransfer,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // An expired pending transfer no longer blocks a new one.
        device_transfers::Entity::update_many()
            .col_expr(
                device_transfers::Column::Status,
                Expr::value(TransferStatus::Cancelled.as_str()),
            )
            .col_expr(
                device_transfers::Column::DecidedAt,
                Expr::value(Some(transfer.created_at)),
            )
            .filter(device_transfers::Column::DeviceId.eq(transfer.device_id))
            .filter(crate::database::literal_eq(
                device_transfers::Column::Status,
                TransferStatus::Pending.as_str(),
            ))
            .filter(device_transfers::Column::ExpiresAt.lte(transfer.created_at))
            .exec(&transaction)
            .await
            .map_err(db)?;
        device_transfers::Entity::insert(device_transfers::ActiveModel {
            id: Set(transfer.id),
            device_id: Set(transfer.device_id),
            from_user_id: Set(transfer.from_user_id),
            to_user_id: Set(transfer.to_user_id),
            status: Set(TransferStatus::Pending.as_str().to_owned()),
            expires_at: Set(transfer.expires_at),
            decided_at: Set(None),
            created_at: Set(transfer.created_at),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn pending_transfers(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeviceTransfer>, RepositoryError> {
        device_transfers::Entity::find()
            .filter(crate::database::literal_eq(
                device_transfers::Column::Status,
                TransferStatus::Pending.as_str(),
            ))
            .filter(device_transfers::Column::ExpiresAt.gt(now))
            .filter(
                sea_orm::Condition::any()
                    .add(device_transfers::Column::ToUserId.eq(user))
                    .add(device_transfers::Column::FromUserId.eq(user)),
            )
            .order_by_desc(device_transfers::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(transfer)
            .collect()
    }

    async fn decide_transfer(
        &self,
        id: Uuid,
        user: Uuid,
        decision: TransferStatus,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DeviceTransfer, DeviceStoreError> {
        // Decided by the use case for this caller; the rows span organizations the
        // caller need not belong to: as the system.
        crate::tenancy::as_system(self.decide_transfer_as_system(id, user, decision, now, audit)).await
    }
}

fn app_keys() -> sea_orm::Condition {
    sea_orm::Condition::all().add(api_keys::Column::UserId.is_null())
}

impl ApiKeyStore for Database {
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        secret_hash: String,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        api_keys::Entity::insert(api_keys::ActiveModel {
            id: Set(key.id),
            name: Set(key.name.clone()),
            key_prefix: Set(key.prefix.clone()),
            key_hash: Set(secret_hash),
            user_id: Set(None),
            organization_id: Set(None),
            device_id: Set(None),
            scopes: Set(json!(key.scopes)),
            expires_at: Set(None),
            last_used_at: Set(None),
            revoked_at: Set(None),
            created_at: Set(key.created_at),
            last_used_ip: Set(None),
            previous_key_hash: Set(None),
            previous_valid_until: Set(None),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, RepositoryError> {
        Ok(api_keys::Entity::find()
            .filter(app_keys())
            .order_by_asc(api_keys::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(api_key)
            .collect())
    }

    async fn revoke_api_key(&self, id: Uuid, audit: &AuditEntry) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let revoked = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(Some(Utc::now())))
            .filter(app_keys())
            .filter(api_keys::Column::Id.eq(id))
            .filter(api_keys::Column::RevokedAt.is_null())
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

    async fn use_api_key(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
        ip: Option<String>,
    ) -> Result<Option<ApiKeyUse>, RepositoryError> {
        let Some(found) = api_keys::Entity::find()
            .filter(app_keys())
            .filter(
                sea_orm::Condition::any()
                    .add(api_keys::Column::KeyHash.eq(secret_hash))
                    .add(
                        sea_orm::Condition::all()
                            .add(api_keys::Column::PreviousKeyHash.eq(secret_hash))
                            .add(api_keys::Column::PreviousValidUntil.gt(now)),
                    ),
            )
            .filter(api_keys::Column::RevokedAt.is_null())
            .one(self.connection())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        // Recording use is best effort and throttled to once a minute, so a busy key does not
        // turn every device request into a write.
        if found
            .last_used_at
            .is_none_or(|at| now - at > chrono::Duration::minutes(1))
        {
            api_keys::Entity::update_many()
                .col_expr(api_keys::Column::LastUsedAt, Expr::value(Some(now)))
                .col_expr(api_keys::Column::LastUsedIp, Expr::value(ip))
                .filter(api_keys::Column::Id.eq(found.id))
                .exec(self.writer())
                .await
                .map_err(db)?;
        }
        let valid_until = if found.key_hash == secret_hash {
            None
        } else {
            found.previous_valid_until
        };
        Ok(Some(ApiKeyUse {
            key: api_key(found),
            valid_until,
        }))
    }

    async fn rotate_api_key(
        &self,
        id: Uuid,
        expected_prefix: &str,
        secret_hash: String,
        prefix: String,
        previous_valid_until: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Option<ApiKeyRecord>, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let rotated = api_keys::Entity::update_many()
            .col_expr(
                api_keys::Column::PreviousKeyHash,
                Expr::col(api_keys::Column::KeyHash),
            )
            .col_expr(
                api_keys::Column::PreviousValidUntil,
                Expr::value(Some(previous_valid_until)),
            )
            .col_expr(api_keys::Column::KeyHash, Expr::value(secret_hash))
            .col_expr(api_keys::Column::KeyPrefix, Expr::value(prefix))
            .filter(app_keys())
            .filter(api_keys::Column::Id.eq(id))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(api_keys::Column::KeyPrefix.eq(expected_prefix))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if rotated.rows_affected == 0 {
            // Either no such live key, or another rotation changed its secret first.
            let live = api_keys::Entity::find_by_id(id)
                .filter(app_keys())
                .filter(api_keys::Column::RevokedAt.is_null())
                .one(&transaction)
                .await
                .map_err(db)?;
            return match live {
                Some(_) => Err(RepositoryError::VersionConflict),
                None => Ok(None),
            };
        }
        let key = api_keys::Entity::find_by_id(id)
            .one(&transaction)
            .await
            .map_err(db)?
            .map(api_key);
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(key)
    }

    async fn count_api_key_requests(&self, counts: &[(Uuid, String, u64)]) -> Result<(), RepositoryError> {
        use sea_orm::sea_query::OnConflict;
        // One transaction: a failure writes nothing, so the caller may keep every count.
        let transaction = self.begin_write().await.map_err(db)?;
        for (key, day, requests) in counts {
            let requests = i64::try_from(*requests).unwrap_or(i64::MAX);
            api_key_usage::Entity::insert(api_key_usage::ActiveModel {
                id: Set(Uuid::now_v7()),
                api_key_id: Set(*key),
                day: Set(day.clone()),
                requests: Set(requests),
            })
            .on_conflict(
                OnConflict::columns([api_key_usage::Column::ApiKeyId, api_key_usage::Column::Day])
                    .value(
                        api_key_usage::Column::Requests,
                        Expr::col((api_key_usage::Entity, api_key_usage::Column::Requests)).add(requests),
                    )
                    .to_owned(),
            )
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        }
        transaction.commit().await.map_err(db)
    }

    async fn api_key_requests(&self, since: &str) -> Result<Vec<(Uuid, String, u64)>, RepositoryError> {
        let rows = api_key_usage::Entity::find()
            .filter(api_key_usage::Column::Day.gte(since))
            .order_by_asc(api_key_usage::Column::Day)
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok(rows
            .into_iter()
            .map(|row| (row.api_key_id, row.day, u64::try_from(row.requests).unwrap_or(0)))
            .collect())
    }
}

impl Database {
    pub(crate) async fn decide_transfer_as_system(
        &self,
        id: Uuid,
        user: Uuid,
        decision: TransferStatus,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DeviceTransfer, DeviceStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // The recipient accepts: their account first, as erasing it locks it before its devices.
        if decision == TransferStatus::Accepted {
            crate::user_quotas::lock_user_for(
                &transaction,
                self.quota_plans(),
                user,
                QuotaKey::PersonalDevices,
            )
            .await?;
        }
        let party = match decision {
            TransferStatus::Cancelled => device_transfers::Column::FromUserId.eq(user),
            _ => device_transfers::Column::ToUserId.eq(user),
        };
        let decided = device_transfers::Entity::update_many()
            .col_expr(device_transfers::Column::Status, Expr::value(decision.as_str()))
            .col_expr(device_transfers::Column::DecidedAt, Expr::value(Some(now)))
            .filter(device_transfers::Column::Id.eq(id))
            .filter(crate::database::literal_eq(
                device_transfers::Column::Status,
                TransferStatus::Pending.as_str(),
            ))
            .filter(device_transfers::Column::ExpiresAt.gt(now))
            .filter(party)
            .exec(&transaction)
            .await
            .map_err(db)?;
        if decided.rows_affected == 0 {
            return Err(DeviceRuleError::NotFound.into());
        }
        let decided = transfer(
            device_transfers::Entity::find_by_id(id)
                .one(&transaction)
                .await
                .map_err(db)?
                .ok_or(RepositoryError::NotFound)?,
        )?;
        if decision == TransferStatus::Accepted {
            let moved = devices::Entity::update_many()
                .col_expr(
                    devices::Column::OwnerUserId,
                    Expr::value(Some(decided.to_user_id)),
                )
                .col_expr(
                    devices::Column::Version,
                    Expr::col(devices::Column::Version).add(1),
                )
                .col_expr(devices::Column::UpdatedAt, Expr::value(now))
                .filter(devices::Column::Id.eq(decided.device_id))
                .filter(devices::Column::OwnerUserId.eq(decided.from_user_id))
                .exec(&transaction)
                .await
                .map_err(db)?;
            if moved.rows_affected == 0 {
                return Err(DeviceRuleError::Conflict("the sender no longer owns this device").into());
            }
            check_personal_device(
                &transaction,
                self.quota_plans(),
                decided.device_id,
                decided.to_user_id,
            )
            .await?;
        }
        let entry = audit.clone().resource_id(decided.device_id).change(
            Some(json!({"ownerUserId": decided.from_user_id, "transferId": id})),
            Some(json!({"status": decision.as_str(), "toUserId": decided.to_user_id})),
        );
        insert_audit_entry(&transaction, &entry).await?;
        transaction.commit().await.map_err(db)?;
        Ok(decided)
    }
}
