//! Device events: a device's batches checked item by item and stored once per
//! `Idempotency-Key`, pages with a keyset cursor, counts for charts, an organization's own
//! retention, and live subscriptions fed by this instance's [`EventHub`].

mod hub;
mod stream;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use steward_domain::device_events::{
    BatchKey, Bucket, Cursor, DeviceEvent, EventFilter, GroupBy, IngestReport, MAX_BATCH, MAX_RETENTION_DAYS,
    StoredBatch, check_batch_key, check_item,
};
use uuid::Uuid;

pub use hub::{EventHub, HubSettings, MAX_STREAMS, MAX_STREAMS_PER_CALLER, run_event_hub};
pub use stream::{StreamItem, Subscription};

use crate::error::AppError;
use crate::settings::SettingsAccess;
use crate::steward::{Steward, Store};
use steward_domain::settings::SettingsActor;

/// Items a page holds at most.
pub const MAX_PAGE: u64 = 200;
/// Buckets a count answers at most.
pub const MAX_BUCKETS: u64 = 1000;

pub struct DeviceEventService<'a, S> {
    steward: &'a Steward<S>,
}

/// A page of events and the cursor of the next one.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<DeviceEvent>,
    pub next: Option<Cursor>,
}

impl<'a, S: Store> DeviceEventService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    fn default_retention(&self) -> u32 {
        self.steward.device_events.retention_days()
    }

    /// Stores what passes of a batch the device sent at `now`; each refused item is named in
    /// the answer. With `key`, a batch sent again is stored once: the same answer with its
    /// accepted items counted as duplicates; another batch under a used key is a conflict.
    pub async fn ingest(
        &self,
        device: Uuid,
        key: Option<String>,
        items: &[Value],
        now: DateTime<Utc>,
    ) -> Result<IngestReport, AppError> {
        if items.is_empty() || items.len() > MAX_BATCH {
            return Err(AppError::invalid(
                "events",
                format!("must hold 1 to {MAX_BATCH} events"),
            ));
        }
        if let Some(key) = &key {
            check_batch_key(key).map_err(|message| AppError::invalid("Idempotency-Key", message))?;
        }
        let days = self
            .steward
            .store
            .device_event_retention(device)
            .await?
            .unwrap_or_else(|| self.default_retention());
        let oldest = now - Duration::days(i64::from(days));
        let mut events = Vec::with_capacity(items.len());
        let mut problems = Vec::new();
        for (index, item) in items.iter().enumerate() {
            match check_item(index, item, now, oldest) {
                Ok(event) => events.push(event),
                Err(problem) => problems.push(problem),
            }
        }
        let report = IngestReport {
            accepted: events.len(),
            duplicate: 0,
            rejected: problems.len(),
            problems,
        };
        let batch = match key {
            Some(key) => Some(BatchKey {
                key,
                fingerprint: fingerprint(items),
                answer: serde_json::to_string(&report).map_err(|_| AppError::internal())?,
            }),
            None => None,
        };
        match self
            .steward
            .store
            .store_device_events(device, batch.as_ref(), &events, now)
            .await?
        {
            StoredBatch::Stored { .. } => {
                self.steward.device_events.wake();
                Ok(report)
            }
            StoredBatch::Seen { fingerprint, answer } => {
                let ours = batch.as_ref().map(|batch| batch.fingerprint.as_str());
                if ours != Some(fingerprint.as_str()) {
                    return Err(AppError::conflict(
                        "this Idempotency-Key was used for a different batch of this device",
                    ));
                }
                let first: IngestReport = serde_json::from_str(&answer).map_err(|_| AppError::internal())?;
                Ok(IngestReport {
                    accepted: 0,
                    duplicate: first.accepted,
                    rejected: first.rejected,
                    problems: first.problems,
                })
            }
        }
    }

    /// A page in the query order after `cursor`.
    pub async fn page(
        &self,
        filter: &EventFilter,
        cursor: Option<Cursor>,
        limit: u64,
    ) -> Result<EventPage, AppError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut events = self
            .steward
            .store
            .device_events_page(filter, cursor, limit + 1)
            .await?;
        let more = events.len() as u64 > limit;
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next = if more {
            events.last().map(DeviceEvent::cursor)
        } else {
            None
        };
        Ok(EventPage { events, next })
    }

    pub async fn counts(&self, filter: &EventFilter, group_by: GroupBy) -> Result<Vec<Bucket>, AppError> {
        Ok(self
            .steward
            .store
            .count_device_events(filter, group_by, MAX_BUCKETS)
            .await?)
    }

    /// Starts a live subscription of `caller` (a user's or device's id), within the hub's
    /// limits of streams per caller and per instance: with `last_seen` (the stream's `Last-Event-ID`) what arrived
    /// after it first, then what arrives.
    pub async fn subscribe(
        &self,
        caller: String,
        filter: EventFilter,
        last_seen: Option<i64>,
    ) -> Result<Subscription, AppError> {
        Subscription::start(self.steward, caller, filter, last_seen).await
    }

    /// What of a device's history `access` may read: everything for a system administrator;
    /// for its owner, group managers and the device itself the events recorded while the
    /// device had its current owner (a new owner does not read the previous one's story).
    pub async fn history_of(&self, access: &SettingsAccess) -> Result<Option<Option<Uuid>>, AppError> {
        Ok(match access.actor {
            SettingsActor::SystemAdmin => None,
            SettingsActor::Device => Some(
                self.steward
                    .store
                    .find_device(access.device)
                    .await?
                    .ok_or_else(|| AppError::not_found("no such device"))?
                    .owner_user_id,
            ),
            _ => Some(access.owner),
        })
    }

    /// The organization's retention: its own (`Some`) or the configured one, and which.
    pub async fn retention(&self, organization: Uuid) -> Result<(u32, bool), AppError> {
        Ok(
            match self
                .steward
                .store
                .organization_event_retention(organization)
                .await?
            {
                Some(days) => (days, true),
                None => (self.default_retention(), false),
            },
        )
    }

    /// Sets (or with `None` removes) the organization's own retention, 1 to 3650 days.
    pub async fn set_retention(
        &self,
        organization: Uuid,
        days: Option<u32>,
    ) -> Result<(u32, bool), AppError> {
        if let Some(days) = days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(AppError::invalid(
                "days",
                format!("must be 1 to {MAX_RETENTION_DAYS}"),
            ));
        }
        if !self
            .steward
            .store
            .set_organization_event_retention(organization, days)
            .await?
        {
            return Err(AppError::not_found("no such organization"));
        }
        self.retention(organization).await
    }
}

/// The SHA-256 of the batch as received (re-serialised, so spacing does not matter).
fn fingerprint(items: &[Value]) -> String {
    let text = serde_json::to_string(items).unwrap_or_default();
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}
