//! Background jobs: what was asked (kind, owner, organization, parameters), where it stands
//! (status, progress, the instance holding its lease) and what came of it (summary, error); the
//! bytes a job reads (an import's body) and writes (an export's file) live in `job_blobs`, in
//! chunks, so any instance can run a job and any instance can stream its result.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, updated_at};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["jobs", "job_blobs"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("jobs")
                    .col(id())
                    .col(string("kind"))
                    .col(string("status"))
                    .col(uuid("owner_id"))
                    .col(uuid_null("organization_id"))
                    .col(json("parameters"))
                    .col(big_integer("progress_done").default(0))
                    .col(big_integer_null("progress_total"))
                    .col(text_null("progress_message"))
                    .col(json_null("result"))
                    .col(json_null("error"))
                    .col(string_null("file_name"))
                    .col(string_null("file_content_type"))
                    .col(boolean("cancel_requested").default(false))
                    .col(integer("attempts").default(0))
                    .col(string_null("claimed_by"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(created_at())
                    .col(updated_at())
                    .col(timestamp_with_time_zone_null("started_at"))
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(&mut foreign_key(
                        "jobs",
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
                    .table("job_blobs")
                    .col(id())
                    .col(uuid("job_id"))
                    .col(string("part"))
                    .col(integer("seq"))
                    .col(blob("data"))
                    .foreign_key(&mut foreign_key(
                        "job_blobs",
                        "job_id",
                        "jobs",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![
                index("jobs", &["status", "created_at"]),
                index("jobs", &["owner_id"]),
                index("jobs", &["organization_id"]),
                columns::unique_index("job_blobs", &["job_id", "part", "seq"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
