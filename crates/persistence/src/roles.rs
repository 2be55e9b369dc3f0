//! Custom system roles. Changing or deleting one first claims its row (an `UPDATE`), so on
//! PostgreSQL it waits for a role change that read the role `FOR SHARE`, and on SQLite the
//! transaction holds the write lock before it reads.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use steward_domain::roles::{CustomRole, MAX_CUSTOM_ROLES, RoleDeletion, RoleStore};
use steward_domain::{AuditEntry, RepositoryError, RuleError, RuleStoreError};

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{custom_roles, user_system_roles};
use crate::error::db_err_to_repository as db;

pub(crate) fn custom_role(row: custom_roles::Model) -> CustomRole {
    CustomRole {
        name: row.name,
        description: row.description,
        permissions: serde_json::from_value(row.permissions).unwrap_or_default(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// Every custom role; inside a role change, read `FOR SHARE` (PostgreSQL) so none of them
/// changes or disappears before the change commits.
pub(crate) async fn read_custom_roles<C: ConnectionTrait>(
    connection: &C,
    share: bool,
) -> Result<Vec<CustomRole>, RepositoryError> {
    let mut query = custom_roles::Entity::find().order_by_asc(custom_roles::Column::Name);
    if share {
        query = query.lock_shared();
    }
    Ok(query
        .all(connection)
        .await
        .map_err(db)?
        .into_iter()
        .map(custom_role)
        .collect())
}

/// Claims a role's row (a no-op `UPDATE`); `false` when there is no such role.
async fn claim<C: ConnectionTrait>(connection: &C, name: &str) -> Result<bool, RepositoryError> {
    let claimed = custom_roles::Entity::update_many()
        .col_expr(
            custom_roles::Column::UpdatedAt,
            Expr::col(custom_roles::Column::UpdatedAt),
        )
        .filter(custom_roles::Column::Name.eq(name))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(claimed.rows_affected > 0)
}

impl RoleStore for Database {
    async fn custom_roles(&self) -> Result<Vec<CustomRole>, RepositoryError> {
        read_custom_roles(self.connection(), false).await
    }

    async fn create_custom_role(&self, role: &CustomRole, audit: &AuditEntry) -> Result<(), RuleStoreError> {
        // Creations take turns, so two of them cannot both count 100 and pass the cap.
        let transaction = self.begin_turn("lock.custom_roles").await?;
        let inserted = custom_roles::Entity::insert(custom_roles::ActiveModel {
            name: Set(role.name.clone()),
            description: Set(role.description.clone()),
            permissions: Set(serde_json::json!(role.permissions)),
            created_at: Set(role.created_at),
            updated_at: Set(role.updated_at),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db);
        match inserted {
            Err(RepositoryError::Conflict(_)) => {
                return Err(RuleError::Conflict("a role with this name exists").into());
            }
            other => other?,
        };
        let count = custom_roles::Entity::find()
            .count(&transaction)
            .await
            .map_err(db)?;
        if count > MAX_CUSTOM_ROLES as u64 {
            return Err(RuleError::Conflict("at most 100 custom roles may exist").into());
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(())
    }

    async fn update_custom_role<A>(
        &self,
        name: &str,
        permissions: BTreeSet<String>,
        description: Option<String>,
        now: DateTime<Utc>,
        audit: A,
    ) -> Result<Option<CustomRole>, RepositoryError>
    where
        A: FnOnce(&CustomRole, &CustomRole) -> AuditEntry + Send,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        if !claim(&transaction, name).await? {
            return Ok(None);
        }
        let Some(before) = custom_roles::Entity::find_by_id(name.to_owned())
            .one(&transaction)
            .await
            .map_err(db)?
            .map(custom_role)
        else {
            return Ok(None);
        };
        custom_roles::Entity::update_many()
            .col_expr(
                custom_roles::Column::Permissions,
                Expr::value(serde_json::json!(permissions)),
            )
            .col_expr(
                custom_roles::Column::Description,
                Expr::value(description.clone()),
            )
            .col_expr(custom_roles::Column::UpdatedAt, Expr::value(now))
            .filter(custom_roles::Column::Name.eq(name))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let after = CustomRole {
            permissions,
            description,
            updated_at: now,
            ..before.clone()
        };
        insert_audit_entry(&transaction, &audit(&before, &after)).await?;
        transaction.commit().await.map_err(db)?;
        Ok(Some(after))
    }

    async fn delete_custom_role<A>(&self, name: &str, audit: A) -> Result<RoleDeletion, RepositoryError>
    where
        A: FnOnce(&CustomRole) -> AuditEntry + Send,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        if !claim(&transaction, name).await? {
            return Ok(RoleDeletion::NotFound);
        }
        let Some(role) = custom_roles::Entity::find_by_id(name.to_owned())
            .one(&transaction)
            .await
            .map_err(db)?
            .map(custom_role)
        else {
            return Ok(RoleDeletion::NotFound);
        };
        let holders = user_system_roles::Entity::find()
            .filter(user_system_roles::Column::Role.eq(name))
            .count(&transaction)
            .await
            .map_err(db)?;
        if holders > 0 {
            return Ok(RoleDeletion::InUse(holders));
        }
        custom_roles::Entity::delete_by_id(name.to_owned())
            .exec(&transaction)
            .await
            .map_err(db)?;
        insert_audit_entry(&transaction, &audit(&role)).await?;
        transaction.commit().await.map_err(db)?;
        Ok(RoleDeletion::Deleted(role))
    }
}
