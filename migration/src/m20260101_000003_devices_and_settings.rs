//! Devices and their settings: organization policies, devices (new ownership columns beside the
//! legacy `group_id`), per-device values with locks, the setting catalog and unlock requests.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index, updated_at, version};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "device_policies",
    "devices",
    "device_settings",
    "setting_definitions",
    "unlock_requests",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("device_policies")
                    .col(id())
                    .col(uuid("organization_id"))
                    .col(string("name"))
                    .col(text_null("description"))
                    .col(json("settings"))
                    .col(json("locked_keys"))
                    .col(integer("priority").default(0))
                    .col(boolean("is_default").default(false))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "device_policies",
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
                    .table("devices")
                    .col(id())
                    .col(string_uniq("device_identifier"))
                    .col(string("display_name"))
                    .col(string_null("platform"))
                    .col(string_null("os_version"))
                    .col(string_null("app_version"))
                    .col(string_null("push_token"))
                    .col(uuid_null("owner_user_id"))
                    .col(uuid_null("organization_id"))
                    .col(uuid_null("policy_id"))
                    .col(boolean("is_managed").default(false))
                    .col(string("enrollment_status").default("unenrolled"))
                    .col(string_null("group_id"))
                    .col(string("status").default("active"))
                    .col(timestamp_with_time_zone_null("last_seen_at"))
                    .col(big_integer("settings_version").default(0))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "devices",
                        "owner_user_id",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut foreign_key(
                        "devices",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::SetNull,
                    ))
                    .foreign_key(&mut foreign_key(
                        "devices",
                        "policy_id",
                        "device_policies",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("device_settings")
                    .col(id())
                    .col(uuid("device_id"))
                    .col(string("setting_key"))
                    .col(json("value"))
                    .col(boolean("is_locked").default(false))
                    .col(uuid_null("locked_by"))
                    .col(timestamp_with_time_zone_null("locked_at"))
                    .col(timestamp_with_time_zone_null("unlocked_until"))
                    .col(uuid_null("updated_by"))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "device_settings",
                        "device_id",
                        "devices",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "device_settings",
                        "locked_by",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("setting_definitions")
                    .col(id())
                    .col(string_uniq("key"))
                    .col(string("value_type"))
                    .col(json("default_value"))
                    .col(json_null("constraints"))
                    .col(string("category"))
                    .col(text_null("description"))
                    .col(boolean("is_lockable").default(true))
                    .col(string("merge_rule").default("most_specific"))
                    .col(integer("sort_order").default(0))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("unlock_requests")
                    .col(id())
                    .col(uuid("device_id"))
                    .col(string("setting_key"))
                    .col(uuid("requested_by"))
                    .col(text_null("reason"))
                    .col(string("status").default("pending"))
                    .col(uuid_null("decided_by"))
                    .col(timestamp_with_time_zone_null("decided_at"))
                    .col(text_null("decision_note"))
                    .col(timestamp_with_time_zone_null("unlock_until"))
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "unlock_requests",
                        "device_id",
                        "devices",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "unlock_requests",
                        "requested_by",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "unlock_requests",
                        "decided_by",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        // One pending unlock request per device and key: a partial unique index lets the
        // database refuse the second one even when two requests race.
        let mut one_pending = unique_index("unlock_requests", &["device_id", "setting_key"]);
        one_pending
            .name("uq_unlock_requests_pending")
            .and_where(Expr::col("status").eq("pending"));

        columns::create_indexes(
            manager,
            vec![
                unique_index("device_policies", &["organization_id", "name"]),
                index("devices", &["owner_user_id"]),
                index("devices", &["organization_id"]),
                index("devices", &["policy_id"]),
                index("devices", &["group_id"]),
                unique_index("device_settings", &["device_id", "setting_key"]),
                index("setting_definitions", &["category"]),
                one_pending,
                index("unlock_requests", &["device_id", "status"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
