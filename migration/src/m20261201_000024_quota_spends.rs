//! Quotas over a window of time (`imports_per_day`): one row per use, counted over the last 24
//! hours under the organization's lock and deleted by the clean-up two days later. And the
//! quota levels (80 %, 100 %) last announced per organization and limit, so a use hovering
//! around a level is announced once a day rather than at every creation.

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
        manager
            .create_table(
                Table::create()
                    .table("quota_alerts")
                    .col(id())
                    .col(uuid("organization_id"))
                    .col(string("quota_key"))
                    .col(integer("level"))
                    .col(big_integer("quota_limit"))
                    .col(timestamp_with_time_zone("announced_at"))
                    .foreign_key(&mut foreign_key(
                        "quota_alerts",
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
                columns::unique_index("quota_alerts", &["organization_id", "quota_key", "level"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, &["quota_spends", "quota_alerts"]).await
    }
}
