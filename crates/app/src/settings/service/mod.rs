//! Settings use cases. The rules — resolution, who may write or lock, sync merging — are the
//! domain's (`steward_domain::settings`); this service gathers the inputs, asks, and stores.

mod unlocks;
mod writes;

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
        if self.steward.auth.catalog_for(&roles).await?.allows(&roles, need) {
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
}

fn refuse_rejections(plan: &WritePlan) -> Result<(), AppError> {
    if plan.rejected.is_empty() {
        Ok(())
    } else {
        Err(rejected_write(&plan.rejected))
    }
}
