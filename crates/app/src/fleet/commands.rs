//! Commands (a wipe): queued by an admin, delivered at the device's sync, acknowledged.

use super::*;

impl<S: Store> FleetService<'_, S> {
    pub async fn wipe(
        &self,
        organization: Uuid,
        device: Uuid,
        expires_in_seconds: Option<i64>,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<DeviceCommand, AppError> {
        let lifetime = command_lifetime(expires_in_seconds)?;
        let now = Utc::now();
        let command = DeviceCommand {
            id: Uuid::now_v7(),
            device_id: device,
            organization_id: Some(organization),
            command: "wipe".to_owned(),
            status: CommandStatus::Pending,
            payload: None,
            created_by: Some(user),
            created_at: now,
            expires_at: now + lifetime,
            delivered_at: None,
            acknowledged_at: None,
            result: None,
        };
        let entry = admin_audit(user, "device.wipe_requested", "device", organization, origin)
            .resource_id(device)
            .change(
                None,
                Some(json!({"commandId": command.id, "expiresAt": command.expires_at})),
            );
        // The store claims the device as one the organization manages (404 otherwise).
        self.steward
            .store
            .create_command(&command, &entry)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such device"),
                other => other.into(),
            })?;
        self.forget(&[device]);
        Ok(command)
    }
    pub async fn commands(&self, organization: Uuid, device: Uuid) -> Result<Vec<DeviceCommand>, AppError> {
        self.device(organization, device).await?;
        let now = Utc::now();
        Ok(self
            .steward
            .store
            .device_commands(device)
            .await?
            .into_iter()
            .map(|mut command| {
                command.status = command.status.as_of(command.expires_at, now);
                command
            })
            .collect())
    }
    /// The device's open commands for its sync (remembered briefly when there are none).
    /// Commands go to the device itself, or to its app signed in as the owner — never to
    /// group managers or administrators syncing on its behalf.
    pub async fn deliver(
        &self,
        access: &SettingsAccess,
        origin: &RequestOrigin,
    ) -> Result<Vec<DeviceCommand>, AppError> {
        if !matches!(access.actor, SettingsActor::Device | SettingsActor::DeviceUser) {
            return Ok(Vec::new());
        }
        let device = access.device;
        if self.steward.device_states.has_open_commands(device) == Some(false) {
            return Ok(Vec::new());
        }
        let entry = AuditEntry::new(
            Actor::device(device),
            AuditAction::known("device.command_delivered"),
            "device_command",
        )
        .origin(origin.clone());
        let commands = self
            .steward
            .store
            .deliver_commands(device, Utc::now(), &entry)
            .await?;
        self.steward
            .device_states
            .put_open_commands(device, !commands.is_empty());
        Ok(commands)
    }
    pub async fn acknowledge(
        &self,
        caller: SettingsCallerKind,
        device: Uuid,
        command: Uuid,
        result: Option<Value>,
        origin: &RequestOrigin,
    ) -> Result<DeviceCommand, AppError> {
        // Only the device itself acknowledges its commands; to anyone else they do not exist.
        if caller != SettingsCallerKind::Device(device) {
            return Err(AppError::not_found("no such command"));
        }
        let entry = AuditEntry::new(
            Actor::device(device),
            AuditAction::known("device.command_acknowledged"),
            "device_command",
        )
        .origin(origin.clone());
        let acknowledged = self
            .steward
            .store
            .acknowledge_command(device, command, result, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        Ok(acknowledged)
    }
}
