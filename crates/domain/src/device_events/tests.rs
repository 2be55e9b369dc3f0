use chrono::{Duration, TimeZone, Utc};
use serde_json::json;

use super::*;

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0)
        .single()
        .unwrap_or_default()
}

fn check(item: serde_json::Value) -> Result<NewEvent, ItemProblem> {
    check_item(0, &item, now(), now() - Duration::days(90))
}

#[test]
fn types_are_the_documented_ones_or_custom() {
    assert!(check_type("app.installed").is_ok());
    assert!(check_type("custom.door-opened.v2").is_ok());
    for bad in [
        "device.suspended",
        "settings.updated",
        "custom.",
        "custom.Upper",
        "app",
        "",
        "custom.a b",
    ] {
        assert!(check_type(bad).is_err(), "{bad}");
    }
    assert!(check_type(&format!("custom.{}", "a".repeat(89))).is_ok());
    assert!(check_type(&format!("custom.{}", "a".repeat(90))).is_err());
}

#[test]
fn an_item_is_checked_field_by_field() {
    let event = check(
        json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z",
        "severity": "warning", "summary": "  12 %  ", "data": {"level": 12}}),
    )
    .unwrap_or_else(|problem| panic!("{problem:?}"));
    assert_eq!(event.severity, Severity::Warning);
    assert_eq!(event.summary.as_deref(), Some("12 %"));
    assert_eq!(event.data, r#"{"level":12}"#);
    let defaults = check(json!({"type": "system.booted", "occurredAt": "2026-12-03T09:00:00+01:00"}))
        .unwrap_or_else(|problem| panic!("{problem:?}"));
    assert_eq!(defaults.severity, Severity::Info);
    assert_eq!(defaults.data, "{}");
    assert_eq!(defaults.occurred_at, now() - Duration::hours(2));

    let field = |item| check(item).err().map(|problem| problem.field);
    assert_eq!(field(json!([])), Some(String::new()));
    assert_eq!(
        field(json!({"occurredAt": "2026-12-03T09:00:00Z"})),
        Some("type".into())
    );
    assert_eq!(field(json!({"type": "battery.low"})), Some("occurredAt".into()));
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "yesterday"})),
        Some("occurredAt".into())
    );
    // Five minutes ahead is fine, a second more is not; older than the retention neither.
    assert!(check(json!({"type": "battery.low", "occurredAt": "2026-12-03T10:05:00Z"})).is_ok());
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "2026-12-03T10:05:01Z"})),
        Some("occurredAt".into())
    );
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "2026-09-03T09:00:00Z"})),
        Some("occurredAt".into())
    );
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z", "severity": "fatal"})),
        Some("severity".into())
    );
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z", "summary": "a\u{0}b"})),
        Some("summary".into())
    );
    assert_eq!(
        field(
            json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z", "summary": "x".repeat(501)})
        ),
        Some("summary".into())
    );
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z", "data": {"a": "\u{0}"}})),
        Some("data".into())
    );
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z", "data": [1]})),
        Some("data".into())
    );
    assert_eq!(
        field(
            json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z", "data": {"a": "x".repeat(16 * 1024)}})
        ),
        Some("data".into())
    );
    assert_eq!(
        field(json!({"type": "battery.low", "occurredAt": "2026-12-03T09:00:00Z", "extra": 1})),
        Some("extra".into())
    );
}

#[test]
fn cursors_read_back_and_refuse_junk() {
    let cursor = Cursor {
        occurred_at: now(),
        seq: 42,
    };
    assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
    // Nanoseconds survive (SQLite keeps them, and the next page compares them).
    let fine = Cursor {
        occurred_at: now() + Duration::nanoseconds(123_456_789),
        seq: 7,
    };
    assert_eq!(Cursor::parse(&fine.encode()), Some(fine));
    assert_eq!(fine.encode(), "1796292000123456789-7");
    for bad in [
        "",
        "-",
        "1-",
        "-1",
        "a-1",
        "1-a",
        "1--1",
        "+1-1",
        "9999999999999999999999999999999-1",
    ] {
        assert_eq!(Cursor::parse(bad), None, "{bad}");
    }
}

#[test]
fn search_words_split_and_fold() {
    assert_eq!(
        search_words("App.Installed com.Example.app ÄBC", 10),
        ["app", "installed", "com", "example", "äbc"]
    );
    assert_eq!(search_words("a b c d", 2), ["a", "b"]);
}

#[test]
fn severity_filters_are_at_least() {
    assert_eq!(Severity::Warning.at_least(), ["warning", "error", "critical"]);
    assert_eq!(Severity::parse("error"), Some(Severity::Error));
    assert_eq!(Severity::parse("ERROR"), None);
}
