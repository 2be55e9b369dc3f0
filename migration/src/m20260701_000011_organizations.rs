//! Organizations as tenants: a description, the default-organization flag, and the default
//! organization itself (seed 002: legacy users and devices belong to it).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The seeded default organization's fixed id, so every installation can name it.
pub const DEFAULT_ORGANIZATION_ID: &str = "00000000-0000-7000-8000-000000000001";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in [
            text_null("description").take(),
            boolean("is_default").default(false).take(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("organizations")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        let id: uuid::Uuid = DEFAULT_ORGANIZATION_ID
            .parse()
            .map_err(|_| DbErr::Migration("bad default organization id".to_owned()))?;
        let now = chrono::Utc::now();
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("organizations")
                    .columns([
                        "id",
                        "name",
                        "slug",
                        "status",
                        "description",
                        "is_default",
                        "version",
                        "created_at",
                        "updated_at",
                    ])
                    .values_panic([
                        id.into(),
                        "Default".into(),
                        "default".into(),
                        "active".into(),
                        "Users and devices that belong to no other organization.".into(),
                        true.into(),
                        1.into(),
                        now.into(),
                        now.into(),
                    ])
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("organizations")
                    .and_where(Expr::col("slug").eq("default"))
                    .to_owned(),
            )
            .await?;
        for column in ["is_default", "description"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("organizations")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
