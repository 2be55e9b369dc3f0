//! Accounts, sessions, refresh-token chains, login throttling, email tokens and the outbox.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde_json::json;
use steward_domain::accounts::{
    AccountStore, AttemptPermit, EmailTokenPurpose, EmailTokenStore, LoginThrottleStore, NewEmailToken,
    NewUser, Outbox, OutgoingEmail, OutgoingMail, ProfileChanges, RedeemedEmailToken, RefreshTokenRecord,
    SessionRecord, SessionStore, UserRecord,
};
use steward_domain::identity::EmailAddress;
use steward_domain::session::LoginThrottlePolicy;
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{
    api_keys, audit_logs, email_tokens, group_memberships, login_throttles, oauth_accounts, outbox_emails,
    password_history, refresh_tokens, user_sessions, user_system_roles, users,
};
use crate::error::db_err_to_repository as db;

pub(crate) fn user_record(model: users::Model) -> UserRecord {
    UserRecord {
        id: model.id,
        email: model.email,
        pending_email: model.pending_email,
        email_verified_at: model.email_verified_at,
        password_hash: model.password_hash,
        display_name: model.display_name,
        avatar_url: model.avatar_url,
        locale: model.locale,
        timezone: model.timezone,
        status: model.status,
        version: model.version,
        created_at: model.created_at,
        updated_at: model.updated_at,
        last_login_at: model.last_login_at,
    }
}

fn session_record(model: user_sessions::Model) -> SessionRecord {
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

async fn remember_password(
    connection: &impl ConnectionTrait,
    user_id: Uuid,
    hash: String,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    password_history::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        password_hash: Set(hash),
        created_at: Set(now),
    }
    .insert(connection)
    .await
    .map_err(db)?;
    Ok(())
}

impl AccountStore for Database {
    async fn create_user(&self, user: NewUser, audit: &AuditEntry) -> Result<UserRecord, RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let now = Utc::now();
        let id = audit
            .resource_id
            .as_deref()
            .and_then(|id| Uuid::parse_str(id).ok())
            .unwrap_or_else(Uuid::now_v7);
        let model = users::ActiveModel {
            id: Set(id),
            email: Set(user.email.as_str().to_owned()),
            email_verified_at: Set(None),
            password_hash: Set(Some(user.password_hash.clone())),
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
        remember_password(&transaction, id, user.password_hash, now).await?;
        insert_audit_entry(&transaction, audit).await?;
        if let Some(welcome) = user.welcome {
            insert_email_token(&transaction, id, &welcome.verification, now).await?;
            insert_mail(&transaction, &welcome.mail).await?;
            insert_session(&transaction, welcome.session, welcome.refresh_token_hash).await?;
            insert_audit_entry(&transaction, &welcome.session_audit).await?;
        }
        transaction.commit().await.map_err(db)?;
        Ok(user_record(model))
    }

    async fn find_user(&self, id: Uuid) -> Result<Option<UserRecord>, RepositoryError> {
        Ok(users::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(user_record))
    }

    async fn find_user_by_email(&self, email: &EmailAddress) -> Result<Option<UserRecord>, RepositoryError> {
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(user_record))
    }

    async fn update_profile(
        &self,
        id: Uuid,
        changes: ProfileChanges,
        expected_version: Option<i32>,
        audit: &AuditEntry,
    ) -> Result<UserRecord, RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let mut update = users::Entity::update_many()
            .col_expr(users::Column::Version, Expr::col(users::Column::Version).add(1))
            .col_expr(users::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(users::Column::Id.eq(id))
            .filter(users::Column::Status.eq("active"));
        if let Some(name) = changes.display_name {
            update = update.col_expr(users::Column::DisplayName, Expr::value(name));
        }
        if let Some(value) = changes.avatar_url {
            update = update.col_expr(users::Column::AvatarUrl, Expr::value(value));
        }
        if let Some(value) = changes.locale {
            update = update.col_expr(users::Column::Locale, Expr::value(value));
        }
        if let Some(value) = changes.timezone {
            update = update.col_expr(users::Column::Timezone, Expr::value(value));
        }
        if let Some(value) = changes.pending_email {
            update = update.col_expr(users::Column::PendingEmail, Expr::value(value));
        }
        if let Some(version) = expected_version {
            update = update.filter(users::Column::Version.eq(version));
        }
        let result = update.exec(&transaction).await.map_err(db)?;
        if result.rows_affected == 0 {
            let exists = users::Entity::find_by_id(id)
                .one(&transaction)
                .await
                .map_err(db)?;
            return Err(match exists {
                Some(_) if expected_version.is_some() => RepositoryError::VersionConflict,
                _ => RepositoryError::NotFound,
            });
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

    async fn change_password(
        &self,
        id: Uuid,
        new_hash: String,
        keep_session: Option<Uuid>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let now = Utc::now();
        let updated = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(Some(new_hash.clone())))
            .col_expr(users::Column::Version, Expr::col(users::Column::Version).add(1))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if updated.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        remember_password(&transaction, id, new_hash, now).await?;
        let mut revoke = user_sessions::Entity::update_many()
            .col_expr(user_sessions::Column::RevokedAt, Expr::value(Some(now)))
            .col_expr(
                user_sessions::Column::RevokedReason,
                Expr::value(Some("password_changed".to_owned())),
            )
            .filter(user_sessions::Column::UserId.eq(id))
            .filter(user_sessions::Column::RevokedAt.is_null());
        if let Some(keep) = keep_session {
            revoke = revoke.filter(user_sessions::Column::Id.ne(keep));
        }
        revoke.exec(&transaction).await.map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn recent_password_hashes(&self, id: Uuid, count: usize) -> Result<Vec<String>, RepositoryError> {
        Ok(password_history::Entity::find()
            .filter(password_history::Column::UserId.eq(id))
            .order_by_desc(password_history::Column::CreatedAt)
            .limit(count as u64)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| row.password_hash)
            .collect())
    }

    async fn upgrade_password_hash(&self, id: Uuid, new_hash: String) -> Result<(), RepositoryError> {
        users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(Some(new_hash)))
            .filter(users::Column::Id.eq(id))
            .exec(self.connection())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn mark_email_verified(
        &self,
        id: Uuid,
        email: &str,
        audit: &AuditEntry,
    ) -> Result<UserRecord, RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let now = Utc::now();
        // Write first, so SQLite takes its write lock before the read (a read-then-write
        // transaction fails as "locked" when another writer commits in between).
        users::Entity::update_many()
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let user = users::Entity::find_by_id(id)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let mut model = user.clone().into_active_model();
        if user.pending_email.as_deref() == Some(email) {
            model.email = Set(email.to_owned());
            model.pending_email = Set(None);
        } else if user.email != email {
            // The token was for an address the account no longer uses.
            return Err(RepositoryError::NotFound);
        }
        model.email_verified_at = Set(Some(now));
        model.updated_at = Set(now);
        model.version = Set(user.version + 1);
        let updated = model.update(&transaction).await.map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(user_record(updated))
    }

    async fn system_roles(&self, id: Uuid) -> Result<Vec<String>, RepositoryError> {
        Ok(user_system_roles::Entity::find()
            .filter(user_system_roles::Column::UserId.eq(id))
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| row.role)
            .collect())
    }

    async fn grant_system_role(
        &self,
        id: Uuid,
        role: &str,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        user_system_roles::Entity::insert(user_system_roles::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(id),
            role: Set(role.to_owned()),
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
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn erase_user(&self, id: Uuid, audit: &AuditEntry) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
        let now = Utc::now();
        let erased = users::Entity::update_many()
            .col_expr(
                users::Column::Email,
                Expr::value(format!("deleted-{}@erased.invalid", id.simple())),
            )
            .col_expr(users::Column::DisplayName, Expr::value("Deleted user"))
            .col_expr(users::Column::PasswordHash, Expr::value(Option::<String>::None))
            .col_expr(users::Column::PendingEmail, Expr::value(Option::<String>::None))
            .col_expr(users::Column::AvatarUrl, Expr::value(Option::<String>::None))
            .col_expr(users::Column::Locale, Expr::value(Option::<String>::None))
            .col_expr(users::Column::Timezone, Expr::value(Option::<String>::None))
            .col_expr(users::Column::Status, Expr::value("deleted"))
            .col_expr(users::Column::DeletedAt, Expr::value(Some(now)))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id))
            .filter(users::Column::Status.ne("deleted"))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if erased.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        user_sessions::Entity::delete_many()
            .filter(user_sessions::Column::UserId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        oauth_accounts::Entity::delete_many()
            .filter(oauth_accounts::Column::UserId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        email_tokens::Entity::delete_many()
            .filter(email_tokens::Column::UserId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        password_history::Entity::delete_many()
            .filter(password_history::Column::UserId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        user_system_roles::Entity::delete_many()
            .filter(user_system_roles::Column::UserId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        api_keys::Entity::delete_many()
            .filter(api_keys::Column::UserId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        leave_groups_on_erasure(&transaction, id, audit, now).await?;
        // The trail stays, but not where the person was or what they used.
        audit_logs::Entity::update_many()
            .col_expr(audit_logs::Column::IpAddress, Expr::value(Option::<String>::None))
            .col_expr(audit_logs::Column::UserAgent, Expr::value(Option::<String>::None))
            .filter(audit_logs::Column::ActorId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn export_user(&self, id: Uuid) -> Result<serde_json::Value, RepositoryError> {
        let connection = self.connection();
        let user = users::Entity::find_by_id(id)
            .one(connection)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        let sessions = user_sessions::Entity::find()
            .filter(user_sessions::Column::UserId.eq(id))
            .order_by_asc(user_sessions::Column::CreatedAt)
            .all(connection)
            .await
            .map_err(db)?;
        let linked = oauth_accounts::Entity::find()
            .filter(oauth_accounts::Column::UserId.eq(id))
            .all(connection)
            .await
            .map_err(db)?;
        let roles = self.system_roles(id).await?;
        let activity = audit_logs::Entity::find()
            .filter(
                audit_logs::Column::ActorId
                    .eq(id)
                    .or(audit_logs::Column::ResourceId.eq(id.to_string())),
            )
            .order_by_asc(audit_logs::Column::OccurredAt)
            .all(connection)
            .await
            .map_err(db)?;
        Ok(json!({
            "profile": {
                "id": user.id,
                "email": user.email,
                "pendingEmail": user.pending_email,
                "emailVerifiedAt": user.email_verified_at,
                "displayName": user.display_name,
                "avatarUrl": user.avatar_url,
                "locale": user.locale,
                "timezone": user.timezone,
                "status": user.status,
                "createdAt": user.created_at,
                "updatedAt": user.updated_at,
                "lastLoginAt": user.last_login_at,
            },
            "systemRoles": roles,
            "sessions": sessions.into_iter().map(|s| json!({
                "id": s.id, "ipAddress": s.ip_address, "userAgent": s.user_agent,
                "createdAt": s.created_at, "lastUsedAt": s.last_used_at, "expiresAt": s.expires_at,
                "revokedAt": s.revoked_at, "revokedReason": s.revoked_reason,
            })).collect::<Vec<_>>(),
            "linkedAccounts": linked.into_iter().map(|a| json!({
                "provider": a.provider, "email": a.email, "createdAt": a.created_at,
            })).collect::<Vec<_>>(),
            "activity": activity.into_iter().map(|entry| json!({
                "occurredAt": entry.occurred_at, "action": entry.action, "actorKind": entry.actor_kind,
                "resourceType": entry.resource_type, "resourceId": entry.resource_id,
                "ipAddress": entry.ip_address, "userAgent": entry.user_agent,
            })).collect::<Vec<_>>(),
        }))
    }
}

impl SessionStore for Database {
    async fn open_session(
        &self,
        session: SessionRecord,
        refresh_token_hash: String,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
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

    async fn revoke_session(
        &self,
        id: Uuid,
        user_id: Uuid,
        reason: &str,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.connection().begin().await.map_err(db)?;
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
        let transaction = self.connection().begin().await.map_err(db)?;
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
            .exec(self.connection())
            .await
            .map_err(db)?;
        Ok(())
    }
}

/// `in_flight - 1`, never below zero.
fn released() -> sea_orm::sea_query::SimpleExpr {
    Expr::cust("CASE WHEN in_flight > 0 THEN in_flight - 1 ELSE 0 END")
}

impl LoginThrottleStore for Database {
    async fn reserve_attempt(
        &self,
        email: &str,
        policy: LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<AttemptPermit, RepositoryError> {
        let connection = self.connection();
        login_throttles::Entity::insert(login_throttles::ActiveModel {
            email: Set(email.to_owned()),
            attempts: Set(0),
            in_flight: Set(0),
            window_started_at: Set(now),
            locked_until: Set(None),
        })
        .on_conflict(
            OnConflict::column(login_throttles::Column::Email)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await
        .map_err(db)?;

        let unlocked = login_throttles::Column::LockedUntil
            .is_null()
            .or(login_throttles::Column::LockedUntil.lte(now));
        // A window that has passed starts over (this also frees checks whose request vanished).
        login_throttles::Entity::update_many()
            .col_expr(login_throttles::Column::Attempts, Expr::value(0))
            .col_expr(login_throttles::Column::InFlight, Expr::value(0))
            .col_expr(login_throttles::Column::WindowStartedAt, Expr::value(now))
            .col_expr(
                login_throttles::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .filter(unlocked.clone())
            .filter(login_throttles::Column::WindowStartedAt.lte(now - policy.window))
            .exec(connection)
            .await
            .map_err(db)?;
        // Failures plus checks in progress never exceed the allowance: the condition and the
        // increment are one statement, so parallel attempts cannot both take the last check.
        let reserved = login_throttles::Entity::update_many()
            .col_expr(
                login_throttles::Column::InFlight,
                Expr::col(login_throttles::Column::InFlight).add(1),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .filter(unlocked)
            .filter(
                Expr::col(login_throttles::Column::Attempts)
                    .add(Expr::col(login_throttles::Column::InFlight))
                    .lt(policy.max_attempts),
            )
            .exec(connection)
            .await
            .map_err(db)?;
        if reserved.rows_affected == 1 {
            return Ok(AttemptPermit::Granted);
        }
        let Some(row) = login_throttles::Entity::find_by_id(email.to_owned())
            .one(connection)
            .await
            .map_err(db)?
        else {
            return Ok(AttemptPermit::Busy);
        };
        let locked_until = match row.locked_until {
            Some(until) if until > now => Some(until),
            _ if row.attempts >= policy.max_attempts => Some(row.window_started_at + policy.window),
            _ => None,
        };
        Ok(match locked_until {
            Some(until) => AttemptPermit::Locked {
                retry_after_seconds: Ord::max((until - now).num_seconds(), 1),
            },
            None => AttemptPermit::Busy,
        })
    }

    async fn record_failure(
        &self,
        email: &str,
        policy: LoginThrottlePolicy,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        login_throttles::Entity::update_many()
            .col_expr(login_throttles::Column::InFlight, released())
            .col_expr(
                login_throttles::Column::Attempts,
                Expr::col(login_throttles::Column::Attempts).add(1),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .exec(self.connection())
            .await
            .map_err(db)?;
        let locked = login_throttles::Entity::update_many()
            .col_expr(
                login_throttles::Column::LockedUntil,
                Expr::value(Some(now + policy.lockout)),
            )
            .filter(login_throttles::Column::Email.eq(email))
            .filter(login_throttles::Column::Attempts.gte(policy.max_attempts))
            .filter(
                login_throttles::Column::LockedUntil
                    .is_null()
                    .or(login_throttles::Column::LockedUntil.lte(now)),
            )
            .exec(self.connection())
            .await
            .map_err(db)?;
        Ok(locked.rows_affected == 1)
    }

    async fn record_success(&self, email: &str) -> Result<(), RepositoryError> {
        login_throttles::Entity::update_many()
            .col_expr(login_throttles::Column::InFlight, released())
            .col_expr(login_throttles::Column::Attempts, Expr::value(0))
            .filter(login_throttles::Column::Email.eq(email))
            .exec(self.connection())
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn clear(&self, email: &str) -> Result<(), RepositoryError> {
        login_throttles::Entity::delete_by_id(email.to_owned())
            .exec(self.connection())
            .await
            .map_err(db)?;
        Ok(())
    }
}

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
        let transaction = self.connection().begin().await.map_err(db)?;
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
            .exec(self.connection())
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

impl Outbox for Database {
    async fn enqueue_email(&self, recipient: &str, subject: &str, body: &str) -> Result<(), RepositoryError> {
        let mail = OutgoingMail {
            recipient: recipient.to_owned(),
            subject: subject.to_owned(),
            body: body.to_owned(),
        };
        insert_mail(self.connection(), &mail).await
    }

    async fn due_emails(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<OutgoingEmail>, RepositoryError> {
        Ok(outbox_emails::Entity::find()
            .filter(outbox_emails::Column::Status.eq("pending"))
            .filter(outbox_emails::Column::NextAttemptAt.lte(now))
            .order_by_asc(outbox_emails::Column::NextAttemptAt)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| OutgoingEmail {
                id: row.id,
                recipient: row.recipient,
                subject: row.subject,
                body: row.body,
                attempts: row.attempts,
            })
            .collect())
    }

    async fn mark_sent(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), RepositoryError> {
        crate::queue::mark_sent::<outbox_emails::Entity>(self.connection(), id, now).await
    }

    async fn mark_failed(
        &self,
        id: Uuid,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), RepositoryError> {
        crate::queue::mark_failed::<outbox_emails::Entity>(self.connection(), id, error, retry_at).await
    }
}

/// Removes an erased user's memberships; a group they owned passes to its longest-standing
/// admin, or is archived (`steward_domain::groups::succession_on_account_deletion`).
async fn leave_groups_on_erasure(
    transaction: &sea_orm::DatabaseTransaction,
    user: Uuid,
    audit: &AuditEntry,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    let memberships = group_memberships::Entity::find()
        .filter(group_memberships::Column::UserId.eq(user))
        .all(transaction)
        .await
        .map_err(db)?;
    // Everyone who shared a group with the erased user: locks the erased user set on their
    // devices (or others set on the erased user's) may have lost the one who could lift them.
    let mut affected = std::collections::BTreeSet::new();
    for membership in &memberships {
        affected.extend(
            group_memberships::Entity::find()
                .filter(group_memberships::Column::GroupId.eq(membership.group_id))
                .all(transaction)
                .await
                .map_err(db)?
                .into_iter()
                .map(|row| row.user_id),
        );
    }
    for membership in memberships {
        let Some(group) = crate::groups::lock_group(transaction, membership.group_id, now).await? else {
            // A deleted group keeps its rows for the audit trail, minus this person.
            group_memberships::Entity::delete_by_id(membership.id)
                .exec(transaction)
                .await
                .map_err(db)?;
            continue;
        };
        let current = crate::groups::snapshot(transaction, group).await?;
        let changes = steward_domain::groups::succession_on_account_deletion(&current, user);
        let (before, after) = crate::groups::apply_changes(transaction, &current, &changes, now).await?;
        let entry = AuditEntry::new(
            audit.actor,
            steward_domain::AuditAction::known("group.member_erased"),
            "group",
        )
        .resource_id(current.group.id)
        .change(Some(before), Some(after));
        insert_audit_entry(transaction, &entry).await?;
    }
    affected.remove(&user);
    crate::lock_reach::release_unreachable_locks(transaction, &affected, now).await?;
    Ok(())
}

/// A session with its first refresh token, and the user's last sign-in time.
async fn insert_session(
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

/// A single-use mail token, invalidating earlier unused ones of its purpose.
async fn insert_email_token(
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

/// A mail for the background sender.
async fn insert_mail<C: ConnectionTrait>(connection: &C, mail: &OutgoingMail) -> Result<(), RepositoryError> {
    let now = Utc::now();
    outbox_emails::ActiveModel {
        id: Set(Uuid::now_v7()),
        recipient: Set(mail.recipient.clone()),
        subject: Set(mail.subject.clone()),
        body: Set(mail.body.clone()),
        status: Set("pending".to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(now),
        last_error: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
    }
    .insert(connection)
    .await
    .map_err(db)?;
    Ok(())
}
