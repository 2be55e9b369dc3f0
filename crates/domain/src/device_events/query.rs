//! How events are asked for: the scope (one device or one organization), the filters, the
//! keyset cursor and the words a search matches.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How serious an event is, in rising order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|severity| severity.as_str() == text)
    }

    /// This severity and every higher one (what `severity=` filters on).
    pub fn at_least(self) -> Vec<&'static str> {
        Self::ALL
            .into_iter()
            .filter(|severity| *severity >= self)
            .map(Severity::as_str)
            .collect()
    }
}

/// Whose events: one device's, or an organization's devices'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventScope {
    Device(Uuid),
    Organization(Uuid),
}

/// What to read. Every filter given must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub scope: EventScope,
    /// Within an organization: one device.
    pub device: Option<Uuid>,
    /// Only events recorded while the device had this owner (`Some(None)`: no owner) — what
    /// a device's owner and group managers see of its history.
    pub owner: Option<Option<Uuid>>,
    /// Types starting with this (`app.` for every app event).
    pub type_prefix: Option<String>,
    /// This severity or higher.
    pub severity: Option<Severity>,
    /// `occurredAt` at or after.
    pub from: Option<DateTime<Utc>>,
    /// `occurredAt` before.
    pub to: Option<DateTime<Utc>>,
    /// Every word must appear in the type, summary or data ([`search_words`]).
    pub words: Vec<String>,
}

impl EventFilter {
    pub fn new(scope: EventScope) -> Self {
        Self {
            scope,
            device: None,
            owner: None,
            type_prefix: None,
            severity: None,
            from: None,
            to: None,
            words: Vec::new(),
        }
    }

    /// Whether a live event matches (the same rules as the stored query, words included).
    pub fn matches(&self, event: &super::DeviceEvent) -> bool {
        let in_scope = match self.scope {
            EventScope::Device(device) => event.device == device,
            EventScope::Organization(organization) => event.organization == Some(organization),
        };
        in_scope
            && self.device.is_none_or(|device| event.device == device)
            && self.owner.is_none_or(|owner| event.owner == owner)
            && self
                .type_prefix
                .as_deref()
                .is_none_or(|prefix| event.kind.starts_with(prefix))
            && self.severity.is_none_or(|severity| event.severity >= severity)
            && self.from.is_none_or(|from| event.occurred_at >= from)
            && self.to.is_none_or(|to| event.occurred_at < to)
            && (self.words.is_empty() || {
                let text = format!(
                    "{} {} {}",
                    event.kind,
                    event.summary.as_deref().unwrap_or_default(),
                    event.data
                );
                let found: std::collections::HashSet<String> = text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|word| !word.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                self.words.iter().all(|word| found.contains(word))
            })
    }
}

/// The words of a text as a search sees them: runs of letters and digits, lower-cased; at most
/// `max` of them, in order, without repeats.
pub fn search_words(text: &str, max: usize) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
    {
        let word = word.to_lowercase();
        if !words.contains(&word) {
            if words.len() == max {
                break;
            }
            words.push(word);
        }
    }
    words
}

/// A place in the query order: newest `occurredAt` first, then latest arrival. Written as
/// `<nanoseconds since 1970>-<arrival number>` (nanoseconds: SQLite keeps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub occurred_at: DateTime<Utc>,
    pub seq: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        let nanos = i128::from(self.occurred_at.timestamp()) * 1_000_000_000
            + i128::from(self.occurred_at.timestamp_subsec_nanos());
        format!("{nanos}-{}", self.seq)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (nanos, seq) = text.split_once('-').filter(|(nanos, _)| !nanos.is_empty())?;
        if !nanos.bytes().all(|b| b.is_ascii_digit()) || nanos.len() > 30 {
            return None;
        }
        let nanos: i128 = nanos.parse().ok()?;
        let seq: i64 = seq.parse().ok()?;
        if seq < 0 {
            return None;
        }
        let seconds = i64::try_from(nanos / 1_000_000_000).ok()?;
        let subsec = u32::try_from(nanos % 1_000_000_000).ok()?;
        Some(Cursor {
            occurred_at: DateTime::from_timestamp(seconds, subsec)?,
            seq,
        })
    }
}

/// What counts are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Type,
    /// The UTC day of `occurredAt`.
    Day,
    Device,
}

impl GroupBy {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "type" => Some(GroupBy::Type),
            "day" => Some(GroupBy::Day),
            "device" => Some(GroupBy::Device),
            _ => None,
        }
    }
}
