//! A device reporting settings it could not apply (`settings.non_compliant`) is a `warning` in
//! its event stream: the trigger that turns a device's audit entries into server events gets
//! the new severity. `down` puts migration 30's trigger back.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

use crate::m20261203_000030_device_events::{
    SEVERITY as PREVIOUS_SEVERITY, postgres_server_event_function, sqlite_server_event_trigger,
};

#[derive(DeriveMigrationName)]
pub struct Migration;

const SEVERITY: &str = "CASE WHEN NEW.action = 'device.wipe_requested' THEN 'critical' \
     WHEN NEW.action IN ('device.suspended', 'device.retired', 'settings.unlock_requested', \
     'settings.non_compliant') THEN 'warning' \
     ELSE 'info' END";

async fn install(manager: &SchemaManager<'_>, severity: &str) -> Result<(), DbErr> {
    let connection = manager.get_connection();
    match manager.get_database_backend() {
        // One call, so one pooled connection: a connection whose cached schema still lists
        // the trigger another connection just dropped refuses to create it again.
        DatabaseBackend::Sqlite => {
            connection
                .execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS audit_logs_device_events;\n{}",
                    sqlite_server_event_trigger(severity)
                ))
                .await?;
        }
        _ => {
            connection
                .execute_unprepared(&postgres_server_event_function(severity))
                .await?;
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        install(manager, SEVERITY).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        install(manager, PREVIOUS_SEVERITY).await
    }
}
