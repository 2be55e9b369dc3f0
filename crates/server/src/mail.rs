//! The mail outbox worker: sends queued mail over SMTP with retries, or — with no SMTP server
//! configured — writes it to the log and to `<data dir>/outbox/` so development needs no mail
//! server.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use steward_api::metrics::{Channel, record_delivery};
use steward_app::health::Worker;
use steward_domain::accounts::{Outbox, OutgoingEmail};
use steward_persistence::Database;

/// Attempts before a mail is given up (marked `failed`).
const MAX_ATTEMPTS: i32 = 8;

pub enum MailTransport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Directory(PathBuf),
}

impl MailTransport {
    pub fn from_config(smtp_url: Option<&str>, data_dir: &std::path::Path) -> Result<Self, String> {
        match smtp_url {
            Some(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|builder| MailTransport::Smtp(builder.timeout(Some(Duration::from_secs(15))).build()))
                .map_err(|error| format!("STEWARD_SMTP_URL: {error}")),
            None => Ok(MailTransport::Directory(data_dir.join("outbox"))),
        }
    }

    /// Sends `mail`; a failure says whether it is the message's own (a permanent refusal
    /// such as an unknown recipient, a message that cannot be built) rather than the channel's.
    async fn deliver(&self, from: &Mailbox, mail: &OutgoingEmail) -> Result<(), (String, bool)> {
        let message = message(from, mail).map_err(|error| (error, true))?;
        match self {
            MailTransport::Smtp(transport) => transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|error| (error.to_string(), error.is_permanent())),
            MailTransport::Directory(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|error| (error.to_string(), false))?;
                let path = dir.join(format!("{}.eml", mail.id));
                tokio::fs::write(&path, message.formatted())
                    .await
                    .map_err(|error| (error.to_string(), false))?;
                tracing::info!(
                    to = %mail.recipient,
                    subject = %mail.subject,
                    path = %path.display(),
                    body = %mail.body,
                    "no SMTP server configured: mail written to the outbox directory"
                );
                Ok(())
            }
        }
    }
}

/// `Content-Language` of a translated mail.
#[derive(Debug, Clone)]
struct ContentLanguage(String);

impl Header for ContentLanguage {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Content-Language")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(text.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe` (RFC 2369) of a mail a recipient may stop: the one-click address.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(text: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(text.trim_matches(['<', '>']).to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), format!("<{}>", self.0))
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): mail clients unsubscribe
/// with one `POST` to the `List-Unsubscribe` address.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}

/// The MIME message of an outbox entry: `multipart/alternative` (text, then HTML) or plain
/// text, inside `multipart/mixed` with the attachment when there is one, UTF-8, with a `Message-ID` made of the outbox id (the same on every retry, so a
/// receiving server can drop a duplicate) and the sender's domain.
fn message(from: &Mailbox, mail: &OutgoingEmail) -> Result<Message, String> {
    let to: Mailbox = mail
        .recipient
        .parse()
        .map_err(|error| format!("recipient: {error}"))?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .message_id(Some(format!("<{}@{}>", mail.id, from.email.domain())));
    if let Some(language) = mail
        .language
        .as_deref()
        .filter(|tag| tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        builder = builder.header(ContentLanguage(language.to_owned()));
    }
    if let Some(url) = mail
        .unsubscribe
        .as_deref()
        .filter(|url| url.starts_with("http") && !url.chars().any(|c| c.is_control() || c == '>' || c == ' '))
    {
        builder = builder
            .header(ListUnsubscribe(url.to_owned()))
            .header(ListUnsubscribePost);
    }
    let built = match (&mail.html, &mail.attachment) {
        (Some(html), None) => {
            builder.multipart(MultiPart::alternative_plain_html(mail.body.clone(), html.clone()))
        }
        (None, None) => builder.singlepart(SinglePart::plain(mail.body.clone())),
        (html, Some(file)) => {
            let content_type = ContentType::parse(&file.content_type).map_err(|error| error.to_string())?;
            let attached = Attachment::new(file.name.clone()).body(file.body.clone(), content_type);
            let mixed = match html {
                Some(html) => MultiPart::mixed()
                    .multipart(MultiPart::alternative_plain_html(mail.body.clone(), html.clone())),
                None => MultiPart::mixed().singlepart(SinglePart::plain(mail.body.clone())),
            };
            builder.multipart(mixed.singlepart(attached))
        }
    };
    built.map_err(|error| error.to_string())
}

/// Seconds to wait after the `attempts + 1`-th failure: 5 s, 10 s, 20 s … capped at 30 minutes.
fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    chrono::Duration::seconds((5_i64 * 2_i64.pow(exponent)).min(1800))
}

/// Delivers due mail forever, every `interval`.
pub async fn run_outbox(
    database: Database,
    transport: MailTransport,
    from: Mailbox,
    interval: Duration,
    health: std::sync::Arc<steward_app::health::HealthBoard>,
) {
    let vitals = &health.vitals;
    vitals.mail.set_transport(match transport {
        MailTransport::Smtp(_) => "smtp",
        MailTransport::Directory(_) => "directory",
    });
    vitals.start(Worker::Mail, interval);
    loop {
        let due = database.due_emails(Utc::now(), 20).await;
        // A pass counts when the outbox could be read.
        let read = due.is_ok();
        match due {
            Ok(mails) => {
                for mail in mails {
                    // Claimed one at a time, just before sending: another instance may have it.
                    let claim = match database.claim_email(&mail, Utc::now()).await {
                        Ok(Some(claim)) => claim,
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::warn!(%error, "could not claim a mail");
                            continue;
                        }
                    };
                    let result = transport.deliver(&from, &mail).await;
                    vitals.mail.attempted(
                        result
                            .as_ref()
                            .err()
                            .map(|(error, permanent)| (error.as_str(), *permanent)),
                    );
                    let result = result.map_err(|(error, _)| error);
                    let recorded = match result {
                        Ok(()) => {
                            record_delivery(Channel::Mail, "sent");
                            database.mark_sent(&claim, Utc::now()).await
                        }
                        Err(error) => {
                            let attempts = mail.attempts + 1;
                            let retry = (attempts < MAX_ATTEMPTS).then(|| Utc::now() + backoff(attempts - 1));
                            record_delivery(
                                Channel::Mail,
                                if retry.is_some() { "failed" } else { "given_up" },
                            );
                            tracing::warn!(to = %mail.recipient, attempts, %error, gives_up = retry.is_none(), "mail delivery failed");
                            database.mark_failed(&claim, &error, retry).await
                        }
                    };
                    match recorded {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(mail = %mail.id, "a mail's claim lapsed before its outcome was recorded");
                        }
                        Err(error) => tracing::warn!(%error, "could not record mail delivery"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the mail outbox"),
        }
        if read {
            vitals.beat(Worker::Mail);
        }
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_cap() {
        assert_eq!(backoff(1).num_seconds(), 10);
        assert_eq!(backoff(2).num_seconds(), 20);
        assert_eq!(backoff(20).num_seconds(), 1800);
    }
}
