//! Quotas: how much an organization may have (devices, users, enrollment tokens, policies,
//! imports a day) and
//! how much one account may have (personal devices, groups, members per group, personal access
//! tokens), from a plan with overrides. Decided where the thing is created, on a count read
//! under the owner's lock, so N+1 concurrent creations against a limit of N admit exactly N.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaKey {
    /// Devices in the organization (pending, enrolled or suspended).
    Devices,
    /// Users of the organization.
    Users,
    /// Live enrollment tokens of the organization (not revoked, expired or used up).
    EnrollmentTokens,
    /// Device policies of the organization.
    Policies,
    /// Device and user imports of the organization carried out (not dry runs, not refused) in
    /// the last 24 hours.
    ImportsPerDay,
    /// Requests to the organization's routes in the current minute (on one instance).
    ApiRequestsPerMinute,
    /// Devices an account owns outside any organization.
    PersonalDevices,
    /// Family groups an account owns.
    Groups,
    /// Members of each family group the account owns (the owner included).
    GroupMembers,
    /// An account's live personal access tokens (not revoked or expired).
    PersonalAccessTokens,
}

/// Whom a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaScope {
    Organization,
    User,
}

impl QuotaKey {
    pub const ALL: [QuotaKey; 10] = [
        QuotaKey::Devices,
        QuotaKey::Users,
        QuotaKey::EnrollmentTokens,
        QuotaKey::Policies,
        QuotaKey::ImportsPerDay,
        QuotaKey::ApiRequestsPerMinute,
        QuotaKey::PersonalDevices,
        QuotaKey::Groups,
        QuotaKey::GroupMembers,
        QuotaKey::PersonalAccessTokens,
    ];

    /// The limits an organization has.
    pub const ORGANIZATION: [QuotaKey; 6] = [
        QuotaKey::Devices,
        QuotaKey::Users,
        QuotaKey::EnrollmentTokens,
        QuotaKey::Policies,
        QuotaKey::ImportsPerDay,
        QuotaKey::ApiRequestsPerMinute,
    ];

    /// The limits an account has.
    pub const USER: [QuotaKey; 4] = [
        QuotaKey::PersonalDevices,
        QuotaKey::Groups,
        QuotaKey::GroupMembers,
        QuotaKey::PersonalAccessTokens,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            QuotaKey::Devices => "devices",
            QuotaKey::Users => "users",
            QuotaKey::EnrollmentTokens => "enrollment_tokens",
            QuotaKey::Policies => "policies",
            QuotaKey::ImportsPerDay => "imports_per_day",
            QuotaKey::ApiRequestsPerMinute => "api_requests_per_minute",
            QuotaKey::PersonalDevices => "personal_devices",
            QuotaKey::Groups => "groups",
            QuotaKey::GroupMembers => "group_members",
            QuotaKey::PersonalAccessTokens => "personal_access_tokens",
        }
    }

    /// How the refusal names what is counted.
    fn noun(self) -> &'static str {
        match self {
            QuotaKey::Devices => "devices",
            QuotaKey::Users => "users",
            QuotaKey::EnrollmentTokens => "enrollment tokens",
            QuotaKey::Policies => "policies",
            QuotaKey::ImportsPerDay => "imports per day",
            QuotaKey::ApiRequestsPerMinute => "API requests per minute",
            QuotaKey::PersonalDevices => "personal devices",
            QuotaKey::Groups => "groups",
            QuotaKey::GroupMembers => "members per group",
            QuotaKey::PersonalAccessTokens => "personal access tokens",
        }
    }

    pub fn scope(self) -> QuotaScope {
        if Self::USER.contains(&self) {
            QuotaScope::User
        } else {
            QuotaScope::Organization
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|key| key.as_str() == text)
    }
}

/// A plan's limits; a key absent or `None` is unlimited.
pub type Limits = BTreeMap<QuotaKey, Option<u64>>;

/// The name of the plan every organization and account has unless given another.
pub const DEFAULT_PLAN: &str = "free";

/// Every plan the operator configured, plus the built-in `free` (unlimited unless configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaPlans {
    plans: BTreeMap<String, Limits>,
}

impl QuotaPlans {
    /// The configured plans; `free` is added (unlimited) when not among them.
    pub fn new(plans: BTreeMap<String, Limits>) -> Self {
        let mut plans = plans;
        plans.entry(DEFAULT_PLAN.to_owned()).or_default();
        Self { plans }
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.plans.keys().map(String::as_str)
    }

    pub fn get(&self, plan: &str) -> Option<&Limits> {
        self.plans.get(plan)
    }

    /// An organization's or account's limit for `key`: its override if it has one (`None`
    /// there means unlimited), else its plan's (an unknown plan counts as `free`).
    pub fn limit(&self, quota: &OrgQuota, key: QuotaKey) -> Option<u64> {
        if let Some(value) = quota.overrides.get(&key) {
            return *value;
        }
        self.plans
            .get(&quota.plan)
            .or_else(|| self.plans.get(DEFAULT_PLAN))
            .and_then(|limits| limits.get(&key).copied().flatten())
    }
}

/// An organization's or account's plan and its overrides.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrgQuota {
    pub plan: String,
    #[serde(default)]
    pub overrides: Limits,
}

/// A creation the quota refuses: how much is allowed and how much is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub struct QuotaExceeded {
    pub key: QuotaKey,
    pub limit: u64,
    pub used: u64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whose = match self.key.scope() {
            QuotaScope::Organization => "the organization's",
            QuotaScope::User if self.key == QuotaKey::GroupMembers => "the group owner's",
            QuotaScope::User => "the account's",
        };
        write!(
            f,
            "{whose} quota of {} {} is used up ({} used)",
            self.limit,
            self.key.noun(),
            self.used
        )
    }
}

/// Where an account's plan and overrides are kept, and how much it uses.
pub trait UserQuotaStore {
    /// The account's plan and overrides (`free` and none when never set).
    fn user_quota(
        &self,
        user: uuid::Uuid,
    ) -> impl std::future::Future<Output = Result<OrgQuota, crate::RepositoryError>> + Send;

    /// How much of each [`QuotaKey::USER`] limit the account uses now (`group_members`: the
    /// most members among the groups it owns).
    fn user_quota_usage(
        &self,
        user: uuid::Uuid,
    ) -> impl std::future::Future<Output = Result<BTreeMap<QuotaKey, u64>, crate::RepositoryError>> + Send;

    /// Gives the account a plan and overrides, audited. `NotFound` when there is no such
    /// account.
    fn set_user_quota(
        &self,
        user: uuid::Uuid,
        quota: &OrgQuota,
        audit: &crate::AuditEntry,
    ) -> impl std::future::Future<Output = Result<OrgQuota, crate::RepositoryError>> + Send;
}

/// Whether `adding` more fit when `used` exist and the limit is `limit`.
pub fn check_quota(key: QuotaKey, limit: Option<u64>, used: u64, adding: u64) -> Result<(), QuotaExceeded> {
    match limit {
        Some(limit) if used.saturating_add(adding) > limit => Err(QuotaExceeded { key, limit, used }),
        _ => Ok(()),
    }
}

/// The warning thresholds (percent of a limit) that adding `adding` to `used` reaches for the
/// first time: 80 and 100, each once, as the use goes up past it.
pub fn thresholds_crossed(limit: u64, used: u64, adding: u64) -> Vec<u8> {
    let after = used.saturating_add(adding);
    [80u8, 100]
        .into_iter()
        .filter(|percent| {
            let level = u128::from(limit) * u128::from(*percent);
            limit > 0 && u128::from(used) * 100 < level && u128::from(after) * 100 >= level
        })
        .collect()
}

/// Whether a level crossed now is announced, given when it was last announced for the same
/// organization and key and under which limit: once a day, or at once under another limit.
pub fn announce_again(
    last: Option<(u64, chrono::DateTime<chrono::Utc>)>,
    limit: u64,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    last.is_none_or(|(announced_limit, at)| {
        announced_limit != limit || now - at >= chrono::Duration::hours(24)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_wins_over_the_plan_and_none_means_unlimited() {
        let team: Limits = [(QuotaKey::Devices, Some(10)), (QuotaKey::Users, Some(5))].into();
        let plans = QuotaPlans::new([("team".to_owned(), team)].into());
        let mut quota = OrgQuota {
            plan: "team".to_owned(),
            overrides: Limits::new(),
        };
        assert_eq!(plans.limit(&quota, QuotaKey::Devices), Some(10));
        assert_eq!(plans.limit(&quota, QuotaKey::Policies), None);
        quota.overrides.insert(QuotaKey::Devices, Some(15));
        quota.overrides.insert(QuotaKey::Users, None);
        assert_eq!(plans.limit(&quota, QuotaKey::Devices), Some(15));
        assert_eq!(plans.limit(&quota, QuotaKey::Users), None);
        let unknown = OrgQuota {
            plan: "gone".to_owned(),
            overrides: Limits::new(),
        };
        assert_eq!(
            plans.limit(&unknown, QuotaKey::Devices),
            None,
            "free is unlimited"
        );
        assert!(plans.names().any(|name| name == DEFAULT_PLAN));
    }

    #[test]
    fn a_level_is_announced_once_a_day_unless_the_limit_changed() {
        let now = chrono::Utc::now();
        assert!(announce_again(None, 10, now));
        assert!(!announce_again(
            Some((10, now - chrono::Duration::hours(23))),
            10,
            now
        ));
        assert!(announce_again(
            Some((10, now - chrono::Duration::hours(24))),
            10,
            now
        ));
        assert!(announce_again(
            Some((15, now - chrono::Duration::minutes(1))),
            10,
            now
        ));
    }

    #[test]
    fn each_threshold_is_crossed_once_on_the_way_up() {
        assert_eq!(thresholds_crossed(10, 7, 1), vec![80]);
        assert_eq!(thresholds_crossed(10, 8, 1), Vec::<u8>::new());
        assert_eq!(thresholds_crossed(10, 9, 1), vec![100]);
        assert_eq!(thresholds_crossed(10, 0, 10), vec![80, 100]);
        assert_eq!(thresholds_crossed(10, 10, 0), Vec::<u8>::new());
        assert_eq!(thresholds_crossed(0, 0, 0), Vec::<u8>::new());
        assert_eq!(thresholds_crossed(1, 0, 1), vec![80, 100]);
        assert_eq!(thresholds_crossed(u64::MAX, u64::MAX - 1, 1), vec![100]);
    }

    #[test]
    fn a_creation_fits_until_the_limit_is_reached() {
        assert!(check_quota(QuotaKey::Devices, Some(10), 9, 1).is_ok());
        assert_eq!(
            check_quota(QuotaKey::Devices, Some(10), 10, 1),
            Err(QuotaExceeded {
                key: QuotaKey::Devices,
                limit: 10,
                used: 10
            })
        );
        assert!(check_quota(QuotaKey::Devices, Some(10), 5, 6).is_err());
        assert!(check_quota(QuotaKey::Devices, None, u64::MAX, u64::MAX).is_ok());
        for key in QuotaKey::ALL {
            assert_eq!(QuotaKey::parse(key.as_str()), Some(key));
            assert_eq!(
                QuotaKey::ORGANIZATION.contains(&key),
                key.scope() == QuotaScope::Organization
            );
        }
        let refusal = QuotaExceeded {
            key: QuotaKey::PersonalAccessTokens,
            limit: 2,
            used: 2,
        };
        assert_eq!(
            refusal.to_string(),
            "the account's quota of 2 personal access tokens is used up (2 used)"
        );
    }
}
