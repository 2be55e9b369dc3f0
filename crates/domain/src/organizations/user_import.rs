//! Organization user import: rows of email and role, checked one by one; an import never
//! changes an owner.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{OrgActor, OrgRole, may_set_org_role};
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
        problems.push(ImportProblem::new(
            line,
            "role",
            "must be owner, admin, viewer or member",
        ));
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

/// What an import does with one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserImportStep {
    /// Not a user of the organization yet: added with the row's role.
    Add,
    /// A user with another role: given the row's role (`OnDuplicate::Update` only).
    ChangeRole,
    /// Already a user with this role, an owner (an import never changes an owner), or
    /// `OnDuplicate::Skip`.
    Skip,
}

/// An import decided: one step per row, in row order, and what they add up to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserImportPlan {
    pub steps: Vec<UserImportStep>,
    pub counts: ImportCounts,
}

/// Decides an import on the organization's current users (`members`: user → role), as `actor`:
/// each row is added, changed or skipped, and every role the actor may not grant is a problem
/// on its line. Pure: the store calls it again on the users it reads under the organization's
/// lock, so what is applied is what was decided on fresh data.
pub fn plan_user_import(
    actor: OrgActor,
    rows: &[ResolvedUserImport],
    members: &BTreeMap<Uuid, OrgRole>,
    on_duplicate: OnDuplicate,
) -> Result<UserImportPlan, Vec<ImportProblem>> {
    // An import never demotes an owner, so the owner count cannot fall while it runs.
    let owners = members.values().filter(|role| **role == OrgRole::Owner).count();
    let mut counts = ImportCounts::default();
    let mut steps = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    for resolved in rows {
        let role = resolved.row.role;
        let step = match members.get(&resolved.user_id) {
            None => may_set_org_role(actor, None, role, owners).map(|()| UserImportStep::Add),
            Some(current)
                if on_duplicate == OnDuplicate::Skip || *current == OrgRole::Owner || *current == role =>
            {
                Ok(UserImportStep::Skip)
            }
            Some(current) => {
                may_set_org_role(actor, Some(*current), role, owners).map(|()| UserImportStep::ChangeRole)
            }
        };
        match step {
            Ok(step) => {
                match step {
                    UserImportStep::Add => counts.created += 1,
                    UserImportStep::ChangeRole => counts.updated += 1,
                    UserImportStep::Skip => counts.skipped += 1,
                }
                steps.push(step);
            }
            Err(error) => problems.push(ImportProblem::new(resolved.row.line, "role", error.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(UserImportPlan { steps, counts })
    } else {
        Err(problems)
    }
}

/// Organization user import, all or nothing.
pub trait OrgUserImportStore {
    /// Accounts by email (lower case), whatever their organizations.
    fn user_ids_by_email(
        &self,
        emails: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, Uuid>, RepositoryError>> + Send;

    /// Applies an import all or nothing, one audit entry per added or changed user (built by
    /// `audit`: row, whether it was added). `decide` gets the organization's users read under
    /// its row lock (the snapshot-decide-apply shape of `GroupStore::change_membership`) and
    /// answers the plan, or the problems that refuse the whole import. The users it adds must
    /// fit the organization's quota (`RuleError::QuotaExceeded`).
    fn import_org_users<F, A>(
        &self,
        organization: Uuid,
        rows: &[ResolvedUserImport],
        decide: F,
        now: DateTime<Utc>,
        audit: A,
    ) -> impl Future<Output = Result<Result<ImportCounts, Vec<ImportProblem>>, crate::RuleStoreError>> + Send
    where
        F: FnOnce(&BTreeMap<Uuid, OrgRole>) -> Result<UserImportPlan, Vec<ImportProblem>> + Send,
        A: Fn(&ResolvedUserImport, bool) -> AuditEntry + Send + Sync;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(line: usize, user: Uuid, role: OrgRole) -> ResolvedUserImport {
        ResolvedUserImport {
            row: UserImport {
                line,
                email: format!("u{line}@example.com"),
                role,
            },
            user_id: user,
        }
    }

    #[test]
    fn a_plan_adds_changes_and_skips_and_never_touches_an_owner() {
        let (owner, admin, viewer, newcomer) = (
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
        );
        let members = BTreeMap::from([
            (owner, OrgRole::Owner),
            (admin, OrgRole::Admin),
            (viewer, OrgRole::Viewer),
        ]);
        let rows = [
            resolved(2, owner, OrgRole::Viewer),
            resolved(3, admin, OrgRole::Admin),
            resolved(4, viewer, OrgRole::Admin),
            resolved(5, newcomer, OrgRole::Viewer),
        ];
        let as_owner = OrgActor::Member(OrgRole::Owner);
        let plan = plan_user_import(as_owner, &rows, &members, OnDuplicate::Update).unwrap();
        assert_eq!(
            plan.steps,
            [
                UserImportStep::Skip,
                UserImportStep::Skip,
                UserImportStep::ChangeRole,
                UserImportStep::Add
            ]
        );
        assert_eq!(
            (plan.counts.created, plan.counts.updated, plan.counts.skipped),
            (1, 1, 2)
        );
        let skipping = plan_user_import(as_owner, &rows, &members, OnDuplicate::Skip).unwrap();
        assert_eq!(
            (
                skipping.counts.created,
                skipping.counts.updated,
                skipping.counts.skipped
            ),
            (1, 0, 3)
        );
    }

    #[test]
    fn roles_the_importer_may_not_grant_are_problems_on_their_lines() {
        let members = BTreeMap::new();
        let rows = [
            resolved(2, Uuid::from_u128(1), OrgRole::Viewer),
            resolved(3, Uuid::from_u128(2), OrgRole::Owner),
        ];
        let problems = plan_user_import(
            OrgActor::Member(OrgRole::Admin),
            &rows,
            &members,
            OnDuplicate::Skip,
        )
        .unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!((problems[0].line, problems[0].field.as_str()), (3, "role"));
        assert!(plan_user_import(OrgActor::SystemAdmin, &rows, &members, OnDuplicate::Skip).is_ok());
    }

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
