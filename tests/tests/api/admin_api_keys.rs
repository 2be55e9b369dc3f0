//! Operators mint, list and revoke the application API keys device apps register with.

use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_tests::{each_backend, expect_data, expect_error, send, spawn_app};

#[tokio::test]
async fn super_admins_mint_list_and_revoke_api_keys_that_work_at_once() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let owner = app.user("owner@example.com").await;

        let refused = send(
            &app,
            Method::POST,
            "/api/admin/v1/api-keys",
            &user_admin,
            Some(json!({"name": "App"})),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        for name in ["", "   ", &"x".repeat(101)] {
            let bad = send(
                &app,
                Method::POST,
                "/api/admin/v1/api-keys",
                &root,
                Some(json!({"name": name})),
            )
            .await;
            expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }

        let response = send(
            &app,
            Method::POST,
            "/api/admin/v1/api-keys",
            &root,
            Some(json!({"name": " Family app "})),
        )
        .await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let created = expect_data(response, StatusCode::CREATED).await;
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("stw_key_"), "{created}");
        assert_eq!(created["name"], "Family app");
        assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
        let id = created["id"].as_str().unwrap().to_owned();

        // The key registers devices; the listing never shows a secret.
        let register = |key: &str| {
            app.authed(Method::POST, "/api/v1/devices/register", &owner.token)
                .header("x-api-key", key)
                .json(&json!({"deviceId": "phone-1", "displayName": "Phone", "platform": "android"}))
                .send()
        };
        assert!(
            register(&secret).await.unwrap().status().is_success(),
            "{backend:?}"
        );
        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/api-keys", &root, None).await,
            StatusCode::OK,
        )
        .await;
        let listed_key = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap()
            .clone();
        assert!(listed_key.get("secret").is_none(), "{listed_key}");
        assert!(
            !listed_key["lastUsedAt"].is_null(),
            "{backend:?}: its use is recorded"
        );
        assert!(!listed.to_string().contains(&secret));

        // Revoked: refused at once on this instance; a second revocation is 404.
        let revoked = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/api-keys/{id}"),
            &root,
            None,
        )
        .await;
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT, "{backend:?}");
        expect_error(
            register(&secret).await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        let again = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/api-keys/{id}"),
            &root,
            None,
        )
        .await;
        expect_error(again, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let actions = app.audit_actions().await;
        assert!(
            actions.iter().any(|a| a == "apikey.created") && actions.iter().any(|a| a == "apikey.revoked")
        );
        app.stop().await;
    })
    .await;
}
