//! The admin API's IP allowlist: allowed networks and short-lived bypass tokens (stored as
//! hashes). Whether the list is enforced is the instance flag `ip_allowlist_enabled`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, id, unique_index, updated_at};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["ip_allowlist", "allowlist_bypass_tokens"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("ip_allowlist")
                    .col(id())
                    .col(string("network"))
                    .col(string("name"))
                    .col(text_null("description"))
                    .col(uuid_null("created_by"))
                    .col(created_at())
                    .col(updated_at())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("allowlist_bypass_tokens")
                    .col(id())
                    .col(string("token_hash"))
                    .col(string("prefix"))
                    .col(text("reason"))
                    .col(uuid_null("created_by"))
                    .col(created_at())
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![unique_index("allowlist_bypass_tokens", &["token_hash"])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
