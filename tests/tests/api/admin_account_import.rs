//! Operators import accounts from CSV or JSON: checked whole first, problems by line, dry runs,
//! invitations that work, duplicates skipped or updated, and who may.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

fn import(
    app: &TestApp,
    by: &TestUser,
    query: &str,
    content_type: &str,
    body: &str,
) -> impl std::future::Future<Output = reqwest::Response> + 'static {
    let request = app
        .authed(
            Method::POST,
            &format!("/api/admin/v1/users/import{query}"),
            &by.token,
        )
        .header("content-type", content_type)
        .body(body.to_owned());
    async move { request.send().await.unwrap() }
}

fn problem_lines(error: &Value) -> Vec<String> {
    error["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn accounts_are_imported_whole_or_not_at_all_and_their_invitations_work() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let organization = app.organization(&root, "acme", &owner).await;
        let carol = app.user("carol@example.com").await;
        let users_before = app.count_users().await;

        let good = "email,displayName,roles,organizationSlug,orgRole\n\
                    ann@example.com,Ann Admin,support;auditor,,\n\
                    Bob@Example.com,,,acme,admin\n\
                    carol@example.com,Carol Renamed,auditor,,\n";
        let dry = expect_data(
            import(&app, &root, "?dryRun=true", "text/csv", good).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (
                dry["created"].clone(),
                dry["skipped"].clone(),
                dry["updated"].clone()
            ),
            (json!(2), json!(1), json!(0)),
            "{dry}"
        );
        assert_eq!(
            app.count_users().await,
            users_before,
            "{backend:?}: a dry run creates nothing"
        );

        let bad = "email,displayName,roles,organizationSlug,orgRole\n\
                   ann@example.com,Ann,root,,\n\
                   not-an-address,,,,\n\
                   ann@example.com,Ann again,,,\n\
                   dan@example.com,Dan,,nowhere,\n\
                   eve@example.com,Eve,,,admin\n";
        let report = expect_data(
            import(&app, &root, "?dryRun=true", "text/csv", bad).await,
            StatusCode::OK,
        )
        .await;
        let lines: Vec<u64> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["line"].as_u64().unwrap())
            .collect();
        assert_eq!(lines, [2, 3, 4, 5, 6], "{report}");
        let refused = expect_error(
            import(&app, &root, "", "text/csv", bad).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(problem_lines(&refused).len(), 5, "{refused}");
        assert_eq!(app.count_users().await, users_before);

        let done = expect_data(import(&app, &root, "", "text/csv", good).await, StatusCode::OK).await;
        assert_eq!(
            (done["created"].clone(), done["skipped"].clone()),
            (json!(2), json!(1)),
            "{done}"
        );
        assert_eq!(done["errors"], json!([]));
        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/users?q=ann@", &root, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            listed[0]["systemRoles"],
            json!(["auditor", "support"]),
            "{listed}"
        );
        let members = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/organizations/{organization}/users"),
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(members.to_string().contains("bob@example.com"), "{members}");
        let untouched = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/users/{}", carol.id),
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(untouched["systemRoles"], json!([]), "skipped");

        // The invitation's link sets the password.
        let mail = app.outbox_mail("Your new account").await;
        let mail = if mail.contains("ann@example.com") {
            mail
        } else {
            app.outbox_mail("To: ann@example.com").await
        };
        let accepted = app
            .post_json(
                "/api/v1/auth/accept-invitation",
                &json!({"token": steward_tests::link_token(&mail), "password": "an imported passphrase"}),
            )
            .await;
        assert_eq!(accepted.status(), StatusCode::NO_CONTENT, "{backend:?}");

        // Update: name and roles added; JSON works the same.
        let json_rows =
            json!([{"email": "carol@example.com", "displayName": "Carol Renamed", "roles": "auditor"}])
                .to_string();
        let updated = expect_data(
            import(&app, &root, "?onDuplicate=update", "application/json", &json_rows).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(updated["updated"], 1, "{updated}");
        let carol_now = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/users/{}", carol.id),
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(carol_now["displayName"], "Carol Renamed");
        assert_eq!(carol_now["systemRoles"], json!(["auditor"]));
        let actions = app.audit_actions().await;
        for action in [
            "admin.user_created",
            "admin.role_granted",
            "organization.user_added",
            "admin.user_updated",
        ] {
            assert!(actions.iter().any(|a| a == action), "{action} {backend:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn imports_check_who_may_and_refuse_hostile_bodies() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let user_admin = app.user("ua@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let support = app.user("support@example.com").await;
        app.grant(support.id, "support").await;
        let owner = app.user("owner@example.com").await;
        app.organization(&root, "acme", &owner).await;
        let csv = "email,roles\nfay@example.com,\n";

        assert_eq!(import(&app, &support, "", "text/csv", csv).await.status(), StatusCode::FORBIDDEN);
        // A user_admin grants what they could grant by hand, and adds nobody to organizations.
        let report = expect_data(
            import(&app, &user_admin, "?dryRun=true", "text/csv", "email,roles,organizationSlug\nfay@example.com,support,\ngus@example.com,,acme\nhal@example.com,user_admin,\n").await,
            StatusCode::OK,
        )
        .await;
        let fields: Vec<(u64, String)> = report["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["line"].as_u64().unwrap(), e["field"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(fields, [(2, "roles".to_owned()), (3, "organizationSlug".to_owned())], "{report}");

        // Without invitations, no mail.
        let mails_before = app.count_rows("outbox_emails").await;
        let quiet = expect_data(import(&app, &root, "?sendInvitations=false", "text/csv", csv).await, StatusCode::OK).await;
        assert_eq!(quiet["created"], 1);
        assert_eq!(app.count_rows("outbox_emails").await, mails_before, "{backend:?}");

        for (query, content_type, body, status) in [
            ("", "text/plain", csv, StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ("", "text/csv", "email\nnul\u{0}@example.com\n", StatusCode::BAD_REQUEST),
            ("", "application/json", "{\"rows\": [1]}", StatusCode::BAD_REQUEST),
            ("", "application/json", "{\"rows\": ", StatusCode::BAD_REQUEST),
            ("?onDuplicate=merge", "text/csv", csv, StatusCode::BAD_REQUEST),
            ("?dryRun=perhaps", "text/csv", csv, StatusCode::BAD_REQUEST),
            ("", "text/csv", "email,shoeSize\nzed@example.com,44\n", StatusCode::BAD_REQUEST),
        ] {
            let answer = import(&app, &root, query, content_type, body).await;
            assert_eq!(answer.status(), status, "{query} {content_type} {body:?} {backend:?}");
        }
        let many = format!("email\n{}", (0..10_001).map(|i| format!("u{i}@example.com\n")).collect::<String>());
        let too_many = import(&app, &root, "?dryRun=true", "text/csv", &many).await;
        assert_eq!(too_many.status(), StatusCode::PAYLOAD_TOO_LARGE);
        app.stop().await;
    })
    .await;
}
