//! Remote settings: the version each device value last changed in (for sync merging), lock
//! reasons, the applied state devices report, the push outbox, and the default catalog of phone
//! settings (documented in `docs/settings-and-locks.md`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use serde_json::json;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["push_notifications"];

/// (key, type, default, constraints, category, description, lockable, merge rule)
type CatalogEntry = (
    &'static str,
    &'static str,
    serde_json::Value,
    serde_json::Value,
    &'static str,
    &'static str,
    bool,
    &'static str,
);

fn catalog() -> Vec<CatalogEntry> {
    let bool_off_first = json!({"restrictiveness": {"order": [false, true]}});
    vec![
        (
            "location.sharing_enabled",
            "bool",
            json!(true),
            json!({}),
            "location",
            "Share the device's location with its groups.",
            true,
            "override",
        ),
        (
            "location.update_interval_seconds",
            "int",
            json!(300),
            json!({"min": 30, "max": 3600}),
            "location",
            "How often the device reports its location.",
            true,
            "override",
        ),
        (
            "location.high_accuracy",
            "bool",
            json!(false),
            json!({}),
            "location",
            "Use GPS rather than network location.",
            true,
            "override",
        ),
        (
            "screen_time.daily_limit_minutes",
            "int",
            json!(1440),
            json!({"min": 0, "max": 1440, "restrictiveness": "lower"}),
            "screen_time",
            "Minutes of use allowed per day; the lowest limit applies.",
            true,
            "most_restrictive",
        ),
        (
            "screen_time.bedtime_enabled",
            "bool",
            json!(false),
            json!({}),
            "screen_time",
            "Lock the device during bedtime.",
            true,
            "override",
        ),
        (
            "screen_time.bedtime_start",
            "string",
            json!("21:00"),
            json!({"maxLength": 5}),
            "screen_time",
            "Bedtime start, HH:MM local time.",
            true,
            "override",
        ),
        (
            "screen_time.bedtime_end",
            "string",
            json!("07:00"),
            json!({"maxLength": 5}),
            "screen_time",
            "Bedtime end, HH:MM local time.",
            true,
            "override",
        ),
        (
            "apps.blocked",
            "string_set",
            json!([]),
            json!({"maxLength": 500}),
            "apps",
            "Package names that may not run; every layer's list applies.",
            true,
            "union",
        ),
        (
            "apps.install_allowed",
            "bool",
            json!(true),
            bool_off_first.clone(),
            "apps",
            "Whether new apps may be installed.",
            true,
            "most_restrictive",
        ),
        (
            "content.web_filter_level",
            "enum",
            json!("moderate"),
            json!({"allowed": ["off", "moderate", "strict"], "restrictiveness": {"order": ["strict", "moderate", "off"]}}),
            "content",
            "Web content filtering; the strictest level applies.",
            true,
            "most_restrictive",
        ),
        (
            "content.safe_search",
            "bool",
            json!(true),
            json!({"restrictiveness": {"order": [true, false]}}),
            "content",
            "Force safe search in browsers.",
            true,
            "most_restrictive",
        ),
        (
            "device.camera_enabled",
            "bool",
            json!(true),
            bool_off_first.clone(),
            "device",
            "Whether the camera may be used.",
            true,
            "most_restrictive",
        ),
        (
            "device.bluetooth_enabled",
            "bool",
            json!(true),
            json!({}),
            "device",
            "Whether Bluetooth may be turned on.",
            true,
            "override",
        ),
        (
            "device.volume_max_percent",
            "int",
            json!(100),
            json!({"min": 0, "max": 100, "restrictiveness": "lower"}),
            "device",
            "Highest media volume.",
            true,
            "most_restrictive",
        ),
        (
            "notifications.enabled",
            "bool",
            json!(true),
            json!({}),
            "notifications",
            "Whether the app shows notifications.",
            false,
            "override",
        ),
        (
            "privacy.usage_stats_sharing",
            "bool",
            json!(false),
            json!({}),
            "privacy",
            "Share app usage statistics with the group.",
            true,
            "override",
        ),
        (
            "sync.interval_minutes",
            "int",
            json!(15),
            json!({"min": 1, "max": 1440}),
            "sync",
            "How often the device polls for settings when no push arrives.",
            false,
            "override",
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            (
                "device_settings",
                big_integer("changed_in_version").default(0).take(),
            ),
            ("device_settings", text_null("lock_reason").take()),
            ("devices", big_integer_null("applied_settings_version").take()),
            ("devices", timestamp_with_time_zone_null("applied_at").take()),
            ("devices", json_null("apply_failures").take()),
        ] {
            let mut column = column;
            manager
                .alter_table(Table::alter().table(table).add_column(&mut column).to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("push_notifications")
                    .col(id())
                    .col(uuid("device_id"))
                    .col(string("reason"))
                    .col(string("status").default("pending"))
                    .col(integer("attempts").default(0))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(text_null("last_error"))
                    .col(created_at())
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .foreign_key(&mut foreign_key(
                        "push_notifications",
                        "device_id",
                        "devices",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // One pending notification per device: later changes collapse into it.
        let mut one_pending = unique_index("push_notifications", &["device_id"]);
        one_pending
            .name("uq_push_notifications_pending")
            .and_where(Expr::col("status").eq("pending"));
        columns::create_indexes(
            manager,
            vec![
                one_pending,
                index("push_notifications", &["status", "next_attempt_at"]),
            ],
        )
        .await?;

        let now = chrono::Utc::now();
        let mut insert = Query::insert();
        insert.into_table("setting_definitions").columns([
            "id",
            "key",
            "value_type",
            "default_value",
            "constraints",
            "category",
            "description",
            "is_lockable",
            "merge_rule",
            "sort_order",
            "version",
            "created_at",
            "updated_at",
        ]);
        for (order, (key, kind, default, constraints, category, description, lockable, rule)) in
            catalog().into_iter().enumerate()
        {
            insert.values_panic([
                uuid::Uuid::now_v7().into(),
                key.into(),
                kind.into(),
                default.into(),
                constraints.into(),
                category.into(),
                description.into(),
                lockable.into(),
                rule.into(),
                <i32 as TryFrom<usize>>::try_from(order * 10).unwrap_or(0).into(),
                1.into(),
                now.into(),
                now.into(),
            ]);
        }
        manager.exec_stmt(insert).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let keys: Vec<&str> = catalog().into_iter().map(|entry| entry.0).collect();
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("setting_definitions")
                    .and_where(Expr::col("key").is_in(keys))
                    .to_owned(),
            )
            .await?;
        columns::drop_tables(manager, TABLES).await?;
        for (table, column) in [
            ("devices", "apply_failures"),
            ("devices", "applied_at"),
            ("devices", "applied_settings_version"),
            ("device_settings", "lock_reason"),
            ("device_settings", "changed_in_version"),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
