//! What a report says: the audit actions each report type counts over its window, with their
//! labels, and the report's sections built from those counts and the figures as they stand.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::ReportType;
use crate::dashboard::{DashboardCounts, Scope};

pub(super) const SECURITY_ACTIONS: &[(&str, &str)] = &[
    ("auth.login_succeeded", "Sign-ins"),
    ("auth.login_failed", "Failed sign-ins"),
    ("auth.account_locked", "Lockouts"),
    ("auth.mfa_failed", "Failed second-factor checks"),
    ("auth.mfa_enrolled", "Second factors added"),
    ("auth.mfa_disabled", "Second factors removed"),
    ("admin.mfa_reset", "Second factors reset by operators"),
    ("auth.password_reset", "Passwords reset"),
    ("auth.password_changed", "Passwords changed"),
    ("auth.refresh_reuse_detected", "Refresh token reuse detected"),
    ("admin.access_denied", "Refused admin requests"),
    ("admin.ip_refused", "Admin requests from outside the IP allowlist"),
    ("admin.user_locked", "Accounts locked by operators"),
];

pub(super) const USER_ACTIONS: &[(&str, &str)] = &[
    ("auth.registered", "Self-registrations"),
    ("admin.user_created", "Accounts created by operators or imports"),
    (
        "user.created",
        "Accounts created on the command line or by identity providers",
    ),
    ("auth.login_succeeded", "Sign-ins"),
    ("auth.account_deleted", "Accounts deleted by their owners"),
    ("admin.user_deleted", "Accounts deleted by operators"),
];

pub(super) const FLEET_ACTIONS: &[(&str, &str)] = &[
    ("device.enrolled", "Devices enrolled"),
    ("device.registered", "Devices registered"),
    ("device.retired", "Devices retired"),
    ("device.wipe_requested", "Wipes requested"),
    ("device.command_acknowledged", "Commands acknowledged by devices"),
];

/// One section of a report: a heading and its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub title: String,
    pub rows: Vec<(String, u64)>,
}

/// A report's content: its figures, grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub report_type: ReportType,
    pub scope: Scope,
    pub window_from: DateTime<Utc>,
    pub window_to: DateTime<Utc>,
    pub sections: Vec<Section>,
}

fn counted(labels: &[(&str, &str)], counts: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    labels
        .iter()
        .map(|(action, label)| ((*label).to_owned(), counts.get(*action).copied().unwrap_or(0)))
        .collect()
}

fn keyed(map: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    map.iter().map(|(key, count)| (key.clone(), *count)).collect()
}

impl Report {
    /// The report of `report_type` from the audit actions counted over the window (by action)
    /// and the figures as they stand now.
    pub fn build(
        report_type: ReportType,
        scope: Scope,
        window: (DateTime<Utc>, DateTime<Utc>),
        actions: &BTreeMap<String, u64>,
        now: &DashboardCounts,
    ) -> Self {
        let section = |title: &str, rows: Vec<(String, u64)>| Section {
            title: title.to_owned(),
            rows,
        };
        let users = &now.users;
        let sections = match report_type {
            ReportType::SecuritySummary => vec![
                section("In the period", counted(SECURITY_ACTIONS, actions)),
                section(
                    "Now",
                    vec![
                        ("Accounts locked".to_owned(), users.locked),
                        ("Live sessions".to_owned(), now.live_sessions),
                    ],
                ),
            ],
            ReportType::UserActivity => vec![
                section("In the period", counted(USER_ACTIONS, actions)),
                section(
                    "Now",
                    vec![
                        ("Accounts".to_owned(), users.total),
                        ("Active in the last 24 hours".to_owned(), users.active_24h),
                        ("Active in the last 7 days".to_owned(), users.active_7d),
                        ("Active in the last 30 days".to_owned(), users.active_30d),
                        ("Accounts locked".to_owned(), users.locked),
                        ("Addresses not verified".to_owned(), users.unverified),
                        ("Live sessions".to_owned(), now.live_sessions),
                    ],
                ),
            ],
            ReportType::FleetCompliance => vec![
                section("In the period", counted(FLEET_ACTIONS, actions)),
                section(
                    "Now",
                    vec![
                        ("Devices".to_owned(), now.devices.total),
                        ("Non-compliant devices".to_owned(), now.devices.non_compliant),
                        (
                            "Pending unlock requests".to_owned(),
                            now.devices.pending_unlock_requests,
                        ),
                    ],
                ),
                section("Devices by status", keyed(&now.devices.by_status)),
                section("Devices by platform", keyed(&now.devices.by_platform)),
            ],
            ReportType::AuditDigest => {
                let mut rows: Vec<(String, u64)> = actions
                    .iter()
                    .filter(|(_, count)| **count > 0)
                    .map(|(action, count)| (action.clone(), *count))
                    .collect();
                rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let total = rows
                    .iter()
                    .map(|(_, count)| *count)
                    .fold(0u64, u64::saturating_add);
                vec![
                    section("In the period", vec![("Audit entries".to_owned(), total)]),
                    section("Entries by action", rows),
                ]
            }
        };
        Self {
            report_type,
            scope,
            window_from: window.0,
            window_to: window.1,
            sections,
        }
    }

    /// The report as CSV rows: `section,figure,value`, a header first.
    pub fn csv_rows(&self) -> Vec<[String; 3]> {
        let mut rows = vec![["section".to_owned(), "figure".to_owned(), "value".to_owned()]];
        for section in &self.sections {
            for (label, value) in &section.rows {
                rows.push([section.title.clone(), label.clone(), value.to_string()]);
            }
        }
        rows
    }
}
