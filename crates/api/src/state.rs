//! What handlers share.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use steward_persistence::Database;

use crate::rate_limit::RateLimits;
use steward_app::Steward;

/// The store every handler uses: the server wires `steward-persistence`.
pub type Store = Database;

/// Shared application state, cloned into every worker: the application core (store, auth
/// service, caches) plus what only the HTTP shell needs.
#[derive(Clone)]
pub struct AppState {
    pub steward: Steward<Store>,
    pub metrics: PrometheusHandle,
    pub rate_limits: Arc<RateLimits>,
    /// Whether `/metrics` is served on the API's port (`false` with `STEWARD_METRICS_BIND`,
    /// which serves it on a management port instead).
    pub metrics_on_api_port: bool,
}

impl std::ops::Deref for AppState {
    type Target = Steward<Store>;

    fn deref(&self) -> &Steward<Store> {
        &self.steward
    }
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
    /// Serve the built-in pages the links in account mail lead to (no `STEWARD_APP_URL`).
    pub mail_pages: bool,
    /// The served OpenAPI document, serialised once for every worker ([`crate::openapi_document`]);
    /// `None`: each worker builds it (several MiB of garbage per worker).
    pub openapi: Option<actix_web::web::Bytes>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
            mail_pages: true,
            openapi: None,
        }
    }
}
