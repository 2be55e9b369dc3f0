//! Commands (a wipe) a device takes at its next sync, and their acknowledgement.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::FleetRuleError;

/// How long a wipe waits for the device unless the admin says otherwise.
pub const DEFAULT_COMMAND_HOURS: i64 = 7 * 24;

/// A command's lifecycle: pending → delivered (handed out at a sync) → acknowledged by the
/// device, or expired when the device did not acknowledge it within its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    Pending,
    Delivered,
    Acknowledged,
    Expired,
}

impl CommandStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Acknowledged => "acknowledged",
            Self::Expired => "expired",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Acknowledged, Self::Expired]
            .into_iter()
            .find(|status| status.as_str() == value)
    }

    /// The status as of `now`: an open command past its lifetime is expired, whatever is stored.
    pub fn as_of(self, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        match self {
            Self::Pending | Self::Delivered if expires_at <= now => Self::Expired,
            other => other,
        }
    }
}

/// A command for a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCommand {
    pub id: Uuid,
    pub device_id: Uuid,
    pub organization_id: Option<Uuid>,
    /// `wipe`.
    pub command: String,
    pub status: CommandStatus,
    pub payload: Option<Value>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// What the device reported when acknowledging.
    pub result: Option<Value>,
}

/// Whether a device may acknowledge a command in `status` as of `now`.
pub fn may_acknowledge(command: &DeviceCommand, now: DateTime<Utc>) -> Result<(), FleetRuleError> {
    match command.status.as_of(command.expires_at, now) {
        CommandStatus::Pending | CommandStatus::Delivered => Ok(()),
        CommandStatus::Acknowledged => Err(FleetRuleError::Conflict("the command was already acknowledged")),
        CommandStatus::Expired => Err(FleetRuleError::Conflict("the command has expired")),
    }
}

/// A command's lifetime from the admin's `expiresInSeconds` (1 minute to 30 days).
pub fn command_lifetime(seconds: Option<i64>) -> Result<Duration, FleetRuleError> {
    match seconds {
        None => Ok(Duration::hours(DEFAULT_COMMAND_HOURS)),
        Some(seconds) if (60..=30 * 24 * 3600).contains(&seconds) => Ok(Duration::seconds(seconds)),
        Some(_) => Err(FleetRuleError::Invalid {
            field: "expiresInSeconds",
            message: "must be between 60 and 2592000",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_commands_expire_and_closed_ones_cannot_be_acknowledged() {
        let now = Utc::now();
        assert_eq!(CommandStatus::Pending.as_of(now, now), CommandStatus::Expired);
        assert_eq!(
            CommandStatus::Delivered.as_of(now + Duration::seconds(1), now),
            CommandStatus::Delivered
        );
        assert_eq!(
            CommandStatus::Acknowledged.as_of(now, now),
            CommandStatus::Acknowledged
        );
        let command = DeviceCommand {
            id: Uuid::nil(),
            device_id: Uuid::nil(),
            organization_id: None,
            command: "wipe".into(),
            status: CommandStatus::Delivered,
            payload: None,
            created_by: None,
            created_at: now,
            expires_at: now + Duration::minutes(1),
            delivered_at: Some(now),
            acknowledged_at: None,
            result: None,
        };
        assert_eq!(may_acknowledge(&command, now), Ok(()));
        assert!(may_acknowledge(&command, now + Duration::minutes(2)).is_err());
        assert!(command_lifetime(Some(10)).is_err());
        assert_eq!(command_lifetime(None), Ok(Duration::days(7)));
    }
}
