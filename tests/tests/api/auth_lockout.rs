//! Brute-force protection: the per-email lock (in the database, atomic) and per-IP rate limits.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::json;
use steward_tests::{PASSWORD, each_backend, expect_data, expect_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn five_failures_lock_an_email_for_fifteen_minutes() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        app.register("ann@example.com").await;
        for _ in 0..5 {
            expect_error(
                app.login("ann@example.com", "wrong password!").await,
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
            )
            .await;
        }
        let locked = app.login("ann@example.com", PASSWORD).await;
        let retry_after: u64 = locked.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=900).contains(&retry_after), "{retry_after}");
        expect_error(locked, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
        assert!(
            app.audit_actions()
                .await
                .contains(&"auth.account_locked".to_owned())
        );

        for _ in 0..5 {
            app.login("ghost@example.com", "wrong password!").await;
        }
        let ghost = app.login("ghost@example.com", "wrong password!").await;
        expect_error(ghost, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_successful_sign_in_clears_the_failures() {
    let app = spawn_app(steward_tests::Backend::Sqlite).await;
    app.register("ann@example.com").await;
    for _ in 0..4 {
        app.login("ann@example.com", "wrong password!").await;
    }
    expect_data(app.login("ann@example.com", PASSWORD).await, StatusCode::OK).await;
    for _ in 0..4 {
        let response = app.login("ann@example.com", "wrong password!").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    expect_data(app.login("ann@example.com", PASSWORD).await, StatusCode::OK).await;
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_parallel_guesses_get_at_most_five_password_checks() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        app.register("ann@example.com").await;
        let responses =
            join_all((0..100).map(|i| app.login("ann@example.com", &format!("guess number {i}")))).await;
        let checked = responses
            .iter()
            .filter(|r| r.status() == StatusCode::UNAUTHORIZED)
            .count();
        let locked = responses
            .iter()
            .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
            .count();
        assert!(checked <= 5, "{backend:?}: {checked} passwords were checked");
        assert_eq!(
            checked + locked,
            100,
            "{backend:?}: every other attempt was refused as locked"
        );
        let failures = app
            .audit_actions()
            .await
            .iter()
            .filter(|a| *a == "auth.login_failed")
            .count();
        assert_eq!(failures, checked, "each check is audited");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn fifty_parallel_registrations_from_one_address_yield_exactly_the_limit() {
    let app = spawn_app_with(steward_tests::Backend::Sqlite, |config| {
        config.rate_limit_register_per_hour = 10
    })
    .await;
    let responses = join_all((0..50).map(|i| {
        app.post_json(
            "/api/v1/auth/register",
            &json!({"email": format!("user{i}@example.com"), "password": PASSWORD, "displayName": "U"}),
        )
    }))
    .await;
    let created = responses
        .iter()
        .filter(|r| r.status() == StatusCode::CREATED)
        .count();
    assert_eq!(created, 10);
    let limited: Vec<_> = responses
        .into_iter()
        .filter(|r| r.status() == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(limited.len(), 40);
    let first = limited.into_iter().next().unwrap();
    let retry_after: u64 = first.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    expect_error(first, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    app.stop().await;
}

#[tokio::test]
async fn login_refresh_and_reset_have_their_own_limits() {
    let app = spawn_app_with(steward_tests::Backend::Sqlite, |config| {
        config.rate_limit_login_per_hour = 2;
        config.rate_limit_password_reset_per_hour = 1;
        config.rate_limit_refresh_per_hour = 1;
    })
    .await;
    for _ in 0..2 {
        app.login("x@example.com", "whatever it is").await;
    }
    expect_error(
        app.login("x@example.com", "whatever it is").await,
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
    )
    .await;
    let forgot = || app.post_json("/api/v1/auth/forgot-password", &json!({"email": "x@example.com"}));
    assert_eq!(forgot().await.status(), StatusCode::ACCEPTED);
    expect_error(forgot().await, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    let refresh = || app.post_json("/api/v1/auth/refresh", &json!({"refreshToken": "nope"}));
    assert_eq!(refresh().await.status(), StatusCode::UNAUTHORIZED);
    expect_error(refresh().await, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
    app.stop().await;
}
