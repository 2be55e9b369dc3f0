//! Personal access tokens, stored in `api_keys` with their owner (`user_id`).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use steward_domain::accounts::{PersonalToken, PersonalTokenStore};
use steward_domain::quotas::QuotaKey;
use steward_domain::{AuditEntry, RepositoryError, RuleStoreError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::api_keys;
use crate::error::db_err_to_repository as db;

fn personal_token(row: api_keys::Model) -> Option<PersonalToken> {
    Some(PersonalToken {
        id: row.id,
        user_id: row.user_id?,
        name: row.name,
        prefix: row.key_prefix,
        scopes: serde_json::from_value(row.scopes).unwrap_or_default(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        last_used_ip: row.last_used_ip,
    })
}

fn live(now: DateTime<Utc>) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(api_keys::Column::RevokedAt.is_null())
        .add(
            sea_orm::Condition::any()
                .add(api_keys::Column::ExpiresAt.is_null())
                .add(api_keys::Column::ExpiresAt.gt(now)),
        )
}

impl PersonalTokenStore for Database {
    async fn create_personal_token(
        &self,
        token: &PersonalToken,
        secret_hash: String,
        audit: &AuditEntry,
    ) -> Result<(), RuleStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        api_keys::ActiveModel {
            id: Set(token.id),
            name: Set(token.name.clone()),
            key_prefix: Set(token.prefix.clone()),
            key_hash: Set(secret_hash),
            user_id: Set(Some(token.user_id)),
            organization_id: Set(None),
            device_id: Set(None),
            scopes: Set(serde_json::json!(token.scopes)),
            expires_at: Set(token.expires_at),
            last_used_at: Set(None),
            revoked_at: Set(None),
            created_at: Set(token.created_at),
            last_used_ip: Set(None),
            previous_key_hash: Set(None),
            previous_valid_until: Set(None),
        }
        .insert(&transaction)
        .await
        .map_err(db)?;
        crate::user_quotas::check_user_quota_after(
            &transaction,
            self.quota_plans(),
            token.user_id,
            QuotaKey::PersonalAccessTokens,
            1,
        )
        .await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(())
    }

    async fn personal_tokens(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<PersonalToken>, RepositoryError> {
        Ok(api_keys::Entity::find()
            .filter(api_keys::Column::UserId.eq(user_id))
            .filter(live(now))
            .order_by_desc(api_keys::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .filter_map(personal_token)
            .collect())
    }

    async fn revoke_personal_token(
        &self,
        user_id: Uuid,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let revoked = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(Some(Utc::now())))
            .filter(api_keys::Column::Id.eq(id))
            .filter(api_keys::Column::UserId.eq(user_id))
            .filter(api_keys::Column::RevokedAt.is_null())
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

    async fn use_personal_token(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
        ip: Option<String>,
    ) -> Result<Option<PersonalToken>, RepositoryError> {
        let Some(row) = api_keys::Entity::find()
            .filter(api_keys::Column::KeyHash.eq(secret_hash))
            .filter(api_keys::Column::UserId.is_not_null())
            .filter(live(now))
            .one(self.connection())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(Some(now)))
            .col_expr(api_keys::Column::LastUsedIp, Expr::value(ip.clone()))
            .filter(api_keys::Column::Id.eq(row.id))
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(personal_token(api_keys::Model {
            last_used_at: Some(now),
            last_used_ip: ip,
            ..row
        }))
    }
}
