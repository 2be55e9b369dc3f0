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

/// Starts the runs of schedules due at the scheduler's clock. Answers how many started here.
pub async fn scheduler_pass<S: Store>(steward: &Steward<S>) -> Result<usize, AppError> {
    let now = steward.clock.now();
    let due = steward.store.due_schedules(now, DUE_PER_PASS).await?;
    let mut started = 0;
    for schedule in due {
        let Some(seen) = schedule.next_run_at else {
            continue;
        };
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
            error: job.is_none().then(|| {
                "the schedule has no operator (their account was deleted): save it again".to_owned()
            }),
            created_at: created,
            finished_at: job.is_none().then_some(created),
        };
        if steward
            .store
            .start_run(schedule.id, seen, plan.next_run_at, &NewRun { run, job })
            .await?
        {
            started += 1;
        }
    }
    if started > 0 {
        steward.jobs.wake_workers();
    }
    Ok(started)
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
