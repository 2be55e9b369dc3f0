//! Tamper evidence for the audit trail: each sealed entry carries its position in one chain and
//! a hash covering the previous entry's hash; `audit_chain` holds the chain's head.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::columns::{self, unique_index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: &[&str] = &["audit_chain"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for mut column in [
            big_integer_null("chain_seq").take(),
            string_null("chain_hash").take(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table("audit_logs")
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("audit_chain")
                    .col(integer("id").primary_key())
                    .col(big_integer("head_seq"))
                    .col(string("head_hash"))
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("audit_chain")
                    .columns(["id", "head_seq", "head_hash"])
                    .values_panic([1.into(), 0i64.into(), "genesis".into()])
                    .to_owned(),
            )
            .await?;
        columns::create_indexes(manager, vec![unique_index("audit_logs", &["chain_seq"])]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("uq_audit_logs_chain_seq")
                    .table("audit_logs")
                    .to_owned(),
            )
            .await?;
        columns::drop_tables(manager, TABLES).await?;
        for column in ["chain_hash", "chain_seq"] {
            manager
                .alter_table(Table::alter().table("audit_logs").drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
