//! Scheduled reports: what a schedule holds (a report type, when it is due in which time zone,
//! its recipients and format), when it is next due, which window a run covers, and what a
//! report says. The rules here are pure; the store keeps schedules, recipients and runs, and
//! hands each due run to exactly one instance.

mod content;
mod timing;

use std::future::Future;

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use uuid::Uuid;

use content::{FLEET_ACTIONS, SECURITY_ACTIONS, USER_ACTIONS};
pub use content::{Report, Section};
pub use timing::Timing;

use crate::accounts::OutgoingMail;
use crate::jobs::NewJob;
use crate::{AuditEntry, RepositoryError, RuleError};

/// What a report tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReportType {
    /// Sign-ins, failures, lockouts, second-factor and password events, refused admin
    /// requests and detected token reuse in the window; locked accounts now.
    SecuritySummary,
    /// Registrations and sign-ins in the window; accounts and how many were active now.
    UserActivity,
    /// Devices now by status and platform, non-compliant devices, pending unlock requests;
    /// enrolments, retirements and wipes in the window.
    FleetCompliance,
    /// Every audit action written in the window, counted.
    AuditDigest,
}

impl ReportType {
    pub const ALL: [ReportType; 4] = [
        ReportType::SecuritySummary,
        ReportType::UserActivity,
        ReportType::FleetCompliance,
        ReportType::AuditDigest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportType::SecuritySummary => "security_summary",
            ReportType::UserActivity => "user_activity",
            ReportType::FleetCompliance => "fleet_compliance",
            ReportType::AuditDigest => "audit_digest",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The report's title in mail subjects and headings.
    pub fn title(self) -> &'static str {
        match self {
            ReportType::SecuritySummary => "Security summary",
            ReportType::UserActivity => "User activity",
            ReportType::FleetCompliance => "Fleet compliance",
            ReportType::AuditDigest => "Audit digest",
        }
    }

    /// The audit actions counted over the report's window.
    pub fn counted_actions(self) -> Vec<&'static str> {
        match self {
            ReportType::SecuritySummary => SECURITY_ACTIONS.iter().map(|(action, _)| *action).collect(),
            ReportType::UserActivity => USER_ACTIONS.iter().map(|(action, _)| *action).collect(),
            ReportType::FleetCompliance => FLEET_ACTIONS.iter().map(|(action, _)| *action).collect(),
            ReportType::AuditDigest => crate::events::catalog::EVENT_TYPES
                .iter()
                .map(|event| event.name)
                .filter(|action| crate::events::catalog::is_cataloged_action(action))
                .chain(
                    crate::events::catalog::RENAMED_ACTIONS
                        .iter()
                        .map(|(action, _)| *action),
                )
                .collect(),
        }
    }
}

/// How often a schedule is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Frequency {
    Daily,
    Weekly,
    Monthly,
}

impl Frequency {
    pub const ALL: [Frequency; 3] = [Frequency::Daily, Frequency::Weekly, Frequency::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|frequency| frequency.as_str() == text)
    }
}

/// How the report travels: its figures are in the mail either way (text and HTML); `csv`
/// attaches them as a CSV file as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportFormat {
    Csv,
    Html,
}

impl ReportFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Csv => "csv",
            ReportFormat::Html => "html",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(ReportFormat::Csv),
            "html" => Some(ReportFormat::Html),
            _ => None,
        }
    }
}

/// Schedules on one instance, in all.
pub const MAX_SCHEDULES: u64 = 200;
/// Recipients of one schedule.
pub const MAX_RECIPIENTS: usize = 50;
/// The longest recipient address (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest schedule name.
pub const MAX_NAME_CHARS: usize = 100;
/// Runs shown with a schedule.
pub const RECENT_RUNS: u64 = 20;

/// A schedule as asked for, checked by [`ScheduleInput::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleInput {
    pub name: String,
    pub report_type: ReportType,
    pub timing: Timing,
    pub format: ReportFormat,
    /// Addresses, each once (compared without case), in the order given.
    pub recipients: Vec<String>,
    /// One organization's figures instead of the whole system's.
    pub organization: Option<Uuid>,
    pub enabled: bool,
}

/// A schedule's fields as they arrive, before their rules are checked.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFields {
    pub name: String,
    pub report_type: String,
    pub frequency: String,
    /// `HH:MM` on the 24-hour clock, in `time_zone`.
    pub time: String,
    /// Weekly schedules: `monday` … `sunday`.
    pub weekday: Option<String>,
    /// Monthly schedules: 1–31; in shorter months the last day.
    pub day_of_month: Option<i64>,
    /// An IANA time zone (`Europe/Berlin`); `UTC` when absent.
    pub time_zone: Option<String>,
    pub format: String,
    pub recipients: Vec<String>,
    pub organization: Option<Uuid>,
    pub enabled: Option<bool>,
}

fn invalid(field: &'static str, message: &'static str) -> RuleError {
    RuleError::Invalid { field, message }
}

/// Whether `text` has a control character (NUL, line breaks, escapes): never in a name or an
/// address that ends up in mail headers.
fn has_control(text: &str) -> bool {
    text.chars().any(|c| {
        // Cc, and the format characters that reorder or hide text (bidirectional overrides,
        // zero-width characters) a subject could spoof with.
        c.is_control() || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
    })
}

/// An address a report may be sent to: `local@domain`, no spaces, no control characters, no
/// display name, at most [`MAX_EMAIL_CHARS`]. Answered in lower case.
pub fn check_recipient(address: &str) -> Result<String, RuleError> {
    let address = address.trim();
    if address.is_empty() || address.chars().count() > MAX_EMAIL_CHARS {
        return Err(invalid("recipients", "each address has 1 to 254 characters"));
    }
    if has_control(address)
        || address
            .chars()
            .any(|c| c.is_whitespace() || "<>,;\"()[]\\".contains(c))
    {
        return Err(invalid(
            "recipients",
            "an address has no spaces, control characters, display names or separators",
        ));
    }
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Err(invalid("recipients", "each address is local@domain"));
    };
    if local.is_empty() || local.contains('@') || domain.is_empty() || !domain.contains('.') {
        return Err(invalid("recipients", "each address is local@domain"));
    }
    // What every mail server takes: ASCII, RFC 5322's atoms on the left, a host name on the
    // right.
    let atom = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c);
    let host = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if !local.chars().all(atom) || !domain.chars().all(host) {
        return Err(invalid(
            "recipients",
            "each address is ASCII: letters, digits and !#$%&'*+-/=?^_`{|}~. before the @, a host name after it",
        ));
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(invalid("recipients", "each address is local@domain"));
    }
    Ok(address.to_lowercase())
}

impl ScheduleFields {
    /// Checks every field: the name (1–100 characters, no control characters), a known report
    /// type, frequency and format, the time, the weekday of a weekly schedule and the day of a
    /// monthly one (and neither on others), an IANA time zone, and 1–50 valid recipients.
    pub fn check(self) -> Result<ScheduleInput, RuleError> {
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
            return Err(invalid("name", "has 1 to 100 characters"));
        }
        if has_control(&name) {
            return Err(invalid("name", "has no control characters"));
        }
        let report_type = ReportType::parse(&self.report_type).ok_or(invalid(
            "reportType",
            "is security_summary, user_activity, fleet_compliance or audit_digest",
        ))?;
        let frequency =
            Frequency::parse(&self.frequency).ok_or(invalid("frequency", "is daily, weekly or monthly"))?;
        let time = parse_time(&self.time)?;
        let weekday = match (frequency, self.weekday.as_deref()) {
            (Frequency::Weekly, Some(day)) => Some(parse_weekday(day)?),
            (Frequency::Weekly, None) => return Err(invalid("weekday", "is required for a weekly schedule")),
            (_, Some(_)) => return Err(invalid("weekday", "is only for weekly schedules")),
            (_, None) => None,
        };
        let day_of_month = match (frequency, self.day_of_month) {
            (Frequency::Monthly, Some(day)) if (1..=31).contains(&day) => u32::try_from(day).ok(),
            (Frequency::Monthly, Some(_)) => return Err(invalid("dayOfMonth", "is 1 to 31")),
            (Frequency::Monthly, None) => {
                return Err(invalid("dayOfMonth", "is required for a monthly schedule"));
            }
            (_, Some(_)) => return Err(invalid("dayOfMonth", "is only for monthly schedules")),
            (_, None) => None,
        };
        let time_zone = match self.time_zone.as_deref() {
            None => Tz::UTC,
            Some(zone) if zone.len() <= 64 && !has_control(zone) => zone
                .parse::<Tz>()
                .map_err(|_| invalid("timeZone", "is an IANA time zone such as Europe/Berlin or UTC"))?,
            Some(_) => {
                return Err(invalid(
                    "timeZone",
                    "is an IANA time zone such as Europe/Berlin or UTC",
                ));
            }
        };
        let format = ReportFormat::parse(&self.format).ok_or(invalid("format", "is csv or html"))?;
        if self.recipients.is_empty() || self.recipients.len() > MAX_RECIPIENTS {
            return Err(invalid("recipients", "has 1 to 50 addresses"));
        }
        let mut recipients: Vec<String> = Vec::with_capacity(self.recipients.len());
        for address in &self.recipients {
            let address = check_recipient(address)?;
            if !recipients.contains(&address) {
                recipients.push(address);
            }
        }
        Ok(ScheduleInput {
            name,
            report_type,
            timing: Timing {
                frequency,
                time,
                weekday,
                day_of_month,
                time_zone,
            },
            format,
            recipients,
            organization: self.organization,
            enabled: self.enabled.unwrap_or(true),
        })
    }
}

fn parse_time(text: &str) -> Result<NaiveTime, RuleError> {
    let message = "is HH:MM on the 24-hour clock (00:00 to 23:59)";
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(invalid("time", message));
    }
    let hour: u32 = text[..2].parse().map_err(|_| invalid("time", message))?;
    let minute: u32 = text[3..].parse().map_err(|_| invalid("time", message))?;
    if !text[..2]
        .bytes()
        .chain(text[3..].bytes())
        .all(|b| b.is_ascii_digit())
    {
        return Err(invalid("time", message));
    }
    NaiveTime::from_hms_opt(hour, minute, 0).ok_or(invalid("time", message))
}

fn parse_weekday(text: &str) -> Result<Weekday, RuleError> {
    const DAYS: [(&str, Weekday); 7] = [
        ("monday", Weekday::Mon),
        ("tuesday", Weekday::Tue),
        ("wednesday", Weekday::Wed),
        ("thursday", Weekday::Thu),
        ("friday", Weekday::Fri),
        ("saturday", Weekday::Sat),
        ("sunday", Weekday::Sun),
    ];
    DAYS.iter()
        .find(|(name, _)| *name == text)
        .map(|(_, day)| *day)
        .ok_or(invalid("weekday", "is monday, tuesday, … or sunday"))
}

/// The name of a weekday as schedules spell it.
pub fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "monday",
        Weekday::Tue => "tuesday",
        Weekday::Wed => "wednesday",
        Weekday::Thu => "thursday",
        Weekday::Fri => "friday",
        Weekday::Sat => "saturday",
        Weekday::Sun => "sunday",
    }
}

/// One recipient of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub id: Uuid,
    pub email: String,
    /// When they unsubscribed; they get no more mail from this schedule while it holds them.
    pub unsubscribed_at: Option<DateTime<Utc>>,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    pub id: Uuid,
    pub name: String,
    pub report_type: ReportType,
    pub timing: Timing,
    pub format: ReportFormat,
    pub organization: Option<Uuid>,
    pub enabled: bool,
    /// The operator the runs act for: whoever last saved the schedule (`None` once their
    /// account was deleted: runs fail until someone saves it again).
    pub owner: Option<Uuid>,
    /// When the next run is due (`None` while disabled).
    pub next_run_at: Option<DateTime<Utc>>,
    pub recipients: Vec<Recipient>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why a run happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// At its due time (or the latest missed one after downtime).
    Scheduled,
    /// `POST /report-schedules/{id}/send-test`.
    Test,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "scheduled" => Some(RunKind::Scheduled),
            "test" => Some(RunKind::Test),
            _ => None,
        }
    }
}

/// Where a run stands: `pending` (its job waits or runs) → `sent` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Pending,
    Sent,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Sent => "sent",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(RunStatus::Pending),
            "sent" => Some(RunStatus::Sent),
            "failed" => Some(RunStatus::Failed),
            _ => None,
        }
    }
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportRun {
    pub id: Uuid,
    pub schedule_id: Uuid,
    pub kind: RunKind,
    /// The slot it ran for (a test: the minute it was asked).
    pub due_at: DateTime<Utc>,
    /// The window its figures cover: `[from, to)`.
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub status: RunStatus,
    pub job_id: Option<Uuid>,
    /// Mails queued (one per subscribed recipient).
    pub mailed: i32,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What the scheduler decided for a schedule found due at `now`: the slot to run (the latest
/// one at or before `now`, so a long downtime catches up one run, not each missed one), the
/// window it covers, and when the schedule is due next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueRun {
    pub due_at: DateTime<Utc>,
    pub window_from: DateTime<Utc>,
    pub next_run_at: DateTime<Utc>,
}

/// The run due for `timing` at `now`.
pub fn due_run(timing: &Timing, now: DateTime<Utc>) -> DueRun {
    let due_at = timing.slot_at_or_before(now);
    DueRun {
        due_at,
        window_from: timing.window_start(due_at),
        next_run_at: timing.slot_after(now),
    }
}

/// A run to start: the run row and the job that will send it.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub run: ReportRun,
    /// `None` when the run cannot start (the schedule has no owner): stored `failed`.
    pub job: Option<NewJob>,
}

/// How a run ends.
#[derive(Debug, Clone)]
pub enum RunOutcome<'a> {
    Sent {
        mail: &'a [(Uuid, OutgoingMail)],
        audit: Box<AuditEntry>,
    },
    Failed {
        error: &'a str,
    },
}

pub trait ReportStore {
    /// Stores a schedule with its recipients and the audit entry; `None` when there are
    /// already [`MAX_SCHEDULES`] (counted in the same transaction).
    fn create_schedule(
        &self,
        schedule: &ScheduleRecord,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Option<ScheduleRecord>, RepositoryError>> + Send;

    /// Replaces a schedule's fields (keeping the recipients that stay, with their
    /// unsubscription) if it is still at `expected_version`; `NotFound` when it is gone,
    /// `Conflict` when it changed meanwhile.
    fn update_schedule(
        &self,
        schedule: &ScheduleRecord,
        expected_version: i32,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<ScheduleRecord, RepositoryError>> + Send;

    /// Deletes a schedule, its recipients and runs; `false` when it did not exist.
    fn delete_schedule(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    fn find_schedule(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<ScheduleRecord>, RepositoryError>> + Send;

    /// Every schedule, oldest first (at most [`MAX_SCHEDULES`]).
    fn list_schedules(&self) -> impl Future<Output = Result<Vec<ScheduleRecord>, RepositoryError>> + Send;

    /// Enabled schedules due at `now` (`next_run_at <= now`), oldest due first.
    fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<ScheduleRecord>, RepositoryError>> + Send;

    /// Takes a due schedule's run: moves `next_run_at` on (and the version with it) and stores
    /// the run and its job, in one transaction — only if the schedule is still enabled at
    /// `seen_version`, so of several instances exactly one starts it. A slot that already ran
    /// only moves `next_run_at`. Answers whether this call started a run.
    fn start_run(
        &self,
        schedule: Uuid,
        seen_version: i32,
        next_run_at: DateTime<Utc>,
        run: &NewRun,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Stores a test run, `pending`, before its mail is made; `false` when a test of the same
    /// schedule was already asked in the same minute.
    fn claim_test_run(&self, run: &ReportRun) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// Fails the pending runs whose job ended without ending them (cancelled, timed out,
    /// interrupted too often) or is gone, and tests pending for 10 minutes (their instance
    /// stopped). Answers how many.
    fn fail_orphaned_runs(
        &self,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<u64, RepositoryError>> + Send;

    fn find_run(&self, id: Uuid) -> impl Future<Output = Result<Option<ReportRun>, RepositoryError>> + Send;

    /// Ends a pending run, once (a job taken up again after its instance died does not mail
    /// twice), in one transaction: `sent` with the mail of the recipients who are still
    /// subscribed now (each mail with its recipient's id) queued — unless a scheduled run's
    /// schedule was disabled meanwhile, which fails it — with `audit` (given the run and the
    /// recipients mailed); or `failed` with `error`. Answers how many mails it queued, `None`
    /// when the run was no longer pending.
    fn finish_run(
        &self,
        id: Uuid,
        outcome: RunOutcome<'_>,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<usize>, RepositoryError>> + Send;

    /// A schedule's latest runs, newest first.
    fn recent_runs(
        &self,
        schedule: Uuid,
        limit: u64,
    ) -> impl Future<Output = Result<Vec<ReportRun>, RepositoryError>> + Send;

    /// A recipient and the name of their schedule.
    fn find_recipient(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<(Recipient, Uuid, String)>, RepositoryError>> + Send;

    /// Marks a recipient unsubscribed (once: `false` when they already were) with its audit entry.
    fn unsubscribe(
        &self,
        recipient: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests;
