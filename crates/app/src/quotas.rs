//! An account's quotas (personal devices, groups, members per group, personal access tokens):
//! read by the account itself and by operators, set by operators. The organizations' quotas
//! are in [`crate::organizations`].

use steward_domain::quotas::{OrgQuota, QuotaKey};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;
use crate::organizations::{QuotaLine, QuotaReport};
use crate::steward::{Steward, Store};

pub struct QuotaService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> QuotaService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// The account's plan, overrides, and each of its limits beside its use. `NotFound` for
    /// an account that does not exist (or is deleted).
    pub async fn user_quotas(&self, user: Uuid) -> Result<QuotaReport, AppError> {
        self.live_user(user).await?;
        let quota = self.steward.store.user_quota(user).await?;
        self.report(user, quota).await
    }

    /// `NotFound` for an account that does not exist or is erased.
    async fn live_user(&self, user: Uuid) -> Result<(), AppError> {
        self.steward
            .store
            .find_user(user)
            .await?
            .filter(|found| found.status != "deleted")
            .ok_or_else(|| AppError::not_found("no such user"))?;
        Ok(())
    }

    async fn report(&self, user: Uuid, quota: OrgQuota) -> Result<QuotaReport, AppError> {
        let usage = self.steward.store.user_quota_usage(user).await?;
        let plans = &self.steward.quota_plans;
        Ok(QuotaReport {
            lines: QuotaKey::USER
                .into_iter()
                .map(|key| QuotaLine {
                    key,
                    limit: plans.limit(&quota, key),
                    used: usage.get(&key).copied().unwrap_or(0),
                    overridden: quota.overrides.contains_key(&key),
                })
                .collect(),
            plan: quota.plan,
            overrides: quota.overrides,
        })
    }

    /// Sets an account's plan (kept when `None`) and overrides (a key absent uses the plan's
    /// limit; `None` as a value is unlimited); only [`QuotaKey::USER`] keys. An operator's act,
    /// audited as `user.quota_changed` with the values before and after. Lowering a limit
    /// below the use removes nothing; it refuses further creations.
    pub async fn set_user_quotas(
        &self,
        admin: Uuid,
        user: Uuid,
        plan: Option<String>,
        overrides: steward_domain::quotas::Limits,
        origin: &RequestOrigin,
    ) -> Result<QuotaReport, AppError> {
        if let Some(key) = overrides.keys().find(|key| !QuotaKey::USER.contains(key)) {
            return Err(AppError::invalid(
                "overrides",
                format!(
                    "`{}` is an organization's limit; an account's are {}",
                    key.as_str(),
                    user_keys()
                ),
            ));
        }
        self.live_user(user).await?;
        let before = self.steward.store.user_quota(user).await?;
        let plan = match plan {
            Some(plan) => configured_plan(&self.steward.quota_plans, &plan)?,
            None => before.plan.clone(),
        };
        let quota = OrgQuota { plan, overrides };
        let audit = AuditEntry::new(
            Actor::admin(admin),
            AuditAction::known("user.quota_changed"),
            "user",
        )
        .resource_id(user)
        .change(Some(serde_json::json!(before)), Some(serde_json::json!(quota)))
        .origin(origin.clone());
        let stored = self
            .steward
            .store
            .set_user_quota(user, &quota, &audit)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::NotFound => AppError::not_found("no such user"),
                other => other.into(),
            })?;
        self.report(user, stored).await
    }
}

/// One organization's use of one limit, for the utilisation gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utilisation {
    pub organization: Uuid,
    pub key: QuotaKey,
    pub limit: u64,
    pub used: u64,
}

/// Every limited organization's use of each of its limits.
pub async fn utilisation<S: Store>(steward: &Steward<S>) -> Result<Vec<Utilisation>, AppError> {
    let plans = &steward.quota_plans;
    let organizations = steward.store.limited_organizations_usage(plans).await?;
    let now = chrono::Utc::now().timestamp();
    let shared = steward.shared_limits.as_deref();
    let mut lines = Vec::new();
    for org in organizations {
        for key in QuotaKey::ORGANIZATION {
            let Some(limit) = plans.limit(&org.quota, key) else {
                continue;
            };
            let used = if key == QuotaKey::ApiRequestsPerMinute {
                steward
                    .organization_requests
                    .used_shared(shared, org.id, now)
                    .await
            } else {
                org.used.get(&key).copied().unwrap_or(0)
            };
            lines.push(Utilisation {
                organization: org.id,
                key,
                limit,
                used,
            });
        }
    }
    Ok(lines)
}

/// Refreshes the utilisation gauges every `every` (each instance; a few grouped counts).
pub async fn run_quota_metrics<S, F>(steward: Steward<S>, every: std::time::Duration, record: F)
where
    S: Store,
    F: Fn(&[Utilisation]),
{
    steward
        .health
        .vitals
        .start(crate::health::Worker::QuotaMetrics, every);
    loop {
        match utilisation(&steward).await {
            Ok(lines) => {
                record(&lines);
                steward.health.vitals.beat(crate::health::Worker::QuotaMetrics);
            }
            Err(error) => tracing::warn!(error = %error.message, "could not count quota use for the metrics"),
        }
        tokio::time::sleep(every).await;
    }
}

/// `plan` (trimmed) if it is a configured plan, else the field error naming the plans.
pub(crate) fn configured_plan(
    plans: &steward_domain::quotas::QuotaPlans,
    plan: &str,
) -> Result<String, AppError> {
    let plan = plan.trim();
    if plans.get(plan).is_none() {
        return Err(AppError::invalid(
            "plan",
            format!(
                "must be one of the configured plans: {}",
                plans.names().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    Ok(plan.to_owned())
}

/// The account's limit names, for messages.
pub fn user_keys() -> String {
    QuotaKey::USER.map(QuotaKey::as_str).join(", ")
}

/// The organization's limit names, for messages.
pub fn organization_keys() -> String {
    QuotaKey::ORGANIZATION.map(QuotaKey::as_str).join(", ")
}

/// Requests to each organization's routes in the current minute, on this instance: the
/// `api_requests_per_minute` quota. A fixed window (the clock's minute), kept in memory, so with
/// N instances an organization gets up to N times its limit, as the other rate limits.
#[derive(Debug, Default)]
pub struct RequestCounter {
    windows: std::sync::Mutex<Windows>,
}

#[derive(Debug, Default)]
struct Windows {
    counts: std::collections::HashMap<Uuid, (i64, u64)>,
    /// The minute of the last sweep of past minutes (at most one a minute).
    swept: i64,
}

/// Organizations remembered before the counter forgets those of past minutes.
const REMEMBERED: usize = 100_000;

impl RequestCounter {
    /// Counts one request of `organization` at `now` (seconds since the epoch) against
    /// `limit`; past it, `RateLimited` with the seconds to the next minute and the quota.
    pub fn count(&self, organization: Uuid, limit: Option<u64>, now: i64) -> Result<(), AppError> {
        let Some(limit) = limit else {
            return Ok(());
        };
        let minute = now.div_euclid(60);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if windows.counts.len() >= REMEMBERED && windows.swept != minute {
            windows.counts.retain(|_, (seen, _)| *seen == minute);
            windows.swept = minute;
        }
        let window = windows.counts.entry(organization).or_insert((minute, 0));
        if window.0 != minute {
            *window = (minute, 0);
        }
        if window.1 >= limit {
            let used = window.1;
            drop(windows);
            return Err(Self::refusal(limit, used, now));
        }
        window.1 += 1;
        Ok(())
    }

    /// The refusal of a request past `limit` with `used` counted, at `now`: `RateLimited` with
    /// the seconds to the next minute and the quota.
    pub fn refusal(limit: u64, used: u64, now: i64) -> AppError {
        let exceeded = steward_domain::quotas::QuotaExceeded {
            key: QuotaKey::ApiRequestsPerMinute,
            limit,
            used,
        };
        let mut error = AppError::new(
            crate::error::ErrorKind::RateLimited,
            format!(
                "{exceeded}; retry after the minute, or ask your operator to raise the organization's quota"
            ),
        )
        .with_retry_after(u64::try_from(60 - now.rem_euclid(60)).unwrap_or(60).max(1))
        .with_limit("api_requests_per_minute");
        error.quota = Some(exceeded);
        error
    }

    /// The key of an organization's minute in the shared store.
    pub fn shared_key(organization: Uuid) -> String {
        format!("org_requests:{organization}")
    }

    /// One request of `organization` at `now` against `limit`, counted in the shared store
    /// when there is one and it answers, else by this instance.
    pub async fn count_shared(
        &self,
        shared: Option<&crate::limits::SharedLimits>,
        organization: Uuid,
        limit: Option<u64>,
        now: i64,
    ) -> Result<(), AppError> {
        let Some(limit) = limit else {
            return Ok(());
        };
        if let Some(shared) = shared {
            let minute = now.div_euclid(60);
            let ttl = std::time::Duration::from_secs(120);
            if let Some(answer) = shared
                .count(&Self::shared_key(organization), minute, limit, ttl)
                .await
            {
                return if answer.admitted {
                    // Counted here too, so an outage of the store goes on from this
                    // instance's own count rather than a fresh minute.
                    let _ = self.count(organization, Some(limit), now);
                    Ok(())
                } else {
                    Err(Self::refusal(limit, answer.used, now))
                };
            }
        }
        self.count(organization, Some(limit), now)
    }

    /// The organization's requests in the minute of `now`, from the shared store when there is
    /// one and it answers.
    pub async fn used_shared(
        &self,
        shared: Option<&crate::limits::SharedLimits>,
        organization: Uuid,
        now: i64,
    ) -> u64 {
        if let Some(shared) = shared
            && let Some(used) = shared
                .used(&Self::shared_key(organization), now.div_euclid(60))
                .await
        {
            return used;
        }
        self.used(organization, now)
    }

    /// The organization's requests in the minute of `now`.
    pub fn used(&self, organization: Uuid, now: i64) -> u64 {
        let minute = now.div_euclid(60);
        self.windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .counts
            .get(&organization)
            .filter(|(seen, _)| *seen == minute)
            .map_or(0, |(_, used)| *used)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{
        LimitFuture, Refused, SharedLimitError, SharedLimitStore, SharedLimits, WindowCount,
    };
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A store whose window admits everything until it is broken, then fails.
    #[derive(Default)]
    struct Breakable {
        broken: AtomicBool,
    }

    impl SharedLimitStore for Breakable {
        fn take<'a>(
            &'a self,
            _: &'a str,
            _: u32,
            _: std::time::Duration,
        ) -> LimitFuture<'a, Result<(), Refused>> {
            Box::pin(async { Err(SharedLimitError("not used".to_owned())) })
        }
        fn count<'a>(
            &'a self,
            _: &'a str,
            _: i64,
            _: u64,
            _: std::time::Duration,
        ) -> LimitFuture<'a, WindowCount> {
            let broken = self.broken.load(Ordering::Relaxed);
            Box::pin(async move {
                if broken {
                    Err(SharedLimitError("connection refused".to_owned()))
                } else {
                    Ok(WindowCount {
                        admitted: true,
                        used: 1,
                    })
                }
            })
        }
        fn used<'a>(&'a self, _: &'a str, _: i64) -> LimitFuture<'a, u64> {
            Box::pin(async { Err(SharedLimitError("not used".to_owned())) })
        }
        fn ping(&self) -> LimitFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
    }

    #[tokio::test]
    async fn when_the_store_fails_the_minute_goes_on_from_this_instances_count() {
        let store = std::sync::Arc::new(Breakable::default());
        let shared = SharedLimits::new(store.clone());
        let counter = RequestCounter::default();
        let org = Uuid::now_v7();
        let now = 6_010;
        for _ in 0..3 {
            assert!(
                counter
                    .count_shared(Some(&shared), org, Some(4), now)
                    .await
                    .is_ok()
            );
        }
        // The store goes away: one of the four is left here, not a fresh minute.
        store.broken.store(true, Ordering::Relaxed);
        assert!(
            counter
                .count_shared(Some(&shared), org, Some(4), now)
                .await
                .is_ok()
        );
        assert!(
            counter
                .count_shared(Some(&shared), org, Some(4), now)
                .await
                .is_err()
        );
    }

    #[test]
    fn a_minute_admits_the_limit_then_refuses_until_the_next() {
        let counter = RequestCounter::default();
        let org = Uuid::now_v7();
        let start = 6_000; // the start of a minute
        for _ in 0..3 {
            assert!(counter.count(org, Some(3), start + 10).is_ok());
        }
        let refused = counter.count(org, Some(3), start + 50).unwrap_err();
        assert_eq!(refused.kind, crate::error::ErrorKind::RateLimited);
        assert_eq!(refused.retry_after, Some(10));
        assert_eq!(refused.quota.map(|q| (q.limit, q.used)), Some((3, 3)));
        assert_eq!(counter.used(org, start + 59), 3);
        assert!(counter.count(org, Some(3), start + 60).is_ok(), "a new minute");
        assert_eq!(counter.used(org, start + 60), 1);
        assert!(counter.count(org, None, start + 60).is_ok());
        assert!(counter.count(Uuid::now_v7(), Some(0), start).is_err());
    }
}
