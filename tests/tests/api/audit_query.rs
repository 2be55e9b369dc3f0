//! The audit trail over the admin API: filtered queries, streaming exports, and a hash chain
//! that notices a row edited behind Steward's back.

use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{EntityTrait, QueryFilter};
use serde_json::Value;
use steward_persistence::entities::audit_logs;
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, spawn_app};

async fn get(app: &TestApp, path: &str, user: &TestUser) -> reqwest::Response {
    app.authed(Method::GET, path, &user.token).send().await.unwrap()
}

/// Waits until the sealer has chained every entry.
async fn sealed(app: &TestApp, auditor: &TestUser) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let report = expect_data(
            get(app, "/api/admin/v1/audit-logs/verify", auditor).await,
            StatusCode::OK,
        )
        .await;
        if report["unsealed"] == 0 {
            return report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "entries stay unsealed: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn auditors_query_export_and_verify_the_trail() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ann = app.user("ann@example.com").await;
        let auditor = app.user("auditor@example.com").await;
        app.grant(auditor.id, "auditor").await;
        for _ in 0..3 {
            let response = app.login("ann@example.com", steward_tests::PASSWORD).await;
            assert_eq!(response.status(), StatusCode::OK);
        }

        expect_error(
            get(&app, "/api/admin/v1/audit-logs", &ann).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        let page: Value = get(
            &app,
            &format!(
                "/api/admin/v1/audit-logs?actorId={}&action=auth.login_succeeded&perPage=2",
                ann.id
            ),
            &auditor,
        )
        .await
        .json()
        .await
        .unwrap();
        // Registration signs in too.
        assert_eq!(page["meta"]["total"], 4, "{backend:?}: {page}");
        assert_eq!(page["data"].as_array().unwrap().len(), 2);
        assert!(
            page["data"][0]["occurredAt"].as_str() >= page["data"][1]["occurredAt"].as_str(),
            "newest first"
        );
        let bad = get(
            &app,
            "/api/admin/v1/audit-logs?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z",
            &auditor,
        )
        .await;
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let malformed = get(&app, "/api/admin/v1/audit-logs?actorId=nope", &auditor).await;
        expect_error(malformed, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        // Exports stream everything matching, oldest first.
        let json = get(
            &app,
            &format!("/api/admin/v1/audit-logs/export?actorId={}", ann.id),
            &auditor,
        )
        .await;
        assert_eq!(json.status(), StatusCode::OK);
        let all: Value = json.json().await.unwrap();
        let actions: Vec<&str> = all
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions.first(),
            Some(&"auth.registered"),
            "{backend:?}: {actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|a| **a == "auth.login_succeeded").count(),
            4
        );
        let csv = get(
            &app,
            "/api/admin/v1/audit-logs/export?format=csv&action=auth.login_succeeded",
            &auditor,
        )
        .await;
        assert!(
            csv.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = csv.text().await.unwrap();
        let mut lines = text.lines();
        assert!(lines.next().unwrap().starts_with("id,occurredAt,actorKind"));
        assert_eq!(
            lines.count(),
            5,
            "ann's four sign-ins and the auditor's registration sign-in"
        );
        let nothing = get(
            &app,
            "/api/admin/v1/audit-logs/export?format=csv&action=no.such",
            &auditor,
        )
        .await;
        assert_eq!(
            nothing.text().await.unwrap().lines().count(),
            1,
            "just the header"
        );
        let wrong = get(&app, "/api/admin/v1/audit-logs/export?format=xml", &auditor).await;
        expect_error(wrong, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let not_exporter = app.user("support@example.com").await;
        app.grant(not_exporter.id, "support").await;
        expect_error(
            get(&app, "/api/admin/v1/audit-logs/export", &not_exporter).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;

        // The chain holds, until someone edits a row directly.
        let report = sealed(&app, &auditor).await;
        assert_eq!(report["intact"], true, "{backend:?}: {report}");
        assert!(report["sealed"].as_i64().unwrap() >= 6);
        let victim = all[1]["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap();
        audit_logs::Entity::update_many()
            .col_expr(audit_logs::Column::Action, Expr::value("auth.logout"))
            .filter(sea_orm::ColumnTrait::eq(&audit_logs::Column::Id, victim))
            .exec(app.db.connection())
            .await
            .unwrap();
        let report = expect_data(
            get(&app, "/api/admin/v1/audit-logs/verify", &auditor).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(report["intact"], false, "{backend:?}: {report}");
        assert_eq!(report["firstBreak"]["entryId"], victim.to_string());
        app.stop().await;
    })
    .await;
}
