//! Remote settings: the catalog cache, the device settings state cache, and the service that
//! resolves, writes, locks and syncs a device's settings.

mod catalog;
mod catalog_admin;
pub mod service;
mod state_cache;

pub use catalog::{Catalog, SettingsCatalog};
pub use catalog_admin::{CatalogService, PUSH_LISTING};
pub use service::{
    DeviceSettingsView, LockRequest, SettingView, SettingsAccess, SettingsCallerKind, SettingsService,
    SyncOutcome, UnlockWindow,
};
pub use state_cache::{DeviceStateCache, RenderedSettings, VERSION_TTL};
