//! The setting catalog as administrators change it: every change is audited and drops the
//! cached catalog on this instance (others refresh within seconds); the push queue, to see
//! failed deliveries.

use std::sync::Arc;

use serde_json::Value;
use steward_domain::settings::definitions::SettingDefinition;
use steward_domain::settings::store::PushNotification;
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError, RequestOrigin};
use uuid::Uuid;

use super::catalog::Catalog;
use crate::error::AppError;
use crate::steward::{Steward, Store};

/// The most push notifications one listing shows.
pub const PUSH_LISTING: u64 = 200;

pub struct CatalogService<'a, S> {
    steward: &'a Steward<S>,
}

fn audit(
    admin: Uuid,
    action: &'static str,
    key: &str,
    origin: &RequestOrigin,
    after: Option<Value>,
) -> AuditEntry {
    AuditEntry::new(
        Actor::admin(admin),
        AuditAction::known(action),
        "setting_definition",
    )
    .resource_id(key)
    .change(None, after)
    .origin(origin.clone())
}

impl<'a, S: Store> CatalogService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// The catalog, in display order.
    pub async fn catalog(&self) -> Result<Arc<Catalog>, AppError> {
        Ok(self.steward.settings_catalog.load(&self.steward.store).await?)
    }

    /// Adds a definition; `described` is its after-image for the audit trail, as clients see it.
    pub async fn create(
        &self,
        admin: Uuid,
        definition: &SettingDefinition,
        described: Value,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = audit(
            admin,
            "settings.definition_created",
            &definition.key,
            origin,
            Some(described),
        );
        self.steward
            .store
            .create_setting_definition(definition, &entry)
            .await
            .map_err(|error| match error {
                RepositoryError::Conflict(_) => AppError::conflict("a setting with this key exists"),
                other => other.into(),
            })?;
        self.steward.settings_catalog.invalidate();
        Ok(())
    }

    /// Replaces a definition.
    pub async fn update(
        &self,
        admin: Uuid,
        definition: &SettingDefinition,
        described: Value,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = audit(
            admin,
            "settings.definition_updated",
            &definition.key,
            origin,
            Some(described),
        );
        self.steward
            .store
            .update_setting_definition(definition, &entry)
            .await?;
        self.steward.settings_catalog.invalidate();
        Ok(())
    }

    /// Removes a definition and every device's value for it.
    pub async fn delete(&self, admin: Uuid, key: &str, origin: &RequestOrigin) -> Result<(), AppError> {
        let entry = audit(admin, "settings.definition_deleted", key, origin, None);
        self.steward.store.delete_setting_definition(key, &entry).await?;
        self.steward.settings_catalog.invalidate();
        Ok(())
    }

    /// The newest push notifications, optionally of one status (`pending`, `sent`, `failed`).
    pub async fn push_notifications(&self, status: Option<&str>) -> Result<Vec<PushNotification>, AppError> {
        if status.is_some_and(|s| !["pending", "sent", "failed"].contains(&s)) {
            return Err(AppError::invalid("status", "must be pending, sent or failed"));
        }
        Ok(self
            .steward
            .store
            .push_notifications(status, PUSH_LISTING)
            .await?)
    }
}
