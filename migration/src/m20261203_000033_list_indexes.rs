//! Indexes for lists at size (a fleet of 100,000 devices, an audit trail of millions): each
//! sort of the fleet list and each of its common filters reads its page, and counts its total,
//! from an index rather than sorting the organization's devices; the audit trail pages newest
//! first from `(occurred_at, id)` without reading the rows it skips, and by resource type in time
//! order; an organization's users in joining order; groups newest first, also within an
//! organization. The indexes replaced are prefixes of new ones.

use sea_orm::ConnectionTrait;
use sea_orm_migration::prelude::*;

use crate::columns::{create_indexes, index};

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEXES: &[(&str, &[&str])] = &[
    (
        "devices",
        &["organization_id", "is_managed", "display_name", "id"],
    ),
    (
        "devices",
        &["organization_id", "is_managed", "status", "display_name", "id"],
    ),
    (
        "devices",
        &["organization_id", "is_managed", "platform", "display_name", "id"],
    ),
    (
        "devices",
        &["organization_id", "is_managed", "last_seen_at", "id"],
    ),
    ("devices", &["organization_id", "is_managed", "enrolled_at", "id"]),
    ("audit_logs", &["occurred_at", "id"]),
    ("audit_logs", &["resource_type", "occurred_at"]),
    ("org_users", &["organization_id", "created_at", "id"]),
    ("groups", &["created_at", "id"]),
    ("groups", &["organization_id", "created_at", "id"]),
];

/// The devices assigned to a user, partial: most of a fleet is assigned to no one, and an index
/// holding every one of those NULLs would tell SQLite's planner (its statistics count NULLs as
/// one value) that a user has the whole fleet, so it would walk the fleet in name order instead.
const ASSIGNED: &str = "CREATE INDEX idx_devices_assigned_user_id ON devices (assigned_user_id) \
     WHERE assigned_user_id IS NOT NULL";

/// Prefixes of the new indexes: every write would keep both.
const REPLACED: &[(&str, &[&str])] = &[
    ("devices", &["organization_id"]),
    ("audit_logs", &["occurred_at"]),
    ("groups", &["organization_id"]),
];

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
        manager.get_connection().execute_unprepared(ASSIGNED).await?;
        for (table, columns) in REPLACED {
            manager.drop_index(drop(table, columns)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_indexes(
            manager,
            REPLACED
                .iter()
                .map(|(table, columns)| index(table, columns))
                .collect(),
        )
        .await?;
        manager.drop_index(drop("devices", &["assigned_user_id"])).await?;
        for (table, columns) in INDEXES.iter().rev() {
            manager.drop_index(drop(table, columns)).await?;
        }
        Ok(())
    }
}
