//! Seed 002's backfill: the default organization exists, every account that belongs to no
//! organization becomes one of its users with the role `member` (it reads nothing of the
//! organization), and managed devices without an organization are attached to it. The same
//! repair runs again with `steward db repair-default-org`. Down removes every `member`
//! membership (a binary from before knows no such role) and leaves the attached devices.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        crate::default_org::repair(manager.get_connection(), "member").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::delete()
                    .from_table("org_users")
                    .and_where(Expr::col("role").eq("member"))
                    .to_owned(),
            )
            .await
    }
}
