//! Short-lived memory of device credentials, so that a device's poll does not pay a database
//! round trip for its API key and identifier on every request.
//!
//! A revoked API key stops working within [`API_KEY_TTL`] on every instance; identifiers never
//! change once registered, so their mapping is kept longer.

use std::time::Duration;

use chrono::Utc;
use steward_auth::hash_token;
use steward_domain::RepositoryError;
use steward_domain::devices::{ApiKeyRecord, ApiKeyStore, DeviceStore};
use steward_persistence::Database;
use uuid::Uuid;

use crate::auth::TtlCache;

pub const API_KEY_TTL: Duration = Duration::from_secs(5);
const IDENTIFIER_TTL: Duration = Duration::from_secs(300);

pub struct DeviceAuthCache {
    keys: TtlCache<ApiKeyRecord, String>,
    identifiers: TtlCache<Uuid, String>,
}

impl Default for DeviceAuthCache {
    fn default() -> Self {
        Self {
            keys: TtlCache::new(API_KEY_TTL).with_jitter(),
            identifiers: TtlCache::new(IDENTIFIER_TTL).with_jitter(),
        }
    }
}

impl std::fmt::Debug for DeviceAuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceAuthCache")
    }
}

impl DeviceAuthCache {
    /// The live key with this secret; only successes are remembered.
    pub async fn api_key(
        &self,
        database: &Database,
        secret: &str,
        ip: Option<String>,
    ) -> Result<Option<ApiKeyRecord>, RepositoryError> {
        let fingerprint = hash_token(secret);
        if let Some(key) = self.keys.get(&fingerprint) {
            return Ok(Some(key));
        }
        let key = database.use_api_key(&fingerprint, Utc::now(), ip).await?;
        if let Some(key) = &key {
            self.keys.put(fingerprint, key.clone());
        }
        Ok(key)
    }

    /// Steward's id of the device registered as `identifier`.
    pub async fn device_id(
        &self,
        database: &Database,
        identifier: &str,
    ) -> Result<Option<Uuid>, RepositoryError> {
        let identifier = identifier.to_owned();
        if let Some(id) = self.identifiers.get(&identifier) {
            return Ok(Some(id));
        }
        let id = database.device_id_for_identifier(&identifier).await?;
        if let Some(id) = id {
            self.identifiers.put(identifier, id);
        }
        Ok(id)
    }
}
