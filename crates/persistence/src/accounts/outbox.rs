//! The email outbox.

use steward_domain::accounts::QueueClaim;

use super::*;

impl Outbox for Database {
    async fn enqueue_email(&self, mail: &OutgoingMail) -> Result<(), RepositoryError> {
        insert_mail(self.connection(), mail).await
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
                html: row.html_body,
                language: row.language,
                attachment: match (row.attachment_name, row.attachment_type, row.attachment_body) {
                    (Some(name), Some(content_type), Some(body)) => {
                        Some(steward_domain::accounts::MailAttachment {
                            name,
                            content_type,
                            body,
                        })
                    }
                    _ => None,
                },
                unsubscribe: row.unsubscribe_url,
                attempts: row.attempts,
                next_attempt_at: row.next_attempt_at,
            })
            .collect())
    }

    async fn claim_email(
        &self,
        mail: &OutgoingEmail,
        now: DateTime<Utc>,
    ) -> Result<Option<QueueClaim>, RepositoryError> {
        crate::queue::claim::<outbox_emails::Entity>(self.connection(), mail.id, mail.next_attempt_at, now)
            .await
    }

    async fn mark_sent(&self, claim: &QueueClaim, now: DateTime<Utc>) -> Result<bool, RepositoryError> {
        crate::queue::mark_sent::<outbox_emails::Entity>(self.connection(), claim, now).await
    }

    async fn mark_failed(
        &self,
        claim: &QueueClaim,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<bool, RepositoryError> {
        crate::queue::mark_failed::<outbox_emails::Entity>(self.connection(), claim, error, retry_at).await
    }
}

/// A mail for the background sender.
pub(crate) async fn insert_mail<C: ConnectionTrait>(
    connection: &C,
    mail: &OutgoingMail,
) -> Result<(), RepositoryError> {
    let now = Utc::now();
    outbox_emails::ActiveModel {
        id: Set(Uuid::now_v7()),
        recipient: Set(mail.recipient.clone()),
        subject: Set(mail.subject.clone()),
        body: Set(mail.body.clone()),
        html_body: Set(mail.html.clone()),
        language: Set(mail.language.clone()),
        attachment_name: Set(mail.attachment.as_ref().map(|file| file.name.clone())),
        attachment_type: Set(mail.attachment.as_ref().map(|file| file.content_type.clone())),
        attachment_body: Set(mail.attachment.as_ref().map(|file| file.body.clone())),
        unsubscribe_url: Set(mail.unsubscribe.clone()),
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
