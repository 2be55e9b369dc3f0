//! Second-factor storage: TOTP enrollments, recovery codes and sign-in challenges. Every
//! "only once" rule (a TOTP step, a recovery code, a challenge) is one conditional UPDATE, so
//! two requests — on one instance or two — cannot both pass it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder,
};
use steward_domain::mfa::{AdminMfaFacts, MfaChallenge, MfaEnrollment, MfaExemption, MfaStore};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{
    instance_flags, mfa_challenges, mfa_exemptions, mfa_recovery_codes, user_mfa, user_system_roles,
};
use crate::error::db_err_to_repository as db;

fn enrollment(row: user_mfa::Model) -> MfaEnrollment {
    MfaEnrollment {
        user_id: row.user_id,
        secret_sealed: row.secret_sealed,
        confirmed_at: row.confirmed_at,
        last_used_step: row.last_used_step,
        created_at: row.created_at,
    }
}

async fn insert_codes(
    connection: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
    hashes: Vec<String>,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    mfa_recovery_codes::Entity::delete_many()
        .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
        .exec(connection)
        .await
        .map_err(db)?;
    if hashes.is_empty() {
        return Ok(());
    }
    mfa_recovery_codes::Entity::insert_many(hashes.into_iter().map(|hash| mfa_recovery_codes::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        code_hash: Set(hash),
        used_at: Set(None),
        created_at: Set(now),
    }))
    .exec_without_returning(connection)
    .await
    .map_err(db)?;
    Ok(())
}

/// Removes everything of an account's second factor (erasure, operator reset).
pub(crate) async fn erase_mfa(
    connection: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
) -> Result<u64, RepositoryError> {
    let removed = user_mfa::Entity::delete_many()
        .filter(user_mfa::Column::UserId.eq(user_id))
        .exec(connection)
        .await
        .map_err(db)?;
    mfa_recovery_codes::Entity::delete_many()
        .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
        .exec(connection)
        .await
        .map_err(db)?;
    mfa_challenges::Entity::delete_many()
        .filter(mfa_challenges::Column::UserId.eq(user_id))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(removed.rows_affected)
}

/// An erased account's exemption goes with it.
pub(crate) async fn erase_mfa_exemption(
    connection: &impl sea_orm::ConnectionTrait,
    user_id: Uuid,
) -> Result<(), RepositoryError> {
    mfa_exemptions::Entity::delete_many()
        .filter(mfa_exemptions::Column::UserId.eq(user_id))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(())
}

/// The flag holding when admin MFA enforcement was switched on (RFC 3339).
const ENFORCED_SINCE: &str = "admin_mfa_enforced_since";

fn exemption(row: mfa_exemptions::Model) -> MfaExemption {
    MfaExemption {
        user_id: row.user_id,
        reason: row.reason,
        expires_at: row.expires_at,
        created_by: row.created_by,
        created_at: row.created_at,
    }
}

impl MfaStore for Database {
    async fn mfa_enrollment(&self, user_id: Uuid) -> Result<Option<MfaEnrollment>, RepositoryError> {
        Ok(user_mfa::Entity::find_by_id(user_id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(enrollment))
    }

    async fn begin_mfa_enrollment(
        &self,
        user_id: Uuid,
        secret_sealed: String,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // A pending enrollment is replaced; a confirmed one stays and refuses.
        user_mfa::Entity::delete_many()
            .filter(user_mfa::Column::UserId.eq(user_id))
            .filter(user_mfa::Column::ConfirmedAt.is_null())
            .exec(&transaction)
            .await
            .map_err(db)?;
        let inserted = user_mfa::ActiveModel {
            user_id: Set(user_id),
            secret_sealed: Set(secret_sealed),
            confirmed_at: Set(None),
            last_used_step: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&transaction)
        .await;
        match inserted {
            Ok(_) => {}
            Err(error) => {
                return Err(match db(error) {
                    RepositoryError::Conflict(_) => {
                        RepositoryError::Conflict("a second factor is already enabled".to_owned())
                    }
                    other => other,
                });
            }
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn confirm_mfa_enrollment(
        &self,
        user_id: Uuid,
        secret_sealed: &str,
        step: i64,
        recovery_code_hashes: Vec<String>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let confirmed = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::ConfirmedAt, Expr::value(Some(now)))
            .col_expr(user_mfa::Column::LastUsedStep, Expr::value(Some(step)))
            .col_expr(user_mfa::Column::UpdatedAt, Expr::value(now))
            .filter(user_mfa::Column::UserId.eq(user_id))
            .filter(user_mfa::Column::ConfirmedAt.is_null())
            .filter(user_mfa::Column::SecretSealed.eq(secret_sealed))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if confirmed.rows_affected != 1 {
            return Ok(false);
        }
        insert_codes(&transaction, user_id, recovery_code_hashes, now).await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn claim_mfa_step(&self, user_id: Uuid, step: i64) -> Result<bool, RepositoryError> {
        let claimed = user_mfa::Entity::update_many()
            .col_expr(user_mfa::Column::LastUsedStep, Expr::value(Some(step)))
            .filter(user_mfa::Column::UserId.eq(user_id))
            .filter(user_mfa::Column::ConfirmedAt.is_not_null())
            .filter(
                Condition::any()
                    .add(user_mfa::Column::LastUsedStep.is_null())
                    .add(user_mfa::Column::LastUsedStep.lt(step)),
            )
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(claimed.rows_affected == 1)
    }

    async fn use_recovery_code(
        &self,
        user_id: Uuid,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        let used = mfa_recovery_codes::Entity::update_many()
            .col_expr(mfa_recovery_codes::Column::UsedAt, Expr::value(Some(now)))
            .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
            .filter(mfa_recovery_codes::Column::CodeHash.eq(code_hash))
            .filter(mfa_recovery_codes::Column::UsedAt.is_null())
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(used.rows_affected == 1)
    }

    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<u64, RepositoryError> {
        mfa_recovery_codes::Entity::find()
            .filter(mfa_recovery_codes::Column::UserId.eq(user_id))
            .filter(mfa_recovery_codes::Column::UsedAt.is_null())
            .count(self.connection())
            .await
            .map_err(db)
    }

    async fn replace_recovery_codes(
        &self,
        user_id: Uuid,
        code_hashes: Vec<String>,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        insert_codes(&transaction, user_id, code_hashes, now).await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn remove_mfa(&self, user_id: Uuid, audit: &AuditEntry) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        if erase_mfa(&transaction, user_id).await? == 0 {
            return Ok(false);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn admin_mfa_facts(&self, user_id: Uuid) -> Result<AdminMfaFacts, RepositoryError> {
        let connection = self.connection();
        let enrolled = user_mfa::Entity::find_by_id(user_id)
            .one(connection)
            .await
            .map_err(db)?
            .is_some_and(|row| row.confirmed_at.is_some());
        let exemption = mfa_exemptions::Entity::find_by_id(user_id)
            .one(connection)
            .await
            .map_err(db)?
            .map(exemption);
        let first_grant_at = user_system_roles::Entity::find()
            .filter(user_system_roles::Column::UserId.eq(user_id))
            .order_by_asc(user_system_roles::Column::GrantedAt)
            .one(connection)
            .await
            .map_err(db)?
            .map(|row| row.granted_at);
        Ok(AdminMfaFacts {
            enrolled,
            exemption,
            first_grant_at,
        })
    }

    async fn admin_mfa_enforced_since(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, RepositoryError> {
        let connection = self.connection();
        instance_flags::Entity::insert(instance_flags::ActiveModel {
            name: Set(ENFORCED_SINCE.to_owned()),
            value: Set(now.to_rfc3339()),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(instance_flags::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(connection)
        .await
        .map_err(db)?;
        let stored = instance_flags::Entity::find_by_id(ENFORCED_SINCE.to_owned())
            .one(connection)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        DateTime::parse_from_rfc3339(&stored.value)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|error| RepositoryError::Other(format!("{ENFORCED_SINCE}: {error}")))
    }

    async fn set_mfa_exemption(
        &self,
        exemption: &MfaExemption,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        mfa_exemptions::Entity::insert(mfa_exemptions::ActiveModel {
            user_id: Set(exemption.user_id),
            reason: Set(exemption.reason.clone()),
            expires_at: Set(exemption.expires_at),
            created_by: Set(exemption.created_by),
            created_at: Set(exemption.created_at),
        })
        .on_conflict(
            OnConflict::column(mfa_exemptions::Column::UserId)
                .update_columns([
                    mfa_exemptions::Column::Reason,
                    mfa_exemptions::Column::ExpiresAt,
                    mfa_exemptions::Column::CreatedBy,
                    mfa_exemptions::Column::CreatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn remove_mfa_exemption(&self, user_id: Uuid, audit: &AuditEntry) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let removed = mfa_exemptions::Entity::delete_many()
            .filter(mfa_exemptions::Column::UserId.eq(user_id))
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

    async fn create_mfa_challenge(
        &self,
        challenge: &MfaChallenge,
        token_hash: String,
    ) -> Result<(), RepositoryError> {
        let now = Utc::now();
        // Spent and expired challenges of the account go as a new one comes.
        mfa_challenges::Entity::delete_many()
            .filter(mfa_challenges::Column::UserId.eq(challenge.user_id))
            .filter(
                Condition::any()
                    .add(mfa_challenges::Column::UsedAt.is_not_null())
                    .add(mfa_challenges::Column::ExpiresAt.lte(now)),
            )
            .exec(self.writer())
            .await
            .map_err(db)?;
        mfa_challenges::ActiveModel {
            id: Set(challenge.id),
            user_id: Set(challenge.user_id),
            token_hash: Set(token_hash),
            expires_at: Set(challenge.expires_at),
            used_at: Set(None),
            created_at: Set(now),
        }
        .insert(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn find_mfa_challenge(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<MfaChallenge>, RepositoryError> {
        Ok(mfa_challenges::Entity::find()
            .filter(mfa_challenges::Column::TokenHash.eq(token_hash))
            .filter(mfa_challenges::Column::UsedAt.is_null())
            .filter(mfa_challenges::Column::ExpiresAt.gt(now))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(|row| MfaChallenge {
                id: row.id,
                user_id: row.user_id,
                expires_at: row.expires_at,
            }))
    }

    async fn spend_mfa_challenge(&self, id: Uuid, now: DateTime<Utc>) -> Result<bool, RepositoryError> {
        let spent = mfa_challenges::Entity::update_many()
            .col_expr(mfa_challenges::Column::UsedAt, Expr::value(Some(now)))
            .filter(mfa_challenges::Column::Id.eq(id))
            .filter(mfa_challenges::Column::UsedAt.is_null())
            .filter(mfa_challenges::Column::ExpiresAt.gt(now))
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(spent.rows_affected == 1)
    }
}
