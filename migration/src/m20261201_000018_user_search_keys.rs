//! SQLite's account search table (`users_search`, migration 15) was kept current by triggers
//! that found an account's row by its `user_id` column, which FTS5 cannot index: every change
//! of an email or display name, and every deletion, read the whole table. Each account now gets
//! a stable integer key in `users_search_keys` (an `INTEGER PRIMARY KEY`, which VACUUM keeps,
//! unlike the implicit rowids of `users`), used as the search row's rowid, so the triggers
//! reach the row through two index lookups. Nothing changes on PostgreSQL.

use sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const SQLITE_UP: &[&str] = &[
    "DROP TRIGGER IF EXISTS users_search_delete",
    "DROP TRIGGER IF EXISTS users_search_update",
    "DROP TRIGGER IF EXISTS users_search_insert",
    "CREATE TABLE users_search_keys (search_rowid INTEGER PRIMARY KEY, user_id BLOB NOT NULL UNIQUE)",
    "INSERT INTO users_search_keys (user_id) SELECT id FROM users",
    "DELETE FROM users_search",
    "INSERT INTO users_search (rowid, user_id, email, display_name) \
       SELECT k.search_rowid, u.id, u.email, u.display_name \
       FROM users u JOIN users_search_keys k ON k.user_id = u.id",
    "CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN \
       INSERT INTO users_search_keys (user_id) VALUES (new.id); \
       INSERT INTO users_search (rowid, user_id, email, display_name) \
       VALUES ((SELECT search_rowid FROM users_search_keys WHERE user_id = new.id), \
               new.id, new.email, new.display_name); END",
    "CREATE TRIGGER users_search_update AFTER UPDATE OF email, display_name ON users BEGIN \
       DELETE FROM users_search \
         WHERE rowid = (SELECT search_rowid FROM users_search_keys WHERE user_id = old.id); \
       INSERT INTO users_search (rowid, user_id, email, display_name) \
       VALUES ((SELECT search_rowid FROM users_search_keys WHERE user_id = new.id), \
               new.id, new.email, new.display_name); END",
    "CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN \
       DELETE FROM users_search \
         WHERE rowid = (SELECT search_rowid FROM users_search_keys WHERE user_id = old.id); \
       DELETE FROM users_search_keys WHERE user_id = old.id; END",
];

/// Back to migration 15's triggers (keyed by the unindexed `user_id`).
const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS users_search_delete",
    "DROP TRIGGER IF EXISTS users_search_update",
    "DROP TRIGGER IF EXISTS users_search_insert",
    "DROP TABLE IF EXISTS users_search_keys",
    "CREATE TRIGGER users_search_insert AFTER INSERT ON users BEGIN \
       INSERT INTO users_search (user_id, email, display_name) \
       VALUES (new.id, new.email, new.display_name); END",
    "CREATE TRIGGER users_search_update AFTER UPDATE OF email, display_name ON users BEGIN \
       DELETE FROM users_search WHERE user_id = old.id; \
       INSERT INTO users_search (user_id, email, display_name) \
       VALUES (new.id, new.email, new.display_name); END",
    "CREATE TRIGGER users_search_delete AFTER DELETE ON users BEGIN \
       DELETE FROM users_search WHERE user_id = old.id; END",
];

/// All statements in one call, so on one pooled connection: a connection whose cached schema
/// still lists a trigger another connection just dropped refuses to create it again.
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
            _ => Ok(()),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DatabaseBackend::Sqlite => run(manager, SQLITE_DOWN).await,
            _ => Ok(()),
        }
    }
}
