//! Fleets of organization-managed devices: the enrollment tokens devices redeem, the device
//! tokens they receive, the status a fleet admin gives them (suspend, resume, retire) and the
//! commands (wipe) they take at their next sync. Pure rules; the store is [`FleetStore`].

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::devices::DeviceRegistration;
use crate::organizations::OrgRole;
pub use crate::rules::{RuleError as FleetRuleError, RuleStoreError as FleetStoreError};
use crate::rules::{optional_line, optional_text};
use crate::{AuditEntry, RepositoryError};

/// Shown before an enrollment token's secret, so it is recognisable in logs and QR scans.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "stw_enr_";
/// Shown before a device token's secret.
pub const DEVICE_TOKEN_PREFIX: &str = "stw_dev_";
/// How long a device token lives (PRODUCT.md: 90 days); a refresh starts a new 90 days.
pub const DEVICE_TOKEN_DAYS: i64 = 90;
/// The longest an enrollment token may live.
pub const ENROLLMENT_TOKEN_MAX_DAYS: i64 = 365;
/// How long a wipe waits for the device unless the admin says otherwise.
pub const DEFAULT_COMMAND_HOURS: i64 = 7 * 24;

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

/// A managed device's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

/// The order of a fleet list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Where a policy is applied or unapplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTargets {
    Devices(Vec<Uuid>),
    Groups(Vec<Uuid>),
}

/// What to do with an import row whose device (or user) already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    Skip,
    Update,
}

/// One device of a bulk import, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceImport {
    /// The 1-based line (CSV, counting the header) or item (JSON) it came from.
    pub line: usize,
    pub identifier: String,
    pub display_name: String,
    pub platform: Option<String>,
    pub hardware: Hardware,
    pub policy_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
    pub assigned_user_email: Option<String>,
}

/// One problem of an import, by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportProblem {
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl ImportProblem {
    pub fn new(line: usize, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            line,
            field: field.into(),
            message: message.into(),
        }
    }
}

fn uuid_field(
    line: usize,
    row: &BTreeMap<String, String>,
    field: &str,
    problems: &mut Vec<ImportProblem>,
) -> Option<Uuid> {
    let value = row.get(field).map(|v| v.trim()).filter(|v| !v.is_empty())?;
    match Uuid::parse_str(value) {
        Ok(id) => Some(id),
        Err(_) => {
            problems.push(ImportProblem::new(line, field, "must be a UUID"));
            None
        }
    }
}

/// Validates one import row (field → text). Every problem of the row is reported.
pub fn parse_device_row(
    line: usize,
    row: &BTreeMap<String, String>,
) -> Result<DeviceImport, Vec<ImportProblem>> {
    let field = |name: &str| row.get(name).map(String::as_str);
    let mut problems = Vec::new();
    let known = [
        "deviceId",
        "displayName",
        "platform",
        "serialNumber",
        "manufacturer",
        "model",
        "policyId",
        "groupId",
        "assignedUserEmail",
    ];
    for name in row.keys().filter(|name| !known.contains(&name.as_str())) {
        problems.push(ImportProblem::new(line, name.clone(), "unknown column"));
    }
    let registration = DeviceRegistration::parse(
        field("deviceId").unwrap_or(""),
        field("displayName").or(field("deviceId")).unwrap_or(""),
        field("platform"),
        None,
        None,
        None,
        None,
    );
    let registration = match registration {
        Ok(registration) => Some(registration),
        Err(FleetRuleError::Invalid { field, message }) => {
            problems.push(ImportProblem::new(line, field, message));
            None
        }
        Err(other) => {
            problems.push(ImportProblem::new(line, "deviceId", other.to_string()));
            None
        }
    };
    let extras = Hardware::parse(field("serialNumber"), field("manufacturer"), field("model"));
    let extras = match extras {
        Ok(extras) => Some(extras),
        Err(FleetRuleError::Invalid { field, message }) => {
            problems.push(ImportProblem::new(line, field, message));
            None
        }
        Err(other) => {
            problems.push(ImportProblem::new(line, "serialNumber", other.to_string()));
            None
        }
    };
    let policy_id = uuid_field(line, row, "policyId", &mut problems);
    let group_id = uuid_field(line, row, "groupId", &mut problems);
    let assigned_user_email = field("assignedUserEmail")
        .map(str::trim)
        .filter(|email| !email.is_empty())
        .map(str::to_lowercase);
    if assigned_user_email
        .as_deref()
        .is_some_and(|email| !email.contains('@') || email.len() > 254)
    {
        problems.push(ImportProblem::new(
            line,
            "assignedUserEmail",
            "must be an email address",
        ));
    }
    match (registration, extras) {
        (Some(registration), Some(extras)) if problems.is_empty() => Ok(DeviceImport {
            line,
            identifier: registration.identifier,
            display_name: registration.display_name,
            platform: registration.platform,
            hardware: extras,
            policy_id,
            group_id,
            assigned_user_email,
        }),
        _ => Err(problems),
    }
}

/// Problems across rows: the same device twice in one import.
pub fn duplicate_rows(rows: &[DeviceImport]) -> Vec<ImportProblem> {
    repeated(
        rows.iter().map(|row| (row.line, row.identifier.as_str())),
        "deviceId",
        "device",
    )
}

/// A problem for each `(line, key)` whose key an earlier line already had.
fn repeated<'a>(rows: impl Iterator<Item = (usize, &'a str)>, field: &str, what: &str) -> Vec<ImportProblem> {
    let mut first_line: BTreeMap<&str, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for (line, key) in rows {
        match first_line.get(key) {
            Some(first) => problems.push(ImportProblem::new(
                line,
                field,
                format!("repeats the {what} of line {first}"),
            )),
            None => {
                first_line.insert(key, line);
            }
        }
    }
    problems
}

/// One organization user of a bulk import, validated: an existing account by email and the
/// role to give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserImport {
    pub line: usize,
    pub email: String,
    pub role: OrgRole,
}

/// Validates one user row (`email`, `role` — default `viewer`).
pub fn parse_user_row(line: usize, row: &BTreeMap<String, String>) -> Result<UserImport, Vec<ImportProblem>> {
    let mut problems = Vec::new();
    for name in row
        .keys()
        .filter(|name| !["email", "role"].contains(&name.as_str()))
    {
        problems.push(ImportProblem::new(line, name.clone(), "unknown column"));
    }
    let email = row
        .get("email")
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_default();
    if email.is_empty() || !email.contains('@') || email.len() > 254 {
        problems.push(ImportProblem::new(line, "email", "must be an email address"));
    }
    let role = match row.get("role").map(String::as_str) {
        None => Some(OrgRole::Viewer),
        Some(text) => OrgRole::parse(text),
    };
    if role.is_none() {
        problems.push(ImportProblem::new(line, "role", "must be owner, admin or viewer"));
    }
    match role {
        Some(role) if problems.is_empty() => Ok(UserImport { line, email, role }),
        _ => Err(problems),
    }
}

/// Problems across rows: the same email twice in one import.
pub fn duplicate_user_rows(rows: &[UserImport]) -> Vec<ImportProblem> {
    repeated(
        rows.iter().map(|row| (row.line, row.email.as_str())),
        "email",
        "user",
    )
}

/// A user row ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUserImport {
    pub row: UserImport,
    pub user_id: Uuid,
}

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
}

/// A device row ready to store: references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedDeviceImport {
    pub row: DeviceImport,
    pub assigned_user_id: Option<Uuid>,
}

pub trait FleetStore {
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

    fn create_enrollment_token(
        &self,
        token: &EnrollmentToken,
        hash: &str,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

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

    /// Accounts by email (lower case), whatever their organizations.
    fn user_ids_by_email(
        &self,
        emails: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Uuid>, RepositoryError>> + Send;

    /// Adds (or, with `Update`, changes the role of) organization users all or nothing, one
    /// audit entry per record (built by `audit`: row, whether it was added). Decided under the
    /// organization's row lock on its current users: an owner is never changed by an import.
    fn import_org_users<A>(
        &self,
        organization: Uuid,
        rows: &[ResolvedUserImport],
        on_duplicate: OnDuplicate,
        now: DateTime<Utc>,
        audit: A,
    ) -> impl Future<Output = Result<ImportCounts, RepositoryError>> + Send
    where
        A: Fn(&ResolvedUserImport, bool) -> AuditEntry + Send + Sync;

    /// Of these identifiers, those already registered, with the organization managing each.
    fn existing_devices(
        &self,
        identifiers: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Option<Uuid>>, RepositoryError>> + Send;

    /// Stores an import all or nothing, one audit entry per record (built by `audit`); only
    /// devices already in the organization are updated (`Rule(Conflict)` when one was
    /// registered elsewhere since validation), each updated device is pushed.
    fn import_devices<A>(
        &self,
        organization: Uuid,
        rows: &[ResolvedDeviceImport],
        on_duplicate: OnDuplicate,
        now: DateTime<Utc>,
        audit: A,
    ) -> impl Future<Output = Result<ImportCounts, FleetStoreError>> + Send
    where
        A: Fn(&ResolvedDeviceImport, Uuid, bool) -> AuditEntry + Send + Sync;
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

    #[test]
    fn user_rows_default_to_viewer_and_report_problems() {
        let row = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let ok = parse_user_row(2, &row(&[("email", " Ann@Example.com ")])).ok();
        assert_eq!(
            ok.as_ref().map(|u| (u.email.as_str(), u.role)),
            Some(("ann@example.com", OrgRole::Viewer))
        );
        let bad = parse_user_row(3, &row(&[("email", "nope"), ("role", "boss")]))
            .err()
            .unwrap_or_default();
        assert_eq!(bad.len(), 2);
        let rows: Vec<UserImport> = ["a@x.io", "b@x.io", "a@x.io"]
            .iter()
            .enumerate()
            .filter_map(|(i, email)| parse_user_row(i + 2, &row(&[("email", email)])).ok())
            .collect();
        assert_eq!(duplicate_user_rows(&rows).len(), 1);
    }

    #[test]
    fn import_rows_report_every_problem_with_its_line() {
        let row = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let good = parse_device_row(2, &row(&[("deviceId", "dev-1"), ("platform", "Android")]));
        let good = good.map_err(|p| p.len());
        assert_eq!(good.as_ref().map(|d| d.display_name.as_str()), Ok("dev-1"));
        assert_eq!(
            good.as_ref().map(|d| d.platform.clone()),
            Ok(Some("android".to_owned()))
        );
        let problems = parse_device_row(
            3,
            &row(&[
                ("deviceId", ""),
                ("policyId", "nope"),
                ("colour", "red"),
                ("assignedUserEmail", "x"),
            ]),
        )
        .err()
        .unwrap_or_default();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["colour", "deviceId", "policyId", "assignedUserEmail"]);
        assert!(problems.iter().all(|p| p.line == 3));
        let rows: Vec<DeviceImport> = ["a", "b", "a"]
            .iter()
            .enumerate()
            .filter_map(|(i, id)| parse_device_row(i + 2, &row(&[("deviceId", id)])).ok())
            .collect();
        let duplicates = duplicate_rows(&rows);
        assert_eq!(duplicates.len(), 1);
        assert_eq!(duplicates[0].line, 4);
    }
}
