//! Remote settings: the catalog cache, who is calling (a user or the device itself), and the
//! service that resolves, writes, locks and syncs a device's settings.

mod caller;
mod catalog;
mod error;
pub mod service;
mod state_cache;

pub use caller::{SettingsCaller, SettingsCallerKind};
pub use catalog::{Catalog, SettingsCatalog};
pub use service::{DeviceSettingsView, SettingsAccess, SettingsService, SyncOutcome, UnlockWindow};
pub use state_cache::{DeviceStateCache, RenderedSettings, VERSION_TTL};
