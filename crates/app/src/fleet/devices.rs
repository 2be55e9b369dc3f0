//! Fleet groups and devices: listings, assignment, suspension, retirement.

use super::*;

impl<S: Store> FleetService<'_, S> {
    pub async fn groups(&self, organization: Uuid) -> Result<Vec<FleetGroup>, AppError> {
        Ok(self.steward.store.fleet_groups(organization).await?)
    }
    pub async fn create_group(
        &self,
        organization: Uuid,
        user: Uuid,
        name: &str,
        description: Option<&str>,
        policy: Option<Uuid>,
        origin: &RequestOrigin,
    ) -> Result<FleetGroup, AppError> {
        let group = FleetGroup {
            id: Uuid::now_v7(),
            organization_id: organization,
            name: FleetGroup::parse_name(name)?,
            description: FleetGroup::parse_description(description)?,
            policy_id: policy,
            created_at: Utc::now(),
        };
        self.check_references(organization, policy, None).await?;
        let entry = admin_audit(user, "fleet_group.created", "group", organization, origin)
            .resource_id(group.id)
            .change(
                None,
                Some(json!({"name": group.name, "policyId": group.policy_id})),
            );
        self.steward
            .store
            .create_fleet_group(&group, user, &entry)
            .await?;
        Ok(group)
    }
    pub async fn fleet(
        &self,
        organization: Uuid,
        query: &FleetQuery,
    ) -> Result<(Vec<FleetDevice>, u64), AppError> {
        Ok(self.steward.store.fleet_devices(organization, query).await?)
    }
    pub async fn device(&self, organization: Uuid, device: Uuid) -> Result<FleetDevice, AppError> {
        self.steward
            .store
            .find_fleet_device(organization, device)
            .await?
            .ok_or_else(|| AppError::not_found("no such device"))
    }
    pub async fn assign(
        &self,
        organization: Uuid,
        device: Uuid,
        assignment: Assignment,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<FleetDevice, AppError> {
        if assignment.is_empty() {
            return Err(AppError::validation(
                "name at least one of policyId, groupId, userId",
            ));
        }
        let entry = admin_audit(user, "device.assigned", "device", organization, origin);
        self.steward
            .store
            .assign_device(organization, device, &assignment, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        self.device(organization, device).await
    }
    pub async fn set_suspended(
        &self,
        organization: Uuid,
        device: Uuid,
        suspend: bool,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<FleetDevice, AppError> {
        let action = if suspend {
            "device.suspended"
        } else {
            "device.resumed"
        };
        let entry = admin_audit(user, action, "device", organization, origin);
        self.steward
            .store
            .set_device_suspended(organization, device, suspend, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        self.steward.device_auth.forget_device(device);
        self.device(organization, device).await
    }
    pub async fn retire(
        &self,
        organization: Uuid,
        device: Uuid,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = admin_audit(user, "device.retired", "device", organization, origin);
        self.steward
            .store
            .retire_device(organization, device, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        self.steward.device_auth.forget_device(device);
        Ok(())
    }
}
