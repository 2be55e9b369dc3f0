//! Webhook subscriptions and their deliveries: which events a subscription takes, where it may
//! point, how failed deliveries are retried, who manages it, and the store they need.

use std::future::Future;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use ipnet::IpNet;
use uuid::Uuid;

use super::catalog::{EVENT_TYPES, PING};
use crate::{AuditEntry, PageRequest, RepositoryError, RuleError};

/// Longest URL a subscription may have.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description.
pub const MAX_DESCRIPTION_LEN: usize = 500;
/// Most patterns one subscription may list.
pub const MAX_EVENT_PATTERNS: usize = 200;
/// Subscriptions per scope (the instance, or one organization).
pub const MAX_WEBHOOKS_PER_SCOPE: u64 = 50;
/// Deliveries that ended `failed` in a row before Steward turns a subscription off.
pub const DISABLE_AFTER_FAILURES: i32 = 50;
/// How much of a receiver's answer is read (and kept, up to 1 KiB, for the delivery log).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How long a rotated-out secret still signs deliveries, by default.
pub const DEFAULT_SECRET_OVERLAP_HOURS: i64 = 24;

/// The events a subscription takes: exact types (`user.created`), every type of one resource
/// (`user.*`, `auth.*`) or everything (`*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPatterns(Vec<String>);

impl EventPatterns {
    /// Checks every pattern against the catalog: an exact type must exist, a `prefix.*` must
    /// cover at least one type.
    pub fn parse(patterns: &[String]) -> Result<Self, RuleError> {
        if patterns.is_empty() {
            return Err(RuleError::Invalid {
                field: "events",
                message: "name at least one event type, `resource.*` or `*`",
            });
        }
        if patterns.len() > MAX_EVENT_PATTERNS {
            return Err(RuleError::Invalid {
                field: "events",
                message: "at most 200 patterns",
            });
        }
        let mut kept: Vec<String> = Vec::with_capacity(patterns.len());
        for pattern in patterns {
            let known = pattern == "*"
                || pattern == PING
                || match pattern.strip_suffix(".*") {
                    Some(prefix) => {
                        !prefix.is_empty()
                            && EVENT_TYPES.iter().any(|event| {
                                event
                                    .name
                                    .strip_prefix(prefix)
                                    .is_some_and(|rest| rest.starts_with('.'))
                            })
                    }
                    None => EVENT_TYPES.iter().any(|event| event.name == pattern),
                };
            if !known {
                return Err(RuleError::Invalid {
                    field: "events",
                    message: "names an event type that does not exist (see GET /api/admin/v1/event-types)",
                });
            }
            if !kept.contains(pattern) {
                kept.push(pattern.clone());
            }
        }
        Ok(Self(kept))
    }

    /// Patterns as stored (already checked when written).
    pub fn stored(patterns: Vec<String>) -> Self {
        Self(patterns)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether `event_type` is one of these. A `ping` reaches every subscription.
    pub fn matches(&self, event_type: &str) -> bool {
        event_type == PING
            || self.0.iter().any(|pattern| {
                pattern == "*"
                    || pattern == event_type
                    || pattern.strip_suffix(".*").is_some_and(|prefix| {
                        event_type
                            .strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
            })
    }
}

/// Where deliveries may go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundRules {
    /// `http://` URLs are accepted (development only).
    pub allow_http: bool,
    /// Networks the instance's subscriptions may reach although they are loopback, private,
    /// link-local or otherwise not public (`STEWARD_WEBHOOK_ALLOWED_NETWORKS`).
    pub allowed_networks: Vec<IpNet>,
    /// The same for organizations' subscriptions (`STEWARD_WEBHOOK_ORGANIZATION_NETWORKS`),
    /// separate so that tenants never reach the operator's internal services unless the
    /// operator says so.
    pub organization_networks: Vec<IpNet>,
}

impl OutboundRules {
    /// The rules of one subscription: an organization's reaches `organization_networks`
    /// beyond the public internet, the instance's `allowed_networks`.
    pub fn for_scope(&self, organization: bool) -> OutboundRules {
        OutboundRules {
            allow_http: self.allow_http,
            allowed_networks: if organization {
                self.organization_networks.clone()
            } else {
                self.allowed_networks.clone()
            },
            organization_networks: Vec::new(),
        }
    }

    /// Whether a delivery may connect to `address`: public addresses always, others only
    /// inside an allowed network.
    pub fn may_connect(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        is_public(address)
            || self
                .allowed_networks
                .iter()
                .any(|network| network.contains(&address))
    }

    /// Checks a subscription's URL: `https` (or `http` when allowed), a host, no credentials,
    /// no fragment, and — when the host is an address — one a delivery may connect to.
    /// Host names are checked again at every delivery, after they resolve.
    pub fn check_url(&self, url: &str) -> Result<url::Url, RuleError> {
        let invalid = |message| RuleError::Invalid {
            field: "url",
            message,
        };
        if url.len() > MAX_URL_LEN || url.chars().any(char::is_control) {
            return Err(invalid("must be a URL of at most 2048 characters"));
        }
        let parsed = url::Url::parse(url).map_err(|_| invalid("is not an absolute URL"))?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(invalid(
                    "must use https (http needs STEWARD_WEBHOOK_ALLOW_HTTP=true)",
                ));
            }
            _ => return Err(invalid("must use https")),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(invalid(
                "must not carry credentials; the signature authenticates Steward",
            ));
        }
        if parsed.fragment().is_some() {
            return Err(invalid("must not have a fragment"));
        }
        if parsed.port() == Some(0) {
            return Err(invalid("must not name port 0"));
        }
        let refused = || {
            invalid(
                "points at a loopback, private or otherwise internal address (allow it with STEWARD_WEBHOOK_ALLOWED_NETWORKS)",
            )
        };
        match parsed.host() {
            None => return Err(invalid("has no host")),
            Some(url::Host::Ipv4(ip)) if !self.may_connect(IpAddr::V4(ip)) => return Err(refused()),
            Some(url::Host::Ipv6(ip)) if !self.may_connect(IpAddr::V6(ip)) => return Err(refused()),
            Some(url::Host::Domain(name))
                if is_localhost(name) && !self.may_connect(IpAddr::from([127, 0, 0, 1])) =>
            {
                return Err(refused());
            }
            Some(_) => {}
        }
        Ok(parsed)
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// `localhost` and its subdomains, with or without the root's trailing dot.
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn is_public_v4(ip: std::net::Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

/// Whether `address` is on the public internet: not loopback, private, link-local (cloud
/// metadata lives there), shared (CGNAT), unspecified, broadcast, multicast, documentation,
/// benchmarking or reserved; for IPv6 also not unique- or site-local, and none of the forms
/// that carry an IPv4 address (compatible, mapped, translated, NAT64, 6to4 with a non-public
/// one, Teredo) nor the discard prefix.
pub fn is_public(address: IpAddr) -> bool {
    match canonical(address) {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            let s = ip.segments();
            let embedded = std::net::Ipv4Addr::new(
                (s[1] >> 8) as u8,
                (s[1] & 0xff) as u8,
                (s[2] >> 8) as u8,
                (s[2] & 0xff) as u8,
            );
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                // IPv4-compatible (::a.b.c.d) and IPv4-translated (::ffff:0:a.b.c.d).
                || s[..6] == [0; 6]
                || (s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0)
                // Unique-local, link-local, site-local.
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                // Documentation, NAT64 (well-known and local), discard-only.
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x0064 && s[1] == 0xff9b)
                || (s[0] == 0x0100 && s[1..4] == [0; 3])
                // IETF protocol assignments: Teredo, benchmarking, ORCHID.
                || (s[0] == 0x2001 && s[1] < 0x0200)
                // 6to4 carrying a non-public IPv4 address.
                || (s[0] == 0x2002 && !is_public_v4(embedded)))
        }
    }
}

/// The waits between attempts: after the first failure, the second … (`STEWARD_WEBHOOK_RETRY_DELAYS`,
/// default 5 s, 30 s, 300 s). A delivery gets one attempt more than there are delays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(pub Vec<Duration>);

impl Default for RetrySchedule {
    fn default() -> Self {
        Self(vec![
            Duration::seconds(5),
            Duration::seconds(30),
            Duration::seconds(300),
        ])
    }
}

impl RetrySchedule {
    /// The most attempts one delivery gets.
    pub fn max_attempts(&self) -> i32 {
        i32::try_from(self.0.len()).unwrap_or(i32::MAX - 1) + 1
    }

    /// What happens after attempt number `attempts` (1-based) failed: when to try again, or
    /// `None` when it was the last.
    pub fn next_attempt(&self, attempts: i32, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let index = usize::try_from(attempts.checked_sub(1)?).ok()?;
        self.0.get(index).map(|delay| now + *delay)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// A receiver answered 2xx.
    Succeeded,
    /// Every attempt failed, or the subscription was turned off or deleted before it went.
    Failed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Succeeded, Self::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }
}

/// A subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRecord {
    pub id: Uuid,
    /// Only this organization's events, managed by its owners and admins too; `None`: every
    /// event, managed by holders of `webhooks:manage`.
    pub organization_id: Option<Uuid>,
    pub url: String,
    pub description: Option<String>,
    pub events: EventPatterns,
    /// The signing secret, sealed (AES-256-GCM with the instance's secret key).
    pub secret_sealed: String,
    /// The secret before the last rotation, still signing until `previous_secret_until`.
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub enabled: bool,
    /// Deliveries that ended failed since the last success.
    pub consecutive_failures: i32,
    /// Why Steward turned it off, when it did.
    pub disabled_reason: Option<String>,
    pub created_by: Uuid,
    /// An operator's personal subscription to their notifications (set in their notification
    /// preferences): hears no events, is not listed with the others, and follows the
    /// organizations' network rules.
    pub personal_user_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: i32,
}

impl WebhookRecord {
    /// Whether it takes an event of `event_type` from `organization` that happened at
    /// `occurred_at`: an organization's subscription only hears its own organization, and no
    /// subscription hears what happened before it was created.
    pub fn wants(&self, event_type: &str, organization: Option<Uuid>, occurred_at: DateTime<Utc>) -> bool {
        self.enabled
            && self.personal_user_id.is_none()
            && occurred_at >= self.created_at
            && self.events.matches(event_type)
            && self.organization_id.is_none_or(|own| organization == Some(own))
    }
}

/// One event on its way to one subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// The exact body posted (and signed).
    pub payload: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last answer, if there was one.
    pub response_status: Option<i32>,
    /// The start of the last answer's body (at most 1 KiB).
    pub response_excerpt: Option<String>,
    pub latency_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The delivery this one sends again, for a redelivery.
    pub redelivery_of: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl DeliveryRecord {
    /// A new delivery of `payload`, due at once.
    pub fn new(
        webhook_id: Uuid,
        event_id: Uuid,
        event_type: &str,
        payload: String,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: Uuid::now_v7(),
            webhook_id,
            event_id,
            event_type: event_type.to_owned(),
            payload,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(now),
            response_status: None,
            response_excerpt: None,
            latency_ms: None,
            last_error: None,
            redelivery_of: None,
            created_at: now,
            finished_at: None,
        }
    }
}

/// A delivery claimed for an attempt, with what sending it needs.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub delivery: DeliveryRecord,
    /// The subscription's organization (its deliveries follow the organizations' rules).
    pub organization_id: Option<Uuid>,
    /// An operator's personal subscription (it follows the organizations' rules too).
    pub personal: bool,
    pub url: String,
    pub secret_sealed: String,
    /// The rotated-out secret while its overlap lasts.
    pub previous_secret_sealed: Option<String>,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub at: DateTime<Utc>,
    pub response_status: Option<i32>,
    pub response_excerpt: Option<String>,
    pub latency_ms: i64,
    /// Why it failed; `None` for a 2xx answer.
    pub error: Option<String>,
    /// When to try again after a failure; `None` when that was the last attempt.
    pub retry_at: Option<DateTime<Utc>>,
}

/// Which subscriptions a reader sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookViewer {
    /// Holds `webhooks:manage` (and the token scope): every subscription.
    pub sees_all: bool,
    /// Organizations whose subscriptions they manage (owner or admin there).
    pub organizations: Vec<Uuid>,
}

impl WebhookViewer {
    pub fn may_manage(&self, organization: Option<Uuid>) -> bool {
        self.sees_all || organization.is_some_and(|org| self.organizations.contains(&org))
    }
}

/// What `GET /webhooks` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookFilter {
    /// `None`: every subscription; otherwise those of these organizations.
    pub organizations: Option<Vec<Uuid>>,
    /// Only this organization's (`?organizationId=`).
    pub organization: Option<Uuid>,
}

/// What the dispatcher hands the store for a batch of claimed events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FanOut {
    /// The outbox rows (audit entry ids) done with.
    pub events: Vec<Uuid>,
    pub deliveries: Vec<DeliveryRecord>,
    /// Notifications the events may raise; the store decides counted ones under its lock.
    pub candidates: Vec<crate::notifications::Candidate>,
}

/// Subscriptions, their deliveries and the event outbox.
pub trait WebhookStore {
    /// Writes a new subscription; `Conflict` when its scope already has the most allowed.
    fn create_webhook(
        &self,
        webhook: &WebhookRecord,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn webhook(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<WebhookRecord>, RepositoryError>> + Send;

    /// One page, newest first, and the total.
    fn webhooks(
        &self,
        filter: &WebhookFilter,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<WebhookRecord>, u64), RepositoryError>> + Send;

    /// Replaces a subscription if its version is still `expected_version` (else
    /// `VersionConflict`; `NotFound` when gone). Turning it off fails its pending deliveries.
    /// The failure count is the delivery worker's: written only when `reset_failures` (turning
    /// it back on), so a change racing a failed delivery loses no count.
    fn save_webhook(
        &self,
        webhook: &WebhookRecord,
        expected_version: i32,
        reset_failures: bool,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Deletes a subscription and its deliveries.
    fn delete_webhook(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Every enabled subscription (the dispatcher matches events against them).
    fn enabled_webhooks(&self) -> impl Future<Output = Result<Vec<WebhookRecord>, RepositoryError>> + Send;

    /// One page of a subscription's deliveries, newest first, and the total.
    fn deliveries(
        &self,
        webhook: Uuid,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> impl Future<Output = Result<(Vec<DeliveryRecord>, u64), RepositoryError>> + Send;

    fn delivery(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<DeliveryRecord>, RepositoryError>> + Send;

    /// An operator's personal subscription, if they set one.
    fn personal_webhook(
        &self,
        user: Uuid,
    ) -> impl Future<Output = Result<Option<WebhookRecord>, RepositoryError>> + Send;

    /// Queues a delivery made outside the dispatcher (a redelivery, a ping); `NotFound` when
    /// its subscription is gone.
    fn enqueue_delivery(
        &self,
        delivery: &DeliveryRecord,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Claims up to `limit` outbox events nobody holds (or whose holder's lease ran out) for
    /// `claimant` until `lease_until`, oldest first, and answers their audit entries.
    fn claim_events(
        &self,
        claimant: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, RepositoryError>> + Send;

    /// In one transaction: removes the events from the outbox — only if `claimant` still holds
    /// every one of them — and writes what they caused. First it turns off subscriptions whose
    /// creator may no longer manage them (holds no system role and, for an organization's, is
    /// no longer its owner or admin), auditing `webhook.disabled`; deliveries for subscriptions
    /// turned off or deleted meanwhile are dropped. Answers `false` (writing nothing) when the
    /// claim was lost.
    fn complete_events(
        &self,
        claimant: Uuid,
        fan_out: &FanOut,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Claims up to `limit` due pending deliveries of enabled subscriptions for `claimant`
    /// until `lease_until`, oldest due first, with at most `per_subscription` of one
    /// subscription in flight (over every instance), so one slow receiver cannot hold every
    /// slot.
    fn claim_deliveries(
        &self,
        claimant: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
        per_subscription: u64,
    ) -> impl Future<Output = Result<Vec<DueDelivery>, RepositoryError>> + Send;

    /// Records attempts of deliveries `claimant` holds, in one transaction: success, a retry
    /// later, or failure (an attempt on a delivery no longer held is ignored). A failure that
    /// ends a delivery counts against its subscription, which is turned off (audited as
    /// `webhook.disabled`) at [`DISABLE_AFTER_FAILURES`]; a success resets the count.
    fn finish_attempts(
        &self,
        claimant: Uuid,
        results: &[(Uuid, AttemptResult)],
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Result<EventPatterns, RuleError> {
        EventPatterns::parse(&list.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn patterns_are_exact_types_resource_wildcards_or_everything() {
        let user = patterns(&["user.created", "auth.*"]).unwrap();
        assert!(user.matches("user.created"));
        assert!(user.matches("auth.login_failed"));
        assert!(user.matches("ping"));
        assert!(!user.matches("user.profile_updated"));
        assert!(!user.matches("authx.anything"));
        assert!(patterns(&["*"]).unwrap().matches("device.wiped"));
        for refused in [
            &[][..],
            &["user.made_up"],
            &["nope.*"],
            &[".*"],
            &["user"],
            &["us*"],
        ] {
            assert!(patterns(refused).is_err(), "{refused:?}");
        }
        assert_eq!(patterns(&["*", "*"]).unwrap().as_slice(), &["*".to_owned()]);
    }

    #[test]
    fn urls_must_be_https_to_public_hosts_unless_allowed() {
        let strict = OutboundRules::default();
        assert!(strict.check_url("https://hooks.example.com/steward").is_ok());
        for refused in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#x",
            "https://127.0.0.1/",
            "https://[::1]/",
            "https://169.254.169.254/latest/meta-data",
            "https://10.1.2.3/",
            "https://[::ffff:192.168.1.1]/",
            "https://localhost:8080/",
            "https://a.localhost/",
            "https://100.64.0.1/",
            "https://[fd00::1]/",
            "https://[::7f00:1]/",
            "https://[::ffff:0:7f00:1]/",
            "https://[2002:7f00:1::]/",
            "https://[2001::1]/",
            "https://[fec0::1]/",
            "https://[64:ff9b::a00:1]/",
            "https://[100::1]/",
            "https://localhost./",
            "https://LOCALHOST/",
            "https://2130706433/",
            "https://0x7f.1/",
            "https://hooks.example.com:0/",
            "not a url",
            "https://hooks.example.com/\0",
        ] {
            assert!(strict.check_url(refused).is_err(), "{refused}");
        }
        let development = OutboundRules {
            allow_http: true,
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
            organization_networks: Vec::new(),
        };
        // Organizations' subscriptions do not get the instance's networks.
        assert!(
            development
                .for_scope(true)
                .check_url("http://127.0.0.1:9000/hook")
                .is_err()
        );
        assert!(
            development
                .for_scope(false)
                .check_url("http://127.0.0.1:9000/hook")
                .is_ok()
        );
        assert!(
            strict.may_connect("2002:5db8:d70e::1".parse().unwrap()),
            "6to4 of a public address"
        );
        assert!(development.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(development.check_url("http://localhost:9000/hook").is_ok());
        assert!(development.check_url("http://10.0.0.1/hook").is_err());
        assert!(development.may_connect("::ffff:127.0.0.1".parse().unwrap()));
        assert!(strict.may_connect("93.184.215.14".parse().unwrap()));
        assert!(strict.may_connect("2606:2800:21f:cb07::1".parse().unwrap()));
    }

    #[test]
    fn failed_attempts_wait_as_scheduled_then_stop() {
        let schedule = RetrySchedule::default();
        let now = Utc::now();
        assert_eq!(schedule.max_attempts(), 4);
        assert_eq!(schedule.next_attempt(1, now), Some(now + Duration::seconds(5)));
        assert_eq!(schedule.next_attempt(3, now), Some(now + Duration::seconds(300)));
        assert_eq!(schedule.next_attempt(4, now), None);
        assert_eq!(schedule.next_attempt(0, now), None);
        assert_eq!(schedule.next_attempt(i32::MIN, now), None);
    }

    #[test]
    fn an_organizations_subscription_hears_only_that_organization() {
        let org = Uuid::now_v7();
        let webhook = WebhookRecord {
            id: Uuid::nil(),
            organization_id: Some(org),
            url: String::new(),
            description: None,
            events: patterns(&["*"]).unwrap(),
            secret_sealed: String::new(),
            previous_secret_sealed: None,
            previous_secret_until: None,
            enabled: true,
            consecutive_failures: 0,
            disabled_reason: None,
            created_by: Uuid::nil(),
            personal_user_id: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            version: 1,
        };
        let now = Utc::now();
        assert!(webhook.wants("device.enrolled", Some(org), now));
        assert!(!webhook.wants(
            "device.enrolled",
            Some(org),
            webhook.created_at - Duration::seconds(1)
        ));
        assert!(!webhook.wants("device.enrolled", Some(Uuid::now_v7()), now));
        assert!(!webhook.wants("auth.login_failed", None, now));
        let global = WebhookRecord {
            organization_id: None,
            ..webhook.clone()
        };
        assert!(
            global.wants("auth.login_failed", None, now) && global.wants("device.enrolled", Some(org), now)
        );
        assert!(
            !WebhookRecord {
                enabled: false,
                ..global
            }
            .wants("auth.login_failed", None, now)
        );
    }
}
