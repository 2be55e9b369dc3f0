//! The index the operators' dashboard and usage statistics count over: audit entries by action
//! and time (sign-ins, failures and lockouts per hour; registrations, enrolments, commands). It
//! replaces the index on the action alone, which it covers.

use sea_orm_migration::prelude::*;

use crate::columns::{create_indexes, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[(&str, &[&str])] = &[("audit_logs", &["action", "occurred_at"])];

/// Covered by the new one: every write to the audit trail would keep both.
const REPLACED: (&str, &[&str]) = ("audit_logs", &["action"]);

fn drop(table: &str, columns: &[&str]) -> IndexDropStatement {
    Index::drop()
        .name(format!("idx_{table}_{}", columns.join("_")))
        .table(Alias::new(table))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(
            manager,
            INDEXES
                .iter()
                .map(|(table, columns)| index(table, columns))
                .collect(),
        )
        .await?;
        manager.drop_index(drop(REPLACED.0, REPLACED.1)).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(manager, vec![index(REPLACED.0, REPLACED.1)]).await?;
        for (table, columns) in INDEXES.iter().rev() {
            manager.drop_index(drop(table, columns)).await?;
        }
        Ok(())
    }
}
