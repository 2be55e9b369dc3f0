//! System roles for operators: the built-in ones (read only) and custom ones (a name and a set
//! of existing permissions). Nobody puts a permission into a role that they do not hold, so a
//! custom role never raises anyone above the operator who made it.

use chrono::Utc;
use serde_json::json;
use steward_domain::rbac::RoleCatalog;
use steward_domain::roles::{self, CustomRole, RoleDeletion};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};

use crate::error::AppError;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// A role as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleEntry {
    pub name: String,
    pub description: Option<String>,
    pub permissions: Vec<String>,
    /// Built into Steward (cannot be edited or deleted).
    pub system: bool,
}

impl From<CustomRole> for RoleEntry {
    fn from(role: CustomRole) -> Self {
        Self {
            name: role.name,
            description: role.description,
            permissions: role.permissions.into_iter().collect(),
            system: false,
        }
    }
}

/// What a custom role should be.
#[derive(Debug, Clone)]
pub struct RoleInput {
    pub permissions: Vec<String>,
    pub description: Option<String>,
}

pub struct RoleService<'a, S> {
    steward: &'a Steward<S>,
}

fn audit(admin: &Principal, action: &'static str, name: &str, origin: &RequestOrigin) -> AuditEntry {
    AuditEntry::new(Actor::admin(admin.user), AuditAction::known(action), "role")
        .resource_id(name)
        .origin(origin.clone())
}

fn snapshot(role: &CustomRole) -> serde_json::Value {
    json!({"permissions": role.permissions, "description": role.description})
}

impl<'a, S: Store> RoleService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// Every role: the built-in ones first, then custom ones by name.
    pub async fn list(&self) -> Result<Vec<RoleEntry>, AppError> {
        let mut entries: Vec<RoleEntry> = RoleCatalog::built_in()
            .roles()
            .iter()
            .map(|role| RoleEntry {
                name: role.name.clone(),
                description: None,
                permissions: role.permissions.iter().cloned().collect(),
                system: true,
            })
            .collect();
        entries.extend(
            self.steward
                .store
                .custom_roles()
                .await?
                .into_iter()
                .map(RoleEntry::from),
        );
        Ok(entries)
    }

    pub async fn get(&self, name: &str) -> Result<RoleEntry, AppError> {
        self.list()
            .await?
            .into_iter()
            .find(|role| role.name == name)
            .ok_or_else(|| AppError::not_found("no such role"))
    }

    fn checked(&self, admin: &Principal, input: &RoleInput) -> Result<CustomRole, AppError> {
        let permissions = roles::parse_permissions(&input.permissions)?;
        if !admin.catalog.holds_all(&admin.roles, &permissions) {
            return Err(AppError::forbidden(
                "a role may only hold permissions you hold yourself",
            ));
        }
        // A token defines roles only within its own scopes.
        if let Some(missing) = permissions.iter().find(|permission| !admin.has_scope(permission)) {
            return Err(AppError::forbidden(format!(
                "this personal access token lacks the scope `{missing}`"
            )));
        }
        let now = Utc::now();
        Ok(CustomRole {
            name: String::new(),
            description: roles::parse_description(input.description.as_deref())?,
            permissions,
            created_at: now,
            updated_at: now,
        })
    }

    /// Creates a custom role (`admin` with their roles loaded).
    pub async fn create(
        &self,
        admin: &Principal,
        name: &str,
        input: RoleInput,
        origin: &RequestOrigin,
    ) -> Result<RoleEntry, AppError> {
        let name = roles::parse_role_name(name)?;
        let role = CustomRole {
            name: name.clone(),
            ..self.checked(admin, &input)?
        };
        let entry = audit(admin, "admin.role_created", &name, origin).change(None, Some(snapshot(&role)));
        self.steward.store.create_custom_role(&role, &entry).await?;
        Ok(role.into())
    }

    /// Replaces a custom role's permissions and description; holders get the new
    /// permissions on their next request.
    pub async fn update(
        &self,
        admin: &Principal,
        name: &str,
        input: RoleInput,
        origin: &RequestOrigin,
    ) -> Result<RoleEntry, AppError> {
        if RoleCatalog::is_built_in(name) {
            return Err(AppError::conflict("built-in roles cannot be edited"));
        }
        let role = self.checked(admin, &input)?;
        // Taking permissions away from a role is a change of it too: only someone holding
        // every permission it has now may make it.
        if let Some(current) = self
            .steward
            .store
            .custom_roles()
            .await?
            .into_iter()
            .find(|custom| custom.name == name)
            && !admin.catalog.holds_all(&admin.roles, &current.permissions)
        {
            return Err(AppError::forbidden(
                "this role holds permissions you do not hold: only someone holding them may change it",
            ));
        }
        let (actor, origin) = (admin.clone(), origin.clone());
        let updated = self
            .steward
            .store
            .update_custom_role(
                name,
                role.permissions,
                role.description,
                role.updated_at,
                |before, after| {
                    audit(&actor, "admin.role_updated", name, &origin)
                        .change(Some(snapshot(before)), Some(snapshot(after)))
                },
            )
            .await?
            .ok_or_else(|| AppError::not_found("no such role"))?;
        Ok(updated.into())
    }

    /// Deletes a custom role nobody holds.
    pub async fn delete(
        &self,
        admin: &Principal,
        name: &str,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        if RoleCatalog::is_built_in(name) {
            return Err(AppError::conflict("built-in roles cannot be deleted"));
        }
        let (actor, origin) = (admin.clone(), origin.clone());
        let outcome = self
            .steward
            .store
            .delete_custom_role(name, |role| {
                audit(&actor, "admin.role_deleted", name, &origin).change(Some(snapshot(role)), None)
            })
            .await?;
        match outcome {
            RoleDeletion::Deleted(_) => Ok(()),
            RoleDeletion::NotFound => Err(AppError::not_found("no such role")),
            RoleDeletion::InUse(holders) => Err(AppError::conflict(format!(
                "{holders} account(s) hold this role; take it from them first"
            ))),
        }
    }
}
