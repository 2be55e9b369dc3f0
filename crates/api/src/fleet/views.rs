//! What the fleet endpoints answer, as the spec describes it: the application's results
//! (`steward_app::fleet`) converted field by field.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use steward_app::fleet as app;
use steward_domain::settings::SettingDiff;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::settings::DeviceSettingsView;

/// What a device receives when it enrolls.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentOutcome {
    pub device_id: Uuid,
    pub organization_id: Uuid,
    /// Send as `Authorization: Bearer …` on the device API. Shown once.
    pub device_token: String,
    pub device_token_expires_at: DateTime<Utc>,
    /// Whether an existing device was adopted (rather than created).
    pub adopted: bool,
    pub settings: DeviceSettingsView,
    /// The enrollment token's free-form data.
    #[schema(value_type = Option<serde_json::Value>)]
    pub additional_data: Option<Value>,
}

/// A new device token.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceTokenView {
    pub device_id: Uuid,
    pub device_token: String,
    pub expires_at: DateTime<Utc>,
}

/// One device's part of a policy dry run.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDiff {
    pub device_id: Uuid,
    #[schema(value_type = Vec<Object>)]
    pub changes: Vec<SettingDiff>,
}

/// What applying or unapplying a policy did (or, in a dry run, would do).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyApplication {
    pub dry_run: bool,
    /// Devices whose settings version was bumped (empty in a dry run).
    pub devices_touched: Vec<Uuid>,
    /// Dry run only: per device, the effective settings that would change.
    pub diffs: Vec<DeviceDiff>,
}

/// One problem of an import.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

/// What an import did, or in a dry run would do, and every problem by line.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub dry_run: bool,
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
    pub errors: Vec<ImportError>,
}

impl From<app::EnrollmentOutcome> for EnrollmentOutcome {
    fn from(outcome: app::EnrollmentOutcome) -> Self {
        Self {
            device_id: outcome.device_id,
            organization_id: outcome.organization_id,
            device_token: outcome.device_token,
            device_token_expires_at: outcome.device_token_expires_at,
            adopted: outcome.adopted,
            settings: outcome.settings.into(),
            additional_data: outcome.additional_data,
        }
    }
}

impl From<app::DeviceTokenView> for DeviceTokenView {
    fn from(token: app::DeviceTokenView) -> Self {
        Self {
            device_id: token.device_id,
            device_token: token.device_token,
            expires_at: token.expires_at,
        }
    }
}

impl From<app::PolicyApplication> for PolicyApplication {
    fn from(application: app::PolicyApplication) -> Self {
        Self {
            dry_run: application.dry_run,
            devices_touched: application.devices_touched,
            diffs: application
                .diffs
                .into_iter()
                .map(|diff| DeviceDiff {
                    device_id: diff.device_id,
                    changes: diff.changes,
                })
                .collect(),
        }
    }
}

impl From<app::ImportReport> for ImportReport {
    fn from(report: app::ImportReport) -> Self {
        Self {
            dry_run: report.dry_run,
            rows: report.rows,
            created: report.created,
            updated: report.updated,
            skipped: report.skipped,
            errors: report
                .errors
                .into_iter()
                .map(|error| ImportError {
                    line: error.line,
                    field: error.field,
                    message: error.message,
                })
                .collect(),
        }
    }
}
