//! Events and who hears them: the outbox (one row per audit entry, written with it and removed
//! once its deliveries and notifications exist), webhook subscriptions and their deliveries,
//! operators' notifications with their read marks, the rules' counters and each operator's
//! preferences.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index, updated_at, version};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "event_outbox",
    "webhooks",
    "webhook_deliveries",
    "notifications",
    "notification_reads",
    "notification_counters",
    "notification_preferences",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("event_outbox")
                    .col(pk_uuid("audit_id"))
                    .col(timestamp_with_time_zone("occurred_at"))
                    .col(uuid_null("claimed_by"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhooks")
                    .col(id())
                    .col(uuid_null("organization_id"))
                    .col(text("url"))
                    .col(text_null("description"))
                    .col(json("events"))
                    .col(text("secret_sealed"))
                    .col(text_null("previous_secret_sealed"))
                    .col(timestamp_with_time_zone_null("previous_secret_until"))
                    .col(boolean("enabled").default(true))
                    .col(integer("consecutive_failures").default(0))
                    .col(text_null("disabled_reason"))
                    .col(uuid("created_by"))
                    .col(uuid_null("personal_user_id"))
                    .col(created_at())
                    .col(updated_at())
                    .col(version())
                    .foreign_key(&mut foreign_key(
                        "webhooks",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "webhooks",
                        "personal_user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_deliveries")
                    .col(id())
                    .col(uuid("webhook_id"))
                    .col(uuid("event_id"))
                    .col(string("event_type"))
                    .col(text("payload"))
                    .col(string("status"))
                    .col(integer("attempts").default(0))
                    .col(timestamp_with_time_zone_null("next_attempt_at"))
                    .col(uuid_null("claimed_by"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(integer_null("response_status"))
                    .col(text_null("response_excerpt"))
                    .col(big_integer_null("latency_ms"))
                    .col(text_null("last_error"))
                    .col(uuid_null("redelivery_of"))
                    .col(created_at())
                    .col(timestamp_with_time_zone_null("finished_at"))
                    .foreign_key(&mut foreign_key(
                        "webhook_deliveries",
                        "webhook_id",
                        "webhooks",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notifications")
                    .col(id())
                    .col(string("rule"))
                    .col(string("severity"))
                    .col(string("title"))
                    .col(text("message"))
                    .col(uuid_null("organization_id"))
                    .col(uuid("event_id"))
                    .col(json("data"))
                    .col(boolean("mailed").default(false))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "notifications",
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
                    .table("notification_reads")
                    .col(id())
                    .col(uuid("notification_id"))
                    .col(uuid("user_id"))
                    .col(timestamp_with_time_zone("read_at"))
                    .foreign_key(&mut foreign_key(
                        "notification_reads",
                        "notification_id",
                        "notifications",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "notification_reads",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notification_counters")
                    .col(id())
                    .col(string("rule"))
                    .col(string("subject"))
                    .col(integer("count"))
                    .col(timestamp_with_time_zone("since"))
                    .col(json_null("data"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notification_preferences")
                    .col(pk_uuid("user_id"))
                    .col(boolean("email_enabled").default(true))
                    .col(string("email_threshold"))
                    .col(json("muted_rules"))
                    .col(updated_at())
                    .foreign_key(
                        &mut ForeignKey::create()
                            .name("fk_notification_preferences_user_id")
                            .from(Alias::new("notification_preferences"), Alias::new("user_id"))
                            .to(Alias::new("users"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade)
                            .on_update(ForeignKeyAction::Cascade)
                            .take(),
                    )
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![
                index("event_outbox", &["occurred_at"]),
                index("webhooks", &["organization_id"]),
                unique_index("webhooks", &["personal_user_id"]),
                index("webhook_deliveries", &["webhook_id", "created_at"]),
                index("webhook_deliveries", &["status", "next_attempt_at"]),
                index("webhook_deliveries", &["webhook_id", "status", "next_attempt_at"]),
                index("webhook_deliveries", &["lease_until"]),
                index("notifications", &["created_at"]),
                index("notifications", &["organization_id", "created_at"]),
                index("notifications", &["mailed"]),
                unique_index("notification_reads", &["notification_id", "user_id"]),
                index("notification_reads", &["user_id"]),
                unique_index("notification_counters", &["rule", "subject"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
