//! Tenant isolation in the database: the row-level security report (`steward db rls`,
//! `GET`/`POST /api/admin/v1/database/rls`) and the rule that decides each table's line.

use std::future::Future;

use serde::Serialize;

use crate::{AuditEntry, RepositoryError};

/// What a table's line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RlsStatus {
    /// Row-level security is on with Steward's policy (a status read).
    Ok,
    /// This call turned it on or off, or replaced the policy.
    Changed,
    /// Already as asked: nothing was done.
    Unchanged,
    /// Not as it should be, or the change could not be made (the message says why).
    Warning,
    /// The database has no row-level security (SQLite).
    Unsupported,
}

/// One organization-owned table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RlsTable {
    pub table: String,
    pub rls_enabled: bool,
    /// Whether the table's owner is bound by the policies too (`FORCE ROW LEVEL SECURITY`).
    pub forced: bool,
    /// The names of the policies on the table.
    pub policies: Vec<String>,
    pub status: RlsStatus,
    pub message: Option<String>,
}

/// The report of a status read, an enable or a disable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RlsReport {
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// `status`, `enable` or `disable`.
    pub action: String,
    /// Every table has Steward's policy on and forced, alone, and the server's role is bound by
    /// it (always `false` after a disable).
    pub enforced: bool,
    /// Whether the role the server's requests connect as is bound by the policies: `false` for
    /// a superuser or a role with `BYPASSRLS` (the policies do not apply to it). `None` where
    /// there is no row-level security.
    pub applies_to_server_role: Option<bool>,
    /// Warnings about the whole database (the server's role bypassing the policies).
    pub warnings: Vec<String>,
    pub tables: Vec<RlsTable>,
}

impl RlsReport {
    /// The report SQLite gives: no row-level security, the application's checks are the only line.
    pub fn unsupported(action: &str, tables: &[&str]) -> Self {
        Self {
            backend: "sqlite".to_owned(),
            action: action.to_owned(),
            enforced: false,
            applies_to_server_role: None,
            warnings: vec![
                "SQLite has no row-level security: the application's checks are the only line of tenant isolation"
                    .to_owned(),
            ],
            tables: tables
                .iter()
                .map(|table| RlsTable {
                    table: (*table).to_owned(),
                    rls_enabled: false,
                    forced: false,
                    policies: Vec::new(),
                    status: RlsStatus::Unsupported,
                    message: Some("SQLite has no row-level security".to_owned()),
                })
                .collect(),
        }
    }

    /// Whether any line is a warning.
    pub fn has_warnings(&self) -> bool {
        !self.warnings.is_empty() || self.tables.iter().any(|table| table.status == RlsStatus::Warning)
    }
}

/// What a table's line says after a read (`want = None`) or a change to `want`, from what the
/// table was (`enabled`, `forced`, `has_policy` — Steward's policy, current) and, for a change,
/// whether it had to be made.
pub fn table_status(
    want: Option<bool>,
    enabled: bool,
    forced: bool,
    has_policy: bool,
) -> (RlsStatus, Option<String>) {
    let complete = enabled && forced && has_policy;
    match want {
        None if complete => (RlsStatus::Ok, None),
        None if !enabled && !has_policy => (
            RlsStatus::Warning,
            Some("row-level security is off: only the application's checks isolate tenants".to_owned()),
        ),
        None => (
            RlsStatus::Warning,
            Some(
                match (enabled, forced, has_policy) {
                    (true, _, false) => {
                        "row-level security is on without Steward's policy: every row is hidden"
                    }
                    (false, _, true) => "Steward's policy is there but row-level security is off",
                    _ => "row-level security is not forced: the table's owner is not bound by the policy",
                }
                .to_owned(),
            ),
        ),
        Some(true) if complete => (RlsStatus::Unchanged, None),
        Some(false) if !enabled && !forced && !has_policy => (RlsStatus::Unchanged, None),
        Some(_) => (RlsStatus::Changed, None),
    }
}

/// What `steward db repair-default-org` changed: each step's rows (a second run: all zero).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultOrgRepair {
    /// 1 when the default organization had to be created again.
    pub organization_created: u64,
    /// Accounts that belonged to no organization, now its users.
    pub users_added: u64,
    /// Managed devices without an organization, now its devices.
    pub devices_attached: u64,
}

/// Reads and changes the database's row-level security.
pub trait TenancyStore {
    /// Each organization-owned table as it stands (`change = None`), or after turning its
    /// policy on (`Some(true)`) or off (`Some(false)`); the change is audited with `audit` when
    /// any table changed.
    fn row_level_security(
        &self,
        change: Option<bool>,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<RlsReport, RepositoryError>> + Send;

    /// Makes sure the default organization exists, adds every account that belongs to no
    /// organization to it with `role`, and attaches managed devices without an organization to
    /// it; one transaction, audited with `audit` when anything changed.
    fn repair_default_organization(
        &self,
        role: crate::organizations::OrgRole,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<DefaultOrgRepair, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_says_ok_only_for_a_complete_table() {
        assert_eq!(table_status(None, true, true, true).0, RlsStatus::Ok);
        assert_eq!(table_status(None, false, false, false).0, RlsStatus::Warning);
        assert_eq!(table_status(None, true, false, true).0, RlsStatus::Warning);
        assert_eq!(table_status(None, true, true, false).0, RlsStatus::Warning);
    }

    #[test]
    fn a_second_change_is_unchanged() {
        assert_eq!(
            table_status(Some(true), false, false, false).0,
            RlsStatus::Changed
        );
        assert_eq!(table_status(Some(true), true, true, true).0, RlsStatus::Unchanged);
        assert_eq!(table_status(Some(false), true, true, true).0, RlsStatus::Changed);
        assert_eq!(
            table_status(Some(false), false, false, false).0,
            RlsStatus::Unchanged
        );
        assert_eq!(table_status(Some(true), true, false, true).0, RlsStatus::Changed);
    }
}
