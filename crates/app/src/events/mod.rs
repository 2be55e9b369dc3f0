//! The event pipeline: every audit entry's outbox row is claimed by one instance, fanned out to
//! the webhook subscriptions that want it and to the notification rules, then removed — in one
//! transaction, so an event is fanned out exactly once however many instances drain the outbox.
//! Deliveries are then posted (several at once), retried on the configured schedule, and given
//! up as `failed`. Notification mail goes out in a pass of its own.

mod sender;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use steward_auth::mfa::SecretBox;
use steward_domain::events::Event;
use steward_domain::events::webhooks::{
    AttemptResult, DeliveryRecord, DueDelivery, FanOut, OutboundRules, RetrySchedule,
};
use steward_domain::notifications::{Thresholds, candidates};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

use crate::steward::{Steward, Store};
use steward_domain::RepositoryError;

pub use sender::{Answer, Outgoing, Sender, signature};

/// How this instance runs the pipeline.
#[derive(Debug, Clone)]
pub struct EventSettings {
    /// How often an idle dispatcher and delivery worker look for work.
    pub poll: Duration,
    /// Outbox events fanned out per transaction.
    pub batch: u64,
    /// How long a claim on an event holds before another instance may take it over.
    pub lease: Duration,
    /// Waits between attempts (`STEWARD_WEBHOOK_RETRY_DELAYS`).
    pub retry: RetrySchedule,
    /// One attempt's time limit (`STEWARD_WEBHOOK_TIMEOUT_SECS`).
    pub timeout: Duration,
    /// Where deliveries may go.
    pub outbound: OutboundRules,
    /// Deliveries in flight at once on this instance.
    pub concurrency: usize,
    /// The notification rules' thresholds.
    pub thresholds: Thresholds,
    /// How often notification mail is sent (a digest when more than 10 wait for one operator).
    pub mail_interval: Duration,
    /// How long a rotated-out webhook secret still signs, unless the rotation says otherwise.
    pub secret_overlap: chrono::Duration,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(100),
            batch: 500,
            lease: Duration::from_secs(30),
            retry: RetrySchedule::default(),
            timeout: Duration::from_secs(10),
            outbound: OutboundRules::default(),
            concurrency: 128,
            thresholds: Thresholds::default(),
            mail_interval: Duration::from_secs(60),
            secret_overlap: chrono::Duration::hours(
                steward_domain::events::webhooks::DEFAULT_SECRET_OVERLAP_HOURS,
            ),
        }
    }
}

/// The pipeline's settings, its HTTP client and its wake-ups, shared by the instance.
#[derive(Debug)]
pub struct EventBoard {
    pub settings: EventSettings,
    sender: Result<Sender, String>,
    /// Wakes the delivery worker when deliveries were queued here.
    wake: Notify,
    /// This instance, as the claimant of events and deliveries.
    instance: Uuid,
}

impl EventBoard {
    pub fn new(settings: EventSettings) -> Self {
        Self {
            sender: Sender::new(settings.outbound.clone(), settings.timeout),
            settings,
            wake: Notify::new(),
            instance: Uuid::now_v7(),
        }
    }

    /// New deliveries are waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Default for EventBoard {
    fn default() -> Self {
        Self::new(EventSettings::default())
    }
}

/// The additional data a webhook secret is sealed with, so a sealed secret copied onto another
/// subscription does not open.
pub(crate) fn secret_context(webhook: Uuid) -> Vec<u8> {
    format!("webhook:{webhook}").into_bytes()
}

/// Fans out one batch of outbox events; answers how many it handled.
pub async fn dispatch_once<S: Store>(steward: &Steward<S>) -> Result<usize, RepositoryError> {
    let board = &steward.events;
    let now = Utc::now();
    let lease = chrono::Duration::from_std(board.settings.lease).unwrap_or(chrono::Duration::seconds(30));
    let entries = steward
        .store
        .claim_events(board.instance, now, now + lease, board.settings.batch)
        .await?;
    if entries.is_empty() {
        return Ok(0);
    }
    let hooks = steward.store.enabled_webhooks().await?;
    let mut fan_out = FanOut::default();
    for entry in &entries {
        fan_out.events.push(entry.id);
        let event = Event::from_audit(entry);
        let mut body = None;
        for hook in hooks
            .iter()
            .filter(|hook| hook.wants(&event.event_type, event.organization_id, event.occurred_at))
        {
            let body = body.get_or_insert_with(|| event.body()).clone();
            fan_out.deliveries.push(DeliveryRecord::new(
                hook.id,
                event.id,
                &event.event_type,
                body,
                now,
            ));
        }
        fan_out
            .candidates
            .extend(candidates(entry, &board.settings.thresholds));
    }
    if steward.store.complete_events(board.instance, &fan_out).await? && !fan_out.deliveries.is_empty() {
        board.wake();
    }
    Ok(entries.len())
}

/// Sends one claimed delivery and hands the attempt to the recorder.
async fn deliver<S: Store>(
    steward: Steward<S>,
    secrets: Arc<SecretBox>,
    due: DueDelivery,
    recorder: tokio::sync::mpsc::UnboundedSender<(Uuid, AttemptResult)>,
) {
    let board = &steward.events;
    let delivery = &due.delivery;
    let context = secret_context(delivery.webhook_id);
    let mut keys = Vec::new();
    for sealed in std::iter::once(&due.secret_sealed).chain(due.previous_secret_sealed.as_ref()) {
        if let Ok(secret) = secrets.open(sealed, &context)
            && let Ok(secret) = String::from_utf8(secret)
        {
            keys.push(secret);
        }
    }
    let answer = match (&board.sender, keys.is_empty()) {
        (Err(error), _) => Answer {
            status: None,
            excerpt: None,
            latency_ms: 0,
            error: Some(error.clone()),
        },
        (Ok(_), true) => Answer {
            status: None,
            excerpt: None,
            latency_ms: 0,
            error: Some("the signing secret does not open with this instance's secret key (STEWARD_MFA_ENCRYPTION_KEY changed?)".to_owned()),
        },
        (Ok(sender), false) => {
            sender
                .send(&Outgoing {
                    url: &due.url,
                    delivery: delivery.id,
                    event_type: &delivery.event_type,
                    body: &delivery.payload,
                    organization: due.organization_id.is_some() || due.personal,
                    secrets: keys,
                })
                .await
        }
    };
    let at = Utc::now();
    let retry_at = answer.error.as_ref().and_then(|_| {
        board
            .settings
            .retry
            .next_attempt(delivery.attempts.saturating_add(1), at)
    });
    if let Some(error) = &answer.error {
        tracing::info!(delivery = %delivery.id, webhook = %delivery.webhook_id, attempt = delivery.attempts + 1,
            %error, gives_up = retry_at.is_none(), "webhook delivery failed");
    }
    let result = AttemptResult {
        at,
        response_status: answer.status.map(i32::from),
        response_excerpt: answer.excerpt,
        latency_ms: answer.latency_ms,
        error: answer.error,
        retry_at,
    };
    if recorder.send((delivery.id, result)).is_err() {
        tracing::warn!(delivery = %delivery.id, "the attempt recorder stopped; the delivery is retried after its lease");
    }
}

/// How long the recorder gathers finished attempts into one write transaction.
const RECORD_GATHER: Duration = Duration::from_millis(50);

/// Records finished attempts in batches (one write transaction for up to 256).
async fn run_recorder<S: Store>(
    steward: Steward<S>,
    mut results: tokio::sync::mpsc::UnboundedReceiver<(Uuid, AttemptResult)>,
) {
    let mut batch = Vec::new();
    while let Some(first) = results.recv().await {
        batch.push(first);
        // Gather what else answers within a few milliseconds: every write transaction is a turn
        // of SQLite's one writer, shared with the requests.
        let gather = tokio::time::sleep(RECORD_GATHER);
        tokio::pin!(gather);
        while batch.len() < 256 {
            tokio::select! {
                next = results.recv() => match next {
                    Some(next) => batch.push(next),
                    None => break,
                },
                () = &mut gather => break,
            }
        }
        if let Err(error) = steward
            .store
            .finish_attempts(steward.events.instance, &batch)
            .await
        {
            tracing::warn!(%error, attempts = batch.len(), "could not record webhook delivery attempts; they are retried after their lease");
        }
        batch.clear();
        // Recorded attempts free their subscriptions' share: claim again.
        steward.events.wake();
    }
}

/// Fans out events forever.
async fn run_dispatcher<S: Store>(steward: Steward<S>) {
    let vitals = &steward.health.vitals;
    vitals.start(
        crate::health::Worker::EventDispatcher,
        steward.events.settings.poll,
    );
    loop {
        let handled = dispatch_once(&steward).await;
        if handled.is_ok() {
            vitals.beat(crate::health::Worker::EventDispatcher);
        }
        match handled {
            // A full batch: more may be waiting.
            Ok(handled) if handled as u64 >= steward.events.settings.batch => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "could not fan out events"),
        }
        tokio::time::sleep(steward.events.settings.poll).await;
    }
}

/// How far ahead of its senders an instance claims: it holds up to this many times its
/// concurrency in claimed deliveries (and a subscription up to this many times its share), so
/// the next deliveries are already claimed when a sender frees up and claims stay few.
const CLAIM_AHEAD: usize = 4;

/// Posts due deliveries forever: up to `concurrency` at once per instance and a quarter of that
/// per subscription (its lane), claimed ahead in batches.
async fn run_deliveries<S: Store>(steward: Steward<S>) {
    let board = Arc::clone(&steward.events);
    let secrets = Arc::clone(steward.auth.secret_box());
    let concurrency = board.settings.concurrency.max(1);
    // Requests in flight, over every subscription.
    let sending = Arc::new(Semaphore::new(concurrency));
    // Requests in flight for one subscription on this instance.
    let share = (concurrency / 4).max(1);
    // Deliveries claimed and not yet recorded, on this instance.
    let held = Arc::new(Semaphore::new(concurrency.saturating_mul(CLAIM_AHEAD)));
    let batch = u32::try_from(share).unwrap_or(1);
    // Deliveries of one subscription claimed at once, over every instance: a slow receiver
    // holds no more than this of anyone's claims.
    let per_subscription = u64::try_from(share.saturating_mul(CLAIM_AHEAD)).unwrap_or(u64::MAX);
    let lanes: Arc<std::sync::Mutex<std::collections::HashMap<Uuid, Arc<Semaphore>>>> = Arc::default();
    let (recorder, results) = tokio::sync::mpsc::unbounded_channel();
    let _recording = crate::jobs::AbortOnDrop(tokio::spawn(run_recorder(steward.clone(), results)));
    // A claimed delivery waits at most CLAIM_AHEAD timeouts for its lane and as many for a
    // sender; its attempt must end within the lease, or it is left for the lease to run out.
    let timeout = chrono::Duration::from_std(board.settings.timeout).unwrap_or(chrono::Duration::seconds(10));
    let rounds = i32::try_from(CLAIM_AHEAD * 2 + 1).unwrap_or(9);
    let lease = timeout * rounds + chrono::Duration::seconds(30);
    let vitals = &steward.health.vitals;
    vitals.start(crate::health::Worker::WebhookDeliveries, board.settings.poll);
    loop {
        // Wait until a batch's worth of claims is free.
        match Arc::clone(&held).acquire_many_owned(batch).await {
            Ok(permits) => drop(permits),
            Err(_) => return,
        }
        let free = held.available_permits();
        let now = Utc::now();
        let lease_until = now + lease;
        let due = match steward
            .store
            .claim_deliveries(
                board.instance,
                now,
                lease_until,
                u64::try_from(free).unwrap_or(1),
                per_subscription,
            )
            .await
        {
            Ok(due) => {
                // A pass counts when it could claim (a worker waiting for slow receivers to
                // free its claims does not pass).
                vitals.beat(crate::health::Worker::WebhookDeliveries);
                due
            }
            Err(error) => {
                tracing::warn!(%error, "could not claim webhook deliveries");
                Vec::new()
            }
        };
        if due.is_empty() {
            tokio::select! {
                () = board.wake.notified() => {}
                () = tokio::time::sleep(board.settings.poll) => {}
            }
            continue;
        }
        for delivery in due {
            let Ok(claim) = Arc::clone(&held).acquire_owned().await else {
                return;
            };
            let lane = match lanes.lock() {
                Ok(mut lanes) => {
                    // Lanes nobody waits on are dropped as they go idle.
                    if lanes.len() > 1024 {
                        lanes.retain(|_, lane| Arc::strong_count(lane) > 1);
                    }
                    Arc::clone(
                        lanes
                            .entry(delivery.delivery.webhook_id)
                            .or_insert_with(|| Arc::new(Semaphore::new(share))),
                    )
                }
                Err(_) => return,
            };
            let (steward, secrets, recorder, sending) = (
                steward.clone(),
                Arc::clone(&secrets),
                recorder.clone(),
                Arc::clone(&sending),
            );
            tokio::spawn(async move {
                let Ok(_lane) = lane.acquire_owned().await else {
                    return;
                };
                let Ok(_sender) = sending.acquire_owned().await else {
                    return;
                };
                // Too late to finish within the lease: another claim sends it.
                if Utc::now() + timeout + chrono::Duration::seconds(5) < lease_until {
                    deliver(steward, secrets, delivery, recorder).await;
                } else {
                    tracing::warn!(delivery = %delivery.delivery.id, "a claimed webhook delivery waited out its lease; it is sent after the lease runs out");
                }
                drop(claim);
            });
        }
    }
}

/// Sends notification mail forever, every `mail_interval`.
async fn run_mail<S: Store>(steward: Steward<S>) {
    let vitals = &steward.health.vitals;
    vitals.start(
        crate::health::Worker::NotificationMail,
        steward.events.settings.mail_interval,
    );
    loop {
        tokio::time::sleep(steward.events.settings.mail_interval).await;
        match crate::notifications::mail_pass(&steward).await {
            Ok(_) => vitals.beat(crate::health::Worker::NotificationMail),
            Err(error) => tracing::warn!(%error, "could not send notification mail"),
        }
    }
}

/// Runs the dispatcher, the delivery worker and the notification mail pass until dropped
/// (aborting the returned task stops all three).
pub async fn run_events<S: Store>(steward: Steward<S>) {
    let dispatcher = tokio::spawn(run_dispatcher(steward.clone()));
    let deliveries = tokio::spawn(run_deliveries(steward.clone()));
    let mail = tokio::spawn(run_mail(steward));
    let _guards = (
        crate::jobs::AbortOnDrop(dispatcher),
        crate::jobs::AbortOnDrop(deliveries),
        crate::jobs::AbortOnDrop(mail),
    );
    std::future::pending::<()>().await;
}
