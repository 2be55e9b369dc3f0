//! Settings use cases. The rules — resolution, who may write or lock, sync merging — are the
//! domain's (`steward_domain::settings`); this service gathers the inputs, asks, and stores.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use steward_domain::groups::manages_devices_of;
use steward_domain::rbac::Permission;
use steward_domain::settings::locks::{KeyState, Rejection, WritePlan};
use steward_domain::settings::store::{
    AppliedPolicy, DeviceSettingsSnapshot, SettingChange, UnlockDecision, UnlockRequest, UnlockStatus,
};
pub use steward_domain::settings::unlocks::UnlockWindow;
use steward_domain::settings::{
    EffectiveSetting, Layer, LayerEntry, LayerKind, LayerSource, SettingDiff, SettingRuleError,
    SettingsActor, diff_effective, lock_in_force, may_change_lock, plan_write, resolve_effective_settings,
};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use super::catalog::Catalog;
use super::state_cache::RenderedSettings;
use crate::error::{AppError, ErrorKind, rejected_write};
use crate::steward::{Steward, Store};

/// Who calls a device's settings endpoints: a user, or the device itself (by its device token,
/// or by legacy `X-API-Key` + `X-Device-Id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsCallerKind {
    User(Uuid),
    Device(Uuid),
}

/// The caller's standing on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SettingsAccess {
    pub device: Uuid,
    pub actor: SettingsActor,
    /// The acting user; `None` when the device itself calls.
    pub user: Option<Uuid>,
    /// The device's owner, when the caller is a user (not looked up for the device itself).
    pub owner: Option<Uuid>,
}

/// One key's effective state as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingView {
    pub value: Value,
    pub locked: bool,
    /// The layer whose lock is in force: `device` (a group owner or admin), or a policy layer.
    pub locked_by: Option<String>,
    pub lock_reason: Option<String>,
    /// The policy whose lock is in force, when a policy layer locks the key: only a change of
    /// that policy lifts it.
    pub policy: Option<LayerSource>,
    /// A lifted lock returns at this time.
    pub unlocked_until: Option<DateTime<Utc>>,
    /// With `?explain=true`: the winning layer, overridden layers and conflicts.
    pub explanation: Option<Value>,
}

/// A device's effective settings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSettingsView {
    /// The settings version: send it as `baseVersion`, `If-Match` or `version`.
    pub version: i64,
    pub settings: BTreeMap<String, SettingView>,
}

/// What a sync answers.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncOutcome {
    pub version: i64,
    pub settings: BTreeMap<String, SettingView>,
    pub rejected: Vec<Rejection>,
    /// For the device itself: open commands (a wipe) to carry out and acknowledge.
    pub commands: Vec<Value>,
}

/// A lock to set or lift in a bulk request.
#[derive(Debug, Clone)]
pub struct LockRequest {
    pub key: String,
    pub locked: bool,
    pub value: Option<Value>,
    pub reason: Option<String>,
}

pub struct SettingsService<'a, S> {
    steward: &'a Steward<S>,
}

fn not_found() -> AppError {
    AppError::not_found("no such device")
}

fn layers(snapshot: &DeviceSettingsSnapshot, now: DateTime<Utc>) -> Vec<Layer> {
    let entries = snapshot
        .values
        .iter()
        .map(|value| {
            (
                value.key.clone(),
                LayerEntry {
                    value: value.value.clone(),
                    locked: lock_in_force(value.locked, value.unlocked_until, now),
                },
            )
        })
        .collect();
    let mut layers: Vec<Layer> = snapshot.policies.iter().map(|policy| policy.to_layer()).collect();
    layers.push(Layer {
        kind: LayerKind::Device,
        source: None,
        entries,
    });
    layers
}

fn resolve(catalog: &Catalog, snapshot: &DeviceSettingsSnapshot) -> BTreeMap<String, EffectiveSetting> {
    resolve_effective_settings(&catalog.definitions, &layers(snapshot, Utc::now()))
}

fn key_states<'c>(
    catalog: &'c Catalog,
    snapshot: &DeviceSettingsSnapshot,
    resolved: &'c BTreeMap<String, EffectiveSetting>,
) -> BTreeMap<String, KeyState<'c>> {
    catalog
        .definitions
        .iter()
        .filter_map(|definition| {
            let effective = resolved.get(&definition.key)?;
            let changed_in_version = snapshot
                .value(&definition.key)
                .map_or(0, |value| value.changed_in_version);
            Some((
                definition.key.clone(),
                KeyState {
                    definition,
                    effective,
                    changed_in_version,
                },
            ))
        })
        .collect()
}

/// The view of resolved settings, with lock details from the stored values.
pub fn view(
    snapshot: &DeviceSettingsSnapshot,
    resolved: BTreeMap<String, EffectiveSetting>,
    explain: bool,
) -> BTreeMap<String, SettingView> {
    let now = Utc::now();
    resolved
        .into_iter()
        .map(|(key, effective)| {
            let stored = snapshot.value(&key);
            let device_lock = effective.locked_by == Some(LayerKind::Device);
            let view = SettingView {
                locked: effective.locked,
                locked_by: effective.locked_by.map(|layer| layer.as_str().to_owned()),
                lock_reason: stored.filter(|_| device_lock).and_then(|s| s.lock_reason.clone()),
                policy: effective
                    .locked_by
                    .filter(|layer| *layer != LayerKind::Device)
                    .and(effective.explanation.winner.source.clone()),
                unlocked_until: stored
                    .filter(|s| s.locked)
                    .and_then(|s| s.unlocked_until)
                    .filter(|until| *until > now),
                explanation: explain.then(|| json!(effective.explanation)),
                value: effective.value,
            };
            (key, view)
        })
        .collect()
}

/// `"<version>.<catalog fingerprint>"`: changes when the device's settings or the catalog do.
pub fn etag(version: i64, catalog: &Catalog) -> String {
    format!("\"{version}.{}\"", catalog.fingerprint)
}

fn audit(access: &SettingsAccess, action: &'static str, origin: &RequestOrigin) -> AuditEntry {
    let actor = match (access.actor, access.user) {
        (SettingsActor::SystemAdmin, Some(user)) => Actor::admin(user),
        (_, Some(user)) => Actor::user(user),
        (_, None) => Actor::device(access.device),
    };
    AuditEntry::new(actor, AuditAction::known(action), "device").origin(origin.clone())
}

impl<'a, S: Store> SettingsService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    pub async fn catalog(&self) -> Result<Arc<Catalog>, AppError> {
        Ok(self.steward.settings_catalog.load(&self.steward.store).await?)
    }

    /// Who the caller is to this device; 404 for anyone without business there. A system
    /// administrator reaches any device with `need` (`DevicesRead` to read, `DevicesWrite` to
    /// change).
    pub async fn access(
        &self,
        caller: SettingsCallerKind,
        device: Uuid,
        need: Permission,
    ) -> Result<SettingsAccess, AppError> {
        let user = match caller {
            // The hot path of polling devices: no further lookups (the owner is read when needed).
            SettingsCallerKind::Device(id) if id == device => {
                return Ok(SettingsAccess {
                    device,
                    actor: SettingsActor::Device,
                    user: None,
                    owner: None,
                });
            }
            SettingsCallerKind::Device(_) => return Err(not_found()),
            SettingsCallerKind::User(user) => user,
        };
        let found = self
            .steward
            .store
            .find_device(device)
            .await?
            .ok_or_else(not_found)?;
        let owner = found.owner_user_id;
        let access = |actor| SettingsAccess {
            device,
            actor,
            user: Some(user),
            owner,
        };
        if owner == Some(user) {
            return Ok(access(SettingsActor::DeviceUser));
        }
        if let Some(owner) = owner {
            let pairs = self.steward.store.role_pairs(user, owner).await?;
            if pairs
                .iter()
                .any(|(mine, theirs)| manages_devices_of(*mine, *theirs))
            {
                return Ok(access(SettingsActor::GroupManager));
            }
        }
        let roles = self.steward.auth.system_roles(user).await?;
        if self.steward.auth.roles().allows(&roles, need) {
            return Ok(access(SettingsActor::SystemAdmin));
        }
        Err(not_found())
    }

    async fn snapshot(&self, device: Uuid) -> Result<DeviceSettingsSnapshot, AppError> {
        self.steward
            .store
            .device_settings(device)
            .await?
            .ok_or_else(not_found)
    }

    /// The device's settings version: from the short cache, else one query.
    async fn version(&self, device: Uuid) -> Result<i64, AppError> {
        if let Some(version) = self.steward.device_states.version(device) {
            return Ok(version);
        }
        let version = self
            .steward
            .store
            .settings_version(device)
            .await?
            .ok_or_else(not_found)?;
        self.steward.device_states.put_version(device, version);
        Ok(version)
    }

    /// The cheap answer for a conditional poll: the current ETag, without resolving anything.
    pub async fn current_etag(&self, device: Uuid) -> Result<String, AppError> {
        let version = self.version(device).await?;
        Ok(etag(version, &*self.catalog().await?))
    }

    /// The effective settings and their ETag, resolved from fresh data.
    pub async fn effective(
        &self,
        device: Uuid,
        explain: bool,
    ) -> Result<(DeviceSettingsView, String), AppError> {
        let catalog = self.catalog().await?;
        let snapshot = self.snapshot(device).await?;
        let resolved = resolve(&catalog, &snapshot);
        let tag = etag(snapshot.settings_version, &catalog);
        Ok((
            DeviceSettingsView {
                version: snapshot.settings_version,
                settings: view(&snapshot, resolved, explain),
            },
            tag,
        ))
    }

    /// What the device's effective settings would become if its `layer` policy were `policy`
    /// (`None`: no policy at that layer): resolution run twice, nothing written.
    pub async fn policy_diff(
        &self,
        device: Uuid,
        layer: LayerKind,
        policy: Option<AppliedPolicy>,
    ) -> Result<Vec<SettingDiff>, AppError> {
        let catalog = self.catalog().await?;
        let snapshot = self.snapshot(device).await?;
        let before = resolve(&catalog, &snapshot);
        let mut changed = snapshot;
        changed.policies.retain(|applied| applied.layer != layer);
        changed.policies.extend(policy);
        Ok(diff_effective(&before, &resolve(&catalog, &changed)))
    }

    /// The effective settings serialised, reused while the device's version and the catalog
    /// stay the same (what polling devices and empty syncs ask for).
    pub async fn rendered(&self, device: Uuid) -> Result<(Arc<RenderedSettings>, String), AppError> {
        let catalog = self.catalog().await?;
        let version = self.version(device).await?;
        if let Some(rendered) = self
            .steward
            .device_states
            .rendered(device, version, &catalog.fingerprint)
        {
            return Ok((rendered, etag(version, &catalog)));
        }
        let (view, tag) = self.effective(device, false).await?;
        let json = serde_json::to_string(&view.settings).map_err(|_| AppError::internal())?;
        let rendered = Arc::new(RenderedSettings {
            version: view.version,
            fingerprint: catalog.fingerprint.clone(),
            json,
        });
        self.steward.device_states.put_rendered(device, rendered.clone());
        Ok((rendered, tag))
    }

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
            self.steward
                .store
                .report_applied(access.device, version, failures, Utc::now())
                .await?;
        }
        let (rendered, tag) = self.rendered(access.device).await?;
        Ok((rendered, rejected, tag))
    }

    /// A device can only have seen or applied versions the server has given out: negative or
    /// future versions are refused (400). Versions only grow, so a check before the write
    /// holds after it; the cached version is trusted only when it says "fine".
    async fn check_sync_versions(
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

fn refuse_rejections(plan: &WritePlan) -> Result<(), AppError> {
    if plan.rejected.is_empty() {
        Ok(())
    } else {
        Err(rejected_write(&plan.rejected))
    }
}
