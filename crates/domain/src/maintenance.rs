//! Clean-up of rows that have served their purpose: expired sessions, spent tokens, sent mail,
//! delivered pushes, finished invites, transfers and commands. Each kind of row has its rule
//! here (what counts as done, and for how long it is kept after); the store deletes in
//! batches. Audit entries are never deleted (the hash chain needs every one).

use std::future::Future;

use chrono::{DateTime, Duration, Utc};

use crate::RepositoryError;

/// A kind of row the clean-up deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CleanupTarget {
    /// Sessions revoked or expired (their refresh tokens go with them).
    Sessions,
    /// Refresh tokens whose lifetime ended (spent ones are kept until then: presenting one
    /// again must still end its session family).
    RefreshTokens,
    /// Verification, reset and invitation tokens used or expired.
    EmailTokens,
    /// Mails sent, or given up on.
    Mails,
    /// Pushes delivered, or given up on.
    Pushes,
    /// Group invites expired, revoked or used up.
    GroupInvites,
    /// Device transfers decided or expired.
    DeviceTransfers,
    /// Fleet commands acknowledged or expired.
    DeviceCommands,
    /// Nonces of identity-provider sign-ins that expired.
    OidcNonces,
    /// Second-factor sign-in challenges that expired.
    MfaChallenges,
    /// Sign-in failure counters whose window passed, with no lockout in force.
    LoginThrottles,
    /// Allowlist bypass tokens that expired or were revoked.
    BypassTokens,
    /// Webhook deliveries that succeeded or failed.
    WebhookDeliveries,
    /// Operators' notifications (their read marks go with them).
    Notifications,
    /// Counters of the notification rules whose window passed long ago (an admin's known
    /// addresses are kept).
    NotificationCounters,
    /// Uses of the daily quotas (`imports_per_day`) older than two days.
    QuotaSpends,
    /// Device events older than their retention (the organization's own, or the configured).
    DeviceEvents,
    /// Event batches' `Idempotency-Key`s older than a day.
    DeviceEventBatches,
}

impl CleanupTarget {
    pub const ALL: [CleanupTarget; 18] = [
        CleanupTarget::Sessions,
        CleanupTarget::RefreshTokens,
        CleanupTarget::EmailTokens,
        CleanupTarget::Mails,
        CleanupTarget::Pushes,
        CleanupTarget::GroupInvites,
        CleanupTarget::DeviceTransfers,
        CleanupTarget::DeviceCommands,
        CleanupTarget::OidcNonces,
        CleanupTarget::MfaChallenges,
        CleanupTarget::LoginThrottles,
        CleanupTarget::BypassTokens,
        CleanupTarget::WebhookDeliveries,
        CleanupTarget::Notifications,
        CleanupTarget::NotificationCounters,
        CleanupTarget::QuotaSpends,
        CleanupTarget::DeviceEvents,
        CleanupTarget::DeviceEventBatches,
    ];

    /// The table it deletes from.
    pub fn table(self) -> &'static str {
        match self {
            CleanupTarget::Sessions => "user_sessions",
            CleanupTarget::RefreshTokens => "refresh_tokens",
            CleanupTarget::EmailTokens => "email_tokens",
            CleanupTarget::Mails => "outbox_emails",
            CleanupTarget::Pushes => "push_notifications",
            CleanupTarget::GroupInvites => "group_invites",
            CleanupTarget::DeviceTransfers => "device_transfers",
            CleanupTarget::DeviceCommands => "device_commands",
            CleanupTarget::OidcNonces => "oidc_nonces",
            CleanupTarget::MfaChallenges => "mfa_challenges",
            CleanupTarget::LoginThrottles => "login_throttles",
            CleanupTarget::BypassTokens => "allowlist_bypass_tokens",
            CleanupTarget::WebhookDeliveries => "webhook_deliveries",
            CleanupTarget::Notifications => "notifications",
            CleanupTarget::NotificationCounters => "notification_counters",
            CleanupTarget::QuotaSpends => "quota_spends",
            CleanupTarget::DeviceEvents => "device_events",
            CleanupTarget::DeviceEventBatches => "device_event_batches",
        }
    }
}

/// How long finished rows are kept, per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Sessions and refresh tokens after they ended (7 days).
    pub sessions: Duration,
    /// Mail tokens, MFA challenges, OIDC nonces and throttles after they expired or were used
    /// (1 day).
    pub tokens: Duration,
    /// Sent mail (30 days).
    pub mails: Duration,
    /// Delivered pushes (7 days).
    pub pushes: Duration,
    /// Invites, transfers, commands, bypass tokens and webhook deliveries after they ended
    /// (30 days).
    pub records: Duration,
    /// Operators' notifications after they were raised (90 days).
    pub notifications: Duration,
    /// Device events after they occurred (90 days), where the organization set no retention.
    pub device_events: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            sessions: Duration::days(7),
            tokens: Duration::days(1),
            mails: Duration::days(30),
            pushes: Duration::days(7),
            records: Duration::days(30),
            notifications: Duration::days(90),
            device_events: Duration::days(i64::from(crate::device_events::DEFAULT_RETENTION_DAYS)),
        }
    }
}

impl Retention {
    /// Rows of `target` that ended before this moment are deleted.
    pub fn cutoff(&self, target: CleanupTarget, now: DateTime<Utc>) -> DateTime<Utc> {
        let keep = match target {
            CleanupTarget::Sessions | CleanupTarget::RefreshTokens => self.sessions,
            CleanupTarget::EmailTokens
            | CleanupTarget::OidcNonces
            | CleanupTarget::MfaChallenges
            | CleanupTarget::LoginThrottles => self.tokens,
            CleanupTarget::Mails => self.mails,
            CleanupTarget::Pushes => self.pushes,
            CleanupTarget::GroupInvites
            | CleanupTarget::DeviceTransfers
            | CleanupTarget::DeviceCommands
            | CleanupTarget::BypassTokens
            | CleanupTarget::WebhookDeliveries
            | CleanupTarget::NotificationCounters => self.records,
            CleanupTarget::Notifications => self.notifications,
            // Counted over the last 24 hours: kept a day longer, whatever the retention.
            CleanupTarget::QuotaSpends => Duration::days(2),
            CleanupTarget::DeviceEvents => self.device_events,
            CleanupTarget::DeviceEventBatches => Duration::hours(crate::device_events::BATCH_KEY_HOURS),
        };
        now - keep
    }
}

/// Rows deleted per statement, so a pass never holds a long lock.
pub const CLEANUP_BATCH: u64 = 1000;

/// Days of audit entries counted into the daily rollup per pass (a first pass over an old
/// instance catches up a year at most; the next passes go on).
pub const ROLLUP_DAYS_PER_PASS: u32 = 400;

pub trait MaintenanceStore {
    /// How many rows of `target` ended before `cutoff` (at `now`).
    fn count_expired(
        &self,
        target: CleanupTarget,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    /// Deletes at most `limit` of them in one statement; answers how many.
    fn delete_expired(
        &self,
        target: CleanupTarget,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    /// Counts the audit entries of every UTC day not yet counted, from the first entry's day up
    /// to (not including) `until`, at most `max_days` days, into the daily rollup the usage
    /// statistics read; each day in one transaction with the mark of how far it got. Answers
    /// how many days it counted.
    fn roll_up_audit_days(
        &self,
        until: DateTime<Utc>,
        max_days: u32,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    /// Claims the clean-up pass for this instance when no instance ran one in the last
    /// `every` (one conditional statement): answers whether this instance runs it.
    fn claim_maintenance_pass(
        &self,
        now: DateTime<Utc>,
        every: Duration,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_kept_for_its_own_time() {
        let now = Utc::now();
        let retention = Retention::default();
        assert_eq!(
            retention.cutoff(CleanupTarget::Sessions, now),
            now - Duration::days(7)
        );
        assert_eq!(
            retention.cutoff(CleanupTarget::Mails, now),
            now - Duration::days(30)
        );
        assert_eq!(
            retention.cutoff(CleanupTarget::OidcNonces, now),
            now - Duration::days(1)
        );
        let tables: std::collections::BTreeSet<_> = CleanupTarget::ALL.iter().map(|t| t.table()).collect();
        assert_eq!(tables.len(), CleanupTarget::ALL.len());
        assert!(!tables.contains("audit_logs"), "audit entries are never deleted");
    }
}
