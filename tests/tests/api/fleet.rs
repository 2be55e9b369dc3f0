//! Organization fleets end to end: enrollment tokens and QR codes, enrollment and device
//! tokens, the enrollment race, policy precedence, fleet actions, the wipe lifecycle, policy
//! application with dry runs, bulk import, and the cross-organization matrix.

use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use steward_tests::fleet::{Org, as_device, enroll, enrolled, organization, post, sync, token};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

#[tokio::test]
async fn enrollment_tokens_render_qr_codes_and_refuse_when_revoked_expired_or_used_up() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "acme").await;
        let created = post(
            &app,
            &org.owner,
            &org.path("/enrollment-tokens"),
            json!({"name": "Warehouse", "oneTime": true, "note": "shelf 3",
                "expiresAt": (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339(),
                "additionalData": {"site": "north"}}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["token"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("stw_enr_"), "{created}");
        assert_eq!(created["maxUses"], 1);
        assert_eq!(created["state"], "active");
        // Never readable again through the API.
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                &org.path("/enrollment-tokens"),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(!listed.to_string().contains(&secret), "{listed}");
        let one = expect_data(
            send(
                &app,
                Method::GET,
                &org.path(&format!("/enrollment-tokens/{id}")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(one.get("token").is_none(), "{one}");
        assert_eq!(one["note"], "shelf 3");

        // QR codes, PNG and SVG, carry the documented payload.
        let png = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr?size=256")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(png.status(), StatusCode::OK);
        assert_eq!(png.headers()["content-type"], "image/png");
        let bytes = png.bytes().await.unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let image = image::load_from_memory(&bytes).unwrap();
        assert!(image.width() >= 256, "{}", image.width());
        let svg = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr?format=svg")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(svg.headers()["content-type"], "image/svg+xml");
        assert!(svg.text().await.unwrap().contains("<svg"));
        let bad = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr?format=gif")),
            &org.owner,
            None,
        )
        .await;
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let code = qrcode_payload(&app, &org, &id).await;
        assert_eq!(code["enrollmentToken"], secret.as_str());
        assert_eq!(code["organizationId"], org.id.as_str());
        assert_eq!(code["v"], 1);
        assert!(code["serverUrl"].as_str().unwrap().starts_with("http"));

        // Bad specs are refused.
        for body in [
            json!({"maxUses": 0}),
            json!({"oneTime": true, "maxUses": 3}),
            json!({"expiresAt": "2001-01-01T00:00:00Z"}),
            json!({"additionalData": [1]}),
            json!({"policyId": uuid::Uuid::now_v7()}),
        ] {
            let refused = send(
                &app,
                Method::POST,
                &org.path("/enrollment-tokens"),
                &org.owner,
                Some(body),
            )
            .await;
            expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }

        // One use: the second device is refused; the first got the additional data.
        let (_, _, first) = enrolled(&app, code["enrollmentToken"].as_str().unwrap(), "dev-1").await;
        assert_eq!(first["additionalData"]["site"], "north");
        assert_eq!(first["organizationId"], org.id.as_str());
        let used_up = enroll(&app, &secret, "dev-2").await;
        expect_error(used_up, StatusCode::CONFLICT, "ENROLLMENT_TOKEN_USED_UP").await;
        let unknown = enroll(&app, "stw_enr_nope", "dev-2").await;
        expect_error(unknown, StatusCode::UNAUTHORIZED, "ENROLLMENT_TOKEN_INVALID").await;
        let no_qr = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr")),
            &org.owner,
            None,
        )
        .await;
        expect_error(no_qr, StatusCode::CONFLICT, "CONFLICT").await;

        // Revoked.
        let (revoked, revoked_secret) = token(&app, &org, json!({})).await;
        let gone = send(
            &app,
            Method::DELETE,
            &org.path(&format!("/enrollment-tokens/{revoked}")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
        expect_error(
            enroll(&app, &revoked_secret, "dev-3").await,
            StatusCode::GONE,
            "ENROLLMENT_TOKEN_EXPIRED",
        )
        .await;
        let again = send(
            &app,
            Method::DELETE,
            &org.path(&format!("/enrollment-tokens/{revoked}")),
            &org.owner,
            None,
        )
        .await;
        expect_error(again, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // Expired: moved into the past directly in the database.
        let (expiring, expiring_secret) = token(&app, &org, json!({})).await;
        {
            use steward_persistence::entities::enrollment_tokens;
            enrollment_tokens::Entity::update_many()
                .col_expr(enrollment_tokens::Column::ExpiresAt, Expr::value(Some(past())))
                .filter(enrollment_tokens::Column::Id.eq(expiring.parse::<uuid::Uuid>().unwrap()))
                .exec(app.db.connection())
                .await
                .unwrap();
        }
        expect_error(
            enroll(&app, &expiring_secret, "dev-4").await,
            StatusCode::GONE,
            "ENROLLMENT_TOKEN_EXPIRED",
        )
        .await;
        let state = expect_data(
            send(
                &app,
                Method::GET,
                &org.path(&format!("/enrollment-tokens/{expiring}")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(state["state"], "expired");
        assert_eq!(
            app.count_rows("devices").await,
            1,
            "refused enrollments created nothing"
        );
        let actions = app.audit_actions().await;
        assert!(actions.contains(&"enrollment_token.created".to_owned()));
        assert!(actions.contains(&"enrollment_token.revoked".to_owned()));
        assert!(
            actions.contains(&"enrollment_token.qr_rendered".to_owned()),
            "rendering the secret is audited"
        );
        assert!(actions.contains(&"device.enrolled".to_owned()));
        app.stop().await;
    })
    .await;
}

/// Reads the PNG QR code back as a device's camera would.
async fn qrcode_payload(app: &TestApp, org: &Org, id: &str) -> Value {
    let png = send(
        app,
        Method::GET,
        &org.path(&format!("/enrollment-tokens/{id}/qr")),
        &org.owner,
        None,
    )
    .await
    .bytes()
    .await
    .unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    let (_, text) = grids[0].decode().unwrap();
    serde_json::from_str(&text).unwrap()
}

fn past() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() - chrono::Duration::days(1)
}

/// The organization's `camera.enabled` definition (override merge) and a default policy locking
/// it off; answers that policy's id.
async fn camera_locked_off_by_default(app: &TestApp, org: &Org) -> String {
    let definition = json!({"key": "camera.enabled", "valueType": "bool", "defaultValue": true,
        "category": "device", "mergeRule": "override"});
    post(app, &org.root, "/api/admin/v1/setting-definitions", definition).await;
    let policy = post(
        app,
        &org.owner,
        &org.path("/policies"),
        json!({"name": "Baseline", "isDefault": true, "settings": {"camera.enabled": false}, "locks": ["camera.enabled"]}),
    )
    .await;
    policy["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_organization_default_lock_wins_over_a_device_policy_end_to_end() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "acme").await;
        let baseline = camera_locked_off_by_default(&app, &org).await;
        let field = post(
            &app,
            &org.owner,
            &org.path("/policies"),
            json!({"name": "Field crew", "settings": {"camera.enabled": true, "location.sharing_enabled": true}}),
        )
        .await;
        let (_, secret) = token(&app, &org, json!({"policyId": field["id"], "maxUses": 5})).await;
        let (device, device_token, answer) = enrolled(&app, &secret, "phone-1").await;
        assert!(device_token.starts_with("stw_dev_"));
        let expires: chrono::DateTime<chrono::Utc> = answer["deviceTokenExpiresAt"].as_str().unwrap().parse().unwrap();
        let days = (expires - chrono::Utc::now()).num_days();
        assert!((89..=90).contains(&days), "{days}");
        // The enrollment answer already carries the effective settings.
        assert_eq!(answer["settings"]["settings"]["camera.enabled"]["value"], false, "{answer}");

        // The device reads its settings with its token: false, locked by the default policy,
        // the device policy's true reported as a conflict.
        let settings = expect_data(
            as_device(&app, Method::GET, &format!("/api/v1/devices/{device}/settings?explain=true"), &device_token, None).await,
            StatusCode::OK,
        )
        .await;
        let camera = &settings["settings"]["camera.enabled"];
        assert_eq!(camera["value"], false, "{camera}");
        assert_eq!(camera["locked"], true);
        assert_eq!(camera["lockedBy"], "organization_default");
        assert_eq!(camera["policy"]["name"], "Baseline");
        assert_eq!(camera["policy"]["id"], baseline.as_str());
        let explanation = &camera["explanation"];
        assert_eq!(explanation["winner"]["layer"], "organization_default");
        let conflicts = explanation["conflicts"].as_array().unwrap();
        assert_eq!(conflicts.len(), 1, "{explanation}");
        assert_eq!(conflicts[0]["layer"], "device_policy");
        assert_eq!(conflicts[0]["value"], true);
        assert_eq!(conflicts[0]["source"]["name"], "Field crew");
        // The unlocked key of the device policy applies.
        assert_eq!(settings["settings"]["location.sharing_enabled"]["value"], true);
        assert_eq!(settings["settings"]["location.sharing_enabled"]["explanation"]["winner"]["layer"], "device_policy");

        // The device cannot change it; an admin cannot unlock it at the device; only the policy
        // can — and the refusal names it.
        let version = settings["version"].as_i64().unwrap();
        let synced = expect_data(
            sync(&app, &device, &device_token, json!({"baseVersion": version, "changes": {"camera.enabled": true}})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(synced["rejected"][0]["code"], "SETTING_LOCKED", "{synced}");
        assert_eq!(synced["settings"]["camera.enabled"]["value"], false);
        let unlock = send(&app, Method::DELETE, &format!("/api/v1/devices/{device}/settings/camera.enabled/lock"), &org.root, None).await;
        let error = expect_error(unlock, StatusCode::CONFLICT, "SETTING_LOCKED").await;
        let reason = error["details"][0]["message"].as_str().unwrap();
        assert!(reason.contains("policy `Baseline`"), "the refusal names the policy: {error}");

        // Changing the policy reaches the device: a new version, the new value.
        let updated = send(
            &app,
            Method::PUT,
            &org.path(&format!("/policies/{baseline}")),
            &org.owner,
            Some(json!({"name": "Baseline", "isDefault": true, "settings": {"camera.enabled": false}, "locks": []})),
        )
        .await;
        expect_data(updated, StatusCode::OK).await;
        let after = expect_data(
            as_device(&app, Method::GET, &format!("/api/v1/devices/{device}/settings"), &device_token, None).await,
            StatusCode::OK,
        )
        .await;
        assert!(after["version"].as_i64().unwrap() > version);
        assert_eq!(after["settings"]["camera.enabled"]["value"], true, "now the device policy's value wins");
        assert_eq!(after["settings"]["camera.enabled"]["locked"], false);

        // Device tokens refresh; the old one stops working.
        let refreshed = expect_data(
            as_device(&app, Method::POST, "/api/v1/devices/token/refresh", &device_token, None).await,
            StatusCode::OK,
        )
        .await;
        let new_token = refreshed["deviceToken"].as_str().unwrap();
        assert_ne!(new_token, device_token);
        let old = as_device(&app, Method::GET, &format!("/api/v1/devices/{device}/settings"), &device_token, None).await;
        expect_error(old, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let fresh = as_device(&app, Method::GET, &format!("/api/v1/devices/{device}/settings"), new_token, None).await;
        expect_data(fresh, StatusCode::OK).await;
        // A device token is good for its own device only.
        let other = as_device(&app, Method::GET, &format!("/api/v1/devices/{}/settings", uuid::Uuid::now_v7()), new_token, None).await;
        expect_error(other, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn thirty_devices_racing_for_ten_uses_enroll_exactly_ten() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "race").await;
        let (id, secret) = token(&app, &org, json!({"maxUses": 10})).await;
        let attempts: Vec<_> = (0..30)
            .map(|n| enroll(&app, &secret, &format!("racer-{n}")))
            .collect();
        let responses = futures_util::future::join_all(attempts.into_iter().map(tokio::spawn)).await;
        let mut statuses = Vec::new();
        for response in responses {
            let response = response.unwrap();
            let status = response.status();
            if status != StatusCode::CREATED {
                expect_error(response, StatusCode::CONFLICT, "ENROLLMENT_TOKEN_USED_UP").await;
            }
            statuses.push(status);
        }
        let won = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        assert_eq!(won, 10, "{backend:?}: {statuses:?}");
        assert_eq!(app.count_rows("devices").await, 10);
        assert_eq!(app.count_rows("device_tokens").await, 10);
        let state = expect_data(
            send(
                &app,
                Method::GET,
                &org.path(&format!("/enrollment-tokens/{id}")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(state["useCount"], 10);
        assert_eq!(state["usesLeft"], 0);
        assert_eq!(state["state"], "used_up");
        app.stop().await;
    })
    .await;
}

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
async fn policies_apply_to_devices_and_groups_with_dry_run_diffs() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "apply").await;
        let strict = post(&app, &org.owner, &org.path("/policies"),
            json!({"name": "Strict", "settings": {"location.sharing_enabled": true, "notifications.enabled": false},
                "locks": ["location.sharing_enabled"]})).await;
        let strict_id = strict["id"].as_str().unwrap().to_owned();
        let group = post(&app, &org.owner, &org.path("/groups"), json!({"name": "Floor"})).await;
        let (_, secret) = token(&app, &org, json!({"groupId": group["id"]})).await;
        let (first, first_token, _) = enrolled(&app, &secret, "f-1").await;
        let (second, _, _) = enrolled(&app, &secret, "f-2").await;
        let apply = org.path(&format!("/policies/{strict_id}/apply"));

        // A dry run answers each device's diff and writes nothing.
        let audits = app.audit_actions().await.len();
        let dry = expect_data(send(&app, Method::POST, &apply, &org.owner,
            Some(json!({"groupIds": [group["id"]], "dryRun": true}))).await, StatusCode::OK).await;
        assert_eq!(dry["dryRun"], true);
        let diffs = dry["diffs"].as_array().unwrap();
        assert_eq!(diffs.len(), 2, "{dry}");
        let changes = diffs[0]["changes"].as_array().unwrap();
        let keys: Vec<&str> = changes.iter().map(|c| c["key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["location.sharing_enabled", "notifications.enabled"], "{dry}");
        assert_eq!(changes[0]["before"]["locked"], false);
        assert_eq!(changes[0]["after"]["locked"], true);
        assert_eq!(changes[0]["after"]["lockedBy"], "group");
        assert_eq!(app.audit_actions().await.len(), audits, "a dry run changes nothing");
        let untouched = expect_data(as_device(&app, Method::GET, &format!("/api/v1/devices/{first}/settings"), &first_token, None).await, StatusCode::OK).await;
        assert_eq!(untouched["settings"]["notifications.enabled"]["value"], true);

        // Applying to the group reaches both devices.
        let applied = expect_data(send(&app, Method::POST, &apply, &org.owner, Some(json!({"groupIds": [group["id"]]}))).await, StatusCode::OK).await;
        let mut touched: Vec<&str> = applied["devicesTouched"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
        touched.sort_unstable();
        let mut expected = vec![first.as_str(), second.as_str()];
        expected.sort_unstable();
        assert_eq!(touched, expected);
        let now = expect_data(as_device(&app, Method::GET, &format!("/api/v1/devices/{first}/settings"), &first_token, None).await, StatusCode::OK).await;
        assert_eq!(now["settings"]["notifications.enabled"]["value"], false);
        assert_eq!(now["settings"]["location.sharing_enabled"]["lockedBy"], "group");
        let groups = expect_data(send(&app, Method::GET, &org.path("/groups"), &org.owner, None).await, StatusCode::OK).await;
        assert_eq!(groups[0]["policyId"], strict_id.as_str());

        // Applying to one device as its device policy, then unapplying.
        expect_data(send(&app, Method::POST, &apply, &org.owner, Some(json!({"deviceIds": [second]}))).await, StatusCode::OK).await;
        let device = expect_data(send(&app, Method::GET, &org.path(&format!("/devices/{second}")), &org.owner, None).await, StatusCode::OK).await;
        assert_eq!(device["policyId"], strict_id.as_str());
        let unapply = org.path(&format!("/policies/{strict_id}/unapply"));
        let dry = expect_data(send(&app, Method::POST, &unapply, &org.owner, Some(json!({"groupIds": [group["id"]], "dryRun": true}))).await, StatusCode::OK).await;
        assert_eq!(dry["diffs"].as_array().unwrap().len(), 2);
        expect_data(send(&app, Method::POST, &unapply, &org.owner, Some(json!({"groupIds": [group["id"]]}))).await, StatusCode::OK).await;
        let back = expect_data(as_device(&app, Method::GET, &format!("/api/v1/devices/{first}/settings"), &first_token, None).await, StatusCode::OK).await;
        assert_eq!(back["settings"]["notifications.enabled"]["value"], true);
        // Unapplying where the policy is no longer carried changes and pushes nothing.
        let again = expect_data(
            send(&app, Method::POST, &unapply, &org.owner, Some(json!({"groupIds": [group["id"]], "dryRun": true}))).await,
            StatusCode::OK,
        )
        .await;
        assert!(
            again["diffs"].as_array().unwrap().iter().all(|d| d["changes"] == json!([])),
            "{again}"
        );
        let again = expect_data(
            send(&app, Method::POST, &unapply, &org.owner, Some(json!({"groupIds": [group["id"]]}))).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(again["devicesTouched"], json!([]));

        // Bad targets: nothing changes.
        for body in [json!({}), json!({"deviceIds": [first], "groupIds": [group["id"]]})] {
            let refused = send(&app, Method::POST, &apply, &org.owner, Some(body)).await;
            expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }
        let foreign = send(&app, Method::POST, &apply, &org.owner, Some(json!({"deviceIds": [first, uuid::Uuid::now_v7()]}))).await;
        expect_error(foreign, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let first_device = expect_data(send(&app, Method::GET, &org.path(&format!("/devices/{first}")), &org.owner, None).await, StatusCode::OK).await;
        assert_eq!(first_device["policyId"], Value::Null, "all or nothing");
        let actions = app.audit_actions().await;
        assert!(actions.contains(&"policy.applied".to_owned()) && actions.contains(&"policy.unapplied".to_owned()));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn imports_report_problems_by_line_and_are_all_or_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "import").await;
        let member = app.user("member@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": member.id, "role": "viewer"}),
        )
        .await;
        let policy = post(&app, &org.owner, &org.path("/policies"), json!({"name": "P"})).await;
        let import = |query: &str, content_type: &str, body: String| {
            app.authed(
                Method::POST,
                &org.path(&format!("/devices/import{query}")),
                &org.owner.token,
            )
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
        };
        let csv = format!(
            "deviceId,displayName,platform,serialNumber,policyId,assignedUserEmail\n\
             tab-1,Tablet 1,android,S1,{policy},member@example.com\n\
             tab-2,Tablet 2,ios,S2,,\n\
             ,No id,android,S3,,\n\
             tab-4,Tablet 4,android,S4,{unknown},nobody@example.com\n\
             tab-1,Again,android,S5,,\n\
             tab-6,Tablet 6,android,S6,not-a-uuid,\n",
            policy = policy["id"].as_str().unwrap(),
            unknown = uuid::Uuid::now_v7()
        );
        let dry = expect_data(
            import("?dryRun=true", "text/csv", csv.clone()).await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(dry["rows"], 6);
        let errors: Vec<(i64, &str)> = dry["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap()))
            .collect();
        assert_eq!(
            errors,
            [
                (4, "deviceId"),
                (5, "policyId"),
                (5, "assignedUserEmail"),
                (6, "deviceId"),
                (7, "policyId")
            ],
            "{dry}"
        );
        assert_eq!(app.count_rows("devices").await, 0);

        let real = import("", "text/csv", csv).await.unwrap();
        let error = expect_error(real, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(error["details"].as_array().unwrap().len(), 5, "{error}");
        assert_eq!(app.count_rows("devices").await, 0, "nothing imported");

        let good = format!(
            "deviceId,displayName,platform,serialNumber,policyId,assignedUserEmail\n\
             tab-1,Tablet 1,android,S1,{policy},member@example.com\n\
             tab-2,Tablet 2,ios,S2,,\n",
            policy = policy["id"].as_str().unwrap()
        );
        let done = expect_data(import("", "text/csv", good).await.unwrap(), StatusCode::OK).await;
        assert_eq!(
            (done["created"].as_i64(), done["skipped"].as_i64()),
            (Some(2), Some(0)),
            "{done}"
        );
        let listed: Value = send(
            &app,
            Method::GET,
            &org.path("/devices?sort=name"),
            &org.owner,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(listed["data"][0]["enrollmentStatus"], "pending");
        assert_eq!(listed["data"][0]["policyId"], policy["id"]);
        assert_eq!(listed["data"][0]["assignedUserId"], member.id.to_string());

        // JSON, with duplicates skipped or updated.
        let json_rows =
            json!([{"deviceId": "tab-2", "displayName": "Renamed"}, {"deviceId": "tab-3"}]).to_string();
        let skipped = expect_data(
            import("", "application/json", json_rows.clone()).await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (skipped["created"].as_i64(), skipped["skipped"].as_i64()),
            (Some(1), Some(1))
        );
        let updated = expect_data(
            import("?onDuplicate=update", "application/json", json_rows)
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(updated["updated"], 2);
        let renamed: Value = send(
            &app,
            Method::GET,
            &org.path("/devices?q=renamed"),
            &org.owner,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(renamed["meta"]["total"], 1);
        // A personal device cannot be taken over by an import, whatever the option.
        let key = app.api_key().await;
        let personal = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &key)
            .json(&json!({"deviceId": "personal-1", "displayName": "Mine"}))
            .send()
            .await
            .unwrap();
        expect_data(personal, StatusCode::CREATED).await;
        let takeover = expect_data(
            import(
                "?onDuplicate=update&dryRun=true",
                "application/json",
                json!([{"deviceId": "personal-1"}]).to_string(),
            )
            .await
            .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(takeover["errors"][0]["field"], "deviceId", "{takeover}");
        assert!(
            takeover["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("outside this organization")
        );
        let wrong_type = import("", "text/plain", "x".to_owned()).await.unwrap();
        expect_error(
            wrong_type,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
        let actions = app.audit_actions().await;
        assert_eq!(actions.iter().filter(|a| *a == "device.imported").count(), 3);
        assert_eq!(
            actions.iter().filter(|a| *a == "device.import_updated").count(),
            2
        );

        // An imported device enrolls into its pre-registered record.
        let (_, secret) = token(&app, &org, json!({})).await;
        let (_, _, answer) = enrolled(&app, &secret, "tab-1").await;
        assert_eq!(answer["adopted"], true);
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
async fn organization_users_import_existing_accounts_with_roles_the_importer_may_grant() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "people").await;
        let (ann, bob, _carol) = (
            app.user("ann@example.com").await,
            app.user("bob@example.com").await,
            app.user("carol@example.com").await,
        );
        let import = |user: &TestUser, query: &str, body: &str| {
            app.authed(Method::POST, &org.path(&format!("/users/import{query}")), &user.token)
                .header("content-type", "text/csv")
                .body(body.to_owned())
                .send()
        };
        let csv = "email,role\nANN@example.com,admin\nbob@example.com,\nghost@example.com,viewer\ncarol@example.com,boss\nann@example.com,viewer\n";
        let dry = expect_data(import(&org.owner, "?dryRun=true", csv).await.unwrap(), StatusCode::OK).await;
        let errors: Vec<(i64, &str)> = dry["errors"].as_array().unwrap().iter()
            .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap())).collect();
        assert_eq!(errors, [(4, "email"), (5, "role"), (6, "email")], "{dry}");
        let refused = import(&org.owner, "", csv).await.unwrap();
        expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let members = || send(&app, Method::GET, &org.path("/users"), &org.owner, None);
        assert_eq!(expect_data(members().await, StatusCode::OK).await.as_array().unwrap().len(), 1, "nothing imported");

        let added = |actions: &[String]| actions.iter().filter(|a| *a == "organization.user_added").count();
        let before = added(&app.audit_actions().await);
        let done = expect_data(
            import(&org.owner, "", "email,role\nann@example.com,admin\nbob@example.com,viewer\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(done["created"], 2, "{done}");
        let listed = expect_data(members().await, StatusCode::OK).await;
        let role_of = |listed: &Value, id: uuid::Uuid| {
            listed.as_array().unwrap().iter().find(|m| m["userId"] == id.to_string()).map(|m| m["role"].clone())
        };
        assert_eq!(role_of(&listed, ann.id), Some(json!("admin")));
        assert_eq!(role_of(&listed, bob.id), Some(json!("viewer")));

        // An admin may not grant owner; existing users are skipped unless updating.
        let by_admin = expect_data(
            import(&ann, "?dryRun=true", "email,role\ncarol@example.com,owner\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(by_admin["errors"][0]["field"], "role", "{by_admin}");
        let viewer = import(&bob, "?dryRun=true", "email\ncarol@example.com\n").await.unwrap();
        expect_error(viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let skipped = expect_data(import(&ann, "", "email,role\nbob@example.com,admin\n").await.unwrap(), StatusCode::OK).await;
        assert_eq!(skipped["skipped"], 1);
        let updated = expect_data(
            import(&ann, "?onDuplicate=update", "email,role\nbob@example.com,admin\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(updated["updated"], 1);
        assert_eq!(role_of(&expect_data(members().await, StatusCode::OK).await, bob.id), Some(json!("admin")));
        let owner_kept = expect_data(
            import(&ann, "?onDuplicate=update", "email,role\nowner-people@example.com,viewer\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(owner_kept["skipped"], 1, "an import never changes an owner: {owner_kept}");
        let actions = app.audit_actions().await;
        assert_eq!(added(&actions) - before, 2, "one entry per imported user: {actions:?}");
        assert!(actions.contains(&"organization.user_role_changed".to_owned()));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_group_admin_cannot_lift_a_policy_lock_on_an_enrolled_personal_device() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "byod").await;
        camera_locked_off_by_default(&app, &org).await;
        // A family: the parent administers a group the child belongs to; the child's phone.
        let parent = app.user("parent@example.com").await;
        let child = app.user("child@example.com").await;
        let group = post(&app, &parent, "/api/v1/groups", json!({"name": "Home"})).await;
        let group = group["id"].as_str().unwrap().to_owned();
        let code = post(
            &app,
            &parent,
            &format!("/api/v1/groups/{group}/invites"),
            json!({"role": "member"}),
        )
        .await;
        expect_data(
            send(
                &app,
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
            .json(&json!({"deviceId": "kid-phone", "displayName": "Kid's phone", "platform": "android"}))
            .send()
            .await
            .unwrap();
        let device = expect_data(registered, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // The phone enrolls into the organization (bring your own device): adopted, owner kept.
        let (_, secret) = token(&app, &org, json!({})).await;
        let (enrolled_id, _, answer) = enrolled(&app, &secret, "kid-phone").await;
        assert_eq!(enrolled_id, device);
        assert_eq!(answer["adopted"], true);
        let settings = format!("/api/v1/devices/{device}/settings");
        let seen = expect_data(
            send(&app, Method::GET, &settings, &child, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            seen["settings"]["camera.enabled"]["lockedBy"],
            "organization_default"
        );

        // The parent may lock other keys, but not lift or change the policy's lock.
        let unlock = send(
            &app,
            Method::DELETE,
            &format!("{settings}/camera.enabled/lock"),
            &parent,
            None,
        )
        .await;
        let error = expect_error(unlock, StatusCode::CONFLICT, "SETTING_LOCKED").await;
        assert!(
            error["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("policy `Baseline`"),
            "{error}"
        );
        let write = send(
            &app,
            Method::PUT,
            &format!("{settings}/camera.enabled"),
            &parent,
            Some(json!({"value": true})),
        )
        .await;
        expect_error(write, StatusCode::CONFLICT, "SETTING_LOCKED").await;
        let request = send(
            &app,
            Method::POST,
            &format!("{settings}/camera.enabled/unlock-request"),
            &child,
            Some(json!({"reason": "school photo"})),
        )
        .await;
        expect_error(request, StatusCode::CONFLICT, "CONFLICT").await;
        let own_lock = send(
            &app,
            Method::POST,
            &format!("{settings}/location.sharing_enabled/lock"),
            &parent,
            Some(json!({"value": true})),
        )
        .await;
        expect_data(own_lock, StatusCode::OK).await;

        // The organization sees the same resolution, with explanations.
        let org_view = expect_data(
            send(
                &app,
                Method::GET,
                &org.path(&format!("/devices/{device}/settings?explain=true")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            org_view["settings"]["camera.enabled"]["explanation"]["winner"]["source"]["name"],
            "Baseline"
        );
        assert_eq!(
            org_view["settings"]["location.sharing_enabled"]["lockedBy"],
            "device"
        );
        app.stop().await;
    })
    .await;
}
