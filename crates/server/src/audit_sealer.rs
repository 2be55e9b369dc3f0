//! Seals new audit entries into the hash chain, oldest first, every interval.

use std::time::Duration;

use steward_domain::audit_log::AuditLogStore;
use steward_persistence::Database;

pub async fn run_audit_sealer(
    database: Database,
    interval: Duration,
    health: std::sync::Arc<steward_app::health::HealthBoard>,
) {
    health
        .vitals
        .start(steward_app::health::Worker::AuditSealer, interval);
    loop {
        // Drain in batches so a burst is sealed within one interval.
        loop {
            match database.seal_audit_chain(500).await {
                Ok(sealed) => {
                    steward_api::metrics::record_sealed(sealed);
                    if sealed < 500 {
                        // A pass counts when it sealed what was waiting.
                        health.vitals.beat(steward_app::health::Worker::AuditSealer);
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "could not seal audit entries");
                    break;
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}
