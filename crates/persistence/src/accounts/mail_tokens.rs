//! Single-use email tokens (verification, password reset).

use super::*;

impl EmailTokenStore for Database {
    async fn issue_email_token(
        &self,
        user_id: Uuid,
        purpose: EmailTokenPurpose,
        email: &str,
        token_hash: String,
        expires_at: DateTime<Utc>,
        cap: Option<(u64, DateTime<Utc>)>,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        if let Some((max, since)) = cap {
            // The user's row lock orders concurrent requests for this user.
            users::Entity::update_many()
                .col_expr(users::Column::Id, Expr::col(users::Column::Id))
                .filter(users::Column::Id.eq(user_id))
                .exec(&transaction)
                .await
                .map_err(db)?;
            let recent = email_tokens::Entity::find()
                .filter(email_tokens::Column::UserId.eq(user_id))
                .filter(email_tokens::Column::Purpose.eq(purpose.as_str()))
                .filter(email_tokens::Column::CreatedAt.gt(since))
                .count(&transaction)
                .await
                .map_err(db)?;
            if recent >= max {
                transaction.rollback().await.map_err(db)?;
                return Ok(false);
            }
        }
        let token = NewEmailToken {
            purpose,
            email: email.to_owned(),
            token_hash,
            expires_at,
        };
        insert_email_token(&transaction, user_id, &token, now).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn peek_email_token(
        &self,
        purpose: EmailTokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RedeemedEmailToken>, RepositoryError> {
        Ok(email_tokens::Entity::find()
            .filter(email_tokens::Column::TokenHash.eq(token_hash))
            .filter(email_tokens::Column::Purpose.eq(purpose.as_str()))
            .filter(email_tokens::Column::UsedAt.is_null())
            .filter(email_tokens::Column::ExpiresAt.gt(now))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(|row| RedeemedEmailToken {
                user_id: row.user_id,
                email: row.email,
            }))
    }

    async fn redeem_email_token(
        &self,
        purpose: EmailTokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<RedeemedEmailToken>, RepositoryError> {
        let redeemed = email_tokens::Entity::update_many()
            .col_expr(email_tokens::Column::UsedAt, Expr::value(Some(now)))
            .filter(email_tokens::Column::TokenHash.eq(token_hash))
            .filter(email_tokens::Column::Purpose.eq(purpose.as_str()))
            .filter(email_tokens::Column::UsedAt.is_null())
            .filter(email_tokens::Column::ExpiresAt.gt(now))
            .exec(self.writer())
            .await
            .map_err(db)?;
        if redeemed.rows_affected == 0 {
            return Ok(None);
        }
        Ok(email_tokens::Entity::find()
            .filter(email_tokens::Column::TokenHash.eq(token_hash))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(|row| RedeemedEmailToken {
                user_id: row.user_id,
                email: row.email,
            }))
    }
}

/// A single-use mail token, invalidating earlier unused ones of its purpose.
pub(super) async fn insert_email_token(
    transaction: &sea_orm::DatabaseTransaction,
    user_id: Uuid,
    token: &NewEmailToken,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    email_tokens::Entity::update_many()
        .col_expr(email_tokens::Column::UsedAt, Expr::value(Some(now)))
        .filter(email_tokens::Column::UserId.eq(user_id))
        .filter(email_tokens::Column::Purpose.eq(token.purpose.as_str()))
        .filter(email_tokens::Column::UsedAt.is_null())
        .exec(transaction)
        .await
        .map_err(db)?;
    email_tokens::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        purpose: Set(token.purpose.as_str().to_owned()),
        email: Set(token.email.clone()),
        token_hash: Set(token.token_hash.clone()),
        expires_at: Set(token.expires_at),
        used_at: Set(None),
        created_at: Set(now),
    }
    .insert(transaction)
    .await
    .map_err(db)?;
    Ok(())
}
