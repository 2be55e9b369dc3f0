//! Bulk device import: every row checked, every problem reported by line, then all or
//! nothing.

use super::*;

/// One problem of an import.
#[derive(Debug, Serialize)]
pub struct ImportError {
    pub line: usize,
    pub field: String,
    pub message: String,
}

impl From<ImportProblem> for ImportError {
    fn from(problem: ImportProblem) -> Self {
        Self {
            line: problem.line,
            field: problem.field,
            message: problem.message,
        }
    }
}

/// What an import did, or in a dry run would do, and every problem by line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub dry_run: bool,
    pub rows: usize,
    pub created: usize,
    pub updated: usize,
    pub skipped: usize,
    pub errors: Vec<ImportError>,
}

impl ImportReport {
    pub(crate) fn new(
        dry_run: bool,
        rows: usize,
        counts: ImportCounts,
        problems: Vec<ImportProblem>,
    ) -> Self {
        Self {
            dry_run,
            rows,
            created: counts.created,
            updated: counts.updated,
            skipped: counts.skipped,
            errors: problems.into_iter().map(ImportError::from).collect(),
        }
    }
}

impl<S: Store> FleetService<'_, S> {
    /// Validates every row, then (unless `dry_run` or there are problems) imports all of them
    /// in one transaction.
    pub async fn import_devices(
        &self,
        organization: Uuid,
        rows: ImportRows,
        dry_run: bool,
        on_duplicate: OnDuplicate,
        user: Uuid,
        origin: &RequestOrigin,
    ) -> Result<ImportReport, AppError> {
        self.import_devices_with(organization, rows, dry_run, on_duplicate, user, origin, |_| true)
            .await
    }

    /// [`import_devices`](Self::import_devices) telling `checkpoint` how many rows are written,
    /// every few hundred rows; answering `false` stops it with nothing written
    /// (`RepositoryError::Stopped`). Background jobs report progress and cancel through it.
    #[allow(clippy::too_many_arguments)]
    pub async fn import_devices_with(
        &self,
        organization: Uuid,
        rows: ImportRows,
        dry_run: bool,
        on_duplicate: OnDuplicate,
        user: Uuid,
        origin: &RequestOrigin,
        checkpoint: impl Fn(usize) -> bool + Send + Sync,
    ) -> Result<ImportReport, AppError> {
        let total = rows.len();
        let mut problems = Vec::new();
        let mut parsed: Vec<DeviceImport> = Vec::with_capacity(rows.len());
        for (line, fields) in &rows {
            match parse_device_row(*line, fields) {
                Ok(row) => parsed.push(row),
                Err(row_problems) => problems.extend(row_problems),
            }
        }
        problems.extend(duplicate_rows(&parsed));

        let policies: BTreeSet<Uuid> = self
            .steward
            .store
            .policies(organization)
            .await?
            .iter()
            .map(|p| p.id)
            .collect();
        let groups: BTreeSet<Uuid> = self.groups(organization).await?.iter().map(|g| g.id).collect();
        let emails: Vec<String> = parsed
            .iter()
            .filter_map(|row| row.assigned_user_email.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let member_ids: BTreeSet<Uuid> = self
            .steward
            .store
            .org_members(organization)
            .await?
            .into_iter()
            .map(|member| member.user_id)
            .collect();
        let members: BTreeMap<String, Uuid> = self
            .steward
            .store
            .user_ids_by_email(&emails)
            .await?
            .into_iter()
            .filter(|(_, id)| member_ids.contains(id))
            .collect();
        let identifiers: Vec<String> = parsed.iter().map(|row| row.identifier.clone()).collect();
        let existing = self.steward.store.existing_devices(&identifiers).await?;

        let mut counts = ImportCounts::default();
        let mut resolved = Vec::with_capacity(parsed.len());
        for row in parsed {
            if row.policy_id.is_some_and(|id| !policies.contains(&id)) {
                problems.push(ImportProblem::new(
                    row.line,
                    "policyId",
                    "no such policy in this organization",
                ));
            }
            if row.group_id.is_some_and(|id| !groups.contains(&id)) {
                problems.push(ImportProblem::new(
                    row.line,
                    "groupId",
                    "no such group in this organization",
                ));
            }
            let assigned_user_id = match &row.assigned_user_email {
                Some(email) => match members.get(email) {
                    Some(id) => Some(*id),
                    None => {
                        problems.push(ImportProblem::new(
                            row.line,
                            "assignedUserEmail",
                            "no member of this organization has this email",
                        ));
                        None
                    }
                },
                None => None,
            };
            match existing.get(&row.identifier) {
                // A personal device or another organization's: it joins by enrolling, never by
                // an import (which would take it over).
                Some(owner) if *owner != Some(organization) => problems.push(ImportProblem::new(
                    row.line,
                    "deviceId",
                    "the device is registered outside this organization; it joins by enrolling",
                )),
                Some(_) if on_duplicate == OnDuplicate::Skip => counts.skipped += 1,
                Some(_) => counts.updated += 1,
                None => counts.created += 1,
            }
            resolved.push(ResolvedDeviceImport {
                row,
                assigned_user_id,
            });
        }
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
        let audit = move |row: &ResolvedDeviceImport, device: Uuid, created: bool| {
            admin_audit(
                user,
                if created {
                    "device.imported"
                } else {
                    "device.import_updated"
                },
                "device",
                organization,
                &origin,
            )
            .resource_id(device)
            .change(
                None,
                Some(json!({
                    "line": row.row.line,
                    "identifier": row.row.identifier,
                    "policyId": row.row.policy_id,
                    "groupId": row.row.group_id,
                })),
            )
        };
        let stored = self
            .steward
            .store
            .import_devices(
                organization,
                &resolved,
                on_duplicate,
                Utc::now(),
                audit,
                checkpoint,
            )
            .await?;
        Ok(report(stored, Vec::new()))
    }
}

/// A real import with problems: 400 listing them (the first thousand), nothing imported.
pub(crate) fn refused_import(problems: &[ImportProblem]) -> AppError {
    let details = problems
        .iter()
        .take(1000)
        .map(|p| FieldError {
            field: format!("line {}: {}", p.line, p.field),
            message: p.message.clone(),
        })
        .collect();
    AppError::validation(format!(
        "{} problems in the import; nothing was imported (run with dryRun=true for the full report)",
        problems.len()
    ))
    .with_details(details)
}
