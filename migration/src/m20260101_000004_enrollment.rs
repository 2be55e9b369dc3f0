//! B2B provisioning: enrollment tokens that devices redeem, and the device tokens they receive.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["enrollment_tokens", "device_tokens"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("enrollment_tokens")
                    .col(id())
                    .col(uuid("organization_id"))
                    .col(string_null("name"))
                    .col(string("token_prefix"))
                    .col(string_uniq("token_hash"))
                    .col(uuid_null("policy_id"))
                    .col(uuid_null("group_id"))
                    .col(integer_null("max_uses"))
                    .col(integer("use_count").default(0))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(uuid_null("created_by"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "enrollment_tokens",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "enrollment_tokens",
                        "policy_id",
                        "device_policies",
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut foreign_key(
                        "enrollment_tokens",
                        "group_id",
                        "groups",
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut foreign_key(
                        "enrollment_tokens",
                        "created_by",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("device_tokens")
                    .col(id())
                    .col(uuid("device_id"))
                    .col(string("token_prefix"))
                    .col(string_uniq("token_hash"))
                    .col(uuid_null("enrollment_token_id"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "device_tokens",
                        "device_id",
                        "devices",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "device_tokens",
                        "enrollment_token_id",
                        "enrollment_tokens",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        columns::create_indexes(
            manager,
            vec![
                index("enrollment_tokens", &["organization_id"]),
                index("device_tokens", &["device_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
