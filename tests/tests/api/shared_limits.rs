//! Limits shared by several instances through Redis (`STEWARD_REDIS_URL`): the documented
//! limit holds once across instances, and an unreachable Redis leaves each instance counting
//! its own instead of refusing everything or lifting the limits.

use reqwest::StatusCode;
use serde_json::json;
use steward::Config;
use steward_tests::{PASSWORD, TestApp, each_backend, redis_url, spawn_app_with, spawn_instance_with};

/// Each test its own key prefix on the shared Redis.
fn shared(config: &mut Config, url: &str, prefix: &str) {
    config.redis_url = Some(url.to_owned());
    config.redis_key_prefix = prefix.to_owned();
    // A debug build on a busy machine: a first call (connect, load the script) can take a
    // while; the hung-server test sets the default back.
    config.redis_timeout_ms = 2000;
}

fn test_prefix() -> String {
    format!("steward-test-{}:", uuid::Uuid::now_v7())
}

/// Registers `count` accounts at once, alternating between `bases`; the statuses, and the
/// largest `Retry-After` of the refusals.
async fn registrations(app: &TestApp, bases: &[String], count: usize, tag: &str) -> Vec<StatusCode> {
    registrations_waits(app, bases, count, tag).await.0
}

async fn registrations_waits(
    app: &TestApp,
    bases: &[String],
    count: usize,
    tag: &str,
) -> (Vec<StatusCode>, u64) {
    let attempts: Vec<_> = (0..count)
        .map(|n| {
            let base = bases[n % bases.len()].clone();
            let client = app.client.clone();
            let email = format!("{tag}-{n}@example.com");
            tokio::spawn(async move {
                let response = client
                    .post(format!("{base}/api/v1/auth/register"))
                    .json(&json!({"email": email, "password": PASSWORD, "displayName": "Limited"}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let mut wait = 0;
                if status == StatusCode::TOO_MANY_REQUESTS {
                    wait = response.headers()["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse()
                        .unwrap();
                    assert!((1..=3600).contains(&wait), "Retry-After {wait}");
                }
                (status, wait)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut longest = 0;
    for attempt in attempts {
        let (status, wait) = attempt.await.unwrap();
        statuses.push(status);
        longest = longest.max(wait);
    }
    (statuses, longest)
}

fn tally(statuses: &[StatusCode]) -> (usize, usize) {
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(created + limited, statuses.len(), "{statuses:?}");
    (created, limited)
}

#[tokio::test]
async fn two_instances_admit_the_register_limit_once_between_them() {
    let Some(url) = redis_url().await else {
        return;
    };
    each_backend(|backend| {
        let url = url.clone();
        async move {
            let prefix = test_prefix();
            let limited = |config: &mut Config| {
                shared(config, &url, &prefix);
                config.rate_limit_register_per_hour = 10;
            };
            let app = spawn_app_with(backend, limited).await;
            let (second, handle) = spawn_instance_with(&app, limited).await;
            // 16 registrations from one address at once, half through each instance.
            let (statuses, wait) =
                registrations_waits(&app, &[app.address.clone(), second.clone()], 16, "racing").await;
            assert_eq!(tally(&statuses), (10, 6), "{backend:?}");
            // Ten an hour: the next place frees up six minutes after the burst.
            assert!((300..=360).contains(&wait), "Retry-After {wait}");
            assert_eq!(app.count_users().await, 10);
            // Both instances go on refusing: the limit is the same for the pair.
            let later = registrations(&app, &[second, app.address.clone()], 2, "later").await;
            assert_eq!(tally(&later), (0, 2));
            handle.stop(true).await;
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_admin_limit_counts_a_callers_requests_on_every_instance() {
    let Some(url) = redis_url().await else {
        return;
    };
    each_backend(|backend| {
        let url = url.clone();
        async move {
            let prefix = test_prefix();
            let limited = |config: &mut Config| {
                shared(config, &url, &prefix);
                config.rate_limit_admin_per_minute = 6;
            };
            let app = spawn_app_with(backend, limited).await;
            let (second, handle) = spawn_instance_with(&app, limited).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            let other = app.user("other@example.com").await;
            app.grant(other.id, "super_admin").await;
            let mut statuses = Vec::new();
            for n in 0..9 {
                let base = if n % 2 == 0 { &app.address } else { &second };
                let response = app
                    .client
                    .get(format!("{base}/api/admin/v1/users"))
                    .bearer_auth(&root.token)
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
            }
            assert_eq!(
                statuses,
                [200, 200, 200, 200, 200, 200, 429, 429, 429],
                "{backend:?}"
            );
            // Per caller: another operator is not held back by the first.
            let response = app
                .client
                .get(format!("{second}/api/admin/v1/users"))
                .bearer_auth(&other.token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            // Redis answers: the health report says so.
            let report = steward_tests::expect_data(
                steward_tests::send(&app, reqwest::Method::GET, "/api/admin/v1/health", &other, None).await,
                StatusCode::OK,
            )
            .await;
            let reachable = report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|check| check["name"] == "shared_limits.reachable")
                .map(|check| (check["value"].clone(), check["status"].clone()));
            assert_eq!(reachable, Some((json!("yes"), json!("ok"))));
            handle.stop(true).await;
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_redis_leaves_each_instance_counting_its_own() {
    // A port nobody listens on: bound, then let go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    each_backend(|backend| {
        let url = url.clone();
        async move {
            let app = spawn_app_with(backend, |config| {
                shared(config, &url, "steward-unreachable:");
                config.rate_limit_register_per_hour = 3;
            })
            .await;
            // An operator first: one of the address's three registrations.
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            let started = std::time::Instant::now();
            let statuses = registrations(&app, std::slice::from_ref(&app.address), 5, "alone").await;
            // Neither refused wholesale nor unlimited: this instance's own limit.
            assert_eq!(tally(&statuses), (2, 3), "{backend:?}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{:?}",
                started.elapsed()
            );
            let metrics = app.get("/metrics").await.text().await.unwrap();
            let failures: f64 = metrics
                .lines()
                .find(|line| line.starts_with("steward_shared_limits_unavailable_total"))
                .and_then(|line| line.split_whitespace().last())
                .and_then(|value| value.parse().ok())
                .unwrap_or_default();
            assert!(failures >= 1.0, "{metrics}");
            // The operators' health report says so.
            let report = steward_tests::expect_data(
                steward_tests::send(&app, reqwest::Method::GET, "/api/admin/v1/health", &root, None).await,
                StatusCode::OK,
            )
            .await;
            let check = report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|check| check["name"] == "shared_limits.reachable")
                .unwrap()
                .clone();
            assert_eq!(check["value"], "no", "{check}");
            assert_eq!(check["status"], "warn", "{check}");
            assert!(
                check["note"].as_str().unwrap().contains("counts its own"),
                "{check}"
            );
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_organizations_requests_per_minute_are_counted_once_across_instances() {
    let Some(url) = redis_url().await else {
        return;
    };
    each_backend(|backend| {
        let url = url.clone();
        async move {
            let prefix = test_prefix();
            let metered = |config: &mut Config| {
                shared(config, &url, &prefix);
                config.plans.insert(
                    "metered".to_owned(),
                    steward::config::PlanConfig {
                        max_api_requests_per_minute: Some(6),
                        ..steward::config::PlanConfig::default()
                    },
                );
            };
            let app = spawn_app_with(backend, metered).await;
            let (second, handle) = spawn_instance_with(&app, metered).await;
            let org = steward_tests::fleet::organization(&app, "shared-minute").await;
            steward_tests::expect_data(
                steward_tests::send(
                    &app,
                    reqwest::Method::PUT,
                    &org.path("/quotas"),
                    &org.root,
                    Some(json!({"plan": "metered", "overrides": {}})),
                )
                .await,
                StatusCode::OK,
            )
            .await;
            // Not across a minute's end: the window is the clock's minute.
            let second_of_minute = chrono::Utc::now().timestamp().rem_euclid(60);
            if second_of_minute > 45 {
                tokio::time::sleep(std::time::Duration::from_secs(
                    u64::try_from(61 - second_of_minute).unwrap(),
                ))
                .await;
            }
            let mut statuses = Vec::new();
            for n in 0..8 {
                let base = if n % 2 == 0 { &app.address } else { &second };
                let response = app
                    .client
                    .get(format!("{base}{}", org.path("/devices")))
                    .bearer_auth(&org.owner.token)
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
            }
            assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429], "{backend:?}");
            // Both instances read the same use (operators are not counted).
            for base in [&app.address, &second] {
                let quotas = app
                    .client
                    .get(format!("{base}{}", org.path("/quotas")))
                    .bearer_auth(&org.root.token)
                    .send()
                    .await
                    .unwrap();
                let quotas = steward_tests::expect_data(quotas, StatusCode::OK).await;
                let line = quotas["quotas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|line| line["key"] == "api_requests_per_minute")
                    .unwrap()
                    .clone();
                assert_eq!(line["used"], 6, "{line}");
            }
            handle.stop(true).await;
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_one_short_wait_then_nothing() {
    // Accepts connections and says nothing, like a hung server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let backend = steward_tests::backends().await[0];
    let app = spawn_app_with(backend, |config| {
        shared(config, &url, "steward-silent:");
        config.redis_timeout_ms = 100;
        config.rate_limit_register_per_hour = 4;
    })
    .await;
    let mut slowest = std::time::Duration::ZERO;
    let mut statuses = Vec::new();
    for n in 0..6 {
        let started = std::time::Instant::now();
        let response = app
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": format!("hung-{n}@example.com"), "password": PASSWORD, "displayName": "Hung"}),
            )
            .await;
        slowest = slowest.max(started.elapsed());
        statuses.push(response.status());
    }
    // The instance's own limit of 4, and no request waited much longer than the 100 ms the
    // first one gave Redis (the next ones did not ask it).
    assert_eq!(tally(&statuses), (4, 2));
    assert!(slowest < std::time::Duration::from_secs(2), "{slowest:?}");
    app.stop().await;
    silent.abort();
}
