//! Bulk device import, all or nothing.

use super::*;
use steward_domain::fleet::DeviceImportStore;
use steward_domain::quotas::QuotaKey;

/// Rows between two checkpoints of an import.
const CHECKPOINT_ROWS: usize = 500;

impl DeviceImportStore for Database {
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
    async fn import_devices<A, C>(
        &self,
        organization: Uuid,
        rows: &[ResolvedDeviceImport],
        on_duplicate: OnDuplicate,
        now: DateTime<Utc>,
        audit: A,
        checkpoint: C,
    ) -> Result<ImportCounts, FleetStoreError>
    where
        A: Fn(&ResolvedDeviceImport, Uuid, bool) -> AuditEntry + Send + Sync,
        C: Fn(usize) -> bool + Send + Sync,
    {
        // Dropping the transaction without a commit rolls everything back.
        let go_on = |done: usize| -> Result<(), FleetStoreError> {
            if checkpoint(done) {
                Ok(())
            } else {
                Err(RepositoryError::Stopped.into())
            }
        };
        let transaction = self.begin_write().await.map_err(db)?;
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
        for (done, resolved) in rows.iter().enumerate() {
            if done > 0 && done % CHECKPOINT_ROWS == 0 {
                go_on(counts.updated + counts.skipped)?;
            }
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
        crate::organizations::spend_quota_locked(
            &transaction,
            self.quota_plans(),
            organization,
            QuotaKey::ImportsPerDay,
        )
        .await?;
        crate::organizations::check_quota_locked(
            &transaction,
            self.quota_plans(),
            organization,
            QuotaKey::Devices,
            counts.created as u64,
        )
        .await?;
        let mut written = counts.updated + counts.skipped;
        go_on(written)?;
        let mut pending = inserts.into_iter().peekable();
        while pending.peek().is_some() {
            let chunk: Vec<devices::ActiveModel> = pending.by_ref().take(CHECKPOINT_ROWS).collect();
            written += chunk.len();
            devices::Entity::insert_many(chunk)
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
            go_on(written)?;
        }
        insert_audit_entries(&transaction, entries).await?;
        go_on(written)?;
        transaction.commit().await.map_err(db)?;
        Ok(counts)
    }
}
