//! Operators' bulk import of accounts (`POST /api/admin/v1/users/import`): every row is checked
//! first — its shape, repeated addresses, roles that exist and that the importer could grant,
//! organizations that exist and that the importer may add people to — and any problem refuses
//! the whole import (or is reported by a dry run). Then each row goes through the same use
//! cases as the single endpoints (account with invitation, role grants, organization
//! membership), each audited as usual; a row that fails then (a race with another change) is
//! reported by line and the rest go on.

use std::collections::{BTreeMap, HashMap};

use steward_domain::RequestOrigin;
use steward_domain::account_import::{AccountImport, duplicate_account_rows, parse_account_row};
use steward_domain::fleet::{ImportCounts, ImportProblem, OnDuplicate};
use steward_domain::organizations::OrganizationRecord;
use steward_domain::rbac::Permission;
use uuid::Uuid;

use crate::admin_users::{RoleRequest, UserAdminService};
use crate::auth::{AdminNewAccount, AdminProfileUpdate};
use crate::error::AppError;
use crate::fleet::import::ImportRows;
use crate::fleet::{ImportReport, refused_import};
use crate::organizations::{OrganizationService, UserRef};
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// The most rows one account import takes (each new account is its own transaction).
pub const MAX_ACCOUNT_IMPORT_ROWS: usize = 10_000;

/// How an account import runs.
#[derive(Debug, Clone, Copy)]
pub struct AccountImportOptions {
    pub dry_run: bool,
    /// Accounts that exist: skipped, or updated (name, roles added, organization joined).
    pub on_duplicate: OnDuplicate,
    /// Whether new accounts get the invitation mail.
    pub invite: bool,
}

impl<S: Store> Steward<S> {
    /// Imports accounts as `admin` (roles loaded). See the module's documentation.
    pub async fn import_accounts(
        &self,
        admin: &Principal,
        rows: ImportRows,
        options: AccountImportOptions,
        origin: &RequestOrigin,
    ) -> Result<ImportReport, AppError> {
        self.import_accounts_with(admin, rows, options, origin, |_| true)
            .await
    }

    /// [`import_accounts`](Self::import_accounts) telling `checkpoint` how many rows are done
    /// before each row is applied; answering `false` stops there and answers what was done
    /// (rows are applied one by one, so what was done stays).
    pub async fn import_accounts_with(
        &self,
        admin: &Principal,
        rows: ImportRows,
        options: AccountImportOptions,
        origin: &RequestOrigin,
        checkpoint: impl Fn(usize) -> bool,
    ) -> Result<ImportReport, AppError> {
        let total = rows.len();
        if total > MAX_ACCOUNT_IMPORT_ROWS {
            return Err(AppError::new(
                crate::error::ErrorKind::TooLarge,
                format!("an account import takes at most {MAX_ACCOUNT_IMPORT_ROWS} rows"),
            ));
        }
        let mut problems = Vec::new();
        let mut parsed = Vec::with_capacity(rows.len());
        for (line, fields) in &rows {
            match parse_account_row(*line, fields) {
                Ok(row) => parsed.push(row),
                Err(row_problems) => problems.extend(row_problems),
            }
        }
        problems.extend(duplicate_account_rows(&parsed));
        let catalog = self.auth.full_catalog().await?;
        let mut organizations: HashMap<String, Option<OrganizationRecord>> = HashMap::new();
        for row in &parsed {
            for role in &row.roles {
                if !catalog.contains(role) {
                    problems.push(ImportProblem::new(
                        row.line,
                        "roles",
                        format!("no role is named {role}"),
                    ));
                } else if !catalog.may_grant(&admin.roles, role) {
                    problems.push(ImportProblem::new(
                        row.line,
                        "roles",
                        format!("you may not grant {role}: it has permissions you do not hold"),
                    ));
                }
            }
            if let Some(slug) = &row.organization_slug {
                if !admin.allows(Permission::OrganizationsWrite) {
                    problems.push(ImportProblem::new(
                        row.line,
                        "organizationSlug",
                        "adding people to organizations needs organizations:write",
                    ));
                    continue;
                }
                if !organizations.contains_key(slug) {
                    let found = self.store.find_organization_by_slug(slug).await?;
                    organizations.insert(slug.clone(), found);
                }
                if organizations.get(slug).is_none_or(Option::is_none) {
                    problems.push(ImportProblem::new(
                        row.line,
                        "organizationSlug",
                        "no organization has this slug",
                    ));
                }
            }
        }
        let emails: Vec<String> = parsed.iter().map(|row| row.email.clone()).collect();
        let existing: BTreeMap<String, Uuid> = self.store.user_ids_by_email(&emails).await?;
        let mut counts = ImportCounts::default();
        for row in &parsed {
            match (existing.contains_key(&row.email), options.on_duplicate) {
                (false, _) => counts.created += 1,
                (true, OnDuplicate::Skip) => counts.skipped += 1,
                (true, OnDuplicate::Update) => counts.updated += 1,
            }
        }
        problems.sort_by_key(|problem| problem.line);
        if options.dry_run {
            let counts = if problems.is_empty() {
                counts
            } else {
                ImportCounts::default()
            };
            return Ok(ImportReport::new(true, total, counts, problems));
        }
        if !problems.is_empty() {
            return Err(refused_import(&problems));
        }
        let mut done = ImportCounts::default();
        for (applied, row) in parsed.iter().enumerate() {
            if !checkpoint(applied) {
                break;
            }
            let outcome = match existing.get(&row.email) {
                None => self
                    .import_new_account(admin, row, &organizations, options, origin)
                    .await
                    .map(|()| {
                        done.created += 1;
                    }),
                Some(_) if options.on_duplicate == OnDuplicate::Skip => {
                    done.skipped += 1;
                    Ok(())
                }
                Some(user) => self
                    .import_existing_account(admin, *user, row, &organizations, origin)
                    .await
                    .map(|()| done.updated += 1),
            };
            if let Err(error) = outcome {
                problems.push(ImportProblem::new(row.line, "row", error.message));
            }
        }
        Ok(ImportReport::new(false, total, done, problems))
    }

    async fn import_new_account(
        &self,
        admin: &Principal,
        row: &AccountImport,
        organizations: &HashMap<String, Option<OrganizationRecord>>,
        options: AccountImportOptions,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let account = AdminNewAccount {
            email: row.email.clone(),
            display_name: row.display_name.clone(),
            password: None,
            invite: options.invite,
            locale: None,
        };
        let user = self.auth.admin_create_user(admin.user, account, origin).await?;
        self.import_grants(admin, user.id, row, organizations, origin)
            .await
    }

    async fn import_existing_account(
        &self,
        admin: &Principal,
        user: Uuid,
        row: &AccountImport,
        organizations: &HashMap<String, Option<OrganizationRecord>>,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let current = self
            .store
            .find_user(user)
            .await?
            .ok_or_else(|| AppError::not_found("no such user"))?;
        if current.display_name != row.display_name {
            let update = AdminProfileUpdate {
                display_name: Some(row.display_name.clone()),
                ..AdminProfileUpdate::default()
            };
            self.auth
                .admin_update_user(admin.user, user, update, origin)
                .await?;
        }
        self.import_grants(admin, user, row, organizations, origin).await
    }

    /// The row's roles (added, never taken away) and organization membership (added when
    /// missing; an existing membership keeps its role).
    async fn import_grants(
        &self,
        admin: &Principal,
        user: Uuid,
        row: &AccountImport,
        organizations: &HashMap<String, Option<OrganizationRecord>>,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let admins = UserAdminService::new(self);
        for role in &row.roles {
            admins
                .change_roles(admin, user, RoleRequest::Add(role.clone()), origin)
                .await?;
        }
        let (Some(slug), Some(role)) = (&row.organization_slug, row.org_role) else {
            return Ok(());
        };
        let Some(Some(organization)) = organizations.get(slug) else {
            return Err(AppError::not_found("no organization has this slug"));
        };
        if self.store.org_role(organization.id, user).await?.is_some() {
            return Ok(());
        }
        let service = OrganizationService::new(self);
        let standing = service
            .standing(
                admin.clone(),
                organization.id,
                steward_domain::organizations::OrgPermission::ManageUsers,
                Permission::OrganizationsWrite,
            )
            .await?;
        service
            .add_user(&standing, UserRef::Id(user), role, origin)
            .await?;
        Ok(())
    }
}
