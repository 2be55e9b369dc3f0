//! Quotas over a window of time (`imports_per_day`): one row per use, counted over the last 24
//! hours under the organization's lock and deleted by the clean-up two days later.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, foreign_key, id, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("quota_spends")
                    .col(id())
                    .col(uuid("organization_id"))
                    .col(string("quota_key"))
                    .col(timestamp_with_time_zone("spent_at"))
                    .foreign_key(&mut foreign_key(
                        "quota_spends",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![
                index("quota_spends", &["organization_id", "quota_key", "spent_at"]),
                index("quota_spends", &["spent_at"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("quota_spends").to_owned())
            .await
    }
}
