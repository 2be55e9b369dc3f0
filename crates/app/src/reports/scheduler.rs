//! The report scheduler: on every instance, every `STEWARD_REPORT_POLL_MS`, it starts the runs
//! of schedules due at its clock — one per schedule (the latest missed slot), each with its
//! job, taken by exactly one instance.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use steward_domain::jobs::{JobKind, NewJob};
use steward_domain::reports::{NewRun, ReportRun, RunKind, RunStatus, due_run};
use uuid::Uuid;

use super::DUE_PER_PASS;
use crate::error::AppError;
use crate::steward::{Steward, Store};

/// Batches of due schedules read per pass, at most.
const BATCHES: usize = 10;

/// Starts the runs of schedules due at the scheduler's clock, and fails the runs whose job
/// ended without them. Answers how many runs started here.
pub async fn scheduler_pass<S: Store>(steward: &Steward<S>) -> Result<usize, AppError> {
    let now = steward.clock.now();
    let orphaned = steward.store.fail_orphaned_runs(Utc::now()).await?;
    if orphaned > 0 {
        tracing::warn!(
            orphaned,
            "report runs whose job ended without sending them were failed"
        );
    }
    let mut started = 0;
    for _ in 0..BATCHES {
        let due = steward.store.due_schedules(now, DUE_PER_PASS).await?;
        let full = due.len() as u64 >= DUE_PER_PASS;
        for schedule in due {
            // One schedule's failure does not hold up the others.
            match start(steward, &schedule, now).await {
                Ok(true) => started += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, schedule = %schedule.id, "a report run could not start"),
            }
        }
        if !full {
            break;
        }
    }
    if started > 0 {
        steward.jobs.wake_workers();
    }
    Ok(started)
}

async fn start<S: Store>(
    steward: &Steward<S>,
    schedule: &steward_domain::reports::ScheduleRecord,
    now: chrono::DateTime<Utc>,
) -> Result<bool, AppError> {
    let plan = due_run(&schedule.timing, now);
    let run_id = Uuid::now_v7();
    let created = Utc::now();
    let job = schedule.owner.map(|owner| NewJob {
        id: Uuid::now_v7(),
        kind: JobKind::ScheduledReport,
        owner_id: owner,
        organization_id: None,
        parameters: json!({"schedule": schedule.id, "run": run_id, "dueAt": plan.due_at}),
        input: None,
        created_at: created,
    });
    let run = ReportRun {
        id: run_id,
        schedule_id: schedule.id,
        kind: RunKind::Scheduled,
        due_at: plan.due_at,
        window_from: plan.window_from,
        window_to: plan.due_at,
        status: if job.is_some() {
            RunStatus::Pending
        } else {
            RunStatus::Failed
        },
        job_id: job.as_ref().map(|job| job.id),
        mailed: 0,
        error: job
            .is_none()
            .then(|| "the schedule has no operator (their account was deleted): save it again".to_owned()),
        created_at: created,
        finished_at: job.is_none().then_some(created),
    };
    Ok(steward
        .store
        .start_run(
            schedule.id,
            schedule.version,
            plan.next_run_at,
            &NewRun { run, job },
        )
        .await?)
}

/// Runs [`scheduler_pass`] every `every`, forever.
pub async fn run_report_scheduler<S: Store>(steward: Steward<S>, every: Duration) {
    use crate::health::Worker;
    steward.health.vitals.start(Worker::ReportScheduler, every);
    loop {
        match scheduler_pass(&steward).await {
            Ok(_) => steward.health.vitals.beat(Worker::ReportScheduler),
            Err(error) => tracing::warn!(%error, "the report scheduler's pass failed"),
        }
        tokio::time::sleep(every).await;
    }
}
