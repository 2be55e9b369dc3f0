//! What remote settings need from storage. Every change to a device's settings goes through
//! [`DeviceSettingsStore::change_device_settings`]: it takes the device's settings lock (bumping its
//! settings version, or failing with `VersionConflict` when the caller's expected version is
//! stale), reads the device's values fresh, lets the domain decide, applies, audits and
//! enqueues one collapsed push notification, all in one transaction.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::definitions::SettingDefinition;
use super::locks::SettingRuleError;
use super::resolution::{Layer, LayerEntry, LayerKind, LayerSource};
use crate::{AuditEntry, RepositoryError};

/// One stored device-layer value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettingValue {
    pub key: String,
    pub value: Value,
    pub locked: bool,
    pub locked_by: Option<Uuid>,
    pub locked_at: Option<DateTime<Utc>>,
    /// A lifted lock returns at this time.
    pub unlocked_until: Option<DateTime<Utc>>,
    pub lock_reason: Option<String>,
    pub updated_by: Option<Uuid>,
    pub changed_in_version: i64,
}

/// A device's stored settings and what it last reported applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSettingsSnapshot {
    pub device_id: Uuid,
    pub owner_user_id: Option<Uuid>,
    /// Bumped by every change; the ETag and sync version.
    pub settings_version: i64,
    pub values: Vec<DeviceSettingValue>,
    pub applied_version: Option<i64>,
    pub applied_at: Option<DateTime<Utc>>,
    pub apply_failures: Option<Value>,
    /// The policies that apply to a managed device: its organization's default, its fleet
    /// group's and its own.
    pub policies: Vec<AppliedPolicy>,
}

/// A policy as one layer of a device's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPolicy {
    /// `OrganizationDefault`, `Group` or `DevicePolicy`.
    pub layer: LayerKind,
    pub id: Uuid,
    pub name: String,
    pub settings: BTreeMap<String, Value>,
    pub locks: Vec<String>,
}

impl AppliedPolicy {
    /// The layer resolution takes: every value of the policy, locked where the policy locks it.
    pub fn to_layer(&self) -> Layer {
        Layer {
            kind: self.layer,
            source: Some(LayerSource {
                id: self.id,
                name: self.name.clone(),
            }),
            entries: self
                .settings
                .iter()
                .map(|(key, value)| {
                    (
                        key.clone(),
                        LayerEntry {
                            value: value.clone(),
                            locked: self.locks.contains(key),
                        },
                    )
                })
                .collect(),
        }
    }
}

impl DeviceSettingsSnapshot {
    pub fn value(&self, key: &str) -> Option<&DeviceSettingValue> {
        self.values.iter().find(|value| value.key == key)
    }
}

/// One decided change to a device's values or locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingChange {
    SetValue {
        key: String,
        value: Value,
    },
    /// Locks the key, optionally setting its value first.
    Lock {
        key: String,
        value: Option<Value>,
        reason: Option<String>,
    },
    Unlock {
        key: String,
    },
    /// Lifts the lock until `until`, after which it is in force again.
    LiftLockUntil {
        key: String,
        until: DateTime<Utc>,
    },
}

impl SettingChange {
    pub fn key(&self) -> &str {
        match self {
            Self::SetValue { key, .. }
            | Self::Lock { key, .. }
            | Self::Unlock { key }
            | Self::LiftLockUntil { key, .. } => key,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsStoreError {
    #[error(transparent)]
    Rule(#[from] SettingRuleError),
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// An unlock request's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockStatus {
    Pending,
    Approved,
    Denied,
}

impl UnlockStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied]
            .into_iter()
            .find(|status| status.as_str() == value)
    }
}

/// A device user's request to lift a lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockRequest {
    pub id: Uuid,
    pub device_id: Uuid,
    pub setting_key: String,
    pub requested_by: Uuid,
    pub reason: Option<String>,
    pub status: UnlockStatus,
    pub decided_by: Option<Uuid>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_note: Option<String>,
    /// For an approval with a duration: when the lock returns.
    pub unlock_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An approval or denial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockDecision {
    pub approve: bool,
    pub decided_by: Uuid,
    pub note: Option<String>,
    /// Approvals only: lift the lock until then; `None` lifts it for good.
    pub until: Option<DateTime<Utc>>,
}

/// A queued push notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushNotification {
    pub id: Uuid,
    pub device_id: Uuid,
    pub reason: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// The device's push token when the notification was read for delivery.
    pub push_token: Option<String>,
}

/// The setting catalog (shared by every tenant).
pub trait SettingCatalogStore {
    fn setting_definitions(
        &self,
    ) -> impl Future<Output = Result<Vec<SettingDefinition>, RepositoryError>> + Send;

    /// `Conflict` when the key exists.
    fn create_setting_definition(
        &self,
        definition: &SettingDefinition,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn update_setting_definition(
        &self,
        definition: &SettingDefinition,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Removes the definition and every device's value for it.
    fn delete_setting_definition(
        &self,
        key: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}

/// A device's stored settings: snapshots, changes decided on a snapshot under the device's
/// lock, lifted locks returning, applied versions.
pub trait DeviceSettingsStore {
    /// The device's settings version alone: the cheap answer to a conditional poll.
    fn settings_version(
        &self,
        device: Uuid,
    ) -> impl Future<Output = Result<Option<i64>, RepositoryError>> + Send;

    fn device_settings(
        &self,
        device: Uuid,
    ) -> impl Future<Output = Result<Option<DeviceSettingsSnapshot>, RepositoryError>> + Send;

    /// See the module documentation. Answers what `decide` answered and the new version (the
    /// old one when nothing changed).
    fn change_device_settings<F, R>(
        &self,
        device: Uuid,
        expected_version: Option<i64>,
        actor: Option<Uuid>,
        decide: F,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(R, i64), SettingsStoreError>> + Send
    where
        F: FnOnce(&DeviceSettingsSnapshot) -> Result<(Vec<SettingChange>, R), SettingRuleError> + Send,
        R: Send;

    /// Puts back in force every lock whose temporary lift has ended (clearing `unlocked_until`),
    /// bumping each affected device's version and enqueueing its push, so polling devices see
    /// the lock return. Answers the devices touched.
    fn return_expired_locks(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Uuid>, RepositoryError>> + Send;

    /// Records what the device says it applied. When the report differs from the last one
    /// (another version, or other failures) `audit` is written in the same transaction, about
    /// the device with `after: {appliedVersion, failures}`; a repeated report only moves
    /// `last_seen_at`. Answers whether the report was new.
    fn report_applied(
        &self,
        device: Uuid,
        applied_version: i64,
        failures: Option<Value>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

/// Requests to lift a lock, and their decisions.
pub trait UnlockRequestStore {
    /// `Conflict` when a request for this device and key is already pending.
    fn create_unlock_request(
        &self,
        request: &UnlockRequest,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn unlock_requests(
        &self,
        devices: &[Uuid],
        status: Option<UnlockStatus>,
    ) -> impl Future<Output = Result<Vec<UnlockRequest>, RepositoryError>> + Send;

    fn find_unlock_request(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<UnlockRequest>, RepositoryError>> + Send;

    /// Decides a pending request; an approval lifts the lock (for good or until a time) in the
    /// same transaction, bumping the settings version and enqueueing a push. `NotFound` when
    /// the request is no longer pending.
    fn decide_unlock_request(
        &self,
        id: Uuid,
        decision: &UnlockDecision,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<UnlockRequest, SettingsStoreError>> + Send;
}

/// The push notification queue the push worker drains.
pub trait PushQueue {
    /// Queues a push for the device unless one is already pending (collapsing), recording who
    /// asked for it.
    fn enqueue_push(
        &self,
        device: Uuid,
        reason: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn due_pushes(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<PushNotification>, RepositoryError>> + Send;

    /// Claims `push` for one attempt if it is still as it was read (see
    /// [`crate::accounts::Outbox::claim_email`]).
    fn claim_push(
        &self,
        push: &PushNotification,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<crate::accounts::QueueClaim>, RepositoryError>> + Send;

    /// Records a delivery under the claim; `false` when it had lapsed.
    fn mark_push_sent(
        &self,
        claim: &crate::accounts::QueueClaim,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Schedules a retry at `retry_at`, or gives up (`None`), under the claim.
    fn mark_push_failed(
        &self,
        claim: &crate::accounts::QueueClaim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    fn push_notifications(
        &self,
        status: Option<&str>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<PushNotification>, RepositoryError>> + Send;
}
