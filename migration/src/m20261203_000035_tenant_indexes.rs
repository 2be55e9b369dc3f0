//! The index row-level security's policy needs on the one organization-owned table that had
//! none led by `organization_id`: a device command's organization (the policy, and an
//! organization's deletion, look its commands up by it).

use sea_orm_migration::prelude::*;

use crate::columns::index;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(index("device_commands", &["organization_id"]))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_device_commands_organization_id")
                    .table(Alias::new("device_commands"))
                    .to_owned(),
            )
            .await
    }
}
