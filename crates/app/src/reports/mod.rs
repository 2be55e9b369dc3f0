//! Scheduled reports: schedules kept by operators, started by the scheduler at their due time
//! (once across instances, catching up only the latest missed slot), run as jobs that mail
//! each subscribed recipient, sent on demand as a test, and left by recipients through a
//! signed link that works without signing in.
//!
//! A schedule's runs act for the operator who last saved it: each run needs them active and
//! holding, through their roles, `reports:manage` and what the report shows (`dashboard:read`
//! and `audit:read`).

mod scheduler;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use steward_domain::accounts::{MailAttachment, OutgoingMail};
use steward_domain::dashboard::{Interval, Scope};
use steward_domain::jobs::JobRecord;
use steward_domain::rbac::Permission;
use steward_domain::reports::{
    RECENT_RUNS, Recipient, Report, ReportFormat, ReportRun, RunKind, RunOutcome, RunStatus, ScheduleFields,
    ScheduleRecord,
};
use steward_domain::{Actor, AuditAction, AuditEntry, RepositoryError, RequestOrigin};
use uuid::Uuid;

use crate::error::{AppError, ErrorKind};
use crate::mail::MailKind;
use crate::principal::{Credential, Principal};
use crate::steward::{Steward, Store};

/// Due schedules taken per scheduler pass.
const DUE_PER_PASS: u64 = 50;

pub use scheduler::{run_report_scheduler, scheduler_pass};

/// Whether `principal`'s roles (not a token's scopes: runs outlive tokens) let them run a
/// report of `report_type`.
/// What a report needs beside `reports:manage`: its figures are the dashboard's and counts of
/// the audit trail.
const FIGURES: [Permission; 3] = [
    Permission::ReportsManage,
    Permission::DashboardRead,
    Permission::AuditRead,
];

const NEEDS: &str = "a report needs reports:manage, dashboard:read and audit:read";

/// What a request to save or test a report lacks, if anything: the first of [`FIGURES`] the
/// caller's roles do not grant (`false`) or their token's scopes do not reach (`true`).
fn lacks(principal: &Principal) -> Option<(Permission, bool)> {
    FIGURES.iter().find_map(|permission| {
        if !principal.catalog.allows(&principal.roles, *permission) {
            Some((*permission, false))
        } else if !principal.has_scope(permission.as_str()) {
            Some((*permission, true))
        } else {
            None
        }
    })
}

/// Whether a run may act for `owner`: their roles only (runs outlive tokens).
fn may_run(owner: &Principal) -> bool {
    FIGURES
        .iter()
        .all(|permission| owner.catalog.allows(&owner.roles, *permission))
}

/// A schedule as the audit trail records it.
fn described(schedule: &ScheduleRecord) -> Value {
    json!({
        "name": schedule.name,
        "reportType": schedule.report_type.as_str(),
        "frequency": schedule.timing.frequency.as_str(),
        "time": schedule.timing.time.format("%H:%M").to_string(),
        "timeZone": schedule.timing.time_zone.name(),
        "format": schedule.format.as_str(),
        "organizationId": schedule.organization,
        "enabled": schedule.enabled,
        "recipients": schedule.recipients.iter().map(|r| r.email.as_str()).collect::<Vec<_>>(),
    })
}

fn audit(actor: Actor, action: &'static str, schedule: Uuid, origin: &RequestOrigin) -> AuditEntry {
    AuditEntry::new(actor, AuditAction::known(action), "report_schedule")
        .resource_id(schedule)
        .origin(origin.clone())
}

pub struct ReportService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> ReportService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// Refuses (`403`, audited as `admin.access_denied` like the admin API's other refusals)
    /// a caller who lacks what a report needs.
    async fn require_figures(
        &self,
        principal: &Principal,
        target: &str,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let Some((permission, scope)) = lacks(principal) else {
            return Ok(());
        };
        if let Err(error) = self
            .steward
            .auth
            .record_access_denied(principal, Some(permission.as_str()), scope, target, origin)
            .await
        {
            tracing::warn!(%error, "could not audit a refused report schedule request");
        }
        Err(AppError::forbidden(format!(
            "{NEEDS}: {} {permission}",
            if scope {
                "your token lacks the scope"
            } else {
                "you lack the permission"
            }
        )))
    }

    async fn schedule(&self, id: Uuid) -> Result<ScheduleRecord, AppError> {
        self.steward
            .store
            .find_schedule(id)
            .await?
            .ok_or_else(|| AppError::not_found("no such report schedule"))
    }

    /// Every schedule, oldest first.
    pub async fn list(&self) -> Result<Vec<ScheduleRecord>, AppError> {
        Ok(self.steward.store.list_schedules().await?)
    }

    /// A schedule and its latest runs, newest first.
    pub async fn get(&self, id: Uuid) -> Result<(ScheduleRecord, Vec<ReportRun>), AppError> {
        let schedule = self.schedule(id).await?;
        let runs = self.steward.store.recent_runs(id, RECENT_RUNS).await?;
        Ok((schedule, runs))
    }

    async fn checked(
        &self,
        admin: &Principal,
        fields: ScheduleFields,
        target: &str,
        origin: &RequestOrigin,
    ) -> Result<ScheduleRecord, AppError> {
        let admin = self.steward.auth.with_roles(admin.clone()).await?;
        self.require_figures(&admin, target, origin).await?;
        let input = fields.check()?;
        if let Some(organization) = input.organization
            && self
                .steward
                .store
                .find_organization(organization)
                .await?
                .is_none()
        {
            return Err(AppError::invalid("organizationId", "names no organization"));
        }
        let now = Utc::now();
        Ok(ScheduleRecord {
            id: Uuid::now_v7(),
            name: input.name,
            report_type: input.report_type,
            next_run_at: input
                .enabled
                .then(|| input.timing.slot_after(self.steward.clock.now())),
            timing: input.timing,
            format: input.format,
            organization: input.organization,
            enabled: input.enabled,
            owner: Some(admin.user),
            recipients: input
                .recipients
                .into_iter()
                .map(|email| Recipient {
                    id: Uuid::now_v7(),
                    email,
                    unsubscribed_at: None,
                })
                .collect(),
            version: 1,
            created_at: now,
            updated_at: now,
        })
    }

    /// Creates a schedule run on `admin`'s behalf; due first at its next slot.
    pub async fn create(
        &self,
        admin: &Principal,
        fields: ScheduleFields,
        origin: &RequestOrigin,
    ) -> Result<ScheduleRecord, AppError> {
        let schedule = self
            .checked(admin, fields, "POST /api/admin/v1/report-schedules", origin)
            .await?;
        let entry = audit(
            Actor::admin(admin.user),
            "report.schedule_created",
            schedule.id,
            origin,
        )
        .change(None, Some(described(&schedule)));
        self.steward
            .store
            .create_schedule(&schedule, &entry)
            .await?
            .ok_or_else(|| {
                AppError::conflict(format!(
                    "there are already {} report schedules",
                    steward_domain::reports::MAX_SCHEDULES
                ))
            })
    }

    /// Replaces a schedule's fields; its runs act for `admin` from now on. The next run is
    /// recomputed when the timing changes or the schedule is turned back on; recipients who
    /// stay keep their unsubscription. `version`, when given, must be the stored one.
    pub async fn update(
        &self,
        admin: &Principal,
        id: Uuid,
        fields: ScheduleFields,
        version: Option<i32>,
        origin: &RequestOrigin,
    ) -> Result<ScheduleRecord, AppError> {
        let current = self.schedule(id).await?;
        if version.is_some_and(|version| version != current.version) {
            return Err(AppError::new(
                ErrorKind::VersionConflict,
                "the schedule changed since you read it",
            ));
        }
        let mut schedule = self
            .checked(
                admin,
                fields,
                &format!("PUT /api/admin/v1/report-schedules/{id}"),
                origin,
            )
            .await?;
        schedule.id = current.id;
        schedule.created_at = current.created_at;
        schedule.next_run_at = if !schedule.enabled {
            None
        } else if schedule.timing == current.timing && current.enabled && current.next_run_at.is_some() {
            current.next_run_at
        } else {
            Some(schedule.timing.slot_after(self.steward.clock.now()))
        };
        for recipient in &mut schedule.recipients {
            if let Some(kept) = current.recipients.iter().find(|r| r.email == recipient.email) {
                recipient.id = kept.id;
            }
        }
        let entry = audit(Actor::admin(admin.user), "report.schedule_updated", id, origin)
            .change(Some(described(&current)), Some(described(&schedule)));
        match self
            .steward
            .store
            .update_schedule(&schedule, current.version, &entry)
            .await
        {
            Ok(stored) => Ok(stored),
            Err(RepositoryError::NotFound) => Err(AppError::not_found("no such report schedule")),
            Err(RepositoryError::Conflict(_)) => Err(AppError::new(
                ErrorKind::VersionConflict,
                "the schedule changed meanwhile: read it again",
            )),
            Err(error) => Err(error.into()),
        }
    }

    /// Deletes a schedule with its recipients and runs (a run already started fails).
    pub async fn delete(&self, admin: &Principal, id: Uuid, origin: &RequestOrigin) -> Result<(), AppError> {
        let current = self.schedule(id).await?;
        let entry = audit(Actor::admin(admin.user), "report.schedule_deleted", id, origin)
            .change(Some(described(&current)), None);
        if self.steward.store.delete_schedule(id, &entry).await? {
            Ok(())
        } else {
            Err(AppError::not_found("no such report schedule"))
        }
    }

    /// Mails the report now, for the period up to now, to every subscribed recipient, marked
    /// as a test. One test per schedule and minute (`429` for another).
    pub async fn send_test(
        &self,
        admin: &Principal,
        id: Uuid,
        origin: &RequestOrigin,
    ) -> Result<ReportRun, AppError> {
        let schedule = self.schedule(id).await?;
        let admin = self.steward.auth.with_roles(admin.clone()).await?;
        self.require_figures(
            &admin,
            &format!("POST /api/admin/v1/report-schedules/{id}/send-test"),
            origin,
        )
        .await?;
        let now = self.steward.clock.now();
        let period = schedule.timing.slot_after(now) - schedule.timing.slot_at_or_before(now);
        let from = now - period;
        if schedule.recipients.iter().all(|r| r.unsubscribed_at.is_some()) {
            return Err(AppError::conflict(
                "every recipient of this schedule unsubscribed",
            ));
        }
        let minute =
            DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(60), 0).unwrap_or(now);
        let mut run = ReportRun {
            id: Uuid::now_v7(),
            schedule_id: id,
            kind: RunKind::Test,
            due_at: minute,
            window_from: from,
            window_to: now,
            status: RunStatus::Pending,
            job_id: None,
            mailed: 0,
            error: None,
            created_at: Utc::now(),
            finished_at: None,
        };
        // The minute's test is claimed before any figure is read.
        match self.steward.store.claim_test_run(&run).await {
            Ok(true) => {}
            Ok(false) => {
                return Err(AppError::new(
                    ErrorKind::RateLimited,
                    "a test of this schedule was sent this minute",
                )
                .with_retry_after(60));
            }
            Err(RepositoryError::NotFound) => return Err(AppError::not_found("no such report schedule")),
            Err(error) => return Err(error.into()),
        }
        let mail = match self.mail(&schedule, from, now, true).await {
            Ok(mail) => mail,
            Err(error) => {
                self.steward
                    .store
                    .finish_run(
                        run.id,
                        RunOutcome::Failed {
                            error: &error.message,
                        },
                        Utc::now(),
                    )
                    .await?;
                return Err(error);
            }
        };
        let entry = audit(Actor::admin(admin.user), "report.test_sent", id, origin);
        let mailed = self
            .steward
            .store
            .finish_run(
                run.id,
                RunOutcome::Sent {
                    mail: &mail,
                    audit: Box::new(entry),
                },
                Utc::now(),
            )
            .await?
            .unwrap_or(0);
        run.status = RunStatus::Sent;
        run.mailed = i32::try_from(mailed).unwrap_or(i32::MAX);
        run.finished_at = Some(Utc::now());
        Ok(run)
    }

    /// The recipient an unsubscribe token names, with their schedule's name; `404` for a token
    /// that is not genuine or whose recipient was removed.
    pub async fn recipient(&self, token: &str) -> Result<(Recipient, String), AppError> {
        let gone = || AppError::not_found("this unsubscribe link is not valid (any more)");
        if token.len() > 200 {
            return Err(gone());
        }
        let id = self
            .steward
            .auth
            .open_report_unsubscribe_token(token)
            .ok_or_else(gone)?;
        let (recipient, _, name) = self.steward.store.find_recipient(id).await?.ok_or_else(gone)?;
        Ok((recipient, name))
    }

    /// Unsubscribes the token's recipient from its schedule (again: nothing changes).
    pub async fn unsubscribe(
        &self,
        token: &str,
        origin: &RequestOrigin,
    ) -> Result<(Recipient, String), AppError> {
        let (mut recipient, name) = self.recipient(token).await?;
        if recipient.unsubscribed_at.is_none() {
            let (_, schedule, _) = self
                .steward
                .store
                .find_recipient(recipient.id)
                .await?
                .ok_or_else(|| AppError::not_found("this unsubscribe link is not valid (any more)"))?;
            let now = Utc::now();
            let entry = audit(Actor::system(), "report.unsubscribed", schedule, origin)
                .change(None, Some(json!({"email": recipient.email})));
            self.steward.store.unsubscribe(recipient.id, now, &entry).await?;
            recipient.unsubscribed_at = Some(now);
        }
        Ok((recipient, name))
    }

    /// The report's figures for `[from, to)`.
    async fn report(
        &self,
        schedule: &ScheduleRecord,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Report, AppError> {
        let scope = schedule.organization.map_or(Scope::System, Scope::Organization);
        let actions = schedule.report_type.counted_actions();
        let store = &self.steward.store;
        let (counts, now) = tokio::try_join!(
            store.audit_counts(&actions, scope, from, to, Interval::Week),
            store.dashboard_counts(scope, Utc::now()),
        )?;
        let mut by_action: BTreeMap<String, u64> = BTreeMap::new();
        for (action, _, count) in counts {
            let total = by_action.entry(action).or_insert(0);
            *total = total.saturating_add(count);
        }
        Ok(Report::build(
            schedule.report_type,
            scope,
            (from, to),
            &by_action,
            &now,
        ))
    }

    /// The mail of a run to each subscribed recipient, each with their own unsubscribe link.
    async fn mail(
        &self,
        schedule: &ScheduleRecord,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        test: bool,
    ) -> Result<Vec<(Uuid, OutgoingMail)>, AppError> {
        let report = self.report(schedule, from, to).await?;
        let scope = match schedule.organization {
            None => "the whole system".to_owned(),
            Some(organization) => match self.steward.store.find_organization(organization).await? {
                Some(found) => format!("the organization {}", found.name),
                None => return Err(AppError::not_found("the schedule's organization was deleted")),
            },
        };
        let zone = schedule.timing.time_zone;
        let attachment = (schedule.format == ReportFormat::Csv).then(|| MailAttachment {
            name: format!(
                "steward-{}-{}.csv",
                schedule.report_type.as_str().replace('_', "-"),
                to.with_timezone(&zone).format("%Y-%m-%d")
            ),
            content_type: "text/csv; charset=utf-8".to_owned(),
            body: csv_text(&report),
        });
        let sections: Vec<Value> = report
            .sections
            .iter()
            .map(|section| {
                json!({
                    "title": section.title,
                    "rows": section.rows.iter().map(|(label, value)| json!({"label": label, "value": value})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let base = self.steward.auth.public_url().trim_end_matches('/').to_owned();
        let templates = self.steward.auth.mail_templates();
        let mut mail = Vec::new();
        for recipient in schedule.recipients.iter().filter(|r| r.unsubscribed_at.is_none()) {
            let token = self.steward.auth.report_unsubscribe_token(recipient.id);
            let values = json!({
                "title": schedule.report_type.title(),
                "name": schedule.name,
                "test": test,
                "scope": scope,
                "from": from.to_rfc3339(),
                "to": to.to_rfc3339(),
                "from_date": from.with_timezone(&zone).format("%Y-%m-%d").to_string(),
                "to_date": to.with_timezone(&zone).format("%Y-%m-%d").to_string(),
                "sections": sections,
                "attachment": attachment.as_ref().map(|file| file.name.clone()),
                "unsubscribe_url": format!("{base}/report-unsubscribe?token={token}"),
            });
            let mut one = templates
                .render(MailKind::Report, &recipient.email, None, values)
                .map_err(|error| {
                    tracing::error!(%error, "a report mail could not be rendered");
                    AppError::internal()
                })?;
            one.attachment = attachment.clone();
            one.unsubscribe = Some(format!("{base}/api/v1/report-unsubscribe?token={token}"));
            mail.push((recipient.id, one));
        }
        Ok(mail)
    }

    /// The scheduled run a job sends: checks the owner, mails every subscribed recipient and
    /// ends the run with its mail queued (once, even if the job is taken up again).
    pub(crate) async fn run_job(&self, job: &JobRecord) -> Result<Value, AppError> {
        let run_id = job
            .parameters
            .get("run")
            .and_then(Value::as_str)
            .and_then(|id| id.parse::<Uuid>().ok())
            .ok_or_else(|| AppError::validation("the job names no report run"))?;
        let run = self
            .steward
            .store
            .find_run(run_id)
            .await?
            .ok_or_else(|| AppError::not_found("the report schedule was deleted"))?;
        if run.status != RunStatus::Pending {
            return Ok(json!({"run": run.id, "status": run.status.as_str(), "mailed": run.mailed}));
        }
        match self.send_run(&run).await {
            Ok(summary) => Ok(summary),
            // A passing failure: the job is taken up again and the run stays pending.
            Err(error) if error.kind == ErrorKind::Unavailable => Err(error),
            Err(error) => {
                self.steward
                    .store
                    .finish_run(
                        run.id,
                        RunOutcome::Failed {
                            error: &error.message,
                        },
                        Utc::now(),
                    )
                    .await?;
                Err(error)
            }
        }
    }

    async fn send_run(&self, run: &ReportRun) -> Result<Value, AppError> {
        let schedule = self
            .steward
            .store
            .find_schedule(run.schedule_id)
            .await?
            .ok_or_else(|| AppError::not_found("the report schedule was deleted"))?;
        // The operator the schedule acts for now (whoever saved it last).
        let owner = match schedule.owner {
            Some(owner) => self.steward.store.find_user(owner).await?,
            None => None,
        }
        .filter(|user| user.is_active())
        .ok_or_else(|| {
            AppError::forbidden("the schedule's operator can no longer act (locked or deleted)")
        })?;
        let owner = self
            .steward
            .auth
            .with_roles(Principal::new(
                owner.id,
                Credential::Session { session: Uuid::nil() },
            ))
            .await?;
        if !may_run(&owner) {
            return Err(AppError::forbidden(format!(
                "the schedule's operator no longer holds what it needs: {NEEDS}"
            )));
        }
        let mail = self
            .mail(&schedule, run.window_from, run.window_to, false)
            .await?;
        let entry = AuditEntry::new(
            Actor::system(),
            AuditAction::known("report.sent"),
            "report_schedule",
        )
        .resource_id(schedule.id);
        let mailed = self
            .steward
            .store
            .finish_run(
                run.id,
                RunOutcome::Sent {
                    mail: &mail,
                    audit: Box::new(entry),
                },
                Utc::now(),
            )
            .await?;
        Ok(json!({"run": run.id, "schedule": schedule.id, "mailed": mailed.unwrap_or(0)}))
    }
}

/// The report as CSV text (`section,figure,value`); cells that a spreadsheet would read as a
/// formula are quoted with `'`.
fn csv_text(report: &Report) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in report.csv_rows() {
        let [section, figure, value] = row;
        if writer
            .write_record([
                crate::audit::csv_cell(section),
                crate::audit::csv_cell(figure),
                value,
            ])
            .is_err()
        {
            break;
        }
    }
    writer
        .into_inner()
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_default()
}
