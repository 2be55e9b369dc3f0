//! Application API keys (`X-API-Key`): what existing device apps register devices with. Stored as
//! a SHA-256 hash with a short prefix for recognising a key in listings and logs.

use chrono::Utc;
use steward_auth::Secret;
use steward_domain::devices::{ApiKeyRecord, ApiKeyStore};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError};
use uuid::Uuid;

/// Every application API key starts with this.
pub const API_KEY_PREFIX: &str = "stw_key_";

/// Mints a key (for `steward apikeys create`); the secret is returned once.
pub async fn create_api_key<S: ApiKeyStore>(
    store: &S,
    name: &str,
) -> Result<(ApiKeyRecord, String), RepositoryError> {
    let secret = Secret::generate(API_KEY_PREFIX);
    let key = ApiKeyRecord {
        id: Uuid::now_v7(),
        name: name.trim().to_owned(),
        prefix: secret.prefix.clone(),
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
    store.create_api_key(&key, secret.hash, &audit).await?;
    Ok((key, secret.secret))
}
