//! The clean-up's queries: which rows of each table have ended, counted or deleted in batches
//! (`DELETE … WHERE id IN (SELECT id … LIMIT n)`), and the claim of a pass.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter};
use steward_domain::RepositoryError;
use steward_domain::maintenance::{CleanupTarget, MaintenanceStore};

use crate::database::Database;
use crate::entities::{
    allowlist_bypass_tokens, device_commands, device_transfers, email_tokens, group_invites, instance_flags,
    login_throttles, mfa_challenges, notification_counters, notifications, oidc_nonces, outbox_emails,
    push_notifications, quota_spends, refresh_tokens, user_sessions, webhook_deliveries,
};
use crate::error::db_err_to_repository as db;

/// The instance flag whose `updated_at` says when the last pass was claimed.
const PASS_FLAG: &str = "maintenance.last_pass";

macro_rules! count_and_delete {
    ($self:ident, $entity:ident, $key:expr, $condition:expr, $limit:expr, $count:expr) => {{
        let condition: Condition = $condition;
        if $count {
            $entity::Entity::find()
                .filter(condition)
                .count($self.connection())
                .await
                .map_err(db)
        } else {
            let doomed = Query::select()
                .column($key)
                .from($entity::Entity)
                .cond_where(condition)
                .limit($limit)
                .to_owned();
            Ok($entity::Entity::delete_many()
                .filter($key.in_subquery(doomed))
                .exec($self.connection())
                .await
                .map_err(db)?
                .rows_affected)
        }
    }};
}

impl Database {
    async fn expired(
        &self,
        target: CleanupTarget,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
        count: bool,
    ) -> Result<u64, RepositoryError> {
        match target {
            CleanupTarget::DeviceEvents => self.expired_device_events(cutoff, now, limit, count).await,
            CleanupTarget::DeviceEventBatches => self.expired_event_batches(cutoff, limit, count).await,
            CleanupTarget::Sessions => count_and_delete!(
                self,
                user_sessions,
                user_sessions::Column::Id,
                Condition::any()
                    .add(user_sessions::Column::RevokedAt.lt(cutoff))
                    .add(user_sessions::Column::ExpiresAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::RefreshTokens => count_and_delete!(
                self,
                refresh_tokens,
                refresh_tokens::Column::Id,
                Condition::all().add(refresh_tokens::Column::ExpiresAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::EmailTokens => count_and_delete!(
                self,
                email_tokens,
                email_tokens::Column::Id,
                Condition::any()
                    .add(email_tokens::Column::UsedAt.lt(cutoff))
                    .add(email_tokens::Column::ExpiresAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::Mails => count_and_delete!(
                self,
                outbox_emails,
                outbox_emails::Column::Id,
                Condition::any()
                    .add(
                        Condition::all()
                            .add(outbox_emails::Column::Status.eq("sent"))
                            .add(outbox_emails::Column::SentAt.lt(cutoff)),
                    )
                    .add(
                        Condition::all()
                            .add(outbox_emails::Column::Status.eq("failed"))
                            .add(outbox_emails::Column::CreatedAt.lt(cutoff)),
                    ),
                limit,
                count
            ),
            CleanupTarget::Pushes => count_and_delete!(
                self,
                push_notifications,
                push_notifications::Column::Id,
                Condition::any()
                    .add(
                        Condition::all()
                            .add(push_notifications::Column::Status.eq("sent"))
                            .add(push_notifications::Column::SentAt.lt(cutoff)),
                    )
                    .add(
                        Condition::all()
                            .add(push_notifications::Column::Status.eq("failed"))
                            .add(push_notifications::Column::CreatedAt.lt(cutoff)),
                    ),
                limit,
                count
            ),
            CleanupTarget::GroupInvites => count_and_delete!(
                self,
                group_invites,
                group_invites::Column::Id,
                Condition::any()
                    .add(group_invites::Column::ExpiresAt.lt(cutoff))
                    .add(group_invites::Column::RevokedAt.lt(cutoff))
                    .add(
                        Condition::all()
                            .add(
                                Expr::col(group_invites::Column::UseCount)
                                    .gte(Expr::col(group_invites::Column::MaxUses))
                            )
                            .add(group_invites::Column::CreatedAt.lt(cutoff)),
                    ),
                limit,
                count
            ),
            CleanupTarget::DeviceTransfers => count_and_delete!(
                self,
                device_transfers,
                device_transfers::Column::Id,
                Condition::any()
                    .add(device_transfers::Column::DecidedAt.lt(cutoff))
                    .add(device_transfers::Column::ExpiresAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::DeviceCommands => count_and_delete!(
                self,
                device_commands,
                device_commands::Column::Id,
                Condition::any()
                    .add(device_commands::Column::AcknowledgedAt.lt(cutoff))
                    .add(device_commands::Column::ExpiresAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::OidcNonces => count_and_delete!(
                self,
                oidc_nonces,
                oidc_nonces::Column::Id,
                Condition::all().add(oidc_nonces::Column::ExpiresAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::MfaChallenges => count_and_delete!(
                self,
                mfa_challenges,
                mfa_challenges::Column::Id,
                Condition::all().add(mfa_challenges::Column::ExpiresAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::LoginThrottles => count_and_delete!(
                self,
                login_throttles,
                login_throttles::Column::Email,
                Condition::all()
                    .add(login_throttles::Column::WindowStartedAt.lt(cutoff))
                    .add(login_throttles::Column::InFlight.lte(0))
                    .add(
                        Condition::any()
                            .add(login_throttles::Column::LockedUntil.is_null())
                            .add(login_throttles::Column::LockedUntil.lt(now)),
                    ),
                limit,
                count
            ),
            CleanupTarget::BypassTokens => count_and_delete!(
                self,
                allowlist_bypass_tokens,
                allowlist_bypass_tokens::Column::Id,
                Condition::any()
                    .add(allowlist_bypass_tokens::Column::ExpiresAt.lt(cutoff))
                    .add(allowlist_bypass_tokens::Column::RevokedAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::WebhookDeliveries => count_and_delete!(
                self,
                webhook_deliveries,
                webhook_deliveries::Column::Id,
                Condition::all()
                    .add(webhook_deliveries::Column::Status.is_in(["succeeded", "failed"]))
                    .add(webhook_deliveries::Column::FinishedAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::Notifications => count_and_delete!(
                self,
                notifications,
                notifications::Column::Id,
                Condition::all()
                    .add(notifications::Column::CreatedAt.lt(cutoff))
                    // Mailed first: a notification is never deleted before its mail is decided.
                    .add(notifications::Column::Mailed.eq(true)),
                limit,
                count
            ),
            CleanupTarget::QuotaSpends => count_and_delete!(
                self,
                quota_spends,
                quota_spends::Column::Id,
                Condition::all().add(quota_spends::Column::SpentAt.lt(cutoff)),
                limit,
                count
            ),
            CleanupTarget::NotificationCounters => count_and_delete!(
                self,
                notification_counters,
                notification_counters::Column::Id,
                Condition::all()
                    .add(notification_counters::Column::Since.lt(cutoff))
                    .add(notification_counters::Column::Rule.ne("admin_new_ip")),
                limit,
                count
            ),
        }
    }
}

impl MaintenanceStore for Database {
    async fn roll_up_audit_days(&self, until: DateTime<Utc>, max_days: u32) -> Result<u64, RepositoryError> {
        self.roll_up(until, max_days).await
    }

    async fn count_expired(
        &self,
        target: CleanupTarget,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        self.expired(target, cutoff, now, 0, true).await
    }

    async fn delete_expired(
        &self,
        target: CleanupTarget,
        cutoff: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<u64, RepositoryError> {
        self.expired(target, cutoff, now, limit, false).await
    }

    async fn claim_maintenance_pass(
        &self,
        now: DateTime<Utc>,
        every: Duration,
    ) -> Result<bool, RepositoryError> {
        instance_flags::Entity::insert(instance_flags::ActiveModel {
            name: Set(PASS_FLAG.to_owned()),
            value: Set(String::new()),
            updated_at: Set(DateTime::<Utc>::UNIX_EPOCH),
        })
        .on_conflict(
            OnConflict::column(instance_flags::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(self.writer())
        .await
        .map_err(db)?;
        let claimed = instance_flags::Entity::update_many()
            .col_expr(instance_flags::Column::UpdatedAt, Expr::value(now))
            .filter(instance_flags::Column::Name.eq(PASS_FLAG))
            .filter(instance_flags::Column::UpdatedAt.lte(now - every))
            .exec(self.writer())
            .await
            .map_err(db)?;
        Ok(claimed.rows_affected == 1)
    }
}
