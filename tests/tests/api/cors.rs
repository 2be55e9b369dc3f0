//! Cross-origin access: only the configured browser origins get CORS headers.

use reqwest::{Method, StatusCode};
use steward_tests::{Backend, TestApp, spawn_app, spawn_app_with};

const ADMIN_UI: &str = "https://admin.example.com";

fn preflight(app: &TestApp, origin: &str) -> impl Future<Output = reqwest::Response> + 'static + use<> {
    let request = app
        .client
        .request(Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, authorization");
    async move { request.send().await.unwrap() }
}

fn allowed_origin(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("access-control-allow-origin")
        .map(|value| value.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn configured_origins_get_cors_headers_and_others_do_not() {
    let app = spawn_app_with(Backend::Sqlite, |config| {
        config.cors_allowed_origins = vec![ADMIN_UI.to_owned()];
    })
    .await;

    let ok = preflight(&app, ADMIN_UI).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&ok).as_deref(), Some(ADMIN_UI));
    let methods = ok.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("POST"), "{methods}");
    assert!(
        ok.headers().contains_key("x-request-id"),
        "preflights carry a request id"
    );

    let read = app
        .client
        .get(app.url("/health"))
        .header("origin", ADMIN_UI)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed_origin(&read).as_deref(), Some(ADMIN_UI));
    let exposed = read.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("etag") && exposed.contains("x-request-id"),
        "{exposed}"
    );

    let evil = "https://evil.example.com";
    let refused = preflight(&app, evil).await;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    assert_eq!(allowed_origin(&refused), None);
    let other = app
        .client
        .get(app.url("/health"))
        .header("origin", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        StatusCode::OK,
        "non-browser semantics are unchanged"
    );
    assert_eq!(allowed_origin(&other), None, "the browser will not expose it");
    app.stop().await;
}

#[tokio::test]
async fn without_configured_origins_nothing_is_allowed_cross_origin() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = preflight(&app, ADMIN_UI).await;
    assert_eq!(allowed_origin(&response), None);
    let read = app
        .client
        .get(app.url("/health"))
        .header("origin", ADMIN_UI)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed_origin(&read), None);
    app.stop().await;
}
