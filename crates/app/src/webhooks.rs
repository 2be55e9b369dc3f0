//! Webhook subscriptions as operators manage them. Holders of `webhooks:manage` manage every
//! subscription (those of the whole instance and of each organization), holders of
//! `webhooks:read` read them; owners and admins of an organization manage that organization's. Others get 404 for a subscription, 403 when
//! they ask for one of the instance's or of an organization they only belong to.

use chrono::Utc;
use serde_json::json;
use steward_auth::opaque::random_token;
use steward_domain::events::Event;
use steward_domain::events::webhooks::{
    DeliveryRecord, DeliveryStatus, EventPatterns, MAX_DESCRIPTION_LEN, WebhookFilter, WebhookRecord,
    WebhookViewer,
};
use steward_domain::organizations::{OrgPermission, OrgRole};
use steward_domain::rbac::Permission;
use steward_domain::{Actor, AuditAction, AuditEntry, PageRequest, RepositoryError, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;
use crate::events::secret_context;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// What a new subscription is.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub organization_id: Option<Uuid>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// What a change sets; `None` leaves a field alone (`description: Some(None)` clears it).
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

pub struct WebhookService<'a, S> {
    steward: &'a Steward<S>,
}

fn describe(webhook: &WebhookRecord) -> serde_json::Value {
    json!({
        "url": webhook.url,
        "events": webhook.events.as_slice(),
        "organizationId": webhook.organization_id,
        "description": webhook.description,
        "enabled": webhook.enabled,
    })
}

fn check_description(description: Option<String>) -> Result<Option<String>, AppError> {
    let Some(description) = description else {
        return Ok(None);
    };
    let description = description.trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_LEN
        || description.chars().any(|c| c.is_control() && c != '\n')
    {
        return Err(AppError::invalid(
            "description",
            "must be at most 500 characters without control characters",
        ));
    }
    Ok((!description.is_empty()).then_some(description))
}

pub(crate) fn new_secret() -> String {
    format!("whsec_{}", random_token(32))
}

impl<'a, S: Store> WebhookService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// What the caller may reach: to read (`manage: false`) or to change.
    async fn viewer(
        &self,
        principal: &Principal,
        manage: bool,
    ) -> Result<(WebhookViewer, Vec<(Uuid, String)>), AppError> {
        let principal = self.steward.auth.with_roles(principal.clone()).await?;
        let memberships = self.steward.store.organization_roles(principal.user).await?;
        let organizations = memberships
            .iter()
            .filter(|(_, role)| OrgRole::parse(role).is_some_and(|role| role.allows(OrgPermission::Manage)))
            .map(|(organization, _)| *organization)
            .collect();
        Ok((
            WebhookViewer {
                sees_all: principal.allows(Permission::WebhooksManage)
                    || (!manage && principal.allows(Permission::WebhooksRead)),
                organizations,
            },
            memberships,
        ))
    }

    /// The subscription if the caller may read it (or, with `manage`, change it), else 404.
    async fn reach(&self, principal: &Principal, id: Uuid, manage: bool) -> Result<WebhookRecord, AppError> {
        let (viewer, _) = self.viewer(principal, manage).await?;
        self.steward
            .store
            .webhook(id)
            .await?
            .filter(|webhook| {
                webhook.personal_user_id.is_none() && viewer.may_manage(webhook.organization_id)
            })
            .ok_or_else(|| AppError::not_found("no such webhook"))
    }

    fn audit(
        principal: &Principal,
        action: &'static str,
        webhook: &WebhookRecord,
        origin: &RequestOrigin,
    ) -> AuditEntry {
        let mut entry = AuditEntry::new(
            Actor::admin(principal.user),
            AuditAction::known(action),
            "webhook",
        )
        .resource_id(webhook.id)
        .origin(origin.clone());
        if let Some(organization) = webhook.organization_id {
            entry = entry.organization(organization);
        }
        entry
    }

    pub(crate) fn seal(&self, webhook: Uuid, secret: &str) -> Result<String, AppError> {
        self.steward
            .auth
            .secret_box()
            .seal(secret.as_bytes(), &secret_context(webhook))
            .map_err(|error| {
                tracing::error!(%error, "could not seal a webhook secret");
                AppError::internal()
            })
    }

    /// Creates a subscription; answers it with its secret, shown this once.
    pub async fn create(
        &self,
        principal: &Principal,
        input: NewWebhook,
        origin: &RequestOrigin,
    ) -> Result<(WebhookRecord, String), AppError> {
        let (viewer, memberships) = self.viewer(principal, true).await?;
        match input.organization_id {
            None if !viewer.sees_all => {
                return Err(AppError::forbidden(
                    "subscriptions to every event need the permission webhooks:manage; name your organizationId",
                ));
            }
            Some(organization) if !viewer.may_manage(Some(organization)) => {
                return Err(if memberships.iter().any(|(org, _)| *org == organization) {
                    AppError::forbidden("only owners and admins of the organization manage its webhooks")
                } else {
                    AppError::not_found("no such organization")
                });
            }
            Some(organization)
                if self
                    .steward
                    .store
                    .find_organization(organization)
                    .await?
                    .is_none() =>
            {
                return Err(AppError::not_found("no such organization"));
            }
            Some(_) => {}
            None => {}
        }
        let url = self
            .steward
            .events
            .settings
            .outbound
            .for_scope(input.organization_id.is_some())
            .check_url(input.url.trim())?
            .to_string();
        let events = EventPatterns::parse(&input.events)?;
        let description = check_description(input.description)?;
        let now = Utc::now();
        let id = Uuid::now_v7();
        let secret = new_secret();
        let webhook = WebhookRecord {
            id,
            organization_id: input.organization_id,
            url,
            description,
            events,
            secret_sealed: self.seal(id, &secret)?,
            previous_secret_sealed: None,
            previous_secret_until: None,
            enabled: input.enabled.unwrap_or(true),
            consecutive_failures: 0,
            disabled_reason: None,
            created_by: principal.user,
            personal_user_id: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        let audit = Self::audit(principal, "webhook.created", &webhook, origin)
            .change(None, Some(describe(&webhook)));
        self.steward.store.create_webhook(&webhook, &audit).await?;
        Ok((webhook, secret))
    }

    /// The subscriptions the caller manages, newest first.
    pub async fn list(
        &self,
        principal: &Principal,
        organization: Option<Uuid>,
        page: PageRequest,
    ) -> Result<(Vec<WebhookRecord>, u64), AppError> {
        let (viewer, _) = self.viewer(principal, false).await?;
        let filter = WebhookFilter {
            organizations: (!viewer.sees_all).then(|| viewer.organizations.clone()),
            organization,
        };
        Ok(self.steward.store.webhooks(&filter, page).await?)
    }

    pub async fn get(&self, principal: &Principal, id: Uuid) -> Result<WebhookRecord, AppError> {
        self.reach(principal, id, false).await
    }

    /// Changes a subscription (stale `expected_version`: 409). Turning it back on clears the
    /// failure count and the reason Steward turned it off.
    pub async fn update(
        &self,
        principal: &Principal,
        id: Uuid,
        changes: WebhookChanges,
        expected_version: Option<i32>,
        origin: &RequestOrigin,
    ) -> Result<WebhookRecord, AppError> {
        let current = self.reach(principal, id, true).await?;
        if expected_version.is_some_and(|version| version != current.version) {
            return Err(AppError::new(
                crate::error::ErrorKind::VersionConflict,
                "the webhook was changed since you read it",
            ));
        }
        let mut next = current.clone();
        if let Some(url) = changes.url {
            next.url = self
                .steward
                .events
                .settings
                .outbound
                .for_scope(current.organization_id.is_some())
                .check_url(url.trim())?
                .to_string();
        }
        if let Some(events) = changes.events {
            next.events = EventPatterns::parse(&events)?;
        }
        if let Some(description) = changes.description {
            next.description = check_description(description)?;
        }
        let mut reset_failures = false;
        if let Some(enabled) = changes.enabled {
            if enabled && !current.enabled {
                reset_failures = true;
                next.consecutive_failures = 0;
                next.disabled_reason = None;
                // Whoever turns it back on answers for it from now on (a subscription Steward
                // turned off because its creator left is revived by a current manager).
                next.created_by = principal.user;
            }
            next.enabled = enabled;
        }
        next.updated_at = Utc::now();
        next.version = current.version.saturating_add(1);
        let audit = Self::audit(principal, "webhook.updated", &next, origin)
            .change(Some(describe(&current)), Some(describe(&next)));
        self.steward
            .store
            .save_webhook(&next, current.version, reset_failures, &audit)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such webhook"),
                other => other.into(),
            })?;
        Ok(next)
    }

    /// A new signing secret, shown this once; the old one keeps signing too (a second value in
    /// `X-Steward-Signature`) for `overlap`.
    pub async fn rotate_secret(
        &self,
        principal: &Principal,
        id: Uuid,
        overlap: Option<chrono::Duration>,
        origin: &RequestOrigin,
    ) -> Result<(WebhookRecord, String), AppError> {
        let current = self.reach(principal, id, true).await?;
        let overlap = overlap.unwrap_or(self.steward.events.settings.secret_overlap);
        let secret = new_secret();
        let now = Utc::now();
        let mut next = current.clone();
        next.secret_sealed = self.seal(id, &secret)?;
        (next.previous_secret_sealed, next.previous_secret_until) = if overlap > chrono::Duration::zero() {
            (Some(current.secret_sealed.clone()), Some(now + overlap))
        } else {
            (None, None)
        };
        next.updated_at = now;
        next.version = current.version.saturating_add(1);
        let audit = Self::audit(principal, "webhook.secret_rotated", &next, origin).change(
            None,
            Some(json!({"previousSecretValidUntil": next.previous_secret_until})),
        );
        self.steward
            .store
            .save_webhook(&next, current.version, false, &audit)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such webhook"),
                other => other.into(),
            })?;
        Ok((next, secret))
    }

    pub async fn delete(
        &self,
        principal: &Principal,
        id: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let current = self.reach(principal, id, true).await?;
        let audit = Self::audit(principal, "webhook.deleted", &current, origin)
            .change(Some(describe(&current)), None);
        self.steward
            .store
            .delete_webhook(id, &audit)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such webhook"),
                other => other.into(),
            })
    }

    pub async fn deliveries(
        &self,
        principal: &Principal,
        id: Uuid,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<(Vec<DeliveryRecord>, u64), AppError> {
        self.reach(principal, id, false).await?;
        Ok(self.steward.store.deliveries(id, status, page).await?)
    }

    /// One delivery of a subscription the caller may read, else 404.
    pub async fn delivery(&self, principal: &Principal, id: Uuid) -> Result<DeliveryRecord, AppError> {
        self.delivery_reached(principal, id, false).await
    }

    async fn delivery_reached(
        &self,
        principal: &Principal,
        id: Uuid,
        manage: bool,
    ) -> Result<DeliveryRecord, AppError> {
        let delivery = self
            .steward
            .store
            .delivery(id)
            .await?
            .ok_or_else(|| AppError::not_found("no such delivery"))?;
        self.reach(principal, delivery.webhook_id, manage)
            .await
            .map_err(|_| AppError::not_found("no such delivery"))?;
        Ok(delivery)
    }

    fn queueable(webhook: &WebhookRecord) -> Result<(), AppError> {
        if webhook.enabled {
            Ok(())
        } else {
            Err(AppError::conflict(
                "the subscription is turned off; enable it first",
            ))
        }
    }

    /// Sends a delivery again, as a new delivery (new `X-Steward-Delivery`, same event id).
    pub async fn redeliver(
        &self,
        principal: &Principal,
        id: Uuid,
        origin: &RequestOrigin,
    ) -> Result<DeliveryRecord, AppError> {
        let original = self.delivery_reached(principal, id, true).await?;
        let webhook = self.reach(principal, original.webhook_id, true).await?;
        Self::queueable(&webhook)?;
        let mut again = DeliveryRecord::new(
            webhook.id,
            original.event_id,
            &original.event_type,
            original.payload.clone(),
            Utc::now(),
        );
        again.redelivery_of = Some(original.id);
        let audit = Self::audit(principal, "webhook.redelivered", &webhook, origin).change(
            None,
            Some(json!({"deliveryId": again.id, "redeliveryOf": original.id, "eventId": original.event_id})),
        );
        self.steward
            .store
            .enqueue_delivery(&again, Some(&audit))
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such webhook"),
                other => other.into(),
            })?;
        self.steward.events.wake();
        Ok(again)
    }

    /// Queues a `ping` event to the subscription.
    pub async fn ping(&self, principal: &Principal, id: Uuid) -> Result<DeliveryRecord, AppError> {
        let webhook = self.reach(principal, id, true).await?;
        Self::queueable(&webhook)?;
        let now = Utc::now();
        let event = Event::ping(webhook.id, principal.user, webhook.organization_id, now);
        let delivery = DeliveryRecord::new(webhook.id, event.id, &event.event_type, event.body(), now);
        self.steward
            .store
            .enqueue_delivery(&delivery, None)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such webhook"),
                other => other.into(),
            })?;
        self.steward.events.wake();
        Ok(delivery)
    }
}
