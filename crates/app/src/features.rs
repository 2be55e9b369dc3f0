//! Switches an operator sets at start-up (seed 002's feature flags), read by the use cases and
//! the HTTP layer and shown at `GET /api/admin/v1/features`.

/// The switches, as the configuration set them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `STEWARD_USER_MGMT_CORE`: the admin API's user, role, audit and organization routes, and
    /// accounts created from the OIDC provider.
    pub user_mgmt_core: bool,
    /// `STEWARD_ENFORCE`: the database enforces tenancy too (the default of the next).
    pub enforce: bool,
    /// `STEWARD_RLS_ENFORCE`: PostgreSQL row-level security turned on at start-up.
    pub rls_enforce: bool,
}

impl Default for Features {
    fn default() -> Self {
        Self {
            user_mgmt_core: true,
            enforce: false,
            rls_enforce: false,
        }
    }
}
