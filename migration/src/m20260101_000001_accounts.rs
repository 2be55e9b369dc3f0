//! Tenants and accounts: organizations, users, linked OAuth identities and sign-in sessions.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index, updated_at, version};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["organizations", "users", "oauth_accounts", "user_sessions"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("organizations")
                    .col(id())
                    .col(string("name"))
                    .col(string_uniq("slug"))
                    .col(string("status").default("active"))
                    .col(string_null("contact_email"))
                    .col(integer_null("max_devices"))
                    .col(integer_null("max_users"))
                    .col(json_null("default_settings"))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(id())
                    .col(string_uniq("email"))
                    .col(timestamp_with_time_zone_null("email_verified_at"))
                    .col(string_null("password_hash"))
                    .col(string_null("pending_email"))
                    .col(string("display_name"))
                    .col(string_null("avatar_url"))
                    .col(string_null("locale"))
                    .col(string_null("timezone"))
                    .col(string("status").default("active"))
                    .col(uuid_null("organization_id"))
                    .col(timestamp_with_time_zone_null("last_login_at"))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .col(timestamp_with_time_zone_null("deleted_at"))
                    .foreign_key(&mut foreign_key(
                        "users",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("oauth_accounts")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string("provider"))
                    .col(string("provider_subject"))
                    .col(string_null("email"))
                    .col(created_at())
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .foreign_key(&mut foreign_key(
                        "oauth_accounts",
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
                    .table("user_sessions")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string_null("ip_address"))
                    .col(string_null("user_agent"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(string_null("revoked_reason"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "user_sessions",
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
                index("users", &["organization_id"]),
                unique_index("oauth_accounts", &["provider", "provider_subject"]),
                index("oauth_accounts", &["user_id"]),
                index("user_sessions", &["user_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
