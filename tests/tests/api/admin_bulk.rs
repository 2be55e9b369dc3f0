//! Bulk actions: one request, each account decided as by its own endpoint and answered on its
//! own; the last super_admin survives even two bulk demotions at once.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn with_role(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

fn bulk(
    app: &TestApp,
    by: &TestUser,
    body: Value,
) -> impl std::future::Future<Output = reqwest::Response> + 'static {
    send(app, Method::POST, "/api/admin/v1/users/bulk", by, Some(body))
}

fn outcome(answer: &Value, user: &TestUser) -> (String, Option<String>) {
    let result = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["userId"] == user.id.to_string())
        .unwrap_or_else(|| panic!("{user:?} in {answer}"));
    (
        result["status"].as_str().unwrap().to_owned(),
        result["code"].as_str().map(str::to_owned),
    )
}

#[tokio::test]
async fn each_account_is_decided_as_by_its_own_endpoint() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = with_role(&app, "root@example.com", "super_admin").await;
        let user_admin = with_role(&app, "ua@example.com", "user_admin").await;
        let support = with_role(&app, "support@example.com", "support").await;
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;

        // Who: users:write plus the action's own permission.
        let by_support = bulk(&app, &support, json!({"action": "unlock", "userIds": [ann.id]})).await;
        assert_eq!(by_support.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let unlock = bulk(
            &app,
            &user_admin,
            json!({"action": "unlock", "userIds": [ann.id]}),
        )
        .await;
        expect_error(unlock, StatusCode::FORBIDDEN, "FORBIDDEN").await;

        let ghost = uuid::Uuid::now_v7();
        let locked = expect_data(
            bulk(
                &app,
                &user_admin,
                json!({"action": "lock", "userIds": [ann.id, bob.id, ann.id, user_admin.id, root.id, ghost]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            locked["results"].as_array().unwrap().len(),
            5,
            "duplicates count once: {locked}"
        );
        assert_eq!(outcome(&locked, &ann), ("done".into(), None));
        assert_eq!(outcome(&locked, &bob), ("done".into(), None));
        assert_eq!(
            outcome(&locked, &user_admin),
            ("refused".into(), Some("CONFLICT".into()))
        );
        assert_eq!(
            outcome(&locked, &root),
            ("refused".into(), Some("FORBIDDEN".into())),
            "nobody locks a more powerful account"
        );
        let ghost_result = locked["results"][4].clone();
        assert_eq!(ghost_result["code"], "NOT_FOUND", "{locked}");
        assert_eq!(
            (locked["done"].clone(), locked["refused"].clone()),
            (json!(2), json!(3))
        );
        assert_eq!(
            app.login("ann@example.com", steward_tests::PASSWORD)
                .await
                .status(),
            StatusCode::FORBIDDEN
        );

        let unlocked = expect_data(
            bulk(
                &app,
                &root,
                json!({"action": "unlock", "userIds": [ann.id, bob.id]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(unlocked["done"], 2);

        // Roles: only those the caller could grant.
        let roles = expect_data(
            bulk(
                &app,
                &user_admin,
                json!({"action": "assign_role", "role": "support", "userIds": [ann.id]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            outcome(&roles, &ann),
            ("refused".into(), Some("FORBIDDEN".into()))
        );
        let roles = expect_data(
            bulk(
                &app,
                &user_admin,
                json!({"action": "assign_role", "role": "user_admin", "userIds": [ann.id, bob.id]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(roles["done"], 2, "{roles}");
        let removed = expect_data(
            bulk(
                &app,
                &user_admin,
                json!({"action": "remove_role", "role": "user_admin", "userIds": [bob.id]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(removed["done"], 1);
        let unknown_role = expect_data(
            bulk(
                &app,
                &root,
                json!({"action": "assign_role", "role": "root", "userIds": [bob.id]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            outcome(&unknown_role, &bob),
            ("refused".into(), Some("VALIDATION_ERROR".into()))
        );

        // Deletion: never oneself, never the last super_admin.
        let deleted = expect_data(
            bulk(
                &app,
                &root,
                json!({"action": "delete", "userIds": [bob.id, root.id]}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(outcome(&deleted, &bob), ("done".into(), None));
        assert_eq!(
            outcome(&deleted, &root),
            ("refused".into(), Some("CONFLICT".into()))
        );
        let gone = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/users/{}", bob.id),
            &root,
            None,
        )
        .await;
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);

        // Requests that do not parse or break the bounds change nothing.
        let many: Vec<String> = (0..501).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        for body in [
            json!({"action": "lock", "userIds": []}),
            json!({"action": "lock", "userIds": many}),
            json!({"action": "nuke", "userIds": [ann.id]}),
            json!({"action": "assign_role", "userIds": [ann.id]}),
            json!({"action": "assign_role", "role": "", "userIds": [ann.id]}),
            json!({"action": "lock", "role": "support", "userIds": [ann.id]}),
            json!({"action": "lock", "userIds": ["nope"]}),
            json!({"action": "lock", "userIds": [ann.id], "force": true}),
            json!({"userIds": [ann.id]}),
        ] {
            let refused = bulk(&app, &root, body.clone()).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body} {backend:?}");
        }
        assert_eq!(
            app.login("ann@example.com", steward_tests::PASSWORD)
                .await
                .status(),
            StatusCode::OK
        );
        assert!(app.audit_actions().await.iter().any(|a| a == "admin.bulk_action"));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_bulk_demotions_at_once_leave_a_super_admin() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let first = with_role(&app, "first@example.com", "super_admin").await;
        let second = with_role(&app, "second@example.com", "super_admin").await;
        let (a, b) = tokio::join!(
            bulk(
                &app,
                &first,
                json!({"action": "remove_role", "role": "super_admin", "userIds": [second.id]})
            ),
            bulk(
                &app,
                &second,
                json!({"action": "remove_role", "role": "super_admin", "userIds": [first.id]})
            ),
        );
        let mut done = 0;
        for answer in [a, b] {
            // The loser may already have lost the role when its request is authorised.
            if answer.status() == StatusCode::FORBIDDEN {
                continue;
            }
            let body = expect_data(answer, StatusCode::OK).await;
            done += body["done"].as_u64().unwrap();
        }
        assert_eq!(done, 1, "{backend:?}");
        // Only the two super_admin grants existed; exactly one is left.
        assert_eq!(app.count_rows("user_system_roles").await, 1, "{backend:?}");
        app.stop().await;
    })
    .await;
}
