//! Personal access tokens: scopes enforced, shown once, revocable, expiring, use recorded.

use reqwest::{Method, StatusCode};
use sea_orm::EntityTrait;
use sea_orm::sea_query::Expr;
use serde_json::json;
use steward_persistence::entities::api_keys;
use steward_tests::{TestApp, each_backend, expect_data, expect_error, spawn_app};

async fn create(app: &TestApp, session: &str, scopes: serde_json::Value) -> reqwest::Response {
    app.authed(Method::POST, "/api/v1/auth/me/tokens", session)
        .json(&json!({"name": "ci script", "scopes": scopes}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_act_within_their_scopes_until_revoked_or_expired() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ann = app.register("ann@example.com").await;
        let session = ann["accessToken"].as_str().unwrap().to_owned();

        let refused = expect_error(
            create(&app, &session, json!(["users:read"])).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(
            refused["details"][0]["field"], "scopes",
            "{backend:?}: a plain user cannot delegate admin scopes"
        );
        expect_error(
            create(&app, &session, json!([])).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;

        let response = create(&app, &session, json!(["account:read"])).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let created = expect_data(response, StatusCode::CREATED).await;
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("stw_pat_") && secret.len() > 40);
        assert!(secret.starts_with(created["token"]["prefix"].as_str().unwrap()));

        let listed = expect_data(
            app.authed(Method::GET, "/api/v1/auth/me/tokens", &session)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert!(
            !listed.to_string().contains(&secret),
            "the secret is never returned again"
        );
        assert_eq!(listed[0]["lastUsedAt"], serde_json::Value::Null);

        let me = expect_data(
            app.authed(Method::GET, "/api/v1/auth/me", &secret)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["email"], "ann@example.com");
        let write = app
            .authed(Method::PUT, "/api/v1/auth/me", &secret)
            .json(&json!({"displayName": "X"}))
            .send()
            .await
            .unwrap();
        let error = expect_error(write, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        assert!(error["message"].as_str().unwrap().contains("account:write"));
        for (method, path) in [
            (Method::GET, "/api/v1/auth/me/tokens"),
            (Method::PUT, "/api/v1/auth/me/password"),
            (Method::POST, "/api/v1/auth/logout"),
        ] {
            let response = app
                .authed(method, path, &secret)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        }
        let admin = app
            .authed(Method::GET, "/api/admin/v1/me", &secret)
            .send()
            .await
            .unwrap();
        expect_error(admin, StatusCode::FORBIDDEN, "FORBIDDEN").await;

        let listed = expect_data(
            app.authed(Method::GET, "/api/v1/auth/me/tokens", &session)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert!(listed[0]["lastUsedAt"].is_string(), "use is recorded: {listed}");
        assert_eq!(listed[0]["lastUsedIp"], "127.0.0.1");

        let id = created["token"]["id"].as_str().unwrap();
        let revoked = app
            .authed(Method::DELETE, &format!("/api/v1/auth/me/tokens/{id}"), &session)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
        expect_error(
            app.authed(Method::GET, "/api/v1/auth/me", &secret)
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;

        let second = expect_data(
            create(&app, &session, json!(["account:read", "account:write"])).await,
            StatusCode::CREATED,
        )
        .await;
        let second_secret = second["secret"].as_str().unwrap();
        let ok = app
            .authed(Method::PUT, "/api/v1/auth/me", second_secret)
            .json(&json!({"displayName": "Scripted"}))
            .send()
            .await
            .unwrap();
        assert_eq!(expect_data(ok, StatusCode::OK).await["displayName"], "Scripted");
        api_keys::Entity::update_many()
            .col_expr(
                api_keys::Column::ExpiresAt,
                Expr::value(Some(chrono::Utc::now() - chrono::Duration::minutes(1))),
            )
            .exec(app.db.connection())
            .await
            .unwrap();
        expect_error(
            app.authed(Method::GET, "/api/v1/auth/me", second_secret)
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;

        let actions = app.audit_actions().await;
        assert!(
            actions.contains(&"auth.token_created".to_owned())
                && actions.contains(&"auth.token_revoked".to_owned())
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn admins_delegate_only_the_permissions_they_hold() {
    let app = spawn_app(steward_tests::Backend::Sqlite).await;
    let root = app.register("root@example.com").await;
    let id: uuid::Uuid = root["user"]["id"].as_str().unwrap().parse().unwrap();
    app.grant(id, "auditor").await;
    let session = root["accessToken"].as_str().unwrap();
    expect_error(
        create(&app, session, json!(["users:write"])).await,
        StatusCode::BAD_REQUEST,
        "VALIDATION_ERROR",
    )
    .await;
    let created = expect_data(
        create(&app, session, json!(["users:read"])).await,
        StatusCode::CREATED,
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    let path = format!("/api/admin/v1/users/{id}");
    expect_data(
        app.authed(Method::GET, &path, secret).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let me = app
        .authed(Method::GET, "/api/v1/auth/me", secret)
        .send()
        .await
        .unwrap();
    expect_error(me, StatusCode::FORBIDDEN, "FORBIDDEN").await;
    app.stop().await;
}
