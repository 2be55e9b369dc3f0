//! PostgreSQL: device events' search words are a stored `tsvector` column that Steward fills as
//! it inserts (the words a search sees: runs of letters and digits, lower-cased), instead of an
//! expression index that ran a regular expression and the text parser for every inserted row.
//! Rows written without it (server events from the audit trigger) get it from a `BEFORE
//! INSERT` trigger with the former expression. SQLite keeps its FTS5 table; nothing changes there.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const WORDS: &str = "to_tsvector('simple', regexp_replace(type || ' ' || coalesce(summary, '') || ' ' || data, \
     '[^[:alnum:]]+', ' ', 'g'))";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let connection = manager.get_connection();
        for statement in [
            "ALTER TABLE device_events ADD COLUMN search tsvector NULL".to_owned(),
            format!(
                "CREATE OR REPLACE FUNCTION device_events_search() RETURNS trigger LANGUAGE plpgsql AS $$ \
                 BEGIN NEW.search := {}; RETURN NEW; END $$",
                WORDS
                    .replace("type ||", "NEW.type ||")
                    .replace("coalesce(summary", "coalesce(NEW.summary")
                    .replace("|| data", "|| NEW.data")
            ),
            "CREATE TRIGGER device_events_search BEFORE INSERT ON device_events FOR EACH ROW \
             WHEN (NEW.search IS NULL) EXECUTE FUNCTION device_events_search()"
                .to_owned(),
            format!("UPDATE device_events SET search = {WORDS}"),
            "DROP INDEX IF EXISTS idx_device_events_search".to_owned(),
            "CREATE INDEX idx_device_events_search ON device_events USING gin (search)".to_owned(),
        ] {
            connection.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DatabaseBackend::Postgres {
            return Ok(());
        }
        let connection = manager.get_connection();
        for statement in [
            "DROP INDEX IF EXISTS idx_device_events_search".to_owned(),
            "DROP TRIGGER IF EXISTS device_events_search ON device_events".to_owned(),
            "DROP FUNCTION IF EXISTS device_events_search()".to_owned(),
            "ALTER TABLE device_events DROP COLUMN IF EXISTS search".to_owned(),
            format!("CREATE INDEX idx_device_events_search ON device_events USING gin ({WORDS})"),
        ] {
            connection.execute_unprepared(&statement).await?;
        }
        Ok(())
    }
}
