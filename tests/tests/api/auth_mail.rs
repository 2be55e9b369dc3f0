//! Email verification, password reset and email change, with mail delivered over SMTP to a real
//! listener on loopback.

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
        assert!(mail.text().contains("/verify-email?token="), "{}", mail.data);
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
    let text = app.outbox_mail("/verify-email?token=").await;
    assert!(text.contains("To: ann@example.com"), "{text}");
    assert!(text.contains("/verify-email?token="), "{text}");
    app.stop().await;
}
