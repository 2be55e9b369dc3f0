//! What an import changes: every item of the document checked (schema, references, the setting
//! catalog, each kind's own rules) and compared with the instance by its natural key, into a
//! diff (`create | update | unchanged | conflict` per item) and the rows to write. Pure: the
//! store reads the snapshot and applies the answer in one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    Category, ConfigChanges, ConfigData, ConfigSnapshot, InstanceConfig, PortableAllowlistEntry,
    PortableDefinition, PortableNotificationRules, PortableOrganization, PortablePolicy, PortableRole,
    PortableWebhook, Write,
};
use crate::events::webhooks::{EventPatterns, MAX_WEBHOOKS_PER_SCOPE, OutboundRules, WebhookRecord};
use crate::ip_allowlist::{
    AllowlistEntry, AllowlistSnapshot, MAX_ENTRIES, check_label, parse_network, would_lock_out,
};
use crate::organizations::{
    OrganizationRecord, Slug, parse_org_description, parse_org_name, parse_org_settings,
};
use crate::policies::{PolicyRecord, parse_policy_description, parse_policy_name, validate_policy};
use crate::quotas::{OrgQuota, QuotaKey};
use crate::roles::{CustomRole, MAX_CUSTOM_ROLES, parse_description, parse_permissions, parse_role_name};
use crate::settings::SettingDefinition;

/// The most items of one category a document may hold.
pub const MAX_ITEMS: usize = 10_000;

/// What an import does with an item that exists here and differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Keep this instance's (the item is reported as `conflict`).
    #[default]
    Skip,
    /// Replace it with the document's (reported as `update`).
    Overwrite,
}

impl OnConflict {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "skip" => Some(Self::Skip),
            "overwrite" => Some(Self::Overwrite),
            _ => None,
        }
    }
}

/// One thing wrong with the document; an import with any is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where: `policies[2].settings`, `webhooks[0].url`.
    pub field: String,
    pub message: String,
}

fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        field: field.into(),
        message: message.into(),
    }
}

/// What the import does with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemAction {
    Create,
    Update,
    Unchanged,
    Conflict,
}

/// One item of the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemDiff {
    pub category: Category,
    /// The organization's slug, for policies and organizations' webhooks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The item's natural key: a setting's key, a slug, a name, a network, a URL.
    pub key: String,
    pub action: ItemAction,
    /// The fields that differ, for `update` and `conflict`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// Why an item is a conflict.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The rules an import is checked by.
#[derive(Debug, Clone, Copy)]
pub struct ImportRules<'a> {
    pub on_conflict: OnConflict,
    pub instance: InstanceConfig<'a>,
    /// Where webhooks may point.
    pub outbound: &'a OutboundRules,
    /// The importing operator's address, checked against the allowlist the import leaves;
    /// `None` from the command line, which the allowlist does not guard.
    pub caller: Option<Option<IpAddr>>,
    /// Who creates what is new (webhooks and allowlist entries record it).
    pub actor: Option<Uuid>,
    pub now: DateTime<Utc>,
}

/// The decision: the diff, the rows to write, and the webhook secrets to seal (by webhook id:
/// the document's secret, or `None` for a new random one).
#[derive(Debug, Clone, Default)]
pub struct ImportPlan {
    pub diff: Vec<ItemDiff>,
    pub changes: ConfigChanges,
    pub secrets: BTreeMap<Uuid, Option<String>>,
}

impl ImportPlan {
    /// How many items of each action.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::from([("create", 0), ("update", 0), ("unchanged", 0), ("conflict", 0)]);
        for item in &self.diff {
            let name = match item.action {
                ItemAction::Create => "create",
                ItemAction::Update => "update",
                ItemAction::Unchanged => "unchanged",
                ItemAction::Conflict => "conflict",
            };
            *counts.entry(name).or_default() += 1;
        }
        counts
    }
}

/// The top-level fields whose JSON differs.
fn changed_fields<T: Serialize>(here: &T, there: &T) -> Vec<String> {
    let (Ok(Value::Object(here)), Ok(Value::Object(there))) =
        (serde_json::to_value(here), serde_json::to_value(there))
    else {
        return vec!["*".to_owned()];
    };
    let keys: BTreeSet<&String> = here.keys().chain(there.keys()).collect();
    keys.into_iter()
        .filter(|key| here.get(*key) != there.get(*key))
        .cloned()
        .collect()
}

/// Counts one more occurrence of `key`; answers how many came before it.
fn seen_count(seen: &mut BTreeMap<String, usize>, key: String) -> &mut usize {
    let count = seen.entry(key).or_insert(usize::MAX);
    *count = count.wrapping_add(1);
    count
}

/// Text without control characters (new lines allowed where `multiline`), at most `max` chars.
fn plain_text(text: &str, max: usize, multiline: bool) -> bool {
    text.chars().count() <= max && !text.chars().any(|c| c.is_control() && !(multiline && c == '\n'))
}

struct Planner<'a> {
    snapshot: &'a ConfigSnapshot,
    rules: ImportRules<'a>,
    plan: ImportPlan,
    problems: Vec<Problem>,
    new_id: &'a mut dyn FnMut() -> Uuid,
}

impl Planner<'_> {
    /// Records an item that exists here: unchanged, or differing (update or conflict by the
    /// rule); answers whether to write it.
    fn existing(
        &mut self,
        category: Category,
        organization: Option<&str>,
        key: &str,
        fields: Vec<String>,
    ) -> bool {
        let (action, reason) = if fields.is_empty() {
            (ItemAction::Unchanged, None)
        } else if self.rules.on_conflict == OnConflict::Overwrite {
            (ItemAction::Update, None)
        } else {
            (
                ItemAction::Conflict,
                Some("differs on this instance; kept (onConflict=skip)".to_owned()),
            )
        };
        self.item(category, organization, key, action, fields, reason);
        action == ItemAction::Update
    }

    fn item(
        &mut self,
        category: Category,
        organization: Option<&str>,
        key: &str,
        action: ItemAction,
        fields: Vec<String>,
        reason: Option<String>,
    ) {
        self.plan.diff.push(ItemDiff {
            category,
            organization: organization.map(str::to_owned),
            key: key.to_owned(),
            action,
            fields,
            reason,
        });
    }

    fn duplicate(&mut self, seen: &mut BTreeSet<String>, key: String, field: String) -> bool {
        if seen.insert(key) {
            return false;
        }
        self.problems
            .push(problem(field, "appears twice in the document"));
        true
    }

    /// The catalog after the import: this instance's definitions with the written ones.
    fn definitions(&mut self, items: &[PortableDefinition]) -> Vec<SettingDefinition> {
        let mut catalog = self.snapshot.definitions.clone();
        let mut seen = BTreeSet::new();
        for (index, item) in items.iter().enumerate() {
            let at = |field: &str| format!("settingDefinitions[{index}].{field}");
            let definition = SettingDefinition {
                key: item.key.clone(),
                value_type: item.value_type,
                default_value: item.default_value.clone(),
                constraints: item.constraints.clone(),
                category: item.category.trim().to_owned(),
                description: item.description.clone(),
                is_lockable: item.is_lockable,
                merge_rule: item.merge_rule,
                sort_order: item.sort_order,
            };
            if let Err((field, error)) = definition.check() {
                self.problems.push(problem(at(field), error.0));
                continue;
            }
            if definition.category.is_empty() || !plain_text(&definition.category, 100, false) {
                self.problems.push(problem(
                    at("category"),
                    "must be 1 to 100 characters without control characters",
                ));
                continue;
            }
            if let Some(description) = &definition.description
                && !plain_text(description, 1000, true)
            {
                self.problems.push(problem(
                    at("description"),
                    "must be at most 1000 characters without control characters",
                ));
                continue;
            }
            if self.duplicate(&mut seen, definition.key.clone(), at("key")) {
                continue;
            }
            let portable = PortableDefinition::from(&definition);
            match catalog.iter().position(|existing| existing.key == definition.key) {
                None => {
                    self.item(
                        Category::SettingDefinitions,
                        None,
                        &definition.key,
                        ItemAction::Create,
                        Vec::new(),
                        None,
                    );
                    self.plan
                        .changes
                        .definitions
                        .push(Write::Create(definition.clone()));
                    catalog.push(definition);
                }
                Some(position) => {
                    let fields = changed_fields(&PortableDefinition::from(&catalog[position]), &portable);
                    if self.existing(Category::SettingDefinitions, None, &definition.key, fields) {
                        self.plan
                            .changes
                            .definitions
                            .push(Write::Update(definition.clone()));
                        catalog[position] = definition;
                    }
                }
            }
        }
        catalog
    }

    /// The organizations after the import (slug → id).
    fn organizations(&mut self, items: Option<&[PortableOrganization]>) -> BTreeMap<String, Uuid> {
        let mut slugs: BTreeMap<String, Uuid> = self
            .snapshot
            .organizations
            .iter()
            .map(|organization| (organization.slug.clone(), organization.id))
            .collect();
        let mut seen = BTreeSet::new();
        for (index, item) in items.unwrap_or_default().iter().enumerate() {
            let at = |field: &str| format!("organizations[{index}].{field}");
            let before = self.problems.len();
            let slug = Slug::parse(&item.slug).map_err(|error| problem(at("slug"), error.to_string()));
            let name = parse_org_name(&item.name).map_err(|error| problem(at("name"), error.to_string()));
            let settings = parse_org_settings(item.settings.clone())
                .map_err(|error| problem(at("settings"), error.to_string()));
            let description = parse_org_description(item.description.as_deref());
            if let Some(description) = &description
                && !plain_text(description, 2000, true)
            {
                self.problems.push(problem(
                    at("description"),
                    "must be at most 2000 characters without control characters",
                ));
            }
            if self.rules.instance.plans.get(&item.plan).is_none() {
                self.problems.push(problem(
                    at("plan"),
                    format!(
                        "no plan `{}` is configured on this instance (plans: {})",
                        item.plan,
                        self.rules.instance.plans.names().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if let Some(key) = item
                .quota_overrides
                .keys()
                .find(|key| !QuotaKey::ORGANIZATION.contains(key))
            {
                self.problems.push(problem(
                    at("quotaOverrides"),
                    format!("`{}` is an account's limit, not an organization's", key.as_str()),
                ));
            }
            let (Ok(slug), Ok(name), Ok(settings)) = (slug, name, settings) else {
                let errors = [
                    Slug::parse(&item.slug)
                        .err()
                        .map(|e| problem(at("slug"), e.to_string())),
                    parse_org_name(&item.name)
                        .err()
                        .map(|e| problem(at("name"), e.to_string())),
                    parse_org_settings(item.settings.clone())
                        .err()
                        .map(|e| problem(at("settings"), e.to_string())),
                ];
                self.problems.extend(errors.into_iter().flatten());
                continue;
            };
            if self.problems.len() > before || self.duplicate(&mut seen, slug.as_str().to_owned(), at("slug"))
            {
                continue;
            }
            let quota = OrgQuota {
                plan: item.plan.clone(),
                overrides: item.quota_overrides.clone(),
            };
            let now = self.rules.now;
            match self
                .snapshot
                .organizations
                .iter()
                .find(|o| o.slug == slug.as_str())
            {
                None => {
                    let record = OrganizationRecord {
                        id: (self.new_id)(),
                        name,
                        slug: slug.as_str().to_owned(),
                        description,
                        status: "active".to_owned(),
                        is_default: false,
                        settings,
                        version: 1,
                        created_at: now,
                        updated_at: now,
                        quota,
                    };
                    self.item(
                        Category::Organizations,
                        None,
                        &record.slug,
                        ItemAction::Create,
                        Vec::new(),
                        None,
                    );
                    slugs.insert(record.slug.clone(), record.id);
                    self.plan.changes.organizations.push(Write::Create(record));
                }
                Some(existing) => {
                    let mut record = existing.clone();
                    record.name = name;
                    record.description = description;
                    record.settings = settings;
                    record.quota = quota;
                    record.updated_at = now;
                    let fields = changed_fields(
                        &PortableOrganization::from(existing),
                        &PortableOrganization::from(&record),
                    );
                    if self.existing(Category::Organizations, None, &record.slug, fields) {
                        self.plan.changes.organizations.push(Write::Update(record));
                    }
                }
            }
        }
        slugs
    }

    fn policies(
        &mut self,
        items: &[PortablePolicy],
        catalog: &[SettingDefinition],
        slugs: &BTreeMap<String, Uuid>,
    ) {
        let mut seen = BTreeSet::new();
        let mut defaults = BTreeSet::new();
        for (index, item) in items.iter().enumerate() {
            let at = |field: &str| format!("policies[{index}].{field}");
            let Some(&organization) = slugs.get(&item.organization) else {
                self.problems.push(problem(
                    at("organization"),
                    format!("no organization `{}` here or in the document", item.organization),
                ));
                continue;
            };
            let name = match parse_policy_name(&item.name) {
                Ok(name) => name,
                Err(error) => {
                    self.problems.push(problem(at("name"), error.to_string()));
                    continue;
                }
            };
            let description = parse_policy_description(item.description.as_deref());
            if let Some(description) = &description
                && !plain_text(description, 1000, true)
            {
                self.problems.push(problem(
                    at("description"),
                    "must be at most 1000 characters without control characters",
                ));
                continue;
            }
            let (settings, locks) = match validate_policy(catalog, &item.settings, &item.locks) {
                Ok(valid) => valid,
                Err(found) => {
                    for (key, message) in found {
                        self.problems
                            .push(problem(format!("policies[{index}].settings.{key}"), message));
                    }
                    continue;
                }
            };
            if self.duplicate(&mut seen, format!("{}\u{0}{name}", item.organization), at("name")) {
                continue;
            }
            if item.is_default && !defaults.insert(item.organization.clone()) {
                self.problems.push(problem(
                    at("isDefault"),
                    "a second default policy for this organization in the document",
                ));
                continue;
            }
            let now = self.rules.now;
            let existing = self
                .snapshot
                .policies
                .iter()
                .find(|policy| policy.organization_id == organization && policy.name == name);
            let mut record = existing.cloned().unwrap_or_else(|| PolicyRecord {
                id: (self.new_id)(),
                organization_id: organization,
                name: name.clone(),
                description: None,
                settings: BTreeMap::new(),
                locks: Vec::new(),
                priority: 0,
                is_default: false,
                version: 1,
                created_at: now,
                updated_at: now,
            });
            record.description = description;
            record.settings = settings;
            record.locks = locks;
            record.priority = item.priority;
            record.is_default = item.is_default;
            record.updated_at = now;
            let slug = Some(item.organization.as_str());
            // A new default takes the place of the organization's current one: a change of
            // that policy too, kept under `skip`.
            let replaced = self
                .snapshot
                .policies
                .iter()
                .find(|policy| {
                    policy.organization_id == organization && policy.is_default && policy.name != name
                })
                .filter(|_| item.is_default);
            if let Some(replaced) = replaced {
                if self.rules.on_conflict == OnConflict::Skip {
                    self.item(
                        Category::Policies,
                        slug,
                        &name,
                        ItemAction::Conflict,
                        vec!["isDefault".to_owned()],
                        Some(format!(
                            "would replace `{}` as the organization's default policy; kept (onConflict=skip)",
                            replaced.name
                        )),
                    );
                    continue;
                }
                let named_in_file = items.iter().any(|other| {
                    other.organization == item.organization && other.name.trim() == replaced.name
                });
                if !named_in_file {
                    let replaced_name = replaced.name.clone();
                    self.item(
                        Category::Policies,
                        slug,
                        &replaced_name,
                        ItemAction::Update,
                        vec!["isDefault".to_owned()],
                        Some(format!("no longer the default: `{name}` is")),
                    );
                }
            }
            match existing {
                None => {
                    self.item(
                        Category::Policies,
                        slug,
                        &name,
                        ItemAction::Create,
                        Vec::new(),
                        None,
                    );
                    self.plan.changes.policies.push(Write::Create(record));
                }
                Some(existing) => {
                    let fields = changed_fields(
                        &PortablePolicy::of(existing, &item.organization),
                        &PortablePolicy::of(&record, &item.organization),
                    );
                    if self.existing(Category::Policies, slug, &name, fields) {
                        self.plan.changes.policies.push(Write::Update(record));
                    }
                }
            }
        }
    }

    fn roles(&mut self, items: &[PortableRole]) {
        let mut seen = BTreeSet::new();
        let mut count = self.snapshot.roles.len();
        for (index, item) in items.iter().enumerate() {
            let at = |field: &str| format!("roles[{index}].{field}");
            let permissions: Vec<String> = item.permissions.iter().cloned().collect();
            let parsed = (
                parse_role_name(&item.name),
                parse_permissions(&permissions),
                parse_description(item.description.as_deref()),
            );
            let (name, permissions, description) = match parsed {
                (Ok(name), Ok(permissions), Ok(description)) => (name, permissions, description),
                (name, permissions, description) => {
                    for (field, error) in [
                        ("name", name.err()),
                        ("permissions", permissions.err()),
                        ("description", description.err()),
                    ] {
                        if let Some(error) = error {
                            self.problems.push(problem(at(field), error.to_string()));
                        }
                    }
                    continue;
                }
            };
            if self.duplicate(&mut seen, name.clone(), at("name")) {
                continue;
            }
            let now = self.rules.now;
            match self.snapshot.roles.iter().find(|role| role.name == name) {
                None => {
                    count += 1;
                    if count > MAX_CUSTOM_ROLES {
                        self.problems.push(problem(
                            at("name"),
                            format!("an instance holds at most {MAX_CUSTOM_ROLES} custom roles"),
                        ));
                        continue;
                    }
                    self.item(Category::Roles, None, &name, ItemAction::Create, Vec::new(), None);
                    self.plan.changes.roles.push(Write::Create(CustomRole {
                        name,
                        description,
                        permissions,
                        created_at: now,
                        updated_at: now,
                    }));
                }
                Some(existing) => {
                    let mut record = existing.clone();
                    record.description = description;
                    record.permissions = permissions;
                    record.updated_at = now;
                    let fields = changed_fields(&PortableRole::from(existing), &PortableRole::from(&record));
                    if self.existing(Category::Roles, None, &name, fields) {
                        self.plan.changes.roles.push(Write::Update(record));
                    }
                }
            }
        }
    }

    fn allowlist(&mut self, enabled: bool, items: &[PortableAllowlistEntry]) {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut networks: Vec<_> = self
            .snapshot
            .allowlist
            .iter()
            .map(|entry| entry.network)
            .collect();
        for (index, item) in items.iter().enumerate() {
            let at = |field: &str| format!("ipAllowlist.entries[{index}].{field}");
            let network = match parse_network(&item.network) {
                Ok(network) => network,
                Err(message) => {
                    self.problems.push(problem(at("network"), message));
                    continue;
                }
            };
            if let Err((field, message)) = check_label(&item.name, item.description.as_deref()) {
                self.problems.push(problem(at(field), message));
                continue;
            }
            let key = network.to_string();
            // The list may hold a network twice (under two names): the file's n-th entry of a
            // network is this instance's n-th of it.
            let occurrence = *seen_count(&mut seen, key.clone());
            let description = item
                .description
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned);
            let now = self.rules.now;
            match self
                .snapshot
                .allowlist
                .iter()
                .filter(|entry| entry.network == network)
                .nth(occurrence)
            {
                None => {
                    networks.push(network);
                    if networks.len() > MAX_ENTRIES {
                        self.problems.push(problem(
                            at("network"),
                            format!("the allowlist holds at most {MAX_ENTRIES} entries"),
                        ));
                        continue;
                    }
                    self.item(
                        Category::IpAllowlist,
                        None,
                        &key,
                        ItemAction::Create,
                        Vec::new(),
                        None,
                    );
                    self.plan.changes.allowlist.push(Write::Create(AllowlistEntry {
                        id: (self.new_id)(),
                        network,
                        name: item.name.trim().to_owned(),
                        description,
                        created_by: self.rules.actor,
                        created_at: now,
                        updated_at: now,
                    }));
                }
                Some(existing) => {
                    let mut record = existing.clone();
                    record.name = item.name.trim().to_owned();
                    record.description = description;
                    record.updated_at = now;
                    let fields = changed_fields(
                        &PortableAllowlistEntry::from(existing),
                        &PortableAllowlistEntry::from(&record),
                    );
                    if self.existing(Category::IpAllowlist, None, &key, fields) {
                        self.plan.changes.allowlist.push(Write::Update(record));
                    }
                }
            }
        }
        let fields = if enabled == self.snapshot.allowlist_enabled {
            Vec::new()
        } else {
            vec!["enabled".to_owned()]
        };
        if self.existing(Category::IpAllowlist, None, "enabled", fields) {
            self.plan.changes.allowlist_enabled = Some(enabled);
        }
        let after = AllowlistSnapshot {
            enabled: self
                .plan
                .changes
                .allowlist_enabled
                .unwrap_or(self.snapshot.allowlist_enabled),
            networks,
        };
        if after.enabled && after.networks.is_empty() {
            self.problems.push(problem(
                "ipAllowlist.enabled",
                "an enforced allowlist without networks would refuse everyone",
            ));
        } else if let Some(caller) = self.rules.caller
            && would_lock_out(&after, caller)
        {
            self.problems.push(problem(
                "ipAllowlist",
                "the allowlist this import leaves does not allow your address: you would lock yourself out",
            ));
        }
    }

    fn webhooks(
        &mut self,
        items: &[PortableWebhook],
        slugs: &BTreeMap<String, Uuid>,
        secret: &dyn Fn(&WebhookRecord) -> Option<String>,
    ) {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut per_scope: BTreeMap<Option<Uuid>, u64> = BTreeMap::new();
        for webhook in &self.snapshot.webhooks {
            if webhook.personal_user_id.is_none() {
                *per_scope.entry(webhook.organization_id).or_default() += 1;
            }
        }
        for (index, item) in items.iter().enumerate() {
            let at = |field: &str| format!("webhooks[{index}].{field}");
            let organization = match &item.organization {
                None => None,
                Some(slug) => match slugs.get(slug) {
                    Some(id) => Some(*id),
                    None => {
                        self.problems.push(problem(
                            at("organization"),
                            format!("no organization `{slug}` here or in the document"),
                        ));
                        continue;
                    }
                },
            };
            let url = match self
                .rules
                .outbound
                .for_scope(organization.is_some())
                .check_url(item.url.trim())
            {
                Ok(url) => url.to_string(),
                Err(error) => {
                    self.problems.push(problem(at("url"), error.to_string()));
                    continue;
                }
            };
            let events = match EventPatterns::parse(&item.events) {
                Ok(events) => events,
                Err(error) => {
                    self.problems.push(problem(at("events"), error.to_string()));
                    continue;
                }
            };
            let description = item
                .description
                .as_deref()
                .map(str::trim)
                .filter(|text| !text.is_empty())
                .map(str::to_owned);
            if let Some(description) = &description
                && !plain_text(description, 500, true)
            {
                self.problems.push(problem(
                    at("description"),
                    "must be at most 500 characters without control characters",
                ));
                continue;
            }
            if let Some(secret) = &item.secret
                && (!(16..=256).contains(&secret.chars().count()) || !plain_text(secret, 256, false))
            {
                self.problems.push(problem(
                    at("secret"),
                    "must be 16 to 256 characters without control characters",
                ));
                continue;
            }
            let slug = item.organization.as_deref();
            // Two subscriptions of one scope may share an address: the file's n-th is this
            // instance's n-th.
            let occurrence = *seen_count(&mut seen, format!("{}\u{0}{url}", slug.unwrap_or_default()));
            let now = self.rules.now;
            let matching: Option<&WebhookRecord> = self
                .snapshot
                .webhooks
                .iter()
                .filter(|webhook| {
                    webhook.personal_user_id.is_none()
                        && webhook.organization_id == organization
                        && webhook.url == url
                })
                .nth(occurrence);
            match matching {
                None => {
                    let Some(actor) = self.rules.actor else {
                        self.problems
                            .push(problem(at("url"), "a new webhook needs an operator to own it"));
                        continue;
                    };
                    let count = per_scope.entry(organization).or_default();
                    *count += 1;
                    if *count > MAX_WEBHOOKS_PER_SCOPE {
                        self.problems.push(problem(
                            at("url"),
                            format!(
                                "at most {MAX_WEBHOOKS_PER_SCOPE} webhooks per organization and instance-wide"
                            ),
                        ));
                        continue;
                    }
                    let record = WebhookRecord {
                        id: (self.new_id)(),
                        organization_id: organization,
                        url: url.clone(),
                        description,
                        events,
                        secret_sealed: String::new(),
                        previous_secret_sealed: None,
                        previous_secret_until: None,
                        enabled: item.enabled,
                        consecutive_failures: 0,
                        disabled_reason: None,
                        created_by: actor,
                        personal_user_id: None,
                        created_at: now,
                        updated_at: now,
                        version: 1,
                    };
                    self.item(
                        Category::Webhooks,
                        slug,
                        &url,
                        ItemAction::Create,
                        Vec::new(),
                        None,
                    );
                    self.plan.secrets.insert(record.id, item.secret.clone());
                    self.plan.changes.webhooks.push(Write::Create(record));
                }
                Some(existing) => {
                    let current = secret(existing);
                    let mut record = (*existing).clone();
                    record.description = description;
                    record.events = events;
                    if item.enabled && !record.enabled {
                        record.consecutive_failures = 0;
                        record.disabled_reason = None;
                        // As `PUT /webhooks/{id}`: who turns it on answers for it.
                        if let Some(actor) = self.rules.actor {
                            record.created_by = actor;
                        }
                    }
                    record.enabled = item.enabled;
                    record.updated_at = now;
                    // Without a secret in the document the one here stays.
                    let incoming_secret = item.secret.clone().or_else(|| current.clone());
                    let fields = changed_fields(
                        &PortableWebhook::of(existing, slug, current),
                        &PortableWebhook::of(&record, slug, incoming_secret),
                    );
                    let new_secret = fields.iter().any(|field| field == "secret");
                    if self.existing(Category::Webhooks, slug, &url, fields) {
                        if new_secret {
                            self.plan.secrets.insert(record.id, item.secret.clone());
                            record.previous_secret_sealed = None;
                            record.previous_secret_until = None;
                        }
                        self.plan.changes.webhooks.push(Write::Update(record));
                    }
                }
            }
        }
    }

    /// Notification rules and plans come from the configuration: compared, never written.
    fn configured(
        &mut self,
        rules: Option<&PortableNotificationRules>,
        plans: Option<&[super::PortablePlan]>,
    ) {
        if let Some(rules) = rules {
            let here = PortableNotificationRules::from(self.rules.instance.thresholds);
            let fields = changed_fields(&here, rules);
            let (action, reason) = if fields.is_empty() {
                (ItemAction::Unchanged, None)
            } else {
                (
                    ItemAction::Conflict,
                    Some(
                        "the notification rules are set by STEWARD_NOTIFY_* in this instance's configuration; \
                         an import does not change them"
                            .to_owned(),
                    ),
                )
            };
            self.item(
                Category::NotificationRules,
                None,
                "thresholds",
                action,
                fields,
                reason,
            );
        }
        let mut seen = BTreeSet::new();
        for (index, plan) in plans.unwrap_or_default().iter().enumerate() {
            if self.duplicate(&mut seen, plan.name.clone(), format!("plans[{index}].name")) {
                continue;
            }
            let (action, reason) = match self.rules.instance.plans.get(&plan.name) {
                Some(limits) if *limits == plan.limits => (ItemAction::Unchanged, None),
                Some(_) => (
                    ItemAction::Conflict,
                    Some(format!(
                        "configured differently here; plans are set by [plans.{}] in the configuration",
                        plan.name
                    )),
                ),
                None => (
                    ItemAction::Conflict,
                    Some(format!(
                        "not configured here; add [plans.{}] to the configuration",
                        plan.name
                    )),
                ),
            };
            let fields = if action == ItemAction::Conflict {
                vec!["limits".to_owned()]
            } else {
                Vec::new()
            };
            self.item(Category::Plans, None, &plan.name, action, fields, reason);
        }
    }
}

/// Checks `incoming` and compares it with `snapshot`: the diff and the writes, or every problem
/// found. `secret` opens the secret of a webhook here (to tell whether the document's differs);
/// `new_id` names new rows. Items absent from the document are left as they are.
pub fn plan_import(
    snapshot: &ConfigSnapshot,
    incoming: &ConfigData,
    rules: ImportRules<'_>,
    secret: &dyn Fn(&WebhookRecord) -> Option<String>,
    new_id: &mut dyn FnMut() -> Uuid,
) -> Result<ImportPlan, Vec<Problem>> {
    let sizes = [
        (
            "settingDefinitions",
            incoming.setting_definitions.as_ref().map_or(0, Vec::len),
        ),
        (
            "organizations",
            incoming.organizations.as_ref().map_or(0, Vec::len),
        ),
        ("policies", incoming.policies.as_ref().map_or(0, Vec::len)),
        ("roles", incoming.roles.as_ref().map_or(0, Vec::len)),
        (
            "ipAllowlist.entries",
            incoming
                .ip_allowlist
                .as_ref()
                .map_or(0, |list| list.entries.len()),
        ),
        ("webhooks", incoming.webhooks.as_ref().map_or(0, Vec::len)),
        ("plans", incoming.plans.as_ref().map_or(0, Vec::len)),
    ];
    let oversized: Vec<Problem> = sizes
        .iter()
        .filter(|(_, size)| *size > MAX_ITEMS)
        .map(|(field, _)| problem(*field, format!("at most {MAX_ITEMS} items")))
        .collect();
    if !oversized.is_empty() {
        return Err(oversized);
    }
    let mut planner = Planner {
        snapshot,
        rules,
        plan: ImportPlan::default(),
        problems: Vec::new(),
        new_id,
    };
    let catalog = planner.definitions(incoming.setting_definitions.as_deref().unwrap_or_default());
    let slugs = planner.organizations(incoming.organizations.as_deref());
    planner.policies(incoming.policies.as_deref().unwrap_or_default(), &catalog, &slugs);
    planner.roles(incoming.roles.as_deref().unwrap_or_default());
    if let Some(allowlist) = &incoming.ip_allowlist {
        planner.allowlist(allowlist.enabled, &allowlist.entries);
    }
    planner.webhooks(incoming.webhooks.as_deref().unwrap_or_default(), &slugs, secret);
    planner.configured(incoming.notification_rules.as_ref(), incoming.plans.as_deref());
    if planner.problems.is_empty() {
        Ok(planner.plan)
    } else {
        Err(planner.problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::Thresholds;
    use crate::quotas::QuotaPlans;

    fn rules<'a>(
        plans: &'a QuotaPlans,
        outbound: &'a OutboundRules,
        on_conflict: OnConflict,
    ) -> ImportRules<'a> {
        ImportRules {
            on_conflict,
            instance: InstanceConfig {
                plans,
                thresholds: Thresholds::default(),
            },
            outbound,
            caller: None,
            actor: Some(Uuid::nil()),
            now: Utc::now(),
        }
    }

    fn entry(network: &str, name: &str) -> AllowlistEntry {
        AllowlistEntry {
            id: Uuid::now_v7(),
            network: parse_network(network).unwrap(),
            name: name.to_owned(),
            description: None,
            created_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn data(value: serde_json::Value) -> ConfigData {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_network_held_twice_pairs_in_order_and_differences_follow_the_rule() {
        let snapshot = ConfigSnapshot {
            allowlist: vec![entry("10.0.0.0/8", "office"), entry("10.0.0.0/8", "vpn")],
            ..ConfigSnapshot::default()
        };
        let incoming = data(serde_json::json!({"ipAllowlist": {"enabled": false, "entries": [
            {"network": "10.0.0.0/8", "name": "office"},
            {"network": "10.0.0.0/8", "name": "remote"},
            {"network": "10.0.0.0/8", "name": "third"}]}}));
        let plans = QuotaPlans::new(BTreeMap::new());
        let outbound = OutboundRules::default();
        let never = |_: &WebhookRecord| None;
        let skip = plan_import(
            &snapshot,
            &incoming,
            rules(&plans, &outbound, OnConflict::Skip),
            &never,
            &mut Uuid::now_v7,
        )
        .unwrap();
        let actions: Vec<ItemAction> = skip.diff.iter().map(|item| item.action).collect();
        assert_eq!(
            actions,
            [
                ItemAction::Unchanged,
                ItemAction::Conflict,
                ItemAction::Create,
                ItemAction::Unchanged
            ]
        );
        assert_eq!(skip.changes.allowlist.len(), 1);
        let overwrite = plan_import(
            &snapshot,
            &incoming,
            rules(&plans, &outbound, OnConflict::Overwrite),
            &never,
            &mut Uuid::now_v7,
        )
        .unwrap();
        assert_eq!(overwrite.counts()["update"], 1);
        match &overwrite.changes.allowlist[0] {
            Write::Update(entry) => {
                assert_eq!(entry.id, snapshot.allowlist[1].id);
                assert_eq!(entry.name, "remote");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_problem_is_named_and_nothing_is_planned() {
        let incoming = data(serde_json::json!({
            "policies": [{"organization": "nowhere", "name": "Baseline"}],
            "roles": [{"name": "super_admin", "permissions": ["users:read"]},
                      {"name": "reader", "permissions": ["no:such"]}],
            "organizations": [{"slug": "acme", "name": "Acme", "plan": "gold"}],
            "ipAllowlist": {"enabled": true, "entries": []}
        }));
        let plans = QuotaPlans::new(BTreeMap::new());
        let outbound = OutboundRules::default();
        let never = |_: &WebhookRecord| None;
        let problems = plan_import(
            &ConfigSnapshot::default(),
            &incoming,
            rules(&plans, &outbound, OnConflict::Overwrite),
            &never,
            &mut Uuid::now_v7,
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|problem| problem.field.as_str()).collect();
        for field in [
            "organizations[0].plan",
            "policies[0].organization",
            "roles[0].name",
            "roles[1].permissions",
            "ipAllowlist.enabled",
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
    }

    #[test]
    fn plans_and_notification_rules_are_compared_never_written() {
        let incoming = data(serde_json::json!({
            "plans": [{"name": "free", "limits": {}}, {"name": "gold", "limits": {"devices": 10}}],
            "notificationRules": {"failedSignIns": 5, "failedSignInsFromIp": 20, "windowMinutes": 10, "bulkRecords": 7}
        }));
        let plans = QuotaPlans::new(BTreeMap::new());
        let outbound = OutboundRules::default();
        let never = |_: &WebhookRecord| None;
        let plan = plan_import(
            &ConfigSnapshot::default(),
            &incoming,
            rules(&plans, &outbound, OnConflict::Overwrite),
            &never,
            &mut Uuid::now_v7,
        )
        .unwrap();
        assert!(plan.changes.is_empty());
        let rules_item = plan
            .diff
            .iter()
            .find(|item| item.category == Category::NotificationRules)
            .unwrap();
        assert_eq!(
            (rules_item.action, rules_item.fields.clone()),
            (ItemAction::Conflict, vec!["bulkRecords".to_owned()])
        );
        let actions: Vec<(&str, ItemAction)> = plan
            .diff
            .iter()
            .filter(|item| item.category == Category::Plans)
            .map(|item| (item.key.as_str(), item.action))
            .collect();
        assert_eq!(
            actions,
            [("free", ItemAction::Unchanged), ("gold", ItemAction::Conflict)]
        );
    }
}
