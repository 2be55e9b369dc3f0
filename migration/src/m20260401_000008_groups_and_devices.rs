//! Groups and device ownership: soft deletion and archiving of groups, the single-owner rule
//! enforced by the database, and pending device transfers.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["device_transfers"];
const GROUP_COLUMNS: &[&str] = &["deleted_at", "archived_at"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in GROUP_COLUMNS {
            manager
                .alter_table(
                    Table::alter()
                        .table("groups")
                        .add_column(timestamp_with_time_zone_null(*column))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("device_transfers")
                    .col(id())
                    .col(uuid("device_id"))
                    .col(uuid("from_user_id"))
                    .col(uuid("to_user_id"))
                    .col(string("status").default("pending"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("decided_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "device_transfers",
                        "device_id",
                        "devices",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "device_transfers",
                        "from_user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "device_transfers",
                        "to_user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        // At most one owner per group at any moment, whatever races: the second owner's write
        // fails in the database. (Exactly one is kept by the domain's decisions.)
        let mut one_owner = unique_index("group_memberships", &["group_id"]);
        one_owner
            .name("uq_group_memberships_owner")
            .and_where(Expr::col("role").eq("owner"));
        // One pending transfer per device.
        let mut one_pending = unique_index("device_transfers", &["device_id"]);
        one_pending
            .name("uq_device_transfers_pending")
            .and_where(Expr::col("status").eq("pending"));
        columns::create_indexes(
            manager,
            vec![
                one_owner,
                one_pending,
                index("device_transfers", &["to_user_id"]),
                index("device_transfers", &["from_user_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("uq_group_memberships_owner")
                    .table("group_memberships")
                    .to_owned(),
            )
            .await?;
        columns::drop_tables(manager, TABLES).await?;
        for column in GROUP_COLUMNS {
            manager
                .alter_table(Table::alter().table("groups").drop_column(*column).to_owned())
                .await?;
        }
        Ok(())
    }
}
