//! Device policies: an organization's named sets of setting values and locks, validated
//! against the setting catalog.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::settings::definitions::SettingDefinition;
use crate::{AuditEntry, RepositoryError, RuleError};

/// A policy as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub settings: BTreeMap<String, Value>,
    /// Keys the policy locks; each has a value in `settings`.
    pub locks: Vec<String>,
    pub priority: i32,
    pub is_default: bool,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A policy's name: 1 to 100 characters once trimmed.
pub fn parse_policy_name(value: &str) -> Result<String, RuleError> {
    let name = value.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(RuleError::Invalid {
            field: "name",
            message: "must be 1 to 100 characters",
        });
    }
    Ok(name.to_owned())
}

/// A policy's description: trimmed; blank means none.
pub fn parse_policy_description(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|d| !d.is_empty()).map(str::to_owned)
}

/// One refused part of a policy: the field (a setting key, or `locks.<key>`) and why.
pub type PolicyProblem = (String, String);

/// A policy's canonical settings and its sorted, de-duplicated locks.
pub type ValidPolicy = (BTreeMap<String, Value>, Vec<String>);

/// Canonical settings and sorted, de-duplicated locks, or every problem found: unknown keys,
/// values that do not fit their definitions, locks on keys that are not lockable or that the
/// policy gives no value.
pub fn validate_policy(
    definitions: &[SettingDefinition],
    settings: &BTreeMap<String, Value>,
    locks: &[String],
) -> Result<ValidPolicy, Vec<PolicyProblem>> {
    let mut problems = Vec::new();
    let mut canonical = BTreeMap::new();
    let find = |key: &str| definitions.iter().find(|definition| definition.key == key);
    for (key, value) in settings {
        match find(key) {
            None => problems.push((key.clone(), "unknown setting".to_owned())),
            Some(definition) => match definition.validate(value) {
                Ok(value) => {
                    canonical.insert(key.clone(), value);
                }
                Err(error) => problems.push((key.clone(), error.0)),
            },
        }
    }
    let mut sorted: Vec<String> = locks.to_vec();
    sorted.sort();
    sorted.dedup();
    for key in &sorted {
        let field = format!("locks.{key}");
        match find(key) {
            None => problems.push((field, "unknown setting".to_owned())),
            Some(definition) if !definition.is_lockable => {
                problems.push((field, "this setting cannot be locked".to_owned()))
            }
            Some(_) if !settings.contains_key(key) => {
                problems.push((field, "a locked setting needs a value in `settings`".to_owned()))
            }
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok((canonical, sorted))
    } else {
        Err(problems)
    }
}

pub trait PolicyStore {
    /// `Conflict` when the organization has a policy of that name. Making it the default
    /// unsets the previous default in the same transaction. Like every policy change below, it
    /// bumps the settings version of the devices it reaches and queues their pushes, and
    /// answers those devices. Refused when the organization's policy quota is used up.
    fn create_policy(
        &self,
        policy: &PolicyRecord,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Vec<Uuid>, crate::RuleStoreError>> + Send;

    fn policies(
        &self,
        organization: Uuid,
    ) -> impl Future<Output = Result<Vec<PolicyRecord>, RepositoryError>> + Send;

    /// The policy if it belongs to `organization` (never another organization's).
    fn find_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
    ) -> impl Future<Output = Result<Option<PolicyRecord>, RepositoryError>> + Send;

    fn update_policy(
        &self,
        policy: &PolicyRecord,
        expected_version: Option<i32>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(PolicyRecord, Vec<Uuid>), RepositoryError>> + Send;

    /// Devices and groups carrying the policy lose it.
    fn delete_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Vec<Uuid>, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::settings::definitions::{Constraints, MergeRule, ValueType};

    #[test]
    fn names_are_one_to_a_hundred_characters() {
        assert_eq!(parse_policy_name("  Kiosk  ").as_deref(), Ok("Kiosk"));
        assert!(parse_policy_name(" ").is_err());
        assert!(parse_policy_name(&"p".repeat(101)).is_err());
        assert_eq!(parse_policy_description(Some(" ")), None);
        assert_eq!(
            parse_policy_description(Some(" locked down ")).as_deref(),
            Some("locked down")
        );
    }

    fn definition(key: &str, lockable: bool) -> SettingDefinition {
        SettingDefinition {
            key: key.into(),
            value_type: ValueType::Bool,
            default_value: json!(true),
            constraints: Constraints::default(),
            category: "c".into(),
            description: None,
            is_lockable: lockable,
            merge_rule: MergeRule::Override,
            sort_order: 0,
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let catalog = [
            definition("device.camera_enabled", true),
            definition("notifications.enabled", false),
        ];
        let ok = validate_policy(
            &catalog,
            &BTreeMap::from([("device.camera_enabled".to_owned(), json!(false))]),
            &[
                "device.camera_enabled".to_owned(),
                "device.camera_enabled".to_owned(),
            ],
        )
        .unwrap();
        assert_eq!(ok.1, ["device.camera_enabled"]);
        let problems = validate_policy(
            &catalog,
            &BTreeMap::from([
                ("made.up".to_owned(), json!(1)),
                ("device.camera_enabled".to_owned(), json!("no")),
            ]),
            &["notifications.enabled".to_owned(), "device.other".to_owned()],
        )
        .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "device.camera_enabled",
                "made.up",
                "locks.device.other",
                "locks.notifications.enabled"
            ]
        );
    }
}
