//! Device commands: queued, delivered at sync, acknowledged.

use super::*;
use steward_domain::fleet::CommandStore;

impl CommandStore for Database {
    async fn create_command(
        &self,
        command: &DeviceCommand,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
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
            let transaction = self.begin_write().await.map_err(db)?;
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
                    let mut entry = audit.another().resource_id(*id).change(
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
        let transaction = self.begin_write().await.map_err(db)?;
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
            Some(serde_json::json!({"status": "acknowledged", "command": current.command, "deviceId": device, "result": result})),
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
}
