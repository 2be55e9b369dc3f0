//! Device events: what a device reports happened on it (an app installed, a policy applied, a
//! lock-screen bypass attempt) and what Steward did to it (settings changed, a command
//! delivered), kept per device for a retention period, queried with filters and a keyset
//! cursor, counted for charts and streamed live. The rules here are pure: which types exist,
//! what an item must look like, how a cursor reads, which words a search matches.

mod ingest;
mod query;
#[cfg(test)]
mod tests;

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use ingest::{
    DEVICE_TYPES, IngestReport, ItemProblem, MAX_BATCH, MAX_DATA_BYTES, MAX_FUTURE_SECONDS,
    MAX_SUMMARY_CHARS, MAX_TYPE_CHARS, NewEvent, check_batch_key, check_item, check_type,
};
pub use query::{Cursor, EventFilter, EventScope, GroupBy, Severity, search_words};

use crate::RepositoryError;

/// Events kept when neither the configuration nor the organization says otherwise (days).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;
/// The longest retention an organization may set (days).
pub const MAX_RETENTION_DAYS: u32 = 3650;
/// How long a batch's `Idempotency-Key` is remembered (hours).
pub const BATCH_KEY_HOURS: i64 = 24;

/// Who wrote an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// The device reported it.
    Device,
    /// Steward recorded it (from the audit entry of a change to the device).
    Server,
}

impl EventSource {
    pub fn as_str(self) -> &'static str {
        match self {
            EventSource::Device => "device",
            EventSource::Server => "server",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "device" => Some(EventSource::Device),
            "server" => Some(EventSource::Server),
            _ => None,
        }
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEvent {
    /// The arrival order across the whole installation (the stream's cursor).
    pub seq: i64,
    pub id: Uuid,
    pub device: Uuid,
    /// The device's organization when the event arrived.
    pub organization: Option<Uuid>,
    /// The device's owner when the event arrived (a later owner does not see it).
    pub owner: Option<Uuid>,
    pub source: EventSource,
    pub kind: String,
    pub severity: Severity,
    pub summary: Option<String>,
    /// The event's data as JSON text.
    pub data: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

impl DeviceEvent {
    /// Its place in the query order (newest `occurredAt` first).
    pub fn cursor(&self) -> Cursor {
        Cursor {
            occurred_at: self.occurred_at,
            seq: self.seq,
        }
    }
}

/// A batch's `Idempotency-Key`, the fingerprint of what it carried and the answer it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchKey {
    pub key: String,
    pub fingerprint: String,
    /// The answer given the first time, as JSON.
    pub answer: String,
}

/// What storing a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredBatch {
    /// The events were stored, with these arrival numbers.
    Stored { seqs: Vec<i64> },
    /// The key was seen before: the fingerprint and answer of that first batch; nothing stored.
    Seen { fingerprint: String, answer: String },
}

/// Counts per bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub key: String,
    pub count: u64,
}

pub trait DeviceEventStore {
    /// Stores `events` of `device` (with its current organization) in one transaction; with a
    /// `key`, first records the key, and when the device sent that key before stores nothing
    /// and answers what was recorded then.
    fn store_device_events(
        &self,
        device: Uuid,
        key: Option<&BatchKey>,
        events: &[NewEvent],
        received_at: DateTime<Utc>,
    ) -> impl Future<Output = Result<StoredBatch, RepositoryError>> + Send;

    /// A page in the query order (`occurredAt` descending, then arrival), after `cursor`.
    fn device_events_page(
        &self,
        filter: &EventFilter,
        after: Option<Cursor>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<DeviceEvent>, RepositoryError>> + Send;

    /// Events that arrived after `seq` (in arrival order, at most `limit`), matching `filter`
    /// when one is given.
    fn device_events_since(
        &self,
        filter: Option<&EventFilter>,
        seq: i64,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<DeviceEvent>, RepositoryError>> + Send;

    /// The newest arrival number (0 when there is no event).
    fn latest_device_event_seq(&self) -> impl Future<Output = Result<i64, RepositoryError>> + Send;

    /// Counts of the matching events per bucket, largest first for types and devices, by day
    /// (UTC) in order for days; at most `limit` buckets.
    fn count_device_events(
        &self,
        filter: &EventFilter,
        group_by: GroupBy,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<Bucket>, RepositoryError>> + Send;

    /// The retention the device's organization set (days), if it set one.
    fn device_event_retention(
        &self,
        device: Uuid,
    ) -> impl Future<Output = Result<Option<u32>, RepositoryError>> + Send;

    /// An organization's own retention (days); `None` to follow the configuration.
    fn organization_event_retention(
        &self,
        organization: Uuid,
    ) -> impl Future<Output = Result<Option<u32>, RepositoryError>> + Send;

    /// Sets it; answers whether the organization exists.
    fn set_organization_event_retention(
        &self,
        organization: Uuid,
        days: Option<u32>,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}
