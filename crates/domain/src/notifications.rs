//! Notifications for operators: rules that read the event stream and raise a notification with
//! a severity when something needs a person (an attack in progress, a new admin, a webhook Steward
//! turned off), who sees them, and who is mailed.

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::events::Event;
use crate::{AuditEntry, PageRequest, RepositoryError};

/// How urgent a notification is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Self::Low, Self::Medium, Self::High, Self::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|severity| severity.as_str() == value)
    }
}

/// The rules. Each raises notifications of one severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// N failed sign-ins of one account within a window.
    FailedSignIns,
    /// N failed sign-ins from one IP address, whatever the accounts, within a window.
    FailedSignInsFromIp,
    /// An account was locked (by the sign-in throttle or by an admin).
    AccountLocked,
    /// A system role was granted: someone became an admin or a more powerful one.
    AdminGranted,
    /// Someone holding a system role signed in from an address they never used before.
    AdminNewIp,
    /// An admin acted on more than N records at once.
    BulkOperation,
    /// The admin IP allowlist, the setting catalog or a custom role changed.
    SettingsChanged,
    /// Steward turned a webhook subscription off after too many failed deliveries.
    WebhookDisabled,
    /// A creation brought an organization to 80 % of a quota.
    QuotaNearlyUsed,
    /// A creation used up an organization's quota.
    QuotaUsedUp,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Self::FailedSignIns,
        Self::FailedSignInsFromIp,
        Self::AccountLocked,
        Self::AdminGranted,
        Self::AdminNewIp,
        Self::BulkOperation,
        Self::SettingsChanged,
        Self::WebhookDisabled,
        Self::QuotaNearlyUsed,
        Self::QuotaUsedUp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedSignIns => "failed_sign_ins",
            Self::FailedSignInsFromIp => "failed_sign_ins_from_ip",
            Self::AccountLocked => "account_locked",
            Self::AdminGranted => "admin_granted",
            Self::AdminNewIp => "admin_new_ip",
            Self::BulkOperation => "bulk_operation",
            Self::SettingsChanged => "settings_changed",
            Self::WebhookDisabled => "webhook_disabled",
            Self::QuotaNearlyUsed => "quota_nearly_used",
            Self::QuotaUsedUp => "quota_used_up",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|rule| rule.as_str() == value)
    }

    pub fn severity(self) -> Severity {
        match self {
            Self::FailedSignIns
            | Self::FailedSignInsFromIp
            | Self::AdminGranted
            | Self::SettingsChanged
            | Self::QuotaUsedUp => Severity::High,
            Self::WebhookDisabled
            | Self::AccountLocked
            | Self::AdminNewIp
            | Self::BulkOperation
            | Self::QuotaNearlyUsed => Severity::Medium,
        }
    }

    /// What it watches, for the documentation.
    pub fn description(self) -> &'static str {
        match self {
            Self::FailedSignIns => {
                "`STEWARD_NOTIFY_FAILED_SIGN_INS` failed sign-ins (default 5) of one account within `STEWARD_NOTIFY_WINDOW_MINUTES` (default 10)"
            }
            Self::FailedSignInsFromIp => {
                "`STEWARD_NOTIFY_FAILED_SIGN_INS_FROM_IP` failed sign-ins (default 20) from one IP address, any accounts, within the window"
            }
            Self::AccountLocked => "an account was locked, by the sign-in throttle or by an admin",
            Self::AdminGranted => "a system role was granted (a new admin, or more power for one)",
            Self::AdminNewIp => {
                "a holder of a system role signed in from an address they had not used before"
            }
            Self::BulkOperation => {
                "an admin acted on more than `STEWARD_NOTIFY_BULK_RECORDS` records (default 100) at once"
            }
            Self::SettingsChanged => "the admin IP allowlist, the setting catalog or a custom role changed",
            Self::WebhookDisabled => {
                "Steward turned a webhook subscription off (50 failed deliveries in a row, or its creator no longer manages it)"
            }
            Self::QuotaNearlyUsed => {
                "a creation brought an organization to 80 % of a [quota](organizations.md#quotas) (the organization's owners and admins see it too)"
            }
            Self::QuotaUsedUp => {
                "a creation used up an organization's [quota](organizations.md#quotas): the next one will be refused"
            }
        }
    }
}

/// The rules as the Markdown table in `docs/events.md`.
pub fn rules_markdown() -> String {
    let mut text = String::from("| Rule | Severity | Raised when |\n|---|---|---|\n");
    for rule in Rule::ALL {
        text.push_str(&format!(
            "| `{}` | {} | {} |\n",
            rule.as_str(),
            rule.severity().as_str(),
            rule.description()
        ));
    }
    text
}

/// The rules' thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub failed_sign_ins: u32,
    pub failed_sign_ins_from_ip: u32,
    pub window: Duration,
    pub bulk_records: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failed_sign_ins: 5,
            failed_sign_ins_from_ip: 20,
            window: Duration::minutes(10),
            bulk_records: 100,
        }
    }
}

/// A notification as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub rule: Rule,
    pub severity: Severity,
    pub title: String,
    pub message: String,
    /// The organization it concerns; its owners and admins see it too.
    pub organization_id: Option<Uuid>,
    /// The event that raised it.
    pub event_id: Uuid,
    /// The event (as webhooks receive it) and anything the rule adds.
    pub data: Value,
    pub created_at: DateTime<Utc>,
}

/// The recent occurrences of one rule's subject (an account, an address), kept with its
/// counter: the latest `threshold` of them, and when the rule last fired for it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Recent {
    pub at: Vec<DateTime<Utc>>,
    pub fired: Option<DateTime<Utc>>,
}

impl Recent {
    /// Notes an occurrence at `at` and answers whether the rule fires: `threshold` occurrences
    /// within any `window` (a sliding window, so failures split across a boundary still count),
    /// at most once per `window` for one subject. Occurrences may arrive a little out of order
    /// (instances fan out in parallel); the newest one is the reference.
    pub fn observe(&mut self, at: DateTime<Utc>, window: Duration, threshold: u32) -> bool {
        self.at.push(at);
        self.at.sort();
        let latest = self.at.last().copied().unwrap_or(at);
        self.at.retain(|seen| *seen > latest - window);
        let keep = usize::try_from(threshold.max(1)).unwrap_or(usize::MAX);
        if self.at.len() > keep {
            let extra = self.at.len() - keep;
            self.at.drain(..extra);
        }
        let fires = self.at.len() >= keep && self.fired.is_none_or(|fired| latest - fired >= window);
        if fires {
            self.fired = Some(latest);
        }
        fires
    }

    /// The newest occurrence (the clean-up forgets subjects not seen for long).
    pub fn last_seen(&self) -> Option<DateTime<Utc>> {
        self.at.last().copied()
    }
}

/// What a rule needs decided under the store's lock before it may raise its notification.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Raise it.
    Always,
    /// Raise it when `(rule, subject)` occurred `threshold` times within `window`
    /// ([`Recent::observe`]).
    Count {
        subject: String,
        threshold: u32,
        window: Duration,
    },
    /// Raise it when `user` (who holds a system role — the store checks) has signed in before,
    /// never from `address`; remember the address either way.
    NewAdminAddress { user: Uuid, address: String },
}

/// A notification a rule would raise, and the check that decides it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub check: Check,
    pub notification: NotificationRecord,
}

fn text<'a>(value: Option<&'a Value>, key: &str) -> Option<&'a str> {
    value.and_then(|value| value.get(key)).and_then(Value::as_str)
}

/// The notifications `entry` may raise.
pub fn candidates(entry: &AuditEntry, thresholds: &Thresholds) -> Vec<Candidate> {
    let action = entry.action.as_str();
    let after = entry.after.as_ref();
    let email = text(after, "email").map(str::to_owned);
    let address = entry.origin.ip_address.clone();
    let subject = |fallback: &str| {
        email
            .clone()
            .or_else(|| entry.resource_id.clone())
            .unwrap_or_else(|| fallback.to_owned())
    };
    let minutes = thresholds.window.num_minutes();
    let mut raised: Vec<(Rule, Check, String, String)> = Vec::new();
    match action {
        "auth.login_failed" => {
            let account = subject("an unknown account");
            raised.push((
                Rule::FailedSignIns,
                Check::Count {
                    subject: account.to_lowercase(),
                    threshold: thresholds.failed_sign_ins,
                    window: thresholds.window,
                },
                format!("Repeated failed sign-ins for {account}"),
                format!(
                    "{} failed sign-ins for {account} within {minutes} minutes; the last from {}.",
                    thresholds.failed_sign_ins,
                    address.as_deref().unwrap_or("an unknown address")
                ),
            ));
            if let Some(address) = &address {
                raised.push((
                    Rule::FailedSignInsFromIp,
                    Check::Count {
                        subject: address.clone(),
                        threshold: thresholds.failed_sign_ins_from_ip,
                        window: thresholds.window,
                    },
                    format!("Many failed sign-ins from {address}"),
                    format!(
                        "{} failed sign-ins from {address} within {minutes} minutes (the last for {account}).",
                        thresholds.failed_sign_ins_from_ip
                    ),
                ));
            }
        }
        "auth.account_locked" | "admin.user_locked" => {
            let account = subject("an account");
            let by = if action == "auth.account_locked" {
                "after too many failed sign-ins".to_owned()
            } else {
                "by an admin".to_owned()
            };
            raised.push((
                Rule::AccountLocked,
                Check::Always,
                format!("Account locked: {account}"),
                format!("{account} was locked {by}."),
            ));
        }
        "admin.role_granted" => {
            let role = text(after, "role").unwrap_or("a system role");
            let user = entry.resource_id.clone().unwrap_or_default();
            raised.push((
                Rule::AdminGranted,
                Check::Always,
                format!("System role granted: {role}"),
                format!("User {user} was granted {role}."),
            ));
        }
        "auth.login_succeeded" => {
            if let (Some(user), Some(address)) = (entry.actor.id, &address) {
                raised.push((
                    Rule::AdminNewIp,
                    Check::NewAdminAddress {
                        user,
                        address: address.clone(),
                    },
                    format!("Admin sign-in from a new address: {address}"),
                    format!(
                        "{} signed in from {address}, an address not seen for them before.",
                        subject("An admin")
                    ),
                ));
            }
        }
        "admin.bulk_action" => {
            let records = after
                .and_then(|after| after.get("users"))
                .and_then(Value::as_u64)
                .unwrap_or(0);
            if records > thresholds.bulk_records {
                let what = text(after, "action").unwrap_or("a bulk action");
                raised.push((
                    Rule::BulkOperation,
                    Check::Always,
                    format!("Bulk {what} on {records} accounts"),
                    format!("An admin ran {what} on {records} accounts at once."),
                ));
            }
        }
        "admin.allowlist_entry_created"
        | "admin.allowlist_entry_updated"
        | "admin.allowlist_entry_deleted"
        | "admin.allowlist_settings_changed"
        | "admin.allowlist_bypass_created"
        | "settings.definition_created"
        | "settings.definition_updated"
        | "settings.definition_deleted"
        | "admin.role_created"
        | "admin.role_updated"
        | "admin.role_deleted" => {
            raised.push((
                Rule::SettingsChanged,
                Check::Always,
                format!("System settings changed: {action}"),
                format!(
                    "{action} on {} {}.",
                    entry.resource_type,
                    entry.resource_id.as_deref().unwrap_or("")
                ),
            ));
        }
        "organization.quota_threshold" => {
            let key = text(after, "key").unwrap_or("a quota");
            let organization = text(after, "organization").unwrap_or("an organization");
            let number = |name: &str| {
                after
                    .and_then(|after| after.get(name))
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
            };
            let (used, limit) = (number("used"), number("limit"));
            let (rule, title) = if number("percent") >= 100 {
                (Rule::QuotaUsedUp, format!("Quota used up: {organization} {key}"))
            } else {
                (
                    Rule::QuotaNearlyUsed,
                    format!("Quota nearly used: {organization} {key}"),
                )
            };
            raised.push((
                rule,
                Check::Always,
                title,
                format!("{organization} uses {used} of its {key} quota of {limit}."),
            ));
        }
        "webhook.disabled" => {
            let url = text(after, "url").unwrap_or("a webhook");
            let reason = text(after, "reason").unwrap_or("turned off by Steward");
            raised.push((
                Rule::WebhookDisabled,
                Check::Always,
                format!("Webhook turned off: {url}"),
                format!("The subscription to {url} was {reason}."),
            ));
        }
        _ => {}
    }
    let event = Event::from_audit(entry);
    raised
        .into_iter()
        .map(|(rule, check, title, message)| Candidate {
            check,
            notification: NotificationRecord {
                id: Uuid::now_v7(),
                rule,
                severity: rule.severity(),
                title: title.chars().take(200).collect(),
                message: message.chars().take(2000).collect(),
                organization_id: entry.organization_id,
                event_id: entry.id,
                data: json!({"event": serde_json::from_str::<Value>(&event.body()).unwrap_or(Value::Null)}),
                created_at: entry.occurred_at,
            },
        })
        .collect()
}

/// Who is reading notifications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationViewer {
    pub user: Uuid,
    /// Holds `notifications:read` (and the token scope): every notification.
    pub sees_all: bool,
    /// Organizations they manage (owner or admin): those organizations' notifications.
    pub organizations: Vec<Uuid>,
}

impl NotificationViewer {
    pub fn may_see(&self, notification: &NotificationRecord) -> bool {
        self.sees_all
            || notification
                .organization_id
                .is_some_and(|org| self.organizations.contains(&org))
    }
}

/// What `GET /notifications` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationFilter {
    pub unread: Option<bool>,
    pub severity: Option<Severity>,
}

/// An operator's choices about notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferences {
    /// Mail at all.
    pub email_enabled: bool,
    /// Mail notifications at or above this severity.
    pub email_threshold: Severity,
    /// Rules never mailed (still listed).
    pub muted_rules: Vec<Rule>,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            email_enabled: true,
            email_threshold: Severity::Medium,
            muted_rules: Vec::new(),
        }
    }
}

impl Preferences {
    pub fn wants_mail(&self, notification: &NotificationRecord) -> bool {
        self.email_enabled && self.wants(notification)
    }

    /// Whether the notification reaches the operator's personal webhook: the same threshold and
    /// muted rules as mail, whether mail is on or not.
    pub fn wants(&self, notification: &NotificationRecord) -> bool {
        notification.severity >= self.email_threshold && !self.muted_rules.contains(&notification.rule)
    }
}

impl NotificationRecord {
    /// The body posted to a personal webhook: `{id, type: "notification", occurredAt, actor,
    /// organizationId?, data: {rule, severity, title, message, event}}`.
    pub fn webhook_body(&self) -> String {
        let mut body = json!({
            "id": self.id,
            "type": "notification",
            "occurredAt": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "actor": {"kind": "system", "id": null},
            "data": {
                "rule": self.rule.as_str(),
                "severity": self.severity.as_str(),
                "title": self.title,
                "message": self.message,
                "event": self.data.get("event").cloned().unwrap_or(Value::Null),
            },
        });
        if let (Some(organization), Some(object)) = (self.organization_id, body.as_object_mut()) {
            object.insert("organizationId".to_owned(), json!(organization));
        }
        body.to_string()
    }
}

/// Someone who may receive notification mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub user: Uuid,
    pub email: String,
    pub display_name: String,
    /// Their locale, for the language of their mail.
    pub locale: Option<String>,
    /// System roles (custom ones included).
    pub roles: Vec<String>,
    /// Organizations they manage.
    pub organizations: Vec<Uuid>,
    pub preferences: Preferences,
    /// Their personal subscription, when it is on.
    pub webhook: Option<Uuid>,
}

/// A notification with whether the reader has read it.
#[derive(Debug, Clone, PartialEq)]
pub struct NotificationView {
    pub notification: NotificationRecord,
    pub read_at: Option<DateTime<Utc>>,
}

/// Notifications, their read marks, preferences and the mail pass.
pub trait NotificationStore {
    /// One page newest first, with the reader's read marks, and the total.
    fn notifications(
        &self,
        viewer: &NotificationViewer,
        filter: &NotificationFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<NotificationView>, u64), RepositoryError>> + Send;

    fn notification(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<NotificationRecord>, RepositoryError>> + Send;

    /// Marks one read for `user` (again is fine).
    fn mark_read(
        &self,
        user: Uuid,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Marks every notification `viewer` sees read; answers how many were unread.
    fn mark_all_read(
        &self,
        viewer: &NotificationViewer,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    fn unread_count(
        &self,
        viewer: &NotificationViewer,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    /// Stored preferences (defaults when none were saved).
    fn preferences(&self, user: Uuid) -> impl Future<Output = Result<Preferences, RepositoryError>> + Send;

    /// Saves preferences and, with `personal`, replaces the operator's personal subscription
    /// (`Some(None)` removes it; `None` leaves it alone).
    fn save_preferences(
        &self,
        user: Uuid,
        preferences: &Preferences,
        personal: Option<Option<&crate::events::webhooks::WebhookRecord>>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Notifications not yet considered for mail, oldest first.
    fn unmailed_notifications(
        &self,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<NotificationRecord>, RepositoryError>> + Send;

    /// Every account holding a system role, and every owner or admin of an organization, with
    /// their preferences and personal subscription.
    fn operators(&self) -> impl Future<Output = Result<Vec<Operator>, RepositoryError>> + Send;

    /// In one transaction: marks the notifications mailed — only those still unmailed; answers
    /// `false` and writes nothing when another instance got there first — and queues the mail
    /// and the deliveries to personal subscriptions.
    fn record_mailing(
        &self,
        notifications: &[Uuid],
        mail: &[crate::accounts::OutgoingMail],
        deliveries: &[crate::events::webhooks::DeliveryRecord],
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Actor, AuditAction, RequestOrigin};

    fn failed(email: &str, ip: &str) -> AuditEntry {
        AuditEntry::new(
            Actor {
                kind: crate::ActorKind::User,
                id: None,
            },
            AuditAction::known("auth.login_failed"),
            "user",
        )
        .change(None, Some(json!({"email": email})))
        .origin(RequestOrigin {
            ip_address: Some(ip.into()),
            ..RequestOrigin::default()
        })
    }

    #[test]
    fn failed_sign_ins_count_per_account_and_per_address() {
        let found = candidates(&failed("Ann@example.com", "192.0.2.7"), &Thresholds::default());
        let rules: Vec<Rule> = found.iter().map(|c| c.notification.rule).collect();
        assert_eq!(rules, vec![Rule::FailedSignIns, Rule::FailedSignInsFromIp]);
        assert!(
            matches!(&found[0].check, Check::Count { subject, threshold: 5, .. } if subject == "ann@example.com")
        );
        assert!(
            matches!(&found[1].check, Check::Count { subject, threshold: 20, .. } if subject == "192.0.2.7")
        );
        assert_eq!(found[0].notification.severity, Severity::High);
        assert_eq!(found[0].notification.data["event"]["type"], "auth.login_failed");
    }

    #[test]
    fn bulk_actions_count_only_above_the_threshold() {
        let bulk = |users: u64| {
            AuditEntry::new(
                Actor::admin(Uuid::nil()),
                AuditAction::known("admin.bulk_action"),
                "user",
            )
            .change(None, Some(json!({"action": "lock", "users": users})))
        };
        assert!(candidates(&bulk(100), &Thresholds::default()).is_empty());
        assert_eq!(
            candidates(&bulk(101), &Thresholds::default())[0]
                .notification
                .rule,
            Rule::BulkOperation
        );
        assert!(
            candidates(
                &AuditEntry::new(Actor::system(), AuditAction::known("group.created"), "group"),
                &Thresholds::default()
            )
            .is_empty()
        );
    }

    #[test]
    fn counted_rules_fire_once_per_window_over_a_sliding_window() {
        let start = Utc::now();
        let window = Duration::minutes(10);
        let mut recent = Recent::default();
        // Four failures at the end of one fixed window and one at the start of the next: five
        // within ten minutes all the same.
        for minute in [6, 7, 8, 9] {
            assert!(!recent.observe(start + Duration::minutes(minute), window, 5));
        }
        assert!(recent.observe(start + Duration::minutes(11), window, 5));
        // More failures in the same window do not fire again…
        assert!(!recent.observe(start + Duration::minutes(12), window, 5));
        // …nor does a late, out-of-order one.
        assert!(!recent.observe(start + Duration::minutes(5), window, 5));
        assert!(recent.at.len() <= 5);
        // A window after the last firing, a new burst fires again.
        let mut later = recent.clone();
        for minute in 25..29 {
            assert!(!later.observe(start + Duration::minutes(minute), window, 5));
        }
        assert!(later.observe(start + Duration::minutes(29), window, 5));
        // Spread out, they never reach the threshold.
        let mut slow = Recent::default();
        for n in 0..20 {
            assert!(!slow.observe(start + Duration::minutes(3 * n), window, 5));
        }
        assert!(Recent::default().observe(start, window, 1));
        assert!(Recent::default().observe(start, window, 0));
    }

    #[test]
    fn mail_follows_threshold_and_muted_rules() {
        let notification = candidates(&failed("a@example.com", "192.0.2.1"), &Thresholds::default())
            .remove(0)
            .notification;
        let mut preferences = Preferences::default();
        assert!(preferences.wants_mail(&notification));
        preferences.email_threshold = Severity::Critical;
        assert!(!preferences.wants_mail(&notification));
        preferences.email_threshold = Severity::Low;
        preferences.muted_rules = vec![Rule::FailedSignIns];
        assert!(!preferences.wants_mail(&notification));
    }
}
