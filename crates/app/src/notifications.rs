//! Operators' notifications: listed for those who may see them (holders of
//! `notifications:read` see all; organization owners and admins their organization's), marked
//! read per operator, mailed by preference — one mail each, or a digest when more than
//! [`DIGEST_AFTER`] wait for one operator in a mail pass.

use crate::mail::MailKind;
use chrono::Utc;
use steward_domain::events::webhooks::{DeliveryRecord, EventPatterns, WebhookRecord};
use steward_domain::notifications::{
    NotificationFilter, NotificationRecord, NotificationView, NotificationViewer, Preferences,
};
use steward_domain::organizations::{OrgPermission, OrgRole};
use steward_domain::rbac::Permission;
use steward_domain::{Actor, AuditAction, AuditEntry, PageRequest, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// More waiting notifications than this for one operator go out as one digest.
pub const DIGEST_AFTER: usize = 10;

pub struct NotificationService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> NotificationService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// What `principal` may see: every notification, or those of the organizations they manage.
    pub async fn viewer(&self, principal: Principal) -> Result<NotificationViewer, AppError> {
        let principal = self.steward.auth.with_roles(principal).await?;
        let organizations = self
            .steward
            .store
            .organization_roles(principal.user)
            .await?
            .into_iter()
            .filter(|(_, role)| OrgRole::parse(role).is_some_and(|role| role.allows(OrgPermission::Manage)))
            .map(|(organization, _)| organization)
            .collect();
        // A token sees its organizations' notifications only with the reading scope.
        let organizations = if principal.has_scope("notifications:read") {
            organizations
        } else {
            Vec::new()
        };
        Ok(NotificationViewer {
            user: principal.user,
            sees_all: principal.allows(Permission::NotificationsRead),
            organizations,
        })
    }

    pub async fn list(
        &self,
        principal: Principal,
        filter: &NotificationFilter,
        page: PageRequest,
    ) -> Result<(Vec<NotificationView>, u64), AppError> {
        let viewer = self.viewer(principal).await?;
        Ok(self.steward.store.notifications(&viewer, filter, page).await?)
    }

    /// Marks one read; notifications the caller may not see are 404.
    pub async fn mark_read(&self, principal: Principal, id: Uuid) -> Result<NotificationRecord, AppError> {
        let viewer = self.viewer(principal).await?;
        let notification = self
            .steward
            .store
            .notification(id)
            .await?
            .filter(|notification| viewer.may_see(notification))
            .ok_or_else(|| AppError::not_found("no such notification"))?;
        self.steward.store.mark_read(viewer.user, id, Utc::now()).await?;
        Ok(notification)
    }

    /// Marks everything the caller sees read; answers how many were unread.
    pub async fn mark_all_read(&self, principal: Principal) -> Result<u64, AppError> {
        let viewer = self.viewer(principal).await?;
        Ok(self.steward.store.mark_all_read(&viewer, Utc::now()).await?)
    }

    pub async fn unread_count(&self, principal: Principal) -> Result<u64, AppError> {
        let viewer = self.viewer(principal).await?;
        Ok(self.steward.store.unread_count(&viewer).await?)
    }

    /// The operator's preferences and the URL of their personal webhook, if they set one.
    pub async fn preferences(&self, user: Uuid) -> Result<(Preferences, Option<String>), AppError> {
        let preferences = self.steward.store.preferences(user).await?;
        let webhook = self.steward.store.personal_webhook(user).await?;
        Ok((preferences, webhook.map(|hook| hook.url)))
    }

    /// Saves preferences; `webhook_url`: `Some(Some(url))` sets a personal webhook (with a new
    /// signing secret, answered this once), `Some(None)` removes it, `None` leaves it alone.
    /// Answers the preferences, the personal webhook's URL and the new secret.
    pub async fn set_preferences(
        &self,
        user: Uuid,
        preferences: Preferences,
        webhook_url: Option<Option<String>>,
        origin: &RequestOrigin,
    ) -> Result<(Preferences, Option<String>, Option<String>), AppError> {
        let (before, current_url) = self.preferences(user).await?;
        let now = Utc::now();
        let personal = match webhook_url {
            None => None,
            Some(None) => Some(None),
            Some(Some(url)) => {
                // Personal webhooks follow the organizations' network rules: anyone who
                // manages an organization may set one.
                let url = self
                    .steward
                    .events
                    .settings
                    .outbound
                    .for_scope(true)
                    .check_url(url.trim())?
                    .to_string();
                let id = Uuid::now_v7();
                let secret = crate::webhooks::new_secret();
                let sealed = crate::webhooks::WebhookService::new(self.steward).seal(id, &secret)?;
                Some(Some((
                    WebhookRecord {
                        id,
                        organization_id: None,
                        url,
                        description: Some("personal notifications".to_owned()),
                        events: EventPatterns::stored(Vec::new()),
                        secret_sealed: sealed,
                        previous_secret_sealed: None,
                        previous_secret_until: None,
                        enabled: true,
                        consecutive_failures: 0,
                        disabled_reason: None,
                        created_by: user,
                        personal_user_id: Some(user),
                        created_at: now,
                        updated_at: now,
                        version: 1,
                    },
                    secret,
                )))
            }
        };
        let url_after = match &personal {
            None => current_url.clone(),
            Some(None) => None,
            Some(Some((hook, _))) => Some(hook.url.clone()),
        };
        let describe = |p: &Preferences, url: &Option<String>| {
            serde_json::json!({
                "emailEnabled": p.email_enabled,
                "emailSeverityThreshold": p.email_threshold.as_str(),
                "mutedRules": p.muted_rules.iter().map(|rule| rule.as_str()).collect::<Vec<_>>(),
                "webhookUrl": url,
            })
        };
        let audit = AuditEntry::new(
            Actor::user(user),
            AuditAction::known("notification.preferences_updated"),
            "user",
        )
        .resource_id(user)
        .change(
            Some(describe(&before, &current_url)),
            Some(describe(&preferences, &url_after)),
        )
        .origin(origin.clone());
        let stored = personal
            .as_ref()
            .map(|choice| choice.as_ref().map(|(hook, _)| hook));
        self.steward
            .store
            .save_preferences(user, &preferences, stored, &audit)
            .await?;
        let secret = personal.flatten().map(|(_, secret)| secret);
        Ok((preferences, url_after, secret))
    }
}

/// The values of one notification's mail.
fn mail_values(notification: &NotificationRecord, notifications_url: &str) -> serde_json::Value {
    serde_json::json!({
        "title": notification.title,
        "message": notification.message,
        "severity": notification.severity.as_str(),
        "rule": notification.rule.as_str(),
        "at": notification.created_at.to_rfc3339(),
        "notifications_url": notifications_url,
    })
}

/// Mails notifications not yet mailed to the operators who see them and want them; marks them
/// mailed with the mail queued, in one transaction (an instance that loses the race writes
/// nothing). Answers how many mails were queued.
pub async fn mail_pass<S: Store>(steward: &Steward<S>) -> Result<usize, AppError> {
    let pending = steward.store.unmailed_notifications(1000).await?;
    if pending.is_empty() {
        return Ok(0);
    }
    let operators = steward.store.operators().await?;
    let catalog = steward.auth.full_catalog().await?;
    let notifications_url = format!(
        "{}/api/admin/v1/notifications",
        steward.auth.public_url().trim_end_matches('/')
    );
    let mut mail = Vec::new();
    let mut deliveries = Vec::new();
    let now = Utc::now();
    for operator in &operators {
        let viewer = NotificationViewer {
            user: operator.user,
            sees_all: catalog.allows(&operator.roles, Permission::NotificationsRead),
            organizations: operator.organizations.clone(),
        };
        if let Some(webhook) = operator.webhook {
            for notification in pending.iter().filter(|notification| {
                viewer.may_see(notification) && operator.preferences.wants(notification)
            }) {
                deliveries.push(DeliveryRecord::new(
                    webhook,
                    notification.id,
                    "notification",
                    notification.webhook_body(),
                    now,
                ));
            }
        }
        let wanted: Vec<&NotificationRecord> = pending
            .iter()
            .filter(|notification| {
                viewer.may_see(notification) && operator.preferences.wants_mail(notification)
            })
            .collect();
        let templates = steward.auth.mail_templates();
        let locale = operator.locale.as_deref();
        if wanted.len() > DIGEST_AFTER {
            let worst = wanted
                .iter()
                .map(|notification| notification.severity)
                .max()
                .unwrap_or(steward_domain::notifications::Severity::Low);
            let listed: Vec<serde_json::Value> = wanted
                .iter()
                .map(|notification| {
                    serde_json::json!({
                        "title": notification.title,
                        "severity": notification.severity.as_str(),
                        "at": notification.created_at.to_rfc3339(),
                    })
                })
                .collect();
            let rendered = templates.render(
                MailKind::NotificationDigest,
                &operator.email,
                locale,
                serde_json::json!({
                    "notifications": listed,
                    "worst": worst.as_str(),
                    "notifications_url": notifications_url,
                }),
            );
            match rendered {
                Ok(digest) => mail.push(digest),
                // One operator's mail that cannot be written does not hold up everyone else's.
                Err(error) => {
                    tracing::error!(%error, operator = %operator.user, "a notification digest could not be rendered")
                }
            }
        } else {
            for notification in wanted {
                match templates.render(
                    MailKind::Notification,
                    &operator.email,
                    locale,
                    mail_values(notification, &notifications_url),
                ) {
                    Ok(one) => mail.push(one),
                    Err(error) => {
                        tracing::error!(%error, operator = %operator.user, "a notification mail could not be rendered")
                    }
                }
            }
        }
    }
    let ids: Vec<Uuid> = pending.iter().map(|notification| notification.id).collect();
    if steward.store.record_mailing(&ids, &mail, &deliveries).await? {
        if !deliveries.is_empty() {
            steward.events.wake();
        }
        Ok(mail.len())
    } else {
        Ok(0)
    }
}
