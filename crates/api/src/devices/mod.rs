//! Devices: the legacy device API's `X-API-Key`, registration, ownership and transfers.

mod api_key;
mod error;
mod service;

pub use api_key::{API_KEY_PREFIX, AppApiKey, create_api_key};
pub use service::{DeviceService, DeviceVisibility, TransferOutcome, TransferTarget, UserAccess};
