//! One live subscription: what arrived after the client's `Last-Event-ID` (read from the
//! table), then what this instance's hub broadcasts, filtered; a heartbeat when quiet; an end
//! when the client cannot keep up.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use steward_domain::device_events::{DeviceEvent, EventFilter};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::hub::SubscriberGuard;
use crate::error::AppError;
use crate::steward::{Steward, Store};

/// Events replayed after a `Last-Event-ID` at most; past that the stream says `truncated`.
pub const MAX_REPLAY: u64 = 1000;
/// A comment line this often keeps proxies from closing a quiet stream.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// Catch-ups a subscription makes after falling behind the broadcast before it is dropped.
pub const MAX_RECOVERIES: u32 = 3;

/// Reads a subscription's missed events from the table (the store, type-erased).
pub(super) trait CatchUp: Send + Sync {
    fn since<'a>(
        &'a self,
        filter: &'a EventFilter,
        seq: i64,
        limit: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<DeviceEvent>, AppError>> + Send + 'a>>;
}

impl<S: Store> CatchUp for S {
    fn since<'a>(
        &'a self,
        filter: &'a EventFilter,
        seq: i64,
        limit: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<DeviceEvent>, AppError>> + Send + 'a>>
    {
        Box::pin(async move { Ok(self.device_events_since(Some(filter), seq, limit).await?) })
    }
}

/// Queues the events matching `filter` that arrived after `seq` (at most [`MAX_REPLAY`], then a
/// `Truncated` marker), noting their numbers in `replayed`.
async fn read_after(
    store: &dyn CatchUp,
    filter: &EventFilter,
    seq: i64,
    backlog: &mut VecDeque<StreamItem>,
    replayed: &mut HashSet<i64>,
) -> Result<(), AppError> {
    let events = store.since(filter, seq, MAX_REPLAY + 1).await?;
    let truncated = events.len() as u64 > MAX_REPLAY;
    let mut newest = seq;
    for event in events.into_iter().take(MAX_REPLAY as usize) {
        newest = newest.max(event.seq);
        replayed.insert(event.seq);
        backlog.push_back(StreamItem::Event(Arc::new(event)));
    }
    if truncated {
        backlog.push_back(StreamItem::Truncated { resume_after: newest });
    }
    Ok(())
}

/// What a subscription yields next.
#[derive(Debug, Clone)]
pub enum StreamItem {
    Event(Arc<DeviceEvent>),
    /// Nothing happened for [`HEARTBEAT`].
    Heartbeat,
    /// More events were missed than are replayed: the client should read the query API from
    /// its last event to this one.
    Truncated {
        resume_after: i64,
    },
    /// The subscription fell too far behind and ends.
    Dropped,
}

pub struct Subscription {
    receiver: broadcast::Receiver<Arc<DeviceEvent>>,
    filter: EventFilter,
    backlog: VecDeque<StreamItem>,
    /// Arrival numbers already sent by the replay (the broadcast may carry them again).
    replayed: HashSet<i64>,
    /// The client's `Last-Event-ID`: what the broadcast carries up to it was sent before.
    resumed_after: Option<i64>,
    /// The newest arrival number sent, where a read from the table resumes after a lag.
    last_sent: i64,
    /// Times this subscription fell behind the broadcast and caught up from the table.
    recoveries: u32,
    /// For those catch-up reads.
    store: Box<dyn CatchUp>,
    /// Ticks every [`HEARTBEAT`] whatever the broadcast carries (events this stream filters out
    /// do not put it off).
    heartbeat: tokio::time::Interval,
    ended: bool,
    _guard: SubscriberGuard,
}

impl Subscription {
    pub(super) async fn start<S: Store>(
        steward: &Steward<S>,
        caller: String,
        filter: EventFilter,
        last_seen: Option<i64>,
    ) -> Result<Self, AppError> {
        // Joined first, so nothing stored while the replay reads is lost between the two.
        let (receiver, guard) = steward.device_events.join(caller)?;
        let mut backlog = VecDeque::new();
        let mut replayed = HashSet::new();
        let store: Box<dyn CatchUp> = Box::new(steward.store.clone());
        if let Some(last_seen) = last_seen {
            read_after(&*store, &filter, last_seen, &mut backlog, &mut replayed).await?;
        }
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Self {
            receiver,
            filter,
            backlog,
            replayed,
            resumed_after: last_seen,
            last_sent: last_seen.unwrap_or(0),
            recoveries: 0,
            store,
            heartbeat,
            ended: false,
            _guard: guard,
        })
    }

    /// The next item; `None` once the subscription ended.
    pub async fn next(&mut self) -> Option<StreamItem> {
        if let Some(item) = self.backlog.pop_front() {
            if let StreamItem::Event(event) = &item {
                self.last_sent = self.last_sent.max(event.seq);
            }
            return Some(item);
        }
        if self.ended {
            return None;
        }
        loop {
            let received = tokio::select! {
                biased;
                _ = self.heartbeat.tick() => return Some(StreamItem::Heartbeat),
                received = self.receiver.recv() => received,
            };
            match received {
                Ok(event) => {
                    if self.replayed.remove(&event.seq)
                        || self.resumed_after.is_some_and(|last| event.seq <= last)
                        || !self.filter.matches(&event)
                    {
                        continue;
                    }
                    self.last_sent = self.last_sent.max(event.seq);
                    return Some(StreamItem::Event(event));
                }
                Err(RecvError::Lagged(_)) => {
                    // Behind the broadcast: read what was missed from the table (bounded), a
                    // few times; a client that keeps falling behind is dropped.
                    self.recoveries += 1;
                    if self.recoveries > MAX_RECOVERIES {
                        self.ended = true;
                        return Some(StreamItem::Dropped);
                    }
                    self.replayed.clear();
                    let (store, filter, last) = (&*self.store, &self.filter, self.last_sent);
                    if read_after(store, filter, last, &mut self.backlog, &mut self.replayed)
                        .await
                        .is_err()
                    {
                        self.ended = true;
                        return Some(StreamItem::Dropped);
                    }
                    if let Some(item) = self.backlog.pop_front() {
                        if let StreamItem::Event(event) = &item {
                            self.last_sent = self.last_sent.max(event.seq);
                        }
                        return Some(item);
                    }
                }
                Err(RecvError::Closed) => {
                    self.ended = true;
                    return None;
                }
            }
        }
    }
}
