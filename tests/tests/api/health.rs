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

/// The value of the series `name{labels…}` (labels as written in the exposition), 0 when absent.
fn series(text: &str, name: &str, labels: &str) -> f64 {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

/// Business counters move with what happens (the recorder is shared by the tests of this
/// process, so each is checked to have grown by at least this test's own events), and with
/// STEWARD_METRICS_BIND the figures move to the management port.
#[tokio::test]
async fn business_counters_count_sign_ins_lockouts_limits_and_mail_on_the_management_port() {
    use serde_json::json;
    let smtp = steward_tests::smtp::SmtpServer::start().await;
    let url = smtp.url();
    let app = steward_tests::spawn_app_with(steward_tests::Backend::Sqlite, move |config| {
        config.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
        config.smtp_url = Some(url);
        config.rate_limit_register_per_hour = 2;
        config.login_max_attempts = 2;
    })
    .await;
    let management = app.management_address.clone().expect("a management address");
    let scrape = || {
        let client = app.client.clone();
        let url = format!("{management}/metrics");
        async move {
            let response = client.get(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };
    let before = scrape().await;

    app.register("ann@example.com").await;
    smtp.wait_for("ann@example.com", 1).await;
    let ok = app.login("ann@example.com", steward_tests::PASSWORD).await;
    assert_eq!(ok.status(), StatusCode::OK);
    for _ in 0..2 {
        let wrong = app.login("ann@example.com", "not the password at all").await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = app.login("ann@example.com", steward_tests::PASSWORD).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    let mut refused = 0;
    for n in 0..3 {
        let response = app
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": format!("r{n}@example.com"), "password": steward_tests::PASSWORD, "displayName": "R"}),
            )
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert!(refused >= 1, "the register limit refused one");

    // The mail is counted once the SMTP server has answered; wait for that.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut after = scrape().await;
    while series(&after, "steward_mails_total", "outcome=\"sent\"")
        <= series(&before, "steward_mails_total", "outcome=\"sent\"")
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        after = scrape().await;
    }
    let grew = |name: &str, labels: &str| series(&after, name, labels) - series(&before, name, labels);
    assert!(
        grew("steward_sign_ins_total", "outcome=\"success\"") >= 1.0,
        "{after}"
    );
    assert!(
        grew("steward_sign_ins_total", "outcome=\"invalid_credentials\"") >= 2.0,
        "{after}"
    );
    assert!(
        grew("steward_sign_ins_total", "outcome=\"locked\"") >= 1.0,
        "{after}"
    );
    assert!(grew("steward_lockouts_total", "") >= 1.0, "{after}");
    assert!(
        grew("steward_rate_limited_total", "limit=\"register\"") >= 1.0,
        "{after}"
    );
    assert!(grew("steward_mails_total", "outcome=\"sent\"") >= 1.0, "{after}");
    for family in [
        "steward_sign_ins_total",
        "steward_lockouts_total",
        "steward_rate_limited_total",
        "steward_mails_total",
    ] {
        assert!(after.contains(&format!("# HELP {family} ")), "{family}");
    }

    // The API's port no longer serves them; the management port serves nothing else.
    let public = app.get("/metrics").await;
    assert_eq!(public.status(), StatusCode::NOT_FOUND);
    let health = app
        .client
        .get(format!("{management}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let other = app
        .client
        .get(format!("{management}/api/v1/auth/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Every PostgreSQL connection Steward opens has the JIT off (it compiled the dashboard's
/// correlated counts for 280 ms to run them for 2 ms); SQLite has nothing of the kind.
#[tokio::test]
async fn postgres_connections_run_without_jit() {
    each_backend(|backend| async move {
        if backend != steward_tests::Backend::Postgres {
            return;
        }
        let app = spawn_app(backend).await;
        use sea_orm::{ConnectionTrait, Statement};
        let connection = app.db.connection();
        // More statements than one connection serves, so that several pooled ones answer.
        let answers = futures_util::future::join_all((0..8).map(|_| {
            connection.query_one_raw(Statement::from_string(
                connection.get_database_backend(),
                "SELECT current_setting('jit') AS jit, pg_sleep(0.05)::text AS slept",
            ))
        }))
        .await;
        for answer in answers {
            let row = answer.unwrap().unwrap();
            assert_eq!(row.try_get::<String>("", "jit").unwrap(), "off");
        }
        app.stop().await;
    })
    .await;
}
