//! Enrollment tokens, enrollment (adoption or creation) and device tokens.

use super::*;
use steward_domain::fleet::EnrollmentStore;
use steward_domain::quotas::QuotaKey;

impl EnrollmentStore for Database {
    async fn create_enrollment_token(
        &self,
        token: &EnrollmentToken,
        hash: &str,
        audit: &AuditEntry,
    ) -> Result<(), steward_domain::RuleStoreError> {
        // Reads the quota before it writes: on SQLite the write lock is taken first.
        let transaction = self.begin_write().await.map_err(db)?;
        crate::organizations::check_quota_locked(
            &transaction,
            self.quota_plans(),
            token.organization_id,
            QuotaKey::EnrollmentTokens,
            1,
        )
        .await?;
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
        Ok(transaction.commit().await.map_err(db)?)
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
        let transaction = self.begin_write().await.map_err(db)?;
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
        let transaction = self.begin_write().await.map_err(db)?;
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
        // A device joining the organization counts against its device quota (one already in
        // it is re-enrolling).
        if existing
            .as_ref()
            .is_none_or(|found| found.organization_id != Some(organization))
        {
            crate::organizations::check_quota_locked(
                &transaction,
                self.quota_plans(),
                organization,
                QuotaKey::Devices,
                1,
            )
            .await?;
        }
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
        let transaction = self.begin_write().await.map_err(db)?;
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
}
