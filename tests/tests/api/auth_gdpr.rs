//! GDPR: export everything about the caller; erase the account but keep the audit trail.

use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use steward_persistence::entities::audit_logs;
use steward_tests::{PASSWORD, each_backend, expect_data, expect_error, spawn_app};
use uuid::Uuid;

#[tokio::test]
async fn the_export_holds_profile_sessions_and_activity() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let registered = app.register("ann@example.com").await;
        let token = registered["accessToken"].as_str().unwrap();
        let response = app
            .authed(Method::GET, "/api/v1/auth/me/export", token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store");
        let export = expect_data(response, StatusCode::OK).await;
        assert_eq!(export["profile"]["email"], "ann@example.com");
        assert_eq!(export["profile"]["id"], registered["user"]["id"]);
        assert_eq!(export["sessions"].as_array().unwrap().len(), 1);
        let actions: Vec<&str> = export["activity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect();
        assert!(actions.contains(&"auth.registered"), "{backend:?}: {actions:?}");
        assert!(
            export.to_string().find("password").is_none() || !export.to_string().contains("$argon2"),
            "no hashes"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_the_account_erases_personal_data_and_keeps_the_trail() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let registered = app.register("ann@example.com").await;
        let token = registered["accessToken"].as_str().unwrap();
        let user_id: Uuid = registered["user"]["id"].as_str().unwrap().parse().unwrap();

        let wrong = app
            .authed(Method::DELETE, "/api/v1/auth/me", token)
            .json(&json!({"password": "nope nope"}))
            .send()
            .await
            .unwrap();
        expect_error(wrong, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
        let deleted = app
            .authed(Method::DELETE, "/api/v1/auth/me", token)
            .json(&json!({"password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);

        expect_error(
            app.authed(Method::GET, "/api/v1/auth/me", token)
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        expect_error(
            app.login("ann@example.com", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        )
        .await;

        let stored = steward_persistence::entities::users::Entity::find_by_id(user_id)
            .one(app.db.connection())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(stored.email, "ann@example.com");
        assert_eq!(stored.display_name, "Deleted user");
        assert_eq!(stored.password_hash, None);
        assert_eq!(stored.status, "deleted");

        let trail = audit_logs::Entity::find()
            .filter(audit_logs::Column::ActorId.eq(user_id))
            .all(app.db.connection())
            .await
            .unwrap();
        let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
        assert!(
            actions.contains(&"auth.registered") && actions.contains(&"auth.account_deleted"),
            "{actions:?}"
        );
        assert!(
            trail
                .iter()
                .all(|e| e.ip_address.is_none() && e.user_agent.is_none()),
            "addresses are erased"
        );

        expect_data(
            app.post_json(
                "/api/v1/auth/register",
                &json!({"email": "ann@example.com", "password": PASSWORD, "displayName": "Ann again"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        app.stop().await;
    })
    .await;
}
