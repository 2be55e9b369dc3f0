//! An organization's fleet as a file (the fleet export job): CSV with a header row (cells a
//! spreadsheet would run as formulas prefixed with `'`) or a JSON array.

use super::*;
use crate::audit::csv_cell;

/// The columns of a fleet export in CSV.
pub const FLEET_CSV_HEADER: [&str; 18] = [
    "id",
    "deviceId",
    "displayName",
    "platform",
    "osVersion",
    "appVersion",
    "serialNumber",
    "manufacturer",
    "model",
    "status",
    "enrollmentStatus",
    "policyId",
    "groupId",
    "assignedUserId",
    "lastSeenAt",
    "enrolledAt",
    "settingsVersion",
    "appliedVersion",
];

/// One exported device.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedDevice {
    pub id: Uuid,
    pub device_id: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub status: &'static str,
    pub enrollment_status: String,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub assigned_user_id: Option<Uuid>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub settings_version: i64,
    pub applied_version: Option<i64>,
}

impl From<FleetDevice> for ExportedDevice {
    fn from(device: FleetDevice) -> Self {
        Self {
            id: device.id,
            device_id: device.identifier,
            display_name: device.display_name,
            platform: device.platform,
            os_version: device.os_version,
            app_version: device.app_version,
            serial_number: device.serial_number,
            manufacturer: device.manufacturer,
            model: device.model,
            status: device.status.as_str(),
            enrollment_status: device.enrollment_status,
            policy_id: device.policy_id,
            group_id: device.group_id,
            assigned_user_id: device.assigned_user_id,
            last_seen_at: device.last_seen_at,
            enrolled_at: device.enrolled_at,
            settings_version: device.settings_version,
            applied_version: device.applied_version,
        }
    }
}

/// Devices as CSV lines (with the header row first when `header`).
pub fn fleet_csv_rows(devices: &[ExportedDevice], header: bool) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    if header {
        writer.write_record(FLEET_CSV_HEADER)?;
    }
    let id = |value: Option<Uuid>| value.map(|v| v.to_string()).unwrap_or_default();
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    let at = |value: Option<DateTime<Utc>>| value.map(|v| v.to_rfc3339()).unwrap_or_default();
    for device in devices {
        writer.write_record(
            [
                device.id.to_string(),
                device.device_id.clone(),
                device.display_name.clone(),
                text(&device.platform),
                text(&device.os_version),
                text(&device.app_version),
                text(&device.serial_number),
                text(&device.manufacturer),
                text(&device.model),
                device.status.to_owned(),
                device.enrollment_status.clone(),
                id(device.policy_id),
                id(device.group_id),
                id(device.assigned_user_id),
                at(device.last_seen_at),
                at(device.enrolled_at),
                device.settings_version.to_string(),
                device.applied_version.map(|v| v.to_string()).unwrap_or_default(),
            ]
            .map(csv_cell),
        )?;
    }
    writer
        .into_inner()
        .map_err(|error| csv::Error::from(error.into_error()))
}

/// Devices as the inside of a JSON array (a comma before each but the very first).
pub fn fleet_json_rows(devices: &[ExportedDevice], first: bool) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        if !(first && index == 0) {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, device)?;
    }
    Ok(out)
}
