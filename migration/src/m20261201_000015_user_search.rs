//! Substring search over accounts without scanning them: on SQLite a trigram FTS5 table of
//! every account's email and display name, kept current by triggers; on PostgreSQL a trigram
//! (pg_trgm) index on the lower-cased email and display name. Where PostgreSQL may not create the
//! extension, the migration goes on without the indexes and the search scans.

use sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "CREATE VIRTUAL TABLE users_search USING fts5(user_id UNINDEXED, email, display_name, tokenize = 'trigram')",
    "CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN \
       INSERT INTO users_search (user_id, email, display_name) \
       VALUES (new.id, new.email, new.display_name); END",
    // Keyed by user id, never by rowid: a VACUUM may renumber the rowids of `users`.
    "CREATE TRIGGER users_search_update AFTER UPDATE OF email, display_name ON users BEGIN \
       DELETE FROM users_search WHERE user_id = old.id; \
       INSERT INTO users_search (user_id, email, display_name) \
       VALUES (new.id, new.email, new.display_name); END",
    "CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN \
       DELETE FROM users_search WHERE user_id = old.id; END",
    "INSERT INTO users_search (user_id, email, display_name) SELECT id, email, display_name FROM users",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS users_search_delete",
    "DROP TRIGGER IF EXISTS users_search_update",
    "DROP TRIGGER IF EXISTS users_search_insert",
    "DROP TABLE IF EXISTS users_search",
];

/// One index over both columns (joined by a space), so a search reads one posting list per
/// trigram instead of two; the listing queries exactly this expression.
const POSTGRES_UP: &str = "DO $$ BEGIN \
    CREATE EXTENSION IF NOT EXISTS pg_trgm; \
    CREATE INDEX IF NOT EXISTS idx_users_search_trgm ON users \
      USING gin ((lower(email) || ' ' || lower(display_name)) gin_trgm_ops); \
  EXCEPTION WHEN insufficient_privilege OR undefined_file OR feature_not_supported OR undefined_object THEN \
    RAISE NOTICE 'pg_trgm is not available: the admin user search scans the accounts'; \
  END $$";

const POSTGRES_DOWN: &[&str] = &["DROP INDEX IF EXISTS idx_users_search_trgm"];

async fn run(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    for statement in statements {
        manager.get_connection().execute_unprepared(statement).await?;
    }
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
