//! The admin API's IP allowlist: entries, the on/off switch (an instance flag) and bypass
//! tokens.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use std::net::IpAddr;

use sea_orm::{ConnectionTrait, DatabaseBackend, QuerySelect};
use steward_domain::ip_allowlist::{
    AllowlistChange, AllowlistEntry, AllowlistRefusal, AllowlistStore, BypassToken, decide_change,
};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{allowlist_bypass_tokens, instance_flags, ip_allowlist};
use crate::error::db_err_to_repository as db;

/// The flag holding whether the allowlist is enforced (`true`/`false`).
pub(crate) const ENABLED: &str = "ip_allowlist_enabled";

pub(crate) fn entry(row: ip_allowlist::Model) -> Result<AllowlistEntry, RepositoryError> {
    Ok(AllowlistEntry {
        id: row.id,
        network: row
            .network
            .parse()
            .map_err(|_| RepositoryError::Other(format!("unreadable allowlist network {:?}", row.network)))?,
        name: row.name,
        description: row.description,
        created_by: row.created_by,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

fn token(row: allowlist_bypass_tokens::Model) -> BypassToken {
    BypassToken {
        id: row.id,
        prefix: row.prefix,
        reason: row.reason,
        created_by: row.created_by,
        created_at: row.created_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        last_used_at: row.last_used_at,
    }
}

/// Locks the switch's row (created if missing): every change of the list, and every
/// configuration import, takes its turn so the lock-out rule is decided on a list nobody else
/// is changing. (On SQLite `BEGIN IMMEDIATE` already serializes writers.)
pub(crate) async fn take_allowlist_turn(
    transaction: &sea_orm::DatabaseTransaction,
) -> Result<(), RepositoryError> {
    instance_flags::Entity::insert(instance_flags::ActiveModel {
        name: Set(ENABLED.to_owned()),
        value: Set("false".to_owned()),
        updated_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(instance_flags::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(transaction)
    .await
    .map_err(db)?;
    if transaction.get_database_backend() == DatabaseBackend::Postgres {
        instance_flags::Entity::find_by_id(ENABLED.to_owned())
            .lock_exclusive()
            .one(transaction)
            .await
            .map_err(db)?;
    }
    Ok(())
}

pub(crate) async fn read_list(
    connection: &impl ConnectionTrait,
) -> Result<(bool, Vec<AllowlistEntry>), RepositoryError> {
    let enabled = instance_flags::Entity::find_by_id(ENABLED.to_owned())
        .one(connection)
        .await
        .map_err(db)?
        .is_some_and(|flag| flag.value == "true");
    let entries = ip_allowlist::Entity::find()
        .order_by_asc(ip_allowlist::Column::CreatedAt)
        .order_by_asc(ip_allowlist::Column::Id)
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(entry)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((enabled, entries))
}

impl AllowlistStore for Database {
    async fn change_allowlist(
        &self,
        change: &AllowlistChange,
        caller: Option<IpAddr>,
        may_force: bool,
        audit: &AuditEntry,
    ) -> Result<Result<(), AllowlistRefusal>, RepositoryError> {
        // SQLite: BEGIN IMMEDIATE serializes writers. PostgreSQL: every change first locks the
        // switch's row (created if missing), so changes of the list take turns.
        let transaction = self.begin_write().await.map_err(db)?;
        take_allowlist_turn(&transaction).await?;
        let (enabled, entries) = read_list(&transaction).await?;
        if let Err(refusal) = decide_change(enabled, &entries, change, caller, may_force) {
            return Ok(Err(refusal));
        }
        match change {
            AllowlistChange::Create(entry) => {
                ip_allowlist::ActiveModel {
                    id: Set(entry.id),
                    network: Set(entry.network.to_string()),
                    name: Set(entry.name.clone()),
                    description: Set(entry.description.clone()),
                    created_by: Set(entry.created_by),
                    created_at: Set(entry.created_at),
                    updated_at: Set(entry.updated_at),
                }
                .insert(&transaction)
                .await
                .map_err(db)?;
            }
            AllowlistChange::Update(entry) => {
                ip_allowlist::Entity::update_many()
                    .col_expr(
                        ip_allowlist::Column::Network,
                        Expr::value(entry.network.to_string()),
                    )
                    .col_expr(ip_allowlist::Column::Name, Expr::value(entry.name.clone()))
                    .col_expr(
                        ip_allowlist::Column::Description,
                        Expr::value(entry.description.clone()),
                    )
                    .col_expr(ip_allowlist::Column::UpdatedAt, Expr::value(entry.updated_at))
                    .filter(ip_allowlist::Column::Id.eq(entry.id))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
            }
            AllowlistChange::Delete(id) => {
                ip_allowlist::Entity::delete_by_id(*id)
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
            }
            AllowlistChange::SetEnabled(on) => {
                instance_flags::Entity::update_many()
                    .col_expr(instance_flags::Column::Value, Expr::value(on.to_string()))
                    .col_expr(instance_flags::Column::UpdatedAt, Expr::value(Utc::now()))
                    .filter(instance_flags::Column::Name.eq(ENABLED))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
            }
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(Ok(()))
    }

    async fn allowlist(&self) -> Result<(bool, Vec<AllowlistEntry>), RepositoryError> {
        read_list(self.connection()).await
    }

    async fn set_allowlist_enabled(
        &self,
        enabled: bool,
        audit: Option<&AuditEntry>,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        instance_flags::Entity::insert(instance_flags::ActiveModel {
            name: Set(ENABLED.to_owned()),
            value: Set(enabled.to_string()),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(instance_flags::Column::Name)
                .update_columns([instance_flags::Column::Value, instance_flags::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        if let Some(audit) = audit {
            insert_audit_entry(&transaction, audit).await?;
        }
        transaction.commit().await.map_err(db)
    }

    async fn create_bypass_token(
        &self,
        bypass: &BypassToken,
        secret_hash: String,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        allowlist_bypass_tokens::ActiveModel {
            id: Set(bypass.id),
            token_hash: Set(secret_hash),
            prefix: Set(bypass.prefix.clone()),
            reason: Set(bypass.reason.clone()),
            created_by: Set(bypass.created_by),
            created_at: Set(bypass.created_at),
            expires_at: Set(bypass.expires_at),
            revoked_at: Set(None),
            last_used_at: Set(None),
        }
        .insert(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn bypass_tokens(&self) -> Result<Vec<BypassToken>, RepositoryError> {
        Ok(allowlist_bypass_tokens::Entity::find()
            .order_by_desc(allowlist_bypass_tokens::Column::CreatedAt)
            .order_by_desc(allowlist_bypass_tokens::Column::Id)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(token)
            .collect())
    }

    async fn revoke_bypass_token(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let revoked = allowlist_bypass_tokens::Entity::update_many()
            .col_expr(allowlist_bypass_tokens::Column::RevokedAt, Expr::value(Some(now)))
            .filter(allowlist_bypass_tokens::Column::Id.eq(id))
            .filter(allowlist_bypass_tokens::Column::RevokedAt.is_null())
            .filter(allowlist_bypass_tokens::Column::ExpiresAt.gt(now))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if revoked.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn use_bypass_token(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<BypassToken>, RepositoryError> {
        let connection = self.connection();
        let used = allowlist_bypass_tokens::Entity::update_many()
            .col_expr(
                allowlist_bypass_tokens::Column::LastUsedAt,
                Expr::value(Some(now)),
            )
            .filter(allowlist_bypass_tokens::Column::TokenHash.eq(secret_hash))
            .filter(allowlist_bypass_tokens::Column::RevokedAt.is_null())
            .filter(allowlist_bypass_tokens::Column::ExpiresAt.gt(now))
            .exec(connection)
            .await
            .map_err(db)?;
        if used.rows_affected == 0 {
            return Ok(None);
        }
        Ok(allowlist_bypass_tokens::Entity::find()
            .filter(allowlist_bypass_tokens::Column::TokenHash.eq(secret_hash))
            .one(connection)
            .await
            .map_err(db)?
            .map(token))
    }
}
