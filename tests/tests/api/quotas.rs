//! Quotas: plans from configuration with per-organization overrides, decided atomically where
//! devices, users, policies and enrollment tokens are created, refused with 409 QUOTA_EXCEEDED.

use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward::config::PlanConfig;
use steward_tests::fleet::{enroll, organization, post, token};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app_with};

fn team_plan(config: &mut steward::Config) {
    config.plans.insert(
        "team".to_owned(),
        PlanConfig {
            max_devices: Some(10),
            max_users: Some(3),
            ..PlanConfig::default()
        },
    );
}

async fn quota_line(app: &TestApp, by: &TestUser, org: &str, key: &str) -> Value {
    let usage = expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/admin/v1/organizations/{org}/usage"),
            by,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    usage["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["key"] == key)
        .unwrap()
        .clone()
}

/// Waits until `user` sees at least `count` notifications of `rule`; answers them all.
async fn notifications_of(app: &TestApp, user: &TestUser, rule: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let listed = expect_data(
            send(
                app,
                Method::GET,
                "/api/admin/v1/notifications?perPage=100",
                user,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let found: Vec<Value> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["rule"] == rule)
            .cloned()
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} `{rule}` notifications: {listed}",
            found.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Enrolls `count` devices at once; answers how many were admitted, checking every refusal.
async fn enroll_at_once(app: &TestApp, secret: &str, prefix: &str, count: usize) -> usize {
    let attempts: Vec<_> = (0..count)
        .map(|n| enroll(app, secret, &format!("{prefix}-{n}")))
        .collect();
    let mut admitted = 0;
    for response in futures_util::future::join_all(attempts).await {
        if response.status() == StatusCode::CREATED {
            admitted += 1;
            continue;
        }
        // A device (a token holder) learns that the organization is full, not its numbers.
        let error = expect_error(response, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        assert_eq!(error["quota"], Value::Null, "{error}");
        assert!(
            error["message"].as_str().unwrap().contains("administrator"),
            "{error}"
        );
    }
    admitted
}

#[tokio::test]
async fn parallel_enrollments_against_a_device_quota_admit_exactly_the_limit() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, team_plan).await;
        let org = organization(&app, "fleet").await;
        let quotas = org.path("/quotas");
        let set = expect_data(
            send(
                &app,
                Method::PUT,
                &quotas,
                &org.root,
                Some(json!({"plan": "team", "overrides": {}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(set["plan"], "team");
        let (_, secret) = token(&app, &org, json!({})).await;

        assert_eq!(enroll_at_once(&app, &secret, "a", 20).await, 10, "{backend:?}");
        let line = quota_line(&app, &org.owner, &org.id, "devices").await;
        assert_eq!(
            line,
            json!({"key": "devices", "limit": 10, "used": 10, "overridden": false})
        );
        // Reaching 80 % and 100 % raised one notification each, which the organization's
        // owner sees too.
        let nearly = notifications_of(&app, &org.owner, "quota_nearly_used", 1).await;
        let used_up = notifications_of(&app, &org.owner, "quota_used_up", 1).await;
        assert_eq!(nearly[0]["severity"], "medium");
        assert_eq!(used_up[0]["severity"], "high");
        assert_eq!(
            nearly[0]["message"], "fleet uses 8 of its devices quota of 10.",
            "{nearly:?}"
        );
        assert_eq!(used_up[0]["message"], "fleet uses 10 of its devices quota of 10.");
        assert_eq!(
            used_up[0]["data"]["event"]["type"],
            "organization.quota_threshold"
        );

        // An override to 15 admits 5 more.
        expect_data(
            send(
                &app,
                Method::PUT,
                &quotas,
                &org.root,
                Some(json!({"overrides": {"devices": 15}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(enroll_at_once(&app, &secret, "b", 10).await, 5, "{backend:?}");
        let line = quota_line(&app, &org.owner, &org.id, "devices").await;
        assert_eq!(
            line,
            json!({"key": "devices", "limit": 15, "used": 15, "overridden": true})
        );
        // Raised again on the way up to the new limit: 12 and 15 of 15, once each.
        notifications_of(&app, &org.root, "quota_used_up", 2).await;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            notifications_of(&app, &org.root, "quota_nearly_used", 2)
                .await
                .len(),
            2
        );
        assert_eq!(
            notifications_of(&app, &org.root, "quota_used_up", 2).await.len(),
            2
        );

        // Re-enrolling a device already in the organization takes no more of the quota.
        // (Which of the racing devices got in is up to the race: the first of them that
        // enrolls again is one that did.)
        let mut again = None;
        for name in (0..20)
            .map(|n| format!("a-{n}"))
            .chain((0..10).map(|n| format!("b-{n}")))
        {
            let response = enroll(&app, &secret, &name).await;
            if response.status() == StatusCode::CREATED {
                again = Some(name);
                break;
            }
            assert_eq!(response.status(), StatusCode::CONFLICT, "{backend:?}");
        }
        assert!(again.is_some(), "{backend:?}: no admitted device enrolled again");

        // An import is refused whole when its new devices do not fit.
        let import = app
            .authed(Method::POST, &org.path("/devices/import"), &org.owner.token)
            .header("content-type", "text/csv")
            .body("deviceId,displayName,platform\nimp-1,One,android\n")
            .send()
            .await
            .unwrap();
        let refused = expect_error(import, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        assert_eq!(
            refused["quota"],
            json!({"key": "devices", "limit": 15, "used": 15})
        );

        // Over the limit, an import that creates nothing (updates only) still runs.
        expect_data(
            send(
                &app,
                Method::PUT,
                &quotas,
                &org.root,
                Some(json!({"overrides": {"devices": 5}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                &org.path("/devices?perPage=1"),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let existing = listed[0]["deviceId"].as_str().unwrap().to_owned();
        let update_only = app
            .authed(
                Method::POST,
                &org.path("/devices/import?onDuplicate=update"),
                &org.owner.token,
            )
            .header("content-type", "text/csv")
            .body(format!(
                "deviceId,displayName,platform\n{existing},Renamed,android\n"
            ))
            .send()
            .await
            .unwrap();
        let report = expect_data(update_only, StatusCode::OK).await;
        assert_eq!(report["updated"], 1, "{report} {backend:?}");

        // Unlimited by override.
        expect_data(
            send(
                &app,
                Method::PUT,
                &quotas,
                &org.root,
                Some(json!({"overrides": {"devices": null}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(enroll_at_once(&app, &secret, "c", 3).await, 3);
        assert!(
            app.audit_actions()
                .await
                .iter()
                .any(|a| a == "organization.quota_changed")
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn users_policies_and_tokens_have_quotas_too_and_only_operators_set_them() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, team_plan).await;
        let org = organization(&app, "small").await;
        let other = organization(&app, "other").await;
        let quotas = org.path("/quotas");
        expect_data(
            send(
                &app,
                Method::PUT,
                &quotas,
                &org.root,
                Some(json!({"plan": "team", "overrides": {"policies": 1, "enrollment_tokens": 1}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        // Users: the plan's 3 (the owner is one).
        let mut members = Vec::new();
        for n in 0..3 {
            members.push(app.user(&format!("m{n}@example.com")).await);
        }
        for member in &members[..2] {
            post(
                &app,
                &org.owner,
                &org.path("/users"),
                json!({"userId": member.id, "role": "viewer"}),
            )
            .await;
        }
        let refused = send(
            &app,
            Method::POST,
            &org.path("/users"),
            &org.owner,
            Some(json!({"userId": members[2].id, "role": "viewer"})),
        )
        .await;
        let error = expect_error(refused, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        assert_eq!(
            error["quota"],
            json!({"key": "users", "limit": 3, "used": 3}),
            "{backend:?}"
        );
        let import = app
            .authed(Method::POST, &org.path("/users/import"), &org.owner.token)
            .header("content-type", "text/csv")
            .body("email,role\nm2@example.com,viewer\n")
            .send()
            .await
            .unwrap();
        expect_error(import, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        // Policies and live enrollment tokens.
        post(&app, &org.owner, &org.path("/policies"), json!({"name": "One"})).await;
        let second = send(
            &app,
            Method::POST,
            &org.path("/policies"),
            &org.owner,
            Some(json!({"name": "Two"})),
        )
        .await;
        expect_error(second, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        let (first_token, _) = token(&app, &org, json!({})).await;
        let refused = send(
            &app,
            Method::POST,
            &org.path("/enrollment-tokens"),
            &org.owner,
            Some(json!({})),
        )
        .await;
        expect_error(refused, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        // A revoked token no longer counts.
        let revoked = send(
            &app,
            Method::DELETE,
            &org.path(&format!("/enrollment-tokens/{first_token}")),
            &org.owner,
            None,
        )
        .await;
        assert!(revoked.status().is_success());
        token(&app, &org, json!({})).await;

        // Who may read and set quotas.
        let viewer = &members[0];
        let read = expect_data(
            send(&app, Method::GET, &quotas, viewer, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(read["plan"], "team");
        assert_eq!(read["overrides"], json!({"enrollment_tokens": 1, "policies": 1}));
        for by in [&org.owner, viewer] {
            let refused = send(&app, Method::PUT, &quotas, by, Some(json!({"overrides": {}}))).await;
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        }
        let outsider = send(&app, Method::GET, &quotas, &other.owner, None).await;
        assert_eq!(outsider.status(), StatusCode::NOT_FOUND);
        // Input that does not parse, or names what does not exist.
        for body in [
            json!({"overrides": {"devices": -1}}),
            json!({"overrides": {"devices": 1e300}}),
            json!({"overrides": {"devices": 1_000_000_001}}),
            json!({"overrides": {"devices": "ten"}}),
            json!({"overrides": {"gadgets": 1}}),
            json!({"plan": "enterprise", "overrides": {}}),
            json!({"plan": "te\u{0}am", "overrides": {}}),
            json!({"overrides": {}, "colour": "red"}),
            json!({}),
        ] {
            let refused = send(&app, Method::PUT, &quotas, &org.root, Some(body.clone())).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body} {backend:?}");
        }
        let missing = send(
            &app,
            Method::PUT,
            &format!("/api/admin/v1/organizations/{}/quotas", uuid::Uuid::now_v7()),
            &org.root,
            Some(json!({"overrides": {}})),
        )
        .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);

        // From the shell: `steward quotas set ORG KEY VALUE`.
        let config = app.data_dir.path().join("steward.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\ndatabase_url = {:?}\n[plans.team]\nmax_devices = 10\nmax_users = 3\n",
                app.data_dir.path().display().to_string(),
                app.database.url
            ),
        )
        .unwrap();
        let config = config.display().to_string();
        let cli = |args: &[&str]| {
            let mut all = vec!["steward", "--config", config.as_str(), "quotas"];
            all.extend_from_slice(args);
            steward::cli::run(steward::cli::Cli::parse_from(all))
        };
        cli(&["set", "small", "policies", "4"]).await.unwrap();
        cli(&["set", &org.id, "users", "unlimited"]).await.unwrap();
        assert!(cli(&["set", "small", "plan", "enterprise"]).await.is_err());
        assert!(cli(&["set", "small", "devices", "lots"]).await.is_err());
        assert!(cli(&["set", "nowhere", "devices", "3"]).await.is_err());
        let read = expect_data(
            send(&app, Method::GET, &quotas, &org.owner, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            read["overrides"],
            json!({"enrollment_tokens": 1, "policies": 4, "users": null}),
            "{backend:?}"
        );
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": members[2].id, "role": "viewer"}),
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn parallel_additions_of_users_and_policies_stop_at_their_limits() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, team_plan).await;
        let org = organization(&app, "racing").await;
        expect_data(
            send(
                &app,
                Method::PUT,
                &org.path("/quotas"),
                &org.root,
                Some(json!({"plan": "team", "overrides": {"policies": 4}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let mut people = Vec::new();
        for n in 0..6 {
            people.push(app.user(&format!("p{n}@example.com")).await);
        }
        // The plan allows 3 users; the owner is one.
        let adds: Vec<_> = people
            .iter()
            .map(|person| {
                send(
                    &app,
                    Method::POST,
                    &org.path("/users"),
                    &org.owner,
                    Some(json!({"userId": person.id, "role": "viewer"})),
                )
            })
            .collect();
        let statuses: Vec<StatusCode> = futures_util::future::join_all(adds)
            .await
            .iter()
            .map(|response| response.status())
            .collect();
        let added = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        assert_eq!(added, 2, "{statuses:?} {backend:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT)
        );
        let creates: Vec<_> = (0..8)
            .map(|n| {
                send(
                    &app,
                    Method::POST,
                    &org.path("/policies"),
                    &org.owner,
                    Some(json!({"name": format!("Policy {n}")})),
                )
            })
            .collect();
        let created = futures_util::future::join_all(creates)
            .await
            .iter()
            .filter(|response| response.status() == StatusCode::CREATED)
            .count();
        assert_eq!(created, 4, "{backend:?}");
        let line = quota_line(&app, &org.owner, &org.id, "users").await;
        assert_eq!(line["used"], 3);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn imports_per_day_count_the_imports_that_write_and_refuse_past_the_limit() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.plans.insert(
                "daily".to_owned(),
                PlanConfig {
                    max_imports_per_day: Some(3),
                    ..PlanConfig::default()
                },
            );
        })
        .await;
        let org = organization(&app, "daily").await;
        expect_data(
            send(
                &app,
                Method::PUT,
                &org.path("/quotas"),
                &org.root,
                Some(json!({"plan": "daily", "overrides": {}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let import = |path: &str, body: String| {
            app.authed(Method::POST, &org.path(path), &org.owner.token)
                .header("content-type", "text/csv")
                .body(body)
                .send()
        };
        // Dry runs and imports refused for their rows do not count.
        let rows = |prefix: &str| format!("deviceId,displayName\n{prefix}-1,One\n{prefix}-2,Two\n");
        expect_data(
            import("/devices/import?dryRun=true", rows("dry")).await.unwrap(),
            StatusCode::OK,
        )
        .await;
        let bad = import("/devices/import", "deviceId,displayName\n,No id\n".to_owned())
            .await
            .unwrap();
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(
            quota_line(&app, &org.owner, &org.id, "imports_per_day").await["used"],
            0
        );
        // One device import and, racing, four more (two device, two user imports): 3 in all.
        expect_data(
            import("/devices/import", rows("first")).await.unwrap(),
            StatusCode::OK,
        )
        .await;
        app.user("member@example.com").await;
        let racing = vec![
            import("/devices/import", rows("a")),
            import("/devices/import", rows("b")),
            import(
                "/users/import",
                "email,role\nmember@example.com,viewer\n".to_owned(),
            ),
            import(
                "/users/import",
                "email,role\nmember@example.com,viewer\n".to_owned(),
            ),
        ];
        let mut admitted = 0;
        for response in futures_util::future::join_all(racing).await {
            let response = response.unwrap();
            if response.status() == StatusCode::OK {
                admitted += 1;
                continue;
            }
            let error = expect_error(response, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
            assert_eq!(
                error["quota"],
                json!({"key": "imports_per_day", "limit": 3, "used": 3}),
                "{error}"
            );
            assert!(
                error["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("the organization's quota of 3 imports per day"),
                "{error}"
            );
        }
        assert_eq!(admitted, 2, "{backend:?}");
        assert_eq!(
            quota_line(&app, &org.owner, &org.id, "imports_per_day").await,
            json!({"key": "imports_per_day", "limit": 3, "used": 3, "overridden": false})
        );
        // A background import past the limit ends failed, naming the quota.
        let queued = expect_data(
            import("/devices/import?async=true", rows("late")).await.unwrap(),
            StatusCode::ACCEPTED,
        )
        .await;
        let id = queued["id"].as_str().unwrap().to_owned();
        let mut ended = Value::Null;
        for _ in 0..400 {
            ended = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/jobs/{id}"),
                    &org.owner,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            if ended["status"] == "failed" || ended["status"] == "succeeded" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(ended["status"], "failed", "{ended}");
        assert_eq!(ended["error"]["quota"]["key"], "imports_per_day", "{ended}");
        // An override lifts it at once.
        expect_data(
            send(
                &app,
                Method::PUT,
                &org.path("/quotas"),
                &org.root,
                Some(json!({"overrides": {"imports_per_day": null}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        expect_data(
            import("/devices/import", rows("after")).await.unwrap(),
            StatusCode::OK,
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn utilisation_gauges_show_each_limited_organization_beside_its_limit() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            team_plan(config);
            config.quota_metrics_interval_secs = 1;
            config.metrics_organizations = true;
        })
        .await;
        let org = organization(&app, "gauged").await;
        expect_data(
            send(
                &app,
                Method::PUT,
                &org.path("/quotas"),
                &org.root,
                Some(json!({"plan": "team", "overrides": {}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let (_, secret) = token(&app, &org, json!({})).await;
        assert_eq!(enroll_at_once(&app, &secret, "g", 8).await, 8);
        // Devices 8 of 10, users 1 of 3 (the owner); unlimited keys have no line.
        let devices = format!(
            "steward_quota_utilisation_ratio{{organization=\"{}\",key=\"devices\"}} 0.8",
            org.id
        );
        let users = format!(
            "steward_quota_utilisation_ratio{{organization=\"{}\",key=\"users\"}} 0.3333",
            org.id
        );
        let policies = format!(
            "steward_quota_utilisation_ratio{{organization=\"{}\",key=\"policies\"}}",
            org.id
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let text = app.get("/metrics").await.text().await.unwrap();
            if text.contains(&devices) && text.contains(&users) {
                assert!(!text.contains(&policies), "{backend:?}");
                assert!(
                    text.contains("steward_quota_organizations{key=\"devices\",level=\"80\"}"),
                    "{text}"
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{backend:?}: {text}");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_organizations_members_get_its_api_requests_per_minute_then_429() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.plans.insert(
                "metered".to_owned(),
                PlanConfig {
                    max_api_requests_per_minute: Some(5),
                    ..PlanConfig::default()
                },
            );
        })
        .await;
        let org = organization(&app, "metered").await;
        expect_data(
            send(
                &app,
                Method::PUT,
                &org.path("/quotas"),
                &org.root,
                Some(json!({"plan": "metered", "overrides": {}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        // Not across a minute's end: the window is the clock's minute.
        let second = chrono::Utc::now().timestamp().rem_euclid(60);
        if second > 45 {
            tokio::time::sleep(std::time::Duration::from_secs(
                u64::try_from(61 - second).unwrap(),
            ))
            .await;
        }
        for n in 1..=5 {
            let read = expect_data(
                send(&app, Method::GET, &org.path("/quotas"), &org.owner, None).await,
                StatusCode::OK,
            )
            .await;
            let line = read["quotas"]
                .as_array()
                .unwrap()
                .iter()
                .find(|line| line["key"] == "api_requests_per_minute")
                .unwrap()
                .clone();
            assert_eq!(
                line,
                json!({"key": "api_requests_per_minute", "limit": 5, "used": n, "overridden": false}),
                "{backend:?}"
            );
        }
        let refused = send(&app, Method::GET, &org.path("/devices"), &org.owner, None).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let error = expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
        assert_eq!(
            error["quota"],
            json!({"key": "api_requests_per_minute", "limit": 5, "used": 5})
        );
        // Operators acting through their system role are not counted, nor held back.
        expect_data(
            send(&app, Method::GET, &org.path("/quotas"), &org.root, None).await,
            StatusCode::OK,
        )
        .await;
        // Another organization is not affected.
        let other = organization(&app, "unmetered").await;
        expect_data(
            send(&app, Method::GET, &other.path("/quotas"), &other.owner, None).await,
            StatusCode::OK,
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_use_hovering_at_a_level_is_announced_once_a_day() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, team_plan).await;
        let org = organization(&app, "hover").await;
        expect_data(
            send(
                &app,
                Method::PUT,
                &org.path("/quotas"),
                &org.root,
                Some(json!({"overrides": {"enrollment_tokens": 5}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        // 4 of 5 is 80 %; revoking one and making another crosses it again.
        let mut last = String::new();
        for _ in 0..4 {
            last = token(&app, &org, json!({})).await.0;
        }
        notifications_of(&app, &org.root, "quota_nearly_used", 1).await;
        for _ in 0..3 {
            let revoked = send(
                &app,
                Method::DELETE,
                &org.path(&format!("/enrollment-tokens/{last}")),
                &org.owner,
                None,
            )
            .await;
            assert!(revoked.status().is_success(), "{}", revoked.status());
            last = token(&app, &org, json!({})).await.0;
        }
        let crossings = app
            .audit_actions()
            .await
            .iter()
            .filter(|a| *a == "organization.quota_threshold")
            .count();
        assert_eq!(crossings, 1, "{backend:?}: announced once, not at every crossing");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            notifications_of(&app, &org.root, "quota_nearly_used", 1)
                .await
                .len(),
            1
        );
        app.stop().await;
    })
    .await;
}
