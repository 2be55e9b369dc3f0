//! Family and team groups: the groups, their members with roles, and invitation codes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, created_at, foreign_key, id, index, unique_index, updated_at, version};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["groups", "group_memberships", "group_invites"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("groups")
                    .col(id())
                    .col(string("name"))
                    .col(text_null("description"))
                    .col(uuid_null("organization_id"))
                    .col(uuid_null("created_by"))
                    .col(json_null("settings"))
                    .col(version())
                    .col(created_at())
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "groups",
                        "organization_id",
                        "organizations",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "groups",
                        "created_by",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("group_memberships")
                    .col(id())
                    .col(uuid("group_id"))
                    .col(uuid("user_id"))
                    .col(string("role"))
                    .col(uuid_null("invited_by"))
                    .col(timestamp_with_time_zone("joined_at"))
                    .col(updated_at())
                    .foreign_key(&mut foreign_key(
                        "group_memberships",
                        "group_id",
                        "groups",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "group_memberships",
                        "user_id",
                        "users",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "group_memberships",
                        "invited_by",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("group_invites")
                    .col(id())
                    .col(uuid("group_id"))
                    .col(string_uniq("code"))
                    .col(string("role"))
                    .col(uuid_null("created_by"))
                    .col(integer("max_uses").default(1))
                    .col(integer("use_count").default(0))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(created_at())
                    .foreign_key(&mut foreign_key(
                        "group_invites",
                        "group_id",
                        "groups",
                        ForeignKeyAction::Cascade,
                    ))
                    .foreign_key(&mut foreign_key(
                        "group_invites",
                        "created_by",
                        "users",
                        ForeignKeyAction::SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        columns::create_indexes(
            manager,
            vec![
                index("groups", &["organization_id"]),
                unique_index("group_memberships", &["group_id", "user_id"]),
                index("group_memberships", &["user_id"]),
                index("group_invites", &["group_id"]),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        columns::drop_tables(manager, TABLES).await
    }
}
