//! Devices at the HTTP edge: the legacy device API's `X-API-Key` extractor. Registration,
//! ownership and transfers live in `steward_app::devices`.

mod api_key;

pub use api_key::AppApiKey;
pub use steward_app::devices::{
    API_KEY_PREFIX, API_KEY_TTL, DeviceAuthCache, DeviceService, DeviceVisibility, TransferOutcome,
    TransferTarget, UserAccess, create_api_key,
};
