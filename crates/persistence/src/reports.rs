//! Scheduled reports: schedules with their recipients, runs started once across instances (a
//! conditional move of `next_run_at` in the transaction that stores the run and its job), and
//! runs ended once with their mail queued in the same transaction.

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, ExprTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};
use steward_domain::reports::{
    Frequency, MAX_SCHEDULES, NewRun, Recipient, ReportFormat, ReportRun, ReportStore, ReportType, RunKind,
    RunOutcome, RunStatus, ScheduleRecord, Timing, weekday_name,
};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::accounts::outbox::insert_mail;
use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{jobs, report_recipients, report_runs, report_schedules};
use crate::error::db_err_to_repository as db;

/// The turn taken by writers of schedules (the count of schedules is decided under it).
const TURN: &str = "report_schedules";

fn corrupt(what: &str, value: &str) -> RepositoryError {
    RepositoryError::Other(format!("unknown {what} {value:?} in report_schedules"))
}

fn schedule(
    row: report_schedules::Model,
    recipients: Vec<Recipient>,
) -> Result<ScheduleRecord, RepositoryError> {
    let frequency = Frequency::parse(&row.frequency).ok_or_else(|| corrupt("frequency", &row.frequency))?;
    let time = NaiveTime::parse_from_str(&row.time_of_day, "%H:%M")
        .map_err(|_| corrupt("time of day", &row.time_of_day))?;
    let weekday = row
        .weekday
        .as_deref()
        .map(|day| day.parse::<Weekday>().map_err(|_| corrupt("weekday", day)))
        .transpose()?;
    let time_zone = row
        .time_zone
        .parse::<chrono_tz::Tz>()
        .map_err(|_| corrupt("time zone", &row.time_zone))?;
    Ok(ScheduleRecord {
        id: row.id,
        name: row.name,
        report_type: ReportType::parse(&row.report_type)
            .ok_or_else(|| corrupt("report type", &row.report_type))?,
        timing: Timing {
            frequency,
            time,
            weekday,
            day_of_month: row.day_of_month.and_then(|day| u32::try_from(day).ok()),
            time_zone,
        },
        format: ReportFormat::parse(&row.format).ok_or_else(|| corrupt("format", &row.format))?,
        organization: row.organization_id,
        enabled: row.enabled,
        owner: row.owner_id,
        next_run_at: row.next_run_at,
        recipients,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn run(row: report_runs::Model) -> Result<ReportRun, RepositoryError> {
    Ok(ReportRun {
        id: row.id,
        schedule_id: row.schedule_id,
        kind: RunKind::parse(&row.kind).ok_or_else(|| corrupt("run kind", &row.kind))?,
        due_at: row.due_at,
        window_from: row.window_from,
        window_to: row.window_to,
        status: RunStatus::parse(&row.status).ok_or_else(|| corrupt("run status", &row.status))?,
        job_id: row.job_id,
        mailed: row.mailed,
        error: row.error,
        created_at: row.created_at,
        finished_at: row.finished_at,
    })
}

fn run_row(run: &ReportRun) -> report_runs::ActiveModel {
    report_runs::ActiveModel {
        id: Set(run.id),
        schedule_id: Set(run.schedule_id),
        kind: Set(run.kind.as_str().to_owned()),
        due_at: Set(run.due_at),
        window_from: Set(run.window_from),
        window_to: Set(run.window_to),
        status: Set(run.status.as_str().to_owned()),
        job_id: Set(run.job_id),
        mailed: Set(run.mailed),
        error: Set(run.error.clone()),
        created_at: Set(run.created_at),
        finished_at: Set(run.finished_at),
    }
}

/// The columns of a schedule's fields (everything but id, version and creation time).
fn fields(record: &ScheduleRecord) -> report_schedules::ActiveModel {
    report_schedules::ActiveModel {
        name: Set(record.name.clone()),
        report_type: Set(record.report_type.as_str().to_owned()),
        frequency: Set(record.timing.frequency.as_str().to_owned()),
        time_of_day: Set(record.timing.time.format("%H:%M").to_string()),
        weekday: Set(record.timing.weekday.map(|day| weekday_name(day).to_owned())),
        day_of_month: Set(record.timing.day_of_month.and_then(|day| i32::try_from(day).ok())),
        time_zone: Set(record.timing.time_zone.name().to_owned()),
        format: Set(record.format.as_str().to_owned()),
        organization_id: Set(record.organization),
        enabled: Set(record.enabled),
        owner_id: Set(record.owner),
        next_run_at: Set(record.next_run_at),
        updated_at: Set(record.updated_at),
        ..Default::default()
    }
}

async fn recipients_of<C: sea_orm::ConnectionTrait>(
    connection: &C,
    schedules: &[Uuid],
) -> Result<Vec<(Uuid, Recipient)>, RepositoryError> {
    if schedules.is_empty() {
        return Ok(Vec::new());
    }
    Ok(report_recipients::Entity::find()
        .filter(report_recipients::Column::ScheduleId.is_in(schedules.to_vec()))
        .order_by_asc(report_recipients::Column::ScheduleId)
        .order_by_asc(report_recipients::Column::Position)
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(|row| {
            (
                row.schedule_id,
                Recipient {
                    id: row.id,
                    email: row.email,
                    unsubscribed_at: row.unsubscribed_at,
                },
            )
        })
        .collect())
}

async fn with_recipients<C: sea_orm::ConnectionTrait>(
    connection: &C,
    rows: Vec<report_schedules::Model>,
) -> Result<Vec<ScheduleRecord>, RepositoryError> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut recipients = recipients_of(connection, &ids).await?;
    rows.into_iter()
        .map(|row| {
            let (mine, rest): (Vec<_>, Vec<_>) = recipients.drain(..).partition(|(id, _)| *id == row.id);
            recipients = rest;
            schedule(row, mine.into_iter().map(|(_, recipient)| recipient).collect())
        })
        .collect()
}

/// Writes the recipient list: addresses that stay keep their row (and unsubscription), new
/// ones are added, removed ones deleted.
async fn write_recipients<C: sea_orm::ConnectionTrait>(
    connection: &C,
    record: &ScheduleRecord,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let emails: Vec<String> = record.recipients.iter().map(|r| r.email.clone()).collect();
    report_recipients::Entity::delete_many()
        .filter(report_recipients::Column::ScheduleId.eq(record.id))
        .filter(report_recipients::Column::Email.is_not_in(emails))
        .exec(connection)
        .await
        .map_err(db)?;
    let kept = report_recipients::Entity::find()
        .filter(report_recipients::Column::ScheduleId.eq(record.id))
        .all(connection)
        .await
        .map_err(db)?;
    for (position, recipient) in record.recipients.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        match kept.iter().find(|row| row.email == recipient.email) {
            Some(row) => {
                report_recipients::ActiveModel {
                    id: Set(row.id),
                    position: Set(position),
                    ..Default::default()
                }
                .update(connection)
                .await
                .map_err(db)?;
            }
            None => {
                report_recipients::ActiveModel {
                    id: Set(recipient.id),
                    schedule_id: Set(record.id),
                    email: Set(recipient.email.clone()),
                    position: Set(position),
                    unsubscribed_at: Set(None),
                    created_at: Set(now),
                }
                .insert(connection)
                .await
                .map_err(db)?;
            }
        }
    }
    Ok(())
}

async fn read_schedule<C: sea_orm::ConnectionTrait>(
    connection: &C,
    id: Uuid,
) -> Result<Option<ScheduleRecord>, RepositoryError> {
    let Some(row) = report_schedules::Entity::find_by_id(id)
        .one(connection)
        .await
        .map_err(db)?
    else {
        return Ok(None);
    };
    Ok(with_recipients(connection, vec![row]).await?.pop())
}

impl ReportStore for Database {
    async fn create_schedule(
        &self,
        record: &ScheduleRecord,
        audit: &AuditEntry,
    ) -> Result<Option<ScheduleRecord>, RepositoryError> {
        let transaction = self.begin_turn(TURN).await?;
        let count = report_schedules::Entity::find()
            .count(&transaction)
            .await
            .map_err(db)?;
        if count >= MAX_SCHEDULES {
            return Ok(None);
        }
        let mut row = fields(record);
        row.id = Set(record.id);
        row.version = Set(1);
        row.created_at = Set(record.created_at);
        row.insert(&transaction).await.map_err(db)?;
        write_recipients(&transaction, record, record.created_at).await?;
        insert_audit_entry(&transaction, audit).await?;
        let stored = read_schedule(&transaction, record.id).await?;
        transaction.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn update_schedule(
        &self,
        record: &ScheduleRecord,
        expected_version: i32,
        audit: &AuditEntry,
    ) -> Result<ScheduleRecord, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let mut update = report_schedules::Entity::update_many()
            .filter(report_schedules::Column::Id.eq(record.id))
            .filter(report_schedules::Column::Version.eq(expected_version))
            .col_expr(
                report_schedules::Column::Version,
                Expr::col(report_schedules::Column::Version).add(1),
            );
        let values = fields(record);
        update = update.set(values);
        let changed = update.exec(&transaction).await.map_err(db)?.rows_affected;
        if changed == 0 {
            let exists = report_schedules::Entity::find_by_id(record.id)
                .one(&transaction)
                .await
                .map_err(db)?
                .is_some();
            return Err(if exists {
                RepositoryError::Conflict("the schedule changed meanwhile".to_owned())
            } else {
                RepositoryError::NotFound
            });
        }
        write_recipients(&transaction, record, record.updated_at).await?;
        insert_audit_entry(&transaction, audit).await?;
        let stored = read_schedule(&transaction, record.id)
            .await?
            .ok_or(RepositoryError::NotFound)?;
        transaction.commit().await.map_err(db)?;
        Ok(stored)
    }

    async fn delete_schedule(&self, id: Uuid, audit: &AuditEntry) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let deleted = report_schedules::Entity::delete_by_id(id)
            .exec(&transaction)
            .await
            .map_err(db)?
            .rows_affected;
        if deleted == 0 {
            return Ok(false);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn find_schedule(&self, id: Uuid) -> Result<Option<ScheduleRecord>, RepositoryError> {
        read_schedule(self.connection(), id).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleRecord>, RepositoryError> {
        let rows = report_schedules::Entity::find()
            .order_by_asc(report_schedules::Column::CreatedAt)
            .order_by_asc(report_schedules::Column::Id)
            .limit(MAX_SCHEDULES)
            .all(self.connection())
            .await
            .map_err(db)?;
        with_recipients(self.connection(), rows).await
    }

    async fn due_schedules(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ScheduleRecord>, RepositoryError> {
        let rows = report_schedules::Entity::find()
            .filter(report_schedules::Column::Enabled.eq(true))
            .filter(report_schedules::Column::NextRunAt.lte(now))
            .order_by_asc(report_schedules::Column::NextRunAt)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db)?;
        with_recipients(self.connection(), rows).await
    }

    async fn start_run(
        &self,
        schedule: Uuid,
        seen_version: i32,
        next_run_at: DateTime<Utc>,
        new: &NewRun,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let moved = report_schedules::Entity::update_many()
            .filter(report_schedules::Column::Id.eq(schedule))
            .filter(report_schedules::Column::Enabled.eq(true))
            .filter(report_schedules::Column::Version.eq(seen_version))
            .col_expr(report_schedules::Column::NextRunAt, Expr::value(next_run_at))
            .col_expr(
                report_schedules::Column::Version,
                Expr::col(report_schedules::Column::Version).add(1),
            )
            .exec(&transaction)
            .await
            .map_err(db)?
            .rows_affected;
        if moved == 0 {
            return Ok(false);
        }
        // A slot that already ran (the timing moved back to it): only move on.
        let ran = report_runs::Entity::find()
            .filter(report_runs::Column::ScheduleId.eq(schedule))
            .filter(report_runs::Column::Kind.eq(new.run.kind.as_str()))
            .filter(report_runs::Column::DueAt.eq(new.run.due_at))
            .count(&transaction)
            .await
            .map_err(db)?
            > 0;
        if !ran {
            if let Some(job) = &new.job {
                crate::jobs::insert_job(&transaction, job).await?;
            }
            run_row(&new.run).insert(&transaction).await.map_err(db)?;
        }
        transaction.commit().await.map_err(db)?;
        Ok(!ran)
    }

    async fn claim_test_run(&self, new: &ReportRun) -> Result<bool, RepositoryError> {
        match run_row(new).insert(self.writer()).await.map_err(db) {
            Ok(_) => Ok(true),
            Err(RepositoryError::Conflict(_)) => {
                // The same minute's test, or a schedule deleted meanwhile.
                let exists = report_schedules::Entity::find_by_id(new.schedule_id)
                    .one(self.connection())
                    .await
                    .map_err(db)?
                    .is_some();
                if exists {
                    Ok(false)
                } else {
                    Err(RepositoryError::NotFound)
                }
            }
            Err(error) => Err(error),
        }
    }

    async fn fail_orphaned_runs(&self, now: DateTime<Utc>) -> Result<u64, RepositoryError> {
        let live = jobs::Entity::find()
            .select_only()
            .column(jobs::Column::Id)
            .filter(jobs::Column::Status.is_in(["pending", "running"]))
            .into_query();
        Ok(report_runs::Entity::update_many()
            .filter(report_runs::Column::Status.eq(RunStatus::Pending.as_str()))
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(report_runs::Column::Kind.eq(RunKind::Scheduled.as_str()))
                            .add(
                                Condition::any()
                                    .add(report_runs::Column::JobId.is_null())
                                    .add(report_runs::Column::JobId.not_in_subquery(live)),
                            ),
                    )
                    // A test whose instance stopped between its claim and its mail.
                    .add(
                        Condition::all()
                            .add(report_runs::Column::Kind.eq(RunKind::Test.as_str()))
                            .add(report_runs::Column::CreatedAt.lt(now - chrono::Duration::minutes(10))),
                    ),
            )
            .col_expr(
                report_runs::Column::Status,
                Expr::value(RunStatus::Failed.as_str()),
            )
            .col_expr(
                report_runs::Column::Error,
                Expr::value("it ended without being sent (its job was cancelled, timed out or interrupted)"),
            )
            .col_expr(report_runs::Column::FinishedAt, Expr::value(now))
            .exec(self.writer())
            .await
            .map_err(db)?
            .rows_affected)
    }

    async fn find_run(&self, id: Uuid) -> Result<Option<ReportRun>, RepositoryError> {
        report_runs::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(run)
            .transpose()
    }

    async fn finish_run(
        &self,
        id: Uuid,
        outcome: RunOutcome<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<usize>, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // The guard: of two attempts to end a run, one changes it.
        let ended = report_runs::Entity::update_many()
            .filter(report_runs::Column::Id.eq(id))
            .filter(report_runs::Column::Status.eq(RunStatus::Pending.as_str()))
            .col_expr(report_runs::Column::FinishedAt, Expr::value(now))
            .exec(&transaction)
            .await
            .map_err(db)?
            .rows_affected;
        if ended == 0 {
            return Ok(None);
        }
        let Some(row) = report_runs::Entity::find_by_id(id)
            .one(&transaction)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let (error, mailed) = match outcome {
            RunOutcome::Failed { error } => (Some(error.to_owned()), 0),
            RunOutcome::Sent { mail, audit } => {
                let enabled = report_schedules::Entity::find_by_id(row.schedule_id)
                    .one(&transaction)
                    .await
                    .map_err(db)?
                    .is_some_and(|schedule| schedule.enabled);
                if !enabled && row.kind == RunKind::Scheduled.as_str() {
                    (
                        Some("the schedule was disabled before its run was sent".to_owned()),
                        0,
                    )
                } else {
                    // Whoever unsubscribed while the mail was made gets none.
                    let subscribed: Vec<Uuid> = report_recipients::Entity::find()
                        .filter(report_recipients::Column::ScheduleId.eq(row.schedule_id))
                        .filter(report_recipients::Column::UnsubscribedAt.is_null())
                        .all(&transaction)
                        .await
                        .map_err(db)?
                        .into_iter()
                        .map(|recipient| recipient.id)
                        .collect();
                    let mut sent_to = Vec::new();
                    for (_, one) in mail
                        .iter()
                        .filter(|(recipient, _)| subscribed.contains(recipient))
                    {
                        insert_mail(&transaction, one).await?;
                        sent_to.push(one.recipient.clone());
                    }
                    let entry = (*audit).change(
                        None,
                        Some(serde_json::json!({"run": id, "dueAt": row.due_at, "recipients": sent_to})),
                    );
                    insert_audit_entry(&transaction, &entry).await?;
                    (None, sent_to.len())
                }
            }
        };
        let status = if error.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Sent
        };
        report_runs::Entity::update_many()
            .filter(report_runs::Column::Id.eq(id))
            .col_expr(report_runs::Column::Status, Expr::value(status.as_str()))
            .col_expr(
                report_runs::Column::Mailed,
                Expr::value(i32::try_from(mailed).unwrap_or(i32::MAX)),
            )
            .col_expr(report_runs::Column::Error, Expr::value(error))
            .exec(&transaction)
            .await
            .map_err(db)?;
        transaction.commit().await.map_err(db)?;
        Ok(Some(mailed))
    }

    async fn recent_runs(&self, schedule: Uuid, limit: u64) -> Result<Vec<ReportRun>, RepositoryError> {
        report_runs::Entity::find()
            .filter(report_runs::Column::ScheduleId.eq(schedule))
            .order_by_desc(report_runs::Column::CreatedAt)
            .order_by_desc(report_runs::Column::Id)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(run)
            .collect()
    }

    async fn find_recipient(&self, id: Uuid) -> Result<Option<(Recipient, Uuid, String)>, RepositoryError> {
        let Some(row) = report_recipients::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let Some(owner) = report_schedules::Entity::find_by_id(row.schedule_id)
            .one(self.connection())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        Ok(Some((
            Recipient {
                id: row.id,
                email: row.email,
                unsubscribed_at: row.unsubscribed_at,
            },
            owner.id,
            owner.name,
        )))
    }

    async fn unsubscribe(
        &self,
        recipient: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let changed = report_recipients::Entity::update_many()
            .filter(report_recipients::Column::Id.eq(recipient))
            .filter(report_recipients::Column::UnsubscribedAt.is_null())
            .col_expr(report_recipients::Column::UnsubscribedAt, Expr::value(now))
            .exec(&transaction)
            .await
            .map_err(db)?
            .rows_affected;
        if changed == 0 {
            return Ok(false);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }
}
