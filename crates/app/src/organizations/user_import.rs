//! Organization user import: rows of email and role, each checked (an existing active
//! account, a role the importer may grant, never an owner changed), then all or nothing under
//! the organization's row lock.

use std::collections::BTreeMap;

use chrono::Utc;
use serde_json::json;
use steward_domain::RequestOrigin;
use steward_domain::fleet::{ImportCounts, ImportProblem, OnDuplicate};
use steward_domain::organizations::{
    OrgActor, OrgRole, ResolvedUserImport, duplicate_user_rows, parse_user_row, plan_user_import,
};
use uuid::Uuid;

use super::OrganizationService;
use crate::error::AppError;
use crate::fleet::import::ImportRows;
use crate::fleet::{ImportReport, admin_audit, refused_import};
use crate::steward::Store;

impl<S: Store> OrganizationService<'_, S> {
    /// Validates every row — existing accounts, roles the actor may grant — then (unless
    /// `dry_run` or there are problems) adds them all in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn import_users(
        &self,
        organization: Uuid,
        actor: OrgActor,
        rows: ImportRows,
        dry_run: bool,
        on_duplicate: OnDuplicate,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<ImportReport, AppError> {
        let total = rows.len();
        let mut problems = Vec::new();
        let mut parsed = Vec::with_capacity(rows.len());
        for (line, fields) in &rows {
            match parse_user_row(*line, fields) {
                Ok(row) => parsed.push(row),
                Err(row_problems) => problems.extend(row_problems),
            }
        }
        problems.extend(duplicate_user_rows(&parsed));
        let emails: Vec<String> = parsed.iter().map(|row| row.email.clone()).collect();
        let accounts = self.steward.store.user_ids_by_email(&emails).await?;
        let members: BTreeMap<Uuid, OrgRole> = self
            .steward
            .store
            .org_members(organization)
            .await?
            .into_iter()
            .map(|member| (member.user_id, member.role))
            .collect();
        let mut resolved = Vec::with_capacity(parsed.len());
        for row in parsed {
            match accounts.get(&row.email).copied() {
                Some(user_id) => resolved.push(ResolvedUserImport { row, user_id }),
                None => problems.push(ImportProblem::new(
                    row.line,
                    "email",
                    "no account has this email; the user registers first",
                )),
            }
        }
        // The plan on the users read now, for the report; the store decides again with the same
        // rule on the users it reads under the organization's lock.
        let counts = match plan_user_import(actor, &resolved, &members, on_duplicate) {
            Ok(plan) => plan.counts,
            Err(role_problems) => {
                problems.extend(role_problems);
                ImportCounts::default()
            }
        };
        problems.sort_by_key(|problem| problem.line);
        let report = |counts, problems| ImportReport::new(dry_run, total, counts, problems);
        if dry_run {
            // An import with problems changes nothing, so its dry run counts nothing either.
            let counts = if problems.is_empty() {
                counts
            } else {
                ImportCounts::default()
            };
            return Ok(report(counts, problems));
        }
        if !problems.is_empty() {
            return Err(refused_import(&problems));
        }
        let origin = origin.clone();
        let audit = move |row: &ResolvedUserImport, added: bool| {
            admin_audit(
                user,
                if added { "organization.user_added" } else { "organization.user_role_changed" },
                "organization",
                organization,
                &origin,
            )
            .resource_id(organization)
            .change(
                None,
                Some(json!({"userId": row.user_id, "role": row.row.role.as_str(), "line": row.row.line, "import": true})),
            )
        };
        let decide =
            |members: &BTreeMap<Uuid, OrgRole>| plan_user_import(actor, &resolved, members, on_duplicate);
        let stored = self
            .steward
            .store
            .import_org_users(organization, &resolved, decide, Utc::now(), audit)
            .await?
            .map_err(|problems| refused_import(&problems))?;
        Ok(report(stored, Vec::new()))
    }
}
