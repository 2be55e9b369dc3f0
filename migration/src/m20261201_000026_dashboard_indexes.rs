//! Indexes the operators' dashboard and usage statistics count over: audit entries by action
//! and time (sign-ins, failures and lockouts per hour; registrations, enrolments) and device
//! commands by time.

use sea_orm_migration::prelude::*;

use crate::columns::{create_indexes, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[(&str, &[&str])] = &[
    ("audit_logs", &["action", "occurred_at"]),
    ("device_commands", &["created_at"]),
];

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
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, columns) in INDEXES.iter().rev() {
            manager
                .drop_index(
                    Index::drop()
                        .name(format!("idx_{table}_{}", columns.join("_")))
                        .table(Alias::new(*table))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
