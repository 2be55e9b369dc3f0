//! Operators lock and unlock accounts and end their sessions: who may, what a lock does to
//! sign-in, tokens and sessions, the last super_admin, and the audit trail.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{PASSWORD, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn admin(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

fn path(user: &TestUser, rest: &str) -> String {
    format!("/api/admin/v1/users/{}{rest}", user.id)
}

/// Whether `token` still reaches `/me`, waiting out the session cache (2 s by default).
async fn refused_within_bound(app: &TestApp, token: &str) -> bool {
    for _ in 0..40 {
        let status = app
            .authed(Method::GET, "/api/v1/auth/me", token)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn each_role_may_do_what_its_permissions_say() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let user_admin = admin(&app, "useradmin@example.com", "user_admin").await;
        let support = admin(&app, "support@example.com", "support").await;
        let auditor = admin(&app, "auditor@example.com", "auditor").await;
        let plain = app.user("plain@example.com").await;
        let target = app.user("target@example.com").await;

        // (caller, lock, unlock, list sessions, end sessions). The built-in table: unlocking is
        // `support`'s (`users:unlock`), locking `user_admin`'s.
        let matrix = [
            (&user_admin, true, false, true, true),
            (&support, false, true, true, false),
            (&auditor, false, false, false, false),
            (&plain, false, false, false, false),
        ];
        for (caller, lock, unlock, list, end) in matrix {
            let expect = |allowed: bool, ok: StatusCode| if allowed { ok } else { StatusCode::FORBIDDEN };
            let status = send(&app, Method::POST, &path(&target, "/lock"), caller, None)
                .await
                .status();
            assert_eq!(status, expect(lock, StatusCode::OK), "{backend:?} lock");
            let status = send(&app, Method::POST, &path(&target, "/unlock"), caller, None)
                .await
                .status();
            assert_eq!(status, expect(unlock, StatusCode::OK), "{backend:?} unlock");
            let status = send(&app, Method::GET, &path(&target, "/sessions"), caller, None)
                .await
                .status();
            assert_eq!(status, expect(list, StatusCode::OK), "{backend:?} sessions");
            let status = send(&app, Method::DELETE, &path(&target, "/sessions"), caller, None)
                .await
                .status();
            assert_eq!(status, expect(end, StatusCode::OK), "{backend:?} end sessions");
        }
        // Unknown users are 404 for those allowed; malformed ids 400.
        let ghost = format!("/api/admin/v1/users/{}/lock", uuid::Uuid::now_v7());
        expect_error(
            send(&app, Method::POST, &ghost, &user_admin, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        let malformed = send(
            &app,
            Method::POST,
            "/api/admin/v1/users/not-a-uuid/lock",
            &user_admin,
            None,
        )
        .await;
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST, "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_locked_account_cannot_sign_in_and_its_tokens_and_sessions_stop() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let operator = admin(&app, "operator@example.com", "user_admin").await;
        let support = admin(&app, "support@example.com", "support").await;
        let target = app.user("target@example.com").await;
        let token = expect_data(
            send(
                &app,
                Method::POST,
                "/api/v1/auth/me/tokens",
                &target,
                Some(json!({"name": "script", "scopes": ["account:read"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await["secret"]
            .as_str()
            .unwrap()
            .to_owned();

        // A reason over 500 characters, a body that does not parse, NUL: refused, nothing done.
        let long = send(
            &app,
            Method::POST,
            &path(&target, "/lock"),
            &operator,
            Some(json!({"reason": "x".repeat(501)})),
        )
        .await;
        expect_error(long, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let broken = app
            .authed(Method::POST, &path(&target, "/lock"), &operator.token)
            .header("content-type", "application/json")
            .body("{\"reason\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(broken.status(), StatusCode::BAD_REQUEST, "{backend:?}");
        let nul = send(
            &app,
            Method::POST,
            &path(&target, "/lock"),
            &operator,
            Some(json!({"reason": "a\u{0}b"})),
        )
        .await;
        assert_eq!(nul.status(), StatusCode::BAD_REQUEST, "{backend:?}");
        assert_eq!(
            app.authed(Method::GET, "/api/v1/auth/me", &target.token)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );

        let locked = expect_data(
            send(
                &app,
                Method::POST,
                &path(&target, "/lock"),
                &operator,
                Some(json!({"reason": "stolen laptop"})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(locked["status"], "locked", "{backend:?}: {locked}");
        assert!(
            refused_within_bound(&app, &target.token).await,
            "{backend:?}: the access token kept working"
        );
        let pat = app
            .authed(Method::GET, "/api/v1/auth/me", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            pat.status(),
            StatusCode::UNAUTHORIZED,
            "{backend:?}: the personal access token"
        );

        // Only the right password learns that the account is locked.
        expect_error(
            app.login("target@example.com", PASSWORD).await,
            StatusCode::FORBIDDEN,
            "ACCOUNT_DISABLED",
        )
        .await;
        expect_error(
            app.login("target@example.com", "not the password at all").await,
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        )
        .await;

        let unlocked = expect_data(
            send(&app, Method::POST, &path(&target, "/unlock"), &support, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(unlocked["status"], "active");
        expect_data(app.login("target@example.com", PASSWORD).await, StatusCode::OK).await;

        let actions = app.audit_actions().await;
        for action in ["admin.user_locked", "admin.user_unlocked"] {
            assert!(actions.iter().any(|a| a == action), "{backend:?}: {actions:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unlocking_clears_an_automatic_lockout() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let support = admin(&app, "support@example.com", "support").await;
        let target = app.user("target@example.com").await;
        let mut locked_out = false;
        for _ in 0..8 {
            let status = app
                .login("target@example.com", "wrong password, wrong")
                .await
                .status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                locked_out = true;
                break;
            }
        }
        assert!(locked_out, "{backend:?}: repeated failures lock the address");
        expect_error(
            app.login("target@example.com", PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS,
            "ACCOUNT_LOCKED",
        )
        .await;
        expect_data(
            send(&app, Method::POST, &path(&target, "/unlock"), &support, None).await,
            StatusCode::OK,
        )
        .await;
        expect_data(app.login("target@example.com", PASSWORD).await, StatusCode::OK).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nobody_locks_themself_or_the_last_super_admin_even_concurrently() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let operator = admin(&app, "operator@example.com", "user_admin").await;
        expect_error(
            send(&app, Method::POST, &path(&operator, "/lock"), &operator, None).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;

        let mut survivor: Option<(TestUser, String)> = None;
        for round in 0..4 {
            let emails = [
                format!("root-a{round}@example.com"),
                format!("root-b{round}@example.com"),
            ];
            let first = admin(&app, &emails[0], "super_admin").await;
            let second = admin(&app, &emails[1], "super_admin").await;
            // The previous round's survivor goes first, so these two are the last unlocked ones.
            if let Some((previous, _)) = survivor.take() {
                expect_data(
                    send(&app, Method::POST, &path(&previous, "/lock"), &operator, None).await,
                    StatusCode::OK,
                )
                .await;
            }
            let (a, b) = tokio::join!(
                send(&app, Method::POST, &path(&first, "/lock"), &operator, None),
                send(&app, Method::POST, &path(&second, "/lock"), &operator, None)
            );
            let (a, b) = (a.status(), b.status());
            let mut statuses = [a, b];
            statuses.sort();
            assert_eq!(
                statuses,
                [StatusCode::OK, StatusCode::CONFLICT],
                "{backend:?} round {round}"
            );
            let (kept, email) = if a == StatusCode::CONFLICT {
                (first, &emails[0])
            } else {
                (second, &emails[1])
            };
            // The one left unlocked still signs in.
            expect_data(app.login(email, PASSWORD).await, StatusCode::OK).await;
            survivor = Some((kept, email.clone()));
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operators_list_and_end_a_users_sessions() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let operator = admin(&app, "operator@example.com", "user_admin").await;
        let target = app.user("target@example.com").await;
        let second: Value =
            expect_data(app.login("target@example.com", PASSWORD).await, StatusCode::OK).await;
        let second_token = second["accessToken"].as_str().unwrap().to_owned();

        let sessions = expect_data(
            send(&app, Method::GET, &path(&target, "/sessions"), &operator, None).await,
            StatusCode::OK,
        )
        .await;
        let sessions = sessions.as_array().unwrap().clone();
        assert_eq!(sessions.len(), 2, "{backend:?}: {sessions:?}");
        assert!(sessions.iter().all(|s| s["current"] == false));

        // Another user's session id is not this user's: 404, nothing ended.
        let other = app.user("other@example.com").await;
        let others = expect_data(
            send(&app, Method::GET, &path(&other, "/sessions"), &operator, None).await,
            StatusCode::OK,
        )
        .await;
        let foreign = others[0]["id"].as_str().unwrap();
        let wrong = send(
            &app,
            Method::DELETE,
            &path(&target, &format!("/sessions/{foreign}")),
            &operator,
            None,
        )
        .await;
        expect_error(wrong, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        assert_eq!(
            app.authed(Method::GET, "/api/v1/auth/me", &other.token)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );

        // End the newest session (the second sign-in): its token stops, the first keeps working.
        let newest = sessions[0]["id"].as_str().unwrap();
        let ended = send(
            &app,
            Method::DELETE,
            &path(&target, &format!("/sessions/{newest}")),
            &operator,
            None,
        )
        .await;
        assert_eq!(ended.status(), StatusCode::NO_CONTENT, "{backend:?}");
        assert!(refused_within_bound(&app, &second_token).await, "{backend:?}");
        assert_eq!(
            app.authed(Method::GET, "/api/v1/auth/me", &target.token)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );

        let all = expect_data(
            send(&app, Method::DELETE, &path(&target, "/sessions"), &operator, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(all["revoked"], 1, "{backend:?}: {all}");
        assert!(refused_within_bound(&app, &target.token).await, "{backend:?}");
        let actions = app.audit_actions().await;
        for action in ["admin.session_revoked", "admin.sessions_revoked"] {
            assert!(actions.iter().any(|a| a == action), "{backend:?}: {actions:?}");
        }
        app.stop().await;
    })
    .await;
}
