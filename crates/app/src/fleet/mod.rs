//! Organization fleets: enrollment (tokens, QR codes, device tokens), fleet devices and
//! groups, commands, policy application and bulk device import — one module each, all methods
//! of [`FleetService`]. Rules are the domain's (`steward_domain::fleet`, resolution for dry
//! runs); the service gathers inputs, asks, stores and forgets what the caches remembered of
//! the devices it changed.

mod commands;
mod device_import;
mod devices;
mod enrollment;
pub mod export;
pub mod import;
mod policy_application;
pub mod qr;

pub(crate) use device_import::refused_import;
pub use device_import::{ImportError, ImportReport};

pub use enrollment::{DeviceTokenView, EnrollmentOutcome};
pub use policy_application::{DeviceDiff, PolicyApplication};

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use steward_auth::{Secret, hash_token};
use steward_domain::fleet::{
    Assignment, CommandStatus, DEVICE_TOKEN_DAYS, DEVICE_TOKEN_PREFIX, DeviceCommand, DeviceImport,
    DeviceStatus, ENROLLMENT_TOKEN_PREFIX, Enrollment, EnrollmentToken, EnrollmentTokenSpec, FleetDevice,
    FleetGroup, FleetQuery, ImportCounts, ImportProblem, NewDeviceToken, OnDuplicate, PolicyTargets,
    ResolvedDeviceImport, command_lifetime, duplicate_rows, parse_device_row,
};
use steward_domain::policies::PolicyRecord;
use steward_domain::settings::store::AppliedPolicy;
use steward_domain::settings::{LayerKind, SettingDiff, SettingsActor};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError, RequestOrigin};
use uuid::Uuid;

use crate::error::{AppError, ErrorKind, FieldError};
use crate::settings::{DeviceSettingsView, SettingsAccess, SettingsCallerKind, SettingsService};
use crate::steward::{Steward, Store};
use import::ImportRows;
use qr::{EnrollmentPayload, QrFormat};

pub struct FleetService<'a, S> {
    steward: &'a Steward<S>,
}

pub(crate) fn admin_audit(
    user: Uuid,
    action: &'static str,
    resource: &str,
    organization: Uuid,
    origin: &RequestOrigin,
) -> AuditEntry {
    AuditEntry::new(Actor::admin(user), AuditAction::known(action), resource)
        .organization(organization)
        .origin(origin.clone())
}

pub fn new_device_token() -> (String, NewDeviceToken) {
    let secret = Secret::generate(DEVICE_TOKEN_PREFIX);
    let token = NewDeviceToken {
        id: Uuid::now_v7(),
        hash: secret.hash,
        prefix: secret.prefix,
        expires_at: Utc::now() + Duration::days(DEVICE_TOKEN_DAYS),
    };
    (secret.secret, token)
}

fn applied(policy: &PolicyRecord, layer: LayerKind) -> AppliedPolicy {
    AppliedPolicy {
        layer,
        id: policy.id,
        name: policy.name.clone(),
        settings: policy.settings.clone(),
        locks: policy.locks.clone(),
    }
}

impl<'a, S: Store> FleetService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }
    /// Makes this instance see the devices' new state at once (others within their TTLs).
    pub fn forget(&self, devices: &[Uuid]) {
        for device in devices {
            self.steward.device_states.forget(*device);
        }
    }
    async fn policy_of(&self, organization: Uuid, policy: Uuid) -> Result<PolicyRecord, AppError> {
        self.steward
            .store
            .find_policy(organization, policy)
            .await?
            .ok_or_else(|| AppError::not_found("no such policy"))
    }
    async fn check_references(
        &self,
        organization: Uuid,
        policy: Option<Uuid>,
        group: Option<Uuid>,
    ) -> Result<(), AppError> {
        if let Some(policy) = policy
            && self
                .steward
                .store
                .find_policy(organization, policy)
                .await?
                .is_none()
        {
            return Err(AppError::invalid(
                "policyId",
                "no such policy in this organization",
            ));
        }
        if let Some(group) = group
            && !self
                .steward
                .store
                .fleet_groups(organization)
                .await?
                .iter()
                .any(|g| g.id == group)
        {
            return Err(AppError::invalid("groupId", "no such group in this organization"));
        }
        Ok(())
    }
}
