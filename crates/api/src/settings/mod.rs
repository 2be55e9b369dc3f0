//! Remote settings at the HTTP edge: who is calling (a user or the device itself) and the
//! response views. The service lives in `steward_app::settings`.

mod caller;
pub mod views;

pub use caller::SettingsCaller;
pub(crate) use caller::caller_kind;
pub use steward_app::settings::{
    Catalog, DeviceStateCache, LockRequest, SettingsAccess, SettingsCallerKind, SettingsCatalog,
    SettingsService, UnlockWindow, VERSION_TTL,
};
pub use views::{DeviceSettingsView, SettingView, SyncOutcome};
