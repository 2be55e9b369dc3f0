//! Custom roles: a holder gets exactly the role's permissions, resolved like a built-in
//! role's; built-ins cannot change; a role in use cannot be deleted, even by a deletion racing
//! a grant.

use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn admin(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

fn user_roles(user: &TestUser, rest: &str) -> String {
    format!("/api/admin/v1/users/{}/roles{rest}", user.id)
}

#[tokio::test]
async fn a_custom_role_grants_exactly_its_permissions() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let bob = app.user("bob@example.com").await;

        let created = expect_data(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/roles",
                &root,
                Some(json!({"name": "user_reader", "permissions": ["users:read", "users:read"], "description": "Reads accounts"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(
            created,
            json!({"name": "user_reader", "description": "Reads accounts", "permissions": ["users:read"], "system": false}),
            "{backend:?}"
        );
        let before = send(&app, Method::GET, "/api/admin/v1/users", &bob, None).await;
        assert_eq!(before.status(), StatusCode::FORBIDDEN, "{backend:?}");
        expect_data(
            send(&app, Method::POST, &user_roles(&bob, "/user_reader"), &root, None).await,
            StatusCode::OK,
        )
        .await;

        let listed = send(&app, Method::GET, "/api/admin/v1/users", &bob, None).await;
        assert_eq!(listed.status(), StatusCode::OK, "{backend:?}");
        let me = expect_data(send(&app, Method::GET, "/api/admin/v1/me", &bob, None).await, StatusCode::OK).await;
        assert_eq!(me["roles"], json!(["user_reader"]));
        assert_eq!(me["permissions"], json!(["users:read"]));
        let detail = send(&app, Method::GET, &format!("/api/admin/v1/users/{}", root.id), &bob, None).await;
        assert_eq!(detail.status(), StatusCode::OK);
        for (method, path) in [
            (Method::POST, format!("/api/admin/v1/users/{}/lock", root.id)),
            (Method::GET, "/api/admin/v1/audit-logs".to_owned()),
            (Method::POST, "/api/admin/v1/organizations".to_owned()),
            (Method::GET, "/api/admin/v1/api-keys".to_owned()),
            (Method::DELETE, "/api/admin/v1/roles/user_reader".to_owned()),
        ] {
            let refused = send(&app, method.clone(), &path, &bob, Some(json!({}))).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{method} {path} {backend:?}");
        }

        // Changing the role counts on the holder's next request.
        let updated = expect_data(
            send(
                &app,
                Method::PUT,
                "/api/admin/v1/roles/user_reader",
                &root,
                Some(json!({"permissions": ["audit:read"]})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(updated["permissions"], json!(["audit:read"]));
        assert_eq!(updated["description"], json!(null));
        let now_refused = send(&app, Method::GET, "/api/admin/v1/users", &bob, None).await;
        assert_eq!(now_refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let audit = send(&app, Method::GET, "/api/admin/v1/audit-logs", &bob, None).await;
        assert_eq!(audit.status(), StatusCode::OK, "{backend:?}");

        // In use: 409 naming the count; free again: deleted, and its holders lose nothing else.
        let in_use = expect_error(
            send(&app, Method::DELETE, "/api/admin/v1/roles/user_reader", &root, None).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        assert!(in_use["message"].as_str().unwrap().starts_with("1 account"), "{in_use}");
        expect_data(
            send(&app, Method::DELETE, &user_roles(&bob, "/user_reader"), &root, None).await,
            StatusCode::OK,
        )
        .await;
        let deleted = send(&app, Method::DELETE, "/api/admin/v1/roles/user_reader", &root, None).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT, "{backend:?}");
        let gone = send(&app, Method::GET, "/api/admin/v1/roles/user_reader", &root, None).await;
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        let actions = app.audit_actions().await;
        for action in ["admin.role_created", "admin.role_updated", "admin.role_deleted", "admin.role_revoked"] {
            assert!(actions.iter().any(|a| a == action), "{action} {backend:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn role_definitions_are_checked() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let user_admin = admin(&app, "ua@example.com", "user_admin").await;
        let create =
            |body: serde_json::Value| send(&app, Method::POST, "/api/admin/v1/roles", &root, Some(body));

        for body in [
            json!({"name": "x", "permissions": ["users:read"]}),
            json!({"name": "Helpdesk", "permissions": ["users:read"]}),
            json!({"name": "help\u{0}desk", "permissions": ["users:read"]}),
            json!({"name": "a".repeat(10_000), "permissions": ["users:read"]}),
            json!({"name": "helpdesk", "permissions": []}),
            json!({"name": "helpdesk", "permissions": ["*"]}),
            json!({"name": "helpdesk", "permissions": ["users:fly"]}),
            json!({"name": "helpdesk", "permissions": ["users:read"], "description": "x".repeat(10_000)}),
            json!({"name": "helpdesk", "permissions": ["users:read"], "description": "a\u{7}b"}),
            json!({"name": "helpdesk", "permissions": "users:read"}),
            json!({"name": "helpdesk", "permissions": ["users:read"], "extra": 1}),
            json!({"permissions": ["users:read"]}),
        ] {
            let refused = create(body.clone()).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body} {backend:?}");
        }
        let wrong_type = app
            .authed(Method::POST, "/api/admin/v1/roles", &root.token)
            .header("content-type", "text/plain")
            .body("name=helpdesk")
            .send()
            .await
            .unwrap();
        assert!(wrong_type.status().is_client_error(), "{backend:?}");

        // Built-ins cannot be created, edited or deleted.
        let built_in = create(json!({"name": "support", "permissions": ["users:read"]})).await;
        expect_error(built_in, StatusCode::CONFLICT, "CONFLICT").await;
        let edit = send(
            &app,
            Method::PUT,
            "/api/admin/v1/roles/support",
            &root,
            Some(json!({"permissions": ["users:read"]})),
        )
        .await;
        expect_error(edit, StatusCode::CONFLICT, "CONFLICT").await;
        let delete = send(
            &app,
            Method::DELETE,
            "/api/admin/v1/roles/super_admin",
            &root,
            None,
        )
        .await;
        expect_error(delete, StatusCode::CONFLICT, "CONFLICT").await;
        let missing = send(
            &app,
            Method::PUT,
            "/api/admin/v1/roles/nobody_has_it",
            &root,
            Some(json!({"permissions": ["users:read"]})),
        )
        .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        let first = create(json!({"name": "helpdesk", "permissions": ["users:read", "users:unlock"]})).await;
        assert_eq!(first.status(), StatusCode::CREATED);
        let again = create(json!({"name": "helpdesk", "permissions": ["users:read"]})).await;
        expect_error(again, StatusCode::CONFLICT, "CONFLICT").await;

        // roles:write is super_admin's; a custom role that has it still cannot put in a
        // permission its holder lacks.
        let by_user_admin = send(
            &app,
            Method::POST,
            "/api/admin/v1/roles",
            &user_admin,
            Some(json!({"name": "mini", "permissions": ["users:read"]})),
        )
        .await;
        assert_eq!(by_user_admin.status(), StatusCode::FORBIDDEN);
        create(json!({"name": "role_maker", "permissions": ["roles:write", "users:read"]})).await;
        let maker = app.user("maker@example.com").await;
        app.grant(maker.id, "role_maker").await;
        let escalate = send(
            &app,
            Method::POST,
            "/api/admin/v1/roles",
            &maker,
            Some(json!({"name": "locker", "permissions": ["users:lock"]})),
        )
        .await;
        expect_error(escalate, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let within = send(
            &app,
            Method::POST,
            "/api/admin/v1/roles",
            &maker,
            Some(json!({"name": "reader2", "permissions": ["users:read"]})),
        )
        .await;
        assert_eq!(within.status(), StatusCode::CREATED, "{backend:?}");
        // Nor hand out a role whose permissions they lack.
        let grant = send(&app, Method::POST, &user_roles(&maker, "/helpdesk"), &maker, None).await;
        assert_eq!(grant.status(), StatusCode::FORBIDDEN);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_a_role_while_it_is_granted_never_leaves_a_holder_of_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        for round in 0..4 {
            let name = format!("racer_{round}");
            let target = app.user(&format!("t{round}@example.com")).await;
            let created = send(
                &app,
                Method::POST,
                "/api/admin/v1/roles",
                &root,
                Some(json!({"name": name, "permissions": ["users:read"]})),
            )
            .await;
            assert_eq!(created.status(), StatusCode::CREATED);
            let (grant, delete) = tokio::join!(
                send(
                    &app,
                    Method::POST,
                    &user_roles(&target, &format!("/{name}")),
                    &root,
                    None
                ),
                send(
                    &app,
                    Method::DELETE,
                    &format!("/api/admin/v1/roles/{name}"),
                    &root,
                    None
                ),
            );
            let (grant, delete) = (grant.status(), delete.status());
            let detail = format!("/api/admin/v1/users/{}", target.id);
            let roles = expect_data(
                send(&app, Method::GET, &detail, &root, None).await,
                StatusCode::OK,
            )
            .await;
            let exists = send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/roles/{name}"),
                &root,
                None,
            )
            .await
            .status();
            match (grant, delete) {
                (StatusCode::OK, StatusCode::CONFLICT) => {
                    assert_eq!(roles["systemRoles"], json!([name]));
                    assert_eq!(exists, StatusCode::OK);
                }
                (StatusCode::BAD_REQUEST, StatusCode::NO_CONTENT) => {
                    assert_eq!(roles["systemRoles"], json!([]));
                    assert_eq!(exists, StatusCode::NOT_FOUND);
                }
                other => panic!("{other:?} {backend:?}"),
            }
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn custom_role_holders_delegate_their_permissions_and_tokens_define_roles_within_their_scopes() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let create = |by: &TestUser, body: serde_json::Value| {
            send(&app, Method::POST, "/api/admin/v1/roles", by, Some(body))
        };
        assert_eq!(
            create(&root, json!({"name": "reader", "permissions": ["users:read"]}))
                .await
                .status(),
            StatusCode::CREATED
        );
        let holder = app.user("holder@example.com").await;
        app.grant(holder.id, "reader").await;
        // The holder's token may carry the role's permission, and it works.
        let token = expect_data(
            app.authed(Method::POST, "/api/v1/auth/me/tokens", &holder.token)
                .json(&json!({"name": "script", "scopes": ["users:read"]}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        let script = TestUser {
            id: holder.id,
            token: token["secret"].as_str().unwrap().to_owned(),
        };
        assert_eq!(
            send(&app, Method::GET, "/api/admin/v1/users", &script, None)
                .await
                .status(),
            StatusCode::OK,
            "{backend:?}"
        );

        // A super_admin token scoped to roles:write alone defines no role beyond that scope.
        let scoped = expect_data(
            app.authed(Method::POST, "/api/v1/auth/me/tokens", &root.token)
                .json(&json!({"name": "roles only", "scopes": ["roles:write"]}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        let roles_token = TestUser {
            id: root.id,
            token: scoped["secret"].as_str().unwrap().to_owned(),
        };
        let beyond = create(
            &roles_token,
            json!({"name": "keys", "permissions": ["api_keys:write"]}),
        )
        .await;
        expect_error(beyond, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let within = create(
            &roles_token,
            json!({"name": "role_admin", "permissions": ["roles:write"]}),
        )
        .await;
        assert_eq!(within.status(), StatusCode::CREATED, "{backend:?}");

        // Whoever lacks a role's permissions cannot take them away from it either.
        assert_eq!(
            create(
                &root,
                json!({"name": "auditing", "permissions": ["audit:read", "audit:export"]})
            )
            .await
            .status(),
            StatusCode::CREATED
        );
        let role_admin = app.user("roleadmin@example.com").await;
        app.grant(role_admin.id, "role_admin").await;
        let strip = send(
            &app,
            Method::PUT,
            "/api/admin/v1/roles/auditing",
            &role_admin,
            Some(json!({"permissions": ["roles:write"]})),
        )
        .await;
        expect_error(strip, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_concurrent_creations_cannot_pass_the_cap_of_one_hundred_roles() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let create = |name: String| {
            send(
                &app,
                Method::POST,
                "/api/admin/v1/roles",
                &root,
                Some(json!({"name": name, "permissions": ["users:read"]})),
            )
        };
        for n in 0..99 {
            assert_eq!(create(format!("role_{n}")).await.status(), StatusCode::CREATED);
        }
        let (a, b) = tokio::join!(create("last_a".to_owned()), create("last_b".to_owned()));
        let mut statuses = [a.status(), b.status()];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "{backend:?}"
        );
        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/roles", &root, None).await,
            StatusCode::OK,
        )
        .await;
        let custom = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|role| role["system"] == false)
            .count();
        assert_eq!(custom, 100, "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn creating_an_account_with_a_role_being_deleted_creates_both_or_neither() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        for round in 0..4 {
            let name = format!("racer_{round}");
            let email = format!("new{round}@example.com");
            let created = send(
                &app,
                Method::POST,
                "/api/admin/v1/roles",
                &root,
                Some(json!({"name": name, "permissions": ["users:read"]})),
            )
            .await;
            assert_eq!(created.status(), StatusCode::CREATED);
            let (account, delete) = tokio::join!(
                send(
                    &app,
                    Method::POST,
                    "/api/admin/v1/users",
                    &root,
                    Some(json!({"email": email, "displayName": "New", "roles": [name]}))
                ),
                send(
                    &app,
                    Method::DELETE,
                    &format!("/api/admin/v1/roles/{name}"),
                    &root,
                    None
                ),
            );
            let (account, delete) = (account.status(), delete.status());
            let found = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/users?q={email}"),
                    &root,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            let rows = found.as_array().unwrap().clone();
            match (account, delete) {
                (StatusCode::CREATED, StatusCode::CONFLICT) => {
                    assert_eq!(rows.len(), 1, "{backend:?}");
                    assert_eq!(rows[0]["systemRoles"], json!([name]));
                }
                (StatusCode::BAD_REQUEST, StatusCode::NO_CONTENT) => {
                    assert!(rows.is_empty(), "an account was left behind {backend:?}");
                }
                other => panic!("{other:?} {backend:?}"),
            }
        }
        app.stop().await;
    })
    .await;
}
