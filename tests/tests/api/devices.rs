//! Devices over HTTP: legacy registration with `X-API-Key`, ownership, links and transfers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

fn registration(device_id: &str) -> Value {
    json!({"deviceId": device_id, "displayName": "Ann's phone", "platform": "Android",
           "osVersion": "14", "appVersion": "1.0.0", "pushToken": "push-1", "groupId": "legacy-7"})
}

async fn register(app: &TestApp, key: &str, user: Option<&TestUser>, body: &Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/devices/register"))
        .header("x-api-key", key)
        .json(body);
    if let Some(user) = user {
        request = request.bearer_auth(&user.token);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn legacy_registration_needs_the_key_and_never_changes_hands() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        assert!(key.starts_with("stw_key_"));
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;

        let anonymous = app
            .post_json("/api/v1/devices/register", &registration("pixel-1"))
            .await;
        expect_error(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let forged = register(&app, "stw_key_forged", None, &registration("pixel-1")).await;
        expect_error(forged, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let bad = register(&app, &key, None, &json!({"deviceId": "", "displayName": "x"})).await;
        let error = expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(error["details"][0]["field"], "deviceId");
        assert_eq!(
            app.count_rows("devices").await,
            0,
            "{backend:?}: refused requests store nothing"
        );

        // The device app alone: registered, owned by nobody, legacy group kept.
        let created = expect_data(
            register(&app, &key, None, &registration("pixel-1")).await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(created["ownerUserId"], Value::Null);
        assert_eq!(created["groupId"], "legacy-7");
        assert_eq!(created["platform"], "android");
        let id = created["id"].as_str().unwrap().to_owned();

        // Re-registering updates; with a user's token the device becomes theirs.
        let mut update = registration("pixel-1");
        update["appVersion"] = json!("1.1.0");
        let updated = expect_data(register(&app, &key, Some(&ann), &update).await, StatusCode::OK).await;
        assert_eq!(updated["id"], id.as_str());
        assert_eq!(updated["appVersion"], "1.1.0");
        assert_eq!(updated["ownerUserId"], ann.id.to_string());
        assert!(updated["lastSeenAt"].is_string());

        // Nobody takes it over, and the app's key alone no longer updates a registered device;
        // the device itself (its token) does, and keeps the owner.
        let takeover = register(&app, &key, Some(&bob), &registration("pixel-1")).await;
        expect_error(takeover, StatusCode::CONFLICT, "CONFLICT").await;
        let key_alone = register(&app, &key, None, &registration("pixel-1")).await;
        expect_error(key_alone, StatusCode::CONFLICT, "CONFLICT").await;
        let device_token = updated["deviceToken"].as_str().unwrap().to_owned();
        assert!(device_token.starts_with("stw_dev_"), "{updated}");
        let by_itself = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &key)
            .bearer_auth(&device_token)
            .json(&registration("pixel-1"))
            .send()
            .await
            .unwrap();
        assert_eq!(by_itself.headers()["cache-control"], "no-store");
        let again = expect_data(by_itself, StatusCode::OK).await;
        assert_eq!(again["ownerUserId"], ann.id.to_string());
        assert_ne!(
            again["deviceToken"], updated["deviceToken"],
            "a fresh token; the old one is revoked"
        );
        let bad_bearer = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &key)
            .bearer_auth("not-a-token")
            .json(&registration("pixel-2"))
            .send()
            .await
            .unwrap();
        expect_error(bad_bearer, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

        let mine = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/users/{}/devices", ann.id),
                &ann,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(mine.as_array().unwrap().len(), 1);
        assert_eq!(mine[0]["pushToken"], "push-1");
        let one = expect_data(
            send(&app, Method::GET, &format!("/api/v1/devices/{id}"), &ann, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(one["deviceId"], "pixel-1");
        let actions = app.audit_actions().await;
        assert!(
            actions.contains(&"device.registered".to_owned())
                && actions.contains(&"apikey.created".to_owned())
        );

        use steward_domain::devices::ApiKeyStore;
        let stored = app.db.api_keys().await.unwrap();
        assert!(stored[0].last_used_at.is_some(), "use is recorded");
        let audit = steward_domain::AuditEntry::new(
            steward_domain::Actor::system(),
            steward_domain::AuditAction::known("apikey.revoked"),
            "api_key",
        );
        assert!(app.db.revoke_api_key(stored[0].id, &audit).await.unwrap());
        // Instances remember a verified key for a few seconds; revocation lands within that.
        let deadline =
            std::time::Instant::now() + steward_api::devices::API_KEY_TTL + std::time::Duration::from_secs(2);
        loop {
            let response = register(&app, &key, None, &registration("pixel-1")).await;
            if response.status() == StatusCode::UNAUTHORIZED {
                expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{backend:?}: a revoked key still works"
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn devices_are_linked_unlinked_and_transferred_with_the_recipients_consent() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;
        let device = expect_data(
            register(&app, &key, None, &registration("tab-1")).await,
            StatusCode::CREATED,
        )
        .await;
        let id = device["id"].as_str().unwrap().to_owned();
        let link = |user: &TestUser| format!("/api/v1/users/{}/devices/{id}/link", user.id);

        let linked = send(&app, Method::POST, &link(&ann), &ann, None).await;
        assert_eq!(
            expect_data(linked, StatusCode::OK).await["ownerUserId"],
            ann.id.to_string()
        );
        let idempotent = send(&app, Method::POST, &link(&ann), &ann, None).await;
        expect_data(idempotent, StatusCode::OK).await;
        let stolen = send(&app, Method::POST, &link(&bob), &bob, None).await;
        expect_error(stolen, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // Transfer by email: pending until bob accepts.
        let transfer_path = format!("/api/v1/users/{}/devices/{id}/transfer", ann.id);
        let neither = send(&app, Method::POST, &transfer_path, &ann, Some(json!({}))).await;
        expect_error(neither, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let to_self = send(
            &app,
            Method::POST,
            &transfer_path,
            &ann,
            Some(json!({"toUserId": ann.id})),
        )
        .await;
        expect_error(to_self, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let pending = send(
            &app,
            Method::POST,
            &transfer_path,
            &ann,
            Some(json!({"toEmail": "BOB@example.com"})),
        )
        .await;
        let pending = expect_data(pending, StatusCode::ACCEPTED).await;
        assert_eq!(pending["status"], "pending");
        assert_eq!(pending["toUserId"], bob.id.to_string());
        let twice = send(
            &app,
            Method::POST,
            &transfer_path,
            &ann,
            Some(json!({"toUserId": bob.id})),
        )
        .await;
        expect_error(twice, StatusCode::CONFLICT, "CONFLICT").await;
        let still = expect_data(
            send(&app, Method::GET, &format!("/api/v1/devices/{id}"), &ann, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            still["ownerUserId"],
            ann.id.to_string(),
            "nothing moves before acceptance"
        );

        let incoming = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/users/{}/device-transfers", bob.id),
                &bob,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(incoming.as_array().unwrap().len(), 1);
        let transfer = pending["id"].as_str().unwrap();
        let by_sender = send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/device-transfers/{transfer}/accept", ann.id),
            &ann,
            None,
        )
        .await;
        expect_error(by_sender, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let for_someone_else = send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/device-transfers/{transfer}/accept", bob.id),
            &ann,
            None,
        )
        .await;
        expect_error(for_someone_else, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let accepted = send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/device-transfers/{transfer}/accept", bob.id),
            &bob,
            None,
        )
        .await;
        assert_eq!(expect_data(accepted, StatusCode::OK).await["status"], "accepted");
        let moved = expect_data(
            send(&app, Method::GET, &format!("/api/v1/devices/{id}"), &bob, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(moved["ownerUserId"], bob.id.to_string());
        let replay = send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/device-transfers/{transfer}/accept", bob.id),
            &bob,
            None,
        )
        .await;
        expect_error(replay, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // The former owner lost every handle on it.
        let ann_unlink = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/users/{}/devices/{id}/unlink", ann.id),
            &ann,
            None,
        )
        .await;
        expect_error(ann_unlink, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let ann_view = send(&app, Method::GET, &format!("/api/v1/devices/{id}"), &ann, None).await;
        expect_error(ann_view, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // A declined transfer changes nothing; an admin's transfer is immediate.
        let offer = send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/devices/{id}/transfer", bob.id),
            &bob,
            Some(json!({"toUserId": ann.id})),
        )
        .await;
        let offer = expect_data(offer, StatusCode::ACCEPTED).await;
        let declined = send(
            &app,
            Method::POST,
            &format!(
                "/api/v1/users/{}/device-transfers/{}/decline",
                ann.id,
                offer["id"].as_str().unwrap()
            ),
            &ann,
            None,
        )
        .await;
        assert_eq!(expect_data(declined, StatusCode::OK).await["status"], "declined");
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let forced = send(
            &app,
            Method::POST,
            &format!("/api/v1/users/{}/devices/{id}/transfer", bob.id),
            &root,
            Some(json!({"toUserId": ann.id})),
        )
        .await;
        assert_eq!(
            expect_data(forced, StatusCode::OK).await["ownerUserId"],
            ann.id.to_string()
        );

        let unlinked = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/users/{}/devices/{id}/unlink", ann.id),
            &ann,
            None,
        )
        .await;
        assert_eq!(unlinked.status(), StatusCode::NO_CONTENT);
        let orphan = expect_data(
            send(&app, Method::GET, &format!("/api/v1/devices/{id}"), &root, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(orphan["ownerUserId"], Value::Null);
        let actions = app.audit_actions().await;
        for expected in [
            "device.linked",
            "device.transfer_requested",
            "device.transfer_accepted",
            "device.transfer_declined",
            "device.transferred",
            "device.unlinked",
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
async fn strangers_get_404_for_users_and_devices_and_group_members_see_basic_info() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let eve = app.user("eve@example.com").await;
        let cat = app.user("cat@example.com").await;
        let device = expect_data(
            register(&app, &key, Some(&ann), &registration("watch-1")).await,
            StatusCode::CREATED,
        )
        .await;
        let id = device["id"].as_str().unwrap();
        let before = app.audit_actions().await.len();
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, format!("/api/v1/users/{}", ann.id), None),
            (Method::GET, format!("/api/v1/users/{}/devices", ann.id), None),
            (
                Method::POST,
                format!("/api/v1/users/{}/devices/{id}/link", ann.id),
                None,
            ),
            (
                Method::DELETE,
                format!("/api/v1/users/{}/devices/{id}/unlink", ann.id),
                None,
            ),
            (
                Method::POST,
                format!("/api/v1/users/{}/devices/{id}/transfer", ann.id),
                Some(json!({"toUserId": eve.id})),
            ),
            (
                Method::GET,
                format!("/api/v1/users/{}/device-transfers", ann.id),
                None,
            ),
            (Method::GET, format!("/api/v1/devices/{id}"), None),
        ];
        for (method, path, body) in attempts {
            let response = send(&app, method.clone(), &path, &eve, body).await;
            expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        }
        assert_eq!(
            app.audit_actions().await.len(),
            before,
            "{backend:?}: nothing happened"
        );
        let still = expect_data(
            send(&app, Method::GET, &format!("/api/v1/devices/{id}"), &ann, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(still["ownerUserId"], ann.id.to_string());

        // Sharing a group (as member) shows the public profile and the device's basic info.
        let group = expect_data(
            send(
                &app,
                Method::POST,
                "/api/v1/groups",
                &ann,
                Some(json!({"name": "Home"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let group_id = group["id"].as_str().unwrap();
        let code = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/v1/groups/{group_id}/invites"),
                &ann,
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
                &cat,
                Some(json!({"code": code["code"]})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let profile = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/users/{}", ann.id),
                &cat,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(profile["displayName"], "Test User");
        assert_eq!(profile["email"], Value::Null);
        let basic = expect_data(
            send(&app, Method::GET, &format!("/api/v1/devices/{id}"), &cat, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(basic["displayName"], "Ann's phone");
        assert_eq!(
            basic["pushToken"],
            Value::Null,
            "{backend:?}: push tokens stay with the owner"
        );
        let members = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/groups/{group_id}/members"),
                &cat,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let owner = members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "owner")
            .unwrap();
        assert_eq!(owner["devices"][0]["id"], id);
        let still_private = send(
            &app,
            Method::GET,
            &format!("/api/v1/users/{}/devices", ann.id),
            &cat,
            None,
        )
        .await;
        expect_error(still_private, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn racing_decisions_on_a_transfer_let_exactly_one_win() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;
        for round in 0..3 {
            let device = expect_data(
                register(&app, &key, Some(&ann), &registration(&format!("race-{round}"))).await,
                StatusCode::CREATED,
            )
            .await;
            let id = device["id"].as_str().unwrap();
            let offer = send(
                &app,
                Method::POST,
                &format!("/api/v1/users/{}/devices/{id}/transfer", ann.id),
                &ann,
                Some(json!({"toUserId": bob.id})),
            )
            .await;
            let transfer = expect_data(offer, StatusCode::ACCEPTED).await["id"]
                .as_str()
                .unwrap()
                .to_owned();
            let accept = format!("/api/v1/users/{}/device-transfers/{transfer}/accept", bob.id);
            let decline = format!("/api/v1/users/{}/device-transfers/{transfer}/decline", bob.id);
            let cancel = format!("/api/v1/users/{}/device-transfers/{transfer}", ann.id);
            let (a, d, c) = tokio::join!(
                send(&app, Method::POST, &accept, &bob, None),
                send(&app, Method::POST, &decline, &bob, None),
                send(&app, Method::DELETE, &cancel, &ann, None),
            );
            let statuses = [a.status(), d.status(), c.status()];
            assert_eq!(
                statuses.iter().filter(|s| **s == StatusCode::OK).count(),
                1,
                "{backend:?}: {statuses:?}"
            );
            assert!(
                statuses
                    .iter()
                    .all(|s| *s == StatusCode::OK || *s == StatusCode::NOT_FOUND),
                "{statuses:?}"
            );
            let bobs = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/v1/users/{}/devices", bob.id),
                    &bob,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            let moved = bobs.as_array().unwrap().iter().any(|d| d["id"] == id);
            assert_eq!(
                moved,
                a.status() == StatusCode::OK,
                "{backend:?}: only an acceptance moves it"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_apikeys_cli_creates_lists_and_revokes_keys() {
    use steward::cli::{ApiKeysAction, Cli, Command, run};
    use steward_domain::devices::ApiKeyStore;
    let app = spawn_app(steward_tests::Backend::Sqlite).await;
    let config = app.data_dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = {:?}\ndata_dir = {:?}\n",
            app.database.url,
            app.data_dir.path().display().to_string()
        ),
    )
    .unwrap();
    let cli = |action| Cli {
        config: Some(config.clone()),
        init: false,
        command: Some(Command::Apikeys { action }),
    };
    run(cli(ApiKeysAction::Create {
        name: "fleet app".to_owned(),
    }))
    .await
    .unwrap();
    run(cli(ApiKeysAction::List)).await.unwrap();
    let keys = app.db.api_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].name, "fleet app");
    assert!(keys[0].prefix.starts_with("stw_key_"));
    assert!(
        run(cli(ApiKeysAction::Create { name: " ".to_owned() }))
            .await
            .is_err()
    );
    run(cli(ApiKeysAction::Revoke { id: keys[0].id })).await.unwrap();
    assert!(app.db.api_keys().await.unwrap()[0].revoked_at.is_some());
    assert!(
        run(cli(ApiKeysAction::Revoke { id: keys[0].id })).await.is_err(),
        "revoking twice names the problem"
    );
    app.stop().await;
}

#[tokio::test]
async fn expired_transfers_cannot_be_accepted_and_make_way_for_new_ones() {
    use sea_orm::EntityTrait;
    use sea_orm::sea_query::Expr;
    use steward_persistence::entities::device_transfers;
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;
        let device = expect_data(
            register(&app, &key, Some(&ann), &registration("old-1")).await,
            StatusCode::CREATED,
        )
        .await;
        let id = device["id"].as_str().unwrap();
        let path = format!("/api/v1/users/{}/devices/{id}/transfer", ann.id);
        let offer = expect_data(
            send(&app, Method::POST, &path, &ann, Some(json!({"toUserId": bob.id}))).await,
            StatusCode::ACCEPTED,
        )
        .await;
        device_transfers::Entity::update_many()
            .col_expr(
                device_transfers::Column::ExpiresAt,
                Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)),
            )
            .exec(app.db.connection())
            .await
            .unwrap();
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/users/{}/device-transfers", bob.id),
                &bob,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            listed,
            json!([]),
            "{backend:?}: expired transfers are not offered"
        );
        let late = format!(
            "/api/v1/users/{}/device-transfers/{}/accept",
            bob.id,
            offer["id"].as_str().unwrap()
        );
        expect_error(
            send(&app, Method::POST, &late, &bob, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        let renewed = send(&app, Method::POST, &path, &ann, Some(json!({"toUserId": bob.id}))).await;
        expect_data(renewed, StatusCode::ACCEPTED).await;
        app.stop().await;
    })
    .await;
}
