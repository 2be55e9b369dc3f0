//! Second factor: each account's TOTP secret (sealed with AES-256-GCM by the application, so
//! the database never holds it readable), its hashed single-use recovery codes, and the
//! five-minute challenges between a correct password and a correct code at sign-in; for the
//! admin API's enforcement, operators' exemptions and when enforcement was switched on.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index, updated_at};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &[
    "user_mfa",
    "mfa_recovery_codes",
    "mfa_challenges",
    "mfa_exemptions",
    "instance_flags",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("user_mfa")
                    .col(uuid("user_id").primary_key())
                    .col(text("secret_sealed"))
                    .col(timestamp_with_time_zone_null("confirmed_at"))
                    .col(big_integer_null("last_used_step"))
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "user_mfa",
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
                    .table("mfa_recovery_codes")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string("code_hash"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "mfa_recovery_codes",
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
                    .table("mfa_challenges")
                    .col(id())
                    .col(uuid("user_id"))
                    .col(string("token_hash"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "mfa_challenges",
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
                    .table("mfa_exemptions")
                    .col(uuid("user_id").primary_key())
                    .col(text("reason"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(uuid_null("created_by"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "mfa_exemptions",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        // Instance-wide facts every instance must agree on (`admin_mfa_enforced_since`).
        manager
            .create_table(
                Table::create()
                    .table("instance_flags")
                    .col(string("name").primary_key())
                    .col(text("value"))
                    .col(updated_at())
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(
            manager,
            vec![
                unique_index("mfa_recovery_codes", &["user_id", "code_hash"]),
                unique_index("mfa_challenges", &["token_hash"]),
                index("mfa_challenges", &["user_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
