//! Unlock requests: a device's user asks, a group owner or admin approves (for a window) or denies.

use super::*;

impl<S: Store> SettingsService<'_, S> {
    pub async fn request_unlock(
        &self,
        access: &SettingsAccess,
        key: &str,
        reason: Option<String>,
        origin: &RequestOrigin,
    ) -> Result<UnlockRequest, AppError> {
        let owner = match access.actor {
            SettingsActor::Device => self
                .steward
                .store
                .find_device(access.device)
                .await?
                .and_then(|d| d.owner_user_id),
            _ => access.owner,
        };
        let requester = match (access.actor, access.user, owner) {
            (SettingsActor::DeviceUser, Some(user), _) => user,
            (SettingsActor::Device, None, Some(owner)) => owner,
            _ => {
                return Err(AppError::new(
                    ErrorKind::Forbidden,
                    "unlock requests come from the device's user",
                ));
            }
        };
        let (state, _) = self.effective(access.device, false).await?;
        let setting = state
            .settings
            .get(key)
            .ok_or_else(|| AppError::not_found(format!("unknown setting `{key}`")))?;
        match setting.locked_by.as_deref() {
            None => return Err(AppError::new(ErrorKind::Conflict, "this setting is not locked")),
            Some("device") => {}
            Some(_) => {
                return Err(AppError::new(
                    ErrorKind::Conflict,
                    "this setting is locked by an organization policy; ask your organization",
                ));
            }
        }
        let reason = reason
            .map(|r| r.trim().chars().take(1000).collect::<String>())
            .filter(|r| !r.is_empty());
        let request = UnlockRequest {
            id: Uuid::now_v7(),
            device_id: access.device,
            setting_key: key.to_owned(),
            requested_by: requester,
            reason,
            status: UnlockStatus::Pending,
            decided_by: None,
            decided_at: None,
            decision_note: None,
            unlock_until: None,
            created_at: Utc::now(),
        };
        let entry = audit(access, "settings.unlock_requested", origin)
            .resource_id(access.device)
            .change(
                None,
                Some(json!({"requestId": request.id, "key": key, "reason": request.reason})),
            );
        self.steward
            .store
            .create_unlock_request(&request, &entry)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AppError::new(
                    ErrorKind::Conflict,
                    "an unlock request for this setting is already pending",
                ),
                other => other.into(),
            })?;
        Ok(request)
    }

    pub async fn device_unlock_requests(
        &self,
        device: Uuid,
        status: Option<UnlockStatus>,
    ) -> Result<Vec<UnlockRequest>, AppError> {
        Ok(self.steward.store.unlock_requests(&[device], status).await?)
    }

    /// Requests on the devices of the members `manager` manages in `group`.
    pub async fn group_unlock_requests(
        &self,
        group: Uuid,
        manager_role: steward_domain::groups::GroupRole,
        status: Option<UnlockStatus>,
    ) -> Result<Vec<UnlockRequest>, AppError> {
        let managed: Vec<Uuid> = self
            .steward
            .store
            .member_ids(group)
            .await?
            .into_iter()
            .filter(|(_, role)| manages_devices_of(manager_role, *role))
            .map(|(user, _)| user)
            .collect();
        let devices: Vec<Uuid> = self
            .steward
            .store
            .devices_owned_by(&managed)
            .await?
            .into_iter()
            .map(|device| device.id)
            .collect();
        Ok(self.steward.store.unlock_requests(&devices, status).await?)
    }

    pub async fn decide_unlock(
        &self,
        user: Uuid,
        request: Uuid,
        approve: bool,
        note: Option<String>,
        window: UnlockWindow,
        origin: &RequestOrigin,
    ) -> Result<UnlockRequest, AppError> {
        let found = self
            .steward
            .store
            .find_unlock_request(request)
            .await?
            .ok_or_else(|| AppError::not_found("no such unlock request"))?;
        let access = self
            .access(
                SettingsCallerKind::User(user),
                found.device_id,
                Permission::DevicesWrite,
            )
            .await
            .map_err(|_| AppError::not_found("no such unlock request"))?;
        if !access.actor.manages_locks() {
            return Err(AppError::new(
                ErrorKind::Forbidden,
                "only the device owner's group owners and admins decide unlock requests",
            ));
        }
        let now = Utc::now();
        let until = window.ends_at(now)?;
        let decision = UnlockDecision {
            approve,
            decided_by: user,
            note: note
                .map(|n| n.trim().chars().take(1000).collect::<String>())
                .filter(|n| !n.is_empty()),
            until,
        };
        let action = if approve {
            "settings.unlock_approved"
        } else {
            "settings.unlock_denied"
        };
        let decided = self
            .steward
            .store
            .decide_unlock_request(request, &decision, now, &audit(&access, action, origin))
            .await
            .map_err(|error| match error {
                steward_domain::settings::store::SettingsStoreError::Repository(
                    steward_domain::RepositoryError::NotFound,
                ) => AppError::new(ErrorKind::Conflict, "this unlock request was already decided"),
                other => other.into(),
            })?;
        self.steward.device_states.forget(found.device_id);
        Ok(decided)
    }
}
