//! Property tests of resolution and the lock rules over random layers and writes.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::definitions::{Constraints, MergeRule, Restrictiveness, SettingDefinition, ValueType};
use super::locks::{KeyState, SettingsActor, plan_write};
use super::resolution::{Layer, LayerEntry, LayerKind, resolve_effective_settings};

fn catalog() -> Vec<SettingDefinition> {
    let bool_order = Restrictiveness::Order(vec![json!(false), json!(true)]);
    let make = |key: &str, value_type, default, rule, restrictiveness| SettingDefinition {
        key: key.to_owned(),
        value_type,
        default_value: default,
        constraints: Constraints {
            min: Some(0),
            max: Some(1000),
            restrictiveness,
            ..Default::default()
        },
        category: "test".to_owned(),
        description: None,
        is_lockable: true,
        merge_rule: rule,
        sort_order: 0,
    };
    vec![
        make("a.flag", ValueType::Bool, json!(false), MergeRule::Override, None),
        make(
            "b.flag",
            ValueType::Bool,
            json!(true),
            MergeRule::MostRestrictive,
            Some(bool_order),
        ),
        make(
            "c.limit",
            ValueType::Int,
            json!(120),
            MergeRule::MostRestrictive,
            Some(Restrictiveness::Lower),
        ),
        make("d.apps", ValueType::StringSet, json!([]), MergeRule::Union, None),
        make("e.count", ValueType::Int, json!(1), MergeRule::Override, None),
    ]
}

fn value_for(key: &str) -> BoxedStrategy<Value> {
    match key {
        "a.flag" | "b.flag" => any::<bool>().prop_map(Value::Bool).boxed(),
        "c.limit" | "e.count" => (0i64..=1000).prop_map(Value::from).boxed(),
        _ => proptest::collection::btree_set(prop_oneof![Just("games"), Just("chat"), Just("video")], 0..3)
            .prop_map(|set| Value::from(set.into_iter().collect::<Vec<_>>()))
            .boxed(),
    }
}

const KEYS: [&str; 5] = ["a.flag", "b.flag", "c.limit", "d.apps", "e.count"];

fn entries() -> impl Strategy<Value = BTreeMap<String, LayerEntry>> {
    let per_key: Vec<_> = KEYS
        .iter()
        .map(|key| {
            proptest::option::of((value_for(key), any::<bool>())).prop_map(move |entry| {
                entry.map(|(value, locked)| ((*key).to_owned(), LayerEntry { value, locked }))
            })
        })
        .collect();
    per_key.prop_map(|entries| entries.into_iter().flatten().collect())
}

fn layers() -> impl Strategy<Value = Vec<Layer>> {
    let kind = prop_oneof![
        Just(LayerKind::OrganizationDefault),
        Just(LayerKind::Group),
        Just(LayerKind::DevicePolicy),
        Just(LayerKind::Device),
    ];
    proptest::collection::vec((kind, entries()), 0..5).prop_map(|layers| {
        layers
            .into_iter()
            .map(|(kind, entries)| Layer {
                kind,
                source: None,
                entries,
            })
            .collect()
    })
}

fn writes() -> impl Strategy<Value = Vec<(String, Value)>> {
    let one = (0usize..KEYS.len()).prop_flat_map(|index| {
        let key = KEYS[index];
        value_for(key).prop_map(move |value| (key.to_owned(), value))
    });
    proptest::collection::vec(one, 0..12)
}

/// Applies a device user's write to the device layer (creating it if missing).
fn write_device_value(layers: &mut Vec<Layer>, key: &str, value: Value) {
    let position = layers.iter().position(|layer| layer.kind == LayerKind::Device);
    let index = match position {
        Some(index) => index,
        None => {
            layers.push(Layer {
                kind: LayerKind::Device,
                source: None,
                entries: BTreeMap::new(),
            });
            layers.len() - 1
        }
    };
    let locked = layers[index].entries.get(key).is_some_and(|entry| entry.locked);
    layers[index]
        .entries
        .insert(key.to_owned(), LayerEntry { value, locked });
}

proptest! {
    #[test]
    fn resolution_is_total_deterministic_and_explains_its_winner(layers in layers()) {
        let catalog = catalog();
        let first = resolve_effective_settings(&catalog, &layers);
        prop_assert_eq!(&first, &resolve_effective_settings(&catalog, &layers));
        prop_assert_eq!(first.keys().cloned().collect::<Vec<_>>(), KEYS.map(str::to_owned).to_vec());
        for definition in &catalog {
            let resolved = &first[&definition.key];
            prop_assert!(definition.validate(&resolved.value).is_ok(), "{} = {}", definition.key, resolved.value);
            if definition.merge_rule != MergeRule::Union {
                prop_assert_eq!(&resolved.explanation.winner.value, &resolved.value);
            }
        }
    }

    #[test]
    fn a_lock_at_a_more_general_layer_is_never_overridden(layers in layers()) {
        let catalog = catalog();
        let resolved = resolve_effective_settings(&catalog, &layers);
        for key in KEYS {
            let most_general_lock = layers
                .iter()
                .filter(|layer| layer.entries.get(key).is_some_and(|entry| entry.locked))
                .map(|layer| layer.kind)
                .min();
            let effective = &resolved[key];
            prop_assert_eq!(effective.locked_by, most_general_lock);
            if let Some(kind) = most_general_lock {
                let pinned: Vec<&Value> = layers
                    .iter()
                    .filter(|layer| layer.kind == kind)
                    .filter_map(|layer| layer.entries.get(key))
                    .filter(|entry| entry.locked)
                    .map(|entry| &entry.value)
                    .collect();
                if key == "d.apps" {
                    // Union of the pinned sets.
                    for set in pinned {
                        for member in set.as_array().into_iter().flatten() {
                            prop_assert!(effective.value.as_array().is_some_and(|all| all.contains(member)));
                        }
                    }
                } else {
                    prop_assert!(pinned.contains(&&effective.value), "{key}: {} not among {:?}", effective.value, pinned);
                }
                for conflict in &effective.explanation.conflicts {
                    prop_assert!(conflict.layer > kind);
                }
            }
        }
    }

    #[test]
    fn no_sequence_of_user_writes_changes_a_locked_key(mut layers in layers(), writes in writes()) {
        let catalog = catalog();
        let before = resolve_effective_settings(&catalog, &layers);
        for (key, value) in writes {
            let resolved = resolve_effective_settings(&catalog, &layers);
            let state: BTreeMap<String, KeyState<'_>> = catalog
                .iter()
                .map(|definition| {
                    (definition.key.clone(), KeyState {
                        definition,
                        effective: &resolved[&definition.key],
                        changed_in_version: 0,
                    })
                })
                .collect();
            let plan = plan_write(SettingsActor::DeviceUser, &BTreeMap::from([(key, value)]), &state, None);
            for (key, value) in plan.accepted {
                write_device_value(&mut layers, &key, value);
            }
        }
        let after = resolve_effective_settings(&catalog, &layers);
        for key in KEYS {
            if before[key].locked {
                prop_assert_eq!(&after[key].value, &before[key].value, "{} changed under a lock", key);
                prop_assert_eq!(after[key].locked_by, before[key].locked_by);
            }
        }
    }
}
