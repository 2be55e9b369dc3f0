//! The seeded bedtime keys become the `time` kind (`HH:MM` on the 24-hour clock) instead of
//! free strings of five characters, so `"25:99"` and `"soon"` are refused. Only those two keys
//! change, and only while they are still strings; values already stored on devices are not
//! rewritten (every later write is checked).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261101_000013_time_settings"
    }
}

const KEYS: [&str; 2] = ["screen_time.bedtime_start", "screen_time.bedtime_end"];

async fn retype(
    manager: &SchemaManager<'_>,
    from: &str,
    to: &str,
    constraints: serde_json::Value,
) -> Result<(), DbErr> {
    let update = Query::update()
        .table("setting_definitions")
        .value("value_type", to)
        .value("constraints", constraints)
        .and_where(Expr::col("key").is_in(KEYS))
        .and_where(Expr::col("value_type").eq(from))
        .to_owned();
    manager.exec_stmt(update).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        retype(manager, "string", "time", serde_json::json!({})).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        retype(manager, "time", "string", serde_json::json!({"maxLength": 5})).await
    }
}
