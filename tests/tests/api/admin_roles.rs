//! System roles by operators: who may grant or revoke what, the last super_admin, and that a
//! change takes effect on the next request.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn admin(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

fn roles(user: &TestUser, rest: &str) -> String {
    format!("/api/admin/v1/users/{}/roles{rest}", user.id)
}

#[tokio::test]
async fn operators_grant_only_roles_whose_permissions_they_hold() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let user_admin = admin(&app, "useradmin@example.com", "user_admin").await;
        let auditor = admin(&app, "auditor@example.com", "auditor").await;
        let target = app.user("target@example.com").await;

        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/roles", &auditor, None).await,
            StatusCode::OK,
        )
        .await;
        let names: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["super_admin", "user_admin", "org_admin", "auditor", "support"],
            "{backend:?}"
        );
        assert_eq!(listed[0]["permissions"], json!(["*"]));
        assert!(listed.as_array().unwrap().iter().all(|r| r["system"] == true));
        let plain = send(&app, Method::GET, "/api/admin/v1/roles", &target, None).await;
        assert_eq!(plain.status(), StatusCode::FORBIDDEN);

        // users:write is needed at all; then only roles whose every permission is yours.
        let by_auditor = send(&app, Method::POST, &roles(&target, "/user_admin"), &auditor, None).await;
        assert_eq!(by_auditor.status(), StatusCode::FORBIDDEN, "{backend:?}");
        for role in ["super_admin", "support", "auditor"] {
            let refused = send(
                &app,
                Method::POST,
                &roles(&target, &format!("/{role}")),
                &user_admin,
                None,
            )
            .await;
            expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        }
        let granted = expect_data(
            send(
                &app,
                Method::POST,
                &roles(&target, "/user_admin"),
                &user_admin,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(granted["roles"], json!(["user_admin"]), "{backend:?}");
        let unknown = send(&app, Method::POST, &roles(&target, "/root"), &root, None).await;
        expect_error(unknown, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let too_long = send(
            &app,
            Method::PUT,
            &roles(&target, ""),
            &root,
            Some(json!({"roles": ["x".repeat(65)]})),
        )
        .await;
        expect_error(too_long, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let not_json = app
            .authed(Method::PUT, &roles(&target, ""), &root.token)
            .header("content-type", "application/json")
            .body("{\"roles\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(not_json.status(), StatusCode::BAD_REQUEST, "{backend:?}");

        // The new role works on the next request; a super_admin sets the roles exactly.
        let now_admin = send(&app, Method::GET, "/api/admin/v1/users?q=target", &target, None).await;
        assert_eq!(
            now_admin.status(),
            StatusCode::OK,
            "{backend:?}: user_admin may list users"
        );
        let set = expect_data(
            send(
                &app,
                Method::PUT,
                &roles(&target, ""),
                &root,
                Some(json!({"roles": ["Support", "auditor"]})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(set["roles"], json!(["auditor", "support"]), "{backend:?}");
        let revoked = expect_data(
            send(&app, Method::DELETE, &roles(&target, "/auditor"), &root, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(revoked["roles"], json!(["support"]));
        let no_longer = send(&app, Method::GET, "/api/admin/v1/audit-logs", &target, None).await;
        assert_eq!(
            no_longer.status(),
            StatusCode::FORBIDDEN,
            "{backend:?}: auditor revoked"
        );

        let actions = app.audit_actions().await;
        let count = |name: &str| actions.iter().filter(|a| *a == name).count();
        // Three set up by the harness; user_admin, then support and auditor granted (user_admin
        // revoked), then auditor revoked.
        assert_eq!(count("admin.role_granted"), 3 + 3, "{backend:?}: {actions:?}");
        assert_eq!(count("admin.role_revoked"), 2, "{backend:?}: {actions:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_super_admins_demoting_each_other_at_once_leave_one() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        for round in 0..3 {
            let a = admin(&app, &format!("a{round}@example.com"), "super_admin").await;
            let b = admin(&app, &format!("b{round}@example.com"), "super_admin").await;
            // Earlier rounds' survivors step aside first, so a and b are the only super_admins.
            let others: Value = expect_data(
                send(
                    &app,
                    Method::GET,
                    "/api/admin/v1/users?role=super_admin&perPage=100",
                    &a,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            for other in others.as_array().unwrap() {
                let id = other["id"].as_str().unwrap();
                if id != a.id.to_string() && id != b.id.to_string() {
                    let path = format!("/api/admin/v1/users/{id}/roles/super_admin");
                    expect_data(send(&app, Method::DELETE, &path, &a, None).await, StatusCode::OK).await;
                }
            }
            let (first, second) = tokio::join!(
                send(&app, Method::DELETE, &roles(&b, "/super_admin"), &a, None),
                send(&app, Method::DELETE, &roles(&a, "/super_admin"), &b, None)
            );
            // The loser is refused either by the rule (409) or, when the winner committed before
            // the loser's request was even authorised, because it is no super_admin any more
            // (403). Never both succeed.
            let statuses = [first.status(), second.status()];
            assert_eq!(
                statuses.iter().filter(|s| **s == StatusCode::OK).count(),
                1,
                "{backend:?} round {round}: {statuses:?}"
            );
            assert!(
                statuses
                    .iter()
                    .all(|s| [StatusCode::OK, StatusCode::CONFLICT, StatusCode::FORBIDDEN].contains(s)),
                "{backend:?} round {round}: {statuses:?}"
            );
            let left: Value = expect_data(
                send(
                    &app,
                    Method::GET,
                    "/api/admin/v1/users?role=super_admin",
                    &if first.status() == StatusCode::OK {
                        a.clone()
                    } else {
                        b.clone()
                    },
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(
                left.as_array().unwrap().len(),
                1,
                "{backend:?} round {round}: {left}"
            );
        }
        app.stop().await;
    })
    .await;
}
