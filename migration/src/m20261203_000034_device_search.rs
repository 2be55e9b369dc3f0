//! Substring search over a fleet without scanning it (`GET …/organizations/{orgId}/devices?q=`):
//! on SQLite a trigram FTS5 table of every device's name, serial number and identifier, kept
//! current by triggers and keyed like the accounts' (migration 18: a stable integer key per
//! device, so the triggers reach the search row through two index lookups); on PostgreSQL a
//! trigram (pg_trgm) index on the three lower-cased columns joined by spaces. Where PostgreSQL
//! may not create the extension, the migration goes on without the index and the search scans.

use sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE devices_search USING fts5(device_id UNINDEXED, display_name, serial_number, \
       device_identifier, tokenize = 'trigram')",
    "CREATE TABLE devices_search_keys (search_rowid INTEGER PRIMARY KEY, device_id BLOB NOT NULL UNIQUE)",
    "INSERT INTO devices_search_keys (device_id) SELECT id FROM devices",
    "INSERT INTO devices_search (rowid, device_id, display_name, serial_number, device_identifier) \
       SELECT k.search_rowid, d.id, d.display_name, coalesce(d.serial_number, ''), d.device_identifier \
       FROM devices d JOIN devices_search_keys k ON k.device_id = d.id",
    "CREATE TRIGGER devices_search_insert AFTER INSERT ON devices BEGIN \
       INSERT INTO devices_search_keys (device_id) VALUES (new.id); \
       INSERT INTO devices_search (rowid, device_id, display_name, serial_number, device_identifier) \
       VALUES ((SELECT search_rowid FROM devices_search_keys WHERE device_id = new.id), \
               new.id, new.display_name, coalesce(new.serial_number, ''), new.device_identifier); END",
    "CREATE TRIGGER devices_search_update AFTER UPDATE OF display_name, serial_number, device_identifier \
       ON devices BEGIN \
       DELETE FROM devices_search \
         WHERE rowid = (SELECT search_rowid FROM devices_search_keys WHERE device_id = old.id); \
       INSERT INTO devices_search (rowid, device_id, display_name, serial_number, device_identifier) \
       VALUES ((SELECT search_rowid FROM devices_search_keys WHERE device_id = new.id), \
               new.id, new.display_name, coalesce(new.serial_number, ''), new.device_identifier); END",
    "CREATE TRIGGER devices_search_delete AFTER DELETE ON devices BEGIN \
       DELETE FROM devices_search \
         WHERE rowid = (SELECT search_rowid FROM devices_search_keys WHERE device_id = old.id); \
       DELETE FROM devices_search_keys WHERE device_id = old.id; END",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS devices_search_delete",
    "DROP TRIGGER IF EXISTS devices_search_update",
    "DROP TRIGGER IF EXISTS devices_search_insert",
    "DROP TABLE IF EXISTS devices_search_keys",
    "DROP TABLE IF EXISTS devices_search",
];

/// One index over the three columns, so a search reads one posting list per trigram; the fleet
/// listing queries exactly this expression.
const POSTGRES_UP: &str = "DO $$ BEGIN \
    CREATE EXTENSION IF NOT EXISTS pg_trgm; \
    CREATE INDEX IF NOT EXISTS idx_devices_search_trgm ON devices USING gin \
      ((lower(display_name) || ' ' || lower(coalesce(serial_number, '')) || ' ' || lower(device_identifier)) \
       gin_trgm_ops); \
  EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported OR undefined_object THEN \
    RAISE NOTICE 'pg_trgm is not available: the fleet search scans the devices'; \
  END $$";

const POSTGRES_DOWN: &[&str] = &["DROP INDEX IF EXISTS idx_devices_search_trgm"];

/// All statements in one call, so on one pooled connection (see migration 18).
async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&statements.join(";\n"))
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => run(manager, SQLITE_UP).await,
            DatabaseBackend::Postgres => run(manager, &[POSTGRES_UP]).await,
            _ => Ok(()),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => run(manager, SQLITE_DOWN).await,
            DatabaseBackend::Postgres => run(manager, POSTGRES_DOWN).await,
            _ => Ok(()),
        }
    }
}
