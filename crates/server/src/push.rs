//! The push worker: delivers queued "your settings changed" notifications through FCM HTTP v1,
//! a webhook, or — with neither configured — the log; retries failures with backoff. The same
//! loop puts temporarily lifted locks back in force when their time is up.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use steward_api::metrics::{Channel, record_delivery};
use steward_domain::settings::store::{DeviceSettingsStore, PushNotification, PushQueue};
use steward_persistence::Database;
use tokio::sync::Mutex;

/// Attempts before a notification is given up (`failed`, listed by the admin API).
const MAX_ATTEMPTS: i32 = 8;
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// The fields of a Google service-account key file FCM needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceAccount {
    pub project_id: String,
    pub client_email: String,
    pub private_key: String,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".to_owned()
}

/// Why one delivery failed, and whether trying again may help.
#[derive(Debug)]
pub struct DeliveryError {
    pub message: String,
    pub retry: bool,
}

fn retryable(message: impl Into<String>) -> DeliveryError {
    DeliveryError {
        message: message.into(),
        retry: true,
    }
}

fn permanent(message: impl Into<String>) -> DeliveryError {
    DeliveryError {
        message: message.into(),
        retry: false,
    }
}

pub struct FcmClient {
    account: ServiceAccount,
    endpoint: String,
    http: reqwest::Client,
    token: Mutex<Option<(String, chrono::DateTime<Utc>)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default = "an_hour")]
    expires_in: i64,
}

fn an_hour() -> i64 {
    3600
}

impl FcmClient {
    pub fn new(account: ServiceAccount, endpoint: String, http: reqwest::Client) -> Self {
        Self {
            account,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            http,
            token: Mutex::new(None),
        }
    }

    /// An OAuth access token for FCM, cached until a minute before it expires.
    async fn access_token(&self) -> Result<String, DeliveryError> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && *until > Utc::now()
        {
            return Ok(token.clone());
        }
        let now = Utc::now().timestamp();
        let assertion = steward_auth::service_account::service_account_assertion(
            &self.account.private_key,
            &self.account.client_email,
            FCM_SCOPE,
            &self.account.token_uri,
            now,
        )
        .map_err(|error| permanent(error.to_string()))?;
        let response = self
            .http
            .post(&self.account.token_uri)
            // A JWT is base64url and dots: nothing in it needs escaping.
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
            ))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|error| retryable(format!("token endpoint: {}", error.without_url())))?;
        if !response.status().is_success() {
            return Err(retryable(format!(
                "token endpoint answered {}",
                response.status()
            )));
        }
        let token: TokenResponse = response
            .json()
            .await
            .map_err(|error| retryable(format!("token endpoint: {}", error.without_url())))?;
        let until = Utc::now() + chrono::Duration::seconds((token.expires_in - 60).max(0));
        *cached = Some((token.access_token.clone(), until));
        Ok(token.access_token)
    }

    async fn send(&self, notification: &PushNotification, push_token: &str) -> Result<(), DeliveryError> {
        let access = self.access_token().await?;
        let url = format!(
            "{}/v1/projects/{}/messages:send",
            self.endpoint, self.account.project_id
        );
        // A data message: the app wakes up and syncs; nothing is shown to the user.
        let body = json!({"message": {
            "token": push_token,
            "data": {"type": "steward.settings", "reason": notification.reason, "deviceId": notification.device_id.to_string()},
            "android": {"priority": "high"},
            "apns": {"headers": {"apns-priority": "5", "apns-push-type": "background"},
                     "payload": {"aps": {"content-available": 1}}},
        }});
        let response = self
            .http
            .post(url)
            .bearer_auth(access)
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|error| retryable(format!("FCM: {}", error.without_url())))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            // The cached token was revoked or expired early: fetch a new one next time.
            *self.token.lock().await = None;
        }
        let detail = response.text().await.unwrap_or_default();
        let message = format!(
            "FCM answered {status}: {}",
            detail.chars().take(300).collect::<String>()
        );
        // 400 (bad token) and 404 (UNREGISTERED: the app was uninstalled) will not get better.
        if matches!(status.as_u16(), 400 | 404) {
            Err(permanent(message))
        } else {
            Err(retryable(message))
        }
    }
}

pub enum PushProvider {
    Fcm(FcmClient),
    Webhook {
        url: String,
        secret: Option<String>,
        http: reqwest::Client,
    },
    /// Nothing configured: notifications are logged (development).
    Log,
}

impl PushProvider {
    /// How pushes go out, as the health report names it.
    pub fn name(&self) -> &'static str {
        match self {
            PushProvider::Fcm(_) => "fcm",
            PushProvider::Webhook { .. } => "webhook",
            PushProvider::Log => "log",
        }
    }
}

impl PushProvider {
    async fn deliver(&self, notification: &PushNotification) -> Result<(), DeliveryError> {
        match self {
            PushProvider::Fcm(client) => {
                let token = notification
                    .push_token
                    .as_deref()
                    .ok_or_else(|| permanent("the device has no push token"))?;
                client.send(notification, token).await
            }
            PushProvider::Webhook { url, secret, http } => {
                let body = json!({
                    "notificationId": notification.id,
                    "deviceId": notification.device_id,
                    "reason": notification.reason,
                    "pushToken": notification.push_token,
                    "createdAt": notification.created_at,
                })
                .to_string();
                let mut request = http
                    .post(url)
                    .header("content-type", "application/json")
                    .timeout(Duration::from_secs(15));
                if let Some(secret) = secret {
                    request = request.header(
                        "x-steward-signature",
                        steward_auth::service_account::webhook_signature(secret.as_bytes(), body.as_bytes()),
                    );
                }
                let response = request
                    .body(body)
                    .send()
                    .await
                    .map_err(|error| retryable(format!("webhook: {}", error.without_url())))?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    Err(retryable(format!("webhook answered {}", response.status())))
                }
            }
            PushProvider::Log => {
                tracing::info!(device = %notification.device_id, reason = %notification.reason, "push (no provider configured)");
                Ok(())
            }
        }
    }
}

/// Seconds before attempt `n + 1`: 5 s, 10 s, 20 s … capped at 30 minutes.
fn backoff(attempts: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempts.clamp(0, 10)).unwrap_or(10);
    chrono::Duration::seconds((5_i64 * 2_i64.pow(exponent)).min(1800))
}

/// Delivers due notifications and returns expired temporary unlocks, every `interval`.
/// Notifications younger than `collapse` wait, so a burst of changes sends one push.
pub async fn run_push_worker(
    database: Database,
    provider: PushProvider,
    states: std::sync::Arc<steward_app::settings::DeviceStateCache>,
    interval: Duration,
    collapse: Duration,
    health: std::sync::Arc<steward_app::health::HealthBoard>,
) {
    let collapse = chrono::Duration::from_std(collapse).unwrap_or_default();
    let vitals = &health.vitals;
    vitals.push.set_transport(provider.name());
    vitals.start(steward_app::health::Worker::Push, interval);
    loop {
        match database.return_expired_locks(Utc::now()).await {
            // The devices' cached state is stale now.
            Ok(devices) => devices.into_iter().for_each(|device| states.forget(device)),
            Err(error) => tracing::warn!(%error, "could not return expired temporary unlocks"),
        }
        let due = database.due_pushes(Utc::now() - collapse, 50).await;
        // A pass counts when the outbox could be read.
        let read = due.is_ok();
        match due {
            Ok(notifications) => {
                for notification in notifications {
                    // Claimed one at a time, just before sending: another instance may have it.
                    let claim = match database.claim_push(&notification, Utc::now()).await {
                        Ok(Some(claim)) => claim,
                        Ok(None) => continue,
                        Err(error) => {
                            tracing::warn!(%error, "could not claim a push");
                            continue;
                        }
                    };
                    let delivered = provider.deliver(&notification).await;
                    match &delivered {
                        Ok(()) => vitals.push.attempted(None),
                        Err(error) => vitals
                            .push
                            .attempted(Some((error.message.as_str(), !error.retry))),
                    }
                    let recorded = match delivered {
                        Ok(()) => {
                            record_delivery(Channel::Push, "sent");
                            database.mark_push_sent(&claim, Utc::now()).await
                        }
                        Err(error) => {
                            let attempts = notification.attempts + 1;
                            let retry = (error.retry && attempts < MAX_ATTEMPTS)
                                .then(|| Utc::now() + backoff(attempts));
                            record_delivery(
                                Channel::Push,
                                if retry.is_some() { "failed" } else { "given_up" },
                            );
                            tracing::warn!(device = %notification.device_id, attempts, error = %error.message,
                                gives_up = retry.is_none(), "push delivery failed");
                            database.mark_push_failed(&claim, &error.message, retry).await
                        }
                    };
                    match recorded {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(push = %notification.id, "a push's claim lapsed before its outcome was recorded");
                        }
                        Err(error) => tracing::warn!(%error, "could not record a push delivery"),
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the push outbox"),
        }
        if read {
            vitals.beat(steward_app::health::Worker::Push);
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
        assert_eq!(backoff(20).num_seconds(), 1800);
    }

    #[test]
    fn service_accounts_default_the_token_uri() {
        let account: ServiceAccount = serde_json::from_str(
            r#"{"project_id":"p","client_email":"svc@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----"}"#,
        )
        .unwrap();
        assert_eq!(account.token_uri, "https://oauth2.googleapis.com/token");
    }
}
