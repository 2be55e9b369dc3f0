//! The admin API's IP allowlist: requests from 127.0.0.2 (a second loopback address) play the
//! outsider; a proxy's `X-Forwarded-For` counts only from a trusted peer; nobody locks
//! themself out without meaning to; bypass tokens; the CLI's break-glass switch.

use std::net::IpAddr;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{
    TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app, spawn_instance_with,
};

async fn root(app: &TestApp) -> TestUser {
    let user = app.user("root@example.com").await;
    app.grant(user.id, "super_admin").await;
    user
}

/// A client whose requests come from `address`.
fn from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(address))
        .build()
        .unwrap()
}

async fn admin_get(
    client: &reqwest::Client,
    app_address: &str,
    user: &TestUser,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client
        .get(format!("{app_address}/api/admin/v1/users"))
        .bearer_auth(&user.token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn add(app: &TestApp, user: &TestUser, cidr: &str) -> Value {
    expect_data(
        send(
            app,
            Method::POST,
            "/api/admin/v1/ip-allowlist",
            user,
            Some(json!({"cidr": cidr, "name": "office", "description": "the office uplink"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

async fn enable(app: &TestApp, user: &TestUser, enabled: bool, force: bool) -> reqwest::Response {
    send(
        app,
        Method::PUT,
        "/api/admin/v1/ip-allowlist/settings",
        user,
        Some(json!({"enabled": enabled, "force": force})),
    )
    .await
}

#[tokio::test]
async fn an_enabled_list_refuses_other_addresses_and_believes_only_trusted_proxies() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = root(&app).await;
        let outsider = from([127, 0, 0, 2]);

        // Entries: single addresses and networks, v4 and v6; bad ones name the field.
        let entry = add(&app, &root, "127.0.0.1").await;
        assert_eq!(entry["cidr"], "127.0.0.1/32", "{backend:?}");
        assert_eq!(entry["createdBy"], json!(root.id));
        assert_eq!(add(&app, &root, "2001:db8::1/32").await["cidr"], "2001:db8::/32");
        for bad in [
            "10.0.0.0/33",
            "300.1.1.1",
            "office",
            "",
            "1.2.3.4\u{0}",
            &"1".repeat(10_000),
        ] {
            let refused = expect_error(
                send(
                    &app,
                    Method::POST,
                    "/api/admin/v1/ip-allowlist",
                    &root,
                    Some(json!({"cidr": bad, "name": "x"})),
                )
                .await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(refused["details"][0]["field"], "cidr", "{bad:?}: {refused}");
        }
        for bad in [
            json!({"cidr": "10.0.0.0/8"}),
            json!({"cidr": "10.0.0.0/8", "name": ""}),
            json!({"cidr": "10.0.0.0/8", "name": "x", "extra": 1}),
        ] {
            let response = send(
                &app,
                Method::POST,
                "/api/admin/v1/ip-allowlist",
                &root,
                Some(bad.clone()),
            )
            .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        }

        // Off: everyone passes.
        assert_eq!(
            admin_get(&outsider, &app.address, &root, &[]).await.status(),
            StatusCode::OK
        );
        let on = expect_data(enable(&app, &root, true, false).await, StatusCode::OK).await;
        assert_eq!(on["enabled"], true);
        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/ip-allowlist", &root, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed["enabled"], true);
        assert_eq!(listed["entries"].as_array().unwrap().len(), 2);

        // On: 127.0.0.1 passes, 127.0.0.2 is refused — also when it claims another address.
        assert_eq!(
            admin_get(&app.client, &app.address, &root, &[]).await.status(),
            StatusCode::OK
        );
        expect_error(
            admin_get(&outsider, &app.address, &root, &[]).await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        expect_error(
            admin_get(
                &outsider,
                &app.address,
                &root,
                &[("x-forwarded-for", "127.0.0.1")],
            )
            .await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        // Without a token too: the address is checked first.
        let anonymous = outsider
            .get(format!("{}/api/admin/v1/users", app.address))
            .send()
            .await
            .unwrap();
        expect_error(anonymous, StatusCode::FORBIDDEN, "IP_NOT_ALLOWED").await;
        // The user API is not behind the list.
        let me = outsider
            .get(format!("{}/api/v1/auth/me", app.address))
            .bearer_auth(&root.token)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::OK);
        // Audited once per address and minute however many come (the metric counts them all).
        let refusals = app
            .audit_actions()
            .await
            .into_iter()
            .filter(|action| action == "admin.ip_refused")
            .count();
        assert_eq!(refusals, 1, "{backend:?}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(metrics.contains("steward_admin_ip_refused_total"), "{backend:?}");

        // Behind a trusted proxy (127.0.0.1), the forwarded address is the client's.
        let (proxied, handle) = spawn_instance_with(&app, |config| {
            config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        })
        .await;
        expect_error(
            admin_get(
                &app.client,
                &proxied,
                &root,
                &[("x-forwarded-for", "203.0.113.9")],
            )
            .await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        assert_eq!(
            admin_get(&app.client, &proxied, &root, &[("x-forwarded-for", "127.0.0.1")])
                .await
                .status(),
            StatusCode::OK
        );
        // A proxy that adds its own header line rather than extending the client's: every line
        // counts, the right-most untrusted hop is the client.
        expect_error(
            admin_get(
                &app.client,
                &proxied,
                &root,
                &[
                    ("x-forwarded-for", "127.0.0.1"),
                    ("x-forwarded-for", "203.0.113.9"),
                ],
            )
            .await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        // A hop that is no address leaves the client unknown: refused, not taken for the proxy.
        for junk in ["unknown", "127.0.0.1:5678", "garbage, 10.0.0.1"] {
            expect_error(
                admin_get(&app.client, &proxied, &root, &[("x-forwarded-for", junk)]).await,
                StatusCode::FORBIDDEN,
                "IP_NOT_ALLOWED",
            )
            .await;
        }
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nobody_locks_themself_out_without_force_and_the_cli_restores_access() {
    use clap::Parser;
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = root(&app).await;

        // An empty list is never switched on, not even with force; one without your address
        // needs force.
        let refused = expect_error(
            enable(&app, &root, true, true).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        assert!(
            refused["message"].as_str().unwrap().contains("empty"),
            "{refused}"
        );
        let elsewhere = add(&app, &root, "10.0.0.0/8").await;
        expect_error(
            enable(&app, &root, true, false).await,
            StatusCode::CONFLICT,
            "ALLOWLIST_WOULD_LOCK_OUT",
        )
        .await;
        let mine = add(&app, &root, "127.0.0.0/8").await;
        expect_data(enable(&app, &root, true, false).await, StatusCode::OK).await;

        // Removing or narrowing your own entry is refused; other entries change freely.
        let mine_path = format!("/api/admin/v1/ip-allowlist/{}", mine["id"].as_str().unwrap());
        expect_error(
            send(&app, Method::DELETE, &mine_path, &root, None).await,
            StatusCode::CONFLICT,
            "ALLOWLIST_WOULD_LOCK_OUT",
        )
        .await;
        expect_error(
            send(
                &app,
                Method::PUT,
                &mine_path,
                &root,
                Some(json!({"cidr": "192.0.2.0/24", "name": "moved"})),
            )
            .await,
            StatusCode::CONFLICT,
            "ALLOWLIST_WOULD_LOCK_OUT",
        )
        .await;
        let changed = expect_data(
            send(
                &app,
                Method::PUT,
                &format!("/api/admin/v1/ip-allowlist/{}", elsewhere["id"].as_str().unwrap()),
                &root,
                Some(json!({"cidr": "10.1.0.0/16", "name": "branch"})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(changed["cidr"], "10.1.0.0/16");
        let missing = format!("/api/admin/v1/ip-allowlist/{}", uuid::Uuid::now_v7());
        expect_error(
            send(&app, Method::DELETE, &missing, &root, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

        // `force` only counts from a super_admin: a custom role with settings:write cannot.
        expect_data(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/roles",
                &root,
                Some(json!({"name": "netops", "permissions": ["settings:write"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let netops = app.user("netops@example.com").await;
        app.grant(netops.id, "netops").await;
        expect_error(
            send(
                &app,
                Method::DELETE,
                &mine_path,
                &netops,
                Some(json!({"force": true})),
            )
            .await,
            StatusCode::CONFLICT,
            "ALLOWLIST_WOULD_LOCK_OUT",
        )
        .await;
        // A super_admin forces it, and is refused from then on.
        let forced = send(
            &app,
            Method::DELETE,
            &mine_path,
            &root,
            Some(json!({"force": true})),
        )
        .await;
        assert_eq!(forced.status(), StatusCode::NO_CONTENT, "{backend:?}");
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/users", &root, None).await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        let actions = app.audit_actions().await;
        for action in [
            "admin.allowlist_entry_created",
            "admin.allowlist_entry_updated",
            "admin.allowlist_entry_deleted",
            "admin.allowlist_settings_changed",
        ] {
            assert!(actions.contains(&action.to_owned()), "{action}");
        }

        // Break glass: `steward allowlist disable` on the server's machine.
        let config = app.data_dir.path().join("steward.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\ndatabase_url = {:?}\n",
                app.data_dir.path().display().to_string(),
                app.database.url
            ),
        )
        .unwrap();
        let cli = steward::cli::Cli::parse_from([
            "steward",
            "--config",
            config.to_str().unwrap(),
            "allowlist",
            "disable",
        ]);
        steward::cli::run(cli).await.unwrap();
        // Every instance rereads the list within 5 seconds.
        let mut status = StatusCode::FORBIDDEN;
        for _ in 0..30 {
            status = send(&app, Method::GET, "/api/admin/v1/users", &root, None)
                .await
                .status();
            if status == StatusCode::OK {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(
            status,
            StatusCode::OK,
            "{backend:?}: the CLI switched the list off"
        );
        let settings = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/ip-allowlist/settings",
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(settings["enabled"], false);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_bypass_token_lets_its_bearer_through_until_revoked_or_expired() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = root(&app).await;
        let outsider = from([127, 0, 0, 2]);
        add(&app, &root, "127.0.0.1/32").await;
        expect_data(enable(&app, &root, true, false).await, StatusCode::OK).await;

        for bad in [
            json!({"reason": "travel", "ttlHours": 25}),
            json!({"reason": "travel", "ttlHours": 0}),
            json!({"reason": "", "ttlHours": 1}),
            json!({"reason": "travel", "ttlHours": -1}),
            json!({"reason": "travel", "ttlHours": 1e30}),
        ] {
            let response = send(
                &app,
                Method::POST,
                "/api/admin/v1/ip-allowlist/bypass-tokens",
                &root,
                Some(bad.clone()),
            )
            .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        let created = send(
            &app,
            Method::POST,
            "/api/admin/v1/ip-allowlist/bypass-tokens",
            &root,
            Some(json!({"reason": "on call from a hotel", "ttlHours": 1})),
        )
        .await;
        assert_eq!(created.headers()["cache-control"], "no-store");
        let created = expect_data(created, StatusCode::CREATED).await;
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("stw_byp_"));
        let header = [("x-steward-allowlist-bypass", secret.as_str())];

        assert_eq!(
            admin_get(&outsider, &app.address, &root, &header).await.status(),
            StatusCode::OK,
            "{backend:?}"
        );
        // A request let in by a token cannot mint the next one.
        let renewed = outsider
            .post(format!("{}/api/admin/v1/ip-allowlist/bypass-tokens", app.address))
            .bearer_auth(&root.token)
            .header("x-steward-allowlist-bypass", &secret)
            .json(&json!({"reason": "again", "ttlHours": 24}))
            .send()
            .await
            .unwrap();
        expect_error(renewed, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        expect_error(
            admin_get(
                &outsider,
                &app.address,
                &root,
                &[("x-steward-allowlist-bypass", "stw_byp_guess")],
            )
            .await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        assert!(
            app.audit_actions()
                .await
                .contains(&"admin.allowlist_bypassed".to_owned())
        );
        let tokens = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/ip-allowlist/bypass-tokens",
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(tokens[0]["lastUsedAt"].is_string(), "{tokens}");
        assert!(
            tokens.to_string().find(&secret).is_none(),
            "the list never shows a secret"
        );

        // Revoked: refused; revoking again is 404.
        let revoke = format!(
            "/api/admin/v1/ip-allowlist/bypass-tokens/{}",
            created["token"]["id"].as_str().unwrap()
        );
        assert_eq!(
            send(&app, Method::DELETE, &revoke, &root, None).await.status(),
            StatusCode::NO_CONTENT
        );
        expect_error(
            admin_get(&outsider, &app.address, &root, &header).await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        expect_error(
            send(&app, Method::DELETE, &revoke, &root, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

        // Expired (its end moved into the past in the database rather than waited for).
        let second = expect_data(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/ip-allowlist/bypass-tokens",
                &root,
                Some(json!({"reason": "second", "ttlHours": 24})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let second_secret = second["secret"].as_str().unwrap().to_owned();
        assert_eq!(
            admin_get(
                &outsider,
                &app.address,
                &root,
                &[("x-steward-allowlist-bypass", &second_secret)]
            )
            .await
            .status(),
            StatusCode::OK
        );
        {
            use sea_orm::sea_query::Expr;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            use steward_persistence::entities::allowlist_bypass_tokens;
            allowlist_bypass_tokens::Entity::update_many()
                .col_expr(
                    allowlist_bypass_tokens::Column::ExpiresAt,
                    Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)),
                )
                .filter(allowlist_bypass_tokens::Column::Reason.eq("second"))
                .exec(app.db.connection())
                .await
                .unwrap();
        }
        expect_error(
            admin_get(
                &outsider,
                &app.address,
                &root,
                &[("x-steward-allowlist-bypass", &second_secret)],
            )
            .await,
            StatusCode::FORBIDDEN,
            "IP_NOT_ALLOWED",
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_changes_racing_cannot_together_shut_the_caller_out() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = root(&app).await;
        let narrow = add(&app, &root, "127.0.0.1/32").await;
        let wide = add(&app, &root, "127.0.0.0/8").await;
        expect_data(enable(&app, &root, true, false).await, StatusCode::OK).await;
        // Each deletion alone keeps 127.0.0.1 allowed; both together would not.
        let path = |entry: &Value| format!("/api/admin/v1/ip-allowlist/{}", entry["id"].as_str().unwrap());
        let (a, b) = tokio::join!(
            send(&app, Method::DELETE, &path(&narrow), &root, None),
            send(&app, Method::DELETE, &path(&wide), &root, None),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [204, 409], "{backend:?}");
        expect_data(
            send(&app, Method::GET, "/api/admin/v1/users", &root, None).await,
            StatusCode::OK,
        )
        .await;
        app.stop().await;
    })
    .await;
}
