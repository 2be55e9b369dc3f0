//! The operators' health report (`GET /api/admin/v1/health`, `…/health/report`): after load its
//! percentiles are present and ordered, the database and worker figures are this instance's,
//! a stopped SMTP listener turns the mail queue `warn` (a working one keeps it `ok`),
//! configured thresholds rate the figures, two instances report their own requests, the
//! exports, and who may read it.

use reqwest::{Method, StatusCode};
use serde_json::Value;
use steward_tests::smtp::SmtpServer;
use steward_tests::{
    Backend, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app, spawn_app_with,
    spawn_second_instance,
};

const WORKERS: [&str; 11] = [
    "mail",
    "push",
    "audit_sealer",
    "jobs",
    "event_dispatcher",
    "webhook_deliveries",
    "notification_mail",
    "maintenance",
    "quota_metrics",
    "report_scheduler",
    "event_hub",
];

async fn operator(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

async fn health(app: &TestApp, user: &TestUser) -> Value {
    expect_data(
        send(app, Method::GET, "/api/admin/v1/health", user, None).await,
        StatusCode::OK,
    )
    .await
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|check| check["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report}"))
}

fn queue<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|queue| queue["name"] == name)
        .unwrap_or_else(|| panic!("no queue {name}: {report}"))
}

fn rank(status: &Value) -> u8 {
    match status.as_str() {
        Some("ok") => 0,
        Some("warn") => 1,
        Some("critical") => 2,
        other => panic!("not a status: {other:?}"),
    }
}

/// Polls the report until `ready` holds (the workers run every 50 ms in the tests).
async fn health_until(app: &TestApp, user: &TestUser, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let report = health(app, user).await;
        if ready(&report) {
            return report;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {report}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn after_load_the_report_has_ordered_percentiles_and_this_instances_figures() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        for _ in 0..60 {
            assert_eq!(app.get("/health").await.status(), StatusCode::OK);
        }
        for _ in 0..3 {
            assert_eq!(app.get("/no/such/route").await.status(), StatusCode::NOT_FOUND);
        }
        // Every enabled worker has passed at least once, and the mail the sign-ups queued
        // (verification, the role grant's notification) is out.
        let report = health_until(&app, &root, |report| {
            let passed = report["workers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|worker| worker["enabled"] == true && worker["name"] != "maintenance")
                .all(|worker| worker["lastPassAt"].is_string());
            let idle = ["mail", "push", "webhooks"]
                .iter()
                .all(|name| queue(report, name)["pending"] == 0);
            passed && idle
        })
        .await;

        // Requests: three windows, each holding the load, percentiles in order.
        let windows = report["requests"].as_array().unwrap();
        let minutes: Vec<u64> = windows
            .iter()
            .map(|w| w["windowMinutes"].as_u64().unwrap())
            .collect();
        assert_eq!(minutes, [1, 5, 15], "{report}");
        for window in windows {
            assert!(window["requests"].as_u64().unwrap() >= 63, "{window}");
            assert!(window["clientErrors"].as_u64().unwrap() >= 3, "{window}");
            assert_eq!(window["serverErrors"], 0, "{window}");
            assert!(window["perSecond"].as_f64().unwrap() > 0.0, "{window}");
            let latency = &window["latencyMs"];
            let (p50, p95, p99) = (
                latency["p50"].as_f64().unwrap(),
                latency["p95"].as_f64().unwrap(),
                latency["p99"].as_f64().unwrap(),
            );
            assert!(0.0 < p50 && p50 <= p95 && p95 <= p99, "{window}");
        }
        assert_eq!(
            check(&report, "requests.p99_ms")["value"].as_f64().unwrap(),
            windows[1]["latencyMs"]["p99"].as_f64().unwrap()
        );

        // The instance and its database.
        assert_eq!(report["instance"]["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            report["instance"]["memoryBytes"].as_u64().unwrap() > 1024 * 1024,
            "{report}"
        );
        let database = &report["database"];
        let expected_backend = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        };
        assert_eq!(database["backend"], expected_backend);
        assert_eq!(database["migrations"]["pending"], serde_json::json!([]));
        assert!(
            database["migrations"]["applied"].as_u64().unwrap() >= 26,
            "{database}"
        );
        assert_eq!(database["pool"]["max"], 8);
        assert!(database["pool"]["size"].as_u64().unwrap() >= 1, "{database}");
        assert!(database["sizeBytes"].as_u64().unwrap() > 0);
        let users = database["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|table| table["name"] == "users")
            .unwrap_or_else(|| panic!("no users table: {database}"));
        assert!(users["bytes"].as_u64().unwrap() > 0, "{users}");
        match backend {
            Backend::Sqlite => {
                assert_eq!(users["rowsEstimated"], false);
                assert_eq!(users["rows"].as_i64().unwrap(), app.count_users().await);
            }
            Backend::Postgres => assert_eq!(users["rowsEstimated"], true),
        }

        // Queues: mail written to the data directory (no SMTP configured here), nothing waiting.
        let mail = queue(&report, "mail");
        assert_eq!(mail["transport"], "directory");
        assert_eq!(queue(&report, "push")["transport"], "log");
        assert_eq!(queue(&report, "webhooks")["transport"], "http");
        for name in ["mail", "push", "webhooks"] {
            assert_eq!(queue(&report, name)["pending"], 0, "{report}");
            assert_eq!(queue(&report, name)["status"], "ok", "{report}");
        }

        // Workers: every one named, all enabled here and none late.
        let names: Vec<&str> = report["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|worker| worker["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, WORKERS);
        for worker in report["workers"].as_array().unwrap() {
            assert_eq!(worker["enabled"], true, "{worker}");
            assert_eq!(worker["status"], "ok", "{worker}");
        }

        // Every check has a status; the report's is the worst of them.
        let worst = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|check| rank(&check["status"]))
            .max()
            .unwrap();
        assert_eq!(rank(&report["status"]), worst);
        assert_eq!(check(&report, "database.migrations_pending")["status"], "ok");
        let pool = check(&report, "database.pool_in_use_percent");
        assert_eq!(
            (pool["warn"].as_f64(), pool["critical"].as_f64()),
            (Some(80.0), Some(95.0))
        );
        // Enough requests for the error rate to be rated: no 5xx, so 0 and `ok`, no note.
        let errors = check(&report, "requests.error_percent");
        assert_eq!(errors["value"].as_f64(), Some(0.0), "{errors}");
        assert_eq!(errors["status"], "ok");
        assert!(errors["note"].is_null(), "{errors}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_stopped_smtp_listener_turns_the_mail_queue_warn_and_a_working_one_keeps_it_ok() {
    each_backend(|backend| async move {
        // Nothing listens on this port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let app = spawn_app_with(backend, |config| {
            config.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
        })
        .await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let report = health_until(&app, &root, |report| {
            !queue(report, "mail")["lastDelivery"].is_null()
        })
        .await;
        let mail = queue(&report, "mail");
        assert_eq!(mail["transport"], "smtp");
        assert_eq!(mail["lastDelivery"]["outcome"], "failed", "{mail}");
        assert!(
            mail["lastDelivery"]["error"]
                .as_str()
                .is_some_and(|e| !e.is_empty()),
            "{mail}"
        );
        assert_eq!(mail["status"], "warn", "{mail}");
        // The verification mail waits for its retry.
        assert!(mail["pending"].as_u64().unwrap() >= 1, "{mail}");
        assert!(mail["oldestQueuedAt"].is_string(), "{mail}");
        let last = check(&report, "queues.mail.last_delivery");
        assert_eq!(
            (last["value"].as_str(), last["status"].as_str()),
            (Some("failed"), Some("warn"))
        );
        assert!(rank(&report["status"]) >= 1, "{report}");
        app.stop().await;

        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let app = spawn_app_with(backend, move |config| config.smtp_url = Some(url)).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        smtp.wait_for("root@example.com", 1).await;
        let report = health_until(&app, &root, |report| {
            queue(report, "mail")["lastDelivery"]["outcome"] == "sent"
        })
        .await;
        let mail = queue(&report, "mail");
        assert_eq!(mail["status"], "ok", "{mail}");
        assert!(mail["lastDelivery"]["error"].is_null(), "{mail}");
        assert_eq!(check(&report, "queues.mail.last_delivery")["status"], "ok");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn configured_thresholds_rate_the_figures() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            // Any process uses more than 2 MiB; any latency is at least 0 ms.
            config.health_memory_mb = vec![1, 2];
            config.health_latency_p99_ms = vec![0, 600_000];
        })
        .await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let report = health(&app, &root).await;
        let memory = check(&report, "instance.memory_mb");
        assert_eq!(memory["status"], "critical", "{memory}");
        assert_eq!(
            (memory["warn"].as_f64(), memory["critical"].as_f64()),
            (Some(1.0), Some(2.0))
        );
        assert_eq!(memory["unit"], "MiB");
        let latency = check(&report, "requests.p99_ms");
        assert_eq!(latency["status"], "warn", "{latency}");
        assert_eq!(latency["critical"].as_f64(), Some(600_000.0));
        assert_eq!(report["status"], "critical");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn each_instance_reports_its_own_requests_and_the_shared_database() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let (second, handle) = spawn_second_instance(&app).await;
        let client = reqwest::Client::new();
        for _ in 0..80 {
            let answered = client.get(format!("{second}/health")).send().await.unwrap();
            assert_eq!(answered.status(), StatusCode::OK);
        }
        let read = |address: String| {
            let request = client
                .get(format!("{address}/api/admin/v1/health"))
                .bearer_auth(&root.token);
            async move { expect_data(request.send().await.unwrap(), StatusCode::OK).await }
        };
        let first = read(app.address.clone()).await;
        let other = read(second.clone()).await;
        assert_ne!(first["instance"]["id"], other["instance"]["id"]);
        let served = |report: &Value| report["requests"][2]["requests"].as_u64().unwrap();
        assert!(served(&other) >= 80, "{other}");
        assert!(served(&first) < 80, "{first}");
        assert_eq!(first["database"]["backend"], other["database"]["backend"]);
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_report_exports_as_csv_and_json_and_refuses_other_formats() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let answer = send(
            &app,
            Method::GET,
            "/api/admin/v1/health/report?format=csv",
            &root,
            None,
        )
        .await;
        assert_eq!(answer.status(), StatusCode::OK);
        let header = |name: &str| answer.headers()[name].to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with("text/csv"));
        let disposition = header("content-disposition");
        assert!(
            disposition.starts_with("attachment; filename=\"steward-health-")
                && disposition.ends_with(".csv\""),
            "{disposition}"
        );
        let text = answer.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            ["figure", "value", "unit", "status", "warn", "critical", "note"]
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let row = |figure: &str| {
            rows.iter()
                .find(|row| &row[0] == figure)
                .unwrap_or_else(|| panic!("no row {figure}: {text}"))
        };
        assert!(["ok", "warn", "critical"].contains(&&row("status")[1]));
        assert_eq!(&row("database.pool_in_use_percent")[4], "80");
        assert!(row("requests.1m.requests")[1].parse::<u64>().unwrap() >= 1);
        assert_eq!(&row("instance.version")[1], env!("CARGO_PKG_VERSION"));
        row("workers.jobs.last_pass_age_secs");
        row("database.tables.users.rows");

        let answer = send(
            &app,
            Method::GET,
            "/api/admin/v1/health/report?format=json",
            &root,
            None,
        )
        .await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(
            answer.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .ends_with(".json\"")
        );
        let report: Value = answer.json().await.unwrap();
        assert!(
            report["checks"]
                .as_array()
                .is_some_and(|checks| !checks.is_empty()),
            "{report}"
        );
        assert_eq!(report["requests"].as_array().unwrap().len(), 3);
        // Without `format`: JSON.
        let answer = send(&app, Method::GET, "/api/admin/v1/health/report", &root, None).await;
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );

        expect_error(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/health/report?format=csv%00",
                &root,
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        for bad in ["xml", "CSV", "", &"x".repeat(10_000)] {
            let path = format!("/api/admin/v1/health/report?format={bad}");
            let error = expect_error(
                send(&app, Method::GET, &path, &root, None).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(error["details"][0]["field"], "format", "{bad}: {error}");
        }
        expect_error(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/health/report?format=csv&extra=1",
                &root,
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn auditors_read_the_report_and_other_roles_are_refused_and_audited() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = steward_tests::fleet::organization(&app, "healthorg").await;
        let auditor = operator(&app, "auditor@example.com", "auditor").await;
        let support = operator(&app, "support@example.com", "support").await;
        let user_admin = operator(&app, "useradmin@example.com", "user_admin").await;
        let plain = app.user("plain@example.com").await;
        health(&app, &auditor).await;
        health(&app, &org.root).await;
        let denied_before = app
            .audit_actions()
            .await
            .iter()
            .filter(|action| *action == "admin.access_denied")
            .count();
        for refused in [&support, &user_admin, &org.owner, &plain] {
            for path in ["/api/admin/v1/health", "/api/admin/v1/health/report?format=csv"] {
                expect_error(
                    send(&app, Method::GET, path, refused, None).await,
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                )
                .await;
            }
        }
        let denied_after = app
            .audit_actions()
            .await
            .iter()
            .filter(|action| *action == "admin.access_denied")
            .count();
        assert_eq!(denied_after - denied_before, 8);
        for path in ["/api/admin/v1/health", "/api/admin/v1/health/report"] {
            assert_eq!(app.get(path).await.status(), StatusCode::UNAUTHORIZED);
        }
        app.stop().await;
    })
    .await;
}
