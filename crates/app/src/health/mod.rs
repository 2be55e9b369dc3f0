//! The operators' health report: this instance's requests, latency and memory, the database
//! (pool, migrations, size per table), the outgoing queues and their last deliveries, and each
//! background worker's last pass, each rated `ok`, `warn` or `critical` against the configured
//! thresholds. Readable with `dashboard:read` (`super_admin`, `auditor`).
//!
//! The report describes the instance that answers: behind a load balancer, each instance has
//! its own requests, memory, workers and last deliveries; the database and queue figures are
//! shared.

pub mod vitals;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use steward_domain::health::{
    DatabaseSize, ERROR_RATE_MIN_REQUESTS, HealthThresholds, Level, MigrationFigures, PoolFigures,
    QueueDepth, Threshold, worker_level,
};
use steward_domain::rbac::Permission;

use crate::error::AppError;
use crate::principal::Principal;
use crate::steward::{Steward, Store};
pub use vitals::{Delivery, Vitals, WindowFigures, Worker, WorkerState};

/// How long the database's size and row counts are answered from memory (counting every
/// table's rows on SQLite reads each table's smallest index).
pub const SIZE_TTL: Duration = Duration::from_secs(60);

/// The windows the request figures cover, in minutes.
pub const WINDOWS: [u32; 3] = [1, 5, 15];

/// This instance's health state: its vitals, the thresholds and the cached database size.
#[derive(Debug)]
pub struct HealthBoard {
    pub vitals: Vitals,
    pub thresholds: HealthThresholds,
    sizes: tokio::sync::Mutex<Option<SizeReading>>,
}

/// The database's size as last read: when (monotonic, for the TTL, and wall-clock).
type SizeReading = (Instant, Arc<DatabaseSize>, DateTime<Utc>);

impl Default for HealthBoard {
    fn default() -> Self {
        Self::new(HealthThresholds::default())
    }
}

impl HealthBoard {
    pub fn new(thresholds: HealthThresholds) -> Self {
        Self {
            vitals: Vitals::default(),
            thresholds,
            sizes: tokio::sync::Mutex::new(None),
        }
    }
}

/// A figure's value: a number, or a text (a delivery's error).
#[derive(Debug, Clone, PartialEq)]
pub enum CheckValue {
    Number(f64),
    Text(String),
}

impl std::fmt::Display for CheckValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CheckValue::Number(value) => write!(f, "{value}"),
            CheckValue::Text(text) => f.write_str(text),
        }
    }
}

/// One rated figure.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Dotted: `requests.p99_ms`, `queues.mail.oldest_age_secs`, `workers.jobs.last_pass_age_secs`.
    pub name: String,
    pub value: CheckValue,
    pub unit: &'static str,
    /// The configured threshold; `None` for fixed rules (pending migrations, a failed delivery,
    /// a late worker).
    pub threshold: Option<Threshold>,
    pub level: Level,
    /// Why the figure has its level, where the threshold alone does not say.
    pub note: Option<String>,
}

/// A queue as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueReport {
    pub name: &'static str,
    pub depth: QueueDepth,
    /// How the channel sends (`smtp`, `directory`; `fcm`, `webhook`, `log`); webhooks: `http`.
    pub transport: &'static str,
    /// This instance's last attempt (mail and push).
    pub last_delivery: Option<Delivery>,
    pub level: Level,
}

/// A worker as the report shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerReport {
    pub state: WorkerState,
    /// `None` for a worker this instance does not run.
    pub level: Option<Level>,
}

/// The whole report.
#[derive(Debug, Clone)]
pub struct HealthReport {
    pub level: Level,
    pub checked_at: DateTime<Utc>,
    pub instance: String,
    pub version: &'static str,
    pub started: DateTime<Utc>,
    pub memory_bytes: Option<u64>,
    pub backend: &'static str,
    pub pool: PoolFigures,
    pub migrations: MigrationFigures,
    pub size: Arc<DatabaseSize>,
    /// When the size figures were read (they are kept for [`SIZE_TTL`]).
    pub size_read_at: DateTime<Utc>,
    pub requests: Vec<WindowFigures>,
    pub queues: Vec<QueueReport>,
    pub workers: Vec<WorkerReport>,
    pub checks: Vec<Check>,
}

/// `sent`, `failed` (the channel: a refused connection, a timeout, a temporary refusal) or
/// `rejected` (the message's own permanent refusal: an unknown recipient, no push token).
pub fn delivery_outcome(delivery: &Delivery) -> &'static str {
    match (&delivery.error, delivery.rejected) {
        (None, _) => "sent",
        (Some(_), false) => "failed",
        (Some(_), true) => "rejected",
    }
}

/// The process's resident memory, where the system tells (Linux: `/proc/self/status`).
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn rated(name: impl Into<String>, value: f64, unit: &'static str, threshold: Threshold) -> Check {
    Check {
        name: name.into(),
        value: CheckValue::Number(value),
        unit,
        threshold: Some(threshold),
        level: threshold.rate(value),
        note: None,
    }
}

fn ruled(
    name: impl Into<String>,
    value: CheckValue,
    unit: &'static str,
    level: Level,
    note: Option<String>,
) -> Check {
    Check {
        name: name.into(),
        value,
        unit,
        threshold: None,
        level,
        note,
    }
}

const MIB: f64 = 1024.0 * 1024.0;

pub struct HealthService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> HealthService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// The report, for holders of `dashboard:read` (`principal` with its roles loaded; the
    /// admin API's extractor has checked and audited the refusal already).
    pub async fn report(&self, principal: &Principal) -> Result<HealthReport, AppError> {
        if !principal.allows(Permission::DashboardRead) {
            return Err(AppError::forbidden(
                "the health report needs the permission dashboard:read",
            ));
        }
        self.compute(Utc::now()).await
    }

    async fn database_size(&self) -> Result<(Arc<DatabaseSize>, DateTime<Utc>), AppError> {
        let board = &self.steward.health;
        let mut cached = board.sizes.lock().await;
        if let Some((at, size, read_at)) = cached.as_ref()
            && at.elapsed() < SIZE_TTL
        {
            return Ok((Arc::clone(size), *read_at));
        }
        let size = Arc::new(self.steward.store.database_size().await?);
        let read_at = Utc::now();
        *cached = Some((Instant::now(), Arc::clone(&size), read_at));
        Ok((size, read_at))
    }

    async fn compute(&self, now: DateTime<Utc>) -> Result<HealthReport, AppError> {
        let store = &self.steward.store;
        let board = &self.steward.health;
        let thresholds = &board.thresholds;
        let vitals = &board.vitals;
        // Each part of the database stands alone: one failing is reported, not the report.
        let (migrations, depths, sizes) = tokio::join!(
            store.migration_figures(),
            store.queue_depths(),
            self.database_size(),
        );
        let mut failures = Vec::new();
        let migrations = migrations.unwrap_or_else(|error| {
            failures.push(format!("migrations: {error}"));
            MigrationFigures::default()
        });
        let depths = depths.unwrap_or_else(|error| {
            failures.push(format!("queues: {error}"));
            Default::default()
        });
        let (size, size_read_at) = sizes.unwrap_or_else(|error| {
            failures.push(format!("sizes: {}", error.message));
            (Arc::new(DatabaseSize::default()), now)
        });
        let pool = store.pool_figures();
        let memory_bytes = resident_memory();
        let requests: Vec<WindowFigures> = WINDOWS
            .iter()
            .map(|minutes| vitals.requests.figures(*minutes))
            .collect();
        let mut checks = Vec::new();

        // Requests: the five-minute window is rated.
        let five = requests
            .iter()
            .find(|window| window.minutes == 5)
            .copied()
            .unwrap_or_else(|| vitals.requests.figures(5));
        checks.push(rated(
            "requests.p99_ms",
            five.p99_ms.unwrap_or(0.0),
            "ms",
            thresholds.latency_p99_ms,
        ));
        let mut errors = rated(
            "requests.error_percent",
            five.error_percent(),
            "%",
            thresholds.error_percent,
        );
        if five.requests < ERROR_RATE_MIN_REQUESTS {
            errors.level = Level::Ok;
            errors.note = Some(format!(
                "not rated below {ERROR_RATE_MIN_REQUESTS} requests in five minutes ({} so far)",
                five.requests
            ));
        }
        checks.push(errors);
        if let Some(bytes) = memory_bytes {
            checks.push(rated(
                "instance.memory_mb",
                bytes as f64 / MIB,
                "MiB",
                thresholds.memory_mb,
            ));
        }

        // The database.
        if !failures.is_empty() {
            tracing::warn!(failures = %failures.join("; "), "health report: the database did not answer");
        }
        checks.push(ruled(
            "database.reachable",
            CheckValue::Text(if failures.is_empty() { "yes" } else { "no" }.to_owned()),
            "",
            if failures.is_empty() {
                Level::Ok
            } else {
                Level::Critical
            },
            (!failures.is_empty()).then(|| {
                failures
                    .iter()
                    .map(|failure| failure.chars().take(300).collect::<String>())
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
        ));
        // The shared limit store, when one is configured: asked now, even while this instance
        // leaves it alone after a failure.
        if let Some(shared) = &self.steward.shared_limits {
            let answer = shared.ping().await;
            checks.push(ruled(
                "shared_limits.reachable",
                CheckValue::Text(if answer.is_ok() { "yes" } else { "no" }.to_owned()),
                "",
                if answer.is_ok() { Level::Ok } else { Level::Warn },
                answer.err().map(|error| {
                    format!(
                        "{}; this instance counts its own rate limits until it answers ({} calls failed since start)",
                        error.to_string().chars().take(300).collect::<String>(),
                        shared.failures()
                    )
                }),
            ));
        }
        checks.push(rated(
            "database.pool_in_use_percent",
            pool.in_use_percent(),
            "%",
            thresholds.pool_in_use_percent,
        ));
        checks.push(ruled(
            "database.migrations_pending",
            CheckValue::Number(migrations.pending.len() as f64),
            "",
            if migrations.pending.is_empty() {
                Level::Ok
            } else {
                Level::Critical
            },
            (!migrations.pending.is_empty()).then(|| migrations.pending.join(", ")),
        ));
        checks.push(rated(
            "database.size_mb",
            size.bytes as f64 / MIB,
            "MiB",
            thresholds.database_mb,
        ));

        // The queues.
        let mut queues = Vec::new();
        for (name, depth, channel) in [
            ("mail", depths.mail, Some(&vitals.mail)),
            ("push", depths.push, Some(&vitals.push)),
            ("webhooks", depths.webhooks, None),
        ] {
            let pending = rated(
                format!("queues.{name}.pending"),
                depth.pending as f64,
                "",
                thresholds.queue_pending,
            );
            let age = depth
                .oldest
                .map(|oldest| (now - oldest).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            let oldest = rated(
                format!("queues.{name}.oldest_age_secs"),
                age,
                "s",
                thresholds.queue_age_secs,
            );
            let mut level = pending.level.max(oldest.level);
            checks.push(pending);
            checks.push(oldest);
            let last_delivery = channel.and_then(|channel| channel.last());
            if let Some(delivery) = &last_delivery {
                let check = ruled(
                    format!("queues.{name}.last_delivery"),
                    CheckValue::Text(delivery_outcome(delivery).to_owned()),
                    "",
                    // A refusal of one message says nothing about the channel.
                    if delivery.error.is_some() && !delivery.rejected {
                        Level::Warn
                    } else {
                        Level::Ok
                    },
                    delivery.error.clone(),
                );
                level = level.max(check.level);
                checks.push(check);
            }
            queues.push(QueueReport {
                name,
                depth,
                transport: channel.map_or("http", |channel| channel.transport()),
                last_delivery,
                level,
            });
        }

        // The workers this instance runs.
        let mut workers = Vec::new();
        for state in vitals.workers() {
            let level = state
                .enabled
                .then(|| worker_level(state.last_pass, vitals.started, state.every, now));
            if let Some(level) = level {
                let since = state.last_pass.unwrap_or(vitals.started);
                checks.push(ruled(
                    format!("workers.{}.last_pass_age_secs", state.worker.as_str()),
                    CheckValue::Number((now - since).num_milliseconds().max(0) as f64 / 1000.0),
                    "s",
                    level,
                    (level != Level::Ok).then(|| {
                        format!(
                            "passes every {} s; late after three intervals (at least 60 s), stopped after ten (at least 300 s)",
                            state.every.as_secs_f64()
                        )
                    }),
                ));
            }
            workers.push(WorkerReport { state, level });
        }

        Ok(HealthReport {
            level: checks.iter().map(|check| check.level).max().unwrap_or_default(),
            checked_at: now,
            instance: self.steward.jobs.instance().to_owned(),
            version: env!("CARGO_PKG_VERSION"),
            started: vitals.started,
            memory_bytes,
            backend: store.backend_name(),
            pool,
            migrations,
            size,
            size_read_at,
            requests,
            queues,
            workers,
            checks,
        })
    }
}

/// The report as CSV, one figure a row: `figure,value,unit,status,warn,critical,note`. The
/// rated checks come first (with their status and thresholds), then every other figure.
pub fn report_csv(report: &HealthReport) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["figure", "value", "unit", "status", "warn", "critical", "note"])?;
    writer.write_record([
        "status",
        report.level.as_str(),
        "",
        report.level.as_str(),
        "",
        "",
        "the worst check's status",
    ])?;
    for check in &report.checks {
        let (warn, critical) = check
            .threshold
            .map(|threshold| (threshold.warn.to_string(), threshold.critical.to_string()))
            .unwrap_or_default();
        writer.write_record([
            check.name.clone(),
            crate::audit::csv_cell(check.value.to_string()),
            check.unit.to_owned(),
            check.level.as_str().to_owned(),
            warn,
            critical,
            crate::audit::csv_cell(check.note.clone().unwrap_or_default()),
        ])?;
    }
    let mut info = |figure: String, value: String, unit: &str| {
        writer.write_record([
            figure,
            crate::audit::csv_cell(value),
            unit.to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ])
    };
    info("checked_at".into(), report.checked_at.to_rfc3339(), "")?;
    info("instance.id".into(), report.instance.clone(), "")?;
    info("instance.version".into(), report.version.to_owned(), "")?;
    info("instance.started_at".into(), report.started.to_rfc3339(), "")?;
    info(
        "instance.uptime_secs".into(),
        (report.checked_at - report.started)
            .num_seconds()
            .max(0)
            .to_string(),
        "s",
    )?;
    if let Some(bytes) = report.memory_bytes {
        info("instance.memory_bytes".into(), bytes.to_string(), "B")?;
    }
    info("database.backend".into(), report.backend.to_owned(), "")?;
    info("database.pool.size".into(), report.pool.size.to_string(), "")?;
    info(
        "database.pool.in_use".into(),
        report.pool.in_use().to_string(),
        "",
    )?;
    info("database.pool.max".into(), report.pool.max.to_string(), "")?;
    info(
        "database.migrations.applied".into(),
        report.migrations.applied.to_string(),
        "",
    )?;
    info("database.size_bytes".into(), report.size.bytes.to_string(), "B")?;
    for table in &report.size.tables {
        info(
            format!("database.tables.{}.rows", table.name),
            table.rows.to_string(),
            "",
        )?;
        if let Some(bytes) = table.bytes {
            info(
                format!("database.tables.{}.bytes", table.name),
                bytes.to_string(),
                "B",
            )?;
        }
    }
    for window in &report.requests {
        let prefix = format!("requests.{}m", window.minutes);
        info(format!("{prefix}.requests"), window.requests.to_string(), "")?;
        info(
            format!("{prefix}.per_second"),
            format!("{:.3}", window.per_second()),
            "1/s",
        )?;
        info(
            format!("{prefix}.client_errors"),
            window.client_errors.to_string(),
            "",
        )?;
        info(
            format!("{prefix}.server_errors"),
            window.server_errors.to_string(),
            "",
        )?;
        for (name, value) in [
            ("p50_ms", window.p50_ms),
            ("p95_ms", window.p95_ms),
            ("p99_ms", window.p99_ms),
        ] {
            if let Some(value) = value {
                info(format!("{prefix}.{name}"), format!("{value:.3}"), "ms")?;
            }
        }
    }
    for queue in &report.queues {
        info(
            format!("queues.{}.transport", queue.name),
            queue.transport.to_owned(),
            "",
        )?;
        if let Some(delivery) = &queue.last_delivery {
            info(
                format!("queues.{}.last_delivery_at", queue.name),
                delivery.at.to_rfc3339(),
                "",
            )?;
        }
    }
    for worker in &report.workers {
        let name = worker.state.worker.as_str();
        info(
            format!("workers.{name}.enabled"),
            worker.state.enabled.to_string(),
            "",
        )?;
        if let Some(at) = worker.state.last_pass {
            info(format!("workers.{name}.last_pass_at"), at.to_rfc3339(), "")?;
        }
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}
