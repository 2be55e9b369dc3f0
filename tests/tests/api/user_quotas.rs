//! Per-account quotas: personal devices, groups, members per group and personal access tokens,
//! from the account's plan (`free` unless an operator sets another) with per-account overrides;
//! decided atomically where each is created, refused with 409 QUOTA_EXCEEDED.

use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward::config::PlanConfig;
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app_with};

fn small_free_plan(config: &mut steward::Config) {
    config.plans.insert(
        "free".to_owned(),
        PlanConfig {
            max_personal_devices: Some(2),
            max_groups: Some(1),
            max_group_members: Some(3),
            max_personal_access_tokens: Some(3),
            ..PlanConfig::default()
        },
    );
    config.plans.insert(
        "plus".to_owned(),
        PlanConfig {
            max_personal_access_tokens: Some(10),
            ..PlanConfig::default()
        },
    );
}

async fn my_line(app: &TestApp, user: &TestUser, key: &str) -> Value {
    let mine = expect_data(
        send(app, Method::GET, "/api/v1/auth/me/quotas", user, None).await,
        StatusCode::OK,
    )
    .await;
    mine["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["key"] == key)
        .unwrap_or_else(|| panic!("no `{key}` in {mine}"))
        .clone()
}

fn create_token(
    app: &TestApp,
    user: &TestUser,
    name: &str,
) -> impl Future<Output = reqwest::Response> + use<> {
    let request = app
        .authed(Method::POST, "/api/v1/auth/me/tokens", &user.token)
        .json(&json!({"name": name, "scopes": ["account:read"]}));
    async move { request.send().await.unwrap() }
}

/// Sends `count` token creations at once; answers how many were admitted, checking each refusal.
async fn tokens_at_once(app: &TestApp, user: &TestUser, count: usize, limit: u64) -> usize {
    let attempts: Vec<_> = (0..count)
        .map(|n| create_token(app, user, &format!("script {n}")))
        .collect();
    let mut admitted = 0;
    for response in futures_util::future::join_all(attempts).await {
        if response.status() == StatusCode::CREATED {
            admitted += 1;
            continue;
        }
        let error = expect_error(response, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        assert_eq!(
            error["quota"],
            json!({"key": "personal_access_tokens", "limit": limit, "used": limit}),
            "{error}"
        );
        let message = error["message"].as_str().unwrap();
        assert!(
            message.starts_with("the account's quota of") && message.contains("operator"),
            "{message}"
        );
    }
    admitted
}

#[tokio::test]
async fn parallel_token_creations_admit_exactly_the_accounts_limit_and_operators_raise_it() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, small_free_plan).await;
        let ann = app.user("ann@example.com").await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;

        assert_eq!(tokens_at_once(&app, &ann, 8, 3).await, 3, "{backend:?}");
        let line = my_line(&app, &ann, "personal_access_tokens").await;
        assert_eq!(
            line,
            json!({"key": "personal_access_tokens", "limit": 3, "used": 3, "overridden": false})
        );
        // A revoked token no longer counts.
        let tokens = expect_data(
            send(&app, Method::GET, "/api/v1/auth/me/tokens", &ann, None).await,
            StatusCode::OK,
        )
        .await;
        let first = tokens[0]["id"].as_str().unwrap().to_owned();
        let revoked = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/auth/me/tokens/{first}"),
            &ann,
            None,
        )
        .await;
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            create_token(&app, &ann, "again").await.status(),
            StatusCode::CREATED
        );

        // An operator raises the account's limit: 5 in all, so 2 more of 6 racing.
        let path = format!("/api/admin/v1/users/{}/quotas", ann.id);
        let set = expect_data(
            send(
                &app,
                Method::PUT,
                &path,
                &root,
                Some(json!({"overrides": {"personal_access_tokens": 5}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(set["plan"], "free");
        assert_eq!(set["overrides"], json!({"personal_access_tokens": 5}));
        assert_eq!(tokens_at_once(&app, &ann, 6, 5).await, 2, "{backend:?}");
        let read = expect_data(send(&app, Method::GET, &path, &root, None).await, StatusCode::OK).await;
        let keys: Vec<&str> = read["quotas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["key"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "personal_devices",
                "groups",
                "group_members",
                "personal_access_tokens"
            ]
        );
        assert_eq!(
            read["quotas"][3],
            json!({"key": "personal_access_tokens", "limit": 5, "used": 5, "overridden": true})
        );
        // Another plan, and `{}` back to the plan's limit.
        let plus = expect_data(
            send(
                &app,
                Method::PUT,
                &path,
                &root,
                Some(json!({"plan": "plus", "overrides": {}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(plus["quotas"][3]["limit"], 10);
        assert!(
            app.audit_actions()
                .await
                .iter()
                .filter(|action| *action == "user.quota_changed")
                .count()
                >= 2,
            "{backend:?}"
        );

        // Who may: the account itself reads its own; reading another's needs users:read,
        // setting needs quotas:write; an unknown account is 404.
        let bob = app.user("bob@example.com").await;
        let denied = send(&app, Method::GET, &path, &bob, None).await;
        expect_error(denied, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let denied = send(
            &app,
            Method::PUT,
            &path,
            &ann,
            Some(json!({"overrides": {"groups": null}})),
        )
        .await;
        expect_error(denied, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let unknown = format!("/api/admin/v1/users/{}/quotas", uuid::Uuid::now_v7());
        let missing = send(&app, Method::GET, &unknown, &root, None).await;
        expect_error(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let missing = send(&app, Method::PUT, &unknown, &root, Some(json!({"overrides": {}}))).await;
        expect_error(missing, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // Hostile and malformed bodies are 400, never a default.
        for body in [
            json!({"overrides": {"devices": 3}}),
            json!({"overrides": {"personal_access_tokens": -1}}),
            json!({"overrides": {"personal_access_tokens": 2_000_000_000_u64}}),
            json!({"overrides": {"personal_access_tokens": 1.5}}),
            json!({"overrides": {"groups\u{0}": 1}}),
            json!({"overrides": {"x".repeat(10_000): 1}}),
            json!({"plan": "enterprise", "overrides": {}}),
            json!({"plan": "free\u{0}", "overrides": {}}),
            json!({"overrides": {}, "extra": true}),
            json!({"plan": "free"}),
            json!([]),
        ] {
            let refused = send(&app, Method::PUT, &path, &root, Some(body.clone())).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body}");
        }
        for (content_type, body) in [
            ("application/json", ""),
            ("application/json", "{"),
            ("text/plain", "{\"overrides\": {}}"),
        ] {
            let refused = app
                .authed(Method::PUT, &path, &root.token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(
                refused.status().is_client_error() && refused.status() != StatusCode::OK,
                "{content_type} {body:?}"
            );
        }
        // An organization's overrides take no account limits.
        let org = app.organization(&root, "acme", &ann).await;
        let refused = send(
            &app,
            Method::PUT,
            &format!("/api/admin/v1/organizations/{org}/quotas"),
            &root,
            Some(json!({"overrides": {"personal_access_tokens": 1}})),
        )
        .await;
        expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        // A token reads its account's quotas only with `account:read`.
        let scoped = expect_data(
            app.authed(Method::POST, "/api/v1/auth/me/tokens", &bob.token)
                .json(&json!({"name": "devices only", "scopes": ["devices:read"]}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        let with_token = app
            .authed(
                Method::GET,
                "/api/v1/auth/me/quotas",
                scoped["secret"].as_str().unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(with_token.status(), StatusCode::FORBIDDEN);
        app.stop().await;
    })
    .await;
}

async fn register(app: &TestApp, key: &str, owner: &TestUser, identifier: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/devices/register"))
        .header("x-api-key", key)
        .bearer_auth(&owner.token)
        .json(&json!({"deviceId": identifier, "displayName": identifier}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn personal_devices_groups_and_group_members_stop_at_the_accounts_limits() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, small_free_plan).await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;

        // Personal devices: two each; a device registered again by its owner is not new.
        app.device(&key, &ann, "ann-1").await;
        let (ann_two, _) = app.device(&key, &ann, "ann-2").await;
        assert_eq!(register(&app, &key, &ann, "ann-1").await.status(), StatusCode::OK);
        let third = register(&app, &key, &ann, "ann-3").await;
        let error = expect_error(third, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        assert_eq!(error["quota"], json!({"key": "personal_devices", "limit": 2, "used": 2}), "{backend:?}");
        app.device(&key, &bob, "bob-1").await;
        app.device(&key, &bob, "bob-2").await;
        // A transfer to a full account is refused when accepted; the device stays put.
        let pending = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/v1/users/{}/devices/{ann_two}/transfer", ann.id),
                &ann,
                Some(json!({"toUserId": bob.id})),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let accepted = send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/device-transfers/{}/accept", bob.id, pending["id"].as_str().unwrap()),
            &bob,
            None,
        )
        .await;
        expect_error(accepted, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        let device = expect_data(
            send(&app, Method::GET, &format!("/api/v1/devices/{ann_two}"), &ann, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(device["ownerUserId"], ann.id.to_string());
        assert_eq!(my_line(&app, &bob, "personal_devices").await["used"], 2);

        // Groups: one each.
        let group = app.group(&ann, "Family").await;
        let second = send(&app, Method::POST, "/api/v1/groups", &ann, Some(json!({"name": "Other"}))).await;
        let error = expect_error(second, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
        assert_eq!(error["quota"], json!({"key": "groups", "limit": 1, "used": 1}));

        // Members: three per group, the creator included; five racing joins admit two.
        let invite = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/v1/groups/{group}/invites"),
                &ann,
                Some(json!({"maxUses": 10, "role": "member"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let code = invite["code"].as_str().unwrap().to_owned();
        let mut joiners = Vec::new();
        for n in 0..5 {
            joiners.push(app.user(&format!("kid{n}@example.com")).await);
        }
        let joins: Vec<_> = joiners
            .iter()
            .map(|kid| send(&app, Method::POST, "/api/v1/groups/join", kid, Some(json!({"code": code}))))
            .collect();
        let mut joined = 0;
        for response in futures_util::future::join_all(joins).await {
            if response.status() == StatusCode::OK {
                joined += 1;
                continue;
            }
            // The code holder learns the group is full, not its size.
            let error = expect_error(response, StatusCode::CONFLICT, "QUOTA_EXCEEDED").await;
            assert_eq!(error["quota"], Value::Null, "{error}");
            assert!(error["message"].as_str().unwrap().contains("cannot take more members"), "{error}");
        }
        assert_eq!(joined, 2, "{backend:?}");
        let members = expect_data(
            send(&app, Method::GET, &format!("/api/v1/groups/{group}/members"), &ann, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(members.as_array().unwrap().len(), 3);
        assert_eq!(my_line(&app, &ann, "group_members").await["used"], 3);
        assert_eq!(my_line(&app, &ann, "groups").await["used"], 1);
        // Counted by ownership: handing the group over frees ann's slot and makes it the new
        // owner's.
        let heir = members
            .as_array()
            .unwrap()
            .iter()
            .find(|member| member["userId"] != ann.id.to_string())
            .unwrap()["userId"]
            .as_str()
            .unwrap()
            .to_owned();
        let moved = send(
            &app,
            Method::POST,
            &format!("/api/v1/groups/{group}/transfer"),
            &ann,
            Some(json!({"userId": heir})),
        )
        .await;
        assert!(moved.status().is_success(), "{}", moved.text().await.unwrap());
        assert_eq!(my_line(&app, &ann, "groups").await["used"], 0);
        app.group(&ann, "Next").await;

        // From the shell: `steward quotas set EMAIL KEY VALUE`.
        let config = app.data_dir.path().join("steward.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\ndatabase_url = {:?}\n[plans.free]\nmax_personal_devices = 2\nmax_groups = 1\n",
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
        cli(&["set", "ann@example.com", "personal_devices", "3"]).await.unwrap();
        cli(&["set", "ann@example.com", "groups", "unlimited"]).await.unwrap();
        cli(&["show", "ann@example.com"]).await.unwrap();
        assert!(cli(&["set", "ann@example.com", "devices", "3"]).await.is_err(), "an organization's limit");
        assert!(cli(&["set", "nobody@example.com", "groups", "3"]).await.is_err());
        assert!(cli(&["set", "ann@example.com", "groups", "lots"]).await.is_err());
        register(&app, &key, &ann, "ann-3").await.error_for_status().unwrap();
        app.group(&ann, "Second").await;
        assert_eq!(my_line(&app, &ann, "personal_devices").await["limit"], 3);
        assert_eq!(my_line(&app, &ann, "groups").await["limit"], Value::Null);
        app.stop().await;
    })
    .await;
}
