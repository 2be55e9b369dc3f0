//! Refresh rotation: families, reuse detection, the grace window, and races — on both databases.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use steward_persistence::entities::refresh_tokens;
use steward_tests::{
    PASSWORD, TestApp, each_backend, expect_data, expect_error, spawn_app_with, spawn_second_instance,
};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/refresh", &json!({"refreshToken": token}))
        .await
}

async fn refresh_ok(app: &TestApp, token: &str) -> Value {
    expect_data(refresh(app, token).await, StatusCode::OK).await
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotation_replays_within_the_grace_window_and_revokes_on_older_reuse() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.refresh_grace_secs = 10).await;
        let first = text(&app.register("ann@example.com").await, "refreshToken");

        let second = refresh_ok(&app, &first).await;
        let second_token = text(&second, "refreshToken");
        assert_ne!(second_token, first);
        let me = app
            .authed(Method::GET, "/api/v1/auth/me", &text(&second, "accessToken"))
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);

        let replay = refresh_ok(&app, &first).await;
        assert_eq!(
            text(&replay, "refreshToken"),
            second_token,
            "{backend:?}: the parent answers the same successor"
        );

        let third = text(&refresh_ok(&app, &second_token).await, "refreshToken");
        // `first` is now two generations back: an older ancestor revokes the family.
        expect_error(
            refresh(&app, &first).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        expect_error(
            refresh(&app, &third).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        assert!(
            app.audit_actions()
                .await
                .contains(&"auth.refresh_reuse_detected".to_owned())
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn reuse_after_the_window_revokes_the_family() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.refresh_grace_secs = 1).await;
        let registered = app.register("ann@example.com").await;
        let first = text(&registered, "refreshToken");
        let second = refresh_ok(&app, &first).await;
        tokio::time::sleep(Duration::from_millis(1600)).await;
        expect_error(
            refresh(&app, &first).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        expect_error(
            refresh(&app, &text(&second, "refreshToken")).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        let access = app
            .authed(Method::GET, "/api/v1/auth/me", &text(&second, "accessToken"))
            .send()
            .await
            .unwrap();
        expect_error(access, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        app.stop().await;
    })
    .await;
}

async fn live_tokens(app: &TestApp) -> (u64, u64) {
    let all = refresh_tokens::Entity::find()
        .count(app.db.connection())
        .await
        .unwrap();
    let live = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::UsedAt.is_null())
        .count(app.db.connection())
        .await
        .unwrap();
    (all, live)
}

#[tokio::test]
async fn fifty_concurrent_refreshes_share_one_successor() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.refresh_grace_secs = 10).await;
        let token = text(&app.register("ann@example.com").await, "refreshToken");
        let responses = join_all((0..50).map(|_| refresh(&app, &token))).await;
        let mut successors = Vec::new();
        for response in responses {
            successors.push(text(&expect_data(response, StatusCode::OK).await, "refreshToken"));
        }
        successors.dedup();
        assert_eq!(
            successors.len(),
            1,
            "{backend:?}: every request got the same successor"
        );
        assert_eq!(
            live_tokens(&app).await,
            (2, 1),
            "{backend:?}: one rotation, one live token"
        );
        refresh_ok(&app, &successors[0]).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_grace_window_exactly_one_of_fifty_concurrent_refreshes_succeeds() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.refresh_grace_secs = 0).await;
        let token = text(&app.register("ann@example.com").await, "refreshToken");
        let responses = join_all((0..50).map(|_| refresh(&app, &token))).await;
        let statuses: Vec<StatusCode> = responses.iter().map(|r| r.status()).collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::OK).count(),
            1,
            "{backend:?}: {statuses:?}"
        );
        assert_eq!(
            statuses
                .iter()
                .filter(|s| **s == StatusCode::UNAUTHORIZED)
                .count(),
            49
        );
        let (all, _) = live_tokens(&app).await;
        assert_eq!(all, 2, "{backend:?}: exactly one successor was ever stored");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_revoked_session_is_refused_by_another_instance_within_five_seconds() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let (second, handle) = spawn_second_instance(&app).await;
        app.register("ann@example.com").await;
        let signed_in = expect_data(app.login("ann@example.com", PASSWORD).await, StatusCode::OK).await;
        let token = text(&signed_in, "accessToken");
        let on_second = |token: String| {
            let client = app.client.clone();
            let url = format!("{second}/api/v1/auth/me");
            async move { client.get(url).bearer_auth(token).send().await.unwrap().status() }
        };
        assert_eq!(
            on_second(token.clone()).await,
            StatusCode::OK,
            "the other instance accepts the token"
        );

        let logout = app
            .authed(Method::POST, "/api/v1/auth/logout", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let started = std::time::Instant::now();
        loop {
            if on_second(token.clone()).await == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{backend:?}: still accepted after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn expired_access_refresh_and_email_tokens_are_refused() {
    use sea_orm::sea_query::Expr;
    use steward_persistence::entities::email_tokens;
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.access_token_ttl_secs = 1).await;
        let registered = app.register("ann@example.com").await;
        let past = chrono::Utc::now() - chrono::Duration::minutes(1);

        // Expire every refresh and email token in the database, as time would.
        refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::ExpiresAt, Expr::value(past))
            .exec(app.db.connection())
            .await
            .unwrap();
        expect_error(
            refresh(&app, &text(&registered, "refreshToken")).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;

        let forgot = app
            .post_json(
                "/api/v1/auth/forgot-password",
                &json!({"email": "ann@example.com"}),
            )
            .await;
        assert_eq!(forgot.status(), StatusCode::ACCEPTED);
        // The reset mail is issued after the answer: wait for it, then let it expire.
        let token = steward_tests::link_token(&app.outbox_mail("reset-password#token=").await);
        email_tokens::Entity::update_many()
            .col_expr(email_tokens::Column::ExpiresAt, Expr::value(past))
            .exec(app.db.connection())
            .await
            .unwrap();
        let expired = app
            .post_json(
                "/api/v1/auth/reset-password",
                &json!({"token": token, "newPassword": "a fresh passphrase"}),
            )
            .await;
        expect_error(expired, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        // The access token lives 1 s; verification allows 5 s of clock skew.
        // Whole-second timestamps: 1 s lifetime + 5 s allowance + 1 s of rounding.
        tokio::time::sleep(Duration::from_millis(7200)).await;
        let late = app
            .authed(Method::GET, "/api/v1/auth/me", &text(&registered, "accessToken"))
            .send()
            .await
            .unwrap();
        expect_error(late, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        app.stop().await;
    })
    .await;
}
