//! What the settings endpoints answer, as the spec describes it: the application's results
//! (`steward_app::settings`) converted field by field.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use steward_app::settings as app;
use steward_domain::settings::LayerSource;
use steward_domain::settings::locks::Rejection;
use utoipa::ToSchema;

/// One key's effective state as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettingView {
    #[schema(value_type = serde_json::Value)]
    pub value: Value,
    pub locked: bool,
    /// The layer whose lock is in force: `device` (a group owner or admin), or a policy layer.
    pub locked_by: Option<String>,
    pub lock_reason: Option<String>,
    /// The policy whose lock is in force, when a policy layer locks the key: only a change of
    /// that policy lifts it.
    #[schema(value_type = Option<serde_json::Value>)]
    pub policy: Option<LayerSource>,
    /// A lifted lock returns at this time.
    pub unlocked_until: Option<DateTime<Utc>>,
    /// With `?explain=true`: the winning layer, overridden layers and conflicts.
    #[schema(value_type = Option<serde_json::Value>)]
    pub explanation: Option<Value>,
}

impl From<app::SettingView> for SettingView {
    fn from(view: app::SettingView) -> Self {
        Self {
            value: view.value,
            locked: view.locked,
            locked_by: view.locked_by,
            lock_reason: view.lock_reason,
            policy: view.policy,
            unlocked_until: view.unlocked_until,
            explanation: view.explanation,
        }
    }
}

fn settings(settings: BTreeMap<String, app::SettingView>) -> BTreeMap<String, SettingView> {
    settings
        .into_iter()
        .map(|(key, view)| (key, view.into()))
        .collect()
}

/// A device's effective settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceSettingsView {
    /// The settings version: send it as `baseVersion`, `If-Match` or `version`.
    pub version: i64,
    pub settings: BTreeMap<String, SettingView>,
}

impl From<app::DeviceSettingsView> for DeviceSettingsView {
    fn from(view: app::DeviceSettingsView) -> Self {
        Self {
            version: view.version,
            settings: settings(view.settings),
        }
    }
}

/// What a sync answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncOutcome {
    pub version: i64,
    pub settings: BTreeMap<String, SettingView>,
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Rejection>,
    /// For the device itself: open commands (a wipe) to carry out and acknowledge.
    #[schema(value_type = Vec<Object>)]
    pub commands: Vec<Value>,
}

impl From<app::SyncOutcome> for SyncOutcome {
    fn from(outcome: app::SyncOutcome) -> Self {
        Self {
            version: outcome.version,
            settings: settings(outcome.settings),
            rejected: outcome.rejected,
            commands: outcome.commands,
        }
    }
}
