//! Devices and who owns them: registration by the device app (legacy, no user needed),
//! linking to a user, unlinking and transfers that the recipient accepts.

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::rules::optional_line;
pub use crate::rules::{RuleError as DeviceRuleError, RuleStoreError as DeviceStoreError};
use crate::{AuditEntry, RepositoryError};

/// A device as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub id: Uuid,
    /// The identifier the app chose (`deviceId` in the legacy API).
    pub identifier: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub push_token: Option<String>,
    pub owner_user_id: Option<Uuid>,
    /// The legacy free-form group string older apps send; kept, not interpreted.
    pub legacy_group_id: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a device app sends to register, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRegistration {
    pub identifier: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub os_version: Option<String>,
    pub app_version: Option<String>,
    pub push_token: Option<String>,
    pub legacy_group_id: Option<String>,
}

impl DeviceRegistration {
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        identifier: &str,
        display_name: &str,
        platform: Option<&str>,
        os_version: Option<&str>,
        app_version: Option<&str>,
        push_token: Option<&str>,
        legacy_group_id: Option<&str>,
    ) -> Result<Self, DeviceRuleError> {
        let identifier = optional_line(
            Some(identifier),
            "deviceId",
            128,
            "must be 1 to 128 printable characters",
        )?
        .ok_or(DeviceRuleError::Invalid {
            field: "deviceId",
            message: "must be 1 to 128 printable characters",
        })?;
        let display_name = optional_line(
            Some(display_name),
            "displayName",
            100,
            "must be 1 to 100 printable characters",
        )?
        .ok_or(DeviceRuleError::Invalid {
            field: "displayName",
            message: "must be 1 to 100 printable characters",
        })?;
        Ok(Self {
            identifier,
            display_name,
            platform: optional_line(platform, "platform", 32, "must be at most 32 characters")?
                .map(|p| p.to_ascii_lowercase()),
            os_version: optional_line(os_version, "osVersion", 64, "must be at most 64 characters")?,
            app_version: optional_line(app_version, "appVersion", 64, "must be at most 64 characters")?,
            push_token: optional_line(push_token, "pushToken", 4096, "must be at most 4096 characters")?,
            legacy_group_id: optional_line(
                legacy_group_id,
                "groupId",
                128,
                "must be at most 128 characters",
            )?,
        })
    }
}

/// Who owns a device after `caller` (a signed-in user, or only the app's API key) registers it
/// again. Nobody takes over a device another user owns; the app alone keeps the owner.
pub fn owner_after_registration(
    current_owner: Option<Uuid>,
    caller: Option<Uuid>,
) -> Result<Option<Uuid>, DeviceRuleError> {
    match (current_owner, caller) {
        (Some(owner), Some(user)) if owner != user => Err(DeviceRuleError::Conflict(
            "this device belongs to another account; its owner must unlink or transfer it",
        )),
        (Some(owner), _) => Ok(Some(owner)),
        (None, user) => Ok(user),
    }
}

/// Who registers a device: the signed-in user (if any) and, when the app authenticates as the
/// device with its device token, which device that token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registrant {
    pub user: Option<Uuid>,
    pub device: Option<Uuid>,
    /// `STEWARD_LEGACY_DEVICE_AUTH`: the app's key alone may update a registered device.
    pub legacy: bool,
}

/// What a registration needs to know of the device already registered under the identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisteredDevice {
    pub id: Uuid,
    pub owner: Option<Uuid>,
    /// Enrolled in or imported by an organization.
    pub managed: bool,
}

/// What a registration does to an existing device: its owner afterwards, and whether the
/// caller receives a new device token (the device's secret: it then acts as the device).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistrationOutcome {
    pub owner: Option<Uuid>,
    pub issue_token: bool,
}

/// Decides a registration. A new device gets its first device token. A registered device is
/// updated — and given a fresh token — only by its owner, by a user claiming a device nobody
/// owns, or by the device itself (its token); the app's public key alone may no longer update
/// it, unless legacy device authentication is on (then it gets no token).
pub fn decide_registration(
    existing: Option<RegisteredDevice>,
    registrant: Registrant,
) -> Result<RegistrationOutcome, DeviceRuleError> {
    let Some(RegisteredDevice {
        id: device,
        owner: current_owner,
        managed,
    }) = existing
    else {
        return Ok(RegistrationOutcome {
            owner: registrant.user,
            issue_token: true,
        });
    };
    let is_the_device = registrant.device == Some(device);
    // An organization's device (enrolled or imported) may have no owner, but it is not free
    // to claim: only the device itself, or the owner it already has (a personal device the
    // organization adopted), registers it again.
    let by_its_owner = current_owner.is_some() && current_owner == registrant.user;
    if managed && !is_the_device && !by_its_owner {
        return Err(DeviceRuleError::Conflict(
            "this device is managed by an organization: only the device itself (its device token) or its owner registers it again",
        ));
    }
    let owner = owner_after_registration(current_owner, registrant.user)?;
    let by_owner = registrant.user.is_some() && owner == registrant.user;
    if is_the_device || by_owner {
        return Ok(RegistrationOutcome {
            owner,
            issue_token: true,
        });
    }
    if registrant.legacy {
        return Ok(RegistrationOutcome {
            owner,
            issue_token: false,
        });
    }
    Err(DeviceRuleError::Conflict(
        "this device is already registered: its owner (signed in) or the device itself (its device token) registers it again",
    ))
}

/// A transfer of a device from its owner to another user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTransfer {
    pub id: Uuid,
    pub device_id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Uuid,
    pub status: TransferStatus,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStatus {
    Pending,
    Accepted,
    Declined,
    Cancelled,
}

impl TransferStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Declined, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == value)
    }
}

/// How long a recipient has to accept a transfer.
pub const TRANSFER_TTL_DAYS: i64 = 7;

pub trait DeviceStore {
    /// Creates or updates the device with `registration.identifier`, applying
    /// [`decide_registration`] to the stored device inside the transaction; when it says so,
    /// revokes the device's tokens and stores `token`. Answers the device, whether it was
    /// created and whether `token` was issued.
    fn register_device(
        &self,
        registration: &DeviceRegistration,
        registrant: Registrant,
        token: &crate::fleet::NewDeviceToken,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(DeviceRecord, bool, bool), DeviceStoreError>> + Send;

    fn find_device(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<DeviceRecord>, RepositoryError>> + Send;

    /// Steward's id of the device the app registered as `identifier`.
    fn device_id_for_identifier(
        &self,
        identifier: &str,
    ) -> impl Future<Output = Result<Option<Uuid>, RepositoryError>> + Send;

    fn devices_owned_by(
        &self,
        owners: &[Uuid],
    ) -> impl Future<Output = Result<Vec<DeviceRecord>, RepositoryError>> + Send;

    /// Sets the owner to `new_owner` only if it is still `expected_owner`; `false` otherwise.
    fn set_device_owner(
        &self,
        device: Uuid,
        expected_owner: Option<Uuid>,
        new_owner: Option<Uuid>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, DeviceStoreError>> + Send;

    /// `Conflict` when the device already has a pending transfer.
    fn create_transfer(
        &self,
        transfer: &DeviceTransfer,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Pending, unexpired transfers to or from `user`.
    fn pending_transfers(
        &self,
        user: Uuid,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<DeviceTransfer>, RepositoryError>> + Send;

    /// The recipient accepts (ownership moves if the sender still owns the device) or declines;
    /// the sender cancels. Exactly one decision wins a race.
    fn decide_transfer(
        &self,
        transfer: Uuid,
        user: Uuid,
        decision: TransferStatus,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<DeviceTransfer, DeviceStoreError>> + Send;
}

/// An application API key (`X-API-Key`) for the legacy device API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_ip: Option<String>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// After a rotation: until when the previous secret still works.
    pub previous_valid_until: Option<DateTime<Utc>>,
}

/// A key found by its secret, and until when that secret works (`None`: until revoked; the
/// previous secret of a rotated key: until the overlap ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyUse {
    pub key: ApiKeyRecord,
    pub valid_until: Option<DateTime<Utc>>,
}

/// The longest overlap of a rotated key's old and new secrets: 30 days.
pub const MAX_ROTATION_OVERLAP_SECONDS: i64 = 30 * 24 * 3600;
/// The overlap when a rotation names none: 24 hours.
pub const DEFAULT_ROTATION_OVERLAP_SECONDS: i64 = 24 * 3600;
/// Days of request counts an API key's listing shows.
pub const USAGE_DAYS: i64 = 30;

pub trait ApiKeyStore {
    fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        secret_hash: String,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    fn api_keys(&self) -> impl Future<Output = Result<Vec<ApiKeyRecord>, RepositoryError>> + Send;

    fn revoke_api_key(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;

    /// The live key with this hash (its current secret, or its previous one while the
    /// rotation overlap lasts), recording its use.
    fn use_api_key(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
        ip: Option<String>,
    ) -> impl Future<Output = Result<Option<ApiKeyUse>, RepositoryError>> + Send;

    /// Gives a live key a new secret; the current one keeps working until
    /// `previous_valid_until`, a secret from an earlier rotation stops now. `None` when there
    /// is no such live key; `VersionConflict` when its current prefix is no longer
    /// `expected_prefix` (another rotation came first).
    fn rotate_api_key(
        &self,
        id: Uuid,
        expected_prefix: &str,
        secret_hash: String,
        prefix: String,
        previous_valid_until: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Option<ApiKeyRecord>, RepositoryError>> + Send;

    /// Adds request counts: key, day (`YYYY-MM-DD`, UTC) and how many.
    fn count_api_key_requests(
        &self,
        counts: &[(Uuid, String, u64)],
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Request counts of every key from day `since` (`YYYY-MM-DD`) on: key, day, count.
    fn api_key_requests(
        &self,
        since: &str,
    ) -> impl Future<Output = Result<Vec<(Uuid, String, u64)>, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_registration_never_changes_hands() {
        let (ann, bob) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(owner_after_registration(None, None), Ok(None));
        assert_eq!(owner_after_registration(None, Some(ann)), Ok(Some(ann)));
        assert_eq!(owner_after_registration(Some(ann), None), Ok(Some(ann)));
        assert_eq!(owner_after_registration(Some(ann), Some(ann)), Ok(Some(ann)));
        assert!(owner_after_registration(Some(ann), Some(bob)).is_err());
    }

    #[test]
    fn registered_devices_are_registered_again_by_their_owner_or_themselves() {
        let (ann, bob, phone) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let who = |user, device, legacy| Registrant { user, device, legacy };
        let fresh = decide_registration(None, who(None, None, false)).unwrap();
        assert_eq!((fresh.owner, fresh.issue_token), (None, true));
        let device = |owner, managed| {
            Some(RegisteredDevice {
                id: phone,
                owner,
                managed,
            })
        };
        let owned = device(Some(ann), false);
        assert!(
            decide_registration(owned, who(Some(ann), None, false))
                .unwrap()
                .issue_token
        );
        assert!(
            decide_registration(owned, who(None, Some(phone), false))
                .unwrap()
                .issue_token
        );
        assert!(
            decide_registration(owned, who(None, None, false)).is_err(),
            "the app's key alone"
        );
        assert!(decide_registration(owned, who(Some(bob), None, false)).is_err());
        assert!(decide_registration(owned, who(None, Some(Uuid::now_v7()), false)).is_err());
        assert_eq!(
            decide_registration(owned, who(None, None, true)),
            Ok(RegistrationOutcome {
                owner: Some(ann),
                issue_token: false
            }),
            "legacy: the key alone updates, without a token"
        );
        let unowned = device(None, false);
        assert_eq!(
            decide_registration(unowned, who(Some(bob), None, false)),
            Ok(RegistrationOutcome {
                owner: Some(bob),
                issue_token: true
            }),
            "a user claims a device nobody owns"
        );
        assert!(decide_registration(unowned, who(None, None, false)).is_err());
        let fleet = device(None, true);
        assert!(
            decide_registration(fleet, who(Some(bob), None, false)).is_err(),
            "nobody claims an organization's device"
        );
        assert!(
            decide_registration(fleet, who(Some(bob), None, true)).is_err(),
            "not even with legacy auth"
        );
        assert!(
            decide_registration(fleet, who(None, Some(phone), false))
                .unwrap()
                .issue_token
        );
        let adopted = device(Some(ann), true);
        assert!(
            decide_registration(adopted, who(Some(ann), None, false))
                .unwrap()
                .issue_token,
            "its owner"
        );
        assert!(decide_registration(adopted, who(Some(bob), None, false)).is_err());
    }

    #[test]
    fn registrations_are_validated_and_trimmed() {
        let ok = DeviceRegistration::parse(
            " pixel-7 ",
            " Ann's phone ",
            Some("Android"),
            None,
            Some(""),
            None,
            Some("family-1"),
        )
        .unwrap();
        assert_eq!(ok.identifier, "pixel-7");
        assert_eq!(ok.display_name, "Ann's phone");
        assert_eq!(ok.platform.as_deref(), Some("android"));
        assert_eq!(ok.app_version, None);
        assert_eq!(ok.legacy_group_id.as_deref(), Some("family-1"));
        assert!(DeviceRegistration::parse("", "x", None, None, None, None, None).is_err());
        assert!(DeviceRegistration::parse("a", "  ", None, None, None, None, None).is_err());
        let long = "x".repeat(129);
        assert!(DeviceRegistration::parse(&long, "x", None, None, None, None, None).is_err());
    }
}
