//! Authentication state: refresh-token chains, login throttling, single-use email tokens, the
//! mail outbox, password history and system roles.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "refresh_tokens",
    "login_throttles",
    "email_tokens",
    "outbox_emails",
    "password_history",
    "user_system_roles",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per refresh token ever issued; a session is one family. `parent_id` is unique:
        // a token has at most one successor, whatever races happen.
        manager
            .create_table(
                Table::create()
                    .table("refresh_tokens")
                    .col(id())
                    .col(uuid("session_id"))
                    .col(uuid_null("parent_id"))
                    .col(string_uniq("token_hash"))
                    .col(created_at())
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .foreign_key(&mut foreign_key(
                        "refresh_tokens",
                        "session_id",
                        "user_sessions",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        // Keyed by the normalised email so unknown addresses lock exactly like known ones.
        manager
            .create_table(
                Table::create()
                    .table("login_throttles")
                    .col(string("email").primary_key())
                    .col(integer("attempts").default(0))
                    .col(integer("in_flight").default(0))
                    .col(timestamp_with_time_zone("window_started_at"))
                    .col(timestamp_with_time_zone_null("locked_until"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("email_tokens")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string("purpose"))
                    .col(string("email"))
                    .col(string_uniq("token_hash"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "email_tokens",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("outbox_emails")
                    .col(id())
                    .col(string("recipient"))
                    .col(string("subject"))
                    .col(text("body"))
                    .col(string("status").default("pending"))
                    .col(integer("attempts").default(0))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(text_null("last_error"))
                    .col(created_at())
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("password_history")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string("password_hash"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "password_history",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("user_system_roles")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string("role"))
                    .col(timestamp_with_time_zone("granted_at"))
                    .foreign_key(&mut foreign_key(
                        "user_system_roles",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        columns::create_indexes(
            manager,
            vec![
                index("refresh_tokens", &["session_id"]),
                unique_index("refresh_tokens", &["parent_id"]),
                index("email_tokens", &["user_id", "purpose"]),
                index("outbox_emails", &["status", "next_attempt_at"]),
                index("password_history", &["user_id", "created_at"]),
                unique_index("user_system_roles", &["user_id", "role"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
