//! A device's stored settings: snapshots, decided changes, returning locks, applied versions.

use super::*;
use steward_domain::settings::store::DeviceSettingsStore;

impl DeviceSettingsStore for Database {
    async fn settings_version(&self, device: Uuid) -> Result<Option<i64>, RepositoryError> {
        if let Some(reads) = &self.version_reads {
            return reads.version(device).await;
        }
        devices::Entity::find_by_id(device)
            .select_only()
            .column(devices::Column::SettingsVersion)
            .into_tuple::<i64>()
            .one(self.connection())
            .await
            .map_err(db)
    }
    async fn device_settings(&self, device: Uuid) -> Result<Option<DeviceSettingsSnapshot>, RepositoryError> {
        snapshot(self.connection(), device).await
    }
    async fn change_device_settings<F, R>(
        &self,
        device: Uuid,
        expected_version: Option<i64>,
        actor: Option<Uuid>,
        decide: F,
        audit: &AuditEntry,
    ) -> Result<(R, i64), SettingsStoreError>
    where
        F: FnOnce(&DeviceSettingsSnapshot) -> Result<(Vec<SettingChange>, R), SettingRuleError> + Send,
        R: Send,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let version = bump_version(&transaction, device, expected_version, now).await?;
        let current = snapshot(&transaction, device)
            .await?
            .ok_or(RepositoryError::NotFound)?;
        let previous = current.settings_version - 1;
        // The snapshot shows the bumped version; decide on the version the caller knew.
        let as_read = DeviceSettingsSnapshot {
            settings_version: previous,
            ..current
        };
        let (changes, answer) = decide(&as_read)?;
        if changes.is_empty() {
            transaction.rollback().await.map_err(db)?;
            return Ok((answer, previous));
        }
        for change in &changes {
            apply_change(&transaction, device, change, actor, version, now).await?;
        }
        let described: Vec<Value> = changes
            .iter()
            .map(|change| match change {
                SettingChange::SetValue { key, value } => json!({"key": key, "value": value}),
                SettingChange::Lock { key, value, reason } => {
                    json!({"key": key, "locked": true, "value": value, "reason": reason})
                }
                SettingChange::Unlock { key } => json!({"key": key, "locked": false}),
                SettingChange::LiftLockUntil { key, until } => json!({"key": key, "unlockedUntil": until}),
            })
            .collect();
        let entry = audit.clone().resource_id(device).change(
            Some(json!({"version": previous})),
            Some(json!({"version": version, "changes": described})),
        );
        insert_audit_entry(&transaction, &entry).await?;
        enqueue(&transaction, device, "settings_changed", now).await?;
        transaction.commit().await.map_err(db)?;
        Ok((answer, version))
    }
    async fn return_expired_locks(&self, now: DateTime<Utc>) -> Result<Vec<Uuid>, RepositoryError> {
        let due: Vec<Uuid> = device_settings::Entity::find()
            .select_only()
            .column(device_settings::Column::DeviceId)
            .filter(device_settings::Column::IsLocked.eq(true))
            .filter(device_settings::Column::UnlockedUntil.lte(now))
            .distinct()
            .limit(500)
            .into_tuple::<Uuid>()
            .all(self.connection())
            .await
            .map_err(db)?;
        let mut touched = Vec::with_capacity(due.len());
        for device in due {
            let transaction = self.begin_write().await.map_err(db)?;
            let version = bump_version(&transaction, device, None, now).await?;
            let returned = device_settings::Entity::update_many()
                .col_expr(
                    device_settings::Column::UnlockedUntil,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .col_expr(device_settings::Column::ChangedInVersion, Expr::value(version))
                .col_expr(device_settings::Column::UpdatedAt, Expr::value(now))
                .filter(device_settings::Column::DeviceId.eq(device))
                .filter(device_settings::Column::IsLocked.eq(true))
                .filter(device_settings::Column::UnlockedUntil.lte(now))
                .exec(&transaction)
                .await
                .map_err(db)?;
            if returned.rows_affected == 0 {
                // Another instance's sweep got there first.
                transaction.rollback().await.map_err(db)?;
                continue;
            }
            let entry = AuditEntry::new(
                steward_domain::Actor::system(),
                steward_domain::AuditAction::known("settings.lock_returned"),
                "device",
            )
            .resource_id(device)
            .change(None, Some(json!({"version": version})));
            insert_audit_entry(&transaction, &entry).await?;
            enqueue(&transaction, device, "lock_returned", now).await?;
            transaction.commit().await.map_err(db)?;
            touched.push(device);
        }
        Ok(touched)
    }
    async fn report_applied(
        &self,
        device: Uuid,
        applied_version: i64,
        failures: Option<Value>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // The row lock (PostgreSQL; SQLite has one writer) makes two equal reports racing
        // each other one change and one repeat.
        let last = devices::Entity::find_by_id(device)
            .select_only()
            .column(devices::Column::AppliedSettingsVersion)
            .column(devices::Column::ApplyFailures)
            .lock_exclusive()
            .into_tuple::<(Option<i64>, Option<Value>)>()
            .one(&transaction)
            .await
            .map_err(db)?;
        let Some((last_version, last_failures)) = last else {
            transaction.rollback().await.map_err(db)?;
            return Ok(false);
        };
        let changed = last_version != Some(applied_version) || last_failures != failures;
        let mut update = devices::Entity::update_many()
            .col_expr(devices::Column::LastSeenAt, Expr::value(Some(now)))
            .filter(devices::Column::Id.eq(device));
        if changed {
            update = update
                .col_expr(
                    devices::Column::AppliedSettingsVersion,
                    Expr::value(Some(applied_version)),
                )
                .col_expr(devices::Column::AppliedAt, Expr::value(Some(now)))
                .col_expr(devices::Column::ApplyFailures, Expr::value(failures.clone()));
        }
        update.exec(&transaction).await.map_err(db)?;
        if changed {
            let entry = audit.clone().resource_id(device).change(
                None,
                Some(json!({"appliedVersion": applied_version, "failures": failures})),
            );
            insert_audit_entry(&transaction, &entry).await?;
        }
        transaction.commit().await.map_err(db)?;
        Ok(changed)
    }
}
