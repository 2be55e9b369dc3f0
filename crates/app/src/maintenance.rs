//! The clean-up pass: every kind of finished row ([`CleanupTarget`]) counted (a dry run) or
//! deleted in batches of [`CLEANUP_BATCH`], with a pause between batches so requests writing
//! at the same time are not starved (SQLite has one writer); then the audit entries of the days
//! that ended are counted into the usage statistics' daily rollup.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use steward_domain::RepositoryError;
use steward_domain::dashboard::rollup_until;
use steward_domain::maintenance::{
    CLEANUP_BATCH, CleanupTarget, MaintenanceStore, ROLLUP_DAYS_PER_PASS, Retention,
};

/// What one pass did (or, dry, would do): rows per table, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupReport {
    pub dry_run: bool,
    pub deleted: Vec<(CleanupTarget, u64)>,
    /// UTC days of audit entries counted into the statistics' daily rollup (none in a dry run).
    pub rolled_up_days: u64,
    pub elapsed: Duration,
}

impl CleanupReport {
    pub fn total(&self) -> u64 {
        self.deleted.iter().map(|(_, rows)| rows).sum()
    }
}

/// How long after start-up an instance first tries to run a pass.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(60);

/// The pause between two batches of one table.
const BREATHER: Duration = Duration::from_millis(5);

/// Counts (`dry_run`) or deletes every finished row as of `now`.
pub async fn run_cleanup<S: MaintenanceStore + Sync>(
    store: &S,
    retention: &Retention,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<CleanupReport, RepositoryError> {
    let started = Instant::now();
    let mut deleted = Vec::with_capacity(CleanupTarget::ALL.len());
    for target in CleanupTarget::ALL {
        let cutoff = retention.cutoff(target, now);
        let rows = if dry_run {
            store.count_expired(target, cutoff, now).await?
        } else {
            let mut rows = 0;
            loop {
                let batch = store.delete_expired(target, cutoff, now, CLEANUP_BATCH).await?;
                rows += batch;
                if batch < CLEANUP_BATCH {
                    break;
                }
                tokio::time::sleep(BREATHER).await;
            }
            rows
        };
        deleted.push((target, rows));
    }
    let rolled_up_days = if dry_run {
        0
    } else {
        store
            .roll_up_audit_days(rollup_until(now), ROLLUP_DAYS_PER_PASS)
            .await?
    };
    Ok(CleanupReport {
        dry_run,
        deleted,
        rolled_up_days,
        elapsed: started.elapsed(),
    })
}

/// Runs a pass every `every`, on one instance at a time: each instance tries, and the one whose
/// claim of the pass succeeds runs it. `on_pass` sees each report (for metrics and logs).
pub async fn run_maintenance<S, F>(
    store: S,
    retention: Retention,
    every: Duration,
    health: std::sync::Arc<crate::health::HealthBoard>,
    on_pass: F,
) where
    S: MaintenanceStore + Sync,
    F: Fn(&CleanupReport),
{
    let interval = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::hours(1));
    // Not at the very start: an instance that restarts in a loop does not add passes.
    tokio::time::sleep(every.min(FIRST_PASS_AFTER)).await;
    loop {
        let now = Utc::now();
        // Claimed a little before the interval is up, so a pass is not skipped for a few ms.
        match store
            .claim_maintenance_pass(now, interval - chrono::Duration::seconds(1).min(interval / 2))
            .await
        {
            Ok(true) => match run_cleanup(&store, &retention, now, false).await {
                Ok(report) => {
                    on_pass(&report);
                    health.vitals.beat(crate::health::Worker::Maintenance);
                }
                Err(error) => tracing::warn!(%error, "the clean-up pass failed; the next one retries"),
            },
            // Another instance has this interval's pass: this one is alive all the same.
            Ok(false) => health.vitals.beat(crate::health::Worker::Maintenance),
            Err(error) => tracing::warn!(%error, "could not claim the clean-up pass"),
        }
        tokio::time::sleep(every).await;
    }
}
