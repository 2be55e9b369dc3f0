//! Operators create accounts: with a password, or with an invitation whose mailed link sets
//! one; roles granted under the usual rules; refusals create nothing.

use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_tests::{each_backend, expect_data, expect_error, send, spawn_app};

#[tokio::test]
async fn an_invitation_arrives_by_smtp_and_its_link_sets_the_password_once() {
    each_backend(|backend| async move {
        let smtp = steward_tests::smtp::SmtpServer::start().await;
        let url = smtp.url();
        let app = steward_tests::spawn_app_with(backend, move |config| config.smtp_url = Some(url)).await;
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;

        let created = expect_data(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/users",
                &user_admin,
                Some(json!({"email": "New.Hire@Example.com", "displayName": "New Hire", "roles": ["user_admin"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(created["email"], "new.hire@example.com", "{created}");
        assert_eq!(created["emailVerified"], false);
        assert_eq!(created["status"], "active");
        assert_eq!(created["systemRoles"], json!(["user_admin"]));
        // No password yet: nothing signs in.
        let early = app.login("new.hire@example.com", "").await;
        assert!(early.status().is_client_error());

        let mail = smtp.wait_for("new.hire@example.com", 1).await;
        assert!(mail.text().contains("Subject: Your new account"), "{}", mail.data);
        assert!(mail.text().contains("/accept-invitation#token="), "{}", mail.data);
        assert!(mail.text().contains("72 hours"), "{}", mail.data);
        let token = mail.link_token();
        let weak = app
            .post_json("/api/v1/auth/accept-invitation", &json!({"token": token, "password": "short"}))
            .await;
        assert_eq!(weak.status(), StatusCode::BAD_REQUEST);
        // A password refused for this account's sake (it is the address) spends nothing.
        let own_address = app
            .post_json(
                "/api/v1/auth/accept-invitation",
                &json!({"token": token, "password": "new.hire@example.com"}),
            )
            .await;
        expect_error(own_address, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let accepted = app
            .post_json(
                "/api/v1/auth/accept-invitation",
                &json!({"token": token, "password": "a long invited passphrase"}),
            )
            .await;
        assert_eq!(accepted.status(), StatusCode::NO_CONTENT, "{backend:?}");
        let again = app
            .post_json(
                "/api/v1/auth/accept-invitation",
                &json!({"token": token, "password": "another long passphrase"}),
            )
            .await;
        assert_eq!(again.status(), StatusCode::BAD_REQUEST, "single use");
        let signed_in = expect_data(
            app.login("new.hire@example.com", "a long invited passphrase").await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(signed_in["user"]["emailVerified"], true, "{signed_in}");
        // A reset token is not an invitation and the other way round.
        let wrong_kind = app
            .post_json("/api/v1/auth/reset-password", &json!({"token": token, "newPassword": "x".repeat(20)}))
            .await;
        assert_eq!(wrong_kind.status(), StatusCode::BAD_REQUEST);
        let actions = app.audit_actions().await;
        for action in ["admin.user_created", "admin.role_granted", "auth.invitation_accepted", "auth.email_verified"] {
            assert!(actions.iter().any(|a| a == action), "{action} {backend:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_account_with_a_password_signs_in_at_once_and_refusals_create_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let support = app.user("support@example.com").await;
        app.grant(support.id, "support").await;
        let users_before = app.count_users().await;

        let create = |by: &steward_tests::TestUser, body: serde_json::Value| {
            send(&app, Method::POST, "/api/admin/v1/users", by, Some(body))
        };
        // Who: users:write only; roles only those you could grant.
        let by_support = create(&support, json!({"email": "a@example.com", "displayName": "A"})).await;
        assert_eq!(by_support.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let escalation = create(
            &user_admin,
            json!({"email": "a@example.com", "displayName": "A", "roles": ["super_admin"]}),
        )
        .await;
        expect_error(escalation, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let unknown_role = create(&root, json!({"email": "a@example.com", "displayName": "A", "roles": ["root"]})).await;
        expect_error(unknown_role, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        // Hostile and malformed input.
        for body in [
            json!({"email": "not an address", "displayName": "A"}),
            json!({"email": "a\u{0}@example.com", "displayName": "A"}),
            json!({"email": "a@example.com", "displayName": ""}),
            json!({"email": "a@example.com", "displayName": "A\u{0}B"}),
            json!({"email": "a@example.com", "displayName": "x".repeat(10_000)}),
            json!({"email": "a@example.com", "displayName": "A", "password": "short"}),
            json!({"email": "a@example.com", "displayName": "A", "password": "password123"}),
            json!({"email": "a@example.com", "displayName": "A", "roles": "auditor"}),
            json!({"email": "a@example.com", "displayName": "A", "isAdmin": true}),
            json!({"email": "a@example.com"}),
            json!({}),
        ] {
            let refused = create(&root, body.clone()).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body} {backend:?}");
        }
        assert_eq!(app.count_users().await, users_before, "{backend:?}: refusals create nothing");

        let created = expect_data(
            create(
                &root,
                json!({"email": "b@example.com", "displayName": "B", "password": "a long chosen passphrase", "roles": ["auditor", " Support "]}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(created["systemRoles"], json!(["auditor", "support"]), "{created}");
        expect_data(app.login("b@example.com", "a long chosen passphrase").await, StatusCode::OK).await;
        // (As an auditor, b is also mailed the notification of the role granted.)
        let mail = app
            .outbox_mail_with(&["To: b@example.com", "Confirm your email address"])
            .await;
        assert!(mail.contains("Confirm your email address"), "{mail}");
        let taken = create(&root, json!({"email": "B@example.com", "displayName": "B2"})).await;
        assert_eq!(taken.status(), StatusCode::CONFLICT, "{backend:?}");

        // Two creations of one address at once: one account.
        let (first, second) = tokio::join!(
            create(&root, json!({"email": "race@example.com", "displayName": "R"})),
            create(&root, json!({"email": "race@example.com", "displayName": "R"})),
        );
        let mut statuses = [first.status(), second.status()];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operators_change_accounts_guarded_by_the_version() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let support = app.user("support@example.com").await;
        app.grant(support.id, "support").await;
        let target = app.user("target@example.com").await;
        let _other = app.user("other@example.com").await;
        let path = format!("/api/admin/v1/users/{}", target.id);
        let patch = |by: &steward_tests::TestUser, body: serde_json::Value| {
            send(&app, Method::PATCH, &path, by, Some(body))
        };

        let before = expect_data(send(&app, Method::GET, &path, &root, None).await, StatusCode::OK).await;
        let version = before["version"].as_i64().unwrap();
        let changed = expect_data(
            app.authed(Method::PATCH, &path, &user_admin.token)
                .header("if-match", format!("\"{version}\""))
                .json(&json!({"displayName": "Tara Get", "locale": "en-GB", "timezone": "Europe/Berlin"}))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(changed["displayName"], "Tara Get", "{changed}");
        assert_eq!(changed["locale"], "en-GB");
        assert!(changed["version"].as_i64().unwrap() > version);
        let stale = app
            .authed(Method::PATCH, &path, &user_admin.token)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({"displayName": "Lost update"}))
            .send()
            .await
            .unwrap();
        expect_error(stale, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
        let stale_body = patch(&user_admin, json!({"status": "locked", "version": version})).await;
        expect_error(stale_body, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
        let cleared = expect_data(patch(&user_admin, json!({"locale": null})).await, StatusCode::OK).await;
        assert_eq!(cleared["locale"], serde_json::Value::Null);
        assert_eq!(cleared["timezone"], "Europe/Berlin");

        // A new address counts at once, unverified, with a verification mail to it.
        let moved = expect_data(
            patch(&user_admin, json!({"email": "Moved@Example.com"})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(moved["email"], "moved@example.com");
        assert_eq!(moved["emailVerified"], false);
        let mail = app.outbox_mail("moved@example.com").await;
        assert!(mail.contains("Confirm your email address"), "{mail}");
        expect_data(
            app.login("moved@example.com", steward_tests::PASSWORD).await,
            StatusCode::OK,
        )
        .await;
        let taken = patch(&user_admin, json!({"email": "other@example.com"})).await;
        assert_eq!(taken.status(), StatusCode::CONFLICT, "{backend:?}");

        // Refusals: permissions per change, and input that does not parse.
        assert_eq!(
            patch(&support, json!({"displayName": "X"})).await.status(),
            StatusCode::FORBIDDEN
        );
        for body in [
            json!({}),
            json!({"status": "disabled"}),
            json!({"displayName": "A\u{0}B"}),
            json!({"displayName": "x".repeat(10_000)}),
            json!({"locale": "not a locale at all"}),
            json!({"timezone": "Europe/Berlin Mitte"}),
            json!({"email": "nope"}),
            json!({"version": 1e300}),
            json!({"role": "super_admin"}),
        ] {
            let refused = patch(&user_admin, body.clone()).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body} {backend:?}");
        }
        let locked = expect_data(
            patch(&user_admin, json!({"status": "locked"})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(locked["status"], "locked");
        let login = app.login("moved@example.com", steward_tests::PASSWORD).await;
        assert_eq!(login.status(), StatusCode::FORBIDDEN);
        // user_admin may lock but not unlock; a super_admin may.
        let unlock = patch(&user_admin, json!({"status": "active"})).await;
        expect_error(unlock, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let renamed_while_locked = expect_data(
            patch(&user_admin, json!({"displayName": "Still Locked"})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(renamed_while_locked["status"], "locked");
        let unlocked = expect_data(patch(&root, json!({"status": "active"})).await, StatusCode::OK).await;
        assert_eq!(unlocked["status"], "active");
        // The last super_admin cannot be locked this way either.
        let last = send(
            &app,
            Method::PATCH,
            &format!("/api/admin/v1/users/{}", root.id),
            &root,
            Some(json!({"status": "locked"})),
        )
        .await;
        assert_eq!(last.status(), StatusCode::CONFLICT, "{backend:?}");
        let missing = send(
            &app,
            Method::PATCH,
            &format!("/api/admin/v1/users/{}", uuid::Uuid::now_v7()),
            &root,
            Some(json!({"displayName": "Ghost"})),
        )
        .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert!(
            app.audit_actions()
                .await
                .iter()
                .any(|a| a == "admin.user_updated")
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_user_search_follows_renames_and_erasure() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let target = app.user("findme@example.com").await;
        let search = |q: &str| {
            let path = format!("/api/admin/v1/users?q={}", urlencoding(q));
            send(&app, Method::GET, &path, &root, None)
        };
        let emails = |listed: &serde_json::Value| -> Vec<String> {
            listed
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["email"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            emails(&expect_data(search("FINDME").await, StatusCode::OK).await),
            ["findme@example.com"]
        );
        assert_eq!(
            emails(&expect_data(search("fi").await, StatusCode::OK).await),
            ["findme@example.com"]
        );
        for odd in ["\"", "\"fin", "fin\" OR \"root", "%", "_", "*", "NEAR(a b)"] {
            let answer = search(odd).await;
            assert_eq!(answer.status(), StatusCode::OK, "{odd} {backend:?}");
        }
        assert!(
            expect_data(search("fin\" OR \"root").await, StatusCode::OK)
                .await
                .as_array()
                .unwrap()
                .is_empty()
        );

        let path = format!("/api/admin/v1/users/{}", target.id);
        expect_data(
            send(
                &app,
                Method::PATCH,
                &path,
                &root,
                Some(json!({"email": "renamed@example.com", "displayName": "Quentin Quux"})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(
            expect_data(search("findme").await, StatusCode::OK)
                .await
                .as_array()
                .unwrap()
                .is_empty(),
            "{backend:?}"
        );
        assert_eq!(
            emails(&expect_data(search("renamed@").await, StatusCode::OK).await),
            ["renamed@example.com"]
        );
        assert_eq!(
            emails(&expect_data(search("quux").await, StatusCode::OK).await),
            ["renamed@example.com"]
        );
        // A term matches within the address or within the name, never across the two.
        for across in ["example.com quentin", "com q", "m q"] {
            assert!(
                expect_data(search(across).await, StatusCode::OK)
                    .await
                    .as_array()
                    .unwrap()
                    .is_empty(),
                "{across} {backend:?}"
            );
        }
        let erased = send(&app, Method::DELETE, &path, &root, None).await;
        assert_eq!(erased.status(), StatusCode::NO_CONTENT);
        assert!(
            expect_data(search("quux").await, StatusCode::OK)
                .await
                .as_array()
                .unwrap()
                .is_empty()
        );
        app.stop().await;
    })
    .await;
}

fn urlencoding(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn nobody_takes_over_a_more_powerful_account_and_old_links_die_with_the_old_address() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let other_root = app.user("root2@example.com").await;
        app.grant(other_root.id, "super_admin").await;
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let root_path = format!("/api/admin/v1/users/{}", root.id);

        // A user_admin may not re-address, lock or erase a super_admin (not the last one
        // either).
        let readdress = send(&app, Method::PATCH, &root_path, &user_admin, Some(json!({"email": "mine@example.com"}))).await;
        expect_error(readdress, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let lock = send(&app, Method::POST, &format!("{root_path}/lock"), &user_admin, None).await;
        expect_error(lock, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let erase = send(&app, Method::DELETE, &root_path, &user_admin, None).await;
        expect_error(erase, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let unchanged = expect_data(send(&app, Method::GET, &root_path, &other_root, None).await, StatusCode::OK).await;
        assert_eq!(unchanged["email"], "root@example.com");
        // A peer may.
        let renamed = send(&app, Method::PATCH, &root_path, &other_root, Some(json!({"displayName": "Root One"}))).await;
        assert_eq!(renamed.status(), StatusCode::OK, "{backend:?}");

        // An invitation mailed to a mistyped address is void once the address is corrected.
        let invited = expect_data(
            send(&app, Method::POST, "/api/admin/v1/users", &user_admin, Some(json!({"email": "typo@exmaple.com", "displayName": "New"}))).await,
            StatusCode::CREATED,
        )
        .await;
        let invitation = app.outbox_mail("typo@exmaple.com").await;
        let corrected = send(
            &app,
            Method::PATCH,
            &format!("/api/admin/v1/users/{}", invited["id"].as_str().unwrap()),
            &user_admin,
            Some(json!({"email": "right@example.com"})),
        )
        .await;
        assert_eq!(corrected.status(), StatusCode::OK);
        let stale = app
            .post_json(
                "/api/v1/auth/accept-invitation",
                &json!({"token": steward_tests::link_token(&invitation), "password": "a takeover passphrase"}),
            )
            .await;
        assert_eq!(stale.status(), StatusCode::BAD_REQUEST, "{backend:?}");
        assert_eq!(app.login("right@example.com", "a takeover passphrase").await.status(), StatusCode::UNAUTHORIZED);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_status_change_alone_is_guarded_by_the_version_too() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let target = app.user("target@example.com").await;
        let path = format!("/api/admin/v1/users/{}", target.id);
        let version = |body: &serde_json::Value| body["version"].as_i64().unwrap();
        for round in 0..4 {
            let before = expect_data(send(&app, Method::GET, &path, &root, None).await, StatusCode::OK).await;
            let wanted = if round % 2 == 0 { "locked" } else { "active" };
            let body = json!({"status": wanted, "version": version(&before)});
            let (a, b) = tokio::join!(
                send(&app, Method::PATCH, &path, &root, Some(body.clone())),
                send(&app, Method::PATCH, &path, &root, Some(body.clone()))
            );
            let mut statuses = [a.status(), b.status()];
            statuses.sort();
            assert_eq!(
                statuses,
                [StatusCode::OK, StatusCode::CONFLICT],
                "round {round} {backend:?}"
            );
            let after = expect_data(send(&app, Method::GET, &path, &root, None).await, StatusCode::OK).await;
            assert_eq!(after["status"], wanted);
            assert!(version(&after) > version(&before), "{after}");
        }
        let audit = app.audit_actions().await;
        let changes = audit
            .iter()
            .filter(|a| *a == "admin.user_locked" || *a == "admin.user_unlocked")
            .count();
        assert_eq!(changes, 4, "one change per round {backend:?}");
        app.stop().await;
    })
    .await;
}
