//! Admin MFA enforcement: an administrator without a second factor works through the grace
//! period with a warning header, is refused after it (the grace is configured, not slept
//! through), and a super_admin's exemption lifts it; operators reset a lost second factor.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::mfa::enrol;
use steward_tests::{
    Backend, PASSWORD, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app,
    spawn_app_with,
};

async fn admin(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

async fn enforced(backend: Backend, grace_hours: i64) -> TestApp {
    spawn_app_with(backend, move |config| {
        config.admin_mfa_required = true;
        config.admin_mfa_grace_hours = grace_hours;
    })
    .await
}

async fn emails(app: &TestApp, as_user: &TestUser, query: &str) -> Vec<String> {
    let listed = expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/admin/v1/users{query}"),
            as_user,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let mut found: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["email"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn inside_the_grace_period_admins_work_with_a_warning() {
    each_backend(|backend| async move {
        let app = enforced(backend, 24).await;
        let ops = admin(&app, "ops@example.com", "user_admin").await;
        let response = send(&app, Method::GET, "/api/admin/v1/users", &ops, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{backend:?}");
        let warning = response.headers()["steward-warning"].to_str().unwrap().to_owned();
        let seconds: i64 = warning.strip_prefix("mfa-required-in=").unwrap().parse().unwrap();
        assert!((86_000..=86_400).contains(&seconds), "{warning}");
        let me = expect_data(
            send(&app, Method::GET, "/api/admin/v1/me", &ops, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["mfa"]["enforced"], true);
        assert_eq!(me["mfa"]["status"], "grace");
        assert!(me["mfa"]["deadline"].is_string(), "{me}");

        // With a second factor: no warning.
        enrol(&app, &ops).await;
        let response = send(&app, Method::GET, "/api/admin/v1/users", &ops, None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(!response.headers().contains_key("steward-warning"));
        let me = expect_data(
            send(&app, Method::GET, "/api/admin/v1/me", &ops, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["mfa"]["status"], "satisfied");

        // Someone without a system role gets the usual 403, no warning.
        let plain = app.user("plain@example.com").await;
        let response = send(&app, Method::GET, "/api/admin/v1/users", &plain, None).await;
        assert!(!response.headers().contains_key("steward-warning"));
        expect_error(response, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn after_the_grace_period_admins_without_a_second_factor_are_refused_until_they_enrol() {
    each_backend(|backend| async move {
        let app = enforced(backend, 0).await;
        let ops = admin(&app, "ops@example.com", "super_admin").await;
        for path in [
            "/api/admin/v1/users",
            "/api/admin/v1/organizations",
            "/api/admin/v1/roles",
        ] {
            let refused = expect_error(
                send(&app, Method::GET, path, &ops, None).await,
                StatusCode::FORBIDDEN,
                "MFA_REQUIRED",
            )
            .await;
            assert!(
                refused["message"]
                    .as_str()
                    .unwrap()
                    .contains("/api/v1/auth/mfa/totp"),
                "{refused}"
            );
        }
        // A personal access token of the same account is refused alike.
        let pat = expect_data(
            send(
                &app,
                Method::POST,
                "/api/v1/auth/me/tokens",
                &ops,
                Some(json!({"name": "ci", "scopes": ["users:read"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let pat = TestUser {
            id: ops.id,
            token: pat["secret"].as_str().unwrap().to_owned(),
        };
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/users", &pat, None).await,
            StatusCode::FORBIDDEN,
            "MFA_REQUIRED",
        )
        .await;
        // `/me` still answers, with the deadline.
        let me = expect_data(
            send(&app, Method::GET, "/api/admin/v1/me", &ops, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["mfa"]["status"], "required", "{backend:?}: {me}");
        // Enrolling is outside the admin API and works; then the admin API does too.
        enrol(&app, &ops).await;
        expect_data(
            send(&app, Method::GET, "/api/admin/v1/users", &ops, None).await,
            StatusCode::OK,
        )
        .await;
        expect_data(
            send(&app, Method::GET, "/api/admin/v1/users", &pat, None).await,
            StatusCode::OK,
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_super_admins_exemption_lifts_enforcement_and_the_list_filters_by_mfa() {
    each_backend(|backend| async move {
        let app = enforced(backend, 0).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        enrol(&app, &root).await;
        let kiosk = admin(&app, "kiosk@example.com", "auditor").await;
        let helper = admin(&app, "helper@example.com", "user_admin").await;
        enrol(&app, &helper).await;
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/audit-logs", &kiosk, None).await,
            StatusCode::FORBIDDEN,
            "MFA_REQUIRED",
        )
        .await;
        let exemption_path = format!("/api/admin/v1/users/{}/mfa-exemption", kiosk.id);

        // Nobody exempts themself.
        expect_error(
            send(
                &app,
                Method::PUT,
                &format!("/api/admin/v1/users/{}/mfa-exemption", root.id),
                &root,
                Some(json!({"reason": "me"})),
            )
            .await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        // Only a super_admin exempts; the body is checked.
        let body = json!({"reason": "shared wall-display account"});
        expect_error(
            send(&app, Method::PUT, &exemption_path, &helper, Some(body.clone())).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        for bad in [
            json!({"reason": ""}),
            json!({"reason": "x".repeat(501)}),
            json!({"reason": "nul\u{0}"}),
            json!({"reason": "ok", "expiresAt": "2001-01-01T00:00:00Z"}),
            json!({"reason": "ok", "expiresAt": "not a time"}),
            json!({"reason": "ok", "extra": 1}),
            json!({}),
        ] {
            let response = send(&app, Method::PUT, &exemption_path, &root, Some(bad.clone())).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        let set = expect_data(
            send(&app, Method::PUT, &exemption_path, &root, Some(body)).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(set["reason"], "shared wall-display account");
        assert_eq!(set["createdBy"], json!(root.id));
        expect_data(
            send(&app, Method::GET, "/api/admin/v1/audit-logs", &kiosk, None).await,
            StatusCode::OK,
        )
        .await;
        let detail = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/users/{}", kiosk.id),
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            detail["mfaExemption"]["reason"], "shared wall-display account",
            "{detail}"
        );
        assert_eq!(detail["mfaEnrolled"], false);

        assert_eq!(
            emails(&app, &root, "?mfa=exempt").await,
            ["kiosk@example.com"],
            "{backend:?}"
        );
        assert_eq!(
            emails(&app, &root, "?mfa=enrolled").await,
            ["helper@example.com", "root@example.com"]
        );
        assert_eq!(emails(&app, &root, "?mfa=missing").await, ["kiosk@example.com"]);
        expect_error(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/users?mfa=sometimes",
                &root,
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;

        // Removing it restores enforcement; a second removal is 404.
        let removed = send(&app, Method::DELETE, &exemption_path, &root, None).await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/audit-logs", &kiosk, None).await,
            StatusCode::FORBIDDEN,
            "MFA_REQUIRED",
        )
        .await;
        expect_error(
            send(&app, Method::DELETE, &exemption_path, &root, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        let actions = app.audit_actions().await;
        for action in ["admin.mfa_exemption_set", "admin.mfa_exemption_removed"] {
            assert!(actions.contains(&action.to_owned()), "{action}");
        }
        // An exemption that ran out does not count (its end moved into the past in the database,
        // rather than waited for).
        expect_data(
            send(
                &app,
                Method::PUT,
                &exemption_path,
                &root,
                Some(json!({"reason": "until the new tablet arrives", "expiresAt": "2999-01-01T00:00:00Z"})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        expect_data(
            send(&app, Method::GET, "/api/admin/v1/audit-logs", &kiosk, None).await,
            StatusCode::OK,
        )
        .await;
        {
            use sea_orm::sea_query::Expr;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            use steward_persistence::entities::mfa_exemptions;
            mfa_exemptions::Entity::update_many()
                .col_expr(
                    mfa_exemptions::Column::ExpiresAt,
                    Expr::value(Some(chrono::Utc::now() - chrono::Duration::minutes(1))),
                )
                .filter(mfa_exemptions::Column::UserId.eq(kiosk.id))
                .exec(app.db.connection())
                .await
                .unwrap();
        }
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/audit-logs", &kiosk, None).await,
            StatusCode::FORBIDDEN,
            "MFA_REQUIRED",
        )
        .await;
        assert!(emails(&app, &root, "?mfa=exempt").await.is_empty());
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operators_reset_a_lost_second_factor_and_end_its_sessions() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = admin(&app, "root@example.com", "super_admin").await;
        let support = admin(&app, "support@example.com", "support").await;
        let gus = app.user("gus@example.com").await;
        enrol(&app, &gus).await;
        let reset_path = format!("/api/admin/v1/users/{}/mfa", gus.id);

        expect_error(
            send(&app, Method::DELETE, &reset_path, &support, None).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        let missing = format!("/api/admin/v1/users/{}/mfa", uuid::Uuid::now_v7());
        expect_error(
            send(&app, Method::DELETE, &missing, &root, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        // Your own second factor goes through DELETE /api/v1/auth/mfa/totp, not here.
        let (_, _) = enrol(&app, &root).await;
        expect_error(
            send(
                &app,
                Method::DELETE,
                &format!("/api/admin/v1/users/{}/mfa", root.id),
                &root,
                None,
            )
            .await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        // A pending enrollment is no second factor.
        let pending = app.user("pending@example.com").await;
        expect_data(
            send(&app, Method::POST, "/api/v1/auth/mfa/totp", &pending, None).await,
            StatusCode::OK,
        )
        .await;
        expect_error(
            send(
                &app,
                Method::DELETE,
                &format!("/api/admin/v1/users/{}/mfa", pending.id),
                &root,
                None,
            )
            .await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        let reset = send(&app, Method::DELETE, &reset_path, &root, None).await;
        assert_eq!(reset.status(), StatusCode::NO_CONTENT, "{backend:?}");
        let notice = app
            .outbox_mail("An administrator removed the second factor of your account")
            .await;
        assert!(notice.contains("gus@example.com"), "{notice}");
        // The old session is over; the password alone signs in now.
        let me = app
            .authed(Method::GET, "/api/v1/auth/me", &gus.token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
        let signed_in: Value =
            expect_data(app.login("gus@example.com", PASSWORD).await, StatusCode::OK).await;
        assert!(signed_in["accessToken"].is_string());
        expect_error(
            send(&app, Method::DELETE, &reset_path, &root, None).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        assert!(app.audit_actions().await.contains(&"admin.mfa_reset".to_owned()));

        // Nobody resets a more powerful account.
        let boss = admin(&app, "boss@example.com", "super_admin").await;
        enrol(&app, &boss).await;
        let ops = admin(&app, "ops@example.com", "user_admin").await;
        expect_error(
            send(
                &app,
                Method::DELETE,
                &format!("/api/admin/v1/users/{}/mfa", boss.id),
                &ops,
                None,
            )
            .await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        let still = expect_data(app.login("boss@example.com", PASSWORD).await, StatusCode::OK).await;
        assert_eq!(still["mfaRequired"], true);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_cli_removes_a_second_factor_when_nobody_can_sign_in_to_reset_it() {
    use clap::Parser;
    // The command as docs/admin-api.md shows it, pointed at the test server's configuration.
    let documented = steward_tests::docs::block("docs/admin-api.md", "steward admin reset-mfa --email").text;
    let words: Vec<String> = documented.split_whitespace().map(str::to_owned).collect();
    assert_eq!(words[..3], ["steward", "admin", "reset-mfa"], "{documented}");
    assert_eq!(words.len(), 5, "{documented}");
    let email = words[4].clone();
    each_backend(|backend| {
        let (words, email) = (words.clone(), email.clone());
        async move {
            let app = enforced(backend, 0).await;
            let root = admin(&app, &email, "super_admin").await;
            enrol(&app, &root).await;
            let config = app.data_dir.path().join("steward.toml");
            std::fs::write(
                &config,
                format!(
                    "data_dir = {:?}\ndatabase_url = {:?}\n",
                    app.data_dir.path().display().to_string(),
                    app.database.url
                ),
            )
            .unwrap();
            let run = |email: &str| {
                let mut args = vec![
                    "steward".to_owned(),
                    "--config".to_owned(),
                    config.display().to_string(),
                ];
                args.extend(words[1..4].iter().cloned());
                args.push(email.to_owned());
                steward::cli::run(steward::cli::Cli::parse_from(args))
            };
            run(&email).await.unwrap();
            // The password alone signs in again; the old session is over.
            let signed_in = expect_data(app.login(&email, PASSWORD).await, StatusCode::OK).await;
            assert!(signed_in["accessToken"].is_string(), "{backend:?}: {signed_in}");
            // The server learns of it from the database within its session cache's bound (2 s).
            let mut status = StatusCode::OK;
            for _ in 0..30 {
                let old = app
                    .authed(Method::GET, "/api/v1/auth/me", &root.token)
                    .send()
                    .await
                    .unwrap();
                status = old.status();
                if status == StatusCode::UNAUTHORIZED {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{backend:?}");
            assert!(app.audit_actions().await.contains(&"admin.mfa_reset".to_owned()));
            // Nothing left to remove, or no such account: an error, not a silent success.
            assert!(run(&email).await.is_err());
            assert!(run("nobody@example.com").await.is_err());
            app.stop().await;
        }
    })
    .await;
}
