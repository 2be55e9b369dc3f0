//! Who is calling, once: a signed-in user, how they proved it (a session or a personal access
//! token with its scopes) and, where a route needs them, their system roles. One check,
//! [`Principal::allows`], combines role and scope, so no route can check one and forget the
//! other. Device callers (a device token, or the legacy `X-API-Key` + `X-Device-Id`) act on
//! their own settings only and are [`crate::settings::SettingsCallerKind::Device`].

use std::sync::{Arc, LazyLock};

use steward_domain::rbac::{Permission, RoleCatalog};
use uuid::Uuid;

/// The built-in roles, shared by every principal that holds no custom role.
pub(crate) static BUILT_IN_CATALOG: LazyLock<Arc<RoleCatalog>> =
    LazyLock::new(|| Arc::new(RoleCatalog::built_in().clone()));

/// How a user proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A session's access token: whatever the user may do.
    Session { session: Uuid },
    /// A personal access token (`stw_pat_…`): only what its scopes cover as well.
    PersonalToken { scopes: Vec<String> },
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: Uuid,
    pub credential: Credential,
    /// System roles (`super_admin`, `org_admin`, …); empty until loaded with
    /// [`crate::auth::AuthService::with_roles`].
    pub roles: Vec<String>,
    /// The roles the decision may consult: the built-in ones, plus every custom role when
    /// the user holds one (loaded once per request by `with_roles`).
    pub catalog: Arc<RoleCatalog>,
}

impl Principal {
    pub fn new(user: Uuid, credential: Credential) -> Self {
        Self {
            user,
            credential,
            roles: Vec::new(),
            catalog: Arc::clone(&BUILT_IN_CATALOG),
        }
    }

    /// Whether the credential reaches `scope`: a session reaches every scope, a token those it
    /// names.
    pub fn has_scope(&self, scope: &str) -> bool {
        match &self.credential {
            Credential::Session { .. } => true,
            Credential::PersonalToken { scopes } => scopes.iter().any(|held| held == scope),
        }
    }

    /// Whether a role grants `permission` and the credential carries its scope.
    pub fn allows(&self, permission: Permission) -> bool {
        self.catalog.allows(&self.roles, permission) && self.has_scope(permission.as_str())
    }

    /// Whether the user holds any system role the catalog knows (custom ones included).
    pub fn has_system_role(&self) -> bool {
        self.catalog.has_system_role(&self.roles)
    }

    /// The session behind the credential, if it is a session's access token.
    pub fn session(&self) -> Option<Uuid> {
        match self.credential {
            Credential::Session { session } => Some(session),
            Credential::PersonalToken { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(credential: Credential, roles: &[&str]) -> Principal {
        Principal {
            user: Uuid::nil(),
            credential,
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            catalog: Arc::clone(&BUILT_IN_CATALOG),
        }
    }

    #[test]
    fn a_session_has_what_its_roles_grant() {
        let admin = principal(Credential::Session { session: Uuid::nil() }, &["org_admin"]);
        assert!(admin.allows(Permission::OrganizationsWrite));
        assert!(!admin.allows(Permission::UsersWrite));
        let nobody = principal(Credential::Session { session: Uuid::nil() }, &[]);
        assert!(!nobody.allows(Permission::OrganizationsRead));
        assert!(nobody.has_scope("organizations:write"));
    }

    #[test]
    fn a_token_needs_the_role_and_the_scope() {
        let read_only = principal(
            Credential::PersonalToken {
                scopes: vec!["organizations:read".to_owned()],
            },
            &["super_admin"],
        );
        assert!(read_only.allows(Permission::OrganizationsRead));
        assert!(!read_only.allows(Permission::OrganizationsWrite));
        assert!(!read_only.allows(Permission::UsersRead));
        assert!(read_only.has_system_role());
        assert_eq!(read_only.session(), None);
    }
}
