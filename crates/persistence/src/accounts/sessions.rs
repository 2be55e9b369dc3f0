//! Sessions and refresh tokens.

use super::*;

pub(super) fn session_record(model: user_sessions::Model) -> SessionRecord {
    SessionRecord {
        id: model.id,
        user_id: model.user_id,
        ip_address: model.ip_address,
        user_agent: model.user_agent,
        created_at: model.created_at,
        last_used_at: model.last_used_at,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
    }
}

impl SessionStore for Database {
    async fn open_session(
        &self,
        session: SessionRecord,
        refresh_token_hash: String,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        insert_session(&transaction, session, refresh_token_hash).await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn find_session(&self, id: Uuid) -> Result<Option<SessionRecord>, RepositoryError> {
        Ok(user_sessions::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(session_record))
    }

    async fn active_sessions(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionRecord>, RepositoryError> {
        Ok(user_sessions::Entity::find()
            .filter(user_sessions::Column::UserId.eq(user_id))
            .filter(user_sessions::Column::RevokedAt.is_null())
            .filter(user_sessions::Column::ExpiresAt.gt(now))
            .order_by_desc(user_sessions::Column::CreatedAt)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(session_record)
            .collect())
    }

    async fn revoke_user_sessions(
        &self,
        user_id: Uuid,
        reason: &str,
        audit: &AuditEntry,
    ) -> Result<u64, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let result = user_sessions::Entity::update_many()
            .col_expr(user_sessions::Column::RevokedAt, Expr::value(Some(Utc::now())))
            .col_expr(
                user_sessions::Column::RevokedReason,
                Expr::value(Some(reason.to_owned())),
            )
            .filter(user_sessions::Column::UserId.eq(user_id))
            .filter(user_sessions::Column::RevokedAt.is_null())
            .exec(&transaction)
            .await
            .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(result.rows_affected)
    }

    async fn revoke_session(
        &self,
        id: Uuid,
        user_id: Uuid,
        reason: &str,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let result = user_sessions::Entity::update_many()
            .col_expr(user_sessions::Column::RevokedAt, Expr::value(Some(Utc::now())))
            .col_expr(
                user_sessions::Column::RevokedReason,
                Expr::value(Some(reason.to_owned())),
            )
            .filter(user_sessions::Column::Id.eq(id))
            .filter(user_sessions::Column::UserId.eq(user_id))
            .filter(user_sessions::Column::RevokedAt.is_null())
            .exec(&transaction)
            .await
            .map_err(db)?;
        if result.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn find_refresh_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, RepositoryError> {
        let Some(token) = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::TokenHash.eq(token_hash))
            .one(self.connection())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let successor = refresh_tokens::Entity::find()
            .filter(refresh_tokens::Column::ParentId.eq(token.id))
            .one(self.connection())
            .await
            .map_err(db)?;
        Ok(Some(RefreshTokenRecord {
            id: token.id,
            session_id: token.session_id,
            expires_at: token.expires_at,
            used_at: token.used_at,
            successor_used: successor.is_some_and(|s| s.used_at.is_some()),
        }))
    }

    async fn rotate_refresh_token(
        &self,
        token: &RefreshTokenRecord,
        successor_hash: String,
        successor_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // The conditional update is the claim: of concurrent rotations exactly one changes a row.
        let claimed = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::UsedAt, Expr::value(Some(now)))
            .filter(refresh_tokens::Column::Id.eq(token.id))
            .filter(refresh_tokens::Column::UsedAt.is_null())
            .exec(&transaction)
            .await
            .map_err(db)?;
        if claimed.rows_affected == 0 {
            transaction.rollback().await.map_err(db)?;
            return Ok(false);
        }
        refresh_tokens::ActiveModel {
            id: Set(Uuid::now_v7()),
            session_id: Set(token.session_id),
            parent_id: Set(Some(token.id)),
            token_hash: Set(successor_hash),
            created_at: Set(now),
            expires_at: Set(successor_expires_at),
            used_at: Set(None),
        }
        .insert(&transaction)
        .await
        .map_err(db)?;
        // Refresh tokens slide: each rotation extends the session to the successor's expiry.
        user_sessions::Entity::update_many()
            .col_expr(user_sessions::Column::LastUsedAt, Expr::value(Some(now)))
            .col_expr(
                user_sessions::Column::ExpiresAt,
                Expr::value(successor_expires_at),
            )
            .filter(user_sessions::Column::Id.eq(token.session_id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn touch_session(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        user_sessions::Entity::update_many()
            .col_expr(user_sessions::Column::LastUsedAt, Expr::value(Some(now)))
            .filter(user_sessions::Column::Id.eq(id))
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// A session with its first refresh token, and the user's last sign-in time.
pub(super) async fn insert_session(
    transaction: &sea_orm::DatabaseTransaction,
    session: SessionRecord,
    refresh_token_hash: String,
) -> Result<(), RepositoryError> {
    user_sessions::ActiveModel {
        id: Set(session.id),
        user_id: Set(session.user_id),
        ip_address: Set(session.ip_address),
        user_agent: Set(session.user_agent),
        expires_at: Set(session.expires_at),
        last_used_at: Set(session.last_used_at),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        created_at: Set(session.created_at),
    }
    .insert(transaction)
    .await
    .map_err(db)?;
    refresh_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        session_id: Set(session.id),
        parent_id: Set(None),
        token_hash: Set(refresh_token_hash),
        created_at: Set(session.created_at),
        expires_at: Set(session.expires_at),
        used_at: Set(None),
    }
    .insert(transaction)
    .await
    .map_err(db)?;
    users::Entity::update_many()
        .col_expr(users::Column::LastLoginAt, Expr::value(Some(session.created_at)))
        .filter(users::Column::Id.eq(session.user_id))
        .exec(transaction)
        .await
        .map_err(db)?;
    Ok(())
}
