//! Fleet devices end to end: suspend, resume, retire, the wipe lifecycle, and the
//! cross-organization matrix over every fleet endpoint.

use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use steward_tests::fleet::{as_device, enrolled, organization, past, post, sync, token};
use steward_tests::{each_backend, expect_data, expect_error, send, spawn_app};

#[tokio::test]
async fn fleet_actions_suspend_retire_and_the_wipe_lifecycle() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "fleet").await;
        let worker = app.user("worker@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": worker.id, "role": "viewer"}),
        )
        .await;
        let policy = post(
            &app,
            &org.owner,
            &org.path("/policies"),
            json!({"name": "Kiosk", "settings": {"notifications.enabled": false}}),
        )
        .await;
        let group = post(&app, &org.owner, &org.path("/groups"), json!({"name": "Drivers"})).await;
        let (_, secret) = token(&app, &org, json!({})).await;
        let (device, device_token, _) = enrolled(&app, &secret, "van-1").await;
        let (other, _, _) = enrolled(&app, &secret, "van-2").await;
        let (_, _, _) = enrolled(&app, &secret, "desk-3").await;

        // Assign policy, group and user.
        let assigned = expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/assign")),
                &org.owner,
                Some(json!({"policyId": policy["id"], "groupId": group["id"], "userId": worker.id})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(assigned["policyId"], policy["id"]);
        assert_eq!(assigned["groupId"], group["id"]);
        assert_eq!(assigned["assignedUserId"], worker.id.to_string());
        let settings = expect_data(
            as_device(
                &app,
                Method::GET,
                &format!("/api/v1/devices/{device}/settings"),
                &device_token,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(settings["settings"]["notifications.enabled"]["value"], false);
        let stranger = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{device}/assign")),
            &org.owner,
            Some(json!({"userId": uuid::Uuid::now_v7()})),
        )
        .await;
        expect_error(stranger, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let empty = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{device}/assign")),
            &org.owner,
            Some(json!({})),
        )
        .await;
        expect_error(empty, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let viewer = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{device}/suspend")),
            &worker,
            None,
        )
        .await;
        expect_error(viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;

        // The fleet list filters, sorts and pages.
        let list = |query: &str| {
            send(
                &app,
                Method::GET,
                &org.path(&format!("/devices{query}")),
                &org.owner,
                None,
            )
        };
        let all: Value = list("?sort=name&order=desc&perPage=2")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(all["meta"]["total"], 3, "{all}");
        let names: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["displayName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Phone van-2", "Phone van-1"]);
        let by_policy: Value = list(&format!("?policyId={}", policy["id"].as_str().unwrap()))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(by_policy["meta"]["total"], 1);
        let by_user: Value = list(&format!(
            "?assignedUserId={}&groupId={}",
            worker.id,
            group["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(by_user["data"][0]["id"], device.as_str());
        let search: Value = list("?q=sn-DESK").await.json().await.unwrap();
        assert_eq!(
            search["meta"]["total"], 1,
            "serial numbers are searched case-insensitively"
        );
        let seen: Value = list(&format!(
            "?lastSeenAfter={}",
            (chrono::Utc::now() - chrono::Duration::hours(1))
                .to_rfc3339()
                .replace('+', "%2B")
        ))
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(seen["meta"]["total"], 3);
        let literal: Value = list("?q=n-1").await.json().await.unwrap();
        assert_eq!(literal["meta"]["total"], 1);
        let wildcard: Value = list("?q=n_1").await.json().await.unwrap();
        assert_eq!(wildcard["meta"]["total"], 0, "`_` is a character, not a wildcard");
        let bad = list("?sort=colour").await;
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        // Suspend: the device token is refused with DEVICE_SUSPENDED; resume lets it back.
        let suspended = expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/suspend")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(suspended["status"], "suspended");
        let refused = sync(&app, &device, &device_token, json!({"baseVersion": 0})).await;
        expect_error(refused, StatusCode::FORBIDDEN, "DEVICE_SUSPENDED").await;
        let refresh = as_device(
            &app,
            Method::POST,
            "/api/v1/devices/token/refresh",
            &device_token,
            None,
        )
        .await;
        expect_error(refresh, StatusCode::FORBIDDEN, "DEVICE_SUSPENDED").await;
        let twice = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{device}/suspend")),
            &org.owner,
            None,
        )
        .await;
        expect_error(twice, StatusCode::CONFLICT, "CONFLICT").await;
        let only_suspended: Value = list("?status=suspended").await.json().await.unwrap();
        assert_eq!(only_suspended["meta"]["total"], 1);
        let usage = expect_data(
            send(&app, Method::GET, &org.path("/usage"), &org.owner, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            usage["devicesByStatus"],
            json!({"active": 2, "suspended": 1}),
            "{usage}"
        );
        assert_eq!(usage["enrollmentTokens"], 1);
        assert_eq!(usage["policies"], 1);
        expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/resume")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        expect_data(
            sync(&app, &device, &device_token, json!({"baseVersion": 0})).await,
            StatusCode::OK,
        )
        .await;

        // Wipe: pending → delivered at the next sync → acknowledged.
        let wipe = expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/wipe")),
                &org.owner,
                Some(json!({"expiresInSeconds": 3600})),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let command = wipe["id"].as_str().unwrap().to_owned();
        assert_eq!(wipe["status"], "pending");
        let commands = |device: String| {
            send(
                &app,
                Method::GET,
                &org.path(&format!("/devices/{device}/commands")),
                &org.owner,
                None,
            )
        };
        let synced = expect_data(
            sync(&app, &device, &device_token, json!({"baseVersion": 0})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(synced["commands"][0]["id"], command.as_str(), "{synced}");
        assert_eq!(synced["commands"][0]["command"], "wipe");
        let listed = expect_data(commands(device.clone()).await, StatusCode::OK).await;
        assert_eq!(listed[0]["status"], "delivered");
        let ack = expect_data(
            as_device(
                &app,
                Method::POST,
                &format!("/api/v1/devices/{device}/commands/{command}/ack"),
                &device_token,
                Some(json!({"result": {"outcome": "wiped"}})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(ack["status"], "acknowledged");
        let listed = expect_data(commands(device.clone()).await, StatusCode::OK).await;
        assert_eq!(listed[0]["status"], "acknowledged");
        assert_eq!(listed[0]["result"]["outcome"], "wiped");
        let again = as_device(
            &app,
            Method::POST,
            &format!("/api/v1/devices/{device}/commands/{command}/ack"),
            &device_token,
            None,
        )
        .await;
        expect_error(again, StatusCode::CONFLICT, "CONFLICT").await;
        let synced = expect_data(
            sync(&app, &device, &device_token, json!({"baseVersion": 0})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            synced["commands"],
            json!([]),
            "an acknowledged command is not handed out again"
        );

        // A wipe the device never takes expires.
        let lost = expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{other}/wipe")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let lost = lost["id"].as_str().unwrap().to_owned();
        {
            use steward_persistence::entities::device_commands;
            device_commands::Entity::update_many()
                .col_expr(device_commands::Column::ExpiresAt, Expr::value(past()))
                .filter(device_commands::Column::Id.eq(lost.parse::<uuid::Uuid>().unwrap()))
                .exec(app.db.connection())
                .await
                .unwrap();
        }
        let listed = expect_data(commands(other.clone()).await, StatusCode::OK).await;
        assert_eq!(listed[0]["status"], "expired");
        let short = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{other}/wipe")),
            &org.owner,
            Some(json!({"expiresInSeconds": 5})),
        )
        .await;
        expect_error(short, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let commands_before = app.count_rows("device_commands").await;
        let typo = app
            .authed(
                Method::POST,
                &org.path(&format!("/devices/{other}/wipe")),
                &org.owner.token,
            )
            .header("content-type", "application/json")
            .body(r#"{"expiresInSecs": 120}"#)
            .send()
            .await
            .unwrap();
        expect_error(typo, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(
            app.count_rows("device_commands").await,
            commands_before,
            "a malformed wipe queues nothing"
        );

        // Retire: unmanaged, out of the organization, tokens revoked.
        let retired = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{device}/retire")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(retired.status(), StatusCode::NO_CONTENT);
        let gone = send(
            &app,
            Method::GET,
            &org.path(&format!("/devices/{device}")),
            &org.owner,
            None,
        )
        .await;
        expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let token_refused = as_device(
            &app,
            Method::GET,
            &format!("/api/v1/devices/{device}/settings"),
            &device_token,
            None,
        )
        .await;
        expect_error(token_refused, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let remaining: Value = list("").await.json().await.unwrap();
        assert_eq!(remaining["meta"]["total"], 2);

        let actions = app.audit_actions().await;
        for action in [
            "device.assigned",
            "device.suspended",
            "device.resumed",
            "device.wipe_requested",
            "device.command_delivered",
            "device.command_acknowledged",
            "device.retired",
        ] {
            assert!(
                actions.contains(&action.to_owned()),
                "{action} audited: {actions:?}"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn another_organizations_admin_gets_404_for_every_fleet_endpoint() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let a = organization(&app, "org-a").await;
        let b = organization(&app, "org-b").await;
        let policy = post(&app, &b.owner, &b.path("/policies"), json!({"name": "B"})).await;
        let policy = policy["id"].as_str().unwrap().to_owned();
        let group = post(&app, &b.owner, &b.path("/groups"), json!({"name": "G"})).await;
        let (token_id, secret) = token(&app, &b, json!({})).await;
        let (device, device_token, _) = enrolled(&app, &secret, "b-phone").await;
        let wipe = expect_data(
            send(
                &app,
                Method::POST,
                &b.path(&format!("/devices/{device}/wipe")),
                &b.owner,
                None,
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let command = wipe["id"].as_str().unwrap().to_owned();
        let audits = app.audit_actions().await.len();
        let alice = &a.owner;
        for (method, path, body) in [
            (Method::GET, b.path("/groups"), None),
            (Method::POST, b.path("/groups"), Some(json!({"name": "x"}))),
            (Method::GET, b.path("/enrollment-tokens"), None),
            (Method::POST, b.path("/enrollment-tokens"), Some(json!({}))),
            (
                Method::GET,
                b.path(&format!("/enrollment-tokens/{token_id}")),
                None,
            ),
            (
                Method::GET,
                b.path(&format!("/enrollment-tokens/{token_id}/qr")),
                None,
            ),
            (
                Method::DELETE,
                b.path(&format!("/enrollment-tokens/{token_id}")),
                None,
            ),
            (Method::GET, b.path("/devices"), None),
            (Method::GET, b.path(&format!("/devices/{device}")), None),
            (
                Method::POST,
                b.path(&format!("/devices/{device}/assign")),
                Some(json!({"policyId": null})),
            ),
            (Method::POST, b.path(&format!("/devices/{device}/suspend")), None),
            (Method::POST, b.path(&format!("/devices/{device}/resume")), None),
            (Method::POST, b.path(&format!("/devices/{device}/retire")), None),
            (Method::POST, b.path(&format!("/devices/{device}/wipe")), None),
            (Method::GET, b.path(&format!("/devices/{device}/commands")), None),
            (Method::GET, b.path(&format!("/devices/{device}/settings")), None),
            (Method::GET, a.path(&format!("/devices/{device}/settings")), None),
            (
                Method::POST,
                b.path(&format!("/policies/{policy}/apply")),
                Some(json!({"deviceIds": [device]})),
            ),
            (
                Method::POST,
                b.path(&format!("/policies/{policy}/unapply")),
                Some(json!({"groupIds": [group["id"]]})),
            ),
            // A's own paths naming B's resources.
            (
                Method::GET,
                a.path(&format!("/enrollment-tokens/{token_id}")),
                None,
            ),
            (Method::GET, a.path(&format!("/devices/{device}")), None),
            (Method::POST, a.path(&format!("/devices/{device}/suspend")), None),
            (Method::POST, a.path(&format!("/devices/{device}/wipe")), None),
            (Method::GET, a.path(&format!("/devices/{device}/commands")), None),
            (
                Method::POST,
                a.path(&format!("/policies/{policy}/apply")),
                Some(json!({"deviceIds": [device]})),
            ),
        ] {
            let response = send(&app, method.clone(), &path, alice, body).await;
            expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        }
        // Import into B, and A's policy applied to B's device: 404 too.
        let import = app
            .authed(Method::POST, &b.path("/devices/import"), &alice.token)
            .header("content-type", "text/csv")
            .body("deviceId\nx\n")
            .send()
            .await
            .unwrap();
        expect_error(import, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let mine = post(&app, alice, &a.path("/policies"), json!({"name": "A"})).await;
        let cross = send(
            &app,
            Method::POST,
            &a.path(&format!("/policies/{}/apply", mine["id"].as_str().unwrap())),
            alice,
            Some(json!({"deviceIds": [device]})),
        )
        .await;
        expect_error(cross, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let cross_group = send(
            &app,
            Method::POST,
            &a.path("/enrollment-tokens"),
            alice,
            Some(json!({"groupId": group["id"]})),
        )
        .await;
        expect_error(cross_group, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        // Another device cannot acknowledge B's command.
        let (_, a_secret) = token(&app, &a, json!({})).await;
        let (a_device, a_token, _) = enrolled(&app, &a_secret, "a-phone").await;
        let foreign_ack = as_device(
            &app,
            Method::POST,
            &format!("/api/v1/devices/{a_device}/commands/{command}/ack"),
            &a_token,
            None,
        )
        .await;
        expect_error(foreign_ack, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let spoof = as_device(
            &app,
            Method::POST,
            &format!("/api/v1/devices/{device}/commands/{command}/ack"),
            &a_token,
            None,
        )
        .await;
        expect_error(spoof, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // B's device and its state are as before.
        let still = expect_data(
            send(
                &app,
                Method::GET,
                &b.path(&format!("/devices/{device}")),
                &b.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(still["status"], "active");
        let commands = expect_data(
            send(
                &app,
                Method::GET,
                &b.path(&format!("/devices/{device}/commands")),
                &b.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(commands.as_array().unwrap().len(), 1);
        assert_eq!(commands[0]["status"], "pending");
        expect_data(
            as_device(
                &app,
                Method::GET,
                &format!("/api/v1/devices/{device}/settings"),
                &device_token,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let new_audits: Vec<String> = app.audit_actions().await.split_off(audits);
        assert!(
            new_audits.iter().all(|a| a.starts_with("policy.created")
                || a.starts_with("enrollment_token.created")
                || a == "device.enrolled"),
            "only A's own actions were recorded: {new_audits:?}"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn one_sync_delivers_several_commands_and_a_forced_deletion_retires_several_devices() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "many").await;
        let (_, secret) = token(&app, &org, json!({})).await;
        let mut devices = Vec::new();
        for n in 0..3 {
            devices.push(enrolled(&app, &secret, &format!("many-{n}")).await);
        }
        let (device, device_token, _) = &devices[0];
        for _ in 0..2 {
            let wiped = send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/wipe")),
                &org.owner,
                Some(json!({"expiresInSeconds": 3600})),
            )
            .await;
            assert_eq!(wiped.status(), StatusCode::ACCEPTED);
        }
        // Each delivered command has its own audit entry.
        let synced = expect_data(
            sync(&app, device, device_token, json!({"baseVersion": 0})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            synced["commands"].as_array().unwrap().len(),
            2,
            "{synced} {backend:?}"
        );

        // Each retired device has its own audit entry too.
        let deleted = send(&app, Method::DELETE, &org.path("?force=true"), &org.root, None).await;
        let status = deleted.status();
        assert!(
            status.is_success(),
            "{status} {} {backend:?}",
            deleted.text().await.unwrap()
        );
        let actions = app.audit_actions().await;
        assert_eq!(
            actions.iter().filter(|a| *a == "device.retired").count(),
            3,
            "{backend:?}"
        );
        assert_eq!(
            actions
                .iter()
                .filter(|a| *a == "device.command_delivered")
                .count(),
            2,
            "{actions:?}"
        );
        app.stop().await;
    })
    .await;
}
