//! Readiness follows the database: 503 while it is unreachable or behind on migrations, 200 again
//! once it is back, without a restart.

use std::time::Duration;

use reqwest::StatusCode;
use steward_tests::{Backend, TestApp, backends, spawn_app};

async fn wait_for_status(app: &TestApp, wanted: StatusCode, within: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let response = app.get("/health/ready").await;
        let status = response.status();
        let body: serde_json::Value = response.json().await.unwrap();
        if status == wanted {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readiness stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn readiness_is_503_while_postgres_refuses_connections_and_recovers_after() {
    if !backends().await.contains(&Backend::Postgres) {
        return;
    }
    let app = spawn_app(Backend::Postgres).await;
    wait_for_status(&app, StatusCode::OK, Duration::from_secs(5)).await;

    let name = app.database.name.clone();
    app.database
        .postgres_admin(&format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false"))
        .await;
    app.database
        .postgres_admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        ))
        .await;

    let down = wait_for_status(&app, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(15)).await;
    assert_eq!(down["success"], false);
    assert_eq!(down["error"]["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(down["error"]["details"][0]["field"], "database");
    assert_eq!(
        expect_live(&app).await,
        StatusCode::OK,
        "liveness does not depend on the database"
    );

    app.database
        .postgres_admin(&format!("ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"))
        .await;
    let up = wait_for_status(&app, StatusCode::OK, Duration::from_secs(20)).await;
    assert_eq!(up["data"]["status"], "ready");
    app.stop().await;
}

async fn expect_live(app: &TestApp) -> StatusCode {
    app.get("/health").await.status()
}

#[tokio::test]
async fn readiness_is_503_while_migrations_are_pending() {
    let app = spawn_app(Backend::Sqlite).await;
    app.db.migrate_down(Some(1)).await.unwrap();
    let pending = wait_for_status(&app, StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(5)).await;
    assert_eq!(pending["error"]["details"][0]["field"], "migrations");
    app.db.migrate_up().await.unwrap();
    wait_for_status(&app, StatusCode::OK, Duration::from_secs(5)).await;
    app.stop().await;
}
