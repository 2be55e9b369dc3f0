//! Mail goes out as text and HTML: the outbox keeps the HTML part (absent for a translation
//! without one) and the language it was written in (`Content-Language`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn added_columns() -> Vec<ColumnDef> {
    vec![text_null("html_body"), string_null("language")]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in added_columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table("outbox_emails")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in added_columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table("outbox_emails")
                        .drop_column(Alias::new(column.get_column_name()))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
