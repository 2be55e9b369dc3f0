//! Fleet devices: the status a fleet admin gives them (suspend, resume, retire), fleet
//! listings and groups.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::FleetRuleError;
use crate::rules::{optional_line, optional_text};

/// A managed device's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DeviceStatus {
    Active,
    /// Its device token and API calls are refused with `DEVICE_SUSPENDED` until resumed.
    Suspended,
}

impl DeviceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Active, Self::Suspended]
            .into_iter()
            .find(|status| status.as_str() == value)
    }
}

/// The status a suspend (`true`) or resume (`false`) leads to from `current`.
pub fn next_status(current: DeviceStatus, suspend: bool) -> Result<DeviceStatus, FleetRuleError> {
    match (current, suspend) {
        (DeviceStatus::Active, true) => Ok(DeviceStatus::Suspended),
        (DeviceStatus::Suspended, false) => Ok(DeviceStatus::Active),
        (DeviceStatus::Suspended, true) => Err(FleetRuleError::Conflict("the device is already suspended")),
        (DeviceStatus::Active, false) => Err(FleetRuleError::Conflict("the device is not suspended")),
    }
}

/// The order of a fleet list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum FleetSort {
    Name,
    LastSeen,
    EnrolledAt,
    Status,
    Platform,
}

impl FleetSort {
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "name" => Self::Name,
            "lastSeenAt" => Self::LastSeen,
            "enrolledAt" => Self::EnrolledAt,
            "status" => Self::Status,
            "platform" => Self::Platform,
            _ => return None,
        })
    }
}

/// Filters, order and page of a fleet list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FleetQuery {
    pub status: Option<DeviceStatus>,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub platform: Option<String>,
    pub assigned_user_id: Option<Uuid>,
    pub last_seen_before: Option<DateTime<Utc>>,
    pub last_seen_after: Option<DateTime<Utc>>,
    /// Case-insensitive substring of the name, serial number or identifier.
    pub search: Option<String>,
    pub sort: FleetSort,
    pub descending: bool,
    pub offset: u64,
    pub limit: u64,
}

/// A managed device as a fleet list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetDevice {
    pub id: Uuid,
    pub identifier: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub status: DeviceStatus,
    pub enrollment_status: String,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub assigned_user_id: Option<Uuid>,
    pub owner_user_id: Option<Uuid>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub enrolled_at: Option<DateTime<Utc>>,
    pub settings_version: i64,
    pub applied_version: Option<i64>,
}

/// An assignment: each `Some` replaces that field (`Some(None)` clears it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub policy_id: Option<Option<Uuid>>,
    pub group_id: Option<Option<Uuid>>,
    pub assigned_user_id: Option<Option<Uuid>>,
}

impl Assignment {
    pub fn is_empty(&self) -> bool {
        self.policy_id.is_none() && self.group_id.is_none() && self.assigned_user_id.is_none()
    }
}

/// A group of an organization's fleet (devices are placed in it; it may carry a policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetGroup {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub policy_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl FleetGroup {
    pub fn parse_name(name: &str) -> Result<String, FleetRuleError> {
        optional_line(Some(name), "name", 100, "must be 1 to 100 characters")?.ok_or(
            FleetRuleError::Invalid {
                field: "name",
                message: "must be 1 to 100 characters",
            },
        )
    }

    pub fn parse_description(description: Option<&str>) -> Result<Option<String>, FleetRuleError> {
        optional_text(
            description,
            "description",
            1000,
            "must be at most 1000 characters",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspend_and_resume_only_change_something() {
        assert_eq!(
            next_status(DeviceStatus::Active, true),
            Ok(DeviceStatus::Suspended)
        );
        assert_eq!(
            next_status(DeviceStatus::Suspended, false),
            Ok(DeviceStatus::Active)
        );
        assert!(next_status(DeviceStatus::Suspended, true).is_err());
        assert!(next_status(DeviceStatus::Active, false).is_err());
    }
}
