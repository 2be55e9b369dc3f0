//! Policy resolution: from layers of values (most general first) to each key's effective value,
//! its lock, and an explanation of why.
//!
//! Precedence (PRODUCT.md): among unlocked values the most specific layer wins; a lock pins its
//! layer's value and the most general lock wins, so a more specific layer that tries to change
//! a locked value is reported as a conflict. A definition may choose another merge rule for
//! unlocked layers — `most_restrictive` or `union` — which also decides between locks of the
//! same layer.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::definitions::{MergeRule, SettingDefinition};

/// Where a value comes from, most general first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// The definition's default.
    Default,
    OrganizationDefault,
    Group,
    DevicePolicy,
    /// Values set on the device itself (by its user, the device, or group managers).
    Device,
}

impl LayerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::OrganizationDefault => "organization_default",
            Self::Group => "group",
            Self::DevicePolicy => "device_policy",
            Self::Device => "device",
        }
    }
}

/// The policy behind a layer, as explanations and refusals name it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerSource {
    pub id: Uuid,
    pub name: String,
}

/// One key's value in one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub value: Value,
    /// Whether the lock is in force now (temporary unlocks already applied by the caller).
    pub locked: bool,
}

/// The values one source contributes (a policy, or the device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub kind: LayerKind,
    /// The policy behind the layer; `None` for the device and defaults.
    pub source: Option<LayerSource>,
    pub entries: BTreeMap<String, LayerEntry>,
}

/// A layer's value for one key, as the explanation reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    pub layer: LayerKind,
    pub source: Option<LayerSource>,
    pub value: Value,
    pub locked: bool,
}

/// Why a key has its effective value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub winner: Contribution,
    pub merge_rule: MergeRule,
    /// Layers whose value lost under the merge rule.
    pub overridden: Vec<Contribution>,
    /// More specific layers that tried to change a locked value.
    pub conflicts: Vec<Contribution>,
}

/// A key's effective state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveSetting {
    pub value: Value,
    pub locked: bool,
    /// The layer whose lock is in force.
    pub locked_by: Option<LayerKind>,
    pub explanation: Explanation,
}

fn union(values: &[&Value]) -> Value {
    let members: BTreeSet<String> = values
        .iter()
        .filter_map(|value| value.as_array())
        .flatten()
        .filter_map(|item| item.as_str().map(str::to_owned))
        .collect();
    Value::from(members.into_iter().collect::<Vec<_>>())
}

/// The index of the winning contribution among `candidates` (in order, most general first) and
/// the value it yields, under `rule`.
fn pick(definition: &SettingDefinition, candidates: &[&Contribution]) -> (usize, Value) {
    let last = candidates.len().saturating_sub(1);
    match definition.merge_rule {
        MergeRule::Override => (last, candidates[last].value.clone()),
        MergeRule::MostRestrictive => {
            let order = definition.constraints.restrictiveness.as_ref();
            let mut best = last;
            // From the most specific down, keeping the first strictly more restrictive value, so
            // ties go to the most specific layer.
            for (index, candidate) in candidates.iter().enumerate().rev() {
                if let Some(order) = order
                    && order.compare(&candidate.value, &candidates[best].value).is_lt()
                {
                    best = index;
                }
            }
            (best, candidates[best].value.clone())
        }
        MergeRule::Union => {
            let values: Vec<&Value> = candidates.iter().map(|c| &c.value).collect();
            (last, union(&values))
        }
    }
}

fn resolve_key(definition: &SettingDefinition, layers: &[&Layer]) -> EffectiveSetting {
    let mut contributions = vec![Contribution {
        layer: LayerKind::Default,
        source: None,
        value: definition.default_value.clone(),
        locked: false,
    }];
    for layer in layers {
        if let Some(entry) = layer.entries.get(&definition.key) {
            contributions.push(Contribution {
                layer: layer.kind,
                source: layer.source.clone(),
                value: entry.value.clone(),
                locked: entry.locked && definition.is_lockable,
            });
        }
    }

    let lock_layer = contributions.iter().filter(|c| c.locked).map(|c| c.layer).min();
    let (candidates, locked_by): (Vec<&Contribution>, Option<LayerKind>) = match lock_layer {
        Some(layer) => (
            contributions
                .iter()
                .filter(|c| c.locked && c.layer == layer)
                .collect(),
            Some(layer),
        ),
        // The default only counts when no layer says anything.
        None if contributions.len() > 1 => (contributions[1..].iter().collect(), None),
        None => (contributions.iter().collect(), None),
    };
    let (winner_index, value) = pick(definition, &candidates);
    let winner = candidates[winner_index].clone();

    let mut overridden = Vec::new();
    let mut conflicts = Vec::new();
    for contribution in &contributions {
        // Under `union` every candidate contributes to the value; none of them lost.
        let contributed = definition.merge_rule == MergeRule::Union && candidates.contains(&contribution);
        if *contribution == winner || contributed {
            continue;
        }
        let beyond_lock = locked_by.is_some_and(|layer| contribution.layer > layer);
        if beyond_lock && contribution.value != value {
            conflicts.push(contribution.clone());
        } else {
            overridden.push(contribution.clone());
        }
    }
    EffectiveSetting {
        value,
        locked: locked_by.is_some(),
        locked_by,
        explanation: Explanation {
            winner,
            merge_rule: definition.merge_rule,
            overridden,
            conflicts,
        },
    }
}

/// Every defined key's effective state on a device, given the layers that apply to it (in any
/// order: they are sorted by kind, keeping the given order within a kind). Keys without a
/// definition are ignored; every definition gets an answer, so resolution is total.
pub fn resolve_effective_settings(
    definitions: &[SettingDefinition],
    layers: &[Layer],
) -> BTreeMap<String, EffectiveSetting> {
    let mut ordered: Vec<&Layer> = layers.iter().collect();
    ordered.sort_by_key(|layer| layer.kind);
    definitions
        .iter()
        .map(|definition| (definition.key.clone(), resolve_key(definition, &ordered)))
        .collect()
}

/// One key whose effective state differs between two resolutions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingDiff {
    pub key: String,
    pub before: DiffSide,
    pub after: DiffSide,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffSide {
    pub value: Value,
    pub locked: bool,
    pub locked_by: Option<LayerKind>,
}

impl From<&EffectiveSetting> for DiffSide {
    fn from(effective: &EffectiveSetting) -> Self {
        Self {
            value: effective.value.clone(),
            locked: effective.locked,
            locked_by: effective.locked_by,
        }
    }
}

/// The keys whose value or lock differ from `before` to `after` (what a policy change would do
/// to a device), in key order.
pub fn diff_effective(
    before: &BTreeMap<String, EffectiveSetting>,
    after: &BTreeMap<String, EffectiveSetting>,
) -> Vec<SettingDiff> {
    after
        .iter()
        .filter_map(|(key, new)| {
            let old = before.get(key)?;
            let (old, new) = (DiffSide::from(old), DiffSide::from(new));
            (old != new).then(|| SettingDiff {
                key: key.clone(),
                before: old,
                after: new,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::settings::definitions::{Constraints, Restrictiveness, ValueType};

    fn definition(key: &str, default: Value, rule: MergeRule) -> SettingDefinition {
        SettingDefinition {
            key: key.into(),
            value_type: ValueType::Bool,
            default_value: default,
            constraints: Constraints {
                restrictiveness: Some(Restrictiveness::Order(vec![json!(false), json!(true)])),
                ..Default::default()
            },
            category: "test".into(),
            description: None,
            is_lockable: true,
            merge_rule: rule,
            sort_order: 0,
        }
    }

    fn layer(kind: LayerKind, key: &str, value: Value, locked: bool) -> Layer {
        Layer {
            kind,
            source: None,
            entries: BTreeMap::from([(key.to_owned(), LayerEntry { value, locked })]),
        }
    }

    #[test]
    fn the_most_specific_unlocked_value_wins() {
        let definitions = [definition("a.b", json!(false), MergeRule::Override)];
        let layers = [
            layer(LayerKind::Device, "a.b", json!(true), false),
            layer(LayerKind::Group, "a.b", json!(false), false),
        ];
        let resolved = &resolve_effective_settings(&definitions, &layers)["a.b"];
        assert_eq!(resolved.value, json!(true));
        assert_eq!(resolved.explanation.winner.layer, LayerKind::Device);
        assert!(!resolved.locked);
        let overridden: Vec<LayerKind> = resolved.explanation.overridden.iter().map(|c| c.layer).collect();
        assert_eq!(overridden, [LayerKind::Default, LayerKind::Group]);
    }

    #[test]
    fn the_most_general_lock_wins_and_more_specific_attempts_are_conflicts() {
        let definitions = [definition("a.b", json!(false), MergeRule::Override)];
        let layers = [
            layer(LayerKind::Group, "a.b", json!(true), true),
            layer(LayerKind::DevicePolicy, "a.b", json!(false), true),
            layer(LayerKind::Device, "a.b", json!(false), false),
        ];
        let resolved = &resolve_effective_settings(&definitions, &layers)["a.b"];
        assert_eq!(resolved.value, json!(true));
        assert_eq!(resolved.locked_by, Some(LayerKind::Group));
        let conflicts: Vec<LayerKind> = resolved.explanation.conflicts.iter().map(|c| c.layer).collect();
        assert_eq!(conflicts, [LayerKind::DevicePolicy, LayerKind::Device]);
    }

    #[test]
    fn most_restrictive_and_union_merge_unlocked_layers() {
        let definitions = [definition("a.b", json!(true), MergeRule::MostRestrictive)];
        let layers = [
            layer(LayerKind::Group, "a.b", json!(false), false),
            layer(LayerKind::Device, "a.b", json!(true), false),
        ];
        let resolved = &resolve_effective_settings(&definitions, &layers)["a.b"];
        assert_eq!(resolved.value, json!(false));
        assert_eq!(resolved.explanation.winner.layer, LayerKind::Group);

        let mut apps = definition("apps.blocked", json!([]), MergeRule::Union);
        apps.value_type = ValueType::StringSet;
        let layers = [
            layer(LayerKind::Group, "apps.blocked", json!(["games", "chat"]), false),
            layer(LayerKind::Device, "apps.blocked", json!(["video"]), false),
        ];
        let resolved = &resolve_effective_settings(&[apps], &layers)["apps.blocked"];
        assert_eq!(resolved.value, json!(["chat", "games", "video"]));
    }

    #[test]
    fn a_diff_lists_only_keys_whose_value_or_lock_changes() {
        let definitions = [
            definition("a.b", json!(false), MergeRule::Override),
            definition("c.d", json!(false), MergeRule::Override),
        ];
        let before = resolve_effective_settings(&definitions, &[]);
        let after = resolve_effective_settings(
            &definitions,
            &[layer(LayerKind::DevicePolicy, "a.b", json!(false), true)],
        );
        let diff = diff_effective(&before, &after);
        assert_eq!(diff.len(), 1);
        assert_eq!(diff[0].key, "a.b");
        assert!(!diff[0].before.locked && diff[0].after.locked);
        assert_eq!(diff[0].after.locked_by, Some(LayerKind::DevicePolicy));
    }

    #[test]
    fn unlockable_definitions_ignore_locks_and_unknown_keys_are_ignored() {
        let mut free = definition("a.b", json!(false), MergeRule::Override);
        free.is_lockable = false;
        let layers = [
            layer(LayerKind::Group, "a.b", json!(true), true),
            layer(LayerKind::Device, "a.b", json!(false), false),
            layer(LayerKind::Device, "zz.unknown", json!(1), false),
        ];
        let resolved = resolve_effective_settings(&[free], &layers);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved["a.b"].value, json!(false));
        assert!(!resolved["a.b"].locked);
    }
}
