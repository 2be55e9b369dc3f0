//! Delivery queues (the email outbox, the push queue) share their bookkeeping: a due row is
//! claimed before it is delivered (so that of several instances reading the queue at once only
//! one delivers it); a delivered row is marked sent; a failed one records its error and either
//! waits for its retry time or, out of retries, is marked failed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter};
use steward_domain::RepositoryError;
use steward_domain::accounts::QueueClaim;
use uuid::Uuid;

use crate::entities::{outbox_emails, push_notifications};
use crate::error::db_err_to_repository as db;

/// The longest error text a queue row keeps.
const MAX_ERROR_CHARS: usize = 1000;

/// A queue table: its columns by role.
pub(crate) trait DeliveryQueue: EntityTrait {
    const ID: Self::Column;
    const STATUS: Self::Column;
    const ATTEMPTS: Self::Column;
    const SENT_AT: Self::Column;
    const LAST_ERROR: Self::Column;
    const NEXT_ATTEMPT_AT: Self::Column;
}

impl DeliveryQueue for outbox_emails::Entity {
    const ID: Self::Column = outbox_emails::Column::Id;
    const STATUS: Self::Column = outbox_emails::Column::Status;
    const ATTEMPTS: Self::Column = outbox_emails::Column::Attempts;
    const SENT_AT: Self::Column = outbox_emails::Column::SentAt;
    const LAST_ERROR: Self::Column = outbox_emails::Column::LastError;
    const NEXT_ATTEMPT_AT: Self::Column = outbox_emails::Column::NextAttemptAt;
}

impl DeliveryQueue for push_notifications::Entity {
    const ID: Self::Column = push_notifications::Column::Id;
    const STATUS: Self::Column = push_notifications::Column::Status;
    const ATTEMPTS: Self::Column = push_notifications::Column::Attempts;
    const SENT_AT: Self::Column = push_notifications::Column::SentAt;
    const LAST_ERROR: Self::Column = push_notifications::Column::LastError;
    const NEXT_ATTEMPT_AT: Self::Column = push_notifications::Column::NextAttemptAt;
}

/// How long a claimed row is left to its claimer: past it (the claimer died mid-delivery), the
/// row is due again and another instance delivers it. A claim covers one delivery (a mail's
/// SMTP exchange, a push's token fetch and send), each bounded by timeouts far below this.
pub(crate) const CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// Claims row `id`, read as due at `seen`, for one delivery: a conditional UPDATE moves its next
/// attempt `CLAIM_LEASE` past `now` only if it is still pending at `seen`, so of two instances
/// that read the same row only one wins it. Answers the claim, or `None`.
pub(crate) async fn claim<Q: DeliveryQueue>(
    connection: &impl ConnectionTrait,
    id: Uuid,
    seen: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<QueueClaim>, RepositoryError> {
    let until = now + CLAIM_LEASE;
    let claimed = Q::update_many()
        .col_expr(Q::NEXT_ATTEMPT_AT, Expr::value(until))
        .filter(Q::ID.eq(id))
        .filter(Q::STATUS.eq("pending"))
        .filter(Q::NEXT_ATTEMPT_AT.eq(seen))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok((claimed.rows_affected == 1).then_some(QueueClaim { id, until }))
}

/// The claimed row was delivered at `now`; `false` when the claim had lapsed (another instance
/// holds the row, or it was recorded already).
pub(crate) async fn mark_sent<Q: DeliveryQueue>(
    connection: &impl ConnectionTrait,
    claim: &QueueClaim,
    now: DateTime<Utc>,
) -> Result<bool, RepositoryError> {
    let updated = Q::update_many()
        .col_expr(Q::STATUS, Expr::value("sent"))
        .col_expr(Q::SENT_AT, Expr::value(Some(now)))
        .col_expr(Q::ATTEMPTS, Expr::col(Q::ATTEMPTS).add(1))
        .filter(held::<Q>(claim))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(updated.rows_affected == 1)
}

/// The claimed row failed with `error`: it is tried again at `retry_at`, or, without one, given
/// up. `false` when the claim had lapsed.
pub(crate) async fn mark_failed<Q: DeliveryQueue>(
    connection: &impl ConnectionTrait,
    claim: &QueueClaim,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<bool, RepositoryError> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let update = Q::update_many()
        .col_expr(Q::ATTEMPTS, Expr::col(Q::ATTEMPTS).add(1))
        .col_expr(Q::LAST_ERROR, Expr::value(Some(error)));
    let update = match retry_at {
        Some(at) => update.col_expr(Q::NEXT_ATTEMPT_AT, Expr::value(at)),
        None => update.col_expr(Q::STATUS, Expr::value("failed")),
    };
    let updated = update
        .filter(held::<Q>(claim))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(updated.rows_affected == 1)
}

/// The row is still pending under this claim.
fn held<Q: DeliveryQueue>(claim: &QueueClaim) -> sea_orm::Condition {
    sea_orm::Condition::all()
        .add(Q::ID.eq(claim.id))
        .add(Q::STATUS.eq("pending"))
        .add(Q::NEXT_ATTEMPT_AT.eq(claim.until))
}
