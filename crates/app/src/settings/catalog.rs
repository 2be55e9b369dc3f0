//! The setting catalog, cached: every settings read needs it, and it changes only through the
//! admin API. Other instances pick up a change within the refresh interval.

use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use steward_domain::RepositoryError;
use steward_domain::settings::definitions::SettingDefinition;
use steward_domain::settings::store::SettingCatalogStore;

const REFRESH: Duration = Duration::from_secs(5);

/// One loaded catalog and a short fingerprint of it, part of every settings ETag so that a
/// changed definition (a new default) invalidates devices' cached state.
#[derive(Debug)]
pub struct Catalog {
    pub definitions: Vec<SettingDefinition>,
    pub fingerprint: String,
}

impl Catalog {
    fn new(definitions: Vec<SettingDefinition>) -> Self {
        let fingerprint = fingerprint(&definitions);
        Self {
            definitions,
            fingerprint,
        }
    }

    pub fn get(&self, key: &str) -> Option<&SettingDefinition> {
        self.definitions.iter().find(|definition| definition.key == key)
    }
}

/// The catalog's fingerprint: the first 32 bits of a SHA-256 over each definition's key, type,
/// default, constraints, lockability and merge rule, each length-prefixed. The same on every
/// build and Rust release (std's `DefaultHasher` is not), so an upgrade does not change every
/// device's settings ETag.
fn fingerprint(definitions: &[SettingDefinition]) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    for definition in definitions {
        field(definition.key.as_bytes());
        field(definition.value_type.as_str().as_bytes());
        field(definition.default_value.to_string().as_bytes());
        field(
            serde_json::to_string(&definition.constraints)
                .unwrap_or_default()
                .as_bytes(),
        );
        field(&[u8::from(definition.is_lockable)]);
        field(definition.merge_rule.as_str().as_bytes());
    }
    let digest = hasher.finalize();
    format!(
        "{:02x}{:02x}{:02x}{:02x}",
        digest[0], digest[1], digest[2], digest[3]
    )
}

#[derive(Debug, Default)]
pub struct SettingsCatalog {
    cached: RwLock<Option<(Arc<Catalog>, Instant)>>,
}

impl SettingsCatalog {
    pub async fn load<S: SettingCatalogStore>(&self, store: &S) -> Result<Arc<Catalog>, RepositoryError> {
        if let Ok(cached) = self.cached.read()
            && let Some((catalog, at)) = cached.as_ref()
            && at.elapsed() < REFRESH
        {
            return Ok(catalog.clone());
        }
        let catalog = Arc::new(Catalog::new(store.setting_definitions().await?));
        if let Ok(mut cached) = self.cached.write() {
            *cached = Some((catalog.clone(), Instant::now()));
        }
        Ok(catalog)
    }

    /// Drops the cache after a local change to the catalog.
    pub fn invalidate(&self) {
        if let Ok(mut cached) = self.cached.write() {
            *cached = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use steward_domain::settings::definitions::{Constraints, MergeRule, ValueType};

    fn definition(key: &str, default: serde_json::Value) -> SettingDefinition {
        SettingDefinition {
            key: key.to_owned(),
            value_type: ValueType::Bool,
            default_value: default,
            constraints: Constraints::default(),
            category: "general".to_owned(),
            description: None,
            is_lockable: true,
            merge_rule: MergeRule::Override,
            sort_order: 0,
        }
    }

    #[test]
    fn the_fingerprint_is_the_same_on_every_build_and_follows_what_devices_see() {
        let catalog = [definition("device.camera_enabled", serde_json::json!(true))];
        // Fixed: a build (or Rust release) that changed it would change every device's ETag.
        assert_eq!(fingerprint(&catalog), "4b4c62de");
        let changed = [definition("device.camera_enabled", serde_json::json!(false))];
        assert_ne!(fingerprint(&catalog), fingerprint(&changed));
        let mut described = definition("device.camera_enabled", serde_json::json!(true));
        described.description = Some("words only".to_owned());
        assert_eq!(
            fingerprint(&catalog),
            fingerprint(&[described]),
            "descriptions are not in it"
        );
    }
}
