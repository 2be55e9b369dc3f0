//! Posting one delivery: signed, with a time limit, never following redirects, never through a
//! proxy, only to addresses the outbound rules allow (host names are checked after they
//! resolve, so a name pointing at `127.0.0.1` or the cloud metadata address is refused), and
//! reading at most 64 KiB of the answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use steward_domain::events::webhooks::{MAX_RESPONSE_BYTES, OutboundRules};

/// The bytes of a delivery and where they go.
pub struct Outgoing<'a> {
    pub url: &'a str,
    pub delivery: uuid::Uuid,
    pub event_type: &'a str,
    pub body: &'a str,
    /// An organization's subscription: only the organizations' networks beyond the public
    /// internet.
    pub organization: bool,
    /// The current secret and, during a rotation's overlap, the previous one.
    pub secrets: Vec<String>,
}

/// How the receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: Option<u16>,
    pub excerpt: Option<String>,
    pub latency_ms: i64,
    /// Why it counts as failed; `None` for a 2xx.
    pub error: Option<String>,
}

/// `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, as receivers verify it.
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    steward_auth::service_account::webhook_signature(
        secret.as_bytes(),
        format!("{timestamp}.{body}").as_bytes(),
    )
}

/// Resolves host names and keeps only addresses the rules allow.
struct GuardedResolver {
    rules: Arc<OutboundRules>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = Arc::clone(&self.rules);
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // One answer whether the name does not resolve or resolves only to addresses
            // deliveries may not reach, so the delivery log cannot map internal names.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(Iterator::collect)
                .unwrap_or_default();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|address| rules.may_connect(address.ip()))
                .collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> =
                    format!("{host} does not resolve to an address deliveries may reach").into();
                return Err(refused);
            }
            let addresses: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addresses)
        })
    }
}

/// The HTTP clients deliveries go through: one for the instance's subscriptions, one for
/// organizations' (each resolving under its own rules).
#[derive(Clone)]
pub struct Sender {
    instance: reqwest::Client,
    organizations: reqwest::Client,
    rules: Arc<OutboundRules>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("rules", &self.rules).finish()
    }
}

fn client(rules: OutboundRules, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("Steward-Webhooks/", env!("CARGO_PKG_VERSION")))
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            rules: Arc::new(rules),
        }))
        .build()
        .map_err(|error| format!("webhook HTTP client: {error}"))
}

impl Sender {
    pub fn new(rules: OutboundRules, timeout: Duration) -> Result<Self, String> {
        Ok(Self {
            instance: client(rules.for_scope(false), timeout)?,
            organizations: client(rules.for_scope(true), timeout)?,
            rules: Arc::new(rules),
        })
    }

    pub fn rules(&self) -> &OutboundRules {
        &self.rules
    }

    /// Posts one delivery and reports how it went.
    pub async fn send(&self, outgoing: &Outgoing<'_>) -> Answer {
        let started = Instant::now();
        let elapsed = |started: Instant| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        // Addresses written in the URL never reach the resolver: check them here (the rules may
        // have changed since the subscription was saved).
        if let Err(error) = self
            .rules
            .for_scope(outgoing.organization)
            .check_url(outgoing.url)
        {
            return Answer {
                status: None,
                excerpt: None,
                latency_ms: 0,
                error: Some(format!("refused: {error}")),
            };
        }
        let timestamp = Utc::now().timestamp();
        let signatures: Vec<String> = outgoing
            .secrets
            .iter()
            .map(|secret| signature(secret, timestamp, outgoing.body))
            .collect();
        let client = if outgoing.organization {
            &self.organizations
        } else {
            &self.instance
        };
        let request = client
            .post(outgoing.url)
            .header("content-type", "application/json")
            .header("x-steward-event", outgoing.event_type)
            .header("x-steward-delivery", outgoing.delivery.to_string())
            .header("x-steward-timestamp", timestamp.to_string())
            .header("x-steward-signature", signatures.join(", "))
            .body(outgoing.body.to_owned());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let message = if error.is_timeout() {
                    "timed out".to_owned()
                } else {
                    let mut text = error.to_string();
                    let mut source = std::error::Error::source(&error);
                    while let Some(cause) = source {
                        text.push_str(": ");
                        text.push_str(&cause.to_string());
                        source = cause.source();
                    }
                    text
                };
                return Answer {
                    status: None,
                    excerpt: None,
                    latency_ms: elapsed(started),
                    error: Some(message.chars().take(500).collect()),
                };
            }
        };
        let status = response.status();
        let mut body = Vec::new();
        // At most 64 KiB is read; the rest is dropped with the connection.
        while body.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let excerpt: String = String::from_utf8_lossy(&body[..body.len().min(1024)])
            .chars()
            .filter(|c| !c.is_control() || *c == '\n')
            .collect();
        let error = (!status.is_success()).then(|| format!("the receiver answered {}", status.as_u16()));
        Answer {
            status: Some(status.as_u16()),
            excerpt: (!excerpt.is_empty()).then_some(excerpt),
            latency_ms: elapsed(started),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_timestamp_and_body() {
        let one = signature("whsec_x", 1_700_000_000, "{}");
        assert!(one.starts_with("sha256=") && one.len() == 7 + 64);
        assert_ne!(one, signature("whsec_x", 1_700_000_001, "{}"));
        assert_ne!(one, signature("whsec_y", 1_700_000_000, "{}"));
        // HMAC-SHA256("key", "1.{}") as Python's hmac module computes it.
        assert_eq!(
            signature("key", 1, "{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
