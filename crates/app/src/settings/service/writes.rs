//! Changing a device's settings: values and locks (all or nothing), and the device's sync.

use super::*;

impl<S: Store> SettingsService<'_, S> {
    /// Writes several values, all or nothing.
    pub async fn write_values(
        &self,
        access: &SettingsAccess,
        changes: BTreeMap<String, Value>,
        expected_version: Option<i64>,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        if changes.is_empty() {
            return Err(AppError::validation("name at least one setting"));
        }
        let catalog = self.catalog().await?;
        let actor = access.actor;
        let decide = move |snapshot: &DeviceSettingsSnapshot| {
            let resolved = resolve(&catalog, snapshot);
            let plan = plan_write(actor, &changes, &key_states(&catalog, snapshot, &resolved), None);
            let accepted = if plan.rejected.is_empty() {
                plan.accepted
                    .iter()
                    .filter(|(key, value)| snapshot.value(key).is_none_or(|stored| &stored.value != *value))
                    .map(|(key, value)| SettingChange::SetValue {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect()
            } else {
                Vec::new()
            };
            Ok::<_, SettingRuleError>((accepted, plan))
        };
        let (plan, _) = self
            .steward
            .store
            .change_device_settings(
                access.device,
                expected_version,
                access.user,
                decide,
                &audit(access, "settings.updated", origin),
            )
            .await?;
        self.steward.device_states.forget(access.device);
        refuse_rejections(&plan)
    }

    /// Locks or unlocks several keys, all or nothing.
    pub async fn change_locks(
        &self,
        access: &SettingsAccess,
        requests: Vec<LockRequest>,
        expected_version: Option<i64>,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        if requests.is_empty() {
            return Err(AppError::validation("name at least one lock"));
        }
        let catalog = self.catalog().await?;
        let actor = access.actor;
        let decide = move |snapshot: &DeviceSettingsSnapshot| {
            let resolved = resolve(&catalog, snapshot);
            let mut plan = WritePlan::default();
            let mut changes = Vec::new();
            for request in &requests {
                let decision = (|| {
                    let definition = catalog
                        .get(&request.key)
                        .ok_or_else(|| SettingRuleError::Unknown(request.key.clone()))?;
                    let effective = resolved
                        .get(&request.key)
                        .ok_or_else(|| SettingRuleError::Unknown(request.key.clone()))?;
                    may_change_lock(actor, definition, effective)?;
                    let value =
                        match &request.value {
                            Some(value) => Some(definition.validate(value).map_err(|error| {
                                SettingRuleError::Invalid {
                                    key: request.key.clone(),
                                    message: error.0,
                                }
                            })?),
                            None => None,
                        };
                    Ok(if request.locked {
                        // Locking pins the current effective value unless a value is given.
                        SettingChange::Lock {
                            key: request.key.clone(),
                            value: Some(value.unwrap_or_else(|| effective.value.clone())),
                            reason: request.reason.clone(),
                        }
                    } else {
                        SettingChange::Unlock {
                            key: request.key.clone(),
                        }
                    })
                })();
                match decision {
                    Ok(change) => changes.push(change),
                    Err(error) => plan.rejected.push(Rejection::new(&request.key, &error)),
                }
            }
            if !plan.rejected.is_empty() {
                changes.clear();
            }
            Ok::<_, SettingRuleError>((changes, plan))
        };
        let (plan, _) = self
            .steward
            .store
            .change_device_settings(
                access.device,
                expected_version,
                access.user,
                decide,
                &audit(access, "settings.locks_changed", origin),
            )
            .await?;
        self.steward.device_states.forget(access.device);
        refuse_rejections(&plan)
    }

    /// A device's sync: applies what locks allow, records what it applied, answers the state.
    pub async fn sync(
        &self,
        access: &SettingsAccess,
        base_version: i64,
        changes: BTreeMap<String, Value>,
        applied: Option<(i64, Option<Value>)>,
        origin: &RequestOrigin,
    ) -> Result<(Arc<RenderedSettings>, Vec<Rejection>, String), AppError> {
        self.check_sync_versions(access.device, base_version, applied.as_ref().map(|(v, _)| *v))
            .await?;
        // A report is judged against the version before this sync's own changes: the device
        // has those already.
        let current_before = match applied {
            Some(_) => self.version(access.device).await?,
            None => 0,
        };
        let mut rejected = Vec::new();
        if !changes.is_empty() {
            let catalog = self.catalog().await?;
            let actor = access.actor;
            let decide = move |snapshot: &DeviceSettingsSnapshot| {
                let resolved = resolve(&catalog, snapshot);
                let plan = plan_write(
                    actor,
                    &changes,
                    &key_states(&catalog, snapshot, &resolved),
                    Some(base_version),
                );
                let accepted = plan
                    .accepted
                    .iter()
                    .filter(|(key, value)| resolved.get(*key).is_none_or(|e| &e.value != *value))
                    .map(|(key, value)| SettingChange::SetValue {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect();
                Ok::<_, SettingRuleError>((accepted, plan.rejected))
            };
            let (refused, _) = self
                .steward
                .store
                .change_device_settings(
                    access.device,
                    None,
                    access.user,
                    decide,
                    &audit(access, "settings.synced", origin),
                )
                .await?;
            self.steward.device_states.forget(access.device);
            rejected = refused;
        }
        if let Some((version, failures)) = applied {
            // Failures, or a version behind the device's current one, make the device
            // non-compliant (the rule of `status`): a warning in its event stream.
            let action = if failures.is_some() || version < current_before {
                "settings.non_compliant"
            } else {
                "settings.applied"
            };
            self.steward
                .store
                .report_applied(
                    access.device,
                    version,
                    failures,
                    Utc::now(),
                    &audit(access, action, origin),
                )
                .await?;
        }
        let (rendered, tag) = self.rendered(access.device).await?;
        Ok((rendered, rejected, tag))
    }

    /// A device can only have seen or applied versions the server has given out: negative or
    /// future versions are refused (400). Versions only grow, so a check before the write
    /// holds after it; the cached version is trusted only when it says "fine".
    pub(super) async fn check_sync_versions(
        &self,
        device: Uuid,
        base_version: i64,
        applied_version: Option<i64>,
    ) -> Result<(), AppError> {
        let highest = base_version.max(applied_version.unwrap_or(0));
        if base_version < 0 {
            return Err(AppError::invalid("baseVersion", "must be 0 or more"));
        }
        if applied_version.is_some_and(|v| v < 0) {
            return Err(AppError::invalid("appliedVersion", "must be 0 or more"));
        }
        if highest <= self.version(device).await? {
            return Ok(());
        }
        let current = self
            .steward
            .store
            .settings_version(device)
            .await?
            .ok_or_else(not_found)?;
        self.steward.device_states.put_version(device, current);
        if base_version > current {
            return Err(AppError::invalid(
                "baseVersion",
                format!("is ahead of the server's version {current}"),
            ));
        }
        if applied_version.is_some_and(|v| v > current) {
            return Err(AppError::invalid(
                "appliedVersion",
                format!("is ahead of the server's version {current}"),
            ));
        }
        Ok(())
    }

    /// Desired versus applied state.
    pub async fn status(&self, device: Uuid) -> Result<Value, AppError> {
        let snapshot = self.snapshot(device).await?;
        let failures = snapshot
            .apply_failures
            .clone()
            .filter(|f| f.as_array().is_none_or(|a| !a.is_empty()));
        let compliant = snapshot.applied_version == Some(snapshot.settings_version) && failures.is_none();
        Ok(json!({
            "desiredVersion": snapshot.settings_version,
            "appliedVersion": snapshot.applied_version,
            "appliedAt": snapshot.applied_at,
            "failures": failures.unwrap_or_else(|| json!([])),
            "compliant": compliant,
        }))
    }

    pub async fn request_sync(
        &self,
        access: &SettingsAccess,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = audit(access, "settings.sync_requested", origin);
        Ok(self
            .steward
            .store
            .enqueue_push(access.device, "sync_requested", Utc::now(), &entry)
            .await?)
    }
}
