//! What operators read at a glance: the dashboard's figures and usage statistics over time.
//! The rules here are pure — which scope, which window, which buckets, which audit actions a
//! metric counts — and the store answers counts for them.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use crate::{RepositoryError, RuleError};

/// Whose figures: the whole system, or one organization's (its members, devices, groups,
/// jobs and webhooks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    System,
    Organization(Uuid),
}

impl Scope {
    pub fn organization(self) -> Option<Uuid> {
        match self {
            Scope::System => None,
            Scope::Organization(id) => Some(id),
        }
    }
}

/// The audit actions of the dashboard's sign-in series.
pub const SIGN_IN_SUCCEEDED: &str = "auth.login_succeeded";
pub const SIGN_IN_FAILED: &str = "auth.login_failed";
pub const LOCKOUT: &str = "auth.account_locked";

/// Hours in the dashboard's sign-in series: the current hour and the 23 before it.
pub const SERIES_HOURS: i64 = 24;

/// The first instant the dashboard's sign-in series covers at `now`: the start of the hour 23
/// hours before the current one, so the totals are the sums of the 24 hourly buckets.
pub fn series_start(now: DateTime<Utc>) -> DateTime<Utc> {
    truncate(now, Interval::Hour) - Duration::hours(SERIES_HOURS - 1)
}

/// Accounts, counted once each (erased accounts are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserCounts {
    pub total: u64,
    /// Signed in within the last 24 hours, 7 days and 30 days.
    pub active_24h: u64,
    pub active_7d: u64,
    pub active_30d: u64,
    /// Locked by an operator (status `locked`).
    pub locked: u64,
    /// E-mail address not verified.
    pub unverified: u64,
}

/// Devices by status and by platform.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceCounts {
    pub total: u64,
    pub by_status: BTreeMap<String, u64>,
    /// Devices that did not name a platform are under `unknown`.
    pub by_platform: BTreeMap<String, u64>,
    /// The settings version the device last reported applied differs from the one it should
    /// have (a device that never reported counts as version 0).
    pub non_compliant: u64,
    pub pending_unlock_requests: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    pub pending: u64,
    pub running: u64,
    /// Failed within the last 24 hours.
    pub failed_24h: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookCounts {
    pub total: u64,
    /// Enabled, and the last delivery failed (at least one failure in a row).
    pub failing: u64,
    /// Turned off (by an operator, or after too many failures in a row).
    pub disabled: u64,
}

/// Everything but the sign-in series, as the store counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DashboardCounts {
    pub users: UserCounts,
    pub live_sessions: u64,
    pub devices: DeviceCounts,
    /// `None` in an organization's view.
    pub organizations: Option<u64>,
    pub groups: u64,
    pub jobs: JobCounts,
    pub webhooks: WebhookCounts,
}

/// One hour of the sign-in series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInHour {
    pub hour: DateTime<Utc>,
    pub succeeded: u64,
    pub failed: u64,
    pub lockouts: u64,
}

/// The dashboard: the counts, the sign-in series and when it was computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    pub scope: Scope,
    pub generated_at: DateTime<Utc>,
    pub counts: DashboardCounts,
    pub sign_ins: Vec<SignInHour>,
}

impl Dashboard {
    /// Builds the 24 hourly buckets ending with `now`'s hour from counts by action and bucket
    /// start (what the store answers for [`SIGN_IN_SUCCEEDED`], [`SIGN_IN_FAILED`] and
    /// [`LOCKOUT`]); hours without entries are zero.
    pub fn new(
        scope: Scope,
        now: DateTime<Utc>,
        counts: DashboardCounts,
        sign_ins: &[(String, DateTime<Utc>, u64)],
    ) -> Self {
        let start = series_start(now);
        let mut hours: Vec<SignInHour> = (0..SERIES_HOURS)
            .map(|offset| SignInHour {
                hour: start + Duration::hours(offset),
                succeeded: 0,
                failed: 0,
                lockouts: 0,
            })
            .collect();
        for (action, at, count) in sign_ins {
            let Ok(index) = usize::try_from((*at - start).num_hours()) else {
                continue;
            };
            let Some(hour) = hours.get_mut(index) else {
                continue;
            };
            match action.as_str() {
                SIGN_IN_SUCCEEDED => hour.succeeded += count,
                SIGN_IN_FAILED => hour.failed += count,
                LOCKOUT => hour.lockouts += count,
                _ => {}
            }
        }
        Self {
            scope,
            generated_at: now,
            counts,
            sign_ins: hours,
        }
    }

    pub fn sign_in_totals(&self) -> (u64, u64, u64) {
        self.sign_ins.iter().fold((0, 0, 0), |(s, f, l), hour| {
            (s + hour.succeeded, f + hour.failed, l + hour.lockouts)
        })
    }
}

/// The end (exclusive) of the days the clean-up pass may count into the daily rollup at `now`:
/// UTC days that ended at least an hour ago, so entries written late by an instance whose
/// clock lags are in before their day is counted.
pub fn rollup_until(now: DateTime<Utc>) -> DateTime<Utc> {
    truncate(now - Duration::hours(1), Interval::Day)
}

/// The whole UTC days of `[from, to)` that the daily rollup answers, given that it holds every
/// day before `through`: `None` when there are none.
pub fn rolled_days(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    through: Option<DateTime<Utc>>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let through = through?;
    let first = truncate(from, Interval::Day);
    let start = if first < from {
        first + Duration::days(1)
    } else {
        first
    };
    let end = truncate(to, Interval::Day).min(through);
    (start < end).then_some((start, end))
}

/// The parts of `[lower, upper)` outside `rolled`: what must still be counted entry by entry.
pub fn outside(
    lower: DateTime<Utc>,
    upper: DateTime<Utc>,
    rolled: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let parts = match rolled {
        None => vec![(lower, upper)],
        Some((start, end)) => vec![(lower, upper.min(start)), (lower.max(end), upper)],
    };
    parts.into_iter().filter(|(a, b)| a < b).collect()
}

/// A usage statistic over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Successful sign-ins.
    SignIns,
    /// Accounts created: self-registration, by an operator, by import or invitation, or by an
    /// identity provider.
    Registrations,
    /// Devices enrolled into an organization.
    DevicesEnrolled,
    /// Device commands issued (today: wipes), counted from the audit trail so that the
    /// clean-up of finished commands does not erase them.
    Commands,
    /// Requests made with application API keys (counted per day).
    ApiKeyRequests,
}

impl Metric {
    pub const ALL: [Metric; 5] = [
        Metric::SignIns,
        Metric::Registrations,
        Metric::DevicesEnrolled,
        Metric::Commands,
        Metric::ApiKeyRequests,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::SignIns => "signins",
            Metric::Registrations => "registrations",
            Metric::DevicesEnrolled => "devices_enrolled",
            Metric::Commands => "commands",
            Metric::ApiKeyRequests => "api_key_requests",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|metric| metric.as_str() == text)
    }

    /// Where the store counts it.
    pub fn source(self) -> MetricSource {
        match self {
            Metric::SignIns => MetricSource::Audit(&[SIGN_IN_SUCCEEDED]),
            // Self-registration and identity providers; operators, imports and invitations
            // (`admin.user_created`); `steward admin create` (`user.created`).
            Metric::Registrations => {
                MetricSource::Audit(&["auth.registered", "admin.user_created", "user.created"])
            }
            Metric::DevicesEnrolled => MetricSource::Audit(&["device.enrolled"]),
            Metric::Commands => MetricSource::Audit(&["device.wipe_requested"]),
            Metric::ApiKeyRequests => MetricSource::ApiKeyDays,
        }
    }
}

/// Where a metric's events are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricSource {
    /// Audit entries with one of these actions. In an organization's view: entries of the
    /// organization, and entries of its members since they joined.
    Audit(&'static [&'static str]),
    /// The per-key, per-day request counters of application API keys (global: no organization
    /// view, no hourly buckets).
    ApiKeyDays,
}

/// The width of a statistic's buckets (UTC; weeks start on Monday).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Interval {
    Hour,
    Day,
    Week,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Hour => "hour",
            Interval::Day => "day",
            Interval::Week => "week",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Interval::Hour, Interval::Day, Interval::Week]
            .into_iter()
            .find(|interval| interval.as_str() == text)
    }

    /// Seconds in one bucket.
    pub fn seconds(self) -> i64 {
        match self {
            Interval::Hour => 3_600,
            Interval::Day => 86_400,
            Interval::Week => 604_800,
        }
    }

    /// Added to a Unix time before dividing by [`Self::seconds`] so buckets start where they
    /// should: 1970-01-01 was a Thursday, so weeks are shifted by three days to start on Monday.
    pub fn offset_seconds(self) -> i64 {
        match self {
            Interval::Week => 259_200,
            _ => 0,
        }
    }

    /// The window asked for when `from` is not given.
    fn default_span(self) -> Duration {
        match self {
            Interval::Hour => Duration::hours(24),
            Interval::Day => Duration::days(30),
            Interval::Week => Duration::weeks(12),
        }
    }
}

/// The start of the bucket `at` falls in.
pub fn truncate(at: DateTime<Utc>, interval: Interval) -> DateTime<Utc> {
    let (width, offset) = (interval.seconds(), interval.offset_seconds());
    let index = (at.timestamp() + offset).div_euclid(width);
    bucket_start(index, interval)
}

/// The start of bucket number `index` (as the store numbers them:
/// `(unix time + offset) / width`, rounded down).
pub fn bucket_start(index: i64, interval: Interval) -> DateTime<Utc> {
    let seconds = index
        .saturating_mul(interval.seconds())
        .saturating_sub(interval.offset_seconds());
    Utc.timestamp_opt(seconds, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Most buckets one statistic answers: an hourly series of 41 days, a daily one of about 2.7
/// years, a weekly one of about 19 years.
pub const MAX_BUCKETS: i64 = 1_000;

/// A checked statistics request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatisticsQuery {
    pub metric: Metric,
    pub interval: Interval,
    /// The first bucket's start (`from` rounded down to its bucket).
    pub from: DateTime<Utc>,
    /// Exclusive end: entries before it count.
    pub to: DateTime<Utc>,
    pub scope: Scope,
}

impl StatisticsQuery {
    /// Checks a request: `to` defaults to `now`, `from` to a day, 30 days or 12 weeks before
    /// `to` by interval; `from` must be before `to`, at most [`MAX_BUCKETS`] buckets; API key
    /// requests are counted per day, for the whole system only.
    pub fn new(
        metric: Metric,
        interval: Interval,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<Self, RuleError> {
        if metric == Metric::ApiKeyRequests {
            if interval == Interval::Hour {
                return Err(RuleError::Invalid {
                    field: "interval",
                    message: "api_key_requests are counted per day: use day or week",
                });
            }
            if scope != Scope::System {
                return Err(RuleError::Invalid {
                    field: "organizationId",
                    message: "api_key_requests are not kept per organization (API keys are global)",
                });
            }
        }
        let to = to.unwrap_or(now);
        // Counts exist from the epoch to now; a year ahead leaves room for a window that ends
        // at the end of this week or month, and keeps every instant in both databases' range.
        let earliest = DateTime::<Utc>::UNIX_EPOCH;
        if to > now + Duration::days(366) || to <= earliest {
            return Err(RuleError::Invalid {
                field: "to",
                message: "must be after 1970 and at most a year from now",
            });
        }
        if from.is_some_and(|from| from < earliest) {
            return Err(RuleError::Invalid {
                field: "from",
                message: "must not be before 1970",
            });
        }
        let from = from.unwrap_or_else(|| (to - interval.default_span()).max(earliest));
        if from >= to {
            return Err(RuleError::Invalid {
                field: "from",
                message: "must be before to",
            });
        }
        let from = truncate(from, interval);
        // Whole milliseconds, rounded up: a window a moment longer than N buckets has N + 1.
        let width = interval.seconds() * 1_000;
        let span = (to - from).num_milliseconds() + i64::from((to - from).subsec_nanos() % 1_000_000 != 0);
        let buckets = (span + width - 1) / width;
        if buckets > MAX_BUCKETS {
            return Err(RuleError::Invalid {
                field: "to",
                message: "spans more than 1000 buckets: shorten the window or widen the interval",
            });
        }
        Ok(Self {
            metric,
            interval,
            from,
            to,
            scope,
        })
    }

    /// Every bucket start of the window, in order.
    pub fn bucket_starts(&self) -> Vec<DateTime<Utc>> {
        let width = Duration::seconds(self.interval.seconds());
        let mut starts = Vec::new();
        let mut at = self.from;
        while at < self.to {
            starts.push(at);
            match at.checked_add_signed(width) {
                Some(next) => at = next,
                None => break,
            }
        }
        starts
    }

    /// The series with every bucket, zero where the store found nothing; counts the store
    /// answered outside the window are dropped.
    pub fn series(&self, counted: &[(DateTime<Utc>, u64)]) -> Vec<(DateTime<Utc>, u64)> {
        let mut series: BTreeMap<DateTime<Utc>, u64> =
            self.bucket_starts().into_iter().map(|start| (start, 0)).collect();
        for (at, count) in counted {
            if let Some(slot) = series.get_mut(&truncate(*at, self.interval)) {
                *slot += count;
            }
        }
        series.into_iter().collect()
    }
}

/// Counts for the dashboard and statistics.
pub trait DashboardStore {
    /// Everything on the dashboard but the sign-in series, at `now`.
    fn dashboard_counts(
        &self,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<DashboardCounts, RepositoryError>> + Send;

    /// Audit entries with one of `actions` at or after `from` and before `to`, counted by action
    /// and bucket (the bucket's start). In an organization's view: entries of the organization,
    /// and entries of its current members written since they joined it — whose actor is the
    /// member, or (failed sign-ins and lockouts, which name an address rather than an account)
    /// which name the member's address. What happened before someone joined stays theirs.
    fn audit_counts(
        &self,
        actions: &[&str],
        scope: Scope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval: Interval,
    ) -> impl Future<Output = Result<Vec<(String, DateTime<Utc>, u64)>, RepositoryError>> + Send;

    /// Requests with application API keys per day (each day's start), for the days of the
    /// window.
    fn api_key_request_days(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<(DateTime<Utc>, u64)>, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_rollup_answers_whole_days_it_holds_and_the_rest_is_counted_entry_by_entry() {
        let from = utc("2030-01-01T10:00:00Z");
        let to = utc("2030-01-05T06:00:00Z");
        // Nothing rolled up yet.
        assert_eq!(rolled_days(from, to, None), None);
        // Rolled through the 4th (exclusive): the 2nd and 3rd whole days.
        let rolled = rolled_days(from, to, Some(utc("2030-01-04T00:00:00Z")));
        assert_eq!(
            rolled,
            Some((utc("2030-01-02T00:00:00Z"), utc("2030-01-04T00:00:00Z")))
        );
        // A window inside one day has no whole day.
        assert_eq!(rolled_days(from, utc("2030-01-01T20:00:00Z"), Some(to)), None);
        // A day bucket inside the rolled days is not counted again; the edges are.
        assert!(outside(utc("2030-01-02T00:00:00Z"), utc("2030-01-03T00:00:00Z"), rolled).is_empty());
        assert_eq!(
            outside(from, utc("2030-01-08T00:00:00Z"), rolled),
            vec![
                (from, utc("2030-01-02T00:00:00Z")),
                (utc("2030-01-04T00:00:00Z"), utc("2030-01-08T00:00:00Z"))
            ]
        );
        assert_eq!(outside(from, to, None), vec![(from, to)]);
        // Days that ended an hour ago.
        assert_eq!(
            rollup_until(utc("2030-01-05T00:30:00Z")),
            utc("2030-01-04T00:00:00Z")
        );
        assert_eq!(
            rollup_until(utc("2030-01-05T01:00:00Z")),
            utc("2030-01-05T00:00:00Z")
        );
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn weeks_start_on_monday_and_days_at_midnight_utc() {
        // 2026-12-02 is a Wednesday.
        assert_eq!(
            truncate(at("2026-12-02T15:30:00Z"), Interval::Week),
            at("2026-11-30T00:00:00Z")
        );
        assert_eq!(
            truncate(at("2026-11-30T00:00:00Z"), Interval::Week),
            at("2026-11-30T00:00:00Z")
        );
        assert_eq!(
            truncate(at("2026-12-02T15:30:00Z"), Interval::Day),
            at("2026-12-02T00:00:00Z")
        );
        assert_eq!(
            truncate(at("2026-12-02T15:30:00Z"), Interval::Hour),
            at("2026-12-02T15:00:00Z")
        );
        // Before 1970 too.
        assert_eq!(
            truncate(at("1969-12-31T23:59:59Z"), Interval::Day),
            at("1969-12-31T00:00:00Z")
        );
    }

    #[test]
    fn a_statistics_window_is_checked_and_filled_with_zeros() {
        let now = at("2026-12-02T15:30:00Z");
        let query =
            StatisticsQuery::new(Metric::SignIns, Interval::Hour, None, None, Scope::System, now).unwrap();
        assert_eq!(query.from, at("2026-12-01T15:00:00Z"));
        let series = query.series(&[
            (at("2026-12-02T15:10:00Z"), 3),
            (at("2026-12-02T15:00:00Z"), 1),
            (at("2026-12-01T10:00:00Z"), 99),
        ]);
        assert_eq!(series.len(), 25);
        assert_eq!(series.last(), Some(&(at("2026-12-02T15:00:00Z"), 4)));
        assert_eq!(series.iter().map(|(_, n)| n).sum::<u64>(), 4);

        let refused = |from: &str, to: &str, interval, metric, scope| {
            StatisticsQuery::new(metric, interval, Some(at(from)), Some(at(to)), scope, now).unwrap_err()
        };
        let day = "2026-12-01T00:00:00Z";
        assert!(matches!(
            refused(day, day, Interval::Day, Metric::SignIns, Scope::System),
            RuleError::Invalid { field: "from", .. }
        ));
        assert!(matches!(
            refused(
                "2020-01-01T00:00:00Z",
                day,
                Interval::Hour,
                Metric::SignIns,
                Scope::System
            ),
            RuleError::Invalid { field: "to", .. }
        ));
        assert!(matches!(
            refused(
                "2026-11-01T00:00:00Z",
                day,
                Interval::Hour,
                Metric::ApiKeyRequests,
                Scope::System
            ),
            RuleError::Invalid {
                field: "interval",
                ..
            }
        ));
        assert!(matches!(
            refused(
                "2026-11-01T00:00:00Z",
                day,
                Interval::Day,
                Metric::ApiKeyRequests,
                Scope::Organization(Uuid::nil())
            ),
            RuleError::Invalid {
                field: "organizationId",
                ..
            }
        ));
        // 1000 days fit, 1001 do not.
        let start = at("2020-01-01T00:00:00Z");
        assert!(
            StatisticsQuery::new(
                Metric::SignIns,
                Interval::Day,
                Some(start),
                Some(start + Duration::days(1000)),
                Scope::System,
                now
            )
            .is_ok()
        );
        assert!(
            StatisticsQuery::new(
                Metric::SignIns,
                Interval::Day,
                Some(start),
                Some(start + Duration::days(1000) + Duration::nanoseconds(1)),
                Scope::System,
                now
            )
            .is_err()
        );
    }

    #[test]
    fn the_sign_in_series_is_24_hours_whose_sums_are_the_totals() {
        let now = at("2026-12-02T15:30:00Z");
        let dashboard = Dashboard::new(
            Scope::System,
            now,
            DashboardCounts::default(),
            &[
                (SIGN_IN_SUCCEEDED.to_owned(), at("2026-12-02T15:00:00Z"), 2),
                (SIGN_IN_FAILED.to_owned(), at("2026-12-01T16:00:00Z"), 5),
                (LOCKOUT.to_owned(), at("2026-12-01T16:00:00Z"), 1),
                // Outside the window: ignored.
                (SIGN_IN_SUCCEEDED.to_owned(), at("2026-12-01T15:00:00Z"), 7),
            ],
        );
        assert_eq!(dashboard.sign_ins.len(), 24);
        assert_eq!(dashboard.sign_ins[0].hour, at("2026-12-01T16:00:00Z"));
        assert_eq!(dashboard.sign_ins[0].failed, 5);
        assert_eq!(dashboard.sign_ins[23].succeeded, 2);
        assert_eq!(dashboard.sign_in_totals(), (2, 5, 1));
    }

    #[test]
    fn metrics_and_intervals_round_trip() {
        for metric in Metric::ALL {
            assert_eq!(Metric::parse(metric.as_str()), Some(metric));
        }
        assert_eq!(Interval::parse("week"), Some(Interval::Week));
        assert_eq!(Interval::parse("Week"), None);
        assert_eq!(Metric::parse("signins\0"), None);
    }
}
