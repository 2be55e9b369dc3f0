//! The admin API's storage: custom system roles, application API key rotation (the previous
//! secret stays valid until `previous_valid_until`) and per-day request counts of each key.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, unique_index, updated_at};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["custom_roles", "api_key_usage"];

fn added_columns() -> Vec<(&'static str, ColumnDef)> {
    vec![
        ("api_keys", string_null("previous_key_hash")),
        ("api_keys", timestamp_with_time_zone_null("previous_valid_until")),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, mut column) in added_columns() {
            manager
                .alter_table(Table::alter().table(table).add_column(&mut column).to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("custom_roles")
                    .col(string("name").primary_key())
                    .col(text_null("description"))
                    .col(json("permissions"))
                    .col(created_at())
                    .col(updated_at())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_key_usage")
                    .col(id())
                    .col(uuid("api_key_id"))
                    .col(string("day"))
                    .col(big_integer("requests").default(0))
                    .foreign_key(&mut foreign_key(
                        "api_key_usage",
                        "api_key_id",
                        "api_keys",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![unique_index("api_key_usage", &["api_key_id", "day"])],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await?;
        for (table, column) in added_columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new(column.get_column_name()))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
