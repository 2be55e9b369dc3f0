//! Application API keys (`X-API-Key`): what existing device apps authenticate with. Stored as a
//! SHA-256 hash with a short prefix for recognising a key in listings and logs.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use chrono::Utc;
use futures_util::future::LocalBoxFuture;
use steward_auth::{hash_token, random_token};
use steward_domain::devices::{ApiKeyRecord, ApiKeyStore};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError};
use steward_persistence::Database;
use uuid::Uuid;

use crate::auth::extractor_support::state;
use crate::error::{ApiError, ErrorCode};

/// Every application API key starts with this.
pub const API_KEY_PREFIX: &str = "stw_key_";

/// Mints a key (for `steward apikeys create`); the secret is returned once.
pub async fn create_api_key(
    database: &Database,
    name: &str,
) -> Result<(ApiKeyRecord, String), RepositoryError> {
    let secret = format!("{API_KEY_PREFIX}{}", random_token(32));
    let key = ApiKeyRecord {
        id: Uuid::now_v7(),
        name: name.trim().to_owned(),
        prefix: secret.chars().take(API_KEY_PREFIX.len() + 4).collect(),
        scopes: vec!["devices:register".to_owned()],
        created_at: Utc::now(),
        last_used_at: None,
        revoked_at: None,
    };
    let audit = AuditEntry::new(Actor::system(), AuditAction::known("apikey.created"), "api_key")
        .resource_id(key.id)
        .change(
            None,
            Some(serde_json::json!({"name": key.name, "prefix": key.prefix})),
        );
    database.create_api_key(&key, hash_token(&secret), &audit).await?;
    Ok((key, secret))
}

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
            let refused = || ApiError::new(ErrorCode::Unauthorized, "a valid X-API-Key is required");
            let secret = secret.filter(|s| !s.is_empty()).ok_or_else(refused)?;
            let key = state
                .device_auth
                .api_key(&state.database, &secret, ip)
                .await
                .map_err(ApiError::from)?
                .ok_or_else(refused)?;
            Ok(AppApiKey(key))
        })
    }
}
