//! Device use cases: registration, who may see a device, linking, unlinking and transfers.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use serde_json::json;
use steward_domain::accounts::UserRecord;
use steward_domain::devices::{
    DeviceRecord, DeviceRegistration, DeviceRuleError, DeviceStoreError, DeviceTransfer, Registrant,
    TRANSFER_TTL_DAYS, TransferStatus,
};
use steward_domain::groups::GroupPermission;
use steward_domain::identity::EmailAddress;
use steward_domain::rbac::Permission;
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use crate::error::AppError;
use crate::steward::{Steward, Store};

/// How the caller may act on a `/users/{userId}` path: as that user, or as a system admin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserAccess {
    Themself,
    Admin,
}

/// How much of a device the caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceVisibility {
    /// Owner or system admin: everything, push token included.
    Full,
    /// A fellow group member (member or above): basic info.
    Basic,
}

/// The recipient of a transfer.
#[derive(Debug, Clone)]
pub enum TransferTarget {
    User(Uuid),
    Email(String),
}

/// A transfer's result: pending the recipient's acceptance, or done (by an admin).
#[derive(Debug, Clone)]
pub enum TransferOutcome {
    Pending(DeviceTransfer),
    Completed(DeviceRecord),
}

pub struct DeviceService<'a, S> {
    steward: &'a Steward<S>,
}

fn not_found() -> AppError {
    DeviceRuleError::NotFound.into()
}

impl<'a, S: Store> DeviceService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    async fn holds(&self, user: Uuid, permission: Permission) -> Result<bool, AppError> {
        let roles = self.steward.auth.system_roles(user).await?;
        Ok(self
            .steward
            .auth
            .catalog_for(&roles)
            .await?
            .allows(&roles, permission))
    }

    /// The caller acts for `user` only as themself or as a system admin holding `permission`;
    /// anyone else gets 404, so user IDs cannot be probed.
    pub async fn acting_for(
        &self,
        caller: Uuid,
        user: Uuid,
        permission: Permission,
    ) -> Result<UserAccess, AppError> {
        if caller == user {
            return Ok(UserAccess::Themself);
        }
        if self.holds(caller, permission).await? {
            return Ok(UserAccess::Admin);
        }
        Err(not_found())
    }

    async fn active_user(&self, id: Uuid) -> Result<UserRecord, AppError> {
        self.steward
            .store
            .find_user(id)
            .await?
            .filter(UserRecord::is_active)
            .ok_or_else(not_found)
    }

    /// A user's profile as `caller` may see it: everything for themself and admins, the public
    /// part for people sharing a group, 404 for everyone else.
    pub async fn user_for(&self, caller: Uuid, user: Uuid) -> Result<(UserRecord, bool), AppError> {
        let full = caller == user || self.holds(caller, Permission::UsersRead).await?;
        if !full
            && self
                .steward
                .store
                .shared_group_role(caller, user)
                .await?
                .is_none()
        {
            return Err(not_found());
        }
        Ok((self.active_user(user).await?, full))
    }

    /// Registers or updates a device; answers it, whether it was created, and the device token
    /// issued to the caller (a new device, its owner, or the device itself).
    pub async fn register(
        &self,
        registration: DeviceRegistration,
        caller: Option<Uuid>,
        acting_device: Option<Uuid>,
        origin: &RequestOrigin,
    ) -> Result<(DeviceRecord, bool, Option<String>), AppError> {
        let actor = match (caller, acting_device) {
            (Some(user), _) => Actor::user(user),
            (None, Some(device)) => Actor::device(device),
            (None, None) => Actor::system(),
        };
        let audit =
            AuditEntry::new(actor, AuditAction::known("device.registered"), "device").origin(origin.clone());
        let registrant = Registrant {
            user: caller,
            device: acting_device,
            legacy: self.steward.device_auth.legacy_auth(),
        };
        let (secret, token) = crate::fleet::new_device_token();
        // Two first registrations of one device can race; the loser's second try is an update.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .steward
                .store
                .register_device(&registration, registrant, &token, Utc::now(), &audit)
                .await
            {
                Err(DeviceStoreError::Rule(DeviceRuleError::Conflict(reason)))
                    if attempt < 2 && reason.contains("concurrently") =>
                {
                    continue;
                }
                other => {
                    let (device, created, issued) = other?;
                    if issued {
                        self.steward.device_auth.forget_device(device.id);
                    }
                    return Ok((device, created, issued.then_some(secret)));
                }
            }
        }
    }

    /// The device if `caller` may see it, and how much.
    pub async fn device_for(
        &self,
        caller: Uuid,
        id: Uuid,
    ) -> Result<(DeviceRecord, DeviceVisibility), AppError> {
        let device = self.steward.store.find_device(id).await?.ok_or_else(not_found)?;
        if device.owner_user_id == Some(caller) || self.holds(caller, Permission::DevicesRead).await? {
            return Ok((device, DeviceVisibility::Full));
        }
        if let Some(owner) = device.owner_user_id
            && let Some(role) = self.steward.store.shared_group_role(caller, owner).await?
            && role.allows(GroupPermission::ViewMemberDevices)
        {
            return Ok((device, DeviceVisibility::Basic));
        }
        Err(not_found())
    }

    /// Devices of each owner in `owners`.
    pub async fn owned_by(&self, owners: &[Uuid]) -> Result<HashMap<Uuid, Vec<DeviceRecord>>, AppError> {
        let mut by_owner: HashMap<Uuid, Vec<DeviceRecord>> = HashMap::new();
        for device in self.steward.store.devices_owned_by(owners).await? {
            if let Some(owner) = device.owner_user_id {
                by_owner.entry(owner).or_default().push(device);
            }
        }
        Ok(by_owner)
    }

    pub async fn devices_of(&self, user: Uuid) -> Result<Vec<DeviceRecord>, AppError> {
        Ok(self.steward.store.devices_owned_by(&[user]).await?)
    }

    fn audit(
        &self,
        actor: Uuid,
        access: UserAccess,
        action: &'static str,
        origin: &RequestOrigin,
    ) -> AuditEntry {
        let actor = match access {
            UserAccess::Themself => Actor::user(actor),
            UserAccess::Admin => Actor::admin(actor),
        };
        AuditEntry::new(actor, AuditAction::known(action), "device").origin(origin.clone())
    }

    /// Links an unowned device to `user` (idempotent for their own devices).
    pub async fn link(
        &self,
        caller: Uuid,
        access: UserAccess,
        user: Uuid,
        device: Uuid,
        origin: &RequestOrigin,
    ) -> Result<DeviceRecord, AppError> {
        let audit = self.audit(caller, access, "device.linked", origin);
        let linked = self
            .steward
            .store
            .set_device_owner(device, None, Some(user), &audit)
            .await?;
        let current = self
            .steward
            .store
            .find_device(device)
            .await?
            .ok_or_else(not_found)?;
        if linked || current.owner_user_id == Some(user) {
            Ok(current)
        } else {
            // Owned by someone else: indistinguishable from a device that does not exist.
            Err(not_found())
        }
    }

    pub async fn unlink(
        &self,
        caller: Uuid,
        access: UserAccess,
        user: Uuid,
        device: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let audit = self.audit(caller, access, "device.unlinked", origin);
        if self
            .steward
            .store
            .set_device_owner(device, Some(user), None, &audit)
            .await?
        {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    pub async fn transfer(
        &self,
        caller: Uuid,
        access: UserAccess,
        user: Uuid,
        device: Uuid,
        target: TransferTarget,
        origin: &RequestOrigin,
    ) -> Result<TransferOutcome, AppError> {
        let current = self
            .steward
            .store
            .find_device(device)
            .await?
            .ok_or_else(not_found)?;
        if current.owner_user_id != Some(user) {
            return Err(not_found());
        }
        // Unknown, inactive and ineligible recipients get one answer naming the field sent,
        // so the endpoint never tells whether an address has an account.
        let (field, recipient) = match target {
            TransferTarget::User(id) => ("toUserId", self.steward.store.find_user(id).await?),
            TransferTarget::Email(email) => {
                let email = EmailAddress::parse(&email).map_err(|_| {
                    AppError::from(DeviceRuleError::Invalid {
                        field: "toEmail",
                        message: "must be an email address",
                    })
                })?;
                ("toEmail", self.steward.store.find_user_by_email(&email).await?)
            }
        };
        let recipient = recipient
            .filter(UserRecord::is_active)
            .filter(|recipient| recipient.id != user)
            .ok_or_else(|| {
                AppError::from(DeviceRuleError::Invalid {
                    field,
                    message: "cannot receive this device",
                })
            })?;
        if access == UserAccess::Admin {
            let audit = self.audit(caller, access, "device.transferred", origin);
            if !self
                .steward
                .store
                .set_device_owner(device, Some(user), Some(recipient.id), &audit)
                .await?
            {
                return Err(not_found());
            }
            let moved = self
                .steward
                .store
                .find_device(device)
                .await?
                .ok_or_else(not_found)?;
            return Ok(TransferOutcome::Completed(moved));
        }
        let now = Utc::now();
        let transfer = DeviceTransfer {
            id: Uuid::now_v7(),
            device_id: device,
            from_user_id: user,
            to_user_id: recipient.id,
            status: TransferStatus::Pending,
            expires_at: now + Duration::days(TRANSFER_TTL_DAYS),
            decided_at: None,
            created_at: now,
        };
        let audit = self
            .audit(caller, access, "device.transfer_requested", origin)
            .resource_id(device)
            .change(
                None,
                Some(json!({"transferId": transfer.id, "toUserId": recipient.id})),
            );
        self.steward
            .store
            .create_transfer(&transfer, &audit)
            .await
            .map_err(|error| match error {
                steward_domain::RepositoryError::Conflict(_) => AppError::from(DeviceRuleError::Conflict(
                    "this device already has a pending transfer",
                )),
                other => other.into(),
            })?;
        Ok(TransferOutcome::Pending(transfer))
    }

    pub async fn transfers(&self, user: Uuid) -> Result<Vec<DeviceTransfer>, AppError> {
        Ok(self.steward.store.pending_transfers(user, Utc::now()).await?)
    }

    /// `caller` decides, as `user`, a transfer to (accept, decline) or from (cancel) them.
    /// Decisions are personal: an admin transfers directly instead, so anyone but the user
    /// gets 404.
    pub async fn decide(
        &self,
        caller: Uuid,
        user: Uuid,
        transfer: Uuid,
        decision: TransferStatus,
        origin: &RequestOrigin,
    ) -> Result<DeviceTransfer, AppError> {
        if caller != user {
            return Err(not_found());
        }
        let action = match decision {
            TransferStatus::Accepted => "device.transfer_accepted",
            TransferStatus::Declined => "device.transfer_declined",
            _ => "device.transfer_cancelled",
        };
        let audit =
            AuditEntry::new(Actor::user(user), AuditAction::known(action), "device").origin(origin.clone());
        Ok(self
            .steward
            .store
            .decide_transfer(transfer, user, decision, Utc::now(), &audit)
            .await?)
    }
}
