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
        // Each refusal of an identified caller is audited with the permission asked for.
        {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
            use steward_persistence::entities::audit_logs;
            let denied = audit_logs::Entity::find()
                .filter(audit_logs::Column::Action.eq("admin.access_denied"))
                .filter(audit_logs::Column::ActorId.eq(support.id))
                .order_by_asc(audit_logs::Column::OccurredAt)
                .order_by_asc(audit_logs::Column::Id)
                .all(app.db.connection())
                .await
                .unwrap();
            let asked: Vec<String> = denied
                .iter()
                .map(|entry| {
                    entry.after.as_ref().unwrap()["permission"]
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect();
            assert_eq!(asked, ["users:lock", "sessions:revoke"], "{backend:?}");
            assert_eq!(denied[0].after.as_ref().unwrap()["missing"], "role");
            assert!(
                denied[0].after.as_ref().unwrap()["request"]
                    .as_str()
                    .unwrap()
                    .starts_with("POST /api/admin/v1/users/")
            );
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
            // (Only a peer locks a super_admin: the user_admin operator may not.)
            if let Some((previous, _)) = survivor.take() {
                let refused = send(&app, Method::POST, &path(&previous, "/lock"), &operator, None).await;
                assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
                expect_data(
                    send(&app, Method::POST, &path(&previous, "/lock"), &first, None).await,
                    StatusCode::OK,
                )
                .await;
            }
            // Each locks the other at once: exactly one lock lands. The other is refused as
            // the last super_admin's, or finds its own session already ended.
            let (a, b) = tokio::join!(
                send(&app, Method::POST, &path(&second, "/lock"), &first, None),
                send(&app, Method::POST, &path(&first, "/lock"), &second, None)
            );
            let (a, b) = (a.status(), b.status());
            let loser_statuses = [
                StatusCode::CONFLICT,
                StatusCode::UNAUTHORIZED,
                StatusCode::FORBIDDEN,
            ];
            assert!(
                (a == StatusCode::OK && loser_statuses.contains(&b))
                    || (b == StatusCode::OK && loser_statuses.contains(&a)),
                "{backend:?} round {round}: {a} {b}"
            );
            let (kept, email) = if a == StatusCode::OK {
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

/// 1,000 accounts written straight into the database (hashing a password per account would
/// take minutes): every 10th locked, every 7th a support agent, the first 50 in an
/// organization, created one minute apart, names `Person NNNN`.
async fn seed_accounts(app: &TestApp, organization: uuid::Uuid) -> chrono::DateTime<chrono::Utc> {
    use sea_orm::{ActiveValue::Set, EntityTrait};
    use steward_persistence::entities::{org_users, user_system_roles, users};
    let start = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() - 10 * 86_400, 0).unwrap();
    let mut rows = Vec::new();
    let mut roles = Vec::new();
    let mut members = Vec::new();
    for n in 0..1000 {
        let id = uuid::Uuid::now_v7();
        let at = start + chrono::Duration::minutes(n);
        rows.push(users::ActiveModel {
            id: Set(id),
            email: Set(format!("person{n:04}@seed.example")),
            email_verified_at: Set(None),
            password_hash: Set(None),
            pending_email: Set(None),
            display_name: Set(format!("Person {n:04}")),
            avatar_url: Set(None),
            locale: Set(None),
            timezone: Set(None),
            status: Set(if n % 10 == 0 { "locked" } else { "active" }.to_owned()),
            organization_id: Set(None),
            last_login_at: Set(None),
            version: Set(1),
            created_at: Set(at),
            updated_at: Set(at),
            deleted_at: Set(None),
        });
        if n % 7 == 0 {
            roles.push(user_system_roles::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                user_id: Set(id),
                role: Set("support".to_owned()),
                granted_at: Set(at),
            });
        }
        if n < 50 {
            members.push(org_users::ActiveModel {
                id: Set(uuid::Uuid::now_v7()),
                organization_id: Set(organization),
                user_id: Set(id),
                role: Set("viewer".to_owned()),
                permissions: Set(None),
                created_at: Set(at),
                updated_at: Set(at),
            });
        }
    }
    for chunk in rows.chunks(100) {
        users::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(app.db.connection())
            .await
            .unwrap();
    }
    user_system_roles::Entity::insert_many(roles)
        .exec_without_returning(app.db.connection())
        .await
        .unwrap();
    org_users::Entity::insert_many(members)
        .exec_without_returning(app.db.connection())
        .await
        .unwrap();
    start
}

#[tokio::test]
async fn operators_find_accounts_by_text_status_role_organization_and_time() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let auditor = admin(&app, "auditor@example.com", "auditor").await;
        let owner = app.user("owner@example.com").await;
        let org: uuid::Uuid = app.organization(&root, "seeded", &owner).await.parse().unwrap();
        let start = seed_accounts(&app, org).await;
        let list = |query: &str| {
            app.authed(
                Method::GET,
                &format!("/api/admin/v1/users{query}"),
                &auditor.token,
            )
            .send()
        };
        let page = |response: reqwest::Response| async move {
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        };

        // Everyone (1,000 seeded + root, auditor, owner), newest first, 20 per page.
        let all = page(list("").await.unwrap()).await;
        assert_eq!(all["meta"]["total"], 1003, "{backend:?}");
        assert_eq!(all["data"].as_array().unwrap().len(), 20);
        // A page beyond the end is empty, not an error.
        let beyond = page(list("?page=60&perPage=20").await.unwrap()).await;
        assert!(beyond["data"].as_array().unwrap().is_empty());

        // Text: part of the email or the name, any case; `_` and `%` are literal.
        let text = page(list("?q=PERSON%2000&perPage=100").await.unwrap()).await;
        assert_eq!(text["meta"]["total"], 100, "{backend:?}: Person 00xx");
        let literal = page(list("?q=person_0").await.unwrap()).await;
        assert_eq!(literal["meta"]["total"], 0, "{backend:?}: `_` is not a wildcard");

        // Status, role and organization, alone and together.
        let locked = page(list("?status=locked&perPage=100").await.unwrap()).await;
        assert_eq!(locked["meta"]["total"], 100, "{backend:?}");
        assert!(
            locked["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["status"] == "locked")
        );
        let support = page(list("?role=support").await.unwrap()).await;
        assert_eq!(
            support["meta"]["total"], 143,
            "{backend:?}: n % 7 == 0 below 1,000"
        );
        assert!(
            support["data"][0]["systemRoles"]
                .as_array()
                .unwrap()
                .contains(&json!("support"))
        );
        let both = page(list("?role=support&status=locked").await.unwrap()).await;
        assert_eq!(both["meta"]["total"], 15, "{backend:?}: n % 70 == 0");
        // Two failed sign-ins show on the row (read from the same statement as the page).
        for _ in 0..2 {
            let refused = app
                .post_json(
                    "/api/v1/auth/login",
                    &json!({"email": "Person0001@seed.example", "password": "not the password"}),
                )
                .await;
            assert_eq!(refused.status(), 401);
        }
        let members = page(list(&format!("?organizationId={org}&perPage=100")).await.unwrap()).await;
        assert_eq!(
            members["meta"]["total"], 51,
            "{backend:?}: 50 seeded and the owner"
        );
        let seeded_member = members["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["email"] == "person0001@seed.example")
            .unwrap();
        assert_eq!(
            seeded_member["organizations"],
            json!([{"organizationId": org, "role": "viewer"}])
        );
        assert_eq!(seeded_member["mfaEnrolled"], false);
        assert_eq!(seeded_member["failedLoginAttempts"], 2, "{backend:?}");

        // Time ranges and order.
        let from = (start + chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let to = (start + chrono::Duration::minutes(20)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let window = page(
            list(&format!(
                "?createdFrom={}&createdTo={}&sort=email&order=asc",
                from.replace('+', "%2B"),
                to.replace('+', "%2B")
            ))
            .await
            .unwrap(),
        )
        .await;
        let emails: Vec<&str> = window["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap())
            .collect();
        let expected: Vec<String> = (10..20).map(|n| format!("person{n:04}@seed.example")).collect();
        assert_eq!(emails, expected, "{backend:?}");
        let by_name = page(
            list("?sort=displayName&order=desc&q=person&perPage=3")
                .await
                .unwrap(),
        )
        .await;
        let names: Vec<&str> = by_name["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["displayName"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["Person 0999", "Person 0998", "Person 0997"],
            "{backend:?}"
        );

        // Bad filters are 400 naming the field; nobody without users:read lists.
        for (query, field) in [
            ("?status=gone", "status"),
            ("?sort=password", "sort"),
            ("?order=sideways", "order"),
            (
                "?createdFrom=2026-02-01T00:00:00Z&createdTo=2026-01-01T00:00:00Z",
                "createdTo",
            ),
            ("?perPage=1000", "perPage"),
        ] {
            let refused = expect_error(
                list(query).await.unwrap(),
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(
                refused["details"][0]["field"], field,
                "{backend:?} {query}: {refused}"
            );
        }
        let long = format!("?q={}", "x".repeat(201));
        expect_error(
            list(&long).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let plain = app
            .authed(Method::GET, "/api/admin/v1/users", &owner.token)
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::FORBIDDEN, "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn support_sends_a_reset_mail_whose_link_works_and_operators_verify_addresses() {
    each_backend(|backend| async move {
        let smtp = steward_tests::smtp::SmtpServer::start().await;
        let url = smtp.url();
        let app = steward_tests::spawn_app_with(backend, move |config| config.smtp_url = Some(url)).await;
        let support = admin(&app, "support@example.com", "support").await;
        let user_admin = admin(&app, "useradmin@example.com", "user_admin").await;
        let auditor = admin(&app, "auditor@example.com", "auditor").await;
        let target = app.user("target@example.com").await;

        let refused = send(
            &app,
            Method::POST,
            &path(&target, "/reset-password"),
            &auditor,
            None,
        )
        .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let sent = expect_data(
            send(
                &app,
                Method::POST,
                &path(&target, "/reset-password"),
                &support,
                Some(json!({"revokeSessions": true})),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(sent["sent"], true);
        // The session ended; the mail (after the registration's verification mail) has a
        // working link.
        assert!(refused_within_bound(&app, &target.token).await, "{backend:?}");
        let mail = smtp.wait_for("target@example.com", 2).await;
        assert!(
            mail.text().contains("Subject: Reset your password"),
            "{}",
            mail.data
        );
        let reset = app
            .post_json(
                "/api/v1/auth/reset-password",
                &json!({"token": mail.link_token(), "newPassword": "a fresh passphrase"}),
            )
            .await;
        assert_eq!(reset.status(), StatusCode::NO_CONTENT, "{backend:?}");
        expect_data(
            app.login("target@example.com", "a fresh passphrase").await,
            StatusCode::OK,
        )
        .await;

        // Three reset mails an hour per account at most, whoever asks.
        let mut statuses = Vec::new();
        for _ in 0..3 {
            statuses.push(
                send(
                    &app,
                    Method::POST,
                    &path(&target, "/reset-password"),
                    &support,
                    None,
                )
                .await
                .status(),
            );
        }
        assert_eq!(
            statuses,
            [
                StatusCode::ACCEPTED,
                StatusCode::ACCEPTED,
                StatusCode::TOO_MANY_REQUESTS
            ],
            "{backend:?}"
        );

        // A locked account is unlocked first.
        expect_data(
            send(&app, Method::POST, &path(&target, "/lock"), &user_admin, None).await,
            StatusCode::OK,
        )
        .await;
        let locked = send(
            &app,
            Method::POST,
            &path(&target, "/reset-password"),
            &support,
            None,
        )
        .await;
        expect_error(locked, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        // Verifying the address is users:write.
        let by_support = send(
            &app,
            Method::POST,
            &path(&target, "/verify-email"),
            &support,
            None,
        )
        .await;
        assert_eq!(by_support.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let verified = expect_data(
            send(
                &app,
                Method::POST,
                &path(&target, "/verify-email"),
                &user_admin,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(verified["emailVerified"], true, "{backend:?}: {verified}");
        let actions = app.audit_actions().await;
        for action in [
            "admin.password_reset_sent",
            "admin.email_verified",
            "admin.sessions_revoked",
        ] {
            assert!(actions.iter().any(|a| a == action), "{backend:?}: {actions:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operators_erase_accounts_but_never_their_own_or_the_last_super_admin() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let operator = admin(&app, "operator@example.com", "user_admin").await;
        let support = admin(&app, "support@example.com", "support").await;
        let target = app.user("target@example.com").await;

        let refused = send(&app, Method::DELETE, &path(&target, ""), &support, None).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        expect_error(
            send(&app, Method::DELETE, &path(&operator, ""), &operator, None).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;

        let erased = send(&app, Method::DELETE, &path(&target, ""), &operator, None).await;
        assert_eq!(erased.status(), StatusCode::NO_CONTENT, "{backend:?}");
        assert!(refused_within_bound(&app, &target.token).await, "{backend:?}");
        expect_error(
            app.login("target@example.com", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        )
        .await;
        let gone = send(&app, Method::GET, &path(&target, ""), &operator, None).await;
        assert_eq!(gone.status(), StatusCode::NOT_FOUND, "{backend:?}");
        let again = send(&app, Method::DELETE, &path(&target, ""), &operator, None).await;
        assert_eq!(again.status(), StatusCode::NOT_FOUND, "{backend:?}");
        assert!(
            app.audit_actions()
                .await
                .iter()
                .any(|a| a == "admin.user_deleted")
        );

        // Two super_admins erasing each other at once: one stays (a user_admin may erase
        // neither). The last one cannot leave either.
        let a = admin(&app, "root-a@example.com", "super_admin").await;
        let b = admin(&app, "root-b@example.com", "super_admin").await;
        let refused = send(&app, Method::DELETE, &path(&a, ""), &operator, None).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let (first, second) = tokio::join!(
            send(&app, Method::DELETE, &path(&b, ""), &a, None),
            send(&app, Method::DELETE, &path(&a, ""), &b, None)
        );
        let (first, second) = (first.status(), second.status());
        let loser_statuses = [
            StatusCode::CONFLICT,
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
        ];
        assert!(
            (first == StatusCode::NO_CONTENT && loser_statuses.contains(&second))
                || (second == StatusCode::NO_CONTENT && loser_statuses.contains(&first)),
            "{backend:?}: {first} {second}"
        );
        let last = if first == StatusCode::NO_CONTENT { &a } else { &b };
        let leaving = app
            .authed(Method::DELETE, "/api/v1/auth/me", &last.token)
            .json(&json!({"password": PASSWORD}))
            .send()
            .await
            .unwrap();
        expect_error(leaving, StatusCode::CONFLICT, "CONFLICT").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn admin_requests_have_their_own_limit_per_caller() {
    each_backend(|backend| async move {
        let app =
            steward_tests::spawn_app_with(backend, |config| config.rate_limit_admin_per_minute = 5).await;
        let first = admin(&app, "first@example.com", "auditor").await;
        let second = admin(&app, "second@example.com", "auditor").await;
        for _ in 0..5 {
            let status = send(&app, Method::GET, "/api/admin/v1/me", &first, None)
                .await
                .status();
            assert_eq!(status, StatusCode::OK, "{backend:?}");
        }
        let limited = send(&app, Method::GET, "/api/admin/v1/users", &first, None).await;
        let retry_after: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry_after), "{backend:?}: {retry_after}");
        expect_error(limited, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
        // Organization routes count too; the user API and other callers do not.
        let org = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/organizations/{}", uuid::Uuid::now_v7()),
            &first,
            None,
        )
        .await;
        assert_eq!(org.status(), StatusCode::TOO_MANY_REQUESTS, "{backend:?}");
        assert_eq!(
            send(&app, Method::GET, "/api/v1/auth/me", &first, None)
                .await
                .status(),
            StatusCode::OK
        );
        assert_eq!(
            send(&app, Method::GET, "/api/admin/v1/me", &second, None)
                .await
                .status(),
            StatusCode::OK
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn one_account_shows_its_status_roles_memberships_and_counts() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let support = admin(&app, "support@example.com", "support").await;
        let target = app.user("target@example.com").await;
        app.grant(target.id, "auditor").await;
        let group = app.group(&target, "Home").await;
        let key = app.api_key().await;
        app.device(&key, &target, "target-phone").await;
        let organization = app.organization(&root, "acme", &target).await;
        expect_data(
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
        .await;

        let detail = expect_data(
            send(&app, Method::GET, &path(&target, ""), &support, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(detail["email"], "target@example.com", "{backend:?}: {detail}");
        assert_eq!(detail["status"], "active");
        assert_eq!(detail["systemRoles"], json!(["auditor"]));
        assert_eq!(
            detail["groups"],
            json!([{"id": group, "name": "Home", "role": "owner"}])
        );
        assert_eq!(
            detail["organizations"],
            json!([{"id": organization, "name": "acme", "role": "owner"}]),
            "{detail}"
        );
        assert_eq!(
            (
                detail["liveSessions"].as_u64(),
                detail["devices"].as_u64(),
                detail["personalTokens"].as_u64()
            ),
            (Some(1), Some(1), Some(1))
        );
        assert_eq!(detail["roleOverrides"], Value::Null);
        assert_eq!(detail["mfaEnrolled"], false);

        // A locked account is still shown (as locked); an erased one is gone.
        expect_data(
            send(&app, Method::POST, &path(&target, "/lock"), &root, None).await,
            StatusCode::OK,
        )
        .await;
        let locked = expect_data(
            send(&app, Method::GET, &path(&target, ""), &support, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (locked["status"].as_str(), locked["liveSessions"].as_u64()),
            (Some("locked"), Some(0)),
            "{backend:?}"
        );
        assert_eq!(
            send(&app, Method::DELETE, &path(&target, ""), &root, None)
                .await
                .status(),
            StatusCode::NO_CONTENT
        );
        let gone = send(&app, Method::GET, &path(&target, ""), &support, None).await;
        expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operators_export_the_filtered_accounts_as_json_or_csv() {
    each_backend(|backend| async move {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        use steward_persistence::entities::users;
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let auditor = admin(&app, "auditor@example.com", "auditor").await;
        let owner = app.user("owner@example.com").await;
        let org: uuid::Uuid = app.organization(&root, "seeded", &owner).await.parse().unwrap();
        seed_accounts(&app, org).await;
        users::Entity::update_many()
            .col_expr(
                users::Column::DisplayName,
                Expr::value("=HYPERLINK(\"http://evil\")"),
            )
            .filter(users::Column::Email.eq("person0007@seed.example"))
            .exec(app.db.connection())
            .await
            .unwrap();
        let export = |query: &str| {
            app.authed(
                Method::GET,
                &format!("/api/admin/v1/users/export{query}"),
                &auditor.token,
            )
            .send()
        };

        // JSON: every matching account across pages, in the listing's order.
        let response = export("?q=person&sort=email&order=asc").await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{backend:?}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        let rows: Value = response.json().await.unwrap();
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), 1000, "{backend:?}");
        assert_eq!(rows[0]["email"], "person0000@seed.example");
        assert_eq!(rows[999]["email"], "person0999@seed.example");
        // An empty result is an empty array.
        let none: Value = export("?q=nobody-at-all").await.unwrap().json().await.unwrap();
        assert_eq!(none, json!([]));

        // CSV: a header row, one line per account, formulas defused.
        let response = export(&format!("?format=csv&organizationId={org}"))
            .await
            .unwrap();
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = response.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap().iter().next(), Some("id"));
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 51, "{backend:?}: 50 seeded members and the owner");
        let evil = records
            .iter()
            .find(|r| &r[1] == "person0007@seed.example")
            .unwrap();
        assert_eq!(&evil[2], "'=HYPERLINK(\"http://evil\")", "{backend:?}");

        expect_error(
            export("?format=xml").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let plain = app
            .authed(Method::GET, "/api/admin/v1/users/export", &owner.token)
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::FORBIDDEN, "{backend:?}");
        app.stop().await;
    })
    .await;
}
