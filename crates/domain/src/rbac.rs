//! System roles for the admin API, as data: a role is a named set of `resource:action`
//! permissions, so custom roles can be added without code.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::rules::RuleError;

/// Grants every permission.
pub const ALL_PERMISSIONS: &str = "*";

/// The built-in system roles, most powerful first.
pub const BUILT_IN_ROLES: &[(&str, &[&str])] = &[
    ("super_admin", &[ALL_PERMISSIONS]),
    (
        "user_admin",
        &[
            "users:read",
            "users:write",
            "users:lock",
            "users:reset_password",
            "sessions:read",
            "sessions:revoke",
            "groups:read",
            "groups:write",
            "groups:manage",
            "notifications:read",
        ],
    ),
    (
        "org_admin",
        &[
            "organizations:read",
            "organizations:write",
            "devices:read",
            "devices:write",
            "policies:read",
            "policies:write",
            "enrollment:read",
            "enrollment:write",
            "fleet:act",
        ],
    ),
    (
        "auditor",
        &[
            "audit:read",
            "audit:export",
            "users:read",
            "organizations:read",
            "devices:read",
            "notifications:read",
            "webhooks:read",
            "dashboard:read",
            "reports:read",
        ],
    ),
    (
        "support",
        &[
            "users:read",
            "users:reset_password",
            "users:unlock",
            "sessions:read",
        ],
    ),
];

/// A permission of the admin API, as a type: code names permissions only through this enum,
/// so a typo cannot grant or refuse silently. The catalog stores roles as data (strings), so
/// custom roles stay possible; a personal access token's scope of the same name is what lets
/// the token use the permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    UsersRead,
    UsersWrite,
    UsersLock,
    UsersResetPassword,
    UsersUnlock,
    SessionsRead,
    SessionsRevoke,
    GroupsRead,
    GroupsWrite,
    /// Operators' view of every group and forced ownership transfers.
    GroupsManage,
    OrganizationsRead,
    OrganizationsWrite,
    DevicesRead,
    DevicesWrite,
    PoliciesRead,
    PoliciesWrite,
    EnrollmentRead,
    EnrollmentWrite,
    FleetAct,
    AuditRead,
    AuditExport,
    /// The setting catalog is shared by every tenant: only `super_admin` (`*`) holds it.
    SettingsWrite,
    /// Application API keys (device registration) are global: only `super_admin` holds these.
    ApiKeysRead,
    ApiKeysWrite,
    /// Creating, changing and deleting custom roles: only `super_admin` holds it.
    RolesWrite,
    /// Every background job, whoever submitted it (others see their own and their
    /// organizations'): only `super_admin` holds it. Also the token scope of the jobs API.
    JobsRead,
    /// Cancelling any background job: only `super_admin` holds it. Also the token scope of
    /// cancelling one's own.
    JobsWrite,
    /// Setting organizations' plans and quota overrides: only `super_admin` holds it.
    QuotasWrite,
    /// Reading every webhook subscription and its delivery log (organization owners and admins
    /// read their organization's): `super_admin` and `auditor`. Also the token scope of the
    /// webhooks API's reads.
    WebhooksRead,
    /// Changing every webhook subscription (organization owners and admins manage their
    /// organization's): only `super_admin` holds it. Also the token scope of the webhooks API's
    /// changes.
    WebhooksManage,
    /// Every operator notification (organization owners and admins see their organization's):
    /// `super_admin`, `user_admin` and `auditor`. Also the token scope of the notifications API.
    NotificationsRead,
    /// The dashboard and usage statistics of the whole system and of every organization
    /// (organization owners and admins read their organization's): `super_admin` and `auditor`.
    /// Also the token scope of both.
    DashboardRead,
    /// Exporting and importing the instance's configuration (setting catalog, organizations,
    /// policies, custom roles, IP allowlist, webhooks): only `super_admin` (`*`) unless a custom
    /// role grants it. An import still grants only the permissions its importer holds.
    ConfigManage,
    /// Reading report schedules, their recipients and runs: `super_admin` and `auditor`.
    ReportsRead,
    /// Creating, changing, deleting and test-sending report schedules (the reports mail the
    /// whole system's figures to the addresses given): only `super_admin` (`*`).
    ReportsManage,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 35] = [
        Permission::UsersRead,
        Permission::UsersWrite,
        Permission::UsersLock,
        Permission::UsersResetPassword,
        Permission::UsersUnlock,
        Permission::SessionsRead,
        Permission::SessionsRevoke,
        Permission::GroupsRead,
        Permission::GroupsWrite,
        Permission::GroupsManage,
        Permission::OrganizationsRead,
        Permission::OrganizationsWrite,
        Permission::DevicesRead,
        Permission::DevicesWrite,
        Permission::PoliciesRead,
        Permission::PoliciesWrite,
        Permission::EnrollmentRead,
        Permission::EnrollmentWrite,
        Permission::FleetAct,
        Permission::AuditRead,
        Permission::AuditExport,
        Permission::SettingsWrite,
        Permission::ApiKeysRead,
        Permission::ApiKeysWrite,
        Permission::RolesWrite,
        Permission::JobsRead,
        Permission::JobsWrite,
        Permission::QuotasWrite,
        Permission::WebhooksRead,
        Permission::WebhooksManage,
        Permission::NotificationsRead,
        Permission::DashboardRead,
        Permission::ConfigManage,
        Permission::ReportsRead,
        Permission::ReportsManage,
    ];

    /// `resource:action`, as roles and token scopes name it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permission::UsersRead => "users:read",
            Permission::UsersWrite => "users:write",
            Permission::UsersLock => "users:lock",
            Permission::UsersResetPassword => "users:reset_password",
            Permission::UsersUnlock => "users:unlock",
            Permission::SessionsRead => "sessions:read",
            Permission::SessionsRevoke => "sessions:revoke",
            Permission::GroupsRead => "groups:read",
            Permission::GroupsWrite => "groups:write",
            Permission::GroupsManage => "groups:manage",
            Permission::OrganizationsRead => "organizations:read",
            Permission::OrganizationsWrite => "organizations:write",
            Permission::DevicesRead => "devices:read",
            Permission::DevicesWrite => "devices:write",
            Permission::PoliciesRead => "policies:read",
            Permission::PoliciesWrite => "policies:write",
            Permission::EnrollmentRead => "enrollment:read",
            Permission::EnrollmentWrite => "enrollment:write",
            Permission::FleetAct => "fleet:act",
            Permission::AuditRead => "audit:read",
            Permission::AuditExport => "audit:export",
            Permission::SettingsWrite => "settings:write",
            Permission::ApiKeysRead => "api_keys:read",
            Permission::ApiKeysWrite => "api_keys:write",
            Permission::RolesWrite => "roles:write",
            Permission::JobsRead => "jobs:read",
            Permission::JobsWrite => "jobs:write",
            Permission::QuotasWrite => "quotas:write",
            Permission::WebhooksRead => "webhooks:read",
            Permission::WebhooksManage => "webhooks:manage",
            Permission::NotificationsRead => "notifications:read",
            Permission::DashboardRead => "dashboard:read",
            Permission::ConfigManage => "config:manage",
            Permission::ReportsRead => "reports:read",
            Permission::ReportsManage => "reports:manage",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What deciding a change of someone's system roles needs, read while every `super_admin`
/// grant is locked: their roles now, and how many *other* unlocked accounts hold `super_admin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSnapshot {
    pub current: Vec<String>,
    pub other_active_super_admins: usize,
    /// Every custom role, read in the same transaction (so a role deleted meanwhile is
    /// unknown here, and one in use here cannot be deleted until the change commits).
    pub custom_roles: Vec<RoleDefinition>,
}

/// The grants and revocations a role change makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleChange {
    pub granted: Vec<String>,
    pub revoked: Vec<String>,
}

impl RoleCatalog {
    /// Decides `actor` (holding `held`) giving someone exactly the roles `wanted`: every role
    /// must exist; every role that changes must be one the actor could grant (all its
    /// permissions are theirs, so only a super_admin grants or takes away super_admin); the
    /// last unlocked super_admin keeps the role.
    pub fn decide_role_change<S: AsRef<str>>(
        &self,
        held: &[S],
        snapshot: &RoleSnapshot,
        wanted: &BTreeSet<String>,
    ) -> Result<RoleChange, RuleError> {
        let catalog = self.with_custom(snapshot.custom_roles.iter().cloned());
        let this = &catalog;
        if wanted.iter().any(|role| !this.contains(role)) {
            return Err(RuleError::Invalid {
                field: "roles",
                message: "names a role that does not exist",
            });
        }
        let current: BTreeSet<String> = snapshot.current.iter().cloned().collect();
        let change = RoleChange {
            granted: wanted.difference(&current).cloned().collect(),
            revoked: current.difference(wanted).cloned().collect(),
        };
        if change
            .granted
            .iter()
            .chain(&change.revoked)
            .any(|role| !this.may_grant(held, role))
        {
            return Err(RuleError::Forbidden(
                "you may only grant or revoke roles whose every permission you hold",
            ));
        }
        if change.revoked.iter().any(|role| role == "super_admin") && snapshot.other_active_super_admins == 0
        {
            return Err(RuleError::Conflict("the last super_admin keeps the role"));
        }
        Ok(change)
    }
}

/// A role name and its permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDefinition {
    pub name: String,
    pub permissions: BTreeSet<String>,
}

/// The permission table: every role Steward knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCatalog {
    roles: Vec<RoleDefinition>,
}

impl Default for RoleCatalog {
    fn default() -> Self {
        Self {
            roles: BUILT_IN_ROLES
                .iter()
                .map(|(name, permissions)| RoleDefinition {
                    name: (*name).to_owned(),
                    permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
                })
                .collect(),
        }
    }
}

impl RoleCatalog {
    /// The built-in roles only, shared.
    pub fn built_in() -> &'static RoleCatalog {
        static BUILT_IN: std::sync::LazyLock<RoleCatalog> = std::sync::LazyLock::new(RoleCatalog::default);
        &BUILT_IN
    }

    /// Whether `role` is one of Steward's built-in roles (which cannot be edited or deleted).
    pub fn is_built_in(role: &str) -> bool {
        BUILT_IN_ROLES.iter().any(|(name, _)| *name == role)
    }

    /// This catalog plus custom roles (a custom role never shadows a built-in one).
    pub fn with_custom(&self, custom: impl IntoIterator<Item = RoleDefinition>) -> RoleCatalog {
        let mut roles = self.roles.clone();
        for role in custom {
            if !roles.iter().any(|known| known.name == role.name) {
                roles.push(role);
            }
        }
        RoleCatalog { roles }
    }

    /// Whether a holder of `held` holds every one of `permissions` (so may put them in a role).
    pub fn holds_all<S: AsRef<str>>(&self, held: &[S], permissions: &BTreeSet<String>) -> bool {
        permissions.iter().all(|permission| self.grants(held, permission))
    }

    pub fn contains(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.name == role)
    }

    pub fn roles(&self) -> &[RoleDefinition] {
        &self.roles
    }

    /// Whether a holder of `held` may hand out (or name in a role override) `role`: every
    /// permission of it must be theirs, so nobody grants, preserves or suppresses a role more
    /// powerful than their own. Unknown roles are never grantable.
    pub fn may_grant<S: AsRef<str>>(&self, held: &[S], role: &str) -> bool {
        let Some(definition) = self.roles.iter().find(|r| r.name == role) else {
            return false;
        };
        definition.permissions.iter().all(|permission| {
            if permission == ALL_PERMISSIONS {
                held.iter().any(|name| {
                    self.roles
                        .iter()
                        .any(|r| r.name == name.as_ref() && r.permissions.contains(ALL_PERMISSIONS))
                })
            } else {
                self.grants(held, permission)
            }
        })
    }

    /// Whether anyone holding `held` roles may do `permission`.
    pub fn allows<S: AsRef<str>>(&self, held: &[S], permission: Permission) -> bool {
        self.grants(held, permission.as_str())
    }

    /// Whether `held` includes a role this catalog knows (the admin API's identity endpoint).
    pub fn has_system_role<S: AsRef<str>>(&self, held: &[S]) -> bool {
        held.iter().any(|name| self.contains(name.as_ref()))
    }

    /// [`Self::allows`] by name, for permissions that are data (a custom role's, a scope).
    fn grants<S: AsRef<str>>(&self, held: &[S], permission: &str) -> bool {
        held.iter().any(|name| {
            self.roles.iter().any(|role| {
                role.name == name.as_ref()
                    && (role.permissions.contains(ALL_PERMISSIONS) || role.permissions.contains(permission))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_changes_need_the_power_to_grant_and_keep_a_super_admin() {
        let catalog = RoleCatalog::default();
        let wanted = |roles: &[&str]| roles.iter().map(|r| (*r).to_owned()).collect::<BTreeSet<_>>();
        let snapshot = |current: &[&str], others| RoleSnapshot {
            current: current.iter().map(|r| (*r).to_owned()).collect(),
            other_active_super_admins: others,
            custom_roles: Vec::new(),
        };
        let change = catalog
            .decide_role_change(
                &["super_admin"],
                &snapshot(&["auditor"], 1),
                &wanted(&["support", "auditor"]),
            )
            .unwrap();
        assert_eq!(
            (change.granted, change.revoked),
            (vec!["support".to_owned()], vec![])
        );
        assert!(
            catalog
                .decide_role_change(&["super_admin"], &snapshot(&[], 1), &wanted(&["root"]))
                .is_err()
        );
        assert!(matches!(
            catalog.decide_role_change(&["user_admin"], &snapshot(&[], 1), &wanted(&["super_admin"])),
            Err(RuleError::Forbidden(_))
        ));
        assert!(matches!(
            catalog.decide_role_change(&["user_admin"], &snapshot(&["org_admin"], 1), &wanted(&[])),
            Err(RuleError::Forbidden(_))
        ));
        assert!(matches!(
            catalog.decide_role_change(&["super_admin"], &snapshot(&["super_admin"], 0), &wanted(&[])),
            Err(RuleError::Conflict(_))
        ));
        assert!(
            catalog
                .decide_role_change(&["super_admin"], &snapshot(&["super_admin"], 1), &wanted(&[]))
                .is_ok()
        );
        // Unchanged roles need no power over them.
        assert!(
            catalog
                .decide_role_change(
                    &["user_admin"],
                    &snapshot(&["super_admin"], 0),
                    &wanted(&["super_admin"])
                )
                .is_ok()
        );
    }

    #[test]
    fn the_permission_table() {
        let catalog = RoleCatalog::default();
        let cases = [
            ("super_admin", Permission::AuditExport, true),
            ("super_admin", Permission::SettingsWrite, true),
            ("user_admin", Permission::UsersLock, true),
            ("user_admin", Permission::OrganizationsWrite, false),
            ("org_admin", Permission::FleetAct, true),
            ("org_admin", Permission::UsersWrite, false),
            ("auditor", Permission::AuditExport, true),
            ("auditor", Permission::UsersWrite, false),
            ("support", Permission::UsersResetPassword, true),
            ("support", Permission::UsersWrite, false),
            ("nobody", Permission::UsersRead, false),
        ];
        for (role, permission, expected) in cases {
            assert_eq!(
                catalog.allows(&[role], permission),
                expected,
                "{role} {permission}"
            );
        }
        assert!(catalog.grants(&["super_admin"], "anything:at_all"));
        let none: [&str; 0] = [];
        assert!(!catalog.allows(&none, Permission::UsersRead));
        assert!(catalog.may_grant(&["super_admin"], "super_admin"));
        assert!(catalog.may_grant(&["user_admin"], "user_admin"));
        assert!(!catalog.may_grant(&["user_admin"], "super_admin"));
        assert!(
            !catalog.may_grant(&["user_admin"], "support"),
            "support may unlock users"
        );
        assert!(catalog.may_grant(&["user_admin", "support"], "support"));
        assert!(!catalog.may_grant(&["super_admin"], "no_such_role"));
        assert!(catalog.allows(&["auditor", "support"], Permission::UsersUnlock));
    }

    #[test]
    fn every_built_in_permission_has_a_type() {
        let typed: BTreeSet<&str> = Permission::ALL.iter().map(|p| p.as_str()).collect();
        for (_, permissions) in BUILT_IN_ROLES {
            for permission in *permissions {
                assert!(
                    *permission == ALL_PERMISSIONS || typed.contains(permission),
                    "{permission} has no Permission variant"
                );
            }
        }
    }
}

/// Scopes every user may give a personal access token, beside their roles' permissions.
/// The group, device and organization scopes limit a token to what the user may do in their
/// own groups, with their own devices and in the organizations they belong to; as admin
/// permissions they additionally need the matching role.
pub const ACCOUNT_SCOPES: &[&str] = &[
    "account:read",
    "account:write",
    "groups:read",
    "groups:write",
    "devices:read",
    "devices:write",
    "organizations:read",
    "organizations:write",
    "jobs:read",
    "jobs:write",
    "webhooks:read",
    "webhooks:manage",
    "notifications:read",
    "dashboard:read",
];

impl RoleCatalog {
    /// Every scope that exists: the account scopes, every permission Steward checks (so a
    /// `super_admin` can delegate `settings:write`, which no other role holds) and every
    /// permission of every role.
    pub fn known_scopes(&self) -> BTreeSet<String> {
        let mut scopes: BTreeSet<String> = ACCOUNT_SCOPES.iter().map(|s| (*s).to_owned()).collect();
        scopes.extend(Permission::ALL.iter().map(|p| p.as_str().to_owned()));
        for role in &self.roles {
            scopes.extend(role.permissions.iter().filter(|p| *p != ALL_PERMISSIONS).cloned());
        }
        scopes
    }

    /// The scopes of `requested` that a holder of `held` roles may not delegate (unknown ones
    /// included). Empty means the request is acceptable.
    pub fn undelegable_scopes<S: AsRef<str>>(&self, held: &[S], requested: &[String]) -> Vec<String> {
        let known = self.known_scopes();
        requested
            .iter()
            .filter(|scope| {
                !known.contains(*scope)
                    || !(ACCOUNT_SCOPES.contains(&scope.as_str()) || self.grants(held, scope))
            })
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn tokens_get_at_most_what_their_owner_holds() {
        let catalog = RoleCatalog::default();
        let none: [&str; 0] = [];
        let ask = |scopes: &[&str]| scopes.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(
            catalog
                .undelegable_scopes(&none, &ask(&["account:read", "account:write"]))
                .is_empty()
        );
        assert_eq!(
            catalog.undelegable_scopes(&none, &ask(&["users:read"])),
            ["users:read"]
        );
        assert!(
            catalog
                .undelegable_scopes(&["auditor"], &ask(&["audit:export"]))
                .is_empty()
        );
        assert!(
            catalog
                .undelegable_scopes(&["super_admin"], &ask(&["fleet:act", "users:write"]))
                .is_empty()
        );
        assert_eq!(
            catalog.undelegable_scopes(&["super_admin"], &ask(&["*", "made:up"])),
            ["*", "made:up"]
        );
    }
}
