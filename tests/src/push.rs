//! A fake FCM over real HTTP on loopback: an OAuth token endpoint that checks the
//! service-account assertion, and `messages:send` recording what it receives. Also a plain
//! webhook receiver.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// What a fake endpoint received: headers of interest and the body.
#[derive(Debug, Clone)]
pub struct Received {
    pub authorization: Option<String>,
    pub signature: Option<String>,
    pub body: Value,
    /// The body exactly as sent.
    pub raw: String,
}

#[derive(Clone)]
pub struct FakePush {
    pub base_url: String,
    received: Arc<Mutex<Vec<Received>>>,
    token_requests: Arc<Mutex<Vec<String>>>,
}

impl FakePush {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let token_requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let (messages, tokens) = (received.clone(), token_requests.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (messages, tokens, hooks) = (messages.clone(), tokens.clone(), messages.clone());
            App::new()
                .route(
                    "/token",
                    web::post().to(move |body: String| {
                        let tokens = tokens.clone();
                        async move {
                            tokens.lock().unwrap().push(body.clone());
                            if body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey") {
                                HttpResponse::Ok().json(json!({"access_token": "fcm-access-token", "expires_in": 3600, "token_type": "Bearer"}))
                            } else {
                                HttpResponse::BadRequest().json(json!({"error": "invalid_grant"}))
                            }
                        }
                    }),
                )
                .route(
                    "/v1/projects/{project}/messages:send",
                    web::post().to(move |request: HttpRequest, body: web::Json<Value>| {
                        let messages = messages.clone();
                        async move {
                            let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                            let body = body.into_inner();
                            messages.lock().unwrap().push(Received {
                                authorization: header("authorization"),
                                signature: None,
                                raw: body.to_string(),
                                body,
                            });
                            HttpResponse::Ok().json(json!({"name": "projects/steward-test/messages/1"}))
                        }
                    }),
                )
                .route("/down", web::post().to(|| async { HttpResponse::ServiceUnavailable().finish() }))
                .route(
                    "/hook",
                    web::post().to(move |request: HttpRequest, body: String| {
                        let hooks = hooks.clone();
                        async move {
                            let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                            hooks.lock().unwrap().push(Received {
                                authorization: None,
                                signature: header("x-steward-signature"),
                                body: serde_json::from_str(&body).unwrap_or(Value::Null),
                                raw: body,
                            });
                            HttpResponse::NoContent().finish()
                        }
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            received,
            token_requests,
        }
    }

    /// Writes a service-account key file whose token endpoint is this server.
    pub fn service_account_file(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let key = steward_auth::SigningKeyPem::generate().unwrap();
        let path = dir.join("service-account.json");
        let account = json!({
            "type": "service_account",
            "project_id": "steward-test",
            "client_email": "push@steward-test.iam.gserviceaccount.com",
            "private_key": key.as_str(),
            "token_uri": format!("{}/token", self.base_url),
        });
        std::fs::write(&path, account.to_string()).unwrap();
        path
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    pub fn token_requests(&self) -> usize {
        self.token_requests.lock().unwrap().len()
    }

    /// Waits until at least `count` messages arrived, then returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {count} pushes, got {received:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }
}
