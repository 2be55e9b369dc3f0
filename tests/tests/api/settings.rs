//! Remote settings over HTTP: the family case end to end with real pushes, races, sync and
//! conditional polling, all-or-nothing writes, the catalog and who may see what.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::push::FakePush;
use steward_tests::{
    TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app, spawn_app_with,
};

struct Family {
    parent: TestUser,
    child: TestUser,
    key: String,
    device: String,
    /// The device's own credential, answered by its registration.
    device_token: String,
    group: String,
}

const SHARING: &str = "location.sharing_enabled";

/// A parent owning a group, a child member whose phone is registered with a push token.
async fn family(app: &TestApp) -> Family {
    let parent = app.user("parent@example.com").await;
    let child = app.user("child@example.com").await;
    let group = expect_data(
        send(
            app,
            Method::POST,
            "/api/v1/groups",
            &parent,
            Some(json!({"name": "Home"})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let group = group["id"].as_str().unwrap().to_owned();
    let code = expect_data(
        send(
            app,
            Method::POST,
            &format!("/api/v1/groups/{group}/invites"),
            &parent,
            Some(json!({})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    expect_data(
        send(
            app,
            Method::POST,
            "/api/v1/groups/join",
            &child,
            Some(json!({"code": code["code"]})),
        )
        .await,
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
    let registered = expect_data(registered, StatusCode::CREATED).await;
    let device = registered["id"].as_str().unwrap().to_owned();
    let device_token = registered["deviceToken"].as_str().unwrap().to_owned();
    Family {
        parent,
        child,
        key,
        device,
        device_token,
        group,
    }
}

fn settings_path(family: &Family) -> String {
    format!("/api/v1/devices/{}/settings", family.device)
}

async fn effective(app: &TestApp, family: &Family, user: &TestUser) -> Value {
    expect_data(
        send(app, Method::GET, &settings_path(family), user, None).await,
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn a_parent_locks_the_child_requests_the_parent_approves_with_pushes_and_audit() {
    each_backend(|backend| async move {
        let fcm = FakePush::start().await;
        let account_dir = tempfile::tempdir().unwrap();
        let account = fcm.service_account_file(account_dir.path());
        let endpoint = fcm.base_url.clone();
        let app = spawn_app_with(backend, move |config| {
            config.fcm_service_account_file = Some(account);
            config.fcm_endpoint = endpoint;
        })
        .await;
        let family = family(&app).await;
        let path = settings_path(&family);
        let key_path = format!("{path}/{SHARING}");

        let before = effective(&app, &family, &family.child).await;
        assert_eq!(before["settings"][SHARING]["locked"], false);
        assert!(
            before["settings"].as_object().unwrap().len() >= 15,
            "the default catalog is seeded"
        );

        // 1. The parent locks sharing on.
        let locked = send(
            &app,
            Method::POST,
            &format!("{key_path}/lock"),
            &family.parent,
            Some(json!({"value": true, "reason": "school trip"})),
        )
        .await;
        let locked = expect_data(locked, StatusCode::OK).await;
        assert_eq!(locked["value"], true);
        assert_eq!(locked["locked"], true);
        assert_eq!(locked["lockedBy"], "device");
        assert_eq!(locked["lockReason"], "school trip");
        let pushes = fcm.wait_for(1).await;
        assert_eq!(
            pushes[0].authorization.as_deref(),
            Some("Bearer fcm-access-token")
        );
        assert_eq!(pushes[0].body["message"]["token"], "fcm-token-kid");
        assert_eq!(
            pushes[0].body["message"]["data"]["deviceId"],
            family.device.as_str()
        );
        assert!(
            fcm.token_requests() >= 1,
            "{backend:?}: an OAuth token was fetched with a signed assertion"
        );

        // 2. The child's write is refused and changes nothing.
        let version = effective(&app, &family, &family.child).await["version"].clone();
        let refused = send(
            &app,
            Method::PUT,
            &key_path,
            &family.child,
            Some(json!({"value": false})),
        )
        .await;
        expect_error(refused, StatusCode::CONFLICT, "SETTING_LOCKED").await;
        let by_device = app
            .client
            .put(app.url(&key_path))
            .bearer_auth(&family.device_token)
            .json(&json!({"value": false}))
            .send()
            .await
            .unwrap();
        expect_error(by_device, StatusCode::CONFLICT, "SETTING_LOCKED").await;
        let unlock_by_child = send(
            &app,
            Method::DELETE,
            &format!("{key_path}/lock"),
            &family.child,
            None,
        )
        .await;
        expect_error(unlock_by_child, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let still = effective(&app, &family, &family.child).await;
        assert_eq!(still["version"], version);
        assert_eq!(still["settings"][SHARING]["value"], true);

        // 3. The child asks; the parent sees it pending and approves for 15 minutes.
        let asked = send(
            &app,
            Method::POST,
            &format!("{key_path}/unlock-request"),
            &family.child,
            Some(json!({"reason": "sleepover"})),
        )
        .await;
        let asked = expect_data(asked, StatusCode::CREATED).await;
        let twice = send(
            &app,
            Method::POST,
            &format!("{key_path}/unlock-request"),
            &family.child,
            Some(json!({})),
        )
        .await;
        expect_error(twice, StatusCode::CONFLICT, "CONFLICT").await;
        let pending = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/groups/{}/unlock-requests?status=pending", family.group),
                &family.parent,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(pending.as_array().unwrap().len(), 1, "{backend:?}: {pending}");
        assert_eq!(pending[0]["reason"], "sleepover");
        let request = asked["id"].as_str().unwrap();
        let self_approval = send(
            &app,
            Method::POST,
            &format!("/api/v1/unlock-requests/{request}/approve"),
            &family.child,
            Some(json!({})),
        )
        .await;
        expect_error(self_approval, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let approved = send(
            &app,
            Method::POST,
            &format!("/api/v1/unlock-requests/{request}/approve"),
            &family.parent,
            Some(json!({"durationMinutes": 15, "note": "have fun"})),
        )
        .await;
        let approved = expect_data(approved, StatusCode::OK).await;
        assert_eq!(approved["status"], "approved");
        assert!(approved["unlockUntil"].is_string());
        fcm.wait_for(2).await;
        let again = send(
            &app,
            Method::POST,
            &format!("/api/v1/unlock-requests/{request}/deny"),
            &family.parent,
            Some(json!({})),
        )
        .await;
        expect_error(again, StatusCode::CONFLICT, "CONFLICT").await;

        // 4. The child's write now succeeds; the device sees when the lock returns.
        let lifted = effective(&app, &family, &family.child).await;
        assert_eq!(lifted["settings"][SHARING]["locked"], false);
        assert!(lifted["settings"][SHARING]["unlockedUntil"].is_string());
        let written = send(
            &app,
            Method::PUT,
            &key_path,
            &family.child,
            Some(json!({"value": false})),
        )
        .await;
        assert_eq!(expect_data(written, StatusCode::OK).await["value"], false);
        fcm.wait_for(3).await;

        // 5. When the time is up the lock returns by itself, and the device is told.
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
        fcm.wait_for(4).await;
        let returned = effective(&app, &family, &family.child).await;
        assert_eq!(
            returned["settings"][SHARING]["locked"], true,
            "{backend:?}: {returned}"
        );
        assert_eq!(
            returned["settings"][SHARING]["value"], false,
            "the lock pins the value it has now"
        );

        let actions = app.audit_actions().await;
        for expected in [
            "settings.locks_changed",
            "settings.unlock_requested",
            "settings.unlock_approved",
            "settings.updated",
            "settings.lock_returned",
        ] {
            assert!(
                actions.contains(&expected.to_owned()),
                "{backend:?}: {expected} in {actions:?}"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn thirty_two_writers_with_if_match_one_wins_per_version() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let version = effective(&app, &family, &family.child).await["version"]
            .as_i64()
            .unwrap();
        let key_path = format!("{}/location.update_interval_seconds", settings_path(&family));
        let writers = (0..32).map(|i| {
            let request = app
                .authed(Method::PUT, &key_path, &family.parent.token)
                .header("if-match", format!("\"{version}\""))
                .json(&json!({"value": 60 + i}));
            async move { (i, request.send().await.unwrap()) }
        });
        let results = futures_util::future::join_all(writers).await;
        let mut winners = Vec::new();
        for (i, response) in results {
            match response.status() {
                StatusCode::OK => winners.push(60 + i),
                StatusCode::CONFLICT => {
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["error"]["code"], "VERSION_CONFLICT");
                }
                other => panic!("{backend:?}: unexpected {other}"),
            }
        }
        assert_eq!(winners.len(), 1, "{backend:?}: {winners:?}");
        let after = effective(&app, &family, &family.child).await;
        assert_eq!(
            after["settings"]["location.update_interval_seconds"]["value"], winners[0],
            "no lost update"
        );
        assert_eq!(after["version"], version + 1);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn devices_sync_with_stale_base_versions_and_poll_with_etags() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let path = settings_path(&family);
        let device = |method: Method, url: &str| {
            app.client
                .request(method, app.url(url))
                .bearer_auth(&family.device_token)
        };

        // Conditional polling.
        let first = device(Method::GET, &path).send().await.unwrap();
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let base = expect_data(first, StatusCode::OK).await["version"].as_i64().unwrap();
        let unchanged = device(Method::GET, &path).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
        assert!(unchanged.bytes().await.unwrap().is_empty());
        let other = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &family.key)
            .json(&json!({"deviceId": "someone-elses", "displayName": "Other"}))
            .send()
            .await
            .unwrap();
        let other_token = expect_data(other, StatusCode::CREATED).await["deviceToken"]
            .as_str()
            .unwrap()
            .to_owned();
        let other_device = app
            .client
            .get(app.url(&path))
            .bearer_auth(&other_token)
            .send()
            .await
            .unwrap();
        expect_error(other_device, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // Meanwhile the parent changes the bedtime.
        let parent_write = send(&app, Method::PUT, &path, &family.parent, Some(json!({"settings": {"screen_time.bedtime_start": "20:30"}}))).await;
        expect_data(parent_write, StatusCode::OK).await;
        let changed = device(Method::GET, &path).header("if-none-match", &etag).send().await.unwrap();
        assert_eq!(changed.status(), StatusCode::OK);

        // The device syncs from the stale base: its bedtime change loses, the rest applies.
        let sync = device(Method::POST, &format!("{path}/sync"))
            .json(&json!({"baseVersion": base, "changes": {
                "screen_time.bedtime_start": "22:00",
                "location.high_accuracy": true,
                "device.volume_max_percent": 300,
                "made.up": 1,
            }}))
            .send()
            .await
            .unwrap();
        let outcome = expect_data(sync, StatusCode::OK).await;
        assert_eq!(outcome["settings"]["screen_time.bedtime_start"]["value"], "20:30", "{backend:?}: the server's newer value stands");
        assert_eq!(outcome["settings"]["location.high_accuracy"]["value"], true);
        let mut codes: Vec<(String, String)> = outcome["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_owned(), r["code"].as_str().unwrap().to_owned()))
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            [
                ("device.volume_max_percent".to_owned(), "VALIDATION_ERROR".to_owned()),
                ("made.up".to_owned(), "UNKNOWN_SETTING".to_owned()),
                ("screen_time.bedtime_start".to_owned(), "CONFLICT".to_owned()),
            ]
        );
        let version = outcome["version"].as_i64().unwrap();
        assert!(version > base);

        // Applied state: lagging or failing is non-compliant.
        let status = expect_data(device(Method::GET, &format!("{path}/status")).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(status["compliant"], false);
        let report = device(Method::POST, &format!("{path}/sync"))
            .json(&json!({"baseVersion": version, "appliedVersion": version, "failures": [{"key": "device.camera_enabled", "reason": "MDM refused"}]}))
            .send()
            .await
            .unwrap();
        expect_data(report, StatusCode::OK).await;
        let status = expect_data(send(&app, Method::GET, &format!("{path}/status"), &family.parent, None).await, StatusCode::OK).await;
        assert_eq!(status["appliedVersion"], version);
        assert_eq!(status["compliant"], false, "failures make it non-compliant: {status}");
        let clean = device(Method::POST, &format!("{path}/sync"))
            .json(&json!({"baseVersion": version, "appliedVersion": version}))
            .send()
            .await
            .unwrap();
        assert_eq!(expect_data(clean, StatusCode::OK).await["rejected"], json!([]));
        let status = expect_data(send(&app, Method::GET, &format!("{path}/status"), &family.parent, None).await, StatusCode::OK).await;
        assert_eq!(status["compliant"], true, "{backend:?}: {status}");
        let queued = send(&app, Method::POST, &format!("{path}/sync-request"), &family.parent, None).await;
        assert_eq!(queued.status(), StatusCode::ACCEPTED);
        assert!(app.audit_actions().await.contains(&"settings.sync_requested".to_owned()));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bulk_writes_and_locks_are_all_or_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let path = settings_path(&family);
        let before = effective(&app, &family, &family.child).await;
        let mixed = send(
            &app,
            Method::PUT,
            &path,
            &family.child,
            Some(json!({"settings": {
                "location.high_accuracy": true,
                "location.update_interval_seconds": 5,
                "content.web_filter_level": "extreme",
            }})),
        )
        .await;
        let error = expect_error(mixed, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let fields: Vec<&str> = error["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            ["content.web_filter_level", "location.update_interval_seconds"],
            "{backend:?}"
        );
        assert_eq!(
            effective(&app, &family, &family.child).await,
            before,
            "nothing was written"
        );

        let locks = send(
            &app,
            Method::PUT,
            &format!("{path}/locks"),
            &family.parent,
            Some(json!({"locks": [
                {"key": "apps.install_allowed", "locked": true, "value": false},
                {"key": "notifications.enabled", "locked": true},
            ]})),
        )
        .await;
        let error = expect_error(locks, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(
            error["details"][0]["field"], "notifications.enabled",
            "not lockable: {error}"
        );
        assert_eq!(effective(&app, &family, &family.child).await, before);
        let by_child = send(
            &app,
            Method::PUT,
            &format!("{path}/locks"),
            &family.child,
            Some(json!({"locks": [{"key": "apps.install_allowed", "locked": false}]})),
        )
        .await;
        expect_error(by_child, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let ok = send(
            &app,
            Method::PUT,
            &format!("{path}/locks"),
            &family.parent,
            Some(json!({"locks": [
                {"key": "apps.install_allowed", "locked": true, "value": false},
                {"key": "device.camera_enabled", "locked": true},
            ]})),
        )
        .await;
        let state = expect_data(ok, StatusCode::OK).await;
        assert_eq!(state["settings"]["apps.install_allowed"]["value"], false);
        let listed = expect_data(
            send(&app, Method::GET, &format!("{path}/locks"), &family.child, None).await,
            StatusCode::OK,
        )
        .await;
        let keys: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["key"].as_str().unwrap())
            .collect();
        assert_eq!(keys, ["apps.install_allowed", "device.camera_enabled"]);
        let explained = expect_data(
            send(
                &app,
                Method::GET,
                &format!("{path}?explain=true"),
                &family.child,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            explained["settings"]["apps.install_allowed"]["explanation"]["winner"]["layer"],
            "device"
        );
        assert_eq!(
            explained["settings"]["apps.install_allowed"]["explanation"]["overridden"][0]["layer"],
            "default"
        );
        let not_json = app
            .authed(Method::PUT, &path, &family.child.token)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        expect_error(not_json, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let unknown = send(&app, Method::GET, &format!("{path}/made.up"), &family.child, None).await;
        expect_error(unknown, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn strangers_and_members_below_cannot_reach_a_devices_settings() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let path = settings_path(&family);
        let stranger = app.user("stranger@example.com").await;
        // A fellow member (not a manager) of the child's group.
        let sibling = app.user("sibling@example.com").await;
        let code = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/v1/groups/{}/invites", family.group),
                &family.parent,
                Some(json!({})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        expect_data(
            send(
                &app,
                Method::POST,
                "/api/v1/groups/join",
                &sibling,
                Some(json!({"code": code["code"]})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let audit_before = app.audit_actions().await.len();
        for user in [&stranger, &sibling] {
            for (method, url, body) in [
                (Method::GET, path.clone(), None),
                (
                    Method::PUT,
                    path.clone(),
                    Some(json!({"settings": {SHARING: false}})),
                ),
                (Method::GET, format!("{path}/locks"), None),
                (Method::POST, format!("{path}/{SHARING}/lock"), Some(json!({}))),
                (
                    Method::POST,
                    format!("{path}/sync"),
                    Some(json!({"baseVersion": 0})),
                ),
                (Method::GET, format!("{path}/status"), None),
                (
                    Method::GET,
                    format!("/api/v1/devices/{}/unlock-requests", family.device),
                    None,
                ),
            ] {
                let response = send(&app, method, &url, user, body).await;
                expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
            }
        }
        let group_requests = send(
            &app,
            Method::GET,
            &format!("/api/v1/groups/{}/unlock-requests", family.group),
            &sibling,
            None,
        )
        .await;
        expect_error(group_requests, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        assert_eq!(
            app.audit_actions().await.len(),
            audit_before,
            "{backend:?}: nothing happened"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_catalog_is_listed_and_managed_by_super_admins_and_webhooks_are_signed() {
    each_backend(|backend| async move {
        let hook = FakePush::start().await;
        let url = format!("{}/hook", hook.base_url);
        let app = spawn_app_with(backend, move |config| {
            config.push_webhook_url = Some(url);
            config.push_webhook_secret = Some("webhook-secret".to_owned());
        })
        .await;
        let family = family(&app).await;
        let catalog = expect_data(
            send(
                &app,
                Method::GET,
                "/api/v1/setting-definitions",
                &family.child,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let keys: Vec<&str> = catalog
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["key"].as_str().unwrap())
            .collect();
        assert!(
            keys.contains(&SHARING) && keys.contains(&"apps.blocked"),
            "{keys:?}"
        );

        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let definition = json!({"key": "wifi.allowed_networks", "valueType": "string_set", "defaultValue": [],
            "category": "network", "mergeRule": "union"});
        let by_parent = send(
            &app,
            Method::POST,
            "/api/admin/v1/setting-definitions",
            &family.parent,
            Some(definition.clone()),
        )
        .await;
        expect_error(by_parent, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let bad = send(
            &app,
            Method::POST,
            "/api/admin/v1/setting-definitions",
            &root,
            Some(json!({"key": "Bad Key", "valueType": "bool",
            "defaultValue": true, "category": "x"})),
        )
        .await;
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let created = send(
            &app,
            Method::POST,
            "/api/admin/v1/setting-definitions",
            &root,
            Some(definition.clone()),
        )
        .await;
        expect_data(created, StatusCode::CREATED).await;
        let duplicate = send(
            &app,
            Method::POST,
            "/api/admin/v1/setting-definitions",
            &root,
            Some(definition),
        )
        .await;
        expect_error(duplicate, StatusCode::CONFLICT, "CONFLICT").await;
        let state = effective(&app, &family, &family.child).await;
        assert_eq!(state["settings"]["wifi.allowed_networks"]["value"], json!([]));

        // A change sends one signed webhook call.
        let written = send(
            &app,
            Method::PUT,
            &settings_path(&family),
            &family.parent,
            Some(json!({"settings": {"wifi.allowed_networks": ["home"]}})),
        )
        .await;
        expect_data(written, StatusCode::OK).await;
        let calls = hook.wait_for(1).await;
        assert_eq!(calls[0].body["deviceId"], family.device.as_str());
        let expected =
            steward_auth::service_account::webhook_signature(b"webhook-secret", calls[0].raw.as_bytes());
        assert_eq!(
            calls[0].signature.as_deref(),
            Some(expected.as_str()),
            "the receiver can verify the body"
        );
        // The worker records the delivery after the receiver answered: wait for it (bounded).
        let mut pushes = Value::Null;
        for _ in 0..50 {
            pushes = expect_data(
                send(
                    &app,
                    Method::GET,
                    "/api/admin/v1/push-notifications?status=sent",
                    &root,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            if !pushes.as_array().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(!pushes.as_array().unwrap().is_empty(), "{pushes}");

        let removed = send(
            &app,
            Method::DELETE,
            "/api/admin/v1/setting-definitions/wifi.allowed_networks",
            &root,
            None,
        )
        .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        let state = effective(&app, &family, &family.child).await;
        assert!(state["settings"].get("wifi.allowed_networks").is_none());
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_later_and_visible_to_admins() {
    each_backend(|backend| async move {
        let receiver = FakePush::start().await;
        let url = format!("{}/down", receiver.base_url);
        let app = spawn_app_with(backend, move |config| config.push_webhook_url = Some(url)).await;
        let family = family(&app).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let written = send(
            &app,
            Method::PUT,
            &settings_path(&family),
            &family.parent,
            Some(json!({"settings": {SHARING: false}})),
        )
        .await;
        expect_data(written, StatusCode::OK).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let failed = loop {
            let pending = expect_data(
                send(
                    &app,
                    Method::GET,
                    "/api/admin/v1/push-notifications?status=pending",
                    &root,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            if let Some(push) = pending
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["attempts"].as_i64() >= Some(1))
            {
                break push.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no failed attempt recorded: {pending}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(failed["lastError"].as_str().unwrap().contains("503"), "{failed}");
        let next: chrono::DateTime<chrono::Utc> = failed["nextAttemptAt"].as_str().unwrap().parse().unwrap();
        assert!(next > chrono::Utc::now(), "the retry waits (backoff): {failed}");
        assert_eq!(failed["deviceId"], family.device.as_str());
        // Further changes collapse into the one pending notification.
        let again = send(
            &app,
            Method::PUT,
            &settings_path(&family),
            &family.parent,
            Some(json!({"settings": {SHARING: true}})),
        )
        .await;
        expect_data(again, StatusCode::OK).await;
        let pending = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/push-notifications?status=pending",
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(pending.as_array().unwrap().len(), 1, "{pending}");
        let bad = send(
            &app,
            Method::GET,
            "/api/admin/v1/push-notifications?status=lost",
            &root,
            None,
        )
        .await;
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        app.stop().await;
    })
    .await;
}

/// Sync requests race the push worker delivering and recording the same device's pushes: each
/// is queued or collapsed, never refused as "unavailable" (a read-first SQLite transaction
/// cannot take the write lock while another connection commits).
#[tokio::test]
async fn sync_requests_racing_the_push_worker_are_never_refused() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let path = format!("/api/v1/devices/{}/settings/sync-request", family.device);
        for _ in 0..5 {
            let requests = (0..16).map(|_| send(&app, Method::POST, &path, &family.parent, None));
            for response in futures_util::future::join_all(requests).await {
                assert_eq!(response.status(), StatusCode::ACCEPTED, "{backend:?}");
            }
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        }
        app.stop().await;
    })
    .await;
}
