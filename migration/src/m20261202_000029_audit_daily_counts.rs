//! Audit entries counted per action and UTC day, kept by the clean-up pass for every full day
//! once it has ended (the `instance_flags` row `audit_rollup_through` says up to where), so
//! the whole system's usage statistics over a year read 365 small rows per action instead of
//! counting every entry.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_daily_counts")
                    .col(timestamp_with_time_zone("day"))
                    .col(string("action"))
                    .col(big_integer("entries"))
                    .primary_key(Index::create().col("action").col("day"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("audit_daily_counts").to_owned())
            .await?;
        manager
            .get_connection()
            .execute_unprepared("DELETE FROM instance_flags WHERE name = 'audit_rollup_through'")
            .await?;
        Ok(())
    }
}
