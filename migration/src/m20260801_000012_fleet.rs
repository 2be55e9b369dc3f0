//! Fleets: groups that carry a policy, the fleet facts of managed devices (fleet group,
//! assigned user, hardware), enrollment token notes and hand-over data, and the commands
//! (wipe) that devices take at their next sync.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["device_commands"];

fn added_columns() -> Vec<(&'static str, ColumnDef)> {
    vec![
        ("groups", uuid_null("policy_id")),
        ("devices", uuid_null("fleet_group_id")),
        ("devices", uuid_null("assigned_user_id")),
        ("devices", string_null("serial_number")),
        ("devices", string_null("manufacturer")),
        ("devices", string_null("model")),
        ("devices", timestamp_with_time_zone_null("enrolled_at")),
        ("enrollment_tokens", text_null("note")),
        ("enrollment_tokens", json_null("additional_data")),
    ]
}

fn column_name(column: &ColumnDef) -> String {
    column.get_column_name()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for (table, mut column) in added_columns() {
            manager
                .alter_table(Table::alter().table(table).add_column(&mut column).to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("device_commands")
                    .col(id())
                    .col(uuid("device_id"))
                    .col(uuid_null("organization_id"))
                    .col(string("command"))
                    .col(string("status").default("pending"))
                    .col(json_null("payload"))
                    .col(uuid_null("created_by"))
                    .col(created_at())
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(timestamp_with_time_zone_null("acknowledged_at"))
                    .col(json_null("result"))
                    .foreign_key(&mut foreign_key(
                        "device_commands",
                        "device_id",
                        "devices",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![
                index("device_commands", &["device_id", "status"]),
                index("devices", &["fleet_group_id"]),
                index("groups", &["policy_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, columns) in [
            ("devices", &["fleet_group_id"][..]),
            ("groups", &["policy_id"][..]),
        ] {
            for column in columns {
                manager
                    .drop_index(
                        Index::drop()
                            .name(format!("idx_{table}_{column}"))
                            .table(Alias::new(table))
                            .to_owned(),
                    )
                    .await?;
            }
        }
        columns::drop_tables(manager, TABLES).await?;
        for (table, column) in added_columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new(column_name(&column)))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
