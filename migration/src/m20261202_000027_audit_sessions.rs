//! Audit entries name the sign-in session their actor was in (the admin activity timeline groups
//! by it). Entries written before this migration, and entries made with a personal access
//! token, an API key or a device, have none.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("audit_logs")
                    .add_column(uuid_null("session_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("audit_logs")
                    .drop_column(Alias::new("session_id"))
                    .to_owned(),
            )
            .await
    }
}
