//! Who may write or lock a device's setting, and how a device's sync is merged.
//!
//! Device-layer locks belong to the device owner's group managers (owners and admins of a group
//! the owner belongs to) and system admins; locks from policy layers belong to organization
//! admins and are changed through policies, never through device values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::definitions::SettingDefinition;
use super::resolution::{EffectiveSetting, LayerKind};

/// Who is acting on a device's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SettingsActor {
    /// The user who owns the device.
    DeviceUser,
    /// The device itself (device token or app API key).
    Device,
    /// An owner or admin of a group the device's owner belongs to.
    GroupManager,
    /// A system administrator with device permissions.
    SystemAdmin,
}

impl SettingsActor {
    pub const ALL: [SettingsActor; 4] = [
        Self::DeviceUser,
        Self::Device,
        Self::GroupManager,
        Self::SystemAdmin,
    ];

    /// Whether the actor holds device-layer locks.
    pub fn manages_locks(self) -> bool {
        matches!(self, Self::GroupManager | Self::SystemAdmin)
    }
}

/// Why a settings write was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingRuleError {
    #[error("setting `{key}` is locked{}", .policy.as_ref().map(|name| format!(" by policy `{name}`; only a change of that policy lifts it")).unwrap_or_default())]
    Locked {
        key: String,
        by: LayerKind,
        /// The policy whose lock is in force (policy layers only).
        policy: Option<String>,
    },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("unknown setting `{0}`")]
    Unknown(String),
    #[error("`{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("{0}")]
    Conflict(&'static str),
}

impl SettingRuleError {
    /// The code a sync rejection carries.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Locked { .. } => "SETTING_LOCKED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::Unknown(_) => "UNKNOWN_SETTING",
            Self::Invalid { .. } => "VALIDATION_ERROR",
            Self::Conflict(_) => "CONFLICT",
        }
    }
}

/// The name of the policy whose lock is in force: under a lock the winner is the locking layer.
fn locking_policy(effective: &EffectiveSetting) -> Option<String> {
    effective
        .locked_by
        .filter(|layer| *layer != LayerKind::Device)
        .and(effective.explanation.winner.source.as_ref())
        .map(|source| source.name.clone())
}

/// Whether `actor` may set the device-layer value of a key in state `effective`.
pub fn may_write_value(
    actor: SettingsActor,
    key: &str,
    effective: &EffectiveSetting,
) -> Result<(), SettingRuleError> {
    match effective.locked_by {
        None => Ok(()),
        Some(LayerKind::Device) if actor.manages_locks() => Ok(()),
        Some(by) => Err(SettingRuleError::Locked {
            key: key.to_owned(),
            by,
            policy: locking_policy(effective),
        }),
    }
}

/// Whether `actor` may lock or unlock a key at the device layer.
pub fn may_change_lock(
    actor: SettingsActor,
    definition: &SettingDefinition,
    effective: &EffectiveSetting,
) -> Result<(), SettingRuleError> {
    if !actor.manages_locks() {
        return Err(SettingRuleError::Forbidden(
            "only the device owner's group owners and admins lock settings",
        ));
    }
    if !definition.is_lockable {
        return Err(SettingRuleError::Invalid {
            key: definition.key.clone(),
            message: "this setting cannot be locked".to_owned(),
        });
    }
    match effective.locked_by {
        Some(by) if by < LayerKind::Device => Err(SettingRuleError::Locked {
            key: definition.key.clone(),
            by,
            policy: locking_policy(effective),
        }),
        _ => Ok(()),
    }
}

/// A device-layer lock as stored: locked, possibly lifted until a time (an approved unlock
/// request for a duration), after which it is in force again by itself.
pub fn lock_in_force(locked: bool, unlocked_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    locked && unlocked_until.is_none_or(|until| until <= now)
}

/// One refused key of a sync or bulk write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    pub key: String,
    pub code: &'static str,
    pub reason: String,
}

impl Rejection {
    pub fn new(key: &str, error: &SettingRuleError) -> Self {
        Self {
            key: key.to_owned(),
            code: error.code(),
            reason: error.to_string(),
        }
    }
}

/// What a write of several keys may apply: canonical values of accepted keys, and why the
/// others were refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePlan {
    pub accepted: BTreeMap<String, Value>,
    pub rejected: Vec<Rejection>,
}

/// The server's view of one key for merging a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState<'a> {
    pub definition: &'a SettingDefinition,
    pub effective: &'a EffectiveSetting,
    /// The settings version in which the device-layer value last changed (0 if never).
    pub changed_in_version: i64,
}

/// Decides each key of a write by `actor`. With `base_version` (a device's sync), a key that
/// changed on the server after that version is refused as a conflict — the server's newer value
/// wins and comes back in the answer — while the other keys still apply.
pub fn plan_write(
    actor: SettingsActor,
    changes: &BTreeMap<String, Value>,
    state: &BTreeMap<String, KeyState<'_>>,
    base_version: Option<i64>,
) -> WritePlan {
    let mut plan = WritePlan::default();
    for (key, value) in changes {
        let decision = (|| {
            let current = state
                .get(key)
                .ok_or_else(|| SettingRuleError::Unknown(key.clone()))?;
            let canonical =
                current
                    .definition
                    .validate(value)
                    .map_err(|error| SettingRuleError::Invalid {
                        key: key.clone(),
                        message: error.0,
                    })?;
            may_write_value(actor, key, current.effective)?;
            if base_version.is_some_and(|base| current.changed_in_version > base)
                && current.effective.value != canonical
            {
                return Err(SettingRuleError::Conflict(
                    "changed on the server since your base version; the server's value stands",
                ));
            }
            Ok(canonical)
        })();
        match decision {
            Ok(canonical) => {
                plan.accepted.insert(key.clone(), canonical);
            }
            Err(error) => plan.rejected.push(Rejection::new(key, &error)),
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::settings::definitions::{Constraints, MergeRule, ValueType};
    use crate::settings::resolution::{Layer, LayerEntry, resolve_effective_settings};

    fn sharing() -> SettingDefinition {
        SettingDefinition {
            key: "location.sharing_enabled".into(),
            value_type: ValueType::Bool,
            default_value: json!(false),
            constraints: Constraints::default(),
            category: "location".into(),
            description: None,
            is_lockable: true,
            merge_rule: MergeRule::Override,
            sort_order: 0,
        }
    }

    fn effective(kind: Option<LayerKind>) -> EffectiveSetting {
        let layers: Vec<Layer> = kind
            .map(|kind| Layer {
                kind,
                source: None,
                entries: BTreeMap::from([(
                    "location.sharing_enabled".to_owned(),
                    LayerEntry {
                        value: json!(true),
                        locked: true,
                    },
                )]),
            })
            .into_iter()
            .collect();
        resolve_effective_settings(&[sharing()], &layers)["location.sharing_enabled"].clone()
    }

    #[test]
    fn every_actor_against_every_lock_holder() {
        let holders = [
            None,
            Some(LayerKind::OrganizationDefault),
            Some(LayerKind::Group),
            Some(LayerKind::DevicePolicy),
            Some(LayerKind::Device),
        ];
        for actor in SettingsActor::ALL {
            for holder in holders {
                let state = effective(holder);
                let write = may_write_value(actor, "location.sharing_enabled", &state);
                let expected_write =
                    holder.is_none() || (holder == Some(LayerKind::Device) && actor.manages_locks());
                assert_eq!(write.is_ok(), expected_write, "{actor:?} writes under {holder:?}");
                if let Err(error) = write {
                    assert_eq!(error.code(), "SETTING_LOCKED");
                }
                let lock = may_change_lock(actor, &sharing(), &state);
                let expected_lock = actor.manages_locks() && holder.is_none_or(|h| h == LayerKind::Device);
                assert_eq!(lock.is_ok(), expected_lock, "{actor:?} locks under {holder:?}");
            }
        }
    }

    #[test]
    fn temporary_unlocks_expire_by_themselves() {
        let now = Utc::now();
        assert!(lock_in_force(true, None, now));
        assert!(!lock_in_force(
            true,
            Some(now + chrono::Duration::minutes(15)),
            now
        ));
        assert!(lock_in_force(true, Some(now - chrono::Duration::seconds(1)), now));
        assert!(!lock_in_force(false, None, now));
    }

    #[test]
    fn a_sync_applies_what_it_may_and_says_why_not_for_the_rest() {
        let definitions = [sharing()];
        let free = effective(None);
        let locked = effective(Some(LayerKind::Device));
        let mut current = BTreeMap::new();
        current.insert(
            "location.sharing_enabled".to_owned(),
            KeyState {
                definition: &definitions[0],
                effective: &free,
                changed_in_version: 5,
            },
        );
        let changes = BTreeMap::from([
            ("location.sharing_enabled".to_owned(), json!(true)),
            ("nope.unknown".to_owned(), json!(1)),
        ]);
        let fresh = plan_write(SettingsActor::Device, &changes, &current, Some(5));
        assert_eq!(fresh.accepted.len(), 1);
        assert_eq!(fresh.rejected[0].code, "UNKNOWN_SETTING");
        let stale = plan_write(SettingsActor::Device, &changes, &current, Some(4));
        assert_eq!(
            stale.rejected.iter().map(|r| r.code).collect::<Vec<_>>(),
            ["CONFLICT", "UNKNOWN_SETTING"]
        );
        let bad = plan_write(
            SettingsActor::Device,
            &BTreeMap::from([("location.sharing_enabled".to_owned(), json!("yes"))]),
            &current,
            None,
        );
        assert_eq!(bad.rejected[0].code, "VALIDATION_ERROR");
        current.get_mut("location.sharing_enabled").unwrap().effective = &locked;
        let refused = plan_write(SettingsActor::DeviceUser, &changes, &current, None);
        assert_eq!(refused.rejected[0].code, "SETTING_LOCKED");
        assert!(refused.accepted.is_empty());
        let manager = plan_write(SettingsActor::GroupManager, &changes, &current, None);
        assert_eq!(manager.accepted.len(), 1);
    }
}
