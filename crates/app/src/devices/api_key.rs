//! Application API keys (`X-API-Key`): what existing device apps register devices with. Stored as
//! a SHA-256 hash with a short prefix for recognising a key in listings and logs.

use chrono::Utc;
use steward_auth::Secret;
use steward_domain::devices::{
    ApiKeyRecord, ApiKeyStore, DEFAULT_ROTATION_OVERLAP_SECONDS, MAX_ROTATION_OVERLAP_SECONDS, USAGE_DAYS,
};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;
use crate::steward::{Steward, Store};

/// Every application API key starts with this.
pub const API_KEY_PREFIX: &str = "stw_key_";

/// The longest key name.
pub const MAX_KEY_NAME_CHARS: usize = 100;

/// Mints a key (for `steward apikeys create`); the secret is returned once.
pub async fn create_api_key<S: ApiKeyStore>(
    store: &S,
    name: &str,
) -> Result<(ApiKeyRecord, String), RepositoryError> {
    mint(store, name, Actor::system(), &RequestOrigin::default()).await
}

async fn mint<S: ApiKeyStore>(
    store: &S,
    name: &str,
    actor: Actor,
    origin: &RequestOrigin,
) -> Result<(ApiKeyRecord, String), RepositoryError> {
    let secret = Secret::generate(API_KEY_PREFIX);
    let key = ApiKeyRecord {
        id: Uuid::now_v7(),
        name: name.trim().to_owned(),
        prefix: secret.prefix.clone(),
        scopes: vec!["devices:register".to_owned()],
        created_at: Utc::now(),
        last_used_at: None,
        last_used_ip: None,
        revoked_at: None,
        previous_valid_until: None,
    };
    let audit = AuditEntry::new(actor, AuditAction::known("apikey.created"), "api_key")
        .resource_id(key.id)
        .origin(origin.clone())
        .change(
            None,
            Some(serde_json::json!({"name": key.name, "prefix": key.prefix})),
        );
    store.create_api_key(&key, secret.hash, &audit).await?;
    Ok((key, secret.secret))
}

/// A key as listed, with its requests per day (`YYYY-MM-DD`, count).
#[derive(Debug, Clone)]
pub struct ApiKeyListing {
    pub key: ApiKeyRecord,
    pub usage: Vec<(String, u64)>,
}

/// Application API keys as operators manage them: listed, minted (the secret shown once) and
/// revoked, each audited as the operator's.
pub struct ApiKeyService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> ApiKeyService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// Every key, revoked ones included, oldest first, each with its requests per day over
    /// the last 30 days (UTC; days without requests left out, oldest first).
    pub async fn list(&self) -> Result<Vec<ApiKeyListing>, AppError> {
        let store = &self.steward.store;
        self.steward.device_auth.flush_usage(store).await;
        let since = (Utc::now() - chrono::Duration::days(USAGE_DAYS - 1))
            .format("%Y-%m-%d")
            .to_string();
        let mut usage = std::collections::HashMap::<Uuid, Vec<(String, u64)>>::new();
        for (key, day, count) in store.api_key_requests(&since).await? {
            usage.entry(key).or_default().push((day, count));
        }
        Ok(store
            .api_keys()
            .await?
            .into_iter()
            .map(|key| ApiKeyListing {
                usage: usage.remove(&key.id).unwrap_or_default(),
                key,
            })
            .collect())
    }

    /// Gives a live key a new secret (answered once); the old secret keeps working for
    /// `overlap_seconds` (0 to 30 days, default 24 hours), a secret from an earlier rotation
    /// stops at once. Of two concurrent rotations of one key, one wins and the other is a
    /// `VersionConflict` (it would otherwise end the winner's overlap at once).
    pub async fn rotate(
        &self,
        admin: Uuid,
        key: Uuid,
        overlap_seconds: Option<i64>,
        origin: &RequestOrigin,
    ) -> Result<(ApiKeyRecord, String), AppError> {
        let overlap = overlap_seconds.unwrap_or(DEFAULT_ROTATION_OVERLAP_SECONDS);
        if !(0..=MAX_ROTATION_OVERLAP_SECONDS).contains(&overlap) {
            return Err(AppError::invalid(
                "overlapSeconds",
                "must be between 0 and 2592000 (30 days)",
            ));
        }
        let until = Utc::now() + chrono::Duration::seconds(overlap);
        let current = self
            .steward
            .store
            .api_keys()
            .await?
            .into_iter()
            .find(|found| found.id == key && found.revoked_at.is_none())
            .ok_or_else(|| AppError::not_found("no such live API key"))?;
        let secret = Secret::generate(API_KEY_PREFIX);
        let audit = AuditEntry::new(
            Actor::admin(admin),
            AuditAction::known("apikey.rotated"),
            "api_key",
        )
        .resource_id(key)
        .origin(origin.clone())
        .change(
            None,
            Some(serde_json::json!({"prefix": secret.prefix, "previousValidUntil": until})),
        );
        let rotated = self
            .steward
            .store
            .rotate_api_key(
                key,
                &current.prefix,
                secret.hash,
                secret.prefix.clone(),
                until,
                &audit,
            )
            .await?
            .ok_or_else(|| AppError::not_found("no such live API key"))?;
        // The old secret's remembered validity ended with the rotation.
        self.steward.device_auth.forget_api_key(key);
        Ok((rotated, secret.secret))
    }

    /// A new key named `name` (1 to 100 characters); answers it and its secret, shown once.
    pub async fn create(
        &self,
        admin: Uuid,
        name: &str,
        origin: &RequestOrigin,
    ) -> Result<(ApiKeyRecord, String), AppError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_KEY_NAME_CHARS {
            return Err(AppError::invalid("name", "must be 1 to 100 characters"));
        }
        Ok(mint(&self.steward.store, name, Actor::admin(admin), origin).await?)
    }

    /// Revokes a key: refused at once on this instance, within seconds elsewhere.
    pub async fn revoke(&self, admin: Uuid, key: Uuid, origin: &RequestOrigin) -> Result<(), AppError> {
        let audit = AuditEntry::new(
            Actor::admin(admin),
            AuditAction::known("apikey.revoked"),
            "api_key",
        )
        .resource_id(key)
        .origin(origin.clone());
        if !self.steward.store.revoke_api_key(key, &audit).await? {
            return Err(AppError::not_found("no such live API key"));
        }
        self.steward.device_auth.forget_api_key(key);
        Ok(())
    }
}
