//! The HTTP shell answers every failure with the error envelope, never framework plain text.

use reqwest::StatusCode;
use steward_tests::{Backend, expect_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_unknown_route_is_a_404_envelope() {
    let app = spawn_app(Backend::Sqlite).await;
    let error = expect_error(
        app.get("/api/v1/nothing-here").await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;
    assert_eq!(error["message"], "no such route");

    let response = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let missing = app
        .client
        .get(app.url("/nope"))
        .header("X-Request-Id", "probe-2")
        .send()
        .await
        .unwrap();
    let error = expect_error(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    assert_eq!(error["requestId"], "probe-2");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_envelope() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.client.delete(app.url("/health")).send().await.unwrap();
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    let response = app.post_json("/health/ready", &serde_json::json!({})).await;
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED").await;
    app.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_never_produces_plain_text() {
    let app = spawn_app_with(Backend::Sqlite, |config| config.body_limit_bytes = 1024).await;
    let two_megabytes = vec![b'x'; 2 * 1024 * 1024];
    let response = app
        .client
        .post(app.url("/api/v1/nothing-here"))
        .header("content-type", "application/json")
        .body(two_megabytes)
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    app.stop().await;
}

#[tokio::test]
async fn swagger_ui_redirects_from_docs_and_serves_its_assets_locally() {
    let app = spawn_app(Backend::Sqlite).await;
    let redirect = app.get("/docs").await;
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.get("/docs/").await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"), "{html}");

    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = app.get(asset).await;
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert!(!response.bytes().await.unwrap().is_empty(), "{asset}");
    }
    let initializer = app
        .get("/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("/api-docs/openapi.json"), "{initializer}");
    app.stop().await;
}
