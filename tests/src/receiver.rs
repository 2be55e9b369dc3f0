//! A webhook receiver on loopback: a real HTTP server that keeps every request it gets and
//! answers with the status the test sets, verifying nothing itself — the tests verify the
//! signature exactly as docs/events.md tells receivers to.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::Value;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path: String,
    pub event: Option<String>,
    pub delivery: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    pub content_type: Option<String>,
    /// The body's bytes as text, exactly as signed.
    pub raw: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Clone)]
pub struct Receiver {
    pub base_url: String,
    hooks: Arc<Mutex<Vec<Hook>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    /// Starts answering `204` to every `POST`.
    pub async fn start() -> Self {
        let hooks: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(204));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (kept, answer) = (hooks.clone(), status.clone());
        let server = HttpServer::new(move || {
            let (kept, answer) = (kept.clone(), answer.clone());
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let (kept, answer) = (kept.clone(), answer.clone());
                async move {
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned)
                    };
                    let raw = String::from_utf8_lossy(&body).into_owned();
                    kept.lock().unwrap().push(Hook {
                        path: request.path().to_owned(),
                        event: header("x-steward-event"),
                        delivery: header("x-steward-delivery"),
                        timestamp: header("x-steward-timestamp"),
                        signature: header("x-steward-signature"),
                        content_type: header("content-type"),
                        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
                        raw,
                        at: Instant::now(),
                    });
                    let status = actix_web::http::StatusCode::from_u16(answer.load(Ordering::SeqCst))
                        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
                    HttpResponse::build(status).body("received")
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            hooks,
            status,
        }
    }

    /// The status every later request is answered with.
    pub fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// Requests whose `X-Steward-Event` is `event`.
    pub fn of_type(&self, event: &str) -> Vec<Hook> {
        self.received()
            .into_iter()
            .filter(|hook| hook.event.as_deref() == Some(event))
            .collect()
    }

    /// Waits up to `seconds` for at least `count` requests of `event`, and answers them.
    pub async fn wait_for(&self, event: &str, count: usize, seconds: u64) -> Vec<Hook> {
        self.wait_matching(event, |_| true, count, seconds).await
    }

    /// Waits up to `seconds` for at least `count` requests of `event` that `matches` accepts,
    /// and returns those.
    pub async fn wait_matching(
        &self,
        event: &str,
        matches: impl Fn(&Hook) -> bool,
        count: usize,
        seconds: u64,
    ) -> Vec<Hook> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let found: Vec<Hook> = self
                .of_type(event)
                .into_iter()
                .filter(|hook| matches(hook))
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} `{event}` deliveries within {seconds} s; received: {:?}",
                found.len(),
                self.received()
                    .iter()
                    .map(|hook| hook.event.clone())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Verifies a delivery as docs/events.md tells receivers to: the HMAC-SHA256 of
/// `"<timestamp>.<raw body>"` under the secret must equal one of the `sha256=` values of
/// `X-Steward-Signature`, and the timestamp must be less than five minutes old.
pub fn verify(hook: &Hook, secret: &str) -> bool {
    let (Some(timestamp), Some(header)) = (&hook.timestamp, &hook.signature) else {
        return false;
    };
    let Ok(seconds) = timestamp.parse::<i64>() else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - seconds).abs() > 300 {
        return false;
    }
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{timestamp}.{}", hook.raw).as_bytes());
    let expected: String = tag.as_ref().iter().map(|byte| format!("{byte:02x}")).collect();
    header
        .split(',')
        .map(str::trim)
        .any(|value| value == format!("sha256={expected}"))
}
