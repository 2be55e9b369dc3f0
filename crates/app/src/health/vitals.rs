//! What this instance knows about itself, kept as it runs: a rolling window of requests with a
//! latency histogram, each background worker's last pass, and each delivery channel's last
//! result. Writers touch a few atomics; the health report reads them.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Seconds one slot of the request window covers.
const SLOT_SECS: u64 = 10;
/// Fifteen minutes of slots plus the one being filled.
const SLOTS: usize = 91;
/// Latency buckets: bucket `i` holds requests up to `BASE_MICROS · 2^(i/4)` µs (about 19 %
/// apart), from 10 µs to about 140 s; slower requests land in the last bucket.
const BUCKETS: usize = 96;
const BASE_MICROS: f64 = 10.0;
const STEPS_PER_DOUBLING: f64 = 4.0;

fn bucket_bound_ms(index: usize) -> f64 {
    BASE_MICROS * 2f64.powf(index as f64 / STEPS_PER_DOUBLING) / 1000.0
}

fn bucket_of(elapsed: Duration) -> usize {
    let micros = elapsed.as_secs_f64() * 1_000_000.0;
    if micros <= BASE_MICROS {
        return 0;
    }
    let index = (STEPS_PER_DOUBLING * (micros / BASE_MICROS).log2()).ceil();
    if index.is_finite() && index > 0.0 {
        (index as usize).min(BUCKETS - 1)
    } else {
        0
    }
}

/// Ten seconds of requests.
struct Slot {
    /// Which ten seconds (counted from the window's start, plus one: 0 is never used).
    epoch: AtomicU64,
    requests: AtomicU64,
    client_errors: AtomicU64,
    server_errors: AtomicU64,
    latency: [AtomicU64; BUCKETS],
}

impl Slot {
    fn new() -> Self {
        Self {
            epoch: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// Requests answered over the last fifteen minutes, in ten-second slots. Recording costs a few
/// relaxed atomic additions; a slot is cleared by the first request of its new ten seconds.
pub struct RequestWindow {
    started: Instant,
    slots: Box<[Slot]>,
    /// Held only while a slot is cleared for its new ten seconds.
    turning: Mutex<()>,
}

impl std::fmt::Debug for RequestWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestWindow").finish_non_exhaustive()
    }
}

impl Default for RequestWindow {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            slots: (0..SLOTS).map(|_| Slot::new()).collect(),
            turning: Mutex::new(()),
        }
    }
}

/// One window's requests: counts and latency percentiles (in milliseconds, each the upper
/// bound of its histogram bucket, so within about 19 % above the true value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowFigures {
    pub minutes: u32,
    /// Seconds the window really covers (less while the process is younger than the window).
    pub seconds: f64,
    pub requests: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl WindowFigures {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// Server errors (5xx) as a percentage of the requests.
    pub fn error_percent(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.server_errors as f64 * 100.0 / self.requests as f64
        }
    }
}

impl RequestWindow {
    fn epoch(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_secs() / SLOT_SECS + 1
    }

    fn slot(&self, epoch: u64) -> &Slot {
        // SLOTS fits in u64 and the remainder in usize.
        &self.slots[(epoch % SLOTS as u64) as usize]
    }

    /// A request answered with `status` after `elapsed`.
    pub fn record(&self, status: u16, elapsed: Duration) {
        let epoch = self.epoch(Instant::now());
        let slot = self.slot(epoch);
        if slot.epoch.load(Ordering::Acquire) != epoch {
            let _turning = self
                .turning
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.epoch.load(Ordering::Acquire) != epoch {
                slot.requests.store(0, Ordering::Relaxed);
                slot.client_errors.store(0, Ordering::Relaxed);
                slot.server_errors.store(0, Ordering::Relaxed);
                slot.latency
                    .iter()
                    .for_each(|bucket| bucket.store(0, Ordering::Relaxed));
                slot.epoch.store(epoch, Ordering::Release);
            }
        }
        slot.requests.fetch_add(1, Ordering::Relaxed);
        match status {
            400..=499 => slot.client_errors.fetch_add(1, Ordering::Relaxed),
            500.. => slot.server_errors.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        slot.latency[bucket_of(elapsed)].fetch_add(1, Ordering::Relaxed);
    }

    /// The last `minutes` (1 to 15): the slot being filled and the ones before it.
    pub fn figures(&self, minutes: u32) -> WindowFigures {
        let minutes = minutes.clamp(1, 15);
        let now = Instant::now();
        let current = self.epoch(now);
        let span = u64::from(minutes) * 60 / SLOT_SECS;
        let mut figures = WindowFigures {
            minutes,
            seconds: 0.0,
            requests: 0,
            client_errors: 0,
            server_errors: 0,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
        };
        let mut latency = [0u64; BUCKETS];
        let first = current.saturating_sub(span - 1).max(1);
        for epoch in first..=current {
            let slot = self.slot(epoch);
            if slot.epoch.load(Ordering::Acquire) != epoch {
                continue;
            }
            figures.requests += slot.requests.load(Ordering::Relaxed);
            figures.client_errors += slot.client_errors.load(Ordering::Relaxed);
            figures.server_errors += slot.server_errors.load(Ordering::Relaxed);
            for (sum, bucket) in latency.iter_mut().zip(slot.latency.iter()) {
                *sum += bucket.load(Ordering::Relaxed);
            }
        }
        // From the first slot's start (or the process's) to now.
        let covered_from = Duration::from_secs((first - 1) * SLOT_SECS);
        figures.seconds = now
            .saturating_duration_since(self.started)
            .saturating_sub(covered_from)
            .as_secs_f64();
        let total: u64 = latency.iter().sum();
        if total > 0 {
            let quantile = |q: f64| {
                let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
                let mut seen = 0;
                for (index, count) in latency.iter().enumerate() {
                    seen += count;
                    if seen >= rank {
                        return bucket_bound_ms(index);
                    }
                }
                bucket_bound_ms(BUCKETS - 1)
            };
            figures.p50_ms = Some(quantile(0.50));
            figures.p95_ms = Some(quantile(0.95));
            figures.p99_ms = Some(quantile(0.99));
        }
        figures
    }
}

/// The background workers whose passes the report watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Worker {
    /// Sends account mail from the outbox.
    Mail,
    /// Sends device pushes and returns expired temporary unlocks.
    Push,
    /// Links new audit entries into the hash chain.
    AuditSealer,
    /// Claims and runs background jobs.
    Jobs,
    /// Fans events out to webhook subscriptions and notifications.
    EventDispatcher,
    /// Posts webhook deliveries.
    WebhookDeliveries,
    /// Sends operators' notification mail.
    NotificationMail,
    /// The clean-up pass (claimed by one instance at a time; the others' passes find it taken).
    Maintenance,
    /// Refreshes the quota utilisation gauges.
    QuotaMetrics,
    /// Starts the runs of scheduled reports that are due.
    ReportScheduler,
    /// Reads new device events once and hands them to this instance's live streams.
    EventHub,
}

impl Worker {
    pub const ALL: [Worker; 11] = [
        Worker::Mail,
        Worker::Push,
        Worker::AuditSealer,
        Worker::Jobs,
        Worker::EventDispatcher,
        Worker::WebhookDeliveries,
        Worker::NotificationMail,
        Worker::Maintenance,
        Worker::QuotaMetrics,
        Worker::ReportScheduler,
        Worker::EventHub,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Worker::Mail => "mail",
            Worker::Push => "push",
            Worker::AuditSealer => "audit_sealer",
            Worker::Jobs => "jobs",
            Worker::EventDispatcher => "event_dispatcher",
            Worker::WebhookDeliveries => "webhook_deliveries",
            Worker::NotificationMail => "notification_mail",
            Worker::Maintenance => "maintenance",
            Worker::QuotaMetrics => "quota_metrics",
            Worker::ReportScheduler => "report_scheduler",
            Worker::EventHub => "event_hub",
        }
    }

    fn index(self) -> usize {
        Worker::ALL.iter().position(|worker| *worker == self).unwrap_or(0)
    }
}

#[derive(Debug, Default)]
struct Beat {
    enabled: AtomicBool,
    every_ms: AtomicU64,
    /// Unix milliseconds of the last pass; 0: none yet.
    last_ms: AtomicI64,
}

/// One worker as the report shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerState {
    pub worker: Worker,
    /// Started on this instance (a worker turned off by configuration is not).
    pub enabled: bool,
    pub every: Duration,
    pub last_pass: Option<DateTime<Utc>>,
}

/// A delivery attempt's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub at: DateTime<Utc>,
    /// `None` when it was delivered; the error otherwise.
    pub error: Option<String>,
    /// The failure was the message's own (an unknown recipient, a device without a push
    /// token), not the channel's: it says nothing about the mail server or push service.
    pub rejected: bool,
}

/// A delivery channel: how it is configured and its last attempt on this instance.
#[derive(Debug, Default)]
pub struct Channel {
    transport: Mutex<&'static str>,
    last: Mutex<Option<Delivery>>,
}

impl Channel {
    /// How this channel sends (`smtp`, `directory`; `fcm`, `webhook`, `log`).
    pub fn set_transport(&self, transport: &'static str) {
        *self
            .transport
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = transport;
    }

    pub fn transport(&self) -> &'static str {
        *self
            .transport
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// An attempt just ended: delivered (`failure` None), or not with the error and whether
    /// the refusal was the message's own (permanent) rather than the channel's.
    pub fn attempted(&self, failure: Option<(&str, bool)>) {
        let delivery = Delivery {
            at: Utc::now(),
            // Errors come from mail servers and push services: bounded before they are kept.
            error: failure.map(|(error, _)| error.chars().take(500).collect()),
            rejected: failure.is_some_and(|(_, permanent)| permanent),
        };
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(delivery);
    }

    pub fn last(&self) -> Option<Delivery> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Everything this instance records about itself for the health report.
#[derive(Debug)]
pub struct Vitals {
    pub started: DateTime<Utc>,
    pub requests: RequestWindow,
    beats: [Beat; Worker::ALL.len()],
    pub mail: Channel,
    pub push: Channel,
}

impl Default for Vitals {
    fn default() -> Self {
        Self {
            started: Utc::now(),
            requests: RequestWindow::default(),
            beats: Default::default(),
            mail: Channel::default(),
            push: Channel::default(),
        }
    }
}

impl Vitals {
    /// `worker` runs on this instance, passing every `every`.
    pub fn start(&self, worker: Worker, every: Duration) {
        let beat = &self.beats[worker.index()];
        beat.every_ms.store(
            u64::try_from(every.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        beat.enabled.store(true, Ordering::Relaxed);
    }

    /// `worker` finished a pass (or, waiting for work, looked for some) now.
    pub fn beat(&self, worker: Worker) {
        self.beats[worker.index()]
            .last_ms
            .store(Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    pub fn workers(&self) -> Vec<WorkerState> {
        Worker::ALL
            .iter()
            .map(|worker| {
                let beat = &self.beats[worker.index()];
                let last = beat.last_ms.load(Ordering::Relaxed);
                WorkerState {
                    worker: *worker,
                    enabled: beat.enabled.load(Ordering::Relaxed),
                    every: Duration::from_millis(beat.every_ms.load(Ordering::Relaxed)),
                    last_pass: (last > 0)
                        .then(|| DateTime::from_timestamp_millis(last))
                        .flatten(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_grow_by_a_fifth_and_cover_each_value() {
        assert_eq!(bucket_of(Duration::ZERO), 0);
        assert_eq!(bucket_of(Duration::from_secs(3600)), BUCKETS - 1);
        for micros in [11, 100, 999, 1000, 12_345, 250_000, 3_000_000] {
            let elapsed = Duration::from_micros(micros);
            let index = bucket_of(elapsed);
            let bound = bucket_bound_ms(index);
            let value = micros as f64 / 1000.0;
            assert!(bound >= value - 1e-9, "{micros} µs: bound {bound} ms");
            assert!(bound <= value * 1.2 + 1e-9, "{micros} µs: bound {bound} ms");
        }
    }

    #[test]
    fn percentiles_follow_the_recorded_latencies() {
        let window = RequestWindow::default();
        assert_eq!(window.figures(1).p50_ms, None);
        for _ in 0..90 {
            window.record(200, Duration::from_millis(1));
        }
        for _ in 0..9 {
            window.record(404, Duration::from_millis(50));
        }
        window.record(503, Duration::from_millis(900));
        let figures = window.figures(5);
        assert_eq!(figures.requests, 100);
        assert_eq!(figures.client_errors, 9);
        assert_eq!(figures.server_errors, 1);
        assert!((figures.error_percent() - 1.0).abs() < 1e-9);
        let (p50, p95, p99) = (
            figures.p50_ms.unwrap(),
            figures.p95_ms.unwrap(),
            figures.p99_ms.unwrap(),
        );
        assert!((1.0..1.2).contains(&p50), "{p50}");
        assert!((50.0..60.0).contains(&p95), "{p95}");
        assert!((50.0..60.0).contains(&p99), "{p99}");
        assert!(p50 <= p95 && p95 <= p99);
        assert_eq!(window.figures(1).requests, 100);
    }

    #[test]
    fn concurrent_recording_loses_nothing_within_a_slot() {
        let window = std::sync::Arc::new(RequestWindow::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let window = window.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        window.record(200, Duration::from_micros(300));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|thread| thread.join().unwrap());
        // The test runs well within ten seconds of the window's start: one slot.
        assert_eq!(window.figures(15).requests, 40_000);
    }

    #[test]
    fn workers_report_their_last_pass() {
        let vitals = Vitals::default();
        vitals.start(Worker::Jobs, Duration::from_secs(1));
        assert!(vitals.workers()[Worker::Jobs.index()].last_pass.is_none());
        vitals.beat(Worker::Jobs);
        let jobs = vitals.workers()[Worker::Jobs.index()];
        assert!(jobs.enabled && jobs.last_pass.is_some());
        assert!(!vitals.workers()[Worker::Maintenance.index()].enabled);
        vitals.mail.attempted(Some((&"x".repeat(2000), false)));
        let last = vitals.mail.last().unwrap();
        assert_eq!(last.error.unwrap().len(), 500);
        assert!(!last.rejected);
        vitals.mail.attempted(None);
        assert!(vitals.mail.last().unwrap().error.is_none());
    }
}
