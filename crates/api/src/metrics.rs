//! Prometheus metrics: request counts and latency histograms by route and status, plus
//! database pool gauges read at scrape time.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use steward_persistence::PoolStats;

const REQUESTS: &str = "http_requests_total";
const LATENCY: &str = "http_request_duration_seconds";
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process-wide recorder on first use and returns its handle. Several apps in one
/// process (the test suite) share it.
pub fn recorder() -> Result<PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(LATENCY.to_owned()), LATENCY_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
                .map_err(|error| error.to_string())?;
            describe();
            Ok(handle)
        })
        .clone()
}

/// The process's own figures (`process_*`: CPU seconds, resident and virtual memory, open and
/// maximum file descriptors, threads, start time), read now; called at every scrape.
pub fn record_process() {
    process_collector().collect();
}

fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// HELP text for every family Steward exports, and the build's identity.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        REQUESTS,
        "HTTP requests answered, by method, route template and status"
    );
    describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Time from a request's arrival to its answer, by method, route template and status"
    );
    describe_gauge!(
        "db_pool_connections",
        "Database pool connections, by state (idle, in_use)"
    );
    describe_gauge!(
        "db_pool_max_connections",
        "The database pool's configured maximum size"
    );
    describe_counter!(
        "steward_admin_ip_refused_total",
        "Admin API requests refused because the client address is not on the IP allowlist"
    );
    describe_counter!(
        "steward_maintenance_deleted_total",
        "Rows the clean-up passes deleted, by table"
    );
    describe_gauge!(
        "steward_maintenance_pass_seconds",
        Unit::Seconds,
        "How long the last clean-up pass on this instance took"
    );
    describe_gauge!(
        "steward_maintenance_last_pass_timestamp_seconds",
        Unit::Seconds,
        "When the last clean-up pass on this instance ended (Unix time)"
    );
    describe_gauge!(
        "steward_event_stream_subscribers",
        "Live device event streams (server-sent events) open on this instance"
    );
    describe_gauge!(
        "steward_quota_organizations",
        "Organizations using at least `level` percent (80 or 100) of a quota's limit, by quota key"
    );
    describe_gauge!(
        "steward_quota_utilisation_ratio",
        "An organization's use of a quota over its limit (with STEWARD_METRICS_ORGANIZATIONS=true)"
    );
    describe_counter!(
        "steward_sign_ins_total",
        "Sign-ins (password and identity provider) and second-factor steps, by outcome (success, mfa_required, invalid_credentials, locked, disabled, invalid_mfa, refused)"
    );
    describe_counter!(
        "steward_lockouts_total",
        "Emails locked after too many failed password or second-factor checks"
    );
    describe_counter!(
        "steward_rate_limited_total",
        "Requests refused with 429 by a rate limit, by limit (login, register, password_reset, refresh, admin, device_events, admin_reset_mail, api_requests_per_minute, open_jobs; other for a limit without a name)"
    );
    describe_counter!(
        "steward_shared_limits_unavailable_total",
        "Calls to the shared limit store (STEWARD_REDIS_URL) that failed; after each, the instance counts its limits in memory for 5 s"
    );
    describe_counter!(
        "steward_mails_total",
        "Mail delivery attempts, by outcome (sent, failed: retried later, given_up)"
    );
    describe_counter!(
        "steward_pushes_total",
        "Push delivery attempts, by outcome (sent, failed: retried later, given_up)"
    );
    describe_counter!(
        "steward_audit_entries_sealed_total",
        "Audit entries linked into the tamper-evident hash chain by this instance"
    );
    describe_counter!(
        "steward_unlock_requests_total",
        "Unlock requests, by outcome (requested, approved, denied)"
    );
    describe_counter!(
        "steward_enrollments_total",
        "Devices enrolled into an organization with an enrollment token"
    );
    describe_gauge!(
        "steward_build_info",
        "Always 1; the labels name the running build's version"
    );
    metrics::gauge!("steward_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    process_collector().describe();
}

pub(crate) fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(LATENCY, &labels).record(elapsed.as_secs_f64());
}

/// A request refused by rate limit `limit` (`steward_rate_limited_total`).
pub(crate) fn record_rate_limited(limit: &'static str) {
    metrics::counter!("steward_rate_limited_total", "limit" => limit).increment(1);
}

/// A sign-in step's outcome (`steward_sign_ins_total`).
pub(crate) fn record_sign_in(outcome: &'static str) {
    metrics::counter!("steward_sign_ins_total", "outcome" => outcome).increment(1);
}

/// An unlock request's step (`steward_unlock_requests_total`).
pub(crate) fn record_unlock_request(outcome: &'static str) {
    metrics::counter!("steward_unlock_requests_total", "outcome" => outcome).increment(1);
}

/// A device enrolled (`steward_enrollments_total`).
pub(crate) fn record_enrollment() {
    metrics::counter!("steward_enrollments_total").increment(1);
}

/// A mail or push delivery attempt (`steward_mails_total`, `steward_pushes_total`).
pub fn record_delivery(channel: Channel, outcome: &'static str) {
    let name = match channel {
        Channel::Mail => "steward_mails_total",
        Channel::Push => "steward_pushes_total",
    };
    metrics::counter!(name, "outcome" => outcome).increment(1);
}

/// What [`record_delivery`] counts.
#[derive(Debug, Clone, Copy)]
pub enum Channel {
    Mail,
    Push,
}

/// Audit entries sealed into the chain (`steward_audit_entries_sealed_total`).
pub fn record_sealed(entries: u64) {
    metrics::counter!("steward_audit_entries_sealed_total").increment(entries);
}

/// An admin request refused by the IP allowlist (`steward_admin_ip_refused_total`).
pub(crate) fn record_ip_refused() {
    metrics::counter!("steward_admin_ip_refused_total").increment(1);
}

/// Live device event streams on this instance.
pub(crate) fn record_event_subscribers(subscribers: usize) {
    metrics::gauge!("steward_event_stream_subscribers").set(subscribers as f64);
}

pub(crate) fn record_pool(stats: PoolStats) {
    metrics::gauge!("db_pool_connections", "state" => "idle").set(f64::from(stats.idle));
    metrics::gauge!("db_pool_connections", "state" => "in_use")
        .set(f64::from(stats.size.saturating_sub(stats.idle)));
    metrics::gauge!("db_pool_max_connections").set(f64::from(stats.max));
}

/// One clean-up pass: rows deleted per table (`steward_maintenance_deleted_total`), how long it
/// took and when it ran.
pub fn record_maintenance(report: &steward_app::maintenance::CleanupReport) {
    for (target, rows) in &report.deleted {
        metrics::counter!("steward_maintenance_deleted_total", "table" => target.table()).increment(*rows);
    }
    metrics::gauge!("steward_maintenance_pass_seconds").set(report.elapsed.as_secs_f64());
    metrics::gauge!("steward_maintenance_last_pass_timestamp_seconds")
        .set(chrono::Utc::now().timestamp() as f64);
}

/// The quota utilisation gauges: per limit, how many organizations are at 80 % and at 100 % of
/// it (`steward_quota_organizations{key,level}`), and with `per_organization` each
/// organization's use over its limit (`steward_quota_utilisation_ratio{organization,key}`).
pub fn record_quota_utilisation(lines: &[steward_app::quotas::Utilisation], per_organization: bool) {
    use steward_domain::quotas::QuotaKey;
    for key in QuotaKey::ORGANIZATION {
        for level in [80u64, 100] {
            let at = lines
                .iter()
                .filter(|line| {
                    line.key == key
                        && u128::from(line.used) * 100 >= u128::from(line.limit) * u128::from(level)
                })
                .count();
            metrics::gauge!("steward_quota_organizations", "key" => key.as_str(), "level" => level.to_string())
                .set(at as f64);
        }
    }
    if per_organization {
        // Series set before whose organization or limit is gone read 0 (the exporter keeps
        // every series it has seen).
        static SEEN: std::sync::Mutex<Vec<(uuid::Uuid, QuotaKey)>> = std::sync::Mutex::new(Vec::new());
        let mut seen = SEEN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now: std::collections::HashSet<(uuid::Uuid, QuotaKey)> =
            lines.iter().map(|line| (line.organization, line.key)).collect();
        for (organization, key) in seen.iter().filter(|series| !now.contains(series)) {
            metrics::gauge!(
                "steward_quota_utilisation_ratio",
                "organization" => organization.to_string(),
                "key" => key.as_str()
            )
            .set(0.0);
        }
        for line in lines {
            let ratio = if line.limit == 0 {
                1.0
            } else {
                line.used as f64 / line.limit as f64
            };
            metrics::gauge!(
                "steward_quota_utilisation_ratio",
                "organization" => line.organization.to_string(),
                "key" => line.key.as_str()
            )
            .set(ratio);
        }
        *seen = now.into_iter().collect();
    }
}
