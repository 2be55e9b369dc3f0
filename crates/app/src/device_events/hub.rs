//! This instance's fan-out of new events to its live subscribers. Each event is read from the
//! database once per instance and handed to every subscription through a bounded broadcast
//! channel (a subscription that falls behind is dropped, never buffered without bound).
//!
//! What wakes the hub: on PostgreSQL the `steward_device_events` notifications (each names
//! the range of arrival numbers one statement stored, on whichever instance), read exactly;
//! on SQLite (one instance) this instance's own writes, and a short poll for the events the
//! audit trigger writes. A catch-up read of everything after the newest delivered number runs
//! on every poll, and after the PostgreSQL listener reconnects.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steward_domain::device_events::{DEFAULT_RETENTION_DAYS, DeviceEvent};
use tokio::sync::{Notify, broadcast};

use crate::error::{AppError, ErrorKind};
use crate::steward::{Steward, Store};

/// Events the instance's broadcast keeps for its subscriptions: one that falls further behind
/// reads what it missed from the table (see `Subscription`).
const CHANNEL: usize = 16_384;
/// Live streams one instance serves at most, by default (`STEWARD_EVENT_STREAMS_MAX`).
pub const MAX_STREAMS: usize = 20_000;
/// Live streams one caller (a user, or a device) may have open on one instance, by default
/// (`STEWARD_EVENT_STREAMS_PER_CALLER`).
pub const MAX_STREAMS_PER_CALLER: usize = 16;

/// The hub's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubSettings {
    /// Days events are kept where an organization set no retention.
    pub retention_days: u32,
    /// Streams per instance.
    pub max_streams: usize,
    /// Streams per caller and instance.
    pub max_streams_per_caller: usize,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            retention_days: DEFAULT_RETENTION_DAYS,
            max_streams: MAX_STREAMS,
            max_streams_per_caller: MAX_STREAMS_PER_CALLER,
        }
    }
}
/// Rows read per query.
const READ_BATCH: u64 = 1000;
/// Arrival numbers remembered as delivered (a range read twice delivers once).
const REMEMBERED: usize = 100_000;

pub struct EventHub {
    sender: broadcast::Sender<Arc<DeviceEvent>>,
    wake: Notify,
    subscribers: AtomicUsize,
    /// Open streams per caller.
    callers: Mutex<HashMap<String, usize>>,
    /// Ranges named by notifications, not yet read.
    ranges: Mutex<Vec<(i64, i64)>>,
    /// Whether a PostgreSQL listener is connected (then the poll is only a safety net).
    listening: AtomicBool,
    /// Set when notifications may have been missed: the next round reads everything new.
    catch_up: AtomicBool,
    settings: HubSettings,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new(HubSettings::default())
    }
}

impl EventHub {
    pub fn new(settings: HubSettings) -> Self {
        Self {
            sender: broadcast::channel(CHANNEL).0,
            wake: Notify::new(),
            subscribers: AtomicUsize::new(0),
            callers: Mutex::new(HashMap::new()),
            ranges: Mutex::new(Vec::new()),
            listening: AtomicBool::new(false),
            catch_up: AtomicBool::new(true),
            settings,
        }
    }

    /// The configured retention (days), for organizations without their own.
    pub fn retention_days(&self) -> u32 {
        self.settings.retention_days
    }

    /// Live subscriptions on this instance.
    pub fn subscribers(&self) -> usize {
        self.subscribers.load(Ordering::Relaxed)
    }

    /// Something was stored here: look now.
    pub fn wake(&self) {
        self.catch_up.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// A notification named the arrival numbers `low..=high`.
    pub fn notified(&self, low: i64, high: i64) {
        if let Ok(mut ranges) = self.ranges.lock() {
            ranges.push((low.min(high), high.max(low)));
        }
        self.wake.notify_one();
    }

    /// The PostgreSQL listener connected (`true`) or lost its connection (`false`; whatever
    /// was announced meanwhile is read by a catch-up).
    pub fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Relaxed);
        self.catch_up.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// A new subscription of `caller`, within the instance's and the caller's limits (`429`
    /// beyond either).
    pub(super) fn join(
        self: &Arc<Self>,
        caller: String,
    ) -> Result<(broadcast::Receiver<Arc<DeviceEvent>>, SubscriberGuard), AppError> {
        let busy = || {
            AppError::new(
                ErrorKind::RateLimited,
                "too many open event streams; close one or retry later",
            )
            .with_retry_after(5)
            .with_limit("event_streams")
        };
        {
            let mut callers = self.callers.lock().map_err(|_| AppError::internal())?;
            let open = callers.entry(caller.clone()).or_insert(0);
            if *open >= self.settings.max_streams_per_caller
                || self.subscribers() >= self.settings.max_streams
            {
                if *open == 0 {
                    callers.remove(&caller);
                }
                return Err(busy());
            }
            *open += 1;
            self.subscribers.fetch_add(1, Ordering::Relaxed);
        }
        Ok((
            self.sender.subscribe(),
            SubscriberGuard {
                hub: Arc::clone(self),
                caller,
            },
        ))
    }
}

/// Counts a subscription while it lives.
pub struct SubscriberGuard {
    hub: Arc<EventHub>,
    caller: String,
}

impl Drop for SubscriberGuard {
    fn drop(&mut self) {
        self.hub.subscribers.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut callers) = self.hub.callers.lock()
            && let Some(open) = callers.get_mut(&self.caller)
        {
            *open = open.saturating_sub(1);
            if *open == 0 {
                callers.remove(&self.caller);
            }
        }
    }
}

/// The arrival numbers delivered lately.
struct Delivered {
    order: VecDeque<i64>,
    set: HashSet<i64>,
    newest: i64,
}

impl Delivered {
    fn first_time(&mut self, seq: i64) -> bool {
        if !self.set.insert(seq) {
            return false;
        }
        self.order.push_back(seq);
        if self.order.len() > REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.newest = self.newest.max(seq);
        true
    }
}

/// Runs this instance's hub: waits to be woken (or `poll` passes), reads what is new once and
/// broadcasts it. While nobody subscribes it only keeps track of the newest arrival number.
pub async fn run_event_hub<S: Store>(steward: Steward<S>, poll: Duration) {
    let hub = Arc::clone(&steward.device_events);
    let store = &steward.store;
    let mut delivered = Delivered {
        order: VecDeque::new(),
        set: HashSet::new(),
        newest: 0,
    };
    let mut started = false;
    let vitals = &steward.health.vitals;
    // A round every `poll`, or every 5 s while a PostgreSQL listener wakes the hub.
    vitals.start(crate::health::Worker::EventHub, poll.max(Duration::from_secs(5)));
    loop {
        let wait = if hub.listening.load(Ordering::Relaxed) {
            poll.max(Duration::from_secs(5))
        } else {
            poll
        };
        let _ = tokio::time::timeout(wait, hub.wake.notified()).await;
        let ranges = hub
            .ranges
            .lock()
            .map(|mut ranges| std::mem::take(&mut *ranges))
            .unwrap_or_default();
        if hub.subscribers() == 0 || !started {
            // Nobody listens: remember where the table ends, so a first subscriber starts there.
            match store.latest_device_event_seq().await {
                Ok(newest) => {
                    delivered.newest = delivered.newest.max(newest);
                    started = true;
                    vitals.beat(crate::health::Worker::EventHub);
                }
                Err(error) => tracing::warn!(%error, "the event hub could not read the newest event"),
            }
            hub.catch_up.store(false, Ordering::Relaxed);
            continue;
        }
        let mut fresh: Vec<DeviceEvent> = Vec::new();
        let mut healthy = true;
        for (low, high) in merge(ranges) {
            let mut from = low - 1;
            while from < high {
                match store.device_events_since(None, from, READ_BATCH).await {
                    Ok(rows) => {
                        let last = rows.last().map(|row| row.seq);
                        fresh.extend(rows.into_iter().filter(|row| row.seq <= high));
                        match last {
                            Some(last) if last < high && last > from => from = last,
                            _ => break,
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the event hub could not read new events");
                        hub.catch_up.store(true, Ordering::Relaxed);
                        healthy = false;
                        break;
                    }
                }
            }
        }
        // Without a listener every round catches up; with one, only when told to.
        let listening = hub.listening.load(Ordering::Relaxed);
        if !listening || hub.catch_up.swap(false, Ordering::Relaxed) {
            let mut from = delivered.newest;
            for _ in 0..10 {
                match store.device_events_since(None, from, READ_BATCH).await {
                    Ok(rows) => {
                        let full = rows.len() as u64 == READ_BATCH;
                        from = rows.last().map_or(from, |row| row.seq);
                        fresh.extend(rows);
                        if !full {
                            break;
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "the event hub could not catch up");
                        hub.catch_up.store(true, Ordering::Relaxed);
                        healthy = false;
                        break;
                    }
                }
            }
        }
        if healthy {
            vitals.beat(crate::health::Worker::EventHub);
        }
        fresh.sort_by_key(|event| event.seq);
        for (index, event) in fresh.into_iter().enumerate() {
            if delivered.first_time(event.seq) {
                // No receiver is not a failure: the last subscriber just left.
                let _ = hub.sender.send(Arc::new(event));
            }
            // Let the subscriptions read as the hub goes.
            if index % 256 == 255 {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Overlapping or touching ranges joined.
fn merge(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (low, high) in ranges {
        match merged.last_mut() {
            Some(last) if low <= last.1.saturating_add(1) => last.1 = last.1.max(high),
            _ => merged.push((low, high)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::merge;

    #[test]
    fn ranges_merge() {
        assert_eq!(
            merge(vec![(5, 7), (1, 2), (3, 4), (10, 12), (11, 11)]),
            [(1, 7), (10, 12)]
        );
        assert!(merge(Vec::new()).is_empty());
    }
}
