//! Webhooks: signed deliveries of the documented payload, exactly once; retries on the
//! configured schedule, `failed`, redelivery; a turned-off subscription receives nothing; two
//! instances deliver each event once; an event written just before the server died is
//! delivered after a restart; who may manage which subscription; hostile input.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::receiver::{Receiver, verify};
use steward_tests::{
    Backend, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app_with,
    spawn_instance_with,
};

async fn root(app: &TestApp) -> TestUser {
    let root = app.user("root@example.com").await;
    app.grant(root.id, "super_admin").await;
    root
}

async fn subscribe(app: &TestApp, user: &TestUser, body: Value) -> Value {
    expect_data(
        send(app, Method::POST, "/api/admin/v1/webhooks", user, Some(body)).await,
        StatusCode::CREATED,
    )
    .await
}

async fn deliveries(app: &TestApp, user: &TestUser, webhook: &str, query: &str) -> Vec<Value> {
    expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/admin/v1/webhooks/{webhook}/deliveries{query}"),
            user,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await
    .as_array()
    .unwrap()
    .clone()
}

/// Waits until the subscription's deliveries satisfy `done`.
async fn wait_deliveries(
    app: &TestApp,
    user: &TestUser,
    webhook: &str,
    seconds: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let found = deliveries(app, user, webhook, "?perPage=100").await;
        if done(&found) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "deliveries never settled: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn events_arrive_signed_once_with_the_documented_payload() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        let app = spawn_app_with(backend, |_| {}).await;
        let root = root(&app).await;
        let created = subscribe(
            &app,
            &root,
            json!({"url": format!("{}/hooks/steward", receiver.base_url),
                   "events": ["user.created", "auth.account_locked"], "description": "SIEM"}),
        )
        .await;
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{created}");
        assert_eq!(created["enabled"], true);
        assert_eq!(created["events"], json!(["user.created", "auth.account_locked"]));
        let webhook = created["id"].as_str().unwrap().to_owned();
        // The secret is shown once: reading the subscription does not show it.
        let read = expect_data(
            send(&app, Method::GET, &format!("/api/admin/v1/webhooks/{webhook}"), &root, None).await,
            StatusCode::OK,
        )
        .await;
        assert!(read.get("secret").is_none(), "{read}");

        let made = expect_data(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/users",
                &root,
                Some(json!({"email": "new@example.com", "displayName": "New", "password": "a long enough passphrase 1"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let created_hook = receiver.wait_for("user.created", 1, 10).await.remove(0);
        assert!(verify(&created_hook, &secret), "signature does not verify: {created_hook:?}");
        assert!(!verify(&created_hook, "whsec_wrong"));
        assert_eq!(created_hook.path, "/hooks/steward");
        assert_eq!(created_hook.content_type.as_deref(), Some("application/json"));
        let body = &created_hook.body;
        assert_eq!(body["type"], "user.created");
        assert_eq!(body["actor"], json!({"kind": "admin", "id": root.id}));
        assert_eq!(body["data"]["resourceType"], "user");
        assert_eq!(body["data"]["resourceId"], made["id"]);
        assert_eq!(body["data"]["after"]["email"], "new@example.com");
        assert!(body["id"].as_str().is_some() && body["occurredAt"].as_str().is_some(), "{body}");
        assert!(body.get("organizationId").is_none(), "{body}");

        for _ in 0..5 {
            let refused = app.login("new@example.com", "wrong password, sorry").await;
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        }
        let locked = receiver.wait_for("auth.account_locked", 1, 10).await.remove(0);
        assert!(verify(&locked, &secret));
        assert_eq!(locked.body["data"]["after"]["email"], "new@example.com");
        assert_eq!(locked.body["actor"]["kind"], "system");

        // Nothing else was subscribed to, and nothing arrives twice.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all = receiver.received();
        assert_eq!(all.len(), 2, "{:?}", all.iter().map(|h| h.event.clone()).collect::<Vec<_>>());
        assert_ne!(all[0].delivery, all[1].delivery);
        let log = deliveries(&app, &root, &webhook, "").await;
        assert_eq!(log.len(), 2);
        for delivery in &log {
            assert_eq!(delivery["status"], "succeeded", "{delivery}");
            assert_eq!(delivery["attempts"], 1);
            assert_eq!(delivery["responseStatus"], 204);
            assert!(delivery["requestBody"]["type"].is_string());
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn failures_are_retried_on_schedule_then_failed_and_redelivered_on_request() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        receiver.answer(500);
        let app = spawn_app_with(backend, |config| config.webhook_retry_delays = vec![1, 2]).await;
        let root = root(&app).await;
        let webhook = subscribe(
            &app,
            &root,
            json!({"url": format!("{}/down", receiver.base_url), "events": ["auth.*"]}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        app.user("someone@example.com").await;
        let attempts = receiver.wait_for("auth.registered", 3, 20).await;
        // One attempt more than there are delays, spaced by them.
        let first_gap = attempts[1].at - attempts[0].at;
        let second_gap = attempts[2].at - attempts[1].at;
        assert!(first_gap >= Duration::from_millis(900), "{first_gap:?}");
        assert!(second_gap >= Duration::from_millis(1900), "{second_gap:?}");
        assert!(attempts.iter().all(|hook| hook.delivery == attempts[0].delivery));
        let log = wait_deliveries(&app, &root, &webhook, 10, |found| {
            found
                .iter()
                .any(|d| d["eventType"] == "auth.registered" && d["status"] == "failed")
        })
        .await;
        let failed = log.iter().find(|d| d["eventType"] == "auth.registered").unwrap();
        assert_eq!(failed["attempts"], 3);
        assert_eq!(failed["responseStatus"], 500);
        assert_eq!(failed["responseBody"], "received");
        assert!(failed["lastError"].as_str().unwrap().contains("500"), "{failed}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            receiver.of_type("auth.registered").len(),
            3,
            "no attempt after the last"
        );
        let filtered = deliveries(&app, &root, &webhook, "?status=failed").await;
        assert!(filtered.iter().all(|d| d["status"] == "failed"), "{filtered:#?}");
        assert!(filtered.iter().any(|d| d["id"] == failed["id"]));

        // Redelivery: a new delivery of the same event.
        receiver.answer(200);
        let again = expect_data(
            send(
                &app,
                Method::POST,
                &format!(
                    "/api/admin/v1/deliveries/{}/redeliver",
                    failed["id"].as_str().unwrap()
                ),
                &root,
                None,
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(again["redeliveryOf"], failed["id"]);
        assert_eq!(again["eventId"], failed["eventId"]);
        let resent = receiver.wait_for("auth.registered", 4, 10).await;
        assert_eq!(resent[3].body["id"], failed["eventId"]);
        assert_eq!(resent[3].delivery.as_deref(), again["id"].as_str());
        wait_deliveries(&app, &root, &webhook, 10, |found| {
            found
                .iter()
                .any(|d| d["id"] == again["id"] && d["status"] == "succeeded")
        })
        .await;

        // A subscription turned off receives nothing; its test ping is refused.
        let off = expect_data(
            send(
                &app,
                Method::PATCH,
                &format!("/api/admin/v1/webhooks/{webhook}"),
                &root,
                Some(json!({"enabled": false})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(off["enabled"], false);
        let before = receiver.received().len();
        app.user("another@example.com").await;
        let ping = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/webhooks/{webhook}/test"),
            &root,
            None,
        )
        .await;
        expect_error(ping, StatusCode::CONFLICT, "CONFLICT").await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(receiver.received().len(), before);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_test_ping_reaches_the_receiver_and_rotation_signs_with_both_secrets() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        let app = spawn_app_with(backend, |_| {}).await;
        let root = root(&app).await;
        let created = subscribe(
            &app,
            &root,
            json!({"url": format!("{}/hook", receiver.base_url), "events": ["group.*"]}),
        )
        .await;
        let (webhook, old) = (
            created["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        );
        let queued = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/webhooks/{webhook}/test"),
                &root,
                None,
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(queued["eventType"], "ping");
        let ping = receiver.wait_for("ping", 1, 10).await.remove(0);
        assert!(verify(&ping, &old));
        assert_eq!(ping.body["data"]["webhookId"], webhook.as_str());

        let rotated = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/webhooks/{webhook}/rotate-secret"),
                &root,
                Some(json!({"overlapSeconds": 3600})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let new = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        assert!(rotated["previousSecretValidUntil"].is_string());
        app.group(&root, "Family").await;
        let event = receiver.wait_for("group.created", 1, 10).await.remove(0);
        assert!(
            verify(&event, &new) && verify(&event, &old),
            "{:?}",
            event.signature
        );

        // Without an overlap only the new secret signs.
        let rotated = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/webhooks/{webhook}/rotate-secret"),
                &root,
                Some(json!({"overlapSeconds": 0})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let newest = rotated["secret"].as_str().unwrap().to_owned();
        app.group(&root, "Team").await;
        let event = receiver.wait_for("group.created", 2, 10).await.remove(1);
        assert!(verify(&event, &newest) && !verify(&event, &new));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_instances_deliver_each_event_once() {
    let Some(backend) = steward_tests::backends()
        .await
        .into_iter()
        .find(|b| *b == Backend::Postgres)
    else {
        return;
    };
    let receiver = Receiver::start().await;
    let app = spawn_app_with(backend, |_| {}).await;
    let (second, handle) = spawn_instance_with(&app, |_| {}).await;
    let root = root(&app).await;
    subscribe(
        &app,
        &root,
        json!({"url": receiver.base_url.clone(), "events": ["auth.registered"]}),
    )
    .await;
    // Half the accounts through each instance, at once.
    let mut registrations = Vec::new();
    for n in 0..40 {
        let base = if n % 2 == 0 {
            app.address.clone()
        } else {
            second.clone()
        };
        let client = app.client.clone();
        registrations.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/auth/register"))
                .json(&json!({"email": format!("user{n}@example.com"), "password": steward_tests::PASSWORD, "displayName": "U"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for registration in registrations {
        assert_eq!(registration.await.unwrap(), StatusCode::CREATED);
    }
    receiver.wait_for("auth.registered", 40, 20).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let hooks = receiver.of_type("auth.registered");
    let mut events: Vec<String> = hooks
        .iter()
        .map(|hook| hook.body["id"].as_str().unwrap().to_owned())
        .collect();
    events.sort();
    let all = events.len();
    events.dedup();
    assert_eq!(
        (all, events.len()),
        (40, 40),
        "each of the 40 registrations exactly once"
    );
    handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn an_event_written_before_the_server_died_is_delivered_after_a_restart() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        // This instance looks at the outbox once, at start, and not again for a minute.
        let app = spawn_app_with(backend, |config| config.events_poll_ms = 60_000).await;
        let root = root(&app).await;
        subscribe(
            &app,
            &root,
            json!({"url": receiver.base_url.clone(), "events": ["group.created"]}),
        )
        .await;
        app.group(&root, "Written, not announced").await;
        assert!(app.count_rows("event_outbox").await > 0);
        // The instance dies before it announces anything; another one starts on the database.
        app.stop_server().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(app.count_rows("event_outbox").await > 0);
        assert!(receiver.received().is_empty());
        let (_restarted, handle) = spawn_instance_with(&app, |_| {}).await;
        let delivered = receiver.wait_for("group.created", 1, 10).await;
        assert_eq!(
            delivered[0].body["data"]["after"]["name"], "Written, not announced",
            "{:?}",
            delivered[0].body
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(receiver.of_type("group.created").len(), 1);
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn organization_admins_manage_their_organizations_subscriptions_only() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        let app = spawn_app_with(backend, |_| {}).await;
        let root = root(&app).await;
        let owner = app.user("owner@example.com").await;
        let other_owner = app.user("other@example.com").await;
        let plain = app.user("plain@example.com").await;
        let org = app.organization(&root, "acme", &owner).await;
        let other = app.organization(&root, "globex", &other_owner).await;
        let url = format!("{}/org", receiver.base_url);

        // A plain user may not subscribe to everything, nor to an organization not theirs.
        let refused = send(
            &app,
            Method::POST,
            "/api/admin/v1/webhooks",
            &plain,
            Some(json!({"url": url, "events": ["*"]})),
        )
        .await;
        expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let refused = send(
            &app,
            Method::POST,
            "/api/admin/v1/webhooks",
            &owner,
            Some(json!({"url": url, "events": ["*"], "organizationId": other})),
        )
        .await;
        expect_error(refused, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let refused = send(
            &app,
            Method::POST,
            "/api/admin/v1/webhooks",
            &owner,
            Some(json!({"url": url, "events": ["*"]})),
        )
        .await;
        expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;

        let mine = subscribe(
            &app,
            &owner,
            json!({"url": url, "events": ["*"], "organizationId": org}),
        )
        .await;
        let theirs = subscribe(
            &app,
            &root,
            json!({"url": url, "events": ["*"], "organizationId": other}),
        )
        .await;
        let mine_id = mine["id"].as_str().unwrap();
        let theirs_id = theirs["id"].as_str().unwrap();
        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/webhooks", &owner, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["id"], mine_id);
        for (method, path) in [
            (Method::GET, format!("/api/admin/v1/webhooks/{theirs_id}")),
            (Method::PATCH, format!("/api/admin/v1/webhooks/{theirs_id}")),
            (Method::DELETE, format!("/api/admin/v1/webhooks/{theirs_id}")),
            (
                Method::GET,
                format!("/api/admin/v1/webhooks/{theirs_id}/deliveries"),
            ),
            (Method::POST, format!("/api/admin/v1/webhooks/{theirs_id}/test")),
            (
                Method::POST,
                format!("/api/admin/v1/webhooks/{theirs_id}/rotate-secret"),
            ),
        ] {
            let body = (method == Method::PATCH).then(|| json!({"enabled": false}));
            let response = send(&app, method.clone(), &path, &owner, body).await;
            expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        }
        let all = expect_data(
            send(&app, Method::GET, "/api/admin/v1/webhooks", &root, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(all.as_array().unwrap().len(), 2);

        // The organization's subscription hears its organization only.
        let token = |org: &str, user: &TestUser| {
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/organizations/{org}/enrollment-tokens"),
                user,
                Some(json!({})),
            )
        };
        expect_data(token(&other, &other_owner).await, StatusCode::CREATED).await;
        expect_data(token(&org, &owner).await, StatusCode::CREATED).await;
        let heard = receiver.wait_for("enrollment_token.created", 2, 10).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let heard_by_mine: Vec<_> = receiver
            .of_type("enrollment_token.created")
            .into_iter()
            .filter(|hook| verify(hook, mine["secret"].as_str().unwrap()))
            .collect();
        assert_eq!(heard.len(), 2);
        assert_eq!(heard_by_mine.len(), 1);
        assert_eq!(heard_by_mine[0].body["organizationId"], org.as_str());

        // Removing the owner from the organization ends their hold on its subscriptions, and
        // the subscriptions they created go quiet: their URL hears nothing more.
        let admin = app.user("admin@example.com").await;
        let added = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/organizations/{org}/users"),
            &root,
            Some(json!({"userId": admin.id, "role": "owner"})),
        )
        .await;
        assert!(added.status().is_success(), "{}", added.status());
        // (Events from before the removal may still be on their way; those after it must not.)
        let removal = chrono::Utc::now();
        let removed = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/organizations/{org}/users/{}", owner.id),
            &root,
            None,
        )
        .await;
        assert!(removed.status().is_success(), "{}", removed.status());
        let gone = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/webhooks/{mine_id}"),
            &owner,
            None,
        )
        .await;
        expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let heard_before = receiver.received().len();
        expect_data(token(&org, &admin).await, StatusCode::CREATED).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let off = loop {
            let read = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/webhooks/{mine_id}"),
                    &admin,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            if read["enabled"] == false {
                break read;
            }
            assert!(std::time::Instant::now() < deadline, "still on: {read}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            off["disabledReason"]
                .as_str()
                .unwrap()
                .contains("no longer manages"),
            "{off}"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let late: Vec<_> = receiver
            .received()
            .into_iter()
            .skip(heard_before)
            .filter(|hook| verify(hook, mine["secret"].as_str().unwrap()))
            .filter(|hook| {
                hook.body["occurredAt"]
                    .as_str()
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                    .is_some_and(|at| at >= removal)
            })
            .collect();
        assert!(
            late.is_empty(),
            "the former owner's URL still hears: {:?}",
            late.iter().map(|h| h.event.clone()).collect::<Vec<_>>()
        );
        // The remaining owner turns it back on and answers for it from then on.
        let revived = expect_data(
            send(
                &app,
                Method::PATCH,
                &format!("/api/admin/v1/webhooks/{mine_id}"),
                &admin,
                Some(json!({"enabled": true})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (revived["enabled"].clone(), revived["createdBy"].clone()),
            (json!(true), json!(admin.id))
        );
        expect_data(token(&org, &admin).await, StatusCode::CREATED).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let read = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/webhooks/{mine_id}"),
                &admin,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(read["enabled"], true, "{read}");

        // Deleting the organization deletes its subscriptions.
        let deleted = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/organizations/{other}"),
            &root,
            None,
        )
        .await;
        assert!(deleted.status().is_success(), "{}", deleted.status());
        let gone = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/webhooks/{theirs_id}"),
            &root,
            None,
        )
        .await;
        expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hostile_and_malformed_subscriptions_are_refused() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.webhook_allow_http = false;
            config.webhook_allowed_networks = Vec::new();
        })
        .await;
        let root = root(&app).await;
        let long = "x".repeat(10_000);
        for (body, field) in [
            (
                json!({"url": "http://hooks.example.com/", "events": ["*"]}),
                "url",
            ),
            (json!({"url": "https://127.0.0.1/", "events": ["*"]}), "url"),
            (
                json!({"url": "https://169.254.169.254/latest", "events": ["*"]}),
                "url",
            ),
            (json!({"url": "https://[::1]:8443/", "events": ["*"]}), "url"),
            (json!({"url": "https://localhost/", "events": ["*"]}), "url"),
            (
                json!({"url": "https://user:pw@hooks.example.com/", "events": ["*"]}),
                "url",
            ),
            (
                json!({"url": "https://hooks.example.com/\u{0}", "events": ["*"]}),
                "url",
            ),
            (
                json!({"url": format!("https://hooks.example.com/{long}"), "events": ["*"]}),
                "url",
            ),
            (
                json!({"url": "https://hooks.example.com/", "events": []}),
                "events",
            ),
            (
                json!({"url": "https://hooks.example.com/", "events": ["user.made_up"]}),
                "events",
            ),
            (
                json!({"url": "https://hooks.example.com/", "events": ["*"], "description": long}),
                "description",
            ),
            (
                json!({"url": "https://hooks.example.com/", "events": ["*"], "description": "a\u{0}b"}),
                "description",
            ),
        ] {
            let response = send(
                &app,
                Method::POST,
                "/api/admin/v1/webhooks",
                &root,
                Some(body.clone()),
            )
            .await;
            let error = expect_error(response, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
            assert_eq!(error["details"][0]["field"], field, "{body}: {error}");
        }
        for body in [
            json!({"url": "https://hooks.example.com/"}),
            json!({"url": 7, "events": ["*"]}),
            json!({"url": "https://h.example.com/", "events": ["*"], "extra": 1}),
        ] {
            let response = send(&app, Method::POST, "/api/admin/v1/webhooks", &root, Some(body)).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        }
        let wrong_type = app
            .authed(Method::POST, "/api/admin/v1/webhooks", &root.token)
            .header("content-type", "text/plain")
            .body(r#"{"url": "https://hooks.example.com/", "events": ["*"]}"#)
            .send()
            .await
            .unwrap();
        assert!(
            wrong_type.status() == StatusCode::UNSUPPORTED_MEDIA_TYPE
                || wrong_type.status() == StatusCode::BAD_REQUEST
        );
        let created = subscribe(
            &app,
            &root,
            json!({"url": "https://hooks.example.com/x", "events": ["user.*", "user.*"]}),
        )
        .await;
        assert_eq!(created["events"], json!(["user.*"]));
        let id = created["id"].as_str().unwrap();
        for body in [
            json!({"overlapSeconds": -1}),
            json!({"overlapSeconds": 604_801}),
            json!({"overlapSeconds": 1e30}),
        ] {
            let response = send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/webhooks/{id}/rotate-secret"),
                &root,
                Some(body),
            )
            .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        }
        for query in ["?status=bogus", "?page=0", "?perPage=1000"] {
            let response = send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/webhooks/{id}/deliveries{query}"),
                &root,
                None,
            )
            .await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        }
        let stale = send(
            &app,
            Method::PATCH,
            &format!("/api/admin/v1/webhooks/{id}"),
            &root,
            Some(json!({"enabled": false, "version": 99})),
        )
        .await;
        expect_error(stale, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
        let unknown = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/webhooks/{}", uuid::Uuid::now_v7()),
            &root,
            None,
        )
        .await;
        expect_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn concurrent_changes_with_one_version_give_one_winner() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let root = root(&app).await;
        let created = subscribe(
            &app,
            &root,
            json!({"url": "https://hooks.example.com/", "events": ["*"]}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        for round in 0..5 {
            let version = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/webhooks/{id}"),
                    &root,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await["version"]
                .clone();
            let a = send(
                &app,
                Method::PATCH,
                &format!("/api/admin/v1/webhooks/{id}"),
                &root,
                Some(json!({"description": format!("a{round}"), "version": version})),
            );
            let b = send(
                &app,
                Method::PATCH,
                &format!("/api/admin/v1/webhooks/{id}"),
                &root,
                Some(json!({"description": format!("b{round}"), "version": version})),
            );
            let (a, b) = tokio::join!(a, b);
            let mut statuses = [a.status(), b.status()];
            statuses.sort();
            assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "round {round}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_unreadable_audit_entry_does_not_hold_up_the_events_after_it() {
    each_backend(|backend| async move {
        use sea_orm::{ConnectionTrait, Statement};
        let receiver = Receiver::start().await;
        // This instance does not look at the outbox while the bad row is put in.
        let app = spawn_app_with(backend, |config| config.events_poll_ms = 60_000).await;
        let root = root(&app).await;
        subscribe(&app, &root, json!({"url": receiver.base_url.clone(), "events": ["group.created"]})).await;
        let connection = app.db.connection();
        let kind = connection.get_database_backend();
        let id = uuid::Uuid::now_v7();
        let old = chrono::Utc::now() - chrono::Duration::minutes(1);
        let audit = match kind {
            sea_orm::DatabaseBackend::Postgres => {
                r#"INSERT INTO "audit_logs" ("id", "occurred_at", "actor_kind", "action", "resource_type") VALUES ($1, $2, 'robot', 'LegacyAction', 'thing')"#
            }
            _ => {
                r#"INSERT INTO "audit_logs" ("id", "occurred_at", "actor_kind", "action", "resource_type") VALUES (?1, ?2, 'robot', 'LegacyAction', 'thing')"#
            }
        };
        connection
            .execute_raw(Statement::from_sql_and_values(kind, audit, [id.into(), old.into()]))
            .await
            .unwrap();
        // The database itself queues every audit entry written, however it was written.
        let queued = connection
            .query_one_raw(Statement::from_sql_and_values(
                kind,
                match kind {
                    sea_orm::DatabaseBackend::Postgres => r#"SELECT COUNT(*) AS n FROM "event_outbox" WHERE "audit_id" = $1"#,
                    _ => r#"SELECT COUNT(*) AS n FROM "event_outbox" WHERE "audit_id" = ?1"#,
                },
                [id.into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(queued, 1, "the trigger queued the entry");
        app.group(&root, "After the bad one").await;
        app.stop_server().await;
        let (_second, handle) = spawn_instance_with(&app, |_| {}).await;
        let delivered = receiver.wait_for("group.created", 1, 10).await;
        assert_eq!(delivered[0].body["data"]["after"]["name"], "After the bad one");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.count_rows("event_outbox").await, 0, "the unreadable entry left the outbox");
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn organizations_reach_only_their_own_networks_and_a_slow_receiver_holds_no_one_else_up() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        // A receiver that accepts connections and never answers.
        let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tarpit_url = format!("http://{}/slow", tarpit.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = tarpit.accept().await {
                held.push(socket);
            }
        });
        let app = spawn_app_with(backend, |config| {
            config.webhook_organization_networks = Vec::new();
            config.webhook_concurrency = 6;
            config.webhook_timeout_secs = 5;
            config.webhook_retry_delays = Vec::new();
        })
        .await;
        let root = root(&app).await;
        let owner = app.user("owner@example.com").await;
        let org = app.organization(&root, "acme", &owner).await;
        // The instance may reach loopback; an organization's subscription may not, not even
        // one a super_admin creates.
        for user in [&owner, &root] {
            let body = json!({"url": receiver.base_url.clone(), "events": ["*"], "organizationId": org});
            let refused = send(&app, Method::POST, "/api/admin/v1/webhooks", user, Some(body)).await;
            let error = expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
            assert_eq!(error["details"][0]["field"], "url");
        }
        let slow = subscribe(
            &app,
            &root,
            json!({"url": tarpit_url, "events": ["group.deleted"]}),
        )
        .await;
        subscribe(
            &app,
            &root,
            json!({"url": receiver.base_url.clone(), "events": ["group.created"]}),
        )
        .await;
        for _ in 0..20 {
            let path = format!("/api/admin/v1/webhooks/{}/test", slow["id"].as_str().unwrap());
            let ping = send(&app, Method::POST, &path, &root, None).await;
            assert_eq!(ping.status(), StatusCode::ACCEPTED);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = std::time::Instant::now();
        app.group(&root, "Not held up").await;
        receiver.wait_for("group.created", 1, 4).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        app.stop().await;
    })
    .await;
}

/// Runs a receiver snippet of docs/events.md (Python or Node) on a delivery; what it printed.
fn run_snippet(program: &str, code: &str, headers: &Value, raw: &str, secret: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, raw).unwrap();
    let script = dir.path().join("verify");
    std::fs::write(&script, code).unwrap();
    let output = std::process::Command::new(program)
        .arg(&script)
        .arg(headers.to_string())
        .arg(&body)
        .arg(secret)
        .output()
        .unwrap_or_else(|error| panic!("{program}: {error}"));
    assert!(
        output.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[tokio::test]
async fn the_documented_payload_and_verification_code_match_a_real_delivery() {
    use steward_tests::docs;
    let payload =
        docs::example_json(&docs::block("docs/events.md", "\"type\": \"user.created\"").text).unwrap();
    let python = docs::block("docs/events.md", "import hashlib, hmac, time").text
        + "\n\nimport json, sys\nheaders = json.loads(sys.argv[1])\nprint(verify(sys.argv[3], headers, open(sys.argv[2], 'rb').read()))\n";
    let node = docs::block("docs/events.md", "const crypto = require(\"crypto\");").text
        + "\n\nconst [headers, body, secret] = process.argv.slice(2);\nconsole.log(verify(secret, JSON.parse(headers), require(\"fs\").readFileSync(body)));\n";
    let rust = docs::block("docs/events.md", "use hmac::{Hmac, KeyInit, Mac};").text;
    let source =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/documented_verify.rs")).unwrap();
    assert!(
        source.contains(&rust),
        "tests/src/documented_verify.rs holds the Rust code of docs/events.md verbatim"
    );
    let have_node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok();
    assert!(
        have_node || std::env::var("CI").is_err(),
        "node is needed to run the docs' receiver code"
    );
    each_backend(|backend| {
        let (payload, python, node) = (payload.clone(), python.clone(), node.clone());
        async move {
            let receiver = Receiver::start().await;
            let app = spawn_app_with(backend, |_| {}).await;
            let root = root(&app).await;
            let created = subscribe(
                &app,
                &root,
                json!({"url": format!("{}/hooks/steward", receiver.base_url), "events": ["user.created"]}),
            )
            .await;
            let secret = created["secret"].as_str().unwrap().to_owned();
            app.authed(Method::POST, "/api/admin/v1/users", &root.token)
                .header("user-agent", "curl/8.5.0")
                .json(&json!({"email": "new@example.com", "displayName": "New", "password": "a long enough passphrase 1"}))
                .send()
                .await
                .unwrap();
            let hook = receiver.wait_for("user.created", 1, 10).await.remove(0);
            // The payload has every field shown, and these values.
            docs::same_keys(&payload, &hook.body).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            assert_eq!(hook.body["type"], "user.created");
            assert_eq!(hook.body["actor"]["kind"], payload["actor"]["kind"]);
            assert_eq!(hook.body["data"]["after"], payload["data"]["after"], "{backend:?}");
            assert_eq!(hook.body["data"]["userAgent"], payload["data"]["userAgent"]);

            // The receivers' code accepts the delivery and refuses it under another secret.
            // As each runtime hands them over: Python frameworks keep the header's spelling,
            // Node lower-cases header names.
            let headers = json!({"X-Steward-Timestamp": hook.timestamp, "X-Steward-Signature": hook.signature});
            let lower = json!({"x-steward-timestamp": hook.timestamp, "x-steward-signature": hook.signature});
            assert!(steward_tests::documented_verify::verify_delivery(&hook, &secret));
            assert!(!steward_tests::documented_verify::verify_delivery(&hook, "whsec_wrong"));
            assert_eq!(run_snippet("python3", &python, &headers, &hook.raw, &secret), "True");
            assert_eq!(run_snippet("python3", &python, &headers, &hook.raw, "whsec_wrong"), "False");
            if have_node {
                assert_eq!(run_snippet("node", &node, &lower, &hook.raw, &secret), "true");
                assert_eq!(run_snippet("node", &node, &lower, &hook.raw, "whsec_wrong"), "false");
            }
            app.stop().await;
        }
    })
    .await;
}
