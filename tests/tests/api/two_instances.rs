//! Background workers on two instances of one database: each push is sent once, an expired
//! temporary unlock is returned once, and the audit chain stays whole with two sealers.
//! (Mail: `auth_mail`; webhooks: `webhooks`; jobs: `jobs`; counted notification rules:
//! `notifications`; scheduled reports: `reports`.)

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward::Config;
use steward_tests::push::FakePush;
use steward_tests::{
    TestApp, TestUser, each_backend, expect_data, send, spawn_app_with, spawn_instance_with,
};

const SHARING: &str = "location.sharing_enabled";

/// A request to `base` (either instance) as `user`.
async fn call(
    app: &TestApp,
    base: &str,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> Value {
    let mut request = app
        .client
        .request(method, format!("{base}{path}"))
        .bearer_auth(&user.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{path}: {status} {}",
        response.text().await.unwrap()
    );
    let body: Value = response.json().await.unwrap_or(Value::Null);
    body["data"].clone()
}

/// Polls `check` every 50 ms for up to 15 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 15 s: {what}");
}

#[tokio::test]
async fn pushes_returned_locks_and_the_audit_chain_are_handled_once_by_two_instances() {
    each_backend(|backend| async move {
        let hook = FakePush::start().await;
        let url = format!("{}/hook", hook.base_url);
        let configure = move |config: &mut Config| {
            config.push_webhook_url = Some(url.clone());
            config.push_poll_ms = 20;
            config.audit_seal_ms = 20;
        };
        let app = spawn_app_with(backend, configure.clone()).await;
        let (second, handle) = spawn_instance_with(&app, configure).await;
        let bases = [app.address.clone(), second.clone()];

        // A family: the parent's group, the child's phone with a push token.
        let parent = app.user("parent@example.com").await;
        let child = app.user("child@example.com").await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let group = expect_data(
            send(&app, Method::POST, "/api/v1/groups", &parent, Some(json!({"name": "Home"}))).await,
            StatusCode::CREATED,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let code = expect_data(
            send(&app, Method::POST, &format!("/api/v1/groups/{group}/invites"), &parent, Some(json!({}))).await,
            StatusCode::CREATED,
        )
        .await["code"]
            .clone();
        expect_data(
            send(&app, Method::POST, "/api/v1/groups/join", &child, Some(json!({"code": code}))).await,
            StatusCode::OK,
        )
        .await;
        let key = app.api_key().await;
        let registered = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &key)
            .bearer_auth(&child.token)
            .json(&json!({"deviceId": "kid-phone", "displayName": "Kid's phone", "platform": "android", "pushToken": "fcm-token-kid"}))
            .send()
            .await
            .unwrap();
        let device = expect_data(registered, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let settings = format!("/api/v1/devices/{device}/settings");

        // 1. Pushes: a sync request for each of 24 phones, through both instances at once (a
        // phone has one pending push at a time); every push is delivered once, whichever
        // instance's worker claimed it.
        let mut phones = Vec::new();
        for n in 0..24 {
            let registered = app
                .client
                .post(format!("{}/api/v1/devices/register", bases[n % 2]))
                .header("x-api-key", &key)
                .bearer_auth(&child.token)
                .json(&json!({"deviceId": format!("phone-{n}"), "displayName": "Phone",
                    "platform": "android", "pushToken": format!("fcm-token-{n}")}))
                .send()
                .await
                .unwrap();
            phones.push(expect_data(registered, StatusCode::CREATED).await["id"].as_str().unwrap().to_owned());
        }
        let requests: Vec<_> = phones
            .iter()
            .enumerate()
            .map(|(n, phone)| {
                let request = app
                    .client
                    .post(format!("{}/api/v1/devices/{phone}/settings/sync-request", bases[n % 2]))
                    .bearer_auth(&child.token);
                tokio::spawn(async move { request.send().await.unwrap().status() })
            })
            .collect();
        for request in requests {
            assert_eq!(request.await.unwrap(), StatusCode::ACCEPTED);
        }
        eventually("every queued push sent", || async {
            hook.received().len() >= 24 && usize::try_from(app.count_rows("push_notifications").await).unwrap() == hook.received().len()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let received = hook.received();
        let ids: HashSet<String> = received
            .iter()
            .map(|push| push.body["notificationId"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), received.len(), "{backend:?}: a push was sent twice");
        assert_eq!(i64::try_from(received.len()).unwrap(), app.count_rows("push_notifications").await);

        // 2. A temporary unlock ending: returned once, though both workers look for it.
        let key_path = format!("{settings}/{SHARING}");
        call(&app, &bases[0], Method::POST, &format!("{key_path}/lock"), &parent, Some(json!({"value": true}))).await;
        let asked = call(&app, &bases[1], Method::POST, &format!("{key_path}/unlock-request"), &child, Some(json!({}))).await;
        let request = asked["id"].as_str().unwrap();
        call(
            &app,
            &bases[1],
            Method::POST,
            &format!("/api/v1/unlock-requests/{request}/approve"),
            &parent,
            Some(json!({"durationMinutes": 15})),
        )
        .await;
        use sea_orm::EntityTrait;
        use sea_orm::sea_query::Expr;
        steward_persistence::entities::device_settings::Entity::update_many()
            .col_expr(
                steward_persistence::entities::device_settings::Column::UnlockedUntil,
                Expr::value(Some(chrono::Utc::now() - chrono::Duration::seconds(1))),
            )
            .exec(app.db.connection())
            .await
            .unwrap();
        eventually("the lock returned", || async {
            app.audit_actions().await.iter().any(|a| a == "settings.lock_returned")
        })
        .await;
        // Both workers poll every 20 ms: give the other a dozen chances to return it again.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let returned = app
            .audit_actions()
            .await
            .iter()
            .filter(|a| *a == "settings.lock_returned")
            .count();
        assert_eq!(returned, 1, "{backend:?}");
        let effective = call(&app, &bases[1], Method::GET, &settings, &child, None).await;
        assert_eq!(effective["settings"][SHARING]["locked"], true);

        // 3. The audit chain, sealed by two instances' sealers at once: whole and complete.
        let mut verified = Value::Null;
        for _ in 0..300 {
            verified = call(&app, &bases[0], Method::GET, "/api/admin/v1/audit-logs/verify", &root, None).await;
            if verified["unsealed"] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(verified["unsealed"], 0, "{verified}");
        assert_eq!(verified["intact"], true, "{backend:?}: {verified}");
        assert!(verified["sealed"].as_u64().unwrap() > 30, "{verified}");
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}
