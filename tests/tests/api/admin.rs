//! The admin API's authentication: a bearer token of a user with a system role, permission
//! checked per endpoint.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use steward_tests::{Backend, TestApp, each_backend, expect_data, expect_error, spawn_app};
use uuid::Uuid;

async fn user_with_role(app: &TestApp, email: &str, role: Option<&str>) -> (String, Uuid) {
    let registered = app.register(email).await;
    let id: Uuid = registered["user"]["id"].as_str().unwrap().parse().unwrap();
    if let Some(role) = role {
        app.grant(id, role).await;
    }
    (registered["accessToken"].as_str().unwrap().to_owned(), id)
}

#[tokio::test]
async fn only_system_roles_reach_the_admin_api_and_permissions_are_checked_per_endpoint() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let (plain, plain_id) = user_with_role(&app, "user@example.com", None).await;
        let (root, root_id) = user_with_role(&app, "root@example.com", Some("super_admin")).await;
        let (auditor, _) = user_with_role(&app, "auditor@example.com", Some("auditor")).await;
        let (fleet, _) = user_with_role(&app, "fleet@example.com", Some("org_admin")).await;

        expect_error(
            app.get("/api/admin/v1/me").await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        let denied = app
            .authed(Method::GET, "/api/admin/v1/me", &plain)
            .send()
            .await
            .unwrap();
        expect_error(denied, StatusCode::FORBIDDEN, "FORBIDDEN").await;

        let me = expect_data(
            app.authed(Method::GET, "/api/admin/v1/me", &root)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["userId"], root_id.to_string());
        assert_eq!(me["roles"], serde_json::json!(["super_admin"]));
        assert_eq!(me["permissions"], serde_json::json!(["*"]));

        let path = format!("/api/admin/v1/users/{plain_id}");
        for token in [&root, &auditor] {
            let user: Value = expect_data(
                app.authed(Method::GET, &path, token).send().await.unwrap(),
                StatusCode::OK,
            )
            .await;
            assert_eq!(user["email"], "user@example.com");
        }
        let forbidden = app.authed(Method::GET, &path, &fleet).send().await.unwrap();
        expect_error(forbidden, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let missing = app
            .authed(
                Method::GET,
                &format!("/api/admin/v1/users/{}", Uuid::now_v7()),
                &root,
            )
            .send()
            .await
            .unwrap();
        expect_error(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn real_cost_hashing_still_signs_in() {
    // The suite runs with light Argon2 parameters; this checks the production cost end to end.
    let app = steward_tests::spawn_app_with(Backend::Sqlite, |config| {
        config.password_hash_memory_kib = 64 * 1024;
        config.password_hash_iterations = 3;
    })
    .await;
    let registered = app.register("ann@example.com").await;
    let hash = steward_persistence::entities::users::Entity::find()
        .one(app.db.connection())
        .await
        .unwrap()
        .unwrap()
        .password_hash
        .unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{hash}");
    expect_data(
        app.login("ann@example.com", steward_tests::PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    assert!(registered["accessToken"].is_string());
    app.stop().await;
}

use sea_orm::EntityTrait;
