//! Short-lived memory of device credentials, so that a device's poll does not pay a database
//! round trip for its API key and identifier on every request.
//!
//! A revoked API key or device token, and a suspension, take effect within [`API_KEY_TTL`] on
//! every instance (at once on the instance that made the change); identifiers never change
//! once registered, so their mapping is kept longer.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use steward_auth::hash_token;
use steward_domain::RepositoryError;
use steward_domain::devices::{ApiKeyRecord, ApiKeyStore, ApiKeyUse, DeviceStore};
use steward_domain::fleet::{DeviceStatus, DeviceTokenGrant, EnrollmentStore, FleetDeviceStore};
use uuid::Uuid;

use crate::cache::TtlCache;

pub const API_KEY_TTL: Duration = Duration::from_secs(5);
const IDENTIFIER_TTL: Duration = Duration::from_secs(300);

pub struct DeviceAuthCache {
    keys: TtlCache<ApiKeyUse, String>,
    /// Requests per key and day (`YYYY-MM-DD`) not yet added to the database: written with
    /// the next lookup that misses the cache, and before a listing.
    usage: Mutex<HashMap<(Uuid, String), u64>>,
    /// When the counts were last written from a lookup: at most every [`API_KEY_TTL`], so
    /// requests with made-up keys (every one a miss) do not turn into writes.
    usage_written: Mutex<Option<std::time::Instant>>,
    identifiers: TtlCache<Uuid, String>,
    device_tokens: TtlCache<DeviceTokenGrant, String>,
    statuses: TtlCache<DeviceStatus>,
    /// `STEWARD_LEGACY_DEVICE_AUTH`: `X-API-Key` + `X-Device-Id` authenticate a device.
    legacy: bool,
}

impl Default for DeviceAuthCache {
    fn default() -> Self {
        Self {
            keys: TtlCache::new(API_KEY_TTL).with_jitter(),
            usage: Mutex::new(HashMap::new()),
            usage_written: Mutex::new(None),
            identifiers: TtlCache::new(IDENTIFIER_TTL).with_jitter(),
            device_tokens: TtlCache::new(API_KEY_TTL).with_jitter(),
            statuses: TtlCache::new(API_KEY_TTL).with_jitter(),
            legacy: false,
        }
    }
}

impl std::fmt::Debug for DeviceAuthCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceAuthCache")
    }
}

impl DeviceAuthCache {
    /// With `legacy`, the app's key plus a device identifier authenticates as that device
    /// (unsafe: the key ships in every copy of the app and identifiers are not secrets).
    pub fn with_legacy_auth(mut self, legacy: bool) -> Self {
        self.legacy = legacy;
        self
    }

    pub fn legacy_auth(&self) -> bool {
        self.legacy
    }

    /// The live key with this secret; only successes are remembered (a rotated key's previous
    /// secret only until its overlap ends). Every success is counted for the key's usage.
    pub async fn api_key<S: ApiKeyStore>(
        &self,
        store: &S,
        secret: &str,
        ip: Option<String>,
    ) -> Result<Option<ApiKeyRecord>, RepositoryError> {
        let fingerprint = hash_token(secret);
        let now = Utc::now();
        if let Some(found) = self.keys.get(&fingerprint) {
            if found.valid_until.is_none_or(|until| until > now) {
                self.count(found.key.id, now);
                return Ok(Some(found.key));
            }
            self.keys.forget(&fingerprint);
        }
        let due = self.usage_written.lock().is_ok_and(|mut written| {
            let due = written.is_none_or(|at| at.elapsed() >= API_KEY_TTL);
            if due {
                *written = Some(std::time::Instant::now());
            }
            due
        });
        if due {
            self.flush_usage(store).await;
        }
        let found = store.use_api_key(&fingerprint, now, ip).await?;
        Ok(found.map(|found| {
            self.count(found.key.id, now);
            self.keys.put(fingerprint, found.clone());
            found.key
        }))
    }

    fn count(&self, key: Uuid, now: chrono::DateTime<Utc>) {
        let day = now.format("%Y-%m-%d").to_string();
        if let Ok(mut usage) = self.usage.lock() {
            *usage.entry((key, day)).or_default() += 1;
        }
    }

    /// Writes the counted requests (best effort: a failed write puts them back).
    pub async fn flush_usage<S: ApiKeyStore>(&self, store: &S) {
        let pending: Vec<(Uuid, String, u64)> = match self.usage.lock() {
            Ok(mut usage) => usage
                .drain()
                .map(|((key, day), count)| (key, day, count))
                .collect(),
            Err(_) => return,
        };
        if pending.is_empty() {
            return;
        }
        if let Err(error) = store.count_api_key_requests(&pending).await {
            tracing::warn!(%error, "could not record API key usage; keeping it for the next try");
            if let Ok(mut usage) = self.usage.lock() {
                for (key, day, count) in pending {
                    *usage.entry((key, day)).or_default() += count;
                }
            }
        }
    }

    /// Steward's id of the device registered as `identifier`.
    pub async fn device_id<S: DeviceStore>(
        &self,
        store: &S,
        identifier: &str,
    ) -> Result<Option<Uuid>, RepositoryError> {
        let identifier = identifier.to_owned();
        if let Some(id) = self.identifiers.get(&identifier) {
            return Ok(Some(id));
        }
        let id = store.device_id_for_identifier(&identifier).await?;
        if let Some(id) = id {
            self.identifiers.put(identifier, id);
        }
        Ok(id)
    }

    /// The live device token with this secret; only successes are remembered.
    pub async fn device_token<S: EnrollmentStore>(
        &self,
        store: &S,
        secret: &str,
    ) -> Result<Option<DeviceTokenGrant>, RepositoryError> {
        let fingerprint = hash_token(secret);
        let now = Utc::now();
        if let Some(grant) = self.device_tokens.get(&fingerprint) {
            return Ok(Some(grant).filter(|grant| grant.expires_at > now));
        }
        let grant = store.device_token(&fingerprint, now).await?;
        if let Some(grant) = grant {
            self.device_tokens.put(fingerprint, grant);
        }
        Ok(grant)
    }

    /// The device's status (`Active` for a device that does not exist: callers find that out
    /// themselves).
    pub async fn status<S: FleetDeviceStore>(
        &self,
        store: &S,
        device: Uuid,
    ) -> Result<DeviceStatus, RepositoryError> {
        if let Some(status) = self.statuses.get(&device) {
            return Ok(status);
        }
        let status = store.device_status(device).await?.unwrap_or(DeviceStatus::Active);
        self.statuses.put(device, status);
        Ok(status)
    }

    /// After a suspension, resumption, retirement or new token on this instance: forget what
    /// was remembered of the device.
    pub fn forget_device(&self, device: Uuid) {
        self.statuses.forget(&device);
        self.device_tokens.retain(|grant| grant.device_id != device);
    }

    /// After an API key was revoked on this instance: it stops here at once (elsewhere within
    /// [`API_KEY_TTL`]).
    pub fn forget_api_key(&self, key: Uuid) {
        self.keys.retain(|found| found.key.id != key);
    }
}
