//! Federated sign-in: used ID-token nonces (replay protection across instances), operators'
//! role-sync overrides, and the last-used address of API keys and personal access tokens.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["oidc_nonces", "user_role_overrides"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("oidc_nonces")
                    .col(id())
                    .col(string("provider"))
                    .col(string("nonce_hash"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(created_at())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("user_role_overrides")
                    .col(uuid("user_id").primary_key())
                    .col(boolean("enabled").default(true))
                    .col(json("preserved"))
                    .col(json("suppressed"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut foreign_key(
                        "user_role_overrides",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .add_column(string_null("last_used_ip"))
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![
                unique_index("oidc_nonces", &["provider", "nonce_hash"]),
                index("oidc_nonces", &["expires_at"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .drop_column("last_used_ip")
                    .to_owned(),
            )
            .await?;
        columns::drop_tables(manager, TABLES).await
    }
}
