//! Organization user import: rows of email and role, checked one by one; an import never
//! changes an owner.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::OrgRole;
use crate::fleet::{ImportCounts, ImportProblem, OnDuplicate, repeated};
use crate::{AuditEntry, RepositoryError};

/// One organization user of a bulk import, validated: an existing account by email and the
/// role to give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserImport {
    pub line: usize,
    pub email: String,
    pub role: OrgRole,
}

/// Validates one user row (`email`, `role` — default `viewer`).
pub fn parse_user_row(line: usize, row: &BTreeMap<String, String>) -> Result<UserImport, Vec<ImportProblem>> {
    let mut problems = Vec::new();
    for name in row
        .keys()
        .filter(|name| !["email", "role"].contains(&name.as_str()))
    {
        problems.push(ImportProblem::new(line, name.clone(), "unknown column"));
    }
    let email = row
        .get("email")
        .map(|e| e.trim().to_lowercase())
        .unwrap_or_default();
    if email.is_empty() || !email.contains('@') || email.len() > 254 {
        problems.push(ImportProblem::new(line, "email", "must be an email address"));
    }
    let role = match row.get("role").map(String::as_str) {
        None => Some(OrgRole::Viewer),
        Some(text) => OrgRole::parse(text),
    };
    if role.is_none() {
        problems.push(ImportProblem::new(line, "role", "must be owner, admin or viewer"));
    }
    match role {
        Some(role) if problems.is_empty() => Ok(UserImport { line, email, role }),
        _ => Err(problems),
    }
}

/// Problems across rows: the same email twice in one import.
pub fn duplicate_user_rows(rows: &[UserImport]) -> Vec<ImportProblem> {
    repeated(
        rows.iter().map(|row| (row.line, row.email.as_str())),
        "email",
        "user",
    )
}

/// A user row ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUserImport {
    pub row: UserImport,
    pub user_id: Uuid,
}

/// Organization user import, all or nothing.
pub trait OrgUserImportStore {
    /// Accounts by email (lower case), whatever their organizations.
    fn user_ids_by_email(
        &self,
        emails: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Uuid>, RepositoryError>> + Send;

    /// Adds (or, with `Update`, changes the role of) organization users all or nothing, one
    /// audit entry per record (built by `audit`: row, whether it was added). Decided under the
    /// organization's row lock on its current users: an owner is never changed by an import.
    fn import_org_users<A>(
        &self,
        organization: Uuid,
        rows: &[ResolvedUserImport],
        on_duplicate: OnDuplicate,
        now: DateTime<Utc>,
        audit: A,
    ) -> impl Future<Output = Result<ImportCounts, RepositoryError>> + Send
    where
        A: Fn(&ResolvedUserImport, bool) -> AuditEntry + Send + Sync;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_rows_default_to_viewer_and_report_problems() {
        let row = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let ok = parse_user_row(2, &row(&[("email", " Ann@Example.com ")])).ok();
        assert_eq!(
            ok.as_ref().map(|u| (u.email.as_str(), u.role)),
            Some(("ann@example.com", OrgRole::Viewer))
        );
        let bad = parse_user_row(3, &row(&[("email", "nope"), ("role", "boss")]))
            .err()
            .unwrap_or_default();
        assert_eq!(bad.len(), 2);
        let rows: Vec<UserImport> = ["a@x.io", "b@x.io", "a@x.io"]
            .iter()
            .enumerate()
            .filter_map(|(i, email)| parse_user_row(i + 2, &row(&[("email", email)])).ok())
            .collect();
        assert_eq!(duplicate_user_rows(&rows).len(), 1);
    }
}
