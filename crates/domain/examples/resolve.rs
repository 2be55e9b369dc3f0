//! The rules alone, with no database and no runtime: resolve a device's settings from its
//! layers (defaults, an organization policy, the device's own values) and check an RBAC
//! decision.
//!
//! `cargo run -p steward-domain --example resolve`

use std::collections::BTreeMap;

use serde_json::json;
use steward_domain::rbac::{Permission, RoleCatalog};
use steward_domain::settings::definitions::{Constraints, MergeRule, SettingDefinition, ValueType};
use steward_domain::settings::{Layer, LayerEntry, LayerKind, LayerSource, resolve_effective_settings};
use uuid::Uuid;

fn definition(key: &str, value_type: ValueType, default: serde_json::Value) -> SettingDefinition {
    SettingDefinition {
        key: key.to_owned(),
        value_type,
        default_value: default,
        constraints: Constraints::default(),
        category: "example".to_owned(),
        description: None,
        is_lockable: true,
        merge_rule: MergeRule::Override,
        sort_order: 0,
    }
}

fn entry(value: serde_json::Value, locked: bool) -> LayerEntry {
    LayerEntry { value, locked }
}

fn main() {
    let catalog = [
        definition("location.sharing_enabled", ValueType::Bool, json!(false)),
        definition("screen_time.daily_minutes", ValueType::Int, json!(120)),
    ];
    // The organization's policy turns location sharing on and locks it; the device's user
    // tried to turn it off and to allow more screen time.
    let policy = Layer {
        kind: LayerKind::OrganizationDefault,
        source: Some(LayerSource {
            id: Uuid::nil(),
            name: "Company phones".to_owned(),
        }),
        entries: BTreeMap::from([("location.sharing_enabled".to_owned(), entry(json!(true), true))]),
    };
    let device = Layer {
        kind: LayerKind::Device,
        source: None,
        entries: BTreeMap::from([
            ("location.sharing_enabled".to_owned(), entry(json!(false), false)),
            ("screen_time.daily_minutes".to_owned(), entry(json!(240), false)),
        ]),
    };
    let effective = resolve_effective_settings(&catalog, &[policy, device]);
    for (key, setting) in &effective {
        println!(
            "{key} = {} (locked: {}, by {:?})\n  {}",
            setting.value,
            setting.locked,
            setting.locked_by.map(LayerKind::as_str),
            serde_json::to_string(&setting.explanation).unwrap_or_default()
        );
    }
    let sharing = &effective["location.sharing_enabled"];
    assert_eq!(
        sharing.value,
        json!(true),
        "the policy's lock wins over the device"
    );
    assert_eq!(effective["screen_time.daily_minutes"].value, json!(240));

    let roles = RoleCatalog::default();
    for (held, permission) in [
        (["org_admin"], Permission::FleetAct),
        (["org_admin"], Permission::UsersWrite),
        (["auditor"], Permission::AuditExport),
    ] {
        println!("{held:?} may {permission}: {}", roles.allows(&held, permission));
    }
    assert!(roles.allows(&["org_admin"], Permission::FleetAct));
    assert!(!roles.allows(&["org_admin"], Permission::UsersWrite));
}
