//! Devices: application API keys, the device credential cache, registration, ownership and
//! transfers.

mod api_key;
mod auth_cache;
mod credentials;
mod service;

pub use api_key::{API_KEY_PREFIX, ApiKeyListing, ApiKeyService, MAX_KEY_NAME_CHARS, create_api_key};
pub use auth_cache::{API_KEY_TTL, DeviceAuthCache};
pub use credentials::DeviceCredentials;
pub use service::{DeviceService, DeviceVisibility, TransferOutcome, TransferTarget, UserAccess};
