//! Operator health: the levels a figure is rated at, the thresholds that rate them, the rule
//! that calls a background worker late, and what the store reports about the database and its
//! queues.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::RepositoryError;

/// How a figure stands. Ordered: the report's overall level is its worst figure's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Level {
    #[default]
    Ok,
    Warn,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Critical => "critical",
        }
    }
}

/// A rising threshold pair: a figure at or above `warn` is `warn`, at or above `critical` is
/// `critical`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub warn: f64,
    pub critical: f64,
}

impl Threshold {
    /// `[warn, critical]`, both finite, not negative, `warn ≤ critical`.
    pub fn new(warn: f64, critical: f64) -> Result<Self, String> {
        if !warn.is_finite() || !critical.is_finite() || warn < 0.0 || critical < 0.0 {
            return Err("both values must be finite numbers of at least 0".to_owned());
        }
        if warn > critical {
            return Err(format!(
                "the warning level {warn} is above the critical level {critical}"
            ));
        }
        Ok(Self { warn, critical })
    }

    /// Two values, `warn,critical` (the configuration's form).
    pub fn from_pair(values: &[u64]) -> Result<Self, String> {
        match values {
            [warn, critical] => Self::new(*warn as f64, *critical as f64),
            _ => Err(format!(
                "two values are needed, the warning and the critical level (got {})",
                values.len()
            )),
        }
    }

    pub fn rate(&self, value: f64) -> Level {
        if value >= self.critical {
            Level::Critical
        } else if value >= self.warn {
            Level::Warn
        } else {
            Level::Ok
        }
    }
}

/// The thresholds operators configure (`STEWARD_HEALTH_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthThresholds {
    /// The 99th percentile of request latency over the last five minutes, in milliseconds.
    pub latency_p99_ms: Threshold,
    /// Server errors (5xx) as a percentage of the requests of the last five minutes, rated once
    /// the window holds at least [`ERROR_RATE_MIN_REQUESTS`].
    pub error_percent: Threshold,
    /// Pooled database connections in use, as a percentage of the pool's maximum.
    pub pool_in_use_percent: Threshold,
    /// Messages waiting in one queue (mail, push, webhook deliveries).
    pub queue_pending: Threshold,
    /// Age of the oldest message waiting in one queue, in seconds.
    pub queue_age_secs: Threshold,
    /// The process's resident memory, in MiB.
    pub memory_mb: Threshold,
    /// The database's size on disk, in MiB.
    pub database_mb: Threshold,
}

impl Default for HealthThresholds {
    fn default() -> Self {
        let pair = |warn: f64, critical: f64| Threshold { warn, critical };
        Self {
            latency_p99_ms: pair(500.0, 2000.0),
            error_percent: pair(1.0, 5.0),
            pool_in_use_percent: pair(80.0, 95.0),
            queue_pending: pair(1000.0, 10_000.0),
            queue_age_secs: pair(300.0, 3600.0),
            memory_mb: pair(1024.0, 4096.0),
            database_mb: pair(10_240.0, 102_400.0),
        }
    }
}

/// Fewer requests than this in a window leave its error rate unrated: one failure in three
/// requests says nothing.
pub const ERROR_RATE_MIN_REQUESTS: u64 = 20;

/// A background worker is late (`warn`) when its last pass is older than three of its
/// intervals (at least a minute), and stopped (`critical`) after ten (at least five minutes).
/// A worker that has not passed yet is measured from the process's start.
pub fn worker_level(
    last_pass: Option<DateTime<Utc>>,
    started: DateTime<Utc>,
    every: Duration,
    now: DateTime<Utc>,
) -> Level {
    let since = last_pass.unwrap_or(started);
    let age = (now - since).to_std().unwrap_or_default();
    let late = every.saturating_mul(3).max(Duration::from_secs(60));
    let stopped = every.saturating_mul(10).max(Duration::from_secs(300));
    if age > stopped {
        Level::Critical
    } else if age > late {
        Level::Warn
    } else {
        Level::Ok
    }
}

/// One queue's backlog: messages waiting to be sent (due now or waiting for a retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    pub pending: u64,
    /// When the oldest waiting message was queued.
    pub oldest: Option<DateTime<Utc>>,
}

/// The three outgoing queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepths {
    pub mail: QueueDepth,
    pub push: QueueDepth,
    pub webhooks: QueueDepth,
}

/// One table's rows and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSize {
    pub name: String,
    pub rows: u64,
    /// Whether `rows` is the database's estimate (PostgreSQL's statistics) rather than a count.
    pub rows_estimated: bool,
    /// Bytes on disk with the table's indexes; `None` where the database cannot tell (SQLite
    /// built without `SQLITE_ENABLE_DBSTAT_VTAB`).
    pub bytes: Option<u64>,
}

/// The database's size and its tables, largest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DatabaseSize {
    pub bytes: u64,
    pub tables: Vec<TableSize>,
}

/// The database's connection pool on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolFigures {
    /// Open connections.
    pub size: u32,
    /// Open connections nobody holds.
    pub idle: u32,
    /// The pool's configured maximum.
    pub max: u32,
}

impl PoolFigures {
    pub fn in_use(&self) -> u32 {
        self.size.saturating_sub(self.idle)
    }

    /// In use over the maximum, as a percentage.
    pub fn in_use_percent(&self) -> f64 {
        if self.max == 0 {
            0.0
        } else {
            f64::from(self.in_use()) * 100.0 / f64::from(self.max)
        }
    }
}

/// Migrations applied to the database and carried by this binary but not applied.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MigrationFigures {
    pub applied: usize,
    pub pending: Vec<String>,
}

/// What the health report reads from the database.
pub trait HealthStore {
    /// `sqlite` or `postgresql`.
    fn backend_name(&self) -> &'static str;

    fn pool_figures(&self) -> PoolFigures;

    fn migration_figures(&self) -> impl Future<Output = Result<MigrationFigures, RepositoryError>> + Send;

    /// The outgoing queues' backlogs.
    fn queue_depths(&self) -> impl Future<Output = Result<QueueDepths, RepositoryError>> + Send;

    /// The database's size and every table's rows and size.
    fn database_size(&self) -> impl Future<Output = Result<DatabaseSize, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_rate_at_and_above_each_level() {
        let threshold = Threshold::new(10.0, 20.0).unwrap();
        assert_eq!(threshold.rate(9.99), Level::Ok);
        assert_eq!(threshold.rate(10.0), Level::Warn);
        assert_eq!(threshold.rate(19.0), Level::Warn);
        assert_eq!(threshold.rate(20.0), Level::Critical);
        assert!(Threshold::new(20.0, 10.0).is_err());
        assert!(Threshold::new(-1.0, 10.0).is_err());
        assert!(Threshold::new(f64::NAN, 10.0).is_err());
        assert!(Threshold::from_pair(&[1]).is_err());
        assert!(Threshold::from_pair(&[1, 2, 3]).is_err());
        assert_eq!(Threshold::from_pair(&[5, 5]).unwrap().rate(5.0), Level::Critical);
    }

    #[test]
    fn workers_are_late_after_three_intervals_and_stopped_after_ten() {
        let started = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let every = Duration::from_secs(60);
        let at = |seconds: i64| started + chrono::Duration::seconds(seconds);
        assert_eq!(worker_level(Some(at(0)), started, every, at(180)), Level::Ok);
        assert_eq!(worker_level(Some(at(0)), started, every, at(181)), Level::Warn);
        assert_eq!(
            worker_level(Some(at(0)), started, every, at(601)),
            Level::Critical
        );
        // Short intervals: at least a minute, then five.
        let fast = Duration::from_millis(50);
        assert_eq!(worker_level(None, started, fast, at(59)), Level::Ok);
        assert_eq!(worker_level(None, started, fast, at(61)), Level::Warn);
        assert_eq!(worker_level(None, started, fast, at(301)), Level::Critical);
        // A clock that went back is not a late worker.
        assert_eq!(worker_level(Some(at(10)), started, every, at(0)), Level::Ok);
    }

    #[test]
    fn pool_use_is_a_share_of_the_maximum() {
        let pool = PoolFigures {
            size: 8,
            idle: 2,
            max: 16,
        };
        assert_eq!(pool.in_use(), 6);
        assert!((pool.in_use_percent() - 37.5).abs() < 1e-9);
        assert_eq!(PoolFigures::default().in_use_percent(), 0.0);
    }
}
