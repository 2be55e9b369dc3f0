use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;

use super::*;
use crate::dashboard::{DashboardCounts, Scope};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn timing(frequency: Frequency, time: &str, zone: &str) -> Timing {
    Timing {
        frequency,
        time: NaiveTime::parse_from_str(time, "%H:%M").unwrap(),
        weekday: (frequency == Frequency::Weekly).then_some(Weekday::Mon),
        day_of_month: (frequency == Frequency::Monthly).then_some(31),
        time_zone: zone.parse::<Tz>().unwrap(),
    }
}

fn fields() -> ScheduleFields {
    ScheduleFields {
        name: "Weekly security".to_owned(),
        report_type: "security_summary".to_owned(),
        frequency: "daily".to_owned(),
        time: "09:00".to_owned(),
        format: "csv".to_owned(),
        recipients: vec!["Ops@Example.com".to_owned(), "ops@example.com".to_owned()],
        ..ScheduleFields::default()
    }
}

#[test]
fn a_daily_slot_is_the_local_time_in_its_zone() {
    let berlin = timing(Frequency::Daily, "09:00", "Europe/Berlin");
    // Winter: UTC+1.
    assert_eq!(
        berlin.slot_after(at("2030-01-10T07:59:00Z")),
        at("2030-01-10T08:00:00Z")
    );
    assert_eq!(
        berlin.slot_after(at("2030-01-10T08:00:00Z")),
        at("2030-01-11T08:00:00Z")
    );
    assert_eq!(
        berlin.slot_at_or_before(at("2030-01-10T08:00:00Z")),
        at("2030-01-10T08:00:00Z")
    );
    assert_eq!(
        berlin.slot_at_or_before(at("2030-01-10T07:59:59Z")),
        at("2030-01-09T08:00:00Z")
    );
    // Summer: UTC+2.
    assert_eq!(
        berlin.slot_after(at("2030-07-10T00:00:00Z")),
        at("2030-07-10T07:00:00Z")
    );
    assert_eq!(
        berlin.window_start(at("2030-07-10T07:00:00Z")),
        at("2030-07-09T07:00:00Z")
    );
}

#[test]
fn a_skipped_local_time_runs_at_the_next_existing_minute_and_a_repeated_one_once() {
    // 2030-03-31 02:30 does not exist in Berlin (02:00 → 03:00).
    let gap = timing(Frequency::Daily, "02:30", "Europe/Berlin");
    assert_eq!(
        gap.slot_after(at("2030-03-30T12:00:00Z")),
        at("2030-03-31T01:00:00Z")
    );
    // 02:10 inside the same gap runs at 03:00 local (01:00 UTC), the first minute that exists.
    let early = timing(Frequency::Daily, "02:10", "Europe/Berlin");
    assert_eq!(
        early.slot_after(at("2030-03-30T12:00:00Z")),
        at("2030-03-31T01:00:00Z")
    );
    // Lord Howe moves from 02:00 to 02:30: 02:10 runs at 02:30 local (UTC+11 after).
    let howe = timing(Frequency::Daily, "02:10", "Australia/Lord_Howe");
    assert_eq!(
        howe.slot_after(at("2030-10-05T00:00:00Z")),
        at("2030-10-05T15:30:00Z")
    );
    // 2030-10-27 02:30 happens twice (03:00 → 02:00): the first, in summer time.
    let repeat = timing(Frequency::Daily, "02:30", "Europe/Berlin");
    let first = repeat.slot_after(at("2030-10-26T12:00:00Z"));
    assert_eq!(first, at("2030-10-27T00:30:00Z"));
    // The second 02:30 is not another slot.
    assert_eq!(repeat.slot_after(first), at("2030-10-28T01:30:00Z"));
}

#[test]
fn a_monthly_slot_on_a_day_a_month_lacks_is_its_last_day() {
    let monthly = timing(Frequency::Monthly, "06:00", "UTC");
    assert_eq!(
        monthly.slot_after(at("2030-02-01T00:00:00Z")),
        at("2030-02-28T06:00:00Z")
    );
    assert_eq!(
        monthly.slot_after(at("2032-02-01T00:00:00Z")),
        at("2032-02-29T06:00:00Z")
    );
    assert_eq!(
        monthly.slot_after(at("2030-02-28T06:00:00Z")),
        at("2030-03-31T06:00:00Z")
    );
    assert_eq!(
        monthly.window_start(at("2030-03-31T06:00:00Z")),
        at("2030-02-28T06:00:00Z")
    );
}

#[test]
fn a_weekly_slot_is_on_its_weekday() {
    let weekly = timing(Frequency::Weekly, "07:15", "America/New_York");
    // 2030-01-07 is a Monday; New York is UTC-5 in January.
    assert_eq!(
        weekly.slot_after(at("2030-01-02T00:00:00Z")),
        at("2030-01-07T12:15:00Z")
    );
    assert_eq!(
        weekly.window_start(at("2030-01-07T12:15:00Z")),
        at("2029-12-31T12:15:00Z")
    );
}

#[test]
fn after_downtime_only_the_latest_missed_slot_runs() {
    let daily = timing(Frequency::Daily, "09:00", "UTC");
    // Due on the 1st; the instance comes back on the 4th at noon.
    let run = due_run(&daily, at("2030-01-04T12:00:00Z"));
    assert_eq!(run.due_at, at("2030-01-04T09:00:00Z"));
    assert_eq!(run.window_from, at("2030-01-03T09:00:00Z"));
    assert_eq!(run.next_run_at, at("2030-01-05T09:00:00Z"));
}

#[test]
fn fields_are_checked_and_recipients_kept_once() {
    let checked = fields().check().unwrap();
    assert_eq!(checked.recipients, vec!["ops@example.com"]);
    assert_eq!(checked.timing.time_zone, Tz::UTC);
    assert!(checked.enabled);
    let refused = |change: &dyn Fn(&mut ScheduleFields), field: &str| {
        let mut wrong = fields();
        change(&mut wrong);
        match wrong.check() {
            Err(RuleError::Invalid { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{field}: {other:?}"),
        }
    };
    refused(&|f| f.name = "a\0b".to_owned(), "name");
    refused(&|f| f.name = "x".repeat(101), "name");
    refused(&|f| f.name = "  ".to_owned(), "name");
    refused(&|f| f.name = "Report \u{202E}gnp.exe".to_owned(), "name");
    refused(
        &|f| f.recipients = vec!["ops@exämple.com".to_owned()],
        "recipients",
    );
    refused(
        &|f| f.recipients = vec!["ops:x@example.com".to_owned()],
        "recipients",
    );
    refused(&|f| f.report_type = "everything".to_owned(), "reportType");
    refused(&|f| f.frequency = "hourly".to_owned(), "frequency");
    refused(&|f| f.time = "24:00".to_owned(), "time");
    refused(&|f| f.time = "9:00".to_owned(), "time");
    refused(&|f| f.time = "+9:00".to_owned(), "time");
    refused(&|f| f.weekday = Some("monday".to_owned()), "weekday");
    refused(&|f| f.frequency = "weekly".to_owned(), "weekday");
    refused(
        &|f| {
            f.frequency = "weekly".to_owned();
            f.weekday = Some("mon".to_owned());
        },
        "weekday",
    );
    refused(&|f| f.day_of_month = Some(3), "dayOfMonth");
    refused(
        &|f| {
            f.frequency = "monthly".to_owned();
            f.day_of_month = Some(32);
        },
        "dayOfMonth",
    );
    refused(
        &|f| {
            f.frequency = "monthly".to_owned();
            f.day_of_month = Some(i64::MIN);
        },
        "dayOfMonth",
    );
    refused(&|f| f.time_zone = Some("Mars/Olympus".to_owned()), "timeZone");
    refused(&|f| f.time_zone = Some("UTC\0".to_owned()), "timeZone");
    refused(&|f| f.format = "pdf".to_owned(), "format");
    refused(&|f| f.recipients = Vec::new(), "recipients");
    refused(
        &|f| f.recipients = vec!["ops@example.com\r\nBcc: x@example.com".to_owned()],
        "recipients",
    );
    refused(
        &|f| f.recipients = vec!["Ops <ops@example.com>".to_owned()],
        "recipients",
    );
    refused(&|f| f.recipients = vec!["nobody".to_owned()], "recipients");
    refused(
        &|f| f.recipients = vec![format!("{}@example.com", "a".repeat(250))],
        "recipients",
    );
    refused(
        &|f| f.recipients = (0..51).map(|i| format!("r{i}@example.com")).collect(),
        "recipients",
    );
}

#[test]
fn a_report_counts_its_actions_and_writes_csv_rows() {
    let mut actions = BTreeMap::new();
    actions.insert("auth.login_failed".to_owned(), 3);
    actions.insert("auth.login_succeeded".to_owned(), 5);
    let now = DashboardCounts::default();
    let window = (at("2030-01-01T00:00:00Z"), at("2030-01-02T00:00:00Z"));
    let report = Report::build(ReportType::SecuritySummary, Scope::System, window, &actions, &now);
    let rows = report.csv_rows();
    assert_eq!(rows[0], ["section", "figure", "value"]);
    assert!(rows.contains(&[
        "In the period".to_owned(),
        "Failed sign-ins".to_owned(),
        "3".to_owned()
    ]));
    assert!(rows.contains(&["In the period".to_owned(), "Lockouts".to_owned(), "0".to_owned()]));
    let digest = Report::build(ReportType::AuditDigest, Scope::System, window, &actions, &now);
    assert_eq!(digest.sections[0].rows, vec![("Audit entries".to_owned(), 8)]);
    assert_eq!(digest.sections[1].rows[0], ("auth.login_succeeded".to_owned(), 5));
    // Every counted action is one Steward writes.
    for kind in ReportType::ALL {
        for action in kind.counted_actions() {
            assert!(crate::events::catalog::is_cataloged_action(action), "{action}");
        }
    }
    let _ = Utc.timestamp_opt(0, 0);
}
