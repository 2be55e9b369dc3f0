//! The setting catalog, cached: every settings read needs it, and it changes only through the
//! admin API. Other instances pick up a change within the refresh interval.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
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
        let mut hasher = DefaultHasher::new();
        for definition in &definitions {
            definition.key.hash(&mut hasher);
            definition.value_type.hash(&mut hasher);
            definition.default_value.to_string().hash(&mut hasher);
            serde_json::to_string(&definition.constraints)
                .unwrap_or_default()
                .hash(&mut hasher);
            definition.is_lockable.hash(&mut hasher);
            definition.merge_rule.hash(&mut hasher);
        }
        Self {
            definitions,
            fingerprint: format!("{:08x}", hasher.finish() & 0xffff_ffff),
        }
    }

    pub fn get(&self, key: &str) -> Option<&SettingDefinition> {
        self.definitions.iter().find(|definition| definition.key == key)
    }
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
