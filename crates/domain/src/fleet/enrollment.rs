//! Enrollment: the tokens a device redeems to join an organization's fleet, what it sends,
//! and the device token it receives.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::FleetRuleError;
use crate::devices::DeviceRegistration;
use crate::rules::{optional_line, optional_text};

/// Shown before an enrollment token's secret, so it is recognisable in logs and QR scans.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "stw_enr_";
/// Shown before a device token's secret.
pub const DEVICE_TOKEN_PREFIX: &str = "stw_dev_";
/// How long a device token lives (PRODUCT.md: 90 days); a refresh starts a new 90 days.
pub const DEVICE_TOKEN_DAYS: i64 = 90;
/// The longest an enrollment token may live.
pub const ENROLLMENT_TOKEN_MAX_DAYS: i64 = 365;

/// An enrollment token as stored (its secret is only ever hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: Option<String>,
    /// The first characters of the secret, for recognising it.
    pub prefix: String,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub max_uses: Option<i32>,
    pub use_count: i32,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub note: Option<String>,
    /// Free-form data handed to each device that enrolls with the token.
    pub additional_data: Option<Value>,
}

/// Why a device cannot enroll with a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentRefusal {
    #[error("this enrollment token is not valid")]
    Unknown,
    #[error("this enrollment token was revoked")]
    Revoked,
    #[error("this enrollment token has expired")]
    Expired,
    #[error("this enrollment token has no uses left")]
    UsedUp,
}

impl EnrollmentRefusal {
    /// The machine-readable reason in the error's details.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::UsedUp => "used_up",
        }
    }
}

impl EnrollmentToken {
    /// Why the token cannot enroll a device now, if it cannot.
    pub fn refusal(&self, now: DateTime<Utc>) -> Option<EnrollmentRefusal> {
        if self.revoked_at.is_some() {
            Some(EnrollmentRefusal::Revoked)
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some(EnrollmentRefusal::Expired)
        } else if self.max_uses.is_some_and(|max| self.use_count >= max) {
            Some(EnrollmentRefusal::UsedUp)
        } else {
            None
        }
    }

    /// `active`, `revoked`, `expired` or `used_up`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        self.refusal(now).map_or("active", EnrollmentRefusal::reason)
    }

    pub fn uses_left(&self) -> Option<i32> {
        self.max_uses.map(|max| (max - self.use_count).max(0))
    }
}

/// What an admin asks for when creating an enrollment token, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentTokenSpec {
    pub name: Option<String>,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub max_uses: Option<i32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub note: Option<String>,
    pub additional_data: Option<Value>,
}

impl EnrollmentTokenSpec {
    /// `one_time` is a shorthand for one use; it contradicts any other `max_uses`.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        name: Option<&str>,
        policy_id: Option<Uuid>,
        group_id: Option<Uuid>,
        max_uses: Option<i64>,
        one_time: bool,
        expires_at: Option<DateTime<Utc>>,
        note: Option<&str>,
        additional_data: Option<Value>,
        now: DateTime<Utc>,
    ) -> Result<Self, FleetRuleError> {
        let max_uses = match (one_time, max_uses) {
            (true, Some(uses)) if uses != 1 => {
                return Err(FleetRuleError::Invalid {
                    field: "maxUses",
                    message: "a one-time token has exactly one use",
                });
            }
            (true, _) => Some(1),
            (false, Some(uses)) => Some(
                i32::try_from(uses)
                    .ok()
                    .filter(|uses| (1..=1_000_000).contains(uses))
                    .ok_or(FleetRuleError::Invalid {
                        field: "maxUses",
                        message: "must be between 1 and 1000000",
                    })?,
            ),
            (false, None) => None,
        };
        if let Some(at) = expires_at {
            if at <= now {
                return Err(FleetRuleError::Invalid {
                    field: "expiresAt",
                    message: "must be in the future",
                });
            }
            if at > now + Duration::days(ENROLLMENT_TOKEN_MAX_DAYS) {
                return Err(FleetRuleError::Invalid {
                    field: "expiresAt",
                    message: "must be within 365 days",
                });
            }
        }
        if let Some(data) = &additional_data {
            if !data.is_object() {
                return Err(FleetRuleError::Invalid {
                    field: "additionalData",
                    message: "must be a JSON object",
                });
            }
            if data.to_string().len() > 8 * 1024 {
                return Err(FleetRuleError::Invalid {
                    field: "additionalData",
                    message: "must be at most 8 KiB of JSON",
                });
            }
        }
        Ok(Self {
            name: optional_line(name, "name", 100, "must be at most 100 characters")?,
            policy_id,
            group_id,
            max_uses,
            expires_at,
            note: optional_text(note, "note", 1000, "must be at most 1000 characters")?,
            additional_data,
        })
    }
}

/// A device's hardware facts, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hardware {
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
}

impl Hardware {
    pub fn parse(
        serial_number: Option<&str>,
        manufacturer: Option<&str>,
        model: Option<&str>,
    ) -> Result<Self, FleetRuleError> {
        Ok(Self {
            serial_number: optional_line(
                serial_number,
                "serialNumber",
                128,
                "must be at most 128 characters",
            )?,
            manufacturer: optional_line(manufacturer, "manufacturer", 64, "must be at most 64 characters")?,
            model: optional_line(model, "model", 64, "must be at most 64 characters")?,
        })
    }
}

/// What a device sends to enroll, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    pub device: DeviceRegistration,
    pub hardware: Hardware,
}

/// A device token to store (its secret is only ever hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeviceToken {
    pub id: Uuid,
    pub hash: String,
    pub prefix: String,
    pub expires_at: DateTime<Utc>,
}

/// A device token found by its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTokenGrant {
    pub token_id: Uuid,
    pub device_id: Uuid,
    pub expires_at: DateTime<Utc>,
}

/// What a successful enrollment produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledDevice {
    pub device_id: Uuid,
    pub organization_id: Uuid,
    /// Whether the device existed before (adopted) or was created.
    pub adopted: bool,
    pub additional_data: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(now: DateTime<Utc>) -> EnrollmentToken {
        EnrollmentToken {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            name: None,
            prefix: "stw_enr_abcd".into(),
            policy_id: None,
            group_id: None,
            max_uses: Some(2),
            use_count: 0,
            expires_at: Some(now + Duration::hours(1)),
            revoked_at: None,
            created_by: None,
            created_at: now,
            note: None,
            additional_data: None,
        }
    }

    #[test]
    fn a_token_is_refused_when_revoked_expired_or_used_up_in_that_order() {
        let now = Utc::now();
        let mut t = token(now);
        assert_eq!(t.refusal(now), None);
        assert_eq!(t.uses_left(), Some(2));
        t.use_count = 2;
        assert_eq!(t.refusal(now), Some(EnrollmentRefusal::UsedUp));
        t.expires_at = Some(now);
        assert_eq!(t.refusal(now), Some(EnrollmentRefusal::Expired));
        t.revoked_at = Some(now);
        assert_eq!(t.refusal(now), Some(EnrollmentRefusal::Revoked));
        assert_eq!(t.state(now), "revoked");
    }

    #[test]
    fn token_specs_are_validated() {
        let now = Utc::now();
        let parse =
            |uses: Option<i64>, one_time: bool, expires: Option<DateTime<Utc>>, data: Option<Value>| {
                EnrollmentTokenSpec::parse(None, None, None, uses, one_time, expires, None, data, now)
            };
        assert_eq!(parse(None, true, None, None).map(|s| s.max_uses), Ok(Some(1)));
        assert!(parse(Some(5), true, None, None).is_err());
        assert!(parse(Some(0), false, None, None).is_err());
        assert!(parse(None, false, Some(now - Duration::seconds(1)), None).is_err());
        assert!(parse(None, false, Some(now + Duration::days(400)), None).is_err());
        assert!(parse(None, false, None, Some(Value::from(3))).is_err());
        assert!(
            parse(
                Some(10),
                false,
                Some(now + Duration::days(1)),
                Some(serde_json::json!({"a": 1}))
            )
            .is_ok()
        );
    }
}
