//! The event outbox, webhook subscriptions and their deliveries.
//!
//! Claims are conditional statements: an outbox event or a delivery is held by one claimant
//! under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLite has one writer), and its
//! completion only counts while the claimant still holds it, so two instances never fan one
//! event out twice nor record one attempt twice.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseBackend,
    EntityTrait, ExprTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Statement,
};
use serde_json::json;
use steward_domain::events::webhooks::{
    AttemptResult, DISABLE_AFTER_FAILURES, DeliveryRecord, DeliveryStatus, DueDelivery, EventPatterns,
    FanOut, MAX_WEBHOOKS_PER_SCOPE, WebhookFilter, WebhookRecord, WebhookStore,
};
use steward_domain::{
    Actor, ActorKind, AuditAction, AuditEntry, PageRequest, RepositoryError, RequestOrigin,
};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{audit_logs, event_outbox, org_users, user_system_roles, webhook_deliveries, webhooks};
use crate::error::db_err_to_repository as db;

pub(crate) fn webhook(row: webhooks::Model) -> Result<WebhookRecord, RepositoryError> {
    let events: Vec<String> = serde_json::from_value(row.events)
        .map_err(|error| RepositoryError::Other(format!("webhook {} events: {error}", row.id)))?;
    Ok(WebhookRecord {
        id: row.id,
        organization_id: row.organization_id,
        url: row.url,
        description: row.description,
        events: EventPatterns::stored(events),
        secret_sealed: row.secret_sealed,
        previous_secret_sealed: row.previous_secret_sealed,
        previous_secret_until: row.previous_secret_until,
        enabled: row.enabled,
        consecutive_failures: row.consecutive_failures,
        disabled_reason: row.disabled_reason,
        created_by: row.created_by,
        personal_user_id: row.personal_user_id,
        created_at: row.created_at,
        updated_at: row.updated_at,
        version: row.version,
    })
}

pub(crate) fn webhook_row(webhook: &WebhookRecord) -> webhooks::ActiveModel {
    webhooks::ActiveModel {
        id: Set(webhook.id),
        organization_id: Set(webhook.organization_id),
        url: Set(webhook.url.clone()),
        description: Set(webhook.description.clone()),
        events: Set(json!(webhook.events.as_slice())),
        secret_sealed: Set(webhook.secret_sealed.clone()),
        previous_secret_sealed: Set(webhook.previous_secret_sealed.clone()),
        previous_secret_until: Set(webhook.previous_secret_until),
        enabled: Set(webhook.enabled),
        consecutive_failures: Set(webhook.consecutive_failures),
        disabled_reason: Set(webhook.disabled_reason.clone()),
        created_by: Set(webhook.created_by),
        personal_user_id: Set(webhook.personal_user_id),
        created_at: Set(webhook.created_at),
        updated_at: Set(webhook.updated_at),
        version: Set(webhook.version),
    }
}

fn delivery(row: webhook_deliveries::Model) -> Result<DeliveryRecord, RepositoryError> {
    Ok(DeliveryRecord {
        id: row.id,
        webhook_id: row.webhook_id,
        event_id: row.event_id,
        event_type: row.event_type,
        payload: row.payload,
        status: DeliveryStatus::parse(&row.status)
            .ok_or_else(|| RepositoryError::Other(format!("unknown delivery status {:?}", row.status)))?,
        attempts: row.attempts,
        next_attempt_at: row.next_attempt_at,
        response_status: row.response_status,
        response_excerpt: row.response_excerpt,
        latency_ms: row.latency_ms,
        last_error: row.last_error,
        redelivery_of: row.redelivery_of,
        created_at: row.created_at,
        finished_at: row.finished_at,
    })
}

pub(crate) fn delivery_row(delivery: &DeliveryRecord) -> webhook_deliveries::ActiveModel {
    webhook_deliveries::ActiveModel {
        id: Set(delivery.id),
        webhook_id: Set(delivery.webhook_id),
        event_id: Set(delivery.event_id),
        event_type: Set(delivery.event_type.clone()),
        payload: Set(delivery.payload.clone()),
        status: Set(delivery.status.as_str().to_owned()),
        attempts: Set(delivery.attempts),
        next_attempt_at: Set(delivery.next_attempt_at),
        claimed_by: Set(None),
        lease_until: Set(None),
        response_status: Set(delivery.response_status),
        response_excerpt: Set(delivery.response_excerpt.clone()),
        latency_ms: Set(delivery.latency_ms),
        last_error: Set(delivery.last_error.clone()),
        redelivery_of: Set(delivery.redelivery_of),
        created_at: Set(delivery.created_at),
        finished_at: Set(delivery.finished_at),
    }
}

/// An audit row as the entry that was written.
pub(crate) fn audit_entry(row: audit_logs::Model) -> Result<AuditEntry, RepositoryError> {
    Ok(AuditEntry {
        id: row.id,
        occurred_at: row.occurred_at,
        actor: Actor {
            kind: ActorKind::parse(&row.actor_kind)
                .ok_or_else(|| RepositoryError::Other(format!("unknown actor kind {:?}", row.actor_kind)))?,
            id: row.actor_id,
        },
        action: AuditAction::parse(row.action).map_err(|error| RepositoryError::Other(error.to_string()))?,
        resource_type: row.resource_type,
        resource_id: row.resource_id,
        organization_id: row.organization_id,
        before: row.before,
        after: row.after,
        origin: RequestOrigin {
            ip_address: row.ip_address,
            user_agent: row.user_agent,
            request_id: row.request_id,
            ..RequestOrigin::default()
        },
    })
}

fn claim_events_sql(backend: DatabaseBackend) -> &'static str {
    match backend {
        DatabaseBackend::Postgres => {
            r#"UPDATE "event_outbox" SET "claimed_by" = $1, "lease_until" = $2
               WHERE "audit_id" IN (
                 SELECT "audit_id" FROM "event_outbox"
                 WHERE "lease_until" IS NULL OR "lease_until" < $3
                 ORDER BY "occurred_at", "audit_id" LIMIT $4
                 FOR UPDATE SKIP LOCKED)
               RETURNING "audit_id""#
        }
        _ => {
            r#"UPDATE "event_outbox" SET "claimed_by" = ?1, "lease_until" = ?2
               WHERE "audit_id" IN (
                 SELECT "audit_id" FROM "event_outbox"
                 WHERE "lease_until" IS NULL OR "lease_until" < ?3
                 ORDER BY "occurred_at", "audit_id" LIMIT ?4)
               RETURNING "audit_id""#
        }
    }
}

/// Claims due deliveries: each subscription with due ones, oldest first, gets up to its share
/// (`per_subscription` less what it has in flight), until `limit`. Every step is an indexed
/// read (in flight by `lease_until`, due by subscription and time), so a claim costs the same
/// however long the backlog; PostgreSQL skips rows another instance is claiming, SQLite's
/// writer holds the database for the transaction.
async fn claim_due(
    database: &Database,
    claimant: Uuid,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u64,
    per_subscription: u64,
) -> Result<Vec<Uuid>, RepositoryError> {
    if database.backend() == crate::Backend::Sqlite {
        // SQLite: chosen on a read outside the one write lock, then claimed by one conditional
        // UPDATE (a row another claim took meanwhile is not taken again), so a claim holds the
        // lock for one statement instead of five.
        let chosen = choose_due(database.connection(), now, limit, per_subscription, false).await?;
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let transaction = database.begin_write().await.map_err(db)?;
        let claimed = webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::ClaimedBy, Expr::value(Some(claimant)))
            .col_expr(
                webhook_deliveries::Column::LeaseUntil,
                Expr::value(Some(lease_until)),
            )
            .filter(webhook_deliveries::Column::Id.is_in(chosen))
            .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            // Still due: a failure recorded meanwhile set its next attempt later.
            .filter(webhook_deliveries::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(webhook_deliveries::Column::LeaseUntil.is_null())
                    .add(webhook_deliveries::Column::LeaseUntil.lt(now)),
            )
            .exec_with_returning(&transaction)
            .await
            .map_err(db)?;
        transaction.commit().await.map_err(db)?;
        return Ok(claimed.into_iter().map(|row| row.id).collect());
    }
    let transaction = database.begin_write().await.map_err(db)?;
    let chosen = choose_due(&transaction, now, limit, per_subscription, true).await?;
    if chosen.is_empty() {
        transaction.commit().await.map_err(db)?;
        return Ok(Vec::new());
    }
    webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::ClaimedBy, Expr::value(Some(claimant)))
        .col_expr(
            webhook_deliveries::Column::LeaseUntil,
            Expr::value(Some(lease_until)),
        )
        .filter(webhook_deliveries::Column::Id.is_in(chosen.clone()))
        .exec(&transaction)
        .await
        .map_err(db)?;
    transaction.commit().await.map_err(db)?;
    Ok(chosen)
}

/// Which due deliveries to claim: the longest-waiting subscriptions first, each up to its share
/// less what it has in flight (`lock`: PostgreSQL's `FOR UPDATE SKIP LOCKED` on the rows).
async fn choose_due(
    transaction: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
    per_subscription: u64,
    lock: bool,
) -> Result<Vec<Uuid>, RepositoryError> {
    let pending = DeliveryStatus::Pending.as_str();
    let flying: std::collections::HashMap<Uuid, i64> = webhook_deliveries::Entity::find()
        .select_only()
        .column(webhook_deliveries::Column::WebhookId)
        .column_as(webhook_deliveries::Column::Id.count(), "n")
        .filter(webhook_deliveries::Column::LeaseUntil.gte(now))
        .filter(webhook_deliveries::Column::Status.eq(pending))
        .group_by(webhook_deliveries::Column::WebhookId)
        .into_tuple::<(Uuid, i64)>()
        .all(transaction)
        .await
        .map_err(db)?
        .into_iter()
        .collect();
    let enabled: std::collections::HashSet<Uuid> = webhooks::Entity::find()
        .select_only()
        .column(webhooks::Column::Id)
        .filter(webhooks::Column::Enabled.eq(true))
        .into_tuple::<Uuid>()
        .all(transaction)
        .await
        .map_err(db)?
        .into_iter()
        .collect();
    // Subscriptions with due deliveries, the longest waiting first.
    let waiting: Vec<(Uuid, Option<DateTime<Utc>>)> = webhook_deliveries::Entity::find()
        .select_only()
        .column(webhook_deliveries::Column::WebhookId)
        .column_as(webhook_deliveries::Column::NextAttemptAt.min(), "oldest")
        .filter(webhook_deliveries::Column::Status.eq(pending))
        .filter(webhook_deliveries::Column::NextAttemptAt.lte(now))
        .group_by(webhook_deliveries::Column::WebhookId)
        .into_tuple()
        .all(transaction)
        .await
        .map_err(db)?;
    let mut waiting: Vec<(Uuid, Option<DateTime<Utc>>)> = waiting
        .into_iter()
        .filter(|(hook, _)| enabled.contains(hook))
        .collect();
    waiting.sort_by_key(|(_, oldest)| *oldest);
    let mut chosen = Vec::new();
    for (hook, _) in waiting {
        let left = limit.saturating_sub(u64::try_from(chosen.len()).unwrap_or(u64::MAX));
        let share = Ord::min(
            per_subscription
                .saturating_sub(u64::try_from(flying.get(&hook).copied().unwrap_or(0)).unwrap_or(0)),
            left,
        );
        if share == 0 {
            if left == 0 {
                break;
            }
            continue;
        }
        let mut select = webhook_deliveries::Entity::find()
            .select_only()
            .column(webhook_deliveries::Column::Id)
            .filter(webhook_deliveries::Column::WebhookId.eq(hook))
            .filter(webhook_deliveries::Column::Status.eq(pending))
            .filter(webhook_deliveries::Column::NextAttemptAt.lte(now))
            .filter(
                Condition::any()
                    .add(webhook_deliveries::Column::LeaseUntil.is_null())
                    .add(webhook_deliveries::Column::LeaseUntil.lt(now)),
            )
            .order_by_asc(webhook_deliveries::Column::NextAttemptAt)
            .order_by_asc(webhook_deliveries::Column::Id)
            .limit(share);
        if lock {
            select = select.lock_with_behavior(
                sea_orm::sea_query::LockType::Update,
                sea_orm::sea_query::LockBehavior::SkipLocked,
            );
        }
        chosen.extend(select.into_tuple::<Uuid>().all(transaction).await.map_err(db)?);
    }
    Ok(chosen)
}

async fn claimed_ids(
    connection: &impl ConnectionTrait,
    sql: &str,
    column: &str,
    values: Vec<sea_orm::Value>,
) -> Result<Vec<Uuid>, RepositoryError> {
    let backend = connection.get_database_backend();
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(db)?;
    rows.iter()
        .map(|row| row.try_get::<Uuid>("", column).map_err(db))
        .collect()
}

/// Fails the pending deliveries of a subscription that no longer takes them.
pub(crate) async fn fail_pending(
    connection: &impl ConnectionTrait,
    webhook: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::Status,
            Expr::value(DeliveryStatus::Failed.as_str()),
        )
        .col_expr(
            webhook_deliveries::Column::LastError,
            Expr::value(Some(reason.to_owned())),
        )
        .col_expr(webhook_deliveries::Column::FinishedAt, Expr::value(Some(now)))
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .filter(webhook_deliveries::Column::WebhookId.eq(webhook))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(())
}

/// The reason Steward gives when it turns off a subscription whose creator left.
const ORPHANED: &str = "turned off by Steward: its creator no longer manages it";

/// Turns off subscriptions whose creator holds no system role and, for an organization's, is
/// no longer its owner or admin; fails their pending deliveries and audits `webhook.disabled`.
async fn disable_orphaned(connection: &impl ConnectionTrait) -> Result<(), RepositoryError> {
    let manages = Query::select()
        .expr(Expr::val(1))
        .from(org_users::Entity)
        .and_where(
            Expr::col((org_users::Entity, org_users::Column::OrganizationId))
                .equals((webhooks::Entity, webhooks::Column::OrganizationId)),
        )
        .and_where(
            Expr::col((org_users::Entity, org_users::Column::UserId))
                .equals((webhooks::Entity, webhooks::Column::CreatedBy)),
        )
        .and_where(Expr::col((org_users::Entity, org_users::Column::Role)).is_in(["owner", "admin"]))
        .to_owned();
    let holds_role = Query::select()
        .expr(Expr::val(1))
        .from(user_system_roles::Entity)
        .and_where(
            Expr::col((user_system_roles::Entity, user_system_roles::Column::UserId))
                .equals((webhooks::Entity, webhooks::Column::CreatedBy)),
        )
        .to_owned();
    let orphaned = webhooks::Entity::find()
        .filter(webhooks::Column::Enabled.eq(true))
        .filter(webhooks::Column::PersonalUserId.is_null())
        .filter(Expr::exists(holds_role).not())
        .filter(
            Condition::any()
                .add(webhooks::Column::OrganizationId.is_null())
                .add(Expr::exists(manages).not()),
        )
        .all(connection)
        .await
        .map_err(db)?;
    let now = Utc::now();
    for hook in orphaned {
        webhooks::Entity::update_many()
            .col_expr(webhooks::Column::Enabled, Expr::value(false))
            .col_expr(
                webhooks::Column::DisabledReason,
                Expr::value(Some(ORPHANED.to_owned())),
            )
            .col_expr(
                webhooks::Column::Version,
                Expr::col(webhooks::Column::Version).add(1),
            )
            .col_expr(webhooks::Column::UpdatedAt, Expr::value(now))
            .filter(webhooks::Column::Id.eq(hook.id))
            .exec(connection)
            .await
            .map_err(db)?;
        fail_pending(connection, hook.id, "the subscription was turned off", now).await?;
        let mut entry = AuditEntry::new(Actor::system(), AuditAction::known("webhook.disabled"), "webhook")
            .resource_id(hook.id)
            .change(
                Some(json!({"enabled": true})),
                Some(json!({"enabled": false, "url": hook.url, "createdBy": hook.created_by, "reason": ORPHANED})),
            );
        if let Some(organization) = hook.organization_id {
            entry = entry.organization(organization);
        }
        insert_audit_entry(connection, &entry).await?;
    }
    Ok(())
}

/// Records answered attempts in three statements for the lot (the common case, and the one a
/// busy instance records hundreds of per second): each delivery ends `succeeded` with its own
/// answer, and its subscription's failure count goes back to 0.
async fn record_successes(
    transaction: &impl ConnectionTrait,
    claimant: Uuid,
    results: &[&(Uuid, AttemptResult)],
) -> Result<(), RepositoryError> {
    use sea_orm::sea_query::CaseStatement;
    if results.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = results.iter().map(|(id, _)| *id).collect();
    let (mut status, mut excerpt, mut latency, mut finished) = (
        CaseStatement::new(),
        CaseStatement::new(),
        CaseStatement::new(),
        CaseStatement::new(),
    );
    for (id, result) in results {
        let this = || Expr::col(webhook_deliveries::Column::Id).eq(*id);
        status = status.case(this(), Expr::val(result.response_status));
        excerpt = excerpt.case(this(), Expr::val(result.response_excerpt.clone()));
        latency = latency.case(this(), Expr::val(result.latency_ms));
        finished = finished.case(this(), Expr::val(result.at));
    }
    // The subscriptions of the deliveries still ours (one whose lease ran out and another
    // instance took over is left alone, and says nothing about its subscription here).
    let hooks: Vec<Uuid> = webhook_deliveries::Entity::find()
        .select_only()
        .column(webhook_deliveries::Column::WebhookId)
        .distinct()
        .filter(webhook_deliveries::Column::Id.is_in(ids.clone()))
        .filter(webhook_deliveries::Column::ClaimedBy.eq(claimant))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .into_tuple()
        .all(transaction)
        .await
        .map_err(db)?;
    if hooks.is_empty() {
        return Ok(());
    }
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::Status,
            Expr::value(DeliveryStatus::Succeeded.as_str()),
        )
        .col_expr(
            webhook_deliveries::Column::Attempts,
            Expr::col(webhook_deliveries::Column::Attempts).add(1),
        )
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_deliveries::Column::ClaimedBy,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            webhook_deliveries::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(webhook_deliveries::Column::ResponseStatus, status.into())
        .col_expr(webhook_deliveries::Column::ResponseExcerpt, excerpt.into())
        .col_expr(webhook_deliveries::Column::LatencyMs, latency.into())
        .col_expr(
            webhook_deliveries::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .col_expr(webhook_deliveries::Column::FinishedAt, finished.into())
        .filter(webhook_deliveries::Column::Id.is_in(ids))
        // Not ours any more (the lease ran out and another instance took it over): left alone.
        .filter(webhook_deliveries::Column::ClaimedBy.eq(claimant))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(transaction)
        .await
        .map_err(db)?;
    // The receiver answered: its subscription's run of failures is over.
    webhooks::Entity::update_many()
        .col_expr(webhooks::Column::ConsecutiveFailures, Expr::value(0))
        .filter(webhooks::Column::Id.is_in(hooks))
        .filter(webhooks::Column::ConsecutiveFailures.ne(0))
        .exec(transaction)
        .await
        .map_err(db)?;
    Ok(())
}

/// Records one attempt of a delivery `claimant` holds (nothing when it no longer holds it).
async fn record_attempt(
    transaction: &impl ConnectionTrait,
    claimant: Uuid,
    id: Uuid,
    result: &AttemptResult,
) -> Result<(), RepositoryError> {
    let status = match (&result.error, result.retry_at) {
        (None, _) => DeliveryStatus::Succeeded,
        (Some(_), Some(_)) => DeliveryStatus::Pending,
        (Some(_), None) => DeliveryStatus::Failed,
    };
    let finished = (status != DeliveryStatus::Pending).then_some(result.at);
    let recorded = webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value(status.as_str()))
        .col_expr(
            webhook_deliveries::Column::Attempts,
            Expr::col(webhook_deliveries::Column::Attempts).add(1),
        )
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(result.retry_at),
        )
        .col_expr(
            webhook_deliveries::Column::ClaimedBy,
            Expr::value(Option::<Uuid>::None),
        )
        .col_expr(
            webhook_deliveries::Column::LeaseUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            webhook_deliveries::Column::ResponseStatus,
            Expr::value(result.response_status),
        )
        .col_expr(
            webhook_deliveries::Column::ResponseExcerpt,
            Expr::value(result.response_excerpt.clone()),
        )
        .col_expr(
            webhook_deliveries::Column::LatencyMs,
            Expr::value(Some(result.latency_ms)),
        )
        .col_expr(
            webhook_deliveries::Column::LastError,
            Expr::value(result.error.clone()),
        )
        .col_expr(webhook_deliveries::Column::FinishedAt, Expr::value(finished))
        .filter(webhook_deliveries::Column::Id.eq(id))
        .filter(webhook_deliveries::Column::ClaimedBy.eq(claimant))
        .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .exec(transaction)
        .await
        .map_err(db)?;
    if recorded.rows_affected == 0 {
        // Not ours any more (the lease ran out and another instance took it over).
        return Ok(());
    }
    let hook_id: Option<Uuid> = webhook_deliveries::Entity::find_by_id(id)
        .select_only()
        .column(webhook_deliveries::Column::WebhookId)
        .into_tuple()
        .one(transaction)
        .await
        .map_err(db)?;
    let Some(hook_id) = hook_id else {
        return Ok(());
    };
    match status {
        DeliveryStatus::Succeeded => {
            webhooks::Entity::update_many()
                .col_expr(webhooks::Column::ConsecutiveFailures, Expr::value(0))
                .filter(webhooks::Column::Id.eq(hook_id))
                .filter(webhooks::Column::ConsecutiveFailures.ne(0))
                .exec(transaction)
                .await
                .map_err(db)?;
        }
        DeliveryStatus::Failed => {
            webhooks::Entity::update_many()
                .col_expr(
                    webhooks::Column::ConsecutiveFailures,
                    Expr::col(webhooks::Column::ConsecutiveFailures).add(1),
                )
                .filter(webhooks::Column::Id.eq(hook_id))
                .exec(transaction)
                .await
                .map_err(db)?;
            let hook = webhooks::Entity::find_by_id(hook_id)
                .one(transaction)
                .await
                .map_err(db)?;
            if let Some(hook) = hook
                && hook.enabled
                && hook.consecutive_failures >= DISABLE_AFTER_FAILURES
            {
                let reason = format!(
                    "turned off by Steward after {} failed deliveries in a row",
                    hook.consecutive_failures
                );
                webhooks::Entity::update_many()
                    .col_expr(webhooks::Column::Enabled, Expr::value(false))
                    .col_expr(
                        webhooks::Column::DisabledReason,
                        Expr::value(Some(reason.clone())),
                    )
                    .col_expr(
                        webhooks::Column::Version,
                        Expr::col(webhooks::Column::Version).add(1),
                    )
                    .col_expr(webhooks::Column::UpdatedAt, Expr::value(result.at))
                    .filter(webhooks::Column::Id.eq(hook_id))
                    .exec(transaction)
                    .await
                    .map_err(db)?;
                fail_pending(transaction, hook_id, "the subscription was turned off", result.at).await?;
                let mut entry = AuditEntry::new(Actor::system(), AuditAction::known("webhook.disabled"), "webhook")
                    .resource_id(hook_id)
                    .change(
                        Some(json!({"enabled": true})),
                        Some(json!({"enabled": false, "url": hook.url, "consecutiveFailures": hook.consecutive_failures, "reason": reason})),
                    );
                if let Some(organization) = hook.organization_id {
                    entry = entry.organization(organization);
                }
                insert_audit_entry(transaction, &entry).await?;
            }
        }
        DeliveryStatus::Pending => {}
    }
    Ok(())
}

impl WebhookStore for Database {
    async fn create_webhook(
        &self,
        webhook: &WebhookRecord,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        // Creations take turns, so the cap holds however many race.
        let transaction = self.begin_turn("lock.webhooks").await?;
        let scope = match webhook.organization_id {
            Some(organization) => webhooks::Column::OrganizationId.eq(organization),
            None => webhooks::Column::OrganizationId.is_null(),
        };
        let existing = webhooks::Entity::find()
            .filter(scope)
            .filter(webhooks::Column::PersonalUserId.is_null())
            .count(&transaction)
            .await
            .map_err(db)?;
        if existing >= MAX_WEBHOOKS_PER_SCOPE {
            return Err(RepositoryError::Conflict(format!(
                "at most {MAX_WEBHOOKS_PER_SCOPE} webhook subscriptions per organization (and for the instance)"
            )));
        }
        webhook_row(webhook).insert(&transaction).await.map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn webhook(&self, id: Uuid) -> Result<Option<WebhookRecord>, RepositoryError> {
        webhooks::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(webhook)
            .transpose()
    }

    async fn webhooks(
        &self,
        filter: &WebhookFilter,
        page: PageRequest,
    ) -> Result<(Vec<WebhookRecord>, u64), RepositoryError> {
        let mut select = webhooks::Entity::find().filter(webhooks::Column::PersonalUserId.is_null());
        if let Some(organizations) = &filter.organizations {
            select = select.filter(webhooks::Column::OrganizationId.is_in(organizations.clone()));
        }
        if let Some(organization) = filter.organization {
            select = select.filter(webhooks::Column::OrganizationId.eq(organization));
        }
        let total = select.clone().count(self.connection()).await.map_err(db)?;
        let rows = select
            .order_by_desc(webhooks::Column::CreatedAt)
            .order_by_desc(webhooks::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok((rows.into_iter().map(webhook).collect::<Result<_, _>>()?, total))
    }

    async fn save_webhook(
        &self,
        record: &WebhookRecord,
        expected_version: i32,
        reset_failures: bool,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let mut row = webhook_row(record);
        row.id = sea_orm::ActiveValue::Unchanged(record.id);
        row.created_at = sea_orm::ActiveValue::NotSet;
        if !reset_failures {
            row.consecutive_failures = sea_orm::ActiveValue::NotSet;
        }
        let updated = webhooks::Entity::update_many()
            .set(row)
            .filter(webhooks::Column::Id.eq(record.id))
            .filter(webhooks::Column::Version.eq(expected_version))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if updated.rows_affected == 0 {
            let exists = webhooks::Entity::find_by_id(record.id)
                .count(&transaction)
                .await
                .map_err(db)?;
            return Err(if exists == 0 {
                RepositoryError::NotFound
            } else {
                RepositoryError::VersionConflict
            });
        }
        if !record.enabled {
            fail_pending(
                &transaction,
                record.id,
                "the subscription was turned off",
                Utc::now(),
            )
            .await?;
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn delete_webhook(&self, id: Uuid, audit: &AuditEntry) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        webhook_deliveries::Entity::delete_many()
            .filter(webhook_deliveries::Column::WebhookId.eq(id))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let deleted = webhooks::Entity::delete_by_id(id)
            .exec(&transaction)
            .await
            .map_err(db)?;
        if deleted.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn enabled_webhooks(&self) -> Result<Vec<WebhookRecord>, RepositoryError> {
        webhooks::Entity::find()
            .filter(webhooks::Column::Enabled.eq(true))
            .filter(webhooks::Column::PersonalUserId.is_null())
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(webhook)
            .collect()
    }

    async fn deliveries(
        &self,
        webhook: Uuid,
        status: Option<DeliveryStatus>,
        page: PageRequest,
    ) -> Result<(Vec<DeliveryRecord>, u64), RepositoryError> {
        let mut select =
            webhook_deliveries::Entity::find().filter(webhook_deliveries::Column::WebhookId.eq(webhook));
        if let Some(status) = status {
            select = select.filter(webhook_deliveries::Column::Status.eq(status.as_str()));
        }
        let total = select.clone().count(self.connection()).await.map_err(db)?;
        let rows = select
            .order_by_desc(webhook_deliveries::Column::CreatedAt)
            .order_by_desc(webhook_deliveries::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .all(self.connection())
            .await
            .map_err(db)?;
        Ok((rows.into_iter().map(delivery).collect::<Result<_, _>>()?, total))
    }

    async fn delivery(&self, id: Uuid) -> Result<Option<DeliveryRecord>, RepositoryError> {
        webhook_deliveries::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(delivery)
            .transpose()
    }

    async fn personal_webhook(&self, user: Uuid) -> Result<Option<WebhookRecord>, RepositoryError> {
        webhooks::Entity::find()
            .filter(webhooks::Column::PersonalUserId.eq(user))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(webhook)
            .transpose()
    }

    async fn enqueue_delivery(
        &self,
        record: &DeliveryRecord,
        audit: Option<&AuditEntry>,
    ) -> Result<(), RepositoryError> {
        // Reads, then writes: on SQLite the write lock is taken first (BEGIN IMMEDIATE).
        let transaction = self.begin_write().await.map_err(db)?;
        let exists = webhooks::Entity::find_by_id(record.webhook_id)
            .count(&transaction)
            .await
            .map_err(db)?;
        if exists == 0 {
            return Err(RepositoryError::NotFound);
        }
        delivery_row(record).insert(&transaction).await.map_err(db)?;
        if let Some(audit) = audit {
            insert_audit_entry(&transaction, audit).await?;
        }
        transaction.commit().await.map_err(db)
    }

    async fn claim_events(
        &self,
        claimant: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<AuditEntry>, RepositoryError> {
        // A read first: an idle instance polling an empty outbox takes no write lock.
        let waiting = event_outbox::Entity::find()
            .select_only()
            .column(event_outbox::Column::AuditId)
            .filter(
                Condition::any()
                    .add(event_outbox::Column::LeaseUntil.is_null())
                    .add(event_outbox::Column::LeaseUntil.lt(now)),
            )
            .into_tuple::<Uuid>()
            .one(self.connection())
            .await
            .map_err(db)?;
        if waiting.is_none() {
            return Ok(Vec::new());
        }
        let backend = self.connection().get_database_backend();
        let ids = claimed_ids(
            self.writer(),
            claim_events_sql(backend),
            "audit_id",
            vec![
                claimant.into(),
                lease_until.into(),
                now.into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        )
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut entries = Vec::with_capacity(ids.len());
        let mut unreadable = Vec::new();
        for chunk in ids.chunks(500) {
            let rows = audit_logs::Entity::find()
                .filter(audit_logs::Column::Id.is_in(chunk.to_vec()))
                .all(self.connection())
                .await
                .map_err(db)?;
            for row in rows {
                let id = row.id;
                match audit_entry(row) {
                    Ok(entry) => entries.push(entry),
                    Err(error) => {
                        // Announcing nothing beats announcing nothing ever again: one entry
                        // that does not read must not hold up every event after it.
                        tracing::error!(audit_entry = %id, %error, "an audit entry cannot be read as an event; it is not announced");
                        unreadable.push(id);
                    }
                }
            }
        }
        // An outbox row whose entry is gone (erased by retention) or unreadable has nothing to
        // announce: it leaves the outbox now.
        let found: std::collections::HashSet<Uuid> = entries.iter().map(|entry| entry.id).collect();
        let orphans: Vec<Uuid> = ids
            .into_iter()
            .filter(|id| !found.contains(id) || unreadable.contains(id))
            .collect();
        for chunk in orphans.chunks(500) {
            event_outbox::Entity::delete_many()
                .filter(event_outbox::Column::AuditId.is_in(chunk.to_vec()))
                .filter(event_outbox::Column::ClaimedBy.eq(claimant))
                .exec(self.writer())
                .await
                .map_err(db)?;
        }
        entries.sort_by_key(|entry| (entry.occurred_at, entry.id));
        Ok(entries)
    }

    async fn complete_events(&self, claimant: Uuid, fan_out: &FanOut) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let mut removed = 0;
        for chunk in fan_out.events.chunks(500) {
            removed += event_outbox::Entity::delete_many()
                .filter(event_outbox::Column::AuditId.is_in(chunk.to_vec()))
                .filter(event_outbox::Column::ClaimedBy.eq(claimant))
                .exec(&transaction)
                .await
                .map_err(db)?
                .rows_affected;
        }
        if removed != u64::try_from(fan_out.events.len()).unwrap_or(u64::MAX) {
            // Our lease ran out and someone else holds (or finished) some of them.
            transaction.rollback().await.map_err(db)?;
            return Ok(false);
        }
        disable_orphaned(&transaction).await?;
        // Subscriptions deleted or turned off since the fan-out read them get nothing.
        let mut wanted: Vec<Uuid> = fan_out
            .deliveries
            .iter()
            .map(|delivery| delivery.webhook_id)
            .collect();
        wanted.sort();
        wanted.dedup();
        let live: std::collections::HashSet<Uuid> = if wanted.is_empty() {
            Default::default()
        } else {
            webhooks::Entity::find()
                .select_only()
                .column(webhooks::Column::Id)
                .filter(webhooks::Column::Id.is_in(wanted))
                .filter(webhooks::Column::Enabled.eq(true))
                .into_tuple::<Uuid>()
                .all(&transaction)
                .await
                .map_err(db)?
                .into_iter()
                .collect()
        };
        let deliveries: Vec<&DeliveryRecord> = fan_out
            .deliveries
            .iter()
            .filter(|delivery| live.contains(&delivery.webhook_id))
            .collect();
        for chunk in deliveries.chunks(500) {
            webhook_deliveries::Entity::insert_many(chunk.iter().map(|delivery| delivery_row(delivery)))
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
        }
        crate::notifications::raise(&transaction, &fan_out.candidates).await?;
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn claim_deliveries(
        &self,
        claimant: Uuid,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u64,
        per_subscription: u64,
    ) -> Result<Vec<DueDelivery>, RepositoryError> {
        let due = webhook_deliveries::Entity::find()
            .select_only()
            .column(webhook_deliveries::Column::Id)
            .filter(webhook_deliveries::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(webhook_deliveries::Column::NextAttemptAt.lte(now))
            .into_tuple::<Uuid>()
            .one(self.connection())
            .await
            .map_err(db)?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let ids = claim_due(self, claimant, now, lease_until, limit, per_subscription).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::Id.is_in(ids))
            .order_by_asc(webhook_deliveries::Column::NextAttemptAt)
            .all(self.connection())
            .await
            .map_err(db)?;
        let hooks: Vec<Uuid> = rows.iter().map(|row| row.webhook_id).collect();
        let hooks: std::collections::HashMap<Uuid, webhooks::Model> = webhooks::Entity::find()
            .filter(webhooks::Column::Id.is_in(hooks))
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|hook| (hook.id, hook))
            .collect();
        let mut due = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(hook) = hooks.get(&row.webhook_id) else {
                continue;
            };
            let previous = hook
                .previous_secret_until
                .filter(|until| *until > now)
                .and(hook.previous_secret_sealed.clone());
            due.push(DueDelivery {
                organization_id: hook.organization_id,
                personal: hook.personal_user_id.is_some(),
                delivery: delivery(row)?,
                url: hook.url.clone(),
                secret_sealed: hook.secret_sealed.clone(),
                previous_secret_sealed: previous,
            });
        }
        Ok(due)
    }

    async fn finish_attempts(
        &self,
        claimant: Uuid,
        results: &[(Uuid, AttemptResult)],
    ) -> Result<(), RepositoryError> {
        // One transaction for a batch: on SQLite each write transaction is a turn of the one
        // writer, so recording them one by one would cost more than the deliveries themselves.
        let transaction = self.begin_write().await.map_err(db)?;
        let (succeeded, others): (Vec<_>, Vec<_>) =
            results.iter().partition(|(_, result)| result.error.is_none());
        // Failures first: a subscription answering within the batch ends it with its run of
        // failures reset, never counted up past an answer.
        for (id, result) in others {
            record_attempt(&transaction, claimant, *id, result).await?;
        }
        for chunk in succeeded.chunks(100) {
            record_successes(&transaction, claimant, chunk).await?;
        }
        transaction.commit().await.map_err(db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_written_for_each_backend() {
        assert!(claim_events_sql(DatabaseBackend::Postgres).contains("SKIP LOCKED"));
        assert!(claim_events_sql(DatabaseBackend::Sqlite).contains("?4"));
    }
}
