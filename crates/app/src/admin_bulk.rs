//! Bulk actions on accounts: one action for up to 500 users, each user decided and audited
//! exactly as the single-user endpoint would (the last super_admin, the power to grant a
//! role, one's own account), answered per user.

use std::collections::HashSet;

use serde_json::json;
use steward_domain::rbac::Permission;
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use crate::admin_users::{RoleRequest, UserAdminService};
use crate::error::AppError;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// The most users one bulk request names.
pub const MAX_BULK_USERS: usize = 500;

/// What to do to every named user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BulkAction {
    Lock,
    Unlock,
    Delete,
    AssignRole(String),
    RemoveRole(String),
}

impl BulkAction {
    /// `action` as sent, with the `role` the role actions need.
    pub fn parse(action: &str, role: Option<String>) -> Result<Self, AppError> {
        let given = role.is_some();
        let role = || {
            role.clone()
                .map(|role| role.trim().to_owned())
                .filter(|role| !role.is_empty() && role.chars().count() <= 64)
                .ok_or_else(|| {
                    AppError::invalid("role", "the role actions need a role of 1 to 64 characters")
                })
        };
        let parsed = match action {
            "lock" => Self::Lock,
            "unlock" => Self::Unlock,
            "delete" => Self::Delete,
            "assign_role" => Self::AssignRole(role()?),
            "remove_role" => Self::RemoveRole(role()?),
            _ => {
                return Err(AppError::invalid(
                    "action",
                    "must be lock, unlock, delete, assign_role or remove_role",
                ));
            }
        };
        if matches!(parsed, Self::Lock | Self::Unlock | Self::Delete) && given {
            return Err(AppError::invalid("role", "only the role actions take a role"));
        }
        Ok(parsed)
    }

    /// The permission the action needs besides `users:write`.
    fn permission(&self) -> Permission {
        match self {
            Self::Lock => Permission::UsersLock,
            Self::Unlock => Permission::UsersUnlock,
            Self::Delete | Self::AssignRole(_) | Self::RemoveRole(_) => Permission::UsersWrite,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Unlock => "unlock",
            Self::Delete => "delete",
            Self::AssignRole(_) => "assign_role",
            Self::RemoveRole(_) => "remove_role",
        }
    }
}

/// One user's outcome.
#[derive(Debug)]
pub struct BulkOutcome {
    pub user: Uuid,
    pub result: Result<(), AppError>,
}

impl<S: Store> Steward<S> {
    /// Runs `action` for each of `users` (1 to 500, duplicates folded, in the order given) as
    /// `admin` (roles loaded). The whole request is refused (403) when the admin lacks the
    /// action's permission; otherwise each user gets their own outcome. One summary entry
    /// (`admin.bulk_action`) is audited besides each user's own.
    pub async fn bulk_users(
        &self,
        admin: &Principal,
        action: BulkAction,
        users: Vec<Uuid>,
        origin: &RequestOrigin,
    ) -> Result<Vec<BulkOutcome>, AppError> {
        if users.is_empty() || users.len() > MAX_BULK_USERS {
            return Err(AppError::invalid("userIds", "must name 1 to 500 users"));
        }
        if !admin.allows(action.permission()) {
            return Err(AppError::forbidden(format!(
                "this action needs {}",
                action.permission().as_str()
            )));
        }
        let mut seen = HashSet::new();
        let service = UserAdminService::new(self);
        let mut outcomes = Vec::new();
        for user in users.into_iter().filter(|user| seen.insert(*user)) {
            let result = match &action {
                BulkAction::Lock => service.lock(admin, user, None, origin).await.map(drop),
                BulkAction::Unlock => service.unlock(admin.user, user, origin).await.map(drop),
                BulkAction::Delete => service.delete(admin, user, origin).await,
                BulkAction::AssignRole(role) => service
                    .change_roles(admin, user, RoleRequest::Add(role.clone()), origin)
                    .await
                    .map(drop),
                BulkAction::RemoveRole(role) => service
                    .change_roles(admin, user, RoleRequest::Remove(role.clone()), origin)
                    .await
                    .map(drop),
            };
            outcomes.push(BulkOutcome { user, result });
        }
        let done = outcomes.iter().filter(|outcome| outcome.result.is_ok()).count();
        let entry = AuditEntry::new(
            Actor::admin(admin.user),
            AuditAction::known("admin.bulk_action"),
            "user",
        )
        .change(
            None,
            Some(json!({
                "action": action.name(),
                "users": outcomes.len(),
                "done": done,
                "refused": outcomes.len() - done,
            })),
        )
        .origin(origin.clone());
        self.store.record(&entry).await?;
        Ok(outcomes)
    }
}
