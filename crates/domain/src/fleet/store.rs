//! The fleet stores, one trait per sub-domain.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::*;
use crate::{AuditEntry, RepositoryError};

/// Enrollment tokens, enrollment and device tokens.
pub trait EnrollmentStore {
    /// Refused when the organization's quota of live enrollment tokens is used up.
    fn create_enrollment_token(
        &self,
        token: &EnrollmentToken,
        hash: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), crate::RuleStoreError>> + Send;

    fn enrollment_tokens(
        &self,
        organization: Uuid,
    ) -> impl Future<Output = Result<Vec<EnrollmentToken>, RepositoryError>> + Send;

    fn find_enrollment_token(
        &self,
        organization: Uuid,
        id: Uuid,
    ) -> impl Future<Output = Result<Option<EnrollmentToken>, RepositoryError>> + Send;

    /// `NotFound` when the token is not the organization's or already revoked.
    fn revoke_enrollment_token(
        &self,
        organization: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Takes one use of the token with this hash (atomically: never more uses than allowed,
    /// whatever races), creates or adopts the device as managed by the token's organization
    /// with the token's policy and group, revokes the device's older tokens and stores
    /// `device_token`, all in one transaction. `Rule(Conflict)` when the device is managed by
    /// another organization; the refusal when the token cannot be used.
    fn enroll(
        &self,
        token_hash: &str,
        enrollment: &Enrollment,
        device_token: &NewDeviceToken,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Result<EnrolledDevice, EnrollmentRefusal>, FleetStoreError>> + Send;

    /// The live (unrevoked, unexpired) device token with this hash.
    fn device_token(
        &self,
        hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<DeviceTokenGrant>, RepositoryError>> + Send;

    /// Replaces the live token `old_hash` by `new`; `None` when it is not live.
    fn refresh_device_token(
        &self,
        old_hash: &str,
        new: &NewDeviceToken,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Option<Uuid>, RepositoryError>> + Send;
}

/// An organization's devices and fleet groups: listings, assignment, suspension, retirement.
pub trait FleetDeviceStore {
    fn fleet_groups(
        &self,
        organization: Uuid,
    ) -> impl Future<Output = Result<Vec<FleetGroup>, RepositoryError>> + Send;

    /// Creates the group with `creator` as its owner (a group always has one); a policy must be
    /// the organization's (`NotFound` otherwise).
    fn create_fleet_group(
        &self,
        group: &FleetGroup,
        creator: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// A device's status (`None` when no such device).
    fn device_status(
        &self,
        device: Uuid,
    ) -> impl Future<Output = Result<Option<DeviceStatus>, RepositoryError>> + Send;

    /// One page of the organization's managed devices and the total matching.
    fn fleet_devices(
        &self,
        organization: Uuid,
        query: &FleetQuery,
    ) -> impl Future<Output = Result<(Vec<FleetDevice>, u64), RepositoryError>> + Send;

    fn find_fleet_device(
        &self,
        organization: Uuid,
        device: Uuid,
    ) -> impl Future<Output = Result<Option<FleetDevice>, RepositoryError>> + Send;

    /// Ids of the organization's managed devices in these fleet groups.
    fn fleet_devices_in_groups(
        &self,
        organization: Uuid,
        groups: &[Uuid],
    ) -> impl Future<Output = Result<Vec<Uuid>, RepositoryError>> + Send;

    /// Applies an assignment; the policy and group must be the organization's and the user one
    /// of its members (`Rule(Invalid)` naming the field otherwise; `Rule(NotFound)` for a device
    /// the organization does not manage). Bumps the settings version and queues a push.
    fn assign_device(
        &self,
        organization: Uuid,
        device: Uuid,
        assignment: &Assignment,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), FleetStoreError>> + Send;

    /// Suspends (`true`) or resumes a device, as `next_status` decides under the device's lock.
    fn set_device_suspended(
        &self,
        organization: Uuid,
        device: Uuid,
        suspend: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<DeviceStatus, FleetStoreError>> + Send;

    /// Makes the device unmanaged and removes it from the organization: policy, group and
    /// assignment cleared, device tokens revoked, open commands expired.
    fn retire_device(
        &self,
        organization: Uuid,
        device: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), FleetStoreError>> + Send;
}

/// Commands (a wipe) for devices: queued, delivered at sync, acknowledged.
pub trait CommandStore {
    /// Queues a command and a push for the device.
    fn create_command(
        &self,
        command: &DeviceCommand,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// The device's commands, newest first.
    fn device_commands(
        &self,
        device: Uuid,
    ) -> impl Future<Output = Result<Vec<DeviceCommand>, RepositoryError>> + Send;

    /// The device's open, unexpired commands, marking pending ones delivered (each audited
    /// with `audit`, per command).
    fn deliver_commands(
        &self,
        device: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Vec<DeviceCommand>, RepositoryError>> + Send;

    /// Records the device's acknowledgement, as `may_acknowledge` decides under the command's
    /// lock. `NotFound` when the command is not the device's.
    fn acknowledge_command(
        &self,
        device: Uuid,
        command: Uuid,
        result: Option<Value>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<DeviceCommand, FleetStoreError>> + Send;
}

/// Applying and unapplying policies to devices and fleet groups.
pub trait PolicyApplicationStore {
    /// Sets or clears `policy` on the targets (all of them the organization's, else `NotFound`
    /// and nothing changes); unapplying only clears targets that carry this policy. Bumps the
    /// settings version of every device affected and queues its push; answers those devices.
    fn apply_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
        targets: &PolicyTargets,
        apply: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Vec<Uuid>, RepositoryError>> + Send;
}

/// Bulk device import, all or nothing.
pub trait DeviceImportStore {
    /// Of these identifiers, those already registered, with the organization managing each.
    fn existing_devices(
        &self,
        identifiers: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Option<Uuid>>, RepositoryError>> + Send;

    /// Stores an import all or nothing, one audit entry per record (built by `audit`); only
    /// devices already in the organization are updated (`Rule(Conflict)` when one was
    /// registered elsewhere since validation), each updated device is pushed.
    ///
    /// `checkpoint` is told how many rows are written so far, every few hundred rows; when it
    /// answers `false` the import stops, writes nothing and answers
    /// `RepositoryError::Stopped`.
    fn import_devices<A, C>(
        &self,
        organization: Uuid,
        rows: &[ResolvedDeviceImport],
        on_duplicate: OnDuplicate,
        now: DateTime<Utc>,
        audit: A,
        checkpoint: C,
    ) -> impl Future<Output = Result<ImportCounts, FleetStoreError>> + Send
    where
        A: Fn(&ResolvedDeviceImport, Uuid, bool) -> AuditEntry + Send + Sync,
        C: Fn(usize) -> bool + Send + Sync;
}
