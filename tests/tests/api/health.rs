use reqwest::StatusCode;
use steward_migration::{Migrator, MigratorTrait};
use steward_tests::{each_backend, expect_data, spawn_app};

#[tokio::test]
async fn liveness_and_readiness_answer_on_a_fresh_install() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;

        let live = expect_data(app.get("/health").await, StatusCode::OK).await;
        assert_eq!(live["status"], "ok");

        let ready = expect_data(app.get("/health/ready").await, StatusCode::OK).await;
        assert_eq!(ready["status"], "ready", "{backend:?}");
        assert_eq!(ready["database"], "ok");
        assert_eq!(ready["appliedMigrations"], Migrator::migrations().len());

        // The root answers a small index whose links work.
        let index = expect_data(app.get("/").await, StatusCode::OK).await;
        assert_eq!(index["name"], "Steward");
        assert_eq!(index["version"], env!("CARGO_PKG_VERSION"));
        for link in ["docs", "openapi", "health", "readiness"] {
            let path = index[link].as_str().unwrap();
            assert_eq!(app.get(path).await.status(), StatusCode::OK, "{link}: {path}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_report_the_pool() {
    let app = spawn_app(steward_tests::Backend::Sqlite).await;
    for _ in 0..3 {
        app.get("/health").await;
    }
    app.get("/no/such/route").await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "Prometheus text format"
    );
    let text = response.text().await.unwrap();
    let health_count = text
        .lines()
        .find(|line| {
            line.starts_with("http_requests_total{")
                && line.contains("route=\"/health\"")
                && line.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no request counter for /health in:\n{text}"));
    let count: f64 = health_count.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{health_count}");
    assert!(
        text.contains("route=\"unmatched\""),
        "unknown routes are counted apart"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket{"),
        "latency is a histogram:\n{text}"
    );
    assert!(text.contains("db_pool_connections{state=\"idle\"}"), "{text}");
    assert!(text.contains("db_pool_max_connections 8"), "{text}");
    assert!(
        text.contains(&format!(
            "steward_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    for family in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(
            text.lines().any(|line| line.starts_with(family)),
            "{family} in:\n{text}"
        );
    }
    // Every family has HELP and TYPE lines (as promtool's check asks).
    let families: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| line.split(['{', ' ']).next().unwrap())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| text.contains(&format!("# TYPE {base} histogram")))
                })
                .unwrap_or(name)
        })
        .collect();
    for family in families {
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "no HELP for {family}:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "no TYPE for {family}:\n{text}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_a_sane_one() {
    let app = spawn_app(steward_tests::Backend::Sqlite).await;

    let generated = app.get("/health").await;
    let id = generated.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "a generated id is a UUID: {id}"
    );
    assert_eq!(generated.headers()["x-content-type-options"], "nosniff");

    let echoed = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-42");

    let hostile = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "a b <script>")
        .send()
        .await
        .unwrap();
    assert_ne!(hostile.headers()["x-request-id"], "a b <script>");
    app.stop().await;
}
