//! Policies on fleets end to end: precedence of organization defaults, device and group
//! policies, application with dry runs, and policy locks a group admin cannot lift.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::fleet::{Org, as_device, enrolled, organization, post, sync, token};
use steward_tests::{TestApp, each_backend, expect_data, expect_error, send, spawn_app};

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
