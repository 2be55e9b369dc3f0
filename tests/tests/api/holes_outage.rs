//! A database that drops its connections: answers tell the truth (a 2xx was stored, a 503 was
//! not) and connection failures are 503 with `Retry-After`, never 500.

use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_tests::{Backend, expect_data, send, spawn_app};

#[tokio::test]
async fn terminated_connections_answer_503_or_the_truth() {
    if !steward_tests::backends().await.contains(&Backend::Postgres) {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    let ann = app.user("ann@example.com").await;
    expect_data(
        send(
            &app,
            Method::POST,
            "/api/v1/groups",
            &ann,
            Some(json!({"name": "Before"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let mut created = 1;
    for round in 0..5 {
        app.database
            .postgres_admin(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
                app.database.name
            ))
            .await;
        for attempt in 0..4 {
            let answer = send(
                &app,
                Method::POST,
                "/api/v1/groups",
                &ann,
                Some(json!({"name": format!("Group {round}.{attempt}")})),
            )
            .await;
            match answer.status() {
                StatusCode::CREATED => created += 1,
                StatusCode::SERVICE_UNAVAILABLE => {
                    assert!(
                        answer.headers().contains_key("retry-after"),
                        "503 carries Retry-After"
                    );
                }
                other => panic!("round {round}: {other} {}", answer.text().await.unwrap()),
            }
        }
    }
    // Every 201 was stored and nothing else: the answers told the truth.
    let mut listed = None;
    for _ in 0..10 {
        let answer = send(&app, Method::GET, "/api/v1/groups?perPage=100", &ann, None).await;
        if answer.status() == StatusCode::OK {
            listed = Some(expect_data(answer, StatusCode::OK).await);
            break;
        }
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let listed = listed.expect("the database answers again");
    assert_eq!(listed.as_array().unwrap().len(), created);
    app.stop().await;
}

/// The forgot-password answer does not wait for the account's work, so its timing cannot tell
/// a registered address from an unknown one: with the account's row locked by someone else, a
/// request for it is still answered at once, and the mail follows when the lock goes.
#[tokio::test]
async fn forgot_password_answers_before_any_account_work() {
    if !steward_tests::backends().await.contains(&Backend::Postgres) {
        return;
    }
    use sqlx::Connection;
    let app = spawn_app(Backend::Postgres).await;
    app.user("ann@example.com").await;
    let mut blocker = sqlx::PgConnection::connect(&app.database.url).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT id FROM users WHERE email = 'ann@example.com' FOR UPDATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    for email in ["ann@example.com", "nobody@example.com"] {
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            app.post_json("/api/v1/auth/forgot-password", &json!({"email": email})),
        )
        .await
        .unwrap_or_else(|_| panic!("{email}: the answer waited for the locked account"));
        assert_eq!(answer.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(
        app.count_rows("email_tokens").await,
        1,
        "only the verification token so far"
    );
    sqlx::raw_sql("ROLLBACK").execute(&mut blocker).await.unwrap();
    let mail = app.outbox_mail("reset-password#token=").await;
    assert!(mail.contains("ann@example.com"), "{mail}");
    app.stop().await;
}
