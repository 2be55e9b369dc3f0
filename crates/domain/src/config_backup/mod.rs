//! Configuration backup and restore: the portable document (what of an instance's
//! configuration travels, keyed by names rather than ids so it fits another instance), the
//! store that reads it and applies an import in one transaction, and the pure decision of what
//! an import changes ([`plan`]).
//!
//! User data (accounts, devices, groups, memberships, audit) never travels.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::events::webhooks::WebhookRecord;
use crate::ip_allowlist::AllowlistEntry;
use crate::notifications::Thresholds;
use crate::organizations::OrganizationRecord;
use crate::policies::PolicyRecord;
use crate::quotas::{Limits, QuotaPlans};
use crate::roles::CustomRole;
use crate::settings::{Constraints, MergeRule, SettingDefinition, ValueType};
use crate::{RepositoryError, RuleStoreError};

pub mod plan;

pub use plan::{ImportPlan, ImportRules, OnConflict, Problem, plan_import};

/// The `format` of a plain document.
pub const FORMAT: &str = "steward-config";
/// The schema this Steward writes and reads.
pub const SCHEMA_VERSION: u32 = 1;
/// The largest document an import reads (bytes).
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// What a document may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    SettingDefinitions,
    Organizations,
    Policies,
    Roles,
    IpAllowlist,
    Webhooks,
    NotificationRules,
    Plans,
}

impl Category {
    /// Every category, in the order an import applies them (what others refer to first).
    pub const ALL: [Category; 8] = [
        Category::SettingDefinitions,
        Category::Organizations,
        Category::Policies,
        Category::Roles,
        Category::IpAllowlist,
        Category::Webhooks,
        Category::NotificationRules,
        Category::Plans,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::SettingDefinitions => "settingDefinitions",
            Category::Organizations => "organizations",
            Category::Policies => "policies",
            Category::Roles => "roles",
            Category::IpAllowlist => "ipAllowlist",
            Category::Webhooks => "webhooks",
            Category::NotificationRules => "notificationRules",
            Category::Plans => "plans",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|category| category.as_str() == text)
    }
}

/// A configuration document as written to a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigDocument {
    /// Always [`FORMAT`].
    pub format: String,
    pub schema_version: u32,
    /// The Steward that wrote it.
    pub steward_version: String,
    pub created_at: DateTime<Utc>,
    /// The operator's email, or `shell` for the command line.
    pub exported_by: String,
    /// The categories it holds, in the order of [`Category::ALL`].
    pub include: Vec<Category>,
    /// Whether webhook secrets are in it (only in a sealed file).
    pub secrets_included: bool,
    /// `sha256:` and the hex SHA-256 of `data` as serialized (see [`checksum_material`]).
    pub checksum: String,
    pub data: ConfigData,
}

/// The bytes the checksum covers: the document's `data` as it stands in the file, written as
/// compact JSON with object keys sorted, so a document read and written again checks the same
/// and anyone can compute it (`jq -cS .data | sha256sum` prints the same digest, less the
/// trailing newline jq adds).
pub fn checksum_material(data: &Value) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&sorted(data.clone()))
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<String, Value> =
                map.into_iter().map(|(key, value)| (key, sorted(value))).collect();
            Value::Object(ordered.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The configuration itself; a category left out of the export is absent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting_definitions: Option<Vec<PortableDefinition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organizations: Option<Vec<PortableOrganization>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PortablePolicy>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<PortableRole>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_allowlist: Option<PortableAllowlist>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks: Option<Vec<PortableWebhook>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notification_rules: Option<PortableNotificationRules>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plans: Option<Vec<PortablePlan>>,
}

impl ConfigData {
    /// The categories present.
    pub fn categories(&self) -> Vec<Category> {
        Category::ALL
            .into_iter()
            .filter(|category| match category {
                Category::SettingDefinitions => self.setting_definitions.is_some(),
                Category::Organizations => self.organizations.is_some(),
                Category::Policies => self.policies.is_some(),
                Category::Roles => self.roles.is_some(),
                Category::IpAllowlist => self.ip_allowlist.is_some(),
                Category::Webhooks => self.webhooks.is_some(),
                Category::NotificationRules => self.notification_rules.is_some(),
                Category::Plans => self.plans.is_some(),
            })
            .collect()
    }
}

/// A setting definition (the same fields as `/api/v1/settings/definitions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortableDefinition {
    pub key: String,
    pub value_type: ValueType,
    pub default_value: Value,
    #[serde(default)]
    pub constraints: Constraints,
    pub category: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub is_lockable: bool,
    #[serde(default)]
    pub merge_rule: MergeRule,
    #[serde(default)]
    pub sort_order: i32,
}

impl From<&SettingDefinition> for PortableDefinition {
    fn from(definition: &SettingDefinition) -> Self {
        Self {
            key: definition.key.clone(),
            value_type: definition.value_type,
            default_value: definition.default_value.clone(),
            constraints: definition.constraints.clone(),
            category: definition.category.clone(),
            description: definition.description.clone(),
            is_lockable: definition.is_lockable,
            merge_rule: definition.merge_rule,
            sort_order: definition.sort_order,
        }
    }
}

/// An organization, by its slug; members stay behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortableOrganization {
    pub slug: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub settings: Option<Value>,
    /// The plan's name; it must be configured on the instance that imports it.
    pub plan: String,
    #[serde(default)]
    pub quota_overrides: Limits,
}

impl From<&OrganizationRecord> for PortableOrganization {
    fn from(organization: &OrganizationRecord) -> Self {
        Self {
            slug: organization.slug.clone(),
            name: organization.name.clone(),
            description: organization.description.clone(),
            settings: organization.settings.clone(),
            plan: organization.quota.plan.clone(),
            quota_overrides: organization.quota.overrides.clone(),
        }
    }
}

/// A device policy, by its organization's slug and its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortablePolicy {
    pub organization: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub settings: BTreeMap<String, Value>,
    #[serde(default)]
    pub locks: Vec<String>,
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub is_default: bool,
}

impl PortablePolicy {
    pub fn of(policy: &PolicyRecord, organization_slug: &str) -> Self {
        Self {
            organization: organization_slug.to_owned(),
            name: policy.name.clone(),
            description: policy.description.clone(),
            settings: policy.settings.clone(),
            locks: policy.locks.clone(),
            priority: policy.priority,
            is_default: policy.is_default,
        }
    }
}

/// A custom role (built-in roles are Steward's own and never travel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortableRole {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub permissions: BTreeSet<String>,
}

impl From<&CustomRole> for PortableRole {
    fn from(role: &CustomRole) -> Self {
        Self {
            name: role.name.clone(),
            description: role.description.clone(),
            permissions: role.permissions.clone(),
        }
    }
}

/// The admin API's IP allowlist: its switch and its networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortableAllowlist {
    pub enabled: bool,
    pub entries: Vec<PortableAllowlistEntry>,
}

/// One allowed network, by its canonical CIDR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortableAllowlistEntry {
    pub network: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

impl From<&AllowlistEntry> for PortableAllowlistEntry {
    fn from(entry: &AllowlistEntry) -> Self {
        Self {
            network: entry.network.to_string(),
            name: entry.name.clone(),
            description: entry.description.clone(),
        }
    }
}

/// A webhook subscription, by its organization's slug (none: instance-wide) and its URL.
/// Operators' personal webhooks belong to their notification preferences and stay behind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortableWebhook {
    #[serde(default)]
    pub organization: Option<String>,
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    pub events: Vec<String>,
    pub enabled: bool,
    /// The signing secret: only in a sealed file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl PortableWebhook {
    pub fn of(webhook: &WebhookRecord, organization_slug: Option<&str>, secret: Option<String>) -> Self {
        Self {
            organization: organization_slug.map(str::to_owned),
            url: webhook.url.clone(),
            description: webhook.description.clone(),
            events: webhook.events.as_slice().to_vec(),
            enabled: webhook.enabled,
            secret,
        }
    }
}

/// The notification rules' thresholds. They come from the configuration
/// (`STEWARD_NOTIFY_*`), so an import compares them and never changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortableNotificationRules {
    pub failed_sign_ins: u32,
    pub failed_sign_ins_from_ip: u32,
    pub window_minutes: i64,
    pub bulk_records: u64,
}

impl From<Thresholds> for PortableNotificationRules {
    fn from(thresholds: Thresholds) -> Self {
        Self {
            failed_sign_ins: thresholds.failed_sign_ins,
            failed_sign_ins_from_ip: thresholds.failed_sign_ins_from_ip,
            window_minutes: thresholds.window.num_minutes(),
            bulk_records: thresholds.bulk_records,
        }
    }
}

/// A quota plan. Plans come from the configuration (`[plans.<name>]`), so an import compares
/// them and never changes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortablePlan {
    pub name: String,
    pub limits: Limits,
}

/// What of the configuration the store holds, read at one moment.
#[derive(Debug, Clone, Default)]
pub struct ConfigSnapshot {
    pub definitions: Vec<SettingDefinition>,
    pub organizations: Vec<OrganizationRecord>,
    pub policies: Vec<PolicyRecord>,
    pub roles: Vec<CustomRole>,
    pub allowlist_enabled: bool,
    pub allowlist: Vec<AllowlistEntry>,
    /// Instance-wide and organizations' subscriptions (not personal ones).
    pub webhooks: Vec<WebhookRecord>,
}

impl ConfigSnapshot {
    fn slug_of(&self, organization: Uuid) -> Option<&str> {
        self.organizations
            .iter()
            .find(|candidate| candidate.id == organization)
            .map(|organization| organization.slug.as_str())
    }
}

/// The settings of this instance an export reads beside the store.
#[derive(Debug, Clone, Copy)]
pub struct InstanceConfig<'a> {
    pub plans: &'a QuotaPlans,
    pub thresholds: Thresholds,
}

/// Opens a webhook's sealed secret (`None` when it does not open).
pub type SecretOpener<'a> = dyn Fn(&WebhookRecord) -> Option<String> + 'a;

/// The document's data: the categories of `include` from `snapshot`, each sorted by its key.
/// `secret` opens a webhook's secret when secrets are to be included.
pub fn export_data(
    snapshot: &ConfigSnapshot,
    include: &BTreeSet<Category>,
    instance: InstanceConfig<'_>,
    secret: Option<&SecretOpener<'_>>,
) -> ConfigData {
    let wants = |category| include.contains(&category);
    let mut data = ConfigData::default();
    if wants(Category::SettingDefinitions) {
        let mut definitions: Vec<PortableDefinition> = snapshot.definitions.iter().map(Into::into).collect();
        definitions.sort_by(|a, b| a.key.cmp(&b.key));
        data.setting_definitions = Some(definitions);
    }
    if wants(Category::Organizations) {
        let mut organizations: Vec<PortableOrganization> =
            snapshot.organizations.iter().map(Into::into).collect();
        organizations.sort_by(|a, b| a.slug.cmp(&b.slug));
        data.organizations = Some(organizations);
    }
    if wants(Category::Policies) {
        let mut policies: Vec<PortablePolicy> = snapshot
            .policies
            .iter()
            .filter_map(|policy| {
                snapshot
                    .slug_of(policy.organization_id)
                    .map(|slug| PortablePolicy::of(policy, slug))
            })
            .collect();
        policies.sort_by(|a, b| (&a.organization, &a.name).cmp(&(&b.organization, &b.name)));
        data.policies = Some(policies);
    }
    if wants(Category::Roles) {
        let mut roles: Vec<PortableRole> = snapshot.roles.iter().map(Into::into).collect();
        roles.sort_by(|a, b| a.name.cmp(&b.name));
        data.roles = Some(roles);
    }
    if wants(Category::IpAllowlist) {
        let mut entries: Vec<PortableAllowlistEntry> = snapshot.allowlist.iter().map(Into::into).collect();
        entries.sort_by(|a, b| a.network.cmp(&b.network));
        data.ip_allowlist = Some(PortableAllowlist {
            enabled: snapshot.allowlist_enabled,
            entries,
        });
    }
    if wants(Category::Webhooks) {
        let mut webhooks: Vec<PortableWebhook> = snapshot
            .webhooks
            .iter()
            .filter(|webhook| webhook.personal_user_id.is_none())
            .filter_map(|webhook| {
                let slug = match webhook.organization_id {
                    None => None,
                    Some(organization) => Some(snapshot.slug_of(organization)?),
                };
                Some(PortableWebhook::of(
                    webhook,
                    slug,
                    secret.and_then(|open| open(webhook)),
                ))
            })
            .collect();
        webhooks.sort_by(|a, b| (&a.organization, &a.url).cmp(&(&b.organization, &b.url)));
        data.webhooks = Some(webhooks);
    }
    if wants(Category::NotificationRules) {
        data.notification_rules = Some(instance.thresholds.into());
    }
    if wants(Category::Plans) {
        data.plans = Some(
            instance
                .plans
                .names()
                .filter_map(|name| {
                    instance.plans.get(name).map(|limits| PortablePlan {
                        name: name.to_owned(),
                        limits: limits.clone(),
                    })
                })
                .collect(),
        );
    }
    data
}

/// A row an import writes: new, or an existing one (same id) replaced.
#[derive(Debug, Clone, PartialEq)]
pub enum Write<T> {
    Create(T),
    Update(T),
}

impl<T> Write<T> {
    pub fn record(&self) -> &T {
        match self {
            Write::Create(record) | Write::Update(record) => record,
        }
    }
}

/// Everything an import writes, in the order it is applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigChanges {
    pub definitions: Vec<Write<SettingDefinition>>,
    pub organizations: Vec<Write<OrganizationRecord>>,
    pub policies: Vec<Write<PolicyRecord>>,
    pub roles: Vec<Write<CustomRole>>,
    pub allowlist: Vec<Write<AllowlistEntry>>,
    pub allowlist_enabled: Option<bool>,
    /// Each with its secret sealed for its id.
    pub webhooks: Vec<Write<WebhookRecord>>,
}

impl ConfigChanges {
    pub fn is_empty(&self) -> bool {
        self.definitions.is_empty()
            && self.organizations.is_empty()
            && self.policies.is_empty()
            && self.roles.is_empty()
            && self.allowlist.is_empty()
            && self.allowlist_enabled.is_none()
            && self.webhooks.is_empty()
    }
}

/// What an applied import touched beyond its rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedImport {
    /// Devices whose effective settings may have changed (their policies did).
    pub touched_devices: Vec<Uuid>,
}

/// Reads the configuration and applies imports.
pub trait ConfigStore {
    /// The configuration as it is now (read in one transaction).
    fn config_snapshot(&self) -> impl Future<Output = Result<ConfigSnapshot, RepositoryError>> + Send;

    /// Reads the configuration while other imports and allowlist changes wait, lets `decide`
    /// answer the changes and the audit entry, and applies both in the same transaction: all
    /// of it or, on any error, none. `Ok(Err(_))` when `decide` refused (nothing written).
    fn import_config<E, F>(
        &self,
        decide: F,
    ) -> impl Future<Output = Result<Result<AppliedImport, E>, RuleStoreError>> + Send
    where
        E: Send,
        F: FnOnce(&ConfigSnapshot) -> Result<(ConfigChanges, AuditEntry), E> + Send;
}
