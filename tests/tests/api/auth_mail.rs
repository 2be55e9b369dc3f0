//! Email verification, password reset and email change, with mail delivered over SMTP to a real
//! listener on loopback.

use mail_parser::MimeHeaders;
use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_tests::smtp::SmtpServer;
use steward_tests::{Backend, PASSWORD, each_backend, expect_data, expect_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn the_verification_mail_verifies_the_address_once() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let app = spawn_app_with(backend, move |config| config.smtp_url = Some(url)).await;
        let token = app.register("ann@example.com").await["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();

        let mail = smtp.wait_for("ann@example.com", 1).await;
        assert!(
            mail.text().contains("Subject: Confirm your email address"),
            "{}",
            mail.data
        );
        assert!(mail.text().contains("/verify-email#token="), "{}", mail.data);
        let verified = expect_data(
            app.post_json("/api/v1/auth/verify-email", &json!({"token": mail.link_token()}))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(verified["emailVerified"], true);
        let again = app
            .post_json("/api/v1/auth/verify-email", &json!({"token": mail.link_token()}))
            .await;
        let error = expect_error(again, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(error["details"][0]["field"], "token");

        let resend = app
            .authed(Method::POST, "/api/v1/auth/resend-verification", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(resend.status(), StatusCode::ACCEPTED);
        assert!(
            app.audit_actions()
                .await
                .contains(&"auth.email_verified".to_owned())
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_password_reset_works_once_and_signs_out_everywhere() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let app = spawn_app_with(backend, move |config| config.smtp_url = Some(url)).await;
        let session = app.register("ann@example.com").await;

        let unknown = app
            .post_json(
                "/api/v1/auth/forgot-password",
                &json!({"email": "nobody@example.com"}),
            )
            .await;
        assert_eq!(
            unknown.status(),
            StatusCode::ACCEPTED,
            "no hint whether the account exists"
        );
        let known = app
            .post_json(
                "/api/v1/auth/forgot-password",
                &json!({"email": "Ann@example.com"}),
            )
            .await;
        assert_eq!(known.status(), StatusCode::ACCEPTED);
        let mail = smtp.wait_for("ann@example.com", 2).await;
        assert!(
            mail.text().contains("Subject: Reset your password"),
            "{}",
            mail.data
        );
        let token = mail.link_token();

        let weak = app
            .post_json(
                "/api/v1/auth/reset-password",
                &json!({"token": token, "newPassword": "password1"}),
            )
            .await;
        expect_error(weak, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let reset = app
            .post_json(
                "/api/v1/auth/reset-password",
                &json!({"token": token, "newPassword": "a fresh passphrase"}),
            )
            .await;
        assert_eq!(
            reset.status(),
            StatusCode::NO_CONTENT,
            "a weak attempt does not spend the token"
        );
        let reused = app
            .post_json(
                "/api/v1/auth/reset-password",
                &json!({"token": token, "newPassword": "another passphrase"}),
            )
            .await;
        expect_error(reused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        let old = app
            .authed(
                Method::GET,
                "/api/v1/auth/me",
                session["accessToken"].as_str().unwrap(),
            )
            .send()
            .await
            .unwrap();
        expect_error(old, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        expect_error(
            app.login("ann@example.com", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        )
        .await;
        expect_data(
            app.login("ann@example.com", "a fresh passphrase").await,
            StatusCode::OK,
        )
        .await;
        let actions = app.audit_actions().await;
        assert!(actions.contains(&"auth.password_reset_requested".to_owned()));
        assert!(actions.contains(&"auth.password_reset".to_owned()));
        assert_eq!(
            smtp.received()
                .iter()
                .filter(|m| m.recipients.contains(&"nobody@example.com".to_owned()))
                .count(),
            0
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_email_change_takes_effect_when_the_new_address_is_verified() {
    let smtp = SmtpServer::start().await;
    let url = smtp.url();
    let app = spawn_app_with(Backend::Sqlite, move |config| config.smtp_url = Some(url)).await;
    let token = app.register("ann@example.com").await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    app.register("taken@example.com").await;

    let taken = app
        .authed(Method::PUT, "/api/v1/auth/me", &token)
        .json(&json!({"email": "taken@example.com"}))
        .send()
        .await
        .unwrap();
    expect_error(taken, StatusCode::CONFLICT, "CONFLICT").await;

    let pending = expect_data(
        app.authed(Method::PUT, "/api/v1/auth/me", &token)
            .json(&json!({"email": "ann@new.example"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(pending["email"], "ann@example.com");
    assert_eq!(pending["pendingEmail"], "ann@new.example");
    let mail = smtp.wait_for("ann@new.example", 1).await;
    let verified = expect_data(
        app.post_json("/api/v1/auth/verify-email", &json!({"token": mail.link_token()}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(verified["email"], "ann@new.example");
    assert_eq!(verified["pendingEmail"], serde_json::Value::Null);
    expect_data(app.login("ann@new.example", PASSWORD).await, StatusCode::OK).await;
    app.stop().await;
}

#[tokio::test]
async fn without_smtp_mail_goes_to_the_outbox_directory() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register("ann@example.com").await;
    let text = app.outbox_mail("/verify-email#token=").await;
    assert!(text.contains("To: ann@example.com"), "{text}");
    assert!(
        text.contains("MIME-Version: 1.0"),
        "the file is the MIME message: {text}"
    );
    assert!(text.contains("<a href=\"http://"), "with its HTML part: {text}");
    app.stop().await;
}

#[tokio::test]
async fn account_mail_is_multipart_utf8_linked_to_the_app_and_translated() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let templates = tempfile::tempdir().unwrap();
        let german = templates.path().join("de");
        std::fs::create_dir_all(&german).unwrap();
        std::fs::write(german.join("reset-password.subject.txt"), "Passwort zurücksetzen – {{ product }}").unwrap();
        std::fs::write(
            german.join("reset-password.txt"),
            "Wähle ein neues Passwort: {{ link }}\nGültig {{ hours }} Stunde.",
        )
        .unwrap();
        std::fs::write(
            german.join("reset-password.html"),
            "{% extends \"layout.html\" %}{% block content %}<a href=\"{{ link }}\">Neues Passwort für {{ email }}</a>{% endblock %}",
        )
        .unwrap();
        let dir = templates.path().to_owned();
        let app = spawn_app_with(backend, move |config| {
            config.smtp_url = Some(url);
            config.app_url = Some("https://app.example.com/".to_owned());
            config.mail_link_verify_email = Some("myapp://verify?token={token}".to_owned());
            config.mail_templates_dir = Some(dir);
            config.mail_from = "Steward <no-reply@mail.example.com>".to_owned();
        })
        .await;
        let token = app.register("ann@example.com").await["accessToken"]
            .as_str()
            .unwrap()
            .to_owned();

        // The verification mail: English, text and HTML, linked to the app's own scheme.
        let mail = smtp.wait_for("ann@example.com", 1).await;
        let parsed = mail.parsed();
        assert_eq!(parsed.header_raw("MIME-Version").map(str::trim), Some("1.0"), "{}", mail.data);
        let content_type = parsed.content_type().expect("a Content-Type");
        assert_eq!(
            (content_type.ctype(), content_type.subtype()),
            ("multipart", Some("alternative")),
            "{}",
            mail.data
        );
        let message_id = parsed.message_id().expect("a Message-ID").to_owned();
        assert!(message_id.ends_with("@mail.example.com"), "{message_id}");
        assert!(parsed.date().is_some());
        assert_eq!(parsed.text_body.len(), 1);
        assert_eq!(parsed.html_body.len(), 1);
        for part in parsed.parts.iter().skip(1) {
            let part_type = part.content_type().expect("each part has a Content-Type");
            assert_eq!(part_type.attribute("charset"), Some("utf-8"), "{}", mail.data);
        }
        assert_eq!(mail.subject(), "Confirm your email address");
        let link = format!("myapp://verify?token={}", mail.link_token());
        assert!(mail.text_body().contains(&link), "{}", mail.text_body());
        let html = mail.html_body().expect("an HTML part");
        assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
        assert!(html.contains("<html lang=\"en\">"), "{html}");
        assert_eq!(parsed.header_raw("Content-Language"), None);

        // Ann reads German: the reset mail is the German translation, with a UTF-8 subject,
        // linked to the app (STEWARD_APP_URL, no per-link template).
        let updated = app
            .authed(Method::PUT, "/api/v1/auth/me", &token)
            .json(&json!({"locale": "de-AT", "version": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(updated.status(), StatusCode::OK);
        let asked = app
            .post_json("/api/v1/auth/forgot-password", &json!({"email": "ann@example.com"}))
            .await;
        assert_eq!(asked.status(), StatusCode::ACCEPTED);
        let reset = smtp.wait_for("ann@example.com", 2).await;
        assert!(
            reset.data.lines().any(|line| line.starts_with("Subject:") && line.to_ascii_lowercase().contains("=?utf-8?")),
            "the subject is an encoded word: {}",
            reset.data
        );
        assert_eq!(reset.subject(), "Passwort zurücksetzen – Steward");
        assert_eq!(reset.parsed().header_raw("Content-Language").map(str::trim), Some("de"));
        let reset_link = format!("https://app.example.com/reset-password?token={}", reset.link_token());
        assert!(reset.text_body().starts_with(&format!("Wähle ein neues Passwort: {reset_link}")), "{}", reset.text_body());
        let reset_html = reset.html_body().expect("the German HTML part");
        assert!(reset_html.contains("<html lang=\"de\">"), "{reset_html}");
        assert!(reset_html.contains("Neues Passwort für ann@example.com"), "{reset_html}");
        assert_ne!(reset.parsed().message_id(), Some(message_id.as_str()));

        // The app's link works against the API.
        let done = app
            .post_json(
                "/api/v1/auth/reset-password",
                &json!({"token": reset.link_token(), "newPassword": "a new Passphrase 42"}),
            )
            .await;
        assert_eq!(done.status(), StatusCode::NO_CONTENT);
        app.stop().await;
    })
    .await;
}

/// The pages are static (no database): one backend suffices.
#[tokio::test]
async fn the_built_in_pages_are_served_under_a_strict_policy_unless_the_app_has_its_own() {
    let app = spawn_app(Backend::Sqlite).await;
    for page in ["verify-email", "reset-password", "accept-invitation"] {
        let response = app
            .client
            .get(app.url(&format!("/{page}?token=do-not-echo-me")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{page}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/html; charset=utf-8");
        let policy = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{policy}");
        }
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["x-frame-options"], "DENY");
        let html = response.text().await.unwrap();
        assert!(html.contains(&format!("data-page=\"{page}\"")), "{html}");
        assert!(
            !html.contains("do-not-echo-me"),
            "the server never writes the token into the page"
        );
        assert!(!html.contains("<script>"), "no inline script");
    }
    let script = app
        .client
        .get(app.url("/_steward/pages.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(script.text().await.unwrap().contains("history.replaceState"));
    let style = app
        .client
        .get(app.url("/_steward/pages.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(style.status(), StatusCode::OK);
    let posted = app.client.post(app.url("/reset-password")).send().await.unwrap();
    assert_eq!(posted.status(), StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await;

    let with_app = spawn_app_with(Backend::Sqlite, |config| {
        config.app_url = Some("https://app.example.com".to_owned());
    })
    .await;
    for path in ["/reset-password?token=x", "/verify-email", "/accept-invitation"] {
        let response = with_app.client.get(with_app.url(path)).send().await.unwrap();
        expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
    }
    // The report unsubscribe page stays Steward's own, with its script.
    for path in ["/report-unsubscribe?token=x", "/_steward/pages.js"] {
        let response = with_app.client.get(with_app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    with_app.stop().await;
}

/// Two instances on one database both read the outbox: every mail is sent once (each worker
/// claims a row with a conditional update before sending it).
#[tokio::test]
async fn two_instances_send_each_mail_once() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let first_url = url.clone();
        let app = spawn_app_with(backend, move |config| config.smtp_url = Some(first_url)).await;
        let (second, handle) =
            steward_tests::spawn_instance_with(&app, move |config| config.smtp_url = Some(url)).await;
        // Registrations through both instances at once: one verification mail each.
        let registrations: Vec<_> = (0..30)
            .map(|n| {
                let base = if n % 2 == 0 { app.address.clone() } else { second.clone() };
                let client = app.client.clone();
                tokio::spawn(async move {
                    client
                        .post(format!("{base}/api/v1/auth/register"))
                        .json(&json!({"email": format!("user{n}@example.com"), "password": PASSWORD, "displayName": "U"}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                })
            })
            .collect();
        for registration in registrations {
            assert_eq!(registration.await.unwrap(), StatusCode::CREATED);
        }
        for n in 0..30 {
            smtp.wait_for(&format!("user{n}@example.com"), 1).await;
        }
        // Both workers poll a few more times: nothing is sent again.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let received = smtp.received();
        let mut ids: Vec<String> = received
            .iter()
            .map(|mail| mail.parsed().message_id().unwrap_or_default().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(received.len(), 30, "{backend:?}: {} mails for 30 accounts", received.len());
        assert_eq!(ids.len(), 30, "{backend:?}");
        assert_eq!(app.count_rows("outbox_emails").await, 30);
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

/// An account's first mail comes in its language: `locale` at registration (the verification
/// mail) and at an operator's creation (the invitation); a malformed tag is `400` naming it and
/// creates nothing.
#[tokio::test]
async fn the_first_mail_is_in_the_locale_given_at_registration_or_creation() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let templates = tempfile::tempdir().unwrap();
        let german = templates.path().join("de");
        std::fs::create_dir_all(&german).unwrap();
        for (kind, subject, text) in [
            (
                "verify-email",
                "Bestätige deine Adresse",
                "Bestätigen: {{ link }}",
            ),
            ("invitation", "Du bist eingeladen", "Passwort wählen: {{ link }}"),
        ] {
            std::fs::write(german.join(format!("{kind}.subject.txt")), subject).unwrap();
            std::fs::write(german.join(format!("{kind}.txt")), text).unwrap();
        }
        let dir = templates.path().to_owned();
        let app = spawn_app_with(backend, move |config| {
            config.smtp_url = Some(url);
            config.mail_templates_dir = Some(dir);
        })
        .await;
        let register = |email: &str, locale: serde_json::Value| {
            app.post_json(
                "/api/v1/auth/register",
                &json!({"email": email, "password": PASSWORD, "displayName": "Ann", "locale": locale}),
            )
        };
        for bad in [
            json!("de_AT"),
            json!(""),
            json!("x".repeat(10_000)),
            json!("de\u{0}"),
            json!(7),
        ] {
            let refused = register("bad@example.com", bad.clone()).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{backend:?} {bad}");
        }
        assert_eq!(app.count_users().await, 0, "{backend:?}: nothing was created");

        let registered = expect_data(
            register("ann@example.com", json!("de-AT")).await,
            StatusCode::CREATED,
        )
        .await;
        let mail = smtp.wait_for("ann@example.com", 1).await;
        assert_eq!(mail.subject(), "Bestätige deine Adresse", "{backend:?}");
        assert_eq!(
            mail.parsed().header_raw("Content-Language").map(str::trim),
            Some("de")
        );
        let token = registered["accessToken"].as_str().unwrap();
        let me = expect_data(
            app.authed(Method::GET, "/api/v1/auth/me", token)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["locale"], "de-AT", "{backend:?}: the account keeps it");

        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let created = steward_tests::send(
            &app,
            Method::POST,
            "/api/admin/v1/users",
            &root,
            Some(json!({"email": "ben@example.com", "displayName": "Ben", "locale": "de"})),
        )
        .await;
        let created = expect_data(created, StatusCode::CREATED).await;
        assert_eq!(created["locale"], "de", "{backend:?}: {created}");
        let invitation = smtp.wait_for("ben@example.com", 1).await;
        assert_eq!(invitation.subject(), "Du bist eingeladen", "{backend:?}");
        let refused = steward_tests::send(
            &app,
            Method::POST,
            "/api/admin/v1/users",
            &root,
            Some(json!({"email": "cy@example.com", "displayName": "Cy", "locale": "en GB"})),
        )
        .await;
        let error = expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(error["details"][0]["field"], "locale", "{error}");
        app.stop().await;
    })
    .await;
}
