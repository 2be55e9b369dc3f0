//! Every audit entry is also an event: a trigger writes its `event_outbox` row as part of the
//! same `INSERT`, so no writer can forget it and a write transaction spends one statement less
//! holding SQLite's one write lock.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

// `OR IGNORE` / `ON CONFLICT DO NOTHING`: an instance of the previous release, still running
// during a rolling upgrade, writes the outbox row itself after the entry.
const SQLITE_UP: &str = "CREATE TRIGGER audit_logs_outbox AFTER INSERT ON audit_logs BEGIN \
     INSERT OR IGNORE INTO event_outbox (audit_id, occurred_at) VALUES (NEW.id, NEW.occurred_at); END";
const SQLITE_DOWN: &str = "DROP TRIGGER IF EXISTS audit_logs_outbox";

const POSTGRES_UP: [&str; 2] = [
    "CREATE OR REPLACE FUNCTION audit_logs_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN INSERT INTO event_outbox (audit_id, occurred_at) VALUES (NEW.id, NEW.occurred_at) \
     ON CONFLICT (audit_id) DO NOTHING; RETURN NULL; END $$",
    "CREATE TRIGGER audit_logs_outbox AFTER INSERT ON audit_logs \
     FOR EACH ROW EXECUTE FUNCTION audit_logs_outbox()",
];
const POSTGRES_DOWN: [&str; 2] = [
    "DROP TRIGGER IF EXISTS audit_logs_outbox ON audit_logs",
    "DROP FUNCTION IF EXISTS audit_logs_outbox()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                connection.execute_unprepared(SQLITE_UP).await?;
            }
            _ => {
                for statement in POSTGRES_UP {
                    connection.execute_unprepared(statement).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => {
                connection.execute_unprepared(SQLITE_DOWN).await?;
            }
            _ => {
                for statement in POSTGRES_DOWN {
                    connection.execute_unprepared(statement).await?;
                }
            }
        }
        Ok(())
    }
}
