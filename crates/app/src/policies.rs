//! Device policy use cases: an organization's policies, validated against the setting catalog.
//! Every change forgets the settings this instance remembered of the devices it touched.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::{Value, json};
use steward_domain::organizations::OrgRuleError;
use steward_domain::policies::{PolicyRecord, parse_policy_description, parse_policy_name, validate_policy};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError, RequestOrigin};
use uuid::Uuid;

use crate::error::{AppError, FieldError};
use crate::steward::{Steward, Store};

/// A policy as an administrator writes it.
#[derive(Debug, Clone, Default)]
pub struct PolicyDraft {
    pub name: String,
    pub description: Option<String>,
    pub settings: BTreeMap<String, Value>,
    pub locks: Vec<String>,
    pub priority: i32,
    pub is_default: bool,
}

pub struct PolicyService<'a, S> {
    steward: &'a Steward<S>,
}

fn audit(
    actor: Uuid,
    action: &'static str,
    organization: Uuid,
    policy: Uuid,
    origin: &RequestOrigin,
) -> AuditEntry {
    AuditEntry::new(Actor::admin(actor), AuditAction::known(action), "device_policy")
        .resource_id(policy)
        .organization(organization)
        .origin(origin.clone())
}

fn name_taken(error: RepositoryError) -> AppError {
    match error {
        RepositoryError::Conflict(_) => AppError::conflict("the organization has a policy of that name"),
        other => other.into(),
    }
}

impl<'a, S: Store> PolicyService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// The organization's policies, highest priority first.
    pub async fn list(&self, organization: Uuid) -> Result<Vec<PolicyRecord>, AppError> {
        Ok(self.steward.store.policies(organization).await?)
    }

    pub async fn get(&self, organization: Uuid, policy: Uuid) -> Result<PolicyRecord, AppError> {
        Ok(self
            .steward
            .store
            .find_policy(organization, policy)
            .await?
            .ok_or(OrgRuleError::NotFound)?)
    }

    /// `draft` checked against the catalog, into `base` (whose id and times stay).
    async fn checked(&self, draft: PolicyDraft, mut base: PolicyRecord) -> Result<PolicyRecord, AppError> {
        let name = parse_policy_name(&draft.name)?;
        let catalog = self.steward.settings_catalog.load(&self.steward.store).await?;
        let (settings, locks) = validate_policy(&catalog.definitions, &draft.settings, &draft.locks)
            .map_err(|problems| {
                AppError::validation("the policy does not fit the setting catalog").with_details(
                    problems
                        .into_iter()
                        .map(|(field, message)| FieldError { field, message })
                        .collect(),
                )
            })?;
        base.name = name;
        base.description = parse_policy_description(draft.description.as_deref());
        base.settings = settings;
        base.locks = locks;
        base.priority = draft.priority;
        base.is_default = draft.is_default;
        Ok(base)
    }

    fn forget(&self, devices: &[Uuid]) {
        for device in devices {
            self.steward.device_states.forget(*device);
        }
    }

    pub async fn create(
        &self,
        actor: Uuid,
        organization: Uuid,
        draft: PolicyDraft,
        origin: &RequestOrigin,
    ) -> Result<PolicyRecord, AppError> {
        let now = Utc::now();
        let base = PolicyRecord {
            id: Uuid::now_v7(),
            organization_id: organization,
            name: String::new(),
            description: None,
            settings: BTreeMap::new(),
            locks: Vec::new(),
            priority: 0,
            is_default: false,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let policy = self.checked(draft, base).await?;
        let entry = audit(actor, "policy.created", organization, policy.id, origin).change(
            None,
            Some(json!({"name": policy.name, "settings": policy.settings, "locks": policy.locks})),
        );
        let touched =
            self.steward
                .store
                .create_policy(&policy, &entry)
                .await
                .map_err(|error| match error {
                    steward_domain::RuleStoreError::Repository(error) => name_taken(error),
                    other => other.into(),
                })?;
        self.forget(&touched);
        Ok(policy)
    }

    /// Replaces a policy; `expected_version` guards against a lost update.
    pub async fn update(
        &self,
        actor: Uuid,
        organization: Uuid,
        policy: Uuid,
        draft: PolicyDraft,
        expected_version: Option<i32>,
        origin: &RequestOrigin,
    ) -> Result<PolicyRecord, AppError> {
        let current = self.get(organization, policy).await?;
        let updated = self.checked(draft, current).await?;
        let entry = audit(actor, "policy.updated", organization, policy, origin).change(
            None,
            Some(json!({"name": updated.name, "settings": updated.settings, "locks": updated.locks})),
        );
        let (stored, touched) = self
            .steward
            .store
            .update_policy(&updated, expected_version, &entry)
            .await
            .map_err(name_taken)?;
        self.forget(&touched);
        Ok(stored)
    }

    /// Deletes a policy; devices and groups that carried it lose it.
    pub async fn delete(
        &self,
        actor: Uuid,
        organization: Uuid,
        policy: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let entry = audit(actor, "policy.deleted", organization, policy, origin);
        let touched = self
            .steward
            .store
            .delete_policy(organization, policy, &entry)
            .await?;
        self.forget(&touched);
        Ok(())
    }
}
