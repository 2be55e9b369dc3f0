//! Scheduled reports: schedules (a report type, when it is due in which time zone, the format,
//! the operator its runs act for), their recipients (each with their unsubscription), and their
//! runs — one per schedule, kind and due slot, so two instances cannot start the same run.
//! The outbox keeps a mail's attachment and its one-click unsubscribe address.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, updated_at, version};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn outbox_columns() -> Vec<ColumnDef> {
    vec![
        string_null("attachment_name"),
        string_null("attachment_type"),
        text_null("attachment_body"),
        text_null("unsubscribe_url"),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("report_schedules")
                    .col(id())
                    .col(string("name"))
                    .col(string("report_type"))
                    .col(string("frequency"))
                    .col(string("time_of_day"))
                    .col(string_null("weekday"))
                    .col(integer_null("day_of_month"))
                    .col(string("time_zone"))
                    .col(string("format"))
                    .col(uuid_null("organization_id"))
                    .col(boolean("enabled"))
                    .col(uuid_null("owner_id"))
                    .col(timestamp_with_time_zone_null("next_run_at"))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "report_schedules",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "report_schedules",
                        "owner_id",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("report_recipients")
                    .col(id())
                    .col(uuid("schedule_id"))
                    .col(string("email"))
                    .col(integer("position"))
                    .col(timestamp_with_time_zone_null("unsubscribed_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "report_recipients",
                        "schedule_id",
                        "report_schedules",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("report_runs")
                    .col(id())
                    .col(uuid("schedule_id"))
                    .col(string("kind"))
                    .col(timestamp_with_time_zone("due_at"))
                    .col(timestamp_with_time_zone("window_from"))
                    .col(timestamp_with_time_zone("window_to"))
                    .col(string("status"))
                    .col(uuid_null("job_id"))
                    .col(integer("mailed"))
                    .col(text_null("error"))
                    .col(created_at())
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(&mut foreign_key(
                        "report_runs",
                        "schedule_id",
                        "report_schedules",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![
                index("report_schedules", &["enabled", "next_run_at"]),
                index("report_schedules", &["organization_id"]),
                index("report_schedules", &["owner_id"]),
                columns::unique_index("report_recipients", &["schedule_id", "email"]),
                columns::unique_index("report_runs", &["schedule_id", "kind", "due_at"]),
                index("report_runs", &["schedule_id", "created_at"]),
            ],
        )
        .await?;
        for mut column in outbox_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table("outbox_emails")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in outbox_columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table("outbox_emails")
                        .drop_column(Alias::new(column.get_column_name()))
                        .to_owned(),
                )
                .await?;
        }
        columns::drop_tables(manager, &["report_schedules", "report_recipients", "report_runs"]).await
    }
}
