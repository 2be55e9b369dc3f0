//! Application API keys (`X-API-Key`): what existing device apps authenticate with. Stored as a
//! SHA-256 hash with a short prefix for recognising a key in listings and logs.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use steward_domain::devices::ApiKeyRecord;

use crate::auth::extractor_support::state;
use steward_app::devices::DeviceCredentials;

use crate::error::ApiError;

/// A request carrying a live application API key in `X-API-Key`.
#[derive(Debug, Clone)]
pub struct AppApiKey(pub ApiKeyRecord);

impl FromRequest for AppApiKey {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let secret = request
            .headers()
            .get("x-api-key")
            .and_then(|value| value.to_str().ok())
            .map(|value| value.trim().to_owned());
        let ip = crate::extractors::client_ip(request).map(|ip| ip.to_string());
        let state = state(request);
        let gate = crate::extractors::AuthGate::begin(request);
        Box::pin(async move {
            let _gate = gate;
            let state = state?;
            let key = DeviceCredentials::new(&state)
                .api_key(&secret.unwrap_or_default(), ip)
                .await
                .map_err(ApiError::from)?;
            Ok(AppApiKey(key))
        })
    }
}
