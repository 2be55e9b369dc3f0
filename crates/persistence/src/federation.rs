//! Provider links, nonce replay protection, role overrides and role synchronisation.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use steward_domain::accounts::{FederationStore, NewFederatedUser, UserRecord};
use steward_domain::federation::RoleOverrides;
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{oauth_accounts, oidc_nonces, user_role_overrides, user_system_roles, users};
use crate::error::db_err_to_repository as db;

impl FederationStore for Database {
    async fn linked_user(&self, provider: &str, subject: &str) -> Result<Option<Uuid>, RepositoryError> {
        Ok(oauth_accounts::Entity::find()
            .filter(oauth_accounts::Column::Provider.eq(provider))
            .filter(oauth_accounts::Column::ProviderSubject.eq(subject))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(|link| link.user_id))
    }

    async fn create_federated_user(
        &self,
        user: NewFederatedUser,
        audit: &AuditEntry,
    ) -> Result<UserRecord, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let id = Uuid::now_v7();
        let model = users::ActiveModel {
            id: Set(id),
            email: Set(user.email.as_str().to_owned()),
            email_verified_at: Set(Some(now)),
            password_hash: Set(None),
            pending_email: Set(None),
            display_name: Set(user.display_name),
            avatar_url: Set(None),
            locale: Set(None),
            timezone: Set(None),
            status: Set("active".to_owned()),
            organization_id: Set(None),
            last_login_at: Set(None),
            version: Set(1),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        }
        .insert(&transaction)
        .await
        .map_err(db)?;
        oauth_accounts::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(id),
            provider: Set(user.provider),
            provider_subject: Set(user.subject),
            email: Set(Some(user.email.as_str().to_owned())),
            created_at: Set(now),
            last_used_at: Set(Some(now)),
        }
        .insert(&transaction)
        .await
        .map_err(db)?;
        let mut audit = audit.clone();
        audit.resource_id = Some(id.to_string());
        insert_audit_entry(&transaction, &audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(crate::accounts::user_record(model))
    }

    async fn link_account(
        &self,
        user_id: Uuid,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        oauth_accounts::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(user_id),
            provider: Set(provider.to_owned()),
            provider_subject: Set(subject.to_owned()),
            email: Set(email.map(str::to_owned)),
            created_at: Set(now),
            last_used_at: Set(Some(now)),
        }
        .insert(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn linked_providers(&self, user_id: Uuid) -> Result<Vec<String>, RepositoryError> {
        Ok(oauth_accounts::Entity::find()
            .filter(oauth_accounts::Column::UserId.eq(user_id))
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|link| link.provider)
            .collect())
    }

    async fn unlink_account(
        &self,
        user_id: Uuid,
        provider: &str,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let removed = oauth_accounts::Entity::delete_many()
            .filter(oauth_accounts::Column::UserId.eq(user_id))
            .filter(oauth_accounts::Column::Provider.eq(provider))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if removed.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn consume_nonce(
        &self,
        provider: &str,
        nonce_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let now = Utc::now();
        oidc_nonces::Entity::delete_many()
            .filter(oidc_nonces::Column::ExpiresAt.lt(now))
            .exec(self.writer())
            .await
            .map_err(db)?;
        let inserted = oidc_nonces::Entity::insert(oidc_nonces::ActiveModel {
            id: Set(Uuid::now_v7()),
            provider: Set(provider.to_owned()),
            nonce_hash: Set(nonce_hash.to_owned()),
            expires_at: Set(expires_at),
            created_at: Set(now),
        })
        .on_conflict(
            OnConflict::columns([oidc_nonces::Column::Provider, oidc_nonces::Column::NonceHash])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self.writer())
        .await
        .map_err(db)?;
        Ok(inserted == 1)
    }

    async fn role_overrides(&self, user_id: Uuid) -> Result<Option<RoleOverrides>, RepositoryError> {
        let Some(row) = user_role_overrides::Entity::find_by_id(user_id)
            .one(self.connection())
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let list =
            |value: serde_json::Value| serde_json::from_value::<Vec<String>>(value).unwrap_or_default();
        Ok(Some(RoleOverrides::normalised(
            row.enabled,
            &list(row.preserved),
            &list(row.suppressed),
        )))
    }

    async fn set_role_overrides(
        &self,
        user_id: Uuid,
        overrides: Option<&RoleOverrides>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        user_role_overrides::Entity::delete_by_id(user_id)
            .exec(&transaction)
            .await
            .map_err(db)?;
        if let Some(overrides) = overrides {
            user_role_overrides::ActiveModel {
                user_id: Set(user_id),
                enabled: Set(overrides.enabled),
                preserved: Set(serde_json::json!(overrides.preserved)),
                suppressed: Set(serde_json::json!(overrides.suppressed)),
                updated_at: Set(Utc::now()),
            }
            .insert(&transaction)
            .await
            .map_err(db)?;
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn apply_role_sync(
        &self,
        user_id: Uuid,
        grant: &[String],
        revoke: &[String],
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        if grant.is_empty() && revoke.is_empty() {
            return Ok(());
        }
        let transaction = self.begin_write().await.map_err(db)?;
        for role in grant {
            user_system_roles::Entity::insert(user_system_roles::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(user_id),
                role: Set(role.clone()),
                granted_at: Set(Utc::now()),
            })
            .on_conflict(
                OnConflict::columns([user_system_roles::Column::UserId, user_system_roles::Column::Role])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        }
        if !revoke.is_empty() {
            user_system_roles::Entity::delete_many()
                .filter(user_system_roles::Column::UserId.eq(user_id))
                .filter(user_system_roles::Column::Role.is_in(revoke.iter().cloned()))
                .exec(&transaction)
                .await
                .map_err(db)?;
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }
}
