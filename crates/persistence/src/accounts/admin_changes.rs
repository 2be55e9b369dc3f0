//! An operator's change of someone's account: name, address, locale and time zone, guarded
//! by the account's version; a new address is stored unverified with its verification mail.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, ExprTrait, QueryFilter};
use steward_domain::accounts::{
    AdminUserChanges, NewEmailToken, OutgoingMail, STATUS_ACTIVE, STATUS_LOCKED, UserRecord,
};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use super::mail_tokens::insert_email_token;
use super::outbox::insert_mail;
use super::user_record;
use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{email_tokens, users};
use crate::error::db_err_to_repository as db;

impl Database {
    pub(crate) async fn update_user_as_admin(
        &self,
        id: Uuid,
        changes: AdminUserChanges,
        expected_version: Option<i32>,
        mail: Option<(NewEmailToken, OutgoingMail)>,
        audit: &AuditEntry,
    ) -> Result<UserRecord, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::Version, Expr::col(users::Column::Version).add(1))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id))
            .filter(users::Column::DeletedAt.is_null())
            .filter(users::Column::Status.is_in([STATUS_ACTIVE, STATUS_LOCKED]));
        if let Some(name) = changes.display_name {
            update = update.col_expr(users::Column::DisplayName, Expr::value(name));
        }
        let email_changes = changes.email.is_some();
        if let Some(email) = changes.email {
            update = update
                .col_expr(users::Column::Email, Expr::value(email))
                .col_expr(
                    users::Column::EmailVerifiedAt,
                    Expr::value(Option::<chrono::DateTime<Utc>>::None),
                )
                .col_expr(users::Column::PendingEmail, Expr::value(Option::<String>::None));
        }
        if let Some(value) = changes.locale {
            update = update.col_expr(users::Column::Locale, Expr::value(value));
        }
        if let Some(value) = changes.timezone {
            update = update.col_expr(users::Column::Timezone, Expr::value(value));
        }
        if let Some(version) = expected_version {
            update = update.filter(users::Column::Version.eq(version));
        }
        let result = update.exec(&transaction).await.map_err(db)?;
        if result.rows_affected == 0 {
            let exists = users::Entity::find_by_id(id)
                .filter(users::Column::DeletedAt.is_null())
                .filter(users::Column::Status.is_in([STATUS_ACTIVE, STATUS_LOCKED]))
                .one(&transaction)
                .await
                .map_err(db)?;
            return Err(match exists {
                Some(_) if expected_version.is_some() => RepositoryError::VersionConflict,
                _ => RepositoryError::NotFound,
            });
        }
        if email_changes {
            // Links mailed to the old address (an invitation, a reset) stop working.
            email_tokens::Entity::delete_many()
                .filter(email_tokens::Column::UserId.eq(id))
                .filter(email_tokens::Column::UsedAt.is_null())
                .exec(&transaction)
                .await
                .map_err(db)?;
        }
        if let Some((token, outgoing)) = &mail {
            insert_email_token(&transaction, id, token, now).await?;
            insert_mail(&transaction, outgoing).await?;
        }
        insert_audit_entry(&transaction, audit).await?;
        let model = users::Entity::find_by_id(id)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        transaction.commit().await.map_err(db)?;
        Ok(user_record(model))
    }
}
