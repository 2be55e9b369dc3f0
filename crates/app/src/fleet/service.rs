//! Fleet use cases: enrollment tokens and enrollment, device tokens, fleet actions and
//! commands, policy application and bulk import. Rules are the domain's (`steward_domain::fleet`,
//! resolution for dry runs); this service gathers inputs, asks, stores and forgets what the
//! caches remembered of the devices it changed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use steward_auth::{hash_token, random_token};
use steward_domain::fleet::{
    Assignment, CommandStatus, DEVICE_TOKEN_DAYS, DEVICE_TOKEN_PREFIX, DeviceCommand, DeviceImport,
    DeviceStatus, ENROLLMENT_TOKEN_PREFIX, Enrollment, EnrollmentToken, EnrollmentTokenSpec, FleetDevice,
    FleetGroup, FleetQuery, ImportCounts, ImportProblem, NewDeviceToken, OnDuplicate, PolicyTargets,
    ResolvedDeviceImport, ResolvedUserImport, command_lifetime, duplicate_rows, duplicate_user_rows,
    parse_device_row, parse_user_row,
};
use steward_domain::organizations::{OrgActor, OrgRole, may_set_org_role};
use steward_domain::policies::PolicyRecord;
use steward_domain::settings::store::AppliedPolicy;
use steward_domain::settings::{LayerKind, SettingDiff, SettingsActor};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError, RequestOrigin};
use uuid::Uuid;

use super::import::ImportRows;
use super::qr::{self, EnrollmentPayload, QrFormat};
use crate::error::{AppError, ErrorKind, FieldError};
use crate::settings::{DeviceSettingsView, SettingsAccess, SettingsCallerKind, SettingsService};
use crate::steward::{Steward, Store};

/// What a device receives when it enrolls.
#[derive(Debug, Serialize)]
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
    pub additional_data: Option<Value>,
}

/// A new device token.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceTokenView {
    pub device_id: Uuid,
    pub device_token: String,
    pub expires_at: DateTime<Utc>,
}

/// One device's part of a policy dry run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceDiff {
    pub device_id: Uuid,
    pub changes: Vec<SettingDiff>,
}

/// What applying or unapplying a policy did (or, in a dry run, would do).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyApplication {
    pub dry_run: bool,
    /// Devices whose settings version was bumped (empty in a dry run).
    pub devices_touched: Vec<Uuid>,
    /// Dry run only: per device, the effective settings that would change.
    pub diffs: Vec<DeviceDiff>,
}

/// One problem of an import.
#[derive(Debug, Serialize)]
pub struct ImportError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl From<ImportProblem> for ImportError {
    fn from(problem: ImportProblem) -> Self {
        Self {
            line: problem.line,
            field: problem.field,
            message: problem.message,
        }
    }
}

/// What an import did, or in a dry run would do, and every problem by line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub dry_run: bool,
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
    pub errors: Vec<ImportError>,
}

impl ImportReport {
    fn new(dry_run: bool, rows: usize, counts: ImportCounts, problems: Vec<ImportProblem>) -> Self {
        Self {
            dry_run,
            rows,
            created: counts.created,
            updated: counts.updated,
            skipped: counts.skipped,
            errors: problems.into_iter().map(ImportError::from).collect(),
        }
    }
}

pub struct FleetService<'a, S> {
    steward: &'a Steward<S>,
}

fn admin_audit(
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
    let secret = format!("{DEVICE_TOKEN_PREFIX}{}", random_token(32));
    let token = NewDeviceToken {
        id: Uuid::now_v7(),
        hash: hash_token(&secret),
        prefix: secret.chars().take(DEVICE_TOKEN_PREFIX.len() + 4).collect(),
        expires_at: Utc::now() + Duration::days(DEVICE_TOKEN_DAYS),
    };
    (secret, token)
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

    pub async fn groups(&self, organization: Uuid) -> Result<Vec<FleetGroup>, AppError> {
        Ok(self.steward.store.fleet_groups(organization).await?)
    }

    pub async fn create_group(
        &self,
        organization: Uuid,
        user: Uuid,
        name: &str,
        description: Option<&str>,
        policy: Option<Uuid>,
        origin: &RequestOrigin,
    ) -> Result<FleetGroup, AppError> {
        let group = FleetGroup {
            id: Uuid::now_v7(),
            organization_id: organization,
            name: FleetGroup::parse_name(name)?,
            description: FleetGroup::parse_description(description)?,
            policy_id: policy,
            created_at: Utc::now(),
        };
        self.check_references(organization, policy, None).await?;
        let entry = admin_audit(user, "fleet_group.created", "group", organization, origin)
            .resource_id(group.id)
            .change(
                None,
                Some(json!({"name": group.name, "policyId": group.policy_id})),
            );
        self.steward
            .store
            .create_fleet_group(&group, user, &entry)
            .await?;
        Ok(group)
    }

    /// The token's secret, derived from its id (never stored).
    fn token_secret(&self, token: Uuid) -> String {
        format!(
            "{ENROLLMENT_TOKEN_PREFIX}{}",
            self.steward.auth.enrollment_secret(token)
        )
    }

    pub async fn create_token(
        &self,
        organization: Uuid,
        user: Uuid,
        spec: EnrollmentTokenSpec,
        origin: &RequestOrigin,
    ) -> Result<(EnrollmentToken, String), AppError> {
        self.check_references(organization, spec.policy_id, spec.group_id)
            .await?;
        let id = Uuid::now_v7();
        let secret = self.token_secret(id);
        let token = EnrollmentToken {
            id,
            organization_id: organization,
            name: spec.name,
            prefix: secret.chars().take(ENROLLMENT_TOKEN_PREFIX.len() + 4).collect(),
            policy_id: spec.policy_id,
            group_id: spec.group_id,
            max_uses: spec.max_uses,
            use_count: 0,
            expires_at: spec.expires_at,
            revoked_at: None,
            created_by: Some(user),
            created_at: Utc::now(),
            note: spec.note,
            additional_data: spec.additional_data,
        };
        let entry = admin_audit(
            user,
            "enrollment_token.created",
            "enrollment_token",
            organization,
            origin,
        )
        .resource_id(id)
        .change(
            None,
            Some(json!({
                "name": token.name,
                "policyId": token.policy_id,
                "groupId": token.group_id,
                "maxUses": token.max_uses,
                "expiresAt": token.expires_at,
            })),
        );
        self.steward
            .store
            .create_enrollment_token(&token, &hash_token(&secret), &entry)
            .await?;
        Ok((token, secret))
    }

    pub async fn tokens(&self, organization: Uuid) -> Result<Vec<EnrollmentToken>, AppError> {
        Ok(self.steward.store.enrollment_tokens(organization).await?)
    }

    /// Revokes a live token; devices already enrolled keep their device tokens.
    pub async fn revoke_token(
        &self,
        organization: Uuid,
        id: Uuid,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = admin_audit(
            user,
            "enrollment_token.revoked",
            "enrollment_token",
            organization,
            origin,
        )
        .resource_id(id);
        self.steward
            .store
            .revoke_enrollment_token(organization, id, Utc::now(), &entry)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such active enrollment token"),
                other => other.into(),
            })
    }

    pub async fn token(&self, organization: Uuid, id: Uuid) -> Result<EnrollmentToken, AppError> {
        self.steward
            .store
            .find_enrollment_token(organization, id)
            .await?
            .ok_or_else(|| AppError::not_found("no such enrollment token"))
    }

    /// The QR image of a live token (audited, as it shows the secret).
    pub async fn qr(
        &self,
        organization: Uuid,
        id: Uuid,
        format: QrFormat,
        size: u32,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(Vec<u8>, &'static str), AppError> {
        let token = self.token(organization, id).await?;
        if let Some(refusal) = token.refusal(Utc::now()) {
            return Err(AppError::new(
                ErrorKind::Conflict,
                format!("no QR code for a token that cannot be used: {refusal}"),
            ));
        }
        // The image shows the secret: every rendering is audited.
        let entry = admin_audit(
            user,
            "enrollment_token.qr_rendered",
            "enrollment_token",
            organization,
            origin,
        )
        .resource_id(id);
        self.steward.store.record(&entry).await?;
        let secret = self.token_secret(id);
        let payload = EnrollmentPayload {
            v: 1,
            server_url: self.steward.auth.public_url(),
            organization_id: organization,
            enrollment_token: &secret,
        };
        qr::render(&payload, format, size)
    }

    pub async fn enroll(
        &self,
        secret: &str,
        enrollment: Enrollment,
        origin: &RequestOrigin,
    ) -> Result<EnrollmentOutcome, AppError> {
        let (device_token, stored) = new_device_token();
        let entry = AuditEntry::new(Actor::system(), AuditAction::known("device.enrolled"), "device")
            .origin(origin.clone());
        let enrolled = self
            .steward
            .store
            .enroll(
                &hash_token(secret.trim()),
                &enrollment,
                &stored,
                Utc::now(),
                &entry,
            )
            .await??;
        self.forget(&[enrolled.device_id]);
        self.steward.device_auth.forget_device(enrolled.device_id);
        let (settings, _) = SettingsService::new(self.steward)
            .effective(enrolled.device_id, false)
            .await?;
        Ok(EnrollmentOutcome {
            device_id: enrolled.device_id,
            organization_id: enrolled.organization_id,
            device_token,
            device_token_expires_at: stored.expires_at,
            adopted: enrolled.adopted,
            settings,
            additional_data: enrolled.additional_data,
        })
    }

    /// A new device token for a live one (which stops working).
    pub async fn refresh_device_token(
        &self,
        secret: &str,
        origin: &RequestOrigin,
    ) -> Result<DeviceTokenView, AppError> {
        let secret = secret.trim();
        let (device_token, stored) = new_device_token();
        let refused = || {
            AppError::new(
                ErrorKind::Unauthenticated,
                "the device token is invalid, expired or revoked",
            )
        };
        let current = self
            .steward
            .store
            .device_token(&hash_token(secret), Utc::now())
            .await?
            .ok_or_else(refused)?;
        if self
            .steward
            .device_auth
            .status(&self.steward.store, current.device_id)
            .await?
            == DeviceStatus::Suspended
        {
            return Err(AppError::new(
                ErrorKind::DeviceSuspended,
                "this device is suspended by its organization",
            ));
        }
        let entry = AuditEntry::new(
            Actor::device(current.device_id),
            AuditAction::known("device.token_refreshed"),
            "device",
        )
        .origin(origin.clone());
        let device = self
            .steward
            .store
            .refresh_device_token(&hash_token(secret), &stored, Utc::now(), &entry)
            .await?
            .ok_or_else(refused)?;
        self.steward.device_auth.forget_device(device);
        Ok(DeviceTokenView {
            device_id: device,
            device_token,
            expires_at: stored.expires_at,
        })
    }

    pub async fn fleet(
        &self,
        organization: Uuid,
        query: &FleetQuery,
    ) -> Result<(Vec<FleetDevice>, u64), AppError> {
        Ok(self.steward.store.fleet_devices(organization, query).await?)
    }

    pub async fn device(&self, organization: Uuid, device: Uuid) -> Result<FleetDevice, AppError> {
        self.steward
            .store
            .find_fleet_device(organization, device)
            .await?
            .ok_or_else(|| AppError::not_found("no such device"))
    }

    pub async fn assign(
        &self,
        organization: Uuid,
        device: Uuid,
        assignment: Assignment,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<FleetDevice, AppError> {
        if assignment.is_empty() {
            return Err(AppError::validation(
                "name at least one of policyId, groupId, userId",
            ));
        }
        let entry = admin_audit(user, "device.assigned", "device", organization, origin);
        self.steward
            .store
            .assign_device(organization, device, &assignment, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        self.device(organization, device).await
    }

    pub async fn set_suspended(
        &self,
        organization: Uuid,
        device: Uuid,
        suspend: bool,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<FleetDevice, AppError> {
        let action = if suspend {
            "device.suspended"
        } else {
            "device.resumed"
        };
        let entry = admin_audit(user, action, "device", organization, origin);
        self.steward
            .store
            .set_device_suspended(organization, device, suspend, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        self.steward.device_auth.forget_device(device);
        self.device(organization, device).await
    }

    pub async fn retire(
        &self,
        organization: Uuid,
        device: Uuid,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = admin_audit(user, "device.retired", "device", organization, origin);
        self.steward
            .store
            .retire_device(organization, device, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        self.steward.device_auth.forget_device(device);
        Ok(())
    }

    pub async fn wipe(
        &self,
        organization: Uuid,
        device: Uuid,
        expires_in_seconds: Option<i64>,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<DeviceCommand, AppError> {
        let lifetime = command_lifetime(expires_in_seconds)?;
        let now = Utc::now();
        let command = DeviceCommand {
            id: Uuid::now_v7(),
            device_id: device,
            organization_id: Some(organization),
            command: "wipe".to_owned(),
            status: CommandStatus::Pending,
            payload: None,
            created_by: Some(user),
            created_at: now,
            expires_at: now + lifetime,
            delivered_at: None,
            acknowledged_at: None,
            result: None,
        };
        let entry = admin_audit(user, "device.wipe_requested", "device", organization, origin)
            .resource_id(device)
            .change(
                None,
                Some(json!({"commandId": command.id, "expiresAt": command.expires_at})),
            );
        // The store claims the device as one the organization manages (404 otherwise).
        self.steward
            .store
            .create_command(&command, &entry)
            .await
            .map_err(|error| match error {
                RepositoryError::NotFound => AppError::not_found("no such device"),
                other => other.into(),
            })?;
        self.forget(&[device]);
        Ok(command)
    }

    pub async fn commands(&self, organization: Uuid, device: Uuid) -> Result<Vec<DeviceCommand>, AppError> {
        self.device(organization, device).await?;
        let now = Utc::now();
        Ok(self
            .steward
            .store
            .device_commands(device)
            .await?
            .into_iter()
            .map(|mut command| {
                command.status = command.status.as_of(command.expires_at, now);
                command
            })
            .collect())
    }

    /// The device's open commands for its sync (remembered briefly when there are none).
    /// Commands go to the device itself, or to its app signed in as the owner — never to
    /// group managers or administrators syncing on its behalf.
    pub async fn deliver(
        &self,
        access: &SettingsAccess,
        origin: &RequestOrigin,
    ) -> Result<Vec<DeviceCommand>, AppError> {
        if !matches!(access.actor, SettingsActor::Device | SettingsActor::DeviceUser) {
            return Ok(Vec::new());
        }
        let device = access.device;
        if self.steward.device_states.has_open_commands(device) == Some(false) {
            return Ok(Vec::new());
        }
        let entry = AuditEntry::new(
            Actor::device(device),
            AuditAction::known("device.command_delivered"),
            "device_command",
        )
        .origin(origin.clone());
        let commands = self
            .steward
            .store
            .deliver_commands(device, Utc::now(), &entry)
            .await?;
        self.steward
            .device_states
            .put_open_commands(device, !commands.is_empty());
        Ok(commands)
    }

    pub async fn acknowledge(
        &self,
        caller: SettingsCallerKind,
        device: Uuid,
        command: Uuid,
        result: Option<Value>,
        origin: &RequestOrigin,
    ) -> Result<DeviceCommand, AppError> {
        // Only the device itself acknowledges its commands; to anyone else they do not exist.
        if caller != SettingsCallerKind::Device(device) {
            return Err(AppError::not_found("no such command"));
        }
        let entry = AuditEntry::new(
            Actor::device(device),
            AuditAction::known("device.command_acknowledged"),
            "device_command",
        )
        .origin(origin.clone());
        let acknowledged = self
            .steward
            .store
            .acknowledge_command(device, command, result, Utc::now(), &entry)
            .await?;
        self.forget(&[device]);
        Ok(acknowledged)
    }

    /// Applies or unapplies a policy, or with `dry_run` answers each device's diff.
    #[allow(clippy::too_many_arguments)]
    pub async fn apply_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
        targets: PolicyTargets,
        apply: bool,
        dry_run: bool,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<PolicyApplication, AppError> {
        let record = self.policy_of(organization, policy).await?;
        let dedup = |ids: &[Uuid]| {
            ids.iter()
                .copied()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        };
        let targets = match targets {
            PolicyTargets::Devices(ids) => PolicyTargets::Devices(dedup(&ids)),
            PolicyTargets::Groups(ids) => PolicyTargets::Groups(dedup(&ids)),
        };
        let (ids, layer) = match &targets {
            PolicyTargets::Devices(ids) => (ids.clone(), LayerKind::DevicePolicy),
            PolicyTargets::Groups(ids) => (ids.clone(), LayerKind::Group),
        };
        if !dry_run {
            let action = if apply {
                "policy.applied"
            } else {
                "policy.unapplied"
            };
            let entry = admin_audit(user, action, "device_policy", organization, origin)
                .resource_id(policy)
                .change(None, Some(json!({"targets": ids, "kind": layer.as_str()})));
            let touched = self
                .steward
                .store
                .apply_policy(organization, policy, &targets, apply, Utc::now(), &entry)
                .await
                .map_err(|error| match error {
                    RepositoryError::NotFound => {
                        AppError::not_found("a target is not a device or group of this organization")
                    }
                    other => other.into(),
                })?;
            self.forget(&touched);
            return Ok(PolicyApplication {
                dry_run,
                devices_touched: touched,
                diffs: Vec::new(),
            });
        }
        // Each device and the policy its targeted layer carries now.
        let mut devices: Vec<(Uuid, Option<Uuid>)> = Vec::new();
        match &targets {
            PolicyTargets::Devices(ids) => {
                for id in ids {
                    devices.push((*id, self.device(organization, *id).await?.policy_id));
                }
            }
            PolicyTargets::Groups(ids) => {
                let groups: BTreeMap<Uuid, Option<Uuid>> = self
                    .groups(organization)
                    .await?
                    .into_iter()
                    .map(|g| (g.id, g.policy_id))
                    .collect();
                if ids.iter().any(|id| !groups.contains_key(id)) {
                    return Err(AppError::not_found(
                        "a target is not a device or group of this organization",
                    ));
                }
                for group in ids {
                    let carried = groups.get(group).copied().flatten();
                    for device in self
                        .steward
                        .store
                        .fleet_devices_in_groups(organization, &[*group])
                        .await?
                    {
                        devices.push((device, carried));
                    }
                }
            }
        }
        let settings = SettingsService::new(self.steward);
        let mut diffs = Vec::new();
        for (device, carried) in devices {
            // Applying replaces the layer's policy; unapplying removes it only where it is
            // this policy (elsewhere nothing changes).
            let changes = if apply {
                settings
                    .policy_diff(device, layer, Some(applied(&record, layer)))
                    .await?
            } else if carried == Some(policy) {
                settings.policy_diff(device, layer, None).await?
            } else {
                Vec::new()
            };
            diffs.push(DeviceDiff {
                device_id: device,
                changes,
            });
        }
        Ok(PolicyApplication {
            dry_run,
            devices_touched: Vec::new(),
            diffs,
        })
    }

    /// Validates every row, then (unless `dry_run` or there are problems) imports all of them
    /// in one transaction.
    pub async fn import_devices(
        &self,
        organization: Uuid,
        rows: ImportRows,
        dry_run: bool,
        on_duplicate: OnDuplicate,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<ImportReport, AppError> {
        let total = rows.len();
        let mut problems = Vec::new();
        let mut parsed: Vec<DeviceImport> = Vec::with_capacity(rows.len());
        for (line, fields) in &rows {
            match parse_device_row(*line, fields) {
                Ok(row) => parsed.push(row),
                Err(row_problems) => problems.extend(row_problems),
            }
        }
        problems.extend(duplicate_rows(&parsed));

        let policies: BTreeSet<Uuid> = self
            .steward
            .store
            .policies(organization)
            .await?
            .iter()
            .map(|p| p.id)
            .collect();
        let groups: BTreeSet<Uuid> = self.groups(organization).await?.iter().map(|g| g.id).collect();
        let emails: Vec<String> = parsed
            .iter()
            .filter_map(|row| row.assigned_user_email.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let member_ids: BTreeSet<Uuid> = self
            .steward
            .store
            .org_members(organization)
            .await?
            .into_iter()
            .map(|member| member.user_id)
            .collect();
        let members: BTreeMap<String, Uuid> = self
            .steward
            .store
            .user_ids_by_email(&emails)
            .await?
            .into_iter()
            .filter(|(_, id)| member_ids.contains(id))
            .collect();
        let identifiers: Vec<String> = parsed.iter().map(|row| row.identifier.clone()).collect();
        let existing = self.steward.store.existing_devices(&identifiers).await?;

        let mut counts = ImportCounts::default();
        let mut resolved = Vec::with_capacity(parsed.len());
        for row in parsed {
            if row.policy_id.is_some_and(|id| !policies.contains(&id)) {
                problems.push(ImportProblem::new(
                    row.line,
                    "policyId",
                    "no such policy in this organization",
                ));
            }
            if row.group_id.is_some_and(|id| !groups.contains(&id)) {
                problems.push(ImportProblem::new(
                    row.line,
                    "groupId",
                    "no such group in this organization",
                ));
            }
            let assigned_user_id = match &row.assigned_user_email {
                Some(email) => match members.get(email) {
                    Some(id) => Some(*id),
                    None => {
                        problems.push(ImportProblem::new(
                            row.line,
                            "assignedUserEmail",
                            "no member of this organization has this email",
                        ));
                        None
                    }
                },
                None => None,
            };
            match existing.get(&row.identifier) {
                // A personal device or another organization's: it joins by enrolling, never by
                // an import (which would take it over).
                Some(owner) if *owner != Some(organization) => problems.push(ImportProblem::new(
                    row.line,
                    "deviceId",
                    "the device is registered outside this organization; it joins by enrolling",
                )),
                Some(_) if on_duplicate == OnDuplicate::Skip => counts.skipped += 1,
                Some(_) => counts.updated += 1,
                None => counts.created += 1,
            }
            resolved.push(ResolvedDeviceImport {
                row,
                assigned_user_id,
            });
        }
        problems.sort_by_key(|problem| problem.line);
        let report = |counts, problems| ImportReport::new(dry_run, total, counts, problems);
        if dry_run {
            // An import with problems changes nothing, so its dry run counts nothing either.
            let counts = if problems.is_empty() {
                counts
            } else {
                ImportCounts::default()
            };
            return Ok(report(counts, problems));
        }
        if !problems.is_empty() {
            return Err(refused_import(&problems));
        }
        let origin = origin.clone();
        let audit = move |row: &ResolvedDeviceImport, device: Uuid, created: bool| {
            admin_audit(
                user,
                if created {
                    "device.imported"
                } else {
                    "device.import_updated"
                },
                "device",
                organization,
                &origin,
            )
            .resource_id(device)
            .change(
                None,
                Some(json!({
                    "line": row.row.line,
                    "identifier": row.row.identifier,
                    "policyId": row.row.policy_id,
                    "groupId": row.row.group_id,
                })),
            )
        };
        let stored = self
            .steward
            .store
            .import_devices(organization, &resolved, on_duplicate, Utc::now(), audit)
            .await?;
        Ok(report(stored, Vec::new()))
    }

    /// Validates every row — existing accounts, roles the actor may grant — then (unless
    /// `dry_run` or there are problems) adds them all in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn import_org_users(
        &self,
        organization: Uuid,
        actor: OrgActor,
        rows: ImportRows,
        dry_run: bool,
        on_duplicate: OnDuplicate,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<ImportReport, AppError> {
        let total = rows.len();
        let mut problems = Vec::new();
        let mut parsed = Vec::with_capacity(rows.len());
        for (line, fields) in &rows {
            match parse_user_row(*line, fields) {
                Ok(row) => parsed.push(row),
                Err(row_problems) => problems.extend(row_problems),
            }
        }
        problems.extend(duplicate_user_rows(&parsed));
        let emails: Vec<String> = parsed.iter().map(|row| row.email.clone()).collect();
        let accounts = self.steward.store.user_ids_by_email(&emails).await?;
        let members: BTreeMap<Uuid, OrgRole> = self
            .steward
            .store
            .org_members(organization)
            .await?
            .into_iter()
            .map(|member| (member.user_id, member.role))
            .collect();
        // Read outside the organization's lock: the checks below depend only on the importer's
        // rank and the rows' roles (an import never demotes an owner, so the owner count cannot
        // fall); the store re-reads the users under the lock to decide added versus existing.
        let owners = members.values().filter(|role| **role == OrgRole::Owner).count();
        let mut counts = ImportCounts::default();
        let mut resolved = Vec::with_capacity(parsed.len());
        for row in parsed {
            let Some(user_id) = accounts.get(&row.email).copied() else {
                problems.push(ImportProblem::new(
                    row.line,
                    "email",
                    "no account has this email; the user registers first",
                ));
                continue;
            };
            match members.get(&user_id) {
                None => match may_set_org_role(actor, None, row.role, owners) {
                    Ok(()) => counts.created += 1,
                    Err(error) => problems.push(ImportProblem::new(row.line, "role", error.to_string())),
                },
                Some(current)
                    if on_duplicate == OnDuplicate::Skip
                        || *current == OrgRole::Owner
                        || *current == row.role =>
                {
                    counts.skipped += 1;
                }
                Some(current) => match may_set_org_role(actor, Some(*current), row.role, owners) {
                    Ok(()) => counts.updated += 1,
                    Err(error) => problems.push(ImportProblem::new(row.line, "role", error.to_string())),
                },
            }
            resolved.push(ResolvedUserImport { row, user_id });
        }
        problems.sort_by_key(|problem| problem.line);
        let report = |counts, problems| ImportReport::new(dry_run, total, counts, problems);
        if dry_run {
            // An import with problems changes nothing, so its dry run counts nothing either.
            let counts = if problems.is_empty() {
                counts
            } else {
                ImportCounts::default()
            };
            return Ok(report(counts, problems));
        }
        if !problems.is_empty() {
            return Err(refused_import(&problems));
        }
        let origin = origin.clone();
        let audit = move |row: &ResolvedUserImport, added: bool| {
            admin_audit(
                user,
                if added { "organization.user_added" } else { "organization.user_role_changed" },
                "organization",
                organization,
                &origin,
            )
            .resource_id(organization)
            .change(
                None,
                Some(json!({"userId": row.user_id, "role": row.row.role.as_str(), "line": row.row.line, "import": true})),
            )
        };
        let stored = self
            .steward
            .store
            .import_org_users(organization, &resolved, on_duplicate, Utc::now(), audit)
            .await?;
        Ok(report(stored, Vec::new()))
    }
}

/// A real import with problems: 400 listing them (the first thousand), nothing imported.
fn refused_import(problems: &[ImportProblem]) -> AppError {
    let details = problems
        .iter()
        .take(1000)
        .map(|p| FieldError {
            field: format!("line {}: {}", p.line, p.field),
            message: p.message.clone(),
        })
        .collect();
    AppError::validation(format!(
        "{} problems in the import; nothing was imported (run with dryRun=true for the full report)",
        problems.len()
    ))
    .with_details(details)
}
