//! What a device may report: the types, the shape of an item, the batch's key.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Severity;

/// Items per batch.
pub const MAX_BATCH: usize = 500;
/// An item's `data`, as compact JSON.
pub const MAX_DATA_BYTES: usize = 16 * 1024;
pub const MAX_SUMMARY_CHARS: usize = 500;
pub const MAX_TYPE_CHARS: usize = 96;
/// How far ahead of the server's clock `occurredAt` may be.
pub const MAX_FUTURE_SECONDS: i64 = 300;

/// The types a device reports, with what each means. Anything else is `custom.<name>`;
/// `device.*` and `settings.*` are Steward's own (server events) and refused from devices.
pub const DEVICE_TYPES: &[(&str, &str)] = &[
    (
        "app.installed",
        "An app was installed (data: packageName, version).",
    ),
    (
        "app.updated",
        "An app was updated (data: packageName, fromVersion, toVersion).",
    ),
    ("app.removed", "An app was removed (data: packageName)."),
    (
        "policy.applied",
        "The device applied its settings (data: version).",
    ),
    (
        "policy.failed",
        "The device could not apply a setting (data: key, reason).",
    ),
    (
        "compliance.changed",
        "The device became compliant or not (data: compliant, reasons).",
    ),
    (
        "security.lock_screen_bypass_attempt",
        "Someone tried to get past the lock screen.",
    ),
    (
        "security.tamper_detected",
        "The app found the device rooted, jailbroken or tampered with.",
    ),
    (
        "permission.changed",
        "A permission was granted or withdrawn (data: permission, granted).",
    ),
    (
        "location.changed",
        "The device reported where it is (data: latitude, longitude, accuracy).",
    ),
    (
        "battery.low",
        "The battery fell below the app's threshold (data: level).",
    ),
    (
        "storage.low",
        "Free storage fell below the app's threshold (data: freeBytes).",
    ),
    ("network.changed", "The device changed network (data: type)."),
    ("system.booted", "The device started."),
    ("user.signed_in", "Someone signed in on the device."),
    ("user.signed_out", "Someone signed out on the device."),
];

/// An item that passed: ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub id: Uuid,
    pub kind: String,
    pub severity: Severity,
    pub summary: Option<String>,
    /// Compact JSON.
    pub data: String,
    pub occurred_at: DateTime<Utc>,
}

/// Why one item of a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemProblem {
    /// The item's position in `events` (from 0).
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// The answer to a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestReport {
    pub accepted: usize,
    /// Items of a batch sent again with the same `Idempotency-Key` (stored the first time).
    pub duplicate: usize,
    pub rejected: usize,
    pub problems: Vec<ItemProblem>,
}

fn has_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control())
}

/// `app.installed`, one of [`DEVICE_TYPES`], or `custom.` and a name of `a-z 0-9 _ . -`.
pub fn check_type(kind: &str) -> Result<(), String> {
    if DEVICE_TYPES.iter().any(|(known, _)| *known == kind) {
        return Ok(());
    }
    let Some(name) = kind.strip_prefix("custom.") else {
        return Err("must be one of the documented types or custom.<name>".to_owned());
    };
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-');
    if name.is_empty() || kind.len() > MAX_TYPE_CHARS || !name.chars().all(allowed) {
        return Err(format!(
            "custom types are custom.<name>, the name 1-{} characters of a-z, 0-9, _ . -",
            MAX_TYPE_CHARS - "custom.".len()
        ));
    }
    Ok(())
}

/// A key is 1–128 visible ASCII characters.
pub fn check_batch_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 128 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err("Idempotency-Key must be 1-128 visible ASCII characters".to_owned());
    }
    Ok(())
}

fn problem(index: usize, field: &str, message: impl Into<String>) -> ItemProblem {
    ItemProblem {
        index,
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Whether JSON holds a NUL or another control character in a key or a string.
fn json_has_control(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(json_has_control),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| has_control(key) || json_has_control(value)),
        _ => false,
    }
}

/// Checks item `index` of a batch received at `now`; events that occurred before `oldest`
/// (the retention) are refused, as are those more than five minutes ahead of `now`.
pub fn check_item(
    index: usize,
    item: &Value,
    now: DateTime<Utc>,
    oldest: DateTime<Utc>,
) -> Result<NewEvent, ItemProblem> {
    let Value::Object(fields) = item else {
        return Err(problem(index, "", "each event is an object"));
    };
    for key in fields.keys() {
        if !matches!(
            key.as_str(),
            "type" | "occurredAt" | "severity" | "summary" | "data"
        ) {
            return Err(problem(index, key, "unknown field"));
        }
    }
    let kind = match fields.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return Err(problem(index, "type", "must be a string")),
        None => return Err(problem(index, "type", "is required")),
    };
    check_type(&kind).map_err(|message| problem(index, "type", message))?;
    let occurred_at = match fields.get("occurredAt") {
        Some(Value::String(text)) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| {
                problem(
                    index,
                    "occurredAt",
                    "must be an RFC 3339 time like 2026-12-03T10:00:00Z",
                )
            })?
            .with_timezone(&Utc),
        Some(_) => return Err(problem(index, "occurredAt", "must be a string")),
        None => return Err(problem(index, "occurredAt", "is required")),
    };
    if occurred_at > now + Duration::seconds(MAX_FUTURE_SECONDS) {
        return Err(problem(
            index,
            "occurredAt",
            "is more than 5 minutes in the future",
        ));
    }
    if occurred_at < oldest {
        return Err(problem(index, "occurredAt", "is older than the retention period"));
    }
    let severity = match fields.get("severity") {
        None | Some(Value::Null) => Severity::Info,
        Some(Value::String(text)) => Severity::parse(text)
            .ok_or_else(|| problem(index, "severity", "must be info, warning, error or critical"))?,
        Some(_) => return Err(problem(index, "severity", "must be a string")),
    };
    let summary = match fields.get("summary") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => {
            if has_control(text) {
                return Err(problem(index, "summary", "must not contain control characters"));
            }
            if text.chars().count() > MAX_SUMMARY_CHARS {
                return Err(problem(
                    index,
                    "summary",
                    format!("at most {MAX_SUMMARY_CHARS} characters"),
                ));
            }
            let trimmed = text.trim();
            (!trimmed.is_empty()).then(|| trimmed.to_owned())
        }
        Some(_) => return Err(problem(index, "summary", "must be a string")),
    };
    let data = match fields.get("data") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(value @ Value::Object(_)) => {
            if json_has_control(value) {
                return Err(problem(
                    index,
                    "data",
                    "must not contain NUL or control characters in keys",
                ));
            }
            let text = value.to_string();
            if text.len() > MAX_DATA_BYTES {
                return Err(problem(index, "data", "at most 16 KiB as JSON"));
            }
            text
        }
        Some(_) => return Err(problem(index, "data", "must be a JSON object")),
    };
    Ok(NewEvent {
        id: Uuid::now_v7(),
        kind,
        severity,
        summary,
        data,
        occurred_at,
    })
}
