//! What handlers share.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use steward_persistence::Database;

use crate::auth::AuthService;
use crate::rate_limit::RateLimits;

/// Shared application state, cloned into every worker.
#[derive(Clone)]
pub struct AppState {
    pub database: Database,
    pub metrics: PrometheusHandle,
    pub auth: Arc<AuthService>,
    pub rate_limits: Arc<RateLimits>,
    pub settings_catalog: Arc<crate::settings::SettingsCatalog>,
    pub device_auth: Arc<crate::devices::DeviceAuthCache>,
    /// Shared with the push worker, which returns expired unlocks.
    pub device_states: Arc<crate::settings::DeviceStateCache>,
}

/// HTTP settings that shape the app itself.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Browser origins (`https://admin.example.com`) allowed to call the API cross-origin;
    /// none by default, so browsers refuse cross-origin calls.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
        }
    }
}
