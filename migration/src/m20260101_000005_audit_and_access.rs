//! The audit trail, organization memberships and API keys.
//!
//! `audit_logs` has no foreign keys on purpose: entries outlive the users, devices and
//! organizations they mention (GDPR erasure anonymises people but keeps the trail).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index, updated_at};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["audit_logs", "org_users", "api_keys"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_logs")
                    .col(id())
                    .col(timestamp_with_time_zone("occurred_at"))
                    .col(string("actor_kind"))
                    .col(uuid_null("actor_id"))
                    .col(string("action"))
                    .col(string("resource_type"))
                    .col(string_null("resource_id"))
                    .col(uuid_null("organization_id"))
                    .col(json_null("before"))
                    .col(json_null("after"))
                    .col(string_null("ip_address"))
                    .col(string_null("user_agent"))
                    .col(string_null("request_id"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("org_users")
                    .col(id())
                    .col(uuid("organization_id"))
                    .col(uuid("user_id"))
                    .col(string("role"))
                    .col(json_null("permissions"))
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "org_users",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "org_users",
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
                    .table("api_keys")
                    .col(id())
                    .col(string("name"))
                    .col(string("key_prefix"))
                    .col(string_uniq("key_hash"))
                    .col(uuid_null("user_id"))
                    .col(uuid_null("organization_id"))
                    .col(uuid_null("device_id"))
                    .col(json("scopes"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "api_keys",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "api_keys",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "api_keys",
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
                index("audit_logs", &["occurred_at"]),
                index("audit_logs", &["organization_id", "occurred_at"]),
                index("audit_logs", &["actor_id", "occurred_at"]),
                index("audit_logs", &["resource_type", "resource_id"]),
                index("audit_logs", &["action"]),
                unique_index("org_users", &["organization_id", "user_id"]),
                index("org_users", &["user_id"]),
                index("api_keys", &["user_id"]),
                index("api_keys", &["organization_id"]),
                index("api_keys", &["device_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
