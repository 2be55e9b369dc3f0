//! Accounts, sessions, refresh-token chains, login throttling, email tokens and the outbox.

mod admin_changes;
mod listing;
mod login_throttle;
mod mail_tokens;
pub(crate) mod outbox;
mod sessions;

use chrono::{DateTime, Utc};
use mail_tokens::insert_email_token;
pub(crate) use outbox::insert_mail;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;
use sessions::insert_session;
use steward_domain::PageRequest;
use steward_domain::accounts::{
    AccountStore, AdminUserChanges, AttemptPermit, EmailTokenPurpose, EmailTokenStore, LockSnapshot,
    LoginThrottleStore, NewEmailToken, NewUser, Outbox, OutgoingEmail, OutgoingMail, ProfileChanges,
    RedeemedEmailToken, RefreshTokenRecord, STATUS_ACTIVE, STATUS_LOCKED, SessionRecord, SessionStore,
    UserFilter, UserListing, UserRecord,
};
use steward_domain::identity::EmailAddress;
use steward_domain::rbac::{RoleChange, RoleSnapshot};
use steward_domain::session::LoginThrottlePolicy;
use steward_domain::{AuditEntry, RepositoryError};
use steward_domain::{RuleError, RuleStoreError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{
    api_keys, audit_logs, email_tokens, group_memberships, login_throttles, oauth_accounts, outbox_emails,
    password_history, refresh_tokens, user_sessions, user_system_roles, users,
};
use crate::error::db_err_to_repository as db;

/// The conflict `erase_user` answers for the last unlocked super_admin.
pub const LAST_SUPER_ADMIN: &str = "the last super_admin cannot be deleted";

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
        let transaction = self.begin_write().await.map_err(db)?;
        let created = insert_new_user(&transaction, user, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(created)
    }

    async fn create_user_with_roles<F, A>(
        &self,
        user: NewUser,
        audit: &AuditEntry,
        decide: F,
        role_audit: A,
    ) -> Result<UserRecord, RuleStoreError>
    where
        F: FnOnce(&RoleSnapshot) -> Result<RoleChange, RuleError> + Send,
        A: Fn(Uuid, &str) -> AuditEntry + Send + Sync,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        // Read first, under share locks: a role deleted by a transaction that commits before
        // this read is unknown here; one deleted later waits for this commit and sees a holder.
        let custom_roles = crate::roles::read_custom_roles(&transaction, true)
            .await?
            .iter()
            .map(|role| role.definition())
            .collect();
        let change = decide(&RoleSnapshot {
            current: Vec::new(),
            other_active_super_admins: 0,
            custom_roles,
        })?;
        let created = insert_new_user(&transaction, user, audit).await?;
        let now = Utc::now();
        for role in &change.granted {
            user_system_roles::Entity::insert(user_system_roles::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(created.id),
                role: Set(role.clone()),
                granted_at: Set(now),
            })
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        }
        let entries = change
            .granted
            .iter()
            .map(|role| role_audit(created.id, role))
            .collect();
        crate::audit::insert_audit_entries(&transaction, entries).await?;
        transaction.commit().await.map_err(db)?;
        Ok(created)
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
        let audit = audit.clone();
        // A frequent small write: grouped with the others waiting on SQLite's one writer.
        self.write_grouped(move |transaction| {
            let (update, audit) = (update.clone(), audit.clone());
            Box::pin(async move {
                // The updated row comes back from the UPDATE itself: one statement fewer while
                // the transaction holds SQLite's one write lock.
                let Some(model) = update
                    .exec_with_returning(transaction)
                    .await
                    .map_err(db)?
                    .into_iter()
                    .next()
                else {
                    // Nothing was written: the answer is this job's own, not the group's.
                    let exists = users::Entity::find_by_id(id).one(transaction).await.map_err(db)?;
                    return Ok(Err(match exists {
                        Some(_) if expected_version.is_some() => RepositoryError::VersionConflict,
                        _ => RepositoryError::NotFound,
                    }));
                };
                insert_audit_entry(transaction, &audit).await?;
                Ok(Ok(user_record(model)))
            })
        })
        .await?
    }

    async fn admin_update_user(
        &self,
        id: Uuid,
        changes: AdminUserChanges,
        expected_version: Option<i32>,
        mail: Option<(NewEmailToken, OutgoingMail)>,
        audit: &AuditEntry,
    ) -> Result<UserRecord, RepositoryError> {
        self.update_user_as_admin(id, changes, expected_version, mail, audit)
            .await
    }

    async fn change_password(
        &self,
        id: Uuid,
        new_hash: String,
        keep_session: Option<Uuid>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
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
            .exec(self.writer())
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
        let transaction = self.begin_write().await.map_err(db)?;
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
        let transaction = self.begin_write().await.map_err(db)?;
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

    async fn change_system_roles<F, A>(
        &self,
        id: Uuid,
        decide: F,
        audit: A,
    ) -> Result<Vec<String>, RuleStoreError>
    where
        F: FnOnce(&RoleSnapshot) -> Result<RoleChange, RuleError> + Send,
        A: Fn(&str, bool) -> AuditEntry + Send + Sync,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let (_, _, other_active_super_admins) = claim_for_super_admin_rule(&transaction, id, now).await?;
        let current: Vec<String> = user_system_roles::Entity::find()
            .select_only()
            .column(user_system_roles::Column::Role)
            .filter(user_system_roles::Column::UserId.eq(id))
            .order_by_asc(user_system_roles::Column::Role)
            .into_tuple()
            .all(&transaction)
            .await
            .map_err(db)?;
        let custom_roles = crate::roles::read_custom_roles(&transaction, true)
            .await?
            .iter()
            .map(|role| role.definition())
            .collect();
        let change = decide(&RoleSnapshot {
            current: current.clone(),
            other_active_super_admins,
            custom_roles,
        })?;
        if !change.revoked.is_empty() {
            user_system_roles::Entity::delete_many()
                .filter(user_system_roles::Column::UserId.eq(id))
                .filter(user_system_roles::Column::Role.is_in(change.revoked.clone()))
                .exec(&transaction)
                .await
                .map_err(db)?;
        }
        for role in &change.granted {
            user_system_roles::Entity::insert(user_system_roles::ActiveModel {
                id: Set(Uuid::now_v7()),
                user_id: Set(id),
                role: Set(role.clone()),
                granted_at: Set(now),
            })
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        }
        let entries = change
            .granted
            .iter()
            .map(|role| audit(role, true))
            .chain(change.revoked.iter().map(|role| audit(role, false)))
            .collect();
        crate::audit::insert_audit_entries(&transaction, entries).await?;
        transaction.commit().await.map_err(db)?;
        let mut roles: Vec<String> = current
            .into_iter()
            .filter(|role| !change.revoked.contains(role))
            .chain(change.granted)
            .collect();
        roles.sort();
        Ok(roles)
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        page: PageRequest,
    ) -> Result<(Vec<UserListing>, u64), RepositoryError> {
        self.user_listing(filter, page).await
    }

    async fn set_user_locked<F>(
        &self,
        id: Uuid,
        locked: bool,
        expected_version: Option<i32>,
        decide: F,
        audit: &AuditEntry,
    ) -> Result<UserRecord, RuleStoreError>
    where
        F: FnOnce(&LockSnapshot) -> Result<(), RuleError> + Send,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        let (user, grants, other_active_super_admins) =
            claim_for_super_admin_rule(&transaction, id, now).await?;
        let snapshot = LockSnapshot {
            status: user.status.clone(),
            is_super_admin: grants.contains(&id),
            other_active_super_admins,
        };
        // The claim above raised the version by one.
        if expected_version.is_some_and(|expected| expected != user.version - 1) {
            return Err(RepositoryError::VersionConflict.into());
        }
        if locked {
            decide(&snapshot)?;
        }
        let status = if locked { STATUS_LOCKED } else { STATUS_ACTIVE };
        users::Entity::update_many()
            .col_expr(users::Column::Status, Expr::value(status))
            .filter(users::Column::Id.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if locked {
            user_sessions::Entity::update_many()
                .col_expr(user_sessions::Column::RevokedAt, Expr::value(Some(now)))
                .col_expr(
                    user_sessions::Column::RevokedReason,
                    Expr::value(Some("account_locked".to_owned())),
                )
                .filter(user_sessions::Column::UserId.eq(id))
                .filter(user_sessions::Column::RevokedAt.is_null())
                .exec(&transaction)
                .await
                .map_err(db)?;
        } else {
            login_throttles::Entity::delete_many()
                .filter(login_throttles::Column::Email.eq(user.email.to_lowercase()))
                .exec(&transaction)
                .await
                .map_err(db)?;
        }
        insert_audit_entry(&transaction, audit).await?;
        let stored = users::Entity::find_by_id(id)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        transaction.commit().await.map_err(db)?;
        Ok(user_record(stored))
    }

    async fn erase_user(&self, id: Uuid, audit: &AuditEntry) -> Result<(), RepositoryError> {
        // Decided by the use case for this caller; the rows span organizations the
        // caller need not belong to: as the system.
        crate::tenancy::as_system(self.erase_user_as_system(id, audit)).await
    }

    async fn export_user(&self, id: Uuid) -> Result<serde_json::Value, RepositoryError> {
        // Decided by the use case for this caller; the rows span organizations the
        // caller need not belong to: as the system.
        crate::tenancy::as_system(self.export_user_as_system(id)).await
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

/// Claims account `id` (its first write, so SQLite serialises concurrent callers here) and locks
/// every `super_admin` grant (PostgreSQL: `FOR UPDATE`), so a decision about "the last
/// super_admin" holds until commit. Answers the account, the super_admin holders and how many
/// of the *others* are unlocked.
async fn claim_for_super_admin_rule(
    transaction: &sea_orm::DatabaseTransaction,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(users::Model, Vec<Uuid>, usize), RepositoryError> {
    let claimed = users::Entity::update_many()
        .col_expr(users::Column::Version, Expr::col(users::Column::Version).add(1))
        .col_expr(users::Column::UpdatedAt, Expr::value(now))
        .filter(users::Column::Id.eq(id))
        .filter(users::Column::DeletedAt.is_null())
        .filter(users::Column::Status.ne("deleted"))
        .exec(transaction)
        .await
        .map_err(db)?;
    if claimed.rows_affected == 0 {
        return Err(RepositoryError::NotFound);
    }
    let grants: Vec<Uuid> = user_system_roles::Entity::find()
        .select_only()
        .column(user_system_roles::Column::UserId)
        .filter(user_system_roles::Column::Role.eq("super_admin"))
        .lock_exclusive()
        .into_tuple()
        .all(transaction)
        .await
        .map_err(db)?;
    let user = users::Entity::find_by_id(id)
        .one(transaction)
        .await
        .map_err(db)?
        .ok_or(RepositoryError::NotFound)?;
    let others: Vec<Uuid> = grants.iter().copied().filter(|grant| *grant != id).collect();
    let other_active = if others.is_empty() {
        0
    } else {
        users::Entity::find()
            .filter(users::Column::Id.is_in(others))
            .filter(users::Column::Status.eq(STATUS_ACTIVE))
            .filter(users::Column::DeletedAt.is_null())
            .count(transaction)
            .await
            .map_err(db)? as usize
    };
    Ok((user, grants, other_active))
}

/// Inserts a new account with what `user` stores beside it (password history, mail token and
/// mail, a self-registration's first session) and its audit entry.
async fn insert_new_user(
    transaction: &sea_orm::DatabaseTransaction,
    user: NewUser,
    audit: &AuditEntry,
) -> Result<UserRecord, RepositoryError> {
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
        password_hash: Set(user.password_hash.clone()),
        pending_email: Set(None),
        display_name: Set(user.display_name),
        avatar_url: Set(None),
        locale: Set(user.locale.clone()),
        timezone: Set(None),
        status: Set("active".to_owned()),
        organization_id: Set(None),
        last_login_at: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(transaction)
    .await
    .map_err(db)?;
    if let Some(hash) = user.password_hash {
        remember_password(transaction, id, hash, now).await?;
    }
    insert_audit_entry(transaction, audit).await?;
    if let Some((token, mail)) = &user.mail {
        insert_email_token(transaction, id, token, now).await?;
        insert_mail(transaction, mail).await?;
    }
    if let Some(welcome) = user.welcome {
        insert_email_token(transaction, id, &welcome.verification, now).await?;
        insert_mail(transaction, &welcome.mail).await?;
        insert_session(transaction, welcome.session, welcome.refresh_token_hash).await?;
        insert_audit_entry(transaction, &welcome.session_audit).await?;
    }
    Ok(user_record(model))
}

impl Database {
    pub(crate) async fn export_user_as_system(&self, id: Uuid) -> Result<serde_json::Value, RepositoryError> {
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
        // Whether a second factor is on, never its secret or codes.
        let mfa = crate::entities::user_mfa::Entity::find_by_id(id)
            .one(connection)
            .await
            .map_err(db)?;
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
            "mfa": {
                "enabled": mfa.as_ref().is_some_and(|m| m.confirmed_at.is_some()),
                "method": mfa.as_ref().filter(|m| m.confirmed_at.is_some()).map(|_| "totp"),
                "enabledAt": mfa.as_ref().and_then(|m| m.confirmed_at),
            },
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

impl Database {
    pub(crate) async fn erase_user_as_system(
        &self,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let now = Utc::now();
        // The last unlocked super_admin stays: decided while every grant is locked.
        let (_, grants, other_active_super_admins) =
            claim_for_super_admin_rule(&transaction, id, now).await?;
        if grants.contains(&id) && other_active_super_admins == 0 {
            return Err(RepositoryError::Conflict(LAST_SUPER_ADMIN.to_owned()));
        }
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
        // Report schedules the account ran no longer act for anyone until someone saves them.
        crate::entities::report_schedules::Entity::update_many()
            .col_expr(
                crate::entities::report_schedules::Column::OwnerId,
                Expr::value(Option::<Uuid>::None),
            )
            .filter(crate::entities::report_schedules::Column::OwnerId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
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
        crate::mfa::erase_mfa(&transaction, id).await?;
        crate::mfa::erase_mfa_exemption(&transaction, id).await?;
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
}
