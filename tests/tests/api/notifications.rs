//! Notifications for operators: five failed sign-ins raise one high-severity notification,
//! mailed over SMTP to operators whose threshold it meets; read marks per operator; an
//! organization's notification is its owners' and admins' only; a subscription failing 50
//! times in a row is turned off and says so; new admin addresses, bulk actions and settings
//! changes; preferences refuse what does not parse; a digest instead of a flood; counted rules
//! fire once across two instances.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::receiver::{Receiver, verify};
use steward_tests::smtp::SmtpServer;
use steward_tests::{
    Backend, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app_with,
    spawn_second_instance,
};

async fn operator(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

async fn list(app: &TestApp, user: &TestUser, query: &str) -> Vec<Value> {
    expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/admin/v1/notifications{query}"),
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

/// Waits until `user` sees at least `count` notifications of `rule`.
async fn wait_rule(app: &TestApp, user: &TestUser, rule: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = list(app, user, "?perPage=100")
            .await
            .into_iter()
            .filter(|n| n["rule"] == rule)
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {count} `{rule}` notifications",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn unread(app: &TestApp, user: &TestUser) -> u64 {
    expect_data(
        send(app, Method::GET, "/api/admin/v1/me", user, None).await,
        StatusCode::OK,
    )
    .await["unreadNotifications"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn five_failed_sign_ins_raise_one_high_notification_mailed_by_preference() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let app = spawn_app_with(backend, move |config| config.smtp_url = Some(url)).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let auditor = operator(&app, "auditor@example.com", "auditor").await;
        let quiet = operator(&app, "quiet@example.com", "user_admin").await;
        let support = operator(&app, "support@example.com", "support").await;
        // The auditor only wants critical mail; `quiet` muted the rule; support may not see it.
        let prefs = |threshold: &str, muted: Value| json!({"emailEnabled": true, "emailSeverityThreshold": threshold, "mutedRules": muted});
        expect_data(send(&app, Method::PUT, "/api/admin/v1/me/notification-preferences", &auditor, Some(prefs("critical", json!([])))).await, StatusCode::OK).await;
        expect_data(send(&app, Method::PUT, "/api/admin/v1/me/notification-preferences", &quiet, Some(prefs("low", json!(["failed_sign_ins"])))).await, StatusCode::OK).await;
        app.user("victim@example.com").await;
        for _ in 0..5 {
            let refused = app.login("victim@example.com", "not the password").await;
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        }
        let raised = wait_rule(&app, &root, "failed_sign_ins", 1).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let raised_now = list(&app, &root, "?severity=high&perPage=100").await;
        let failed: Vec<&Value> = raised_now.iter().filter(|n| n["rule"] == "failed_sign_ins").collect();
        assert_eq!(failed.len(), 1, "one notification for five failures: {raised_now:#?}");
        let notification = failed[0].clone();
        assert_eq!(notification["id"], raised[0]["id"]);
        assert_eq!(notification["severity"], "high");
        assert!(notification["title"].as_str().unwrap().contains("victim@example.com"), "{notification}");
        assert_eq!(notification["data"]["event"]["type"], "auth.login_failed");
        assert!(notification["readAt"].is_null());
        wait_rule(&app, &root, "account_locked", 1).await;

        // Mail: root (default: medium and above) gets it; the auditor (critical only) and
        // `quiet` (muted) do not; support cannot see it at all.
        let mail = loop {
            let found = smtp.received().into_iter().find(|mail| {
                mail.recipients.iter().any(|r| r == "root@example.com") && mail.text().contains("Repeated failed sign-ins for victim@example.com")
            });
            if let Some(mail) = found {
                break mail;
            }
            smtp.wait_for("root@example.com", smtp.received().iter().filter(|m| m.recipients.iter().any(|r| r == "root@example.com")).count() + 1).await;
        };
        assert!(mail.text().contains("HIGH"), "{}", mail.text());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for other in ["auditor@example.com", "quiet@example.com", "support@example.com"] {
            assert!(
                !smtp.received().iter().any(|m| m.recipients.iter().any(|r| r == other) && m.text().contains("Repeated failed sign-ins")),
                "{other} was mailed"
            );
        }
        // Support holds a system role but not notifications:read.
        assert!(list(&app, &support, "").await.is_empty());

        // Read marks are per operator.
        let before = unread(&app, &root).await;
        assert!(before >= 2, "{before}");
        let id = notification["id"].as_str().unwrap();
        let read = send(&app, Method::POST, &format!("/api/admin/v1/notifications/{id}/read"), &root, None).await;
        assert_eq!(read.status(), StatusCode::NO_CONTENT);
        let again = send(&app, Method::POST, &format!("/api/admin/v1/notifications/{id}/read"), &root, None).await;
        assert_eq!(again.status(), StatusCode::NO_CONTENT);
        assert_eq!(unread(&app, &root).await, before - 1);
        assert!(list(&app, &root, "?unread=true&perPage=100").await.iter().all(|n| n["id"] != id));
        assert_eq!(list(&app, &root, "?unread=false").await.len(), 1);
        assert!(list(&app, &auditor, "?unread=true&perPage=100").await.iter().any(|n| n["id"] == id));
        let refused = send(&app, Method::POST, &format!("/api/admin/v1/notifications/{id}/read"), &support, None).await;
        expect_error(refused, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let all = expect_data(send(&app, Method::POST, "/api/admin/v1/notifications/read-all", &root, None).await, StatusCode::OK).await;
        assert_eq!(all["marked"], before - 1);
        assert_eq!(unread(&app, &root).await, 0);
        assert!(unread(&app, &auditor).await > 0);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_subscription_failing_fifty_times_is_turned_off_and_only_its_organization_hears() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        receiver.answer(500);
        let app = spawn_app_with(backend, |config| config.webhook_retry_delays = Vec::new()).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let stranger = app.user("stranger@example.com").await;
        let org = app.organization(&root, "acme", &owner).await;
        app.organization(&root, "globex", &stranger).await;
        let webhook = expect_data(
            send(&app, Method::POST, "/api/admin/v1/webhooks", &owner,
                Some(json!({"url": format!("{}/down", receiver.base_url), "events": ["enrollment_token.*"], "organizationId": org}))).await,
            StatusCode::CREATED,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        for _ in 0..50 {
            expect_data(
                send(&app, Method::POST, &format!("/api/admin/v1/organizations/{org}/enrollment-tokens"), &owner, Some(json!({}))).await,
                StatusCode::CREATED,
            )
            .await;
        }
        let disabled = wait_rule(&app, &root, "webhook_disabled", 1).await.remove(0);
        assert_eq!(disabled["organizationId"], org.as_str());
        assert_eq!(disabled["severity"], "medium");
        let hook = expect_data(send(&app, Method::GET, &format!("/api/admin/v1/webhooks/{webhook}"), &owner, None).await, StatusCode::OK).await;
        assert_eq!(hook["enabled"], false);
        assert_eq!(hook["consecutiveFailures"], 50);
        assert!(hook["disabledReason"].as_str().unwrap().contains("50"), "{hook}");
        assert!(app.audit_actions().await.contains(&"webhook.disabled".to_owned()));
        // The organization's owner sees it; the other organization's owner does not.
        let mine = list(&app, &owner, "").await;
        assert!(mine.iter().any(|n| n["id"] == disabled["id"]), "{mine:#?}");
        assert!(mine.iter().all(|n| n["organizationId"] == org.as_str()));
        assert!(list(&app, &stranger, "").await.is_empty());
        let refused = send(&app, Method::POST, &format!("/api/admin/v1/notifications/{}/read", disabled["id"].as_str().unwrap()), &stranger, None).await;
        expect_error(refused, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // Nothing more is sent to it; turning it back on clears the count.
        let sent = receiver.received().len();
        assert_eq!(sent, 50);
        expect_data(send(&app, Method::POST, &format!("/api/admin/v1/organizations/{org}/enrollment-tokens"), &owner, Some(json!({}))).await, StatusCode::CREATED).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(receiver.received().len(), sent);
        let on = expect_data(
            send(&app, Method::PATCH, &format!("/api/admin/v1/webhooks/{webhook}"), &owner, Some(json!({"enabled": true}))).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!((on["enabled"].clone(), on["consecutiveFailures"].clone(), on["disabledReason"].clone()), (json!(true), json!(0), Value::Null));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn new_admin_addresses_bulk_actions_and_settings_changes_are_noticed() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            config.notify_bulk_records = 2;
        })
        .await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let login_from = |address: &str| {
            app.client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", address)
                .json(&json!({"email": "root@example.com", "password": steward_tests::PASSWORD}))
                .send()
        };
        assert_eq!(login_from("198.51.100.1").await.unwrap().status(), StatusCode::OK);
        assert_eq!(login_from("198.51.100.1").await.unwrap().status(), StatusCode::OK);
        // (Sign-ins before the role was granted may or may not count as the first address.)
        tokio::time::sleep(Duration::from_millis(500)).await;
        let count = |found: Vec<Value>| found.into_iter().filter(|n| n["rule"] == "admin_new_ip").count();
        let before = count(list(&app, &root, "?perPage=100").await);
        assert!(before <= 1, "{before}");
        assert_eq!(login_from("203.0.113.9").await.unwrap().status(), StatusCode::OK);
        assert_eq!(login_from("203.0.113.9").await.unwrap().status(), StatusCode::OK);
        let new_ip = wait_rule(&app, &root, "admin_new_ip", before + 1).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            count(list(&app, &root, "?perPage=100").await),
            before + 1,
            "a new address is noticed once"
        );
        assert!(new_ip[0]["title"].as_str().unwrap().contains("203.0.113.9"));
        // A plain user's new address is nobody's business.
        app.user("plain@example.com").await;
        let plain = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", "192.0.2.77")
            .json(&json!({"email": "plain@example.com", "password": steward_tests::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::OK);

        let users: Vec<TestUser> =
            futures_util::future::join_all((0..3).map(|n| app.user_owned(format!("bulk{n}@example.com"))))
                .await;
        let bulk = send(
            &app,
            Method::POST,
            "/api/admin/v1/users/bulk",
            &root,
            Some(json!({"action": "lock", "userIds": users.iter().map(|u| u.id).collect::<Vec<_>>()})),
        )
        .await;
        assert_eq!(bulk.status(), StatusCode::OK);
        let noticed = wait_rule(&app, &root, "bulk_operation", 1).await;
        assert!(
            noticed[0]["title"].as_str().unwrap().contains('3'),
            "{}",
            noticed[0]
        );

        let entry = send(
            &app,
            Method::POST,
            "/api/admin/v1/ip-allowlist",
            &root,
            Some(json!({"cidr": "10.0.0.0/8", "name": "office"})),
        )
        .await;
        assert_eq!(entry.status(), StatusCode::CREATED);
        let settings = wait_rule(&app, &root, "settings_changed", 1).await;
        assert_eq!(settings[0]["severity"], "high");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            count(list(&app, &root, "?perPage=100").await),
            before + 1,
            "plain users are not watched"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn preferences_refuse_what_does_not_parse() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let defaults = expect_data(send(&app, Method::GET, "/api/admin/v1/me/notification-preferences", &root, None).await, StatusCode::OK).await;
        assert_eq!(defaults, json!({"emailEnabled": true, "emailSeverityThreshold": "medium", "mutedRules": [], "webhookUrl": null}));
        for body in [
            json!({"emailEnabled": true, "emailSeverityThreshold": "urgent", "mutedRules": []}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high", "mutedRules": ["made_up"]}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high"}),
            json!({"emailEnabled": "yes", "emailSeverityThreshold": "high", "mutedRules": []}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high\u{0}", "mutedRules": []}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high", "mutedRules": vec!["account_locked"; 10_000]}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high", "mutedRules": [], "extra": 1}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high", "mutedRules": [], "webhookUrl": "https://10.1.2.3/"}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high", "mutedRules": [], "webhookUrl": "ftp://hooks.example.com/"}),
            json!({"emailEnabled": true, "emailSeverityThreshold": "high", "mutedRules": [], "webhookUrl": 7}),
        ] {
            let response = send(&app, Method::PUT, "/api/admin/v1/me/notification-preferences", &root, Some(body.clone())).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        }
        let saved = expect_data(
            send(&app, Method::PUT, "/api/admin/v1/me/notification-preferences", &root,
                Some(json!({"emailEnabled": false, "emailSeverityThreshold": "critical", "mutedRules": ["admin_new_ip", "admin_new_ip"]}))).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(saved["mutedRules"], json!(["admin_new_ip"]));
        let read = expect_data(send(&app, Method::GET, "/api/admin/v1/me/notification-preferences", &root, None).await, StatusCode::OK).await;
        assert_eq!(read, saved);
        for query in ["?severity=urgent", "?unread=maybe", "?page=0"] {
            let response = send(&app, Method::GET, &format!("/api/admin/v1/notifications{query}"), &root, None).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        }
        let unknown = send(&app, Method::POST, &format!("/api/admin/v1/notifications/{}/read", uuid::Uuid::now_v7()), &root, None).await;
        expect_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn many_notifications_for_one_operator_come_as_a_digest() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let url = smtp.url();
        let app = spawn_app_with(backend, move |config| {
            config.smtp_url = Some(url);
            config.notification_mail_secs = 4;
        })
        .await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        // 25 settings changes within a second: however the mail passes fall, one of them holds
        // more than ten.
        for n in 0..25 {
            let entry = send(
                &app,
                Method::POST,
                "/api/admin/v1/ip-allowlist",
                &root,
                Some(json!({"cidr": format!("10.0.{n}.0/24"), "name": format!("site {n}")})),
            )
            .await;
            assert_eq!(entry.status(), StatusCode::CREATED);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let to_root: Vec<String> = smtp
                .received()
                .into_iter()
                .filter(|mail| mail.recipients.iter().any(|r| r == "root@example.com"))
                .map(|mail| mail.text())
                .collect();
            let digests = to_root
                .iter()
                .filter(|text| text.contains("notifications since the last mail"))
                .count();
            let singles = to_root
                .iter()
                .filter(|text| {
                    text.contains("System settings changed")
                        && !text.contains("notifications since the last mail")
                })
                .count();
            if digests >= 1 {
                assert!(singles < 25 - 10, "{singles} single mails next to the digest");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "no digest: {to_root:#?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn counted_rules_fire_once_across_two_instances() {
    let Some(backend) = steward_tests::backends()
        .await
        .into_iter()
        .find(|b| *b == Backend::Postgres)
    else {
        return;
    };
    let app = spawn_app_with(backend, |_| {}).await;
    let (second, handle) = spawn_second_instance(&app).await;
    let root = operator(&app, "root@example.com", "super_admin").await;
    // Unknown accounts are not locked, so every attempt counts: 20 from one address, spread
    // over both instances, at once.
    let mut attempts = Vec::new();
    for n in 0..20 {
        let base = if n % 2 == 0 {
            app.address.clone()
        } else {
            second.clone()
        };
        let client = app.client.clone();
        attempts.push(tokio::spawn(async move {
            client
                .post(format!("{base}/api/v1/auth/login"))
                .json(&json!({"email": format!("nobody{}@example.com", n % 4), "password": "guess"}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for attempt in attempts {
        assert_eq!(attempt.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    wait_rule(&app, &root, "failed_sign_ins_from_ip", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let all = list(&app, &root, "?perPage=100").await;
    assert_eq!(
        all.iter()
            .filter(|n| n["rule"] == "failed_sign_ins_from_ip")
            .count(),
        1
    );
    // Four accounts with five failures each: one notification per account.
    assert_eq!(
        all.iter().filter(|n| n["rule"] == "failed_sign_ins").count(),
        4,
        "{all:#?}"
    );
    handle.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn a_personal_webhook_receives_the_notifications_its_operator_would_be_mailed() {
    each_backend(|backend| async move {
        let receiver = Receiver::start().await;
        let app = spawn_app_with(backend, |_| {}).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let critical_only = operator(&app, "critical@example.com", "auditor").await;
        let set = |user: &TestUser, threshold: &str, path: &str| {
            send(&app, Method::PUT, "/api/admin/v1/me/notification-preferences", user,
                Some(json!({"emailEnabled": false, "emailSeverityThreshold": threshold, "mutedRules": [],
                            "webhookUrl": format!("{}{path}", receiver.base_url)})))
        };
        let mine = expect_data(set(&root, "medium", "/root").await, StatusCode::OK).await;
        let secret = mine["webhookSecret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("whsec_"), "{mine}");
        expect_data(set(&critical_only, "critical", "/auditor").await, StatusCode::OK).await;
        // The secret is shown once; the personal subscription is not among the subscriptions.
        let read = expect_data(send(&app, Method::GET, "/api/admin/v1/me/notification-preferences", &root, None).await, StatusCode::OK).await;
        assert!(read.get("webhookSecret").is_none() && read["webhookUrl"].as_str().unwrap().ends_with("/root"), "{read}");
        let listed = expect_data(send(&app, Method::GET, "/api/admin/v1/webhooks", &root, None).await, StatusCode::OK).await;
        assert_eq!(listed, json!([]));

        app.user("victim@example.com").await;
        for _ in 0..5 {
            let _ = app.login("victim@example.com", "not the password").await;
        }
        // Other notifications (the auditor's grant) may reach /root too; wait for this one.
        let failed = receiver
            .wait_matching("notification", |hook| hook.body["data"]["rule"] == "failed_sign_ins", 1, 15)
            .await;
        assert_eq!(failed.len(), 1, "{:?}", receiver.received().iter().map(|h| h.body.clone()).collect::<Vec<_>>());
        let hook = &failed[0];
        assert_eq!(hook.path, "/root", "the auditor wants critical ones only");
        assert!(verify(hook, &secret));
        assert_eq!(hook.body["type"], "notification");
        assert_eq!(hook.body["data"]["severity"], "high");
        assert_eq!(hook.body["data"]["event"]["type"], "auth.login_failed");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(receiver.received().iter().all(|hook| hook.path == "/root"));

        // Removing it stops the posts.
        let removed = expect_data(
            send(&app, Method::PUT, "/api/admin/v1/me/notification-preferences", &root,
                Some(json!({"emailEnabled": false, "emailSeverityThreshold": "medium", "mutedRules": [], "webhookUrl": null}))).await,
            StatusCode::OK,
        )
        .await;
        assert!(removed["webhookUrl"].is_null());
        let before = receiver.received().len();
        for _ in 0..5 {
            let _ = app.login("other@example.com", "not the password").await;
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(receiver.received().len(), before);
        app.stop().await;
    })
    .await;
}
