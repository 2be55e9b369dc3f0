//! What polling devices ask for most, remembered: each device's settings version (briefly) and
//! its rendered effective settings (checked against the version and catalog on every use).
//!
//! Local changes drop a device's entries at once. A change made through another instance is
//! seen here within [`VERSION_TTL`] — shorter than the push collapse window (2 s by default),
//! so the poll a push triggers always sees the change.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use crate::cache::TtlCache;

pub const VERSION_TTL: Duration = Duration::from_secs(1);
const RENDERED_TTL: Duration = Duration::from_secs(60);

/// A device's effective settings, serialised once.
#[derive(Debug)]
pub struct RenderedSettings {
    pub version: i64,
    pub fingerprint: String,
    /// The `settings` object as JSON.
    pub json: String,
}

pub struct DeviceStateCache {
    versions: TtlCache<i64>,
    rendered: TtlCache<Arc<RenderedSettings>>,
    /// Whether the device has open commands, so a sync without any costs no query.
    open_commands: TtlCache<bool>,
}

impl Default for DeviceStateCache {
    fn default() -> Self {
        Self {
            versions: TtlCache::new(VERSION_TTL).with_jitter(),
            // A device's whole settings document each (a few KiB, more with long values).
            rendered: TtlCache::with_capacity(RENDERED_TTL, 50_000).with_jitter(),
            open_commands: TtlCache::new(VERSION_TTL).with_jitter(),
        }
    }
}

impl std::fmt::Debug for DeviceStateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceStateCache")
    }
}

impl DeviceStateCache {
    pub fn version(&self, device: Uuid) -> Option<i64> {
        self.versions.get(&device)
    }

    pub fn put_version(&self, device: Uuid, version: i64) {
        self.versions.put(device, version);
    }

    /// The rendered settings if they are of `version` under catalog `fingerprint`.
    pub fn rendered(&self, device: Uuid, version: i64, fingerprint: &str) -> Option<Arc<RenderedSettings>> {
        self.rendered
            .get(&device)
            .filter(|rendered| rendered.version == version && rendered.fingerprint == fingerprint)
    }

    pub fn put_rendered(&self, device: Uuid, rendered: Arc<RenderedSettings>) {
        self.versions.put(device, rendered.version);
        self.rendered.put(device, rendered);
    }

    /// `Some(false)` when the device was recently seen without open commands.
    pub fn has_open_commands(&self, device: Uuid) -> Option<bool> {
        self.open_commands.get(&device)
    }

    pub fn put_open_commands(&self, device: Uuid, open: bool) {
        self.open_commands.put(device, open);
    }

    /// After a change that may touch many devices' settings at once (a membership change
    /// releasing locks): every remembered version is dropped, so the next read refetches.
    pub fn forget_versions(&self) {
        self.versions.retain(|_| false);
    }

    /// After a change to the device's settings or commands.
    pub fn forget(&self, device: Uuid) {
        self.versions.forget(&device);
        self.rendered.forget(&device);
        self.open_commands.forget(&device);
    }
}
