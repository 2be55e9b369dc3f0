//! The push notification queue.

use super::*;
use steward_domain::settings::store::PushQueue;

impl PushQueue for Database {
    async fn enqueue_push(
        &self,
        device: Uuid,
        reason: &str,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // A write first (a no-op on the device's row): `enqueue` reads before it inserts, and a
        // deferred SQLite transaction that reads first cannot take the write lock while another
        // connection commits (SQLITE_BUSY at once, whatever the busy timeout).
        devices::Entity::update_many()
            .col_expr(devices::Column::UpdatedAt, Expr::col(devices::Column::UpdatedAt))
            .filter(devices::Column::Id.eq(device))
            .exec(&transaction)
            .await
            .map_err(db)?;
        enqueue(&transaction, device, reason, now).await?;
        insert_audit_entry(&transaction, &audit.clone().resource_id(device)).await?;
        transaction.commit().await.map_err(db)
    }
    async fn due_pushes(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<PushNotification>, RepositoryError> {
        let rows = push_notifications::Entity::find()
            .filter(push_notifications::Column::Status.eq("pending"))
            .filter(push_notifications::Column::NextAttemptAt.lte(now))
            .order_by_asc(push_notifications::Column::NextAttemptAt)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db)?;
        let tokens: std::collections::HashMap<Uuid, Option<String>> = devices::Entity::find()
            .filter(devices::Column::Id.is_in(rows.iter().map(|row| row.device_id)))
            .select_only()
            .column(devices::Column::Id)
            .column(devices::Column::PushToken)
            .into_tuple::<(Uuid, Option<String>)>()
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .collect();
        Ok(rows
            .into_iter()
            .map(|row| {
                let token = tokens.get(&row.device_id).cloned().flatten();
                push(row, token)
            })
            .collect())
    }
    async fn claim_push(
        &self,
        push: &PushNotification,
        now: DateTime<Utc>,
    ) -> Result<Option<steward_domain::accounts::QueueClaim>, RepositoryError> {
        crate::queue::claim::<push_notifications::Entity>(
            self.connection(),
            push.id,
            push.next_attempt_at,
            now,
        )
        .await
    }

    async fn mark_push_sent(
        &self,
        claim: &steward_domain::accounts::QueueClaim,
        now: DateTime<Utc>,
    ) -> Result<bool, RepositoryError> {
        crate::queue::mark_sent::<push_notifications::Entity>(self.connection(), claim, now).await
    }

    async fn mark_push_failed(
        &self,
        claim: &steward_domain::accounts::QueueClaim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, RepositoryError> {
        crate::queue::mark_failed::<push_notifications::Entity>(self.connection(), claim, error, retry_at)
            .await
    }

    async fn push_notifications(
        &self,
        status: Option<&str>,
        limit: u64,
    ) -> Result<Vec<PushNotification>, RepositoryError> {
        let mut query = push_notifications::Entity::find();
        if let Some(status) = status {
            query = query.filter(push_notifications::Column::Status.eq(status));
        }
        Ok(query
            .order_by_desc(push_notifications::Column::CreatedAt)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| push(row, None))
            .collect())
    }
}
