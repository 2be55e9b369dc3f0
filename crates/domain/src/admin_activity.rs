//! An operator's activity: their audit entries grouped by sign-in session, counted by action
//! and day, and the patterns worth a second look — a burst of deletions, activity at an hour
//! they are not usually active, an address they have not used before — each with the rule that
//! raised it. Pure: the store hands over the entries and the baselines.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use uuid::Uuid;

use crate::RepositoryError;

/// Entries one request reads at most; a longer window is refused with a hint to narrow it.
pub const MAX_ENTRIES: u64 = 50_000;
/// The longest window asked at once.
pub const MAX_WINDOW_DAYS: i64 = 92;
/// The default window: the last seven days.
pub const DEFAULT_WINDOW_DAYS: i64 = 7;
/// Deletions within [`BURST_WINDOW_MINUTES`] that make a burst.
pub const BURST_DELETIONS: usize = 10;
pub const BURST_WINDOW_MINUTES: i64 = 5;
/// The history an hour of day or an address is compared with: the days before the window.
pub const BASELINE_DAYS: i64 = 30;
/// Fewer entries than this in the baseline say nothing about an operator's usual hours.
pub const BASELINE_MIN_ENTRIES: u64 = 20;

/// One audit entry of the operator, as the timeline needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityEntry {
    pub occurred_at: DateTime<Utc>,
    pub action: String,
    pub session_id: Option<Uuid>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

/// What the operator did before the window, to compare with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActivityBaseline {
    /// Entries per hour of day (UTC) over [`BASELINE_DAYS`] before the window.
    pub hours: [u64; 24],
    /// Addresses used over [`BASELINE_DAYS`] before the window.
    pub addresses: BTreeSet<String>,
}

impl ActivityBaseline {
    pub fn entries(&self) -> u64 {
        self.hours.iter().sum()
    }
}

/// Reads an operator's entries.
pub trait AdminActivityStore {
    /// The actor's entries at or after `from` and before `to`, oldest first, at most `limit`.
    fn actor_entries(
        &self,
        actor: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<ActivityEntry>, RepositoryError>> + Send;

    /// The actor's hours and addresses at or after `from` and before `to`.
    fn actor_baseline(
        &self,
        actor: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl Future<Output = Result<ActivityBaseline, RepositoryError>> + Send;
}

/// The actions of one session (or of the entries without one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionActivity {
    /// `None`: entries made without a sign-in session (personal access tokens, older entries).
    pub session_id: Option<Uuid>,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    /// In the order first used.
    pub ip_addresses: Vec<String>,
    /// The latest entry's.
    pub user_agent: Option<String>,
    /// By count, most first, then by name.
    pub actions: Vec<(String, u64)>,
    pub total: u64,
}

/// What raised a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FlagRule {
    DeletionBurst,
    UnusualHour,
    NewAddress,
}

impl FlagRule {
    pub fn as_str(self) -> &'static str {
        match self {
            FlagRule::DeletionBurst => "deletion_burst",
            FlagRule::UnusualHour => "unusual_hour",
            FlagRule::NewAddress => "new_ip",
        }
    }

    /// The rule in words.
    pub fn rule(self) -> String {
        match self {
            FlagRule::DeletionBurst => format!(
                "{BURST_DELETIONS} or more deletions (actions whose verb deletes, erases or removes) within {BURST_WINDOW_MINUTES} minutes"
            ),
            FlagRule::UnusualHour => format!(
                "activity in an hour of the day (UTC) in which the operator did nothing over the {BASELINE_DAYS} days before the window (with at least {BASELINE_MIN_ENTRIES} entries in those days)"
            ),
            FlagRule::NewAddress => format!(
                "an IP address the operator did not use over the {BASELINE_DAYS} days before the window (when entries of those days name addresses)"
            ),
        }
    }
}

/// One pattern worth a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub rule: FlagRule,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Entries that match.
    pub count: u64,
    /// The session of the first matching entry.
    pub session_id: Option<Uuid>,
    /// The address (new_ip) or the hour (unusual_hour, `HH:00`).
    pub subject: Option<String>,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    pub sessions: Vec<SessionActivity>,
    /// Per day (UTC): actions and their counts.
    pub days: BTreeMap<NaiveDate, BTreeMap<String, u64>>,
    pub flags: Vec<Flag>,
    pub total: u64,
}

/// Whether an action deletes something: its verb (after the last `.`) deletes, erases or
/// removes (`user.deleted`, `organization.member_removed`, `user.erased`).
pub fn is_deletion(action: &str) -> bool {
    let verb = action.rsplit('.').next().unwrap_or(action);
    ["delete", "erase", "remove"]
        .iter()
        .any(|word| verb.contains(word))
}

/// Groups `entries` (oldest first) and raises the flags against `baseline`.
pub fn summarise(entries: &[ActivityEntry], baseline: &ActivityBaseline) -> Activity {
    let mut sessions: Vec<SessionActivity> = Vec::new();
    let mut index: HashMap<Option<Uuid>, usize> = HashMap::new();
    let mut counts: Vec<HashMap<String, u64>> = Vec::new();
    let mut days: BTreeMap<NaiveDate, BTreeMap<String, u64>> = BTreeMap::new();
    for entry in entries {
        let slot = *index.entry(entry.session_id).or_insert_with(|| {
            sessions.push(SessionActivity {
                session_id: entry.session_id,
                first: entry.occurred_at,
                last: entry.occurred_at,
                ip_addresses: Vec::new(),
                user_agent: None,
                actions: Vec::new(),
                total: 0,
            });
            counts.push(HashMap::new());
            sessions.len() - 1
        });
        let session = &mut sessions[slot];
        session.first = session.first.min(entry.occurred_at);
        session.last = session.last.max(entry.occurred_at);
        if let Some(ip) = &entry.ip_address
            && !session.ip_addresses.contains(ip)
        {
            session.ip_addresses.push(ip.clone());
        }
        if entry.user_agent.is_some() {
            session.user_agent = entry.user_agent.clone();
        }
        session.total += 1;
        *counts[slot].entry(entry.action.clone()).or_default() += 1;
        *days
            .entry(entry.occurred_at.date_naive())
            .or_default()
            .entry(entry.action.clone())
            .or_default() += 1;
    }
    for (session, counted) in sessions.iter_mut().zip(counts) {
        let mut actions: Vec<(String, u64)> = counted.into_iter().collect();
        actions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        session.actions = actions;
    }
    // Most recent session first.
    sessions.sort_by_key(|session| std::cmp::Reverse(session.last));
    let mut flags = deletion_bursts(entries);
    flags.extend(unusual_hours(entries, baseline));
    flags.extend(new_addresses(entries, baseline));
    flags.sort_by(|a, b| a.from.cmp(&b.from).then(a.rule.cmp(&b.rule)));
    Activity {
        sessions,
        days,
        flags,
        total: entries.len() as u64,
    }
}

/// Each run of deletions with at least [`BURST_DELETIONS`] inside any [`BURST_WINDOW_MINUTES`]:
/// one flag per run, from its first to its last deletion.
fn deletion_bursts(entries: &[ActivityEntry]) -> Vec<Flag> {
    let deletions: Vec<&ActivityEntry> = entries
        .iter()
        .filter(|entry| is_deletion(&entry.action))
        .collect();
    let window = Duration::minutes(BURST_WINDOW_MINUTES);
    let mut flags: Vec<Flag> = Vec::new();
    let mut start = 0;
    for end in 0..deletions.len() {
        while deletions[end].occurred_at - deletions[start].occurred_at > window {
            start += 1;
        }
        if end + 1 - start < BURST_DELETIONS {
            continue;
        }
        // Extends the current burst when it overlaps, else starts one.
        match flags.last_mut() {
            Some(flag) if deletions[start].occurred_at <= flag.to => {
                flag.to = deletions[end].occurred_at;
            }
            _ => flags.push(Flag {
                rule: FlagRule::DeletionBurst,
                from: deletions[start].occurred_at,
                to: deletions[end].occurred_at,
                count: 0,
                session_id: deletions[start].session_id,
                subject: None,
            }),
        }
    }
    for flag in &mut flags {
        flag.count = deletions
            .iter()
            .filter(|entry| entry.occurred_at >= flag.from && entry.occurred_at <= flag.to)
            .count() as u64;
    }
    flags
}

/// Entries in an hour of the day the baseline never saw, one flag per hour of each day.
fn unusual_hours(entries: &[ActivityEntry], baseline: &ActivityBaseline) -> Vec<Flag> {
    if baseline.entries() < BASELINE_MIN_ENTRIES {
        return Vec::new();
    }
    let mut flags: BTreeMap<(NaiveDate, u32), Flag> = BTreeMap::new();
    for entry in entries {
        let hour = entry.occurred_at.hour();
        if baseline.hours.get(hour as usize).copied().unwrap_or(0) > 0 {
            continue;
        }
        flags
            .entry((entry.occurred_at.date_naive(), hour))
            .and_modify(|flag| {
                flag.to = entry.occurred_at;
                flag.count += 1;
            })
            .or_insert_with(|| Flag {
                rule: FlagRule::UnusualHour,
                from: entry.occurred_at,
                to: entry.occurred_at,
                count: 1,
                session_id: entry.session_id,
                subject: Some(format!("{hour:02}:00")),
            });
    }
    flags.into_values().collect()
}

/// Addresses the baseline never saw, one flag per address.
fn new_addresses(entries: &[ActivityEntry], baseline: &ActivityBaseline) -> Vec<Flag> {
    // Without addresses in the history there is nothing to compare with.
    if baseline.addresses.is_empty() {
        return Vec::new();
    }
    let mut flags: BTreeMap<&str, Flag> = BTreeMap::new();
    for entry in entries {
        let Some(ip) = entry.ip_address.as_deref() else {
            continue;
        };
        if baseline.addresses.contains(ip) {
            continue;
        }
        flags
            .entry(ip)
            .and_modify(|flag| {
                flag.to = entry.occurred_at;
                flag.count += 1;
            })
            .or_insert_with(|| Flag {
                rule: FlagRule::NewAddress,
                from: entry.occurred_at,
                to: entry.occurred_at,
                count: 1,
                session_id: entry.session_id,
                subject: Some(ip.to_owned()),
            });
    }
    flags.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .to_utc()
            + Duration::minutes(minutes)
    }

    fn entry(minutes: i64, action: &str, session: Option<Uuid>, ip: &str) -> ActivityEntry {
        ActivityEntry {
            occurred_at: at(minutes),
            action: action.to_owned(),
            session_id: session,
            ip_address: Some(ip.to_owned()),
            user_agent: Some("ua".to_owned()),
        }
    }

    #[test]
    fn entries_group_by_session_and_day() {
        let (one, two) = (Some(Uuid::now_v7()), Some(Uuid::now_v7()));
        let entries = vec![
            entry(0, "auth.login_succeeded", one, "10.0.0.1"),
            entry(1, "user.locked", one, "10.0.0.1"),
            entry(2, "user.locked", one, "10.0.0.2"),
            entry(30, "user.updated", two, "10.0.0.3"),
            entry(31, "user.updated", None, "10.0.0.3"),
        ];
        let activity = summarise(&entries, &ActivityBaseline::default());
        assert_eq!(activity.total, 5);
        assert_eq!(activity.sessions.len(), 3);
        let first = activity.sessions.iter().find(|s| s.session_id == one).unwrap();
        assert_eq!(first.total, 3);
        assert_eq!((first.first, first.last), (at(0), at(2)));
        assert_eq!(first.ip_addresses, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(first.actions[0], ("user.locked".to_owned(), 2));
        // Most recent first.
        assert_eq!(activity.sessions[0].session_id, None);
        assert_eq!(activity.days.len(), 1);
        assert_eq!(activity.days.values().next().unwrap()["user.updated"], 2);
        // No baseline: no flags for hours or addresses.
        assert!(activity.flags.is_empty());
    }

    #[test]
    fn a_burst_of_deletions_is_flagged_once_and_a_slow_series_is_not() {
        let session = Some(Uuid::now_v7());
        let mut entries: Vec<ActivityEntry> = (0..12)
            .map(|i| ActivityEntry {
                occurred_at: at(0) + Duration::seconds(i * 20),
                ..entry(0, "user.deleted", session, "10.0.0.1")
            })
            .collect();
        // Nine deletions spread over hours: no burst.
        entries.extend((0..9).map(|i| entry(120 + i * 10, "device.deleted", session, "10.0.0.1")));
        let flags = deletion_bursts(&entries);
        assert_eq!(flags.len(), 1, "{flags:?}");
        assert_eq!(flags[0].count, 12);
        assert_eq!(
            (flags[0].from, flags[0].to),
            (at(0), at(0) + Duration::seconds(220))
        );
        assert!(is_deletion("organization.member_removed"));
        assert!(is_deletion("user.erased"));
        assert!(!is_deletion("user.locked"));
        assert!(!is_deletion("deleted.user_locked"));
    }

    #[test]
    fn hours_and_addresses_outside_the_baseline_are_flagged() {
        let mut baseline = ActivityBaseline::default();
        baseline.hours[9] = 40;
        baseline.addresses.insert("10.0.0.1".to_owned());
        let entries = vec![
            entry(0, "user.locked", None, "10.0.0.1"),
            entry(5 * 60, "user.locked", None, "192.0.2.7"),
            entry(5 * 60 + 1, "user.updated", None, "192.0.2.7"),
        ];
        let flags = summarise(&entries, &baseline).flags;
        let hour = flags.iter().find(|f| f.rule == FlagRule::UnusualHour).unwrap();
        assert_eq!((hour.subject.as_deref(), hour.count), (Some("14:00"), 2));
        let address = flags.iter().find(|f| f.rule == FlagRule::NewAddress).unwrap();
        assert_eq!(
            (address.subject.as_deref(), address.count),
            (Some("192.0.2.7"), 2)
        );
        assert_eq!(flags.len(), 2);
        // Too little history for usual hours.
        baseline.hours[9] = 5;
        let flags = summarise(&entries, &baseline).flags;
        assert!(flags.iter().all(|f| f.rule != FlagRule::UnusualHour));
    }
}
