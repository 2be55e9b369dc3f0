//! Delivery queues (the email outbox, the push queue) share their bookkeeping: a due row is
//! claimed before it is delivered (so that of several instances reading the queue at once only
//! one delivers it); a delivered row is marked sent; a failed one records its error and either
//! waits for its retry time or, out of retries, is marked failed.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, ExprTrait, QueryFilter};
use steward_domain::RepositoryError;
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
/// row is due again and another instance delivers it.
pub(crate) const CLAIM_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// Claims the due rows `seen` (id and the `next_attempt_at` read with it): a conditional UPDATE
/// moves each row's next attempt `CLAIM_LEASE` past `now` only if it is still pending at the
/// time that was read, so of two instances that read the same row only one wins it. Answers
/// the ids this caller won.
pub(crate) async fn claim<Q: DeliveryQueue>(
    connection: &impl ConnectionTrait,
    seen: &[(Uuid, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, RepositoryError> {
    let mut won = Vec::with_capacity(seen.len());
    for (id, next_attempt_at) in seen {
        let claimed = Q::update_many()
            .col_expr(Q::NEXT_ATTEMPT_AT, Expr::value(now + CLAIM_LEASE))
            .filter(Q::ID.eq(*id))
            .filter(Q::STATUS.eq("pending"))
            .filter(Q::NEXT_ATTEMPT_AT.eq(*next_attempt_at))
            .exec(connection)
            .await
            .map_err(db)?;
        if claimed.rows_affected == 1 {
            won.push(*id);
        }
    }
    Ok(won)
}

/// Row `id` was delivered at `now`.
pub(crate) async fn mark_sent<Q: DeliveryQueue>(
    connection: &impl ConnectionTrait,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), RepositoryError> {
    Q::update_many()
        .col_expr(Q::STATUS, Expr::value("sent"))
        .col_expr(Q::SENT_AT, Expr::value(Some(now)))
        .col_expr(Q::ATTEMPTS, Expr::col(Q::ATTEMPTS).add(1))
        .filter(Q::ID.eq(id))
        .exec(connection)
        .await
        .map_err(db)?;
    Ok(())
}

/// Row `id` failed with `error`: it is tried again at `retry_at`, or, without one, given up.
pub(crate) async fn mark_failed<Q: DeliveryQueue>(
    connection: &impl ConnectionTrait,
    id: Uuid,
    error: &str,
    retry_at: Option<DateTime<Utc>>,
) -> Result<(), RepositoryError> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let update = Q::update_many()
        .col_expr(Q::ATTEMPTS, Expr::col(Q::ATTEMPTS).add(1))
        .col_expr(Q::LAST_ERROR, Expr::value(Some(error)));
    let update = match retry_at {
        Some(at) => update.col_expr(Q::NEXT_ATTEMPT_AT, Expr::value(at)),
        None => update.col_expr(Q::STATUS, Expr::value("failed")),
    };
    update.filter(Q::ID.eq(id)).exec(connection).await.map_err(db)?;
    Ok(())
}
