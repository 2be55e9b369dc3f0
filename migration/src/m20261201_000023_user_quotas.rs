//! Per-account quotas: an account's plan (`free` unless set) and its per-limit overrides (a JSON
//! object of limit → number or `null` for unlimited), like an organization's. An account without
//! a row is on `free` with no overrides.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{foreign_key, updated_at};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("user_quotas")
                    .col(pk_uuid("user_id"))
                    .col(string("plan").default("free"))
                    .col(json_null("overrides"))
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "user_quotas",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("user_quotas").to_owned())
            .await
    }
}
