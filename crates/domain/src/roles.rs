//! Custom system roles: a name and a set of the permissions Steward checks, stored beside the
//! built-in roles and resolved exactly like them. Built-in roles cannot be edited or deleted;
//! a role someone holds cannot be deleted.

use std::collections::BTreeSet;
use std::future::Future;

use chrono::{DateTime, Utc};

use crate::audit::AuditEntry;
use crate::rbac::{Permission, RoleCatalog, RoleDefinition};
use crate::repository::RepositoryError;
use crate::rules::{RuleError, RuleStoreError};

/// At most this many custom roles exist.
pub const MAX_CUSTOM_ROLES: usize = 100;
/// The longest description kept.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A custom role as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    pub name: String,
    pub description: Option<String>,
    pub permissions: BTreeSet<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CustomRole {
    pub fn definition(&self) -> RoleDefinition {
        RoleDefinition {
            name: self.name.clone(),
            permissions: self.permissions.clone(),
        }
    }
}

/// A role name: 2–64 characters of `a-z`, `0-9` and `_`, starting with a letter, and not a
/// built-in role's.
pub fn parse_role_name(name: &str) -> Result<String, RuleError> {
    let invalid = |message| RuleError::Invalid {
        field: "name",
        message,
    };
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    if !(2..=64).contains(&name.len())
        || !starts_with_letter
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(invalid(
            "must be 2-64 characters of a-z, 0-9 and _, starting with a letter",
        ));
    }
    if RoleCatalog::is_built_in(name) {
        return Err(RuleError::Conflict(
            "built-in roles cannot be created, edited or deleted",
        ));
    }
    Ok(name.to_owned())
}

/// A custom role's permissions: at least one, each a permission Steward checks (`*` and
/// unknown names are refused), duplicates folded.
pub fn parse_permissions(permissions: &[String]) -> Result<BTreeSet<String>, RuleError> {
    let known: BTreeSet<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
    if permissions.is_empty() || permissions.len() > Permission::ALL.len() * 2 {
        return Err(RuleError::Invalid {
            field: "permissions",
            message: "must name between one and every permission",
        });
    }
    if permissions.iter().any(|p| !known.contains(p.as_str())) {
        return Err(RuleError::Invalid {
            field: "permissions",
            message: "names a permission that does not exist (GET /api/admin/v1/roles lists them)",
        });
    }
    Ok(permissions.iter().cloned().collect())
}

/// A description: trimmed, at most 500 characters, no control characters; empty means none.
pub fn parse_description(description: Option<&str>) -> Result<Option<String>, RuleError> {
    let Some(text) = description.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if text.chars().count() > MAX_DESCRIPTION_CHARS
        || text
            .chars()
            .any(|c| c.is_control() || crate::rules::is_hidden_format(c))
    {
        return Err(RuleError::Invalid {
            field: "description",
            message: "must be at most 500 characters without control characters",
        });
    }
    Ok(Some(text.to_owned()))
}

/// What deleting a custom role did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleDeletion {
    Deleted(CustomRole),
    /// This many accounts hold the role; nothing was deleted.
    InUse(u64),
    NotFound,
}

pub trait RoleStore {
    /// Every custom role, by name.
    fn custom_roles(&self) -> impl Future<Output = Result<Vec<CustomRole>, RepositoryError>> + Send;

    /// Creates `role` unless the name is taken or [`MAX_CUSTOM_ROLES`] exist.
    fn create_custom_role(
        &self,
        role: &CustomRole,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RuleStoreError>> + Send;

    /// Replaces a custom role's permissions and description; `None` when there is no such
    /// role. `audit` gets the role before the change.
    fn update_custom_role<A>(
        &self,
        name: &str,
        permissions: BTreeSet<String>,
        description: Option<String>,
        now: DateTime<Utc>,
        audit: A,
    ) -> impl Future<Output = Result<Option<CustomRole>, RepositoryError>> + Send
    where
        A: FnOnce(&CustomRole, &CustomRole) -> AuditEntry + Send;

    /// Deletes a custom role nobody holds, deciding under the role's lock so a concurrent
    /// grant either lands first (and the deletion is refused) or finds the role gone.
    fn delete_custom_role<A>(
        &self,
        name: &str,
        audit: A,
    ) -> impl Future<Output = Result<RoleDeletion, RepositoryError>> + Send
    where
        A: FnOnce(&CustomRole) -> AuditEntry + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_permissions_and_descriptions() {
        assert_eq!(parse_role_name("helpdesk_2").as_deref(), Ok("helpdesk_2"));
        for bad in ["", "a", "2fa", "Help", "help desk", "help\0", &"a".repeat(65)] {
            assert!(parse_role_name(bad).is_err(), "{bad:?}");
        }
        assert!(matches!(
            parse_role_name("super_admin"),
            Err(RuleError::Conflict(_))
        ));
        let ask = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_permissions(&ask(&["users:read", "users:read"])).map(|p| p.len()),
            Ok(1)
        );
        for bad in [&[][..], &["*"][..], &["users:fly"][..], &["account:read"][..]] {
            assert!(parse_permissions(&ask(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(parse_description(Some("  ")), Ok(None));
        assert!(parse_description(Some("a\u{0}b")).is_err());
        assert!(parse_description(Some(&"x".repeat(501))).is_err());
    }

    #[test]
    fn custom_roles_resolve_like_built_ins() {
        let custom = RoleDefinition {
            name: "reader".into(),
            permissions: ["users:read".to_owned()].into(),
        };
        let catalog = RoleCatalog::built_in().with_custom([custom]);
        assert!(catalog.allows(&["reader"], Permission::UsersRead));
        assert!(!catalog.allows(&["reader"], Permission::UsersWrite));
        assert!(catalog.has_system_role(&["reader"]));
        assert!(catalog.may_grant(&["user_admin"], "reader"));
        assert!(!catalog.may_grant(&["reader"], "user_admin"));
        assert!(!RoleCatalog::built_in().allows(&["reader"], Permission::UsersRead));
    }
}
