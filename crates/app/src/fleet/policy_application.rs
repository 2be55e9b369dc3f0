//! Applying and unapplying a policy, with dry runs that show each device's changes.

use super::*;
use steward_domain::fleet::policy_changes;

/// One device's part of a policy dry run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDiff {
    pub device_id: Uuid,
    pub changes: Vec<SettingDiff>,
}

/// What applying or unapplying a policy did (or, in a dry run, would do).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyApplication {
    pub dry_run: bool,
    /// Devices whose settings version was bumped (empty in a dry run).
    pub devices_touched: Vec<Uuid>,
    /// Dry run only: per device, the effective settings that would change.
    pub diffs: Vec<DeviceDiff>,
}

impl<S: Store> FleetService<'_, S> {
    /// Applies or unapplies a policy, or with `dry_run` answers each device's diff.
    #[allow(clippy::too_many_arguments)]
    pub async fn apply_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
        targets: PolicyTargets,
        apply: bool,
        dry_run: bool,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<PolicyApplication, AppError> {
        let record = self.policy_of(organization, policy).await?;
        let targets = targets.deduplicated();
        let (ids, layer) = match &targets {
            PolicyTargets::Devices(ids) => (ids.clone(), LayerKind::DevicePolicy),
            PolicyTargets::Groups(ids) => (ids.clone(), LayerKind::Group),
        };
        if !dry_run {
            let action = if apply {
                "policy.applied"
            } else {
                "policy.unapplied"
            };
            let entry = admin_audit(user, action, "device_policy", organization, origin)
                .resource_id(policy)
                .change(None, Some(json!({"targets": ids, "kind": layer.as_str()})));
            let touched = self
                .steward
                .store
                .apply_policy(organization, policy, &targets, apply, Utc::now(), &entry)
                .await
                .map_err(|error| match error {
                    RepositoryError::NotFound => {
                        AppError::not_found("a target is not a device or group of this organization")
                    }
                    other => other.into(),
                })?;
            self.forget(&touched);
            return Ok(PolicyApplication {
                dry_run,
                devices_touched: touched,
                diffs: Vec::new(),
            });
        }
        // Each device and the policy its targeted layer carries now.
        let mut devices: Vec<(Uuid, Option<Uuid>)> = Vec::new();
        match &targets {
            PolicyTargets::Devices(ids) => {
                for id in ids {
                    devices.push((*id, self.device(organization, *id).await?.policy_id));
                }
            }
            PolicyTargets::Groups(ids) => {
                let groups: BTreeMap<Uuid, Option<Uuid>> = self
                    .groups(organization)
                    .await?
                    .into_iter()
                    .map(|g| (g.id, g.policy_id))
                    .collect();
                if ids.iter().any(|id| !groups.contains_key(id)) {
                    return Err(AppError::not_found(
                        "a target is not a device or group of this organization",
                    ));
                }
                for group in ids {
                    let carried = groups.get(group).copied().flatten();
                    for device in self
                        .steward
                        .store
                        .fleet_devices_in_groups(organization, &[*group])
                        .await?
                    {
                        devices.push((device, carried));
                    }
                }
            }
        }
        let settings = SettingsService::new(self.steward);
        let mut diffs = Vec::new();
        for (device, carried) in devices {
            // The same rule the store applies: only a target whose policy changes can change
            // a device's settings.
            let changes = if !policy_changes(policy, apply, carried) {
                Vec::new()
            } else if apply {
                settings
                    .policy_diff(device, layer, Some(applied(&record, layer)))
                    .await?
            } else {
                settings.policy_diff(device, layer, None).await?
            };
            diffs.push(DeviceDiff {
                device_id: device,
                changes,
            });
        }
        Ok(PolicyApplication {
            dry_run,
            devices_touched: Vec::new(),
            diffs,
        })
    }
}
