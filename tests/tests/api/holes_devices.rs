//! Devices and fleets at the seams: audit entries that belong to an organization, dry runs
//! that count what the import would do, transfers that reveal nothing, exports that stay text.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::fleet::{Org, enrolled, organization, token};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

/// Enrolls a device into the organization with a fresh token: (device id, device token).
async fn enrolled_in(app: &TestApp, org: &Org, identifier: &str) -> (String, String) {
    let (_, secret) = token(app, org, json!({"name": "floor"})).await;
    let (device, device_token, _) = enrolled(app, &secret, identifier).await;
    (device, device_token)
}

async fn audit_of(app: &TestApp, who: &TestUser, query: &str) -> Vec<Value> {
    expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/admin/v1/audit-logs?perPage=100&{query}"),
            who,
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

#[tokio::test]
async fn every_audit_entry_about_an_organizations_device_carries_the_organization() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "acme").await;
        let (device, device_token) = enrolled_in(&app, &org, "fleet-1").await;
        expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/wipe")),
                &org.root,
                None,
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let synced = app
            .client
            .post(app.url(&format!("/api/v1/devices/{device}/settings/sync")))
            .bearer_auth(&device_token)
            .json(&json!({"baseVersion": 0, "changes": {"device.camera_enabled": false}}))
            .send()
            .await
            .unwrap();
        let synced = expect_data(synced, StatusCode::OK).await;
        let command = synced["commands"][0]["id"].as_str().unwrap().to_owned();
        expect_data(
            app.client
                .post(app.url(&format!("/api/v1/devices/{device}/commands/{command}/ack")))
                .bearer_auth(&device_token)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;

        let organization = format!("organizationId={}", org.id);
        for action in [
            "device.enrolled",
            "device.wipe_requested",
            "device.command_delivered",
            "device.command_acknowledged",
            "settings.synced",
        ] {
            let entries = audit_of(&app, &org.root, &format!("{organization}&action={action}")).await;
            assert_eq!(entries.len(), 1, "{backend:?}: {action} under the organization");
        }
        // Nothing about the device is missing from the organization's view.
        let everything = audit_of(&app, &org.root, &format!("resourceId={device}")).await;
        let orphans: Vec<&Value> = everything
            .iter()
            .filter(|entry| entry["organizationId"].as_str() != Some(org.id.as_str()))
            .collect();
        assert!(orphans.is_empty(), "{backend:?}: {orphans:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_import_dry_run_counts_what_the_real_import_would_do() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "acme").await;
        let csv = "deviceId,displayName,platform\nok-1,One,android\nok-2,Two,ios\n,missing,android\nbad-4,,android\nbad-5,Five,android\nbad-5,Again,android\nbad-7,Seven,android\n";
        let import = |dry_run: bool| {
            app.authed(
                Method::POST,
                &org.path(&format!("/devices/import?dryRun={dry_run}")),
                &org.root.token,
            )
            .header("content-type", "text/csv")
            .body(csv)
            .send()
        };
        let report = expect_data(import(true).await.unwrap(), StatusCode::OK).await;
        assert!(!report["errors"].as_array().unwrap().is_empty(), "{report}");
        assert_eq!(
            (&report["created"], &report["updated"], &report["skipped"]),
            (&json!(0), &json!(0), &json!(0)),
            "{backend:?}: {report}"
        );
        expect_error(import(false).await.unwrap(), StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let listed = expect_data(
            send(&app, Method::GET, &org.path("/devices"), &org.root, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed.as_array().unwrap().len(), 0, "the real import created nothing");

        // Without problems the counts match the real import exactly.
        let clean = "deviceId,displayName\nok-1,One\nok-2,Two\n";
        let dry = app
            .authed(Method::POST, &org.path("/devices/import?dryRun=true"), &org.root.token)
            .header("content-type", "text/csv")
            .body(clean)
            .send()
            .await
            .unwrap();
        let dry = expect_data(dry, StatusCode::OK).await;
        let real = app
            .authed(Method::POST, &org.path("/devices/import"), &org.root.token)
            .header("content-type", "text/csv")
            .body(clean)
            .send()
            .await
            .unwrap();
        let real = expect_data(real, StatusCode::OK).await;
        for count in ["created", "updated", "skipped"] {
            assert_eq!(dry[count], real[count], "{backend:?} {count}: {dry} vs {real}");
        }
        assert_eq!(real["created"], 2);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn transfers_answer_alike_for_unknown_and_ineligible_recipients() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let (device, _) = app.device(&key, &ann, "tab-1").await;
        let path = format!("/api/v1/users/{}/devices/{device}/transfer", ann.id);
        let mut answers = Vec::new();
        for (body, field) in [
            (json!({"toEmail": "nobody@example.com"}), "toEmail"),
            (json!({"toEmail": "ann@example.com"}), "toEmail"),
            (json!({"toUserId": uuid::Uuid::now_v7()}), "toUserId"),
            (json!({"toUserId": ann.id}), "toUserId"),
        ] {
            let error = expect_error(
                send(&app, Method::POST, &path, &ann, Some(body.clone())).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(error["details"][0]["field"], field, "{backend:?} {body}: {error}");
            answers.push(error["details"][0]["message"].clone());
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{backend:?}: {answers:?}"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn audit_exports_are_not_cached_and_formulas_stay_text() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let hostile = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("user-agent", "=HYPERLINK(\"http://example.com/x\",\"open\")")
            .json(&json!({"email": "root@example.com", "password": "not the password"}))
            .send()
            .await
            .unwrap();
        assert_eq!(hostile.status(), StatusCode::UNAUTHORIZED);
        for format in ["csv", "json"] {
            let export = send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/audit-logs/export?format={format}"),
                &root,
                None,
            )
            .await;
            assert_eq!(export.status(), StatusCode::OK);
            assert_eq!(
                export.headers()["cache-control"],
                "no-store",
                "{backend:?} {format}"
            );
            let text = export.text().await.unwrap();
            if format == "csv" {
                assert!(text.contains("'=HYPERLINK("), "{backend:?}: {text}");
                assert!(
                    !text.lines().any(|line| line
                        .split(',')
                        .any(|cell| cell.starts_with("=HYPERLINK") || cell.starts_with("\"=HYPERLINK"))),
                    "{backend:?}: {text}"
                );
            }
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn deleting_an_organization_with_devices_needs_force_and_then_retires_them() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "acme").await;
        let policy = expect_data(
            send(
                &app,
                Method::POST,
                &org.path("/policies"),
                &org.root,
                Some(json!({"name": "Locked camera", "isDefault": true,
                    "settings": {"device.camera_enabled": false}, "locks": ["device.camera_enabled"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert!(policy["id"].is_string(), "{policy}");
        let (device, device_token) = enrolled_in(&app, &org, "fleet-1").await;
        let settings = format!("/api/v1/devices/{device}/settings");
        let before = app
            .client
            .get(app.url(&settings))
            .bearer_auth(&device_token)
            .send()
            .await
            .unwrap();
        let etag = before.headers()["etag"].to_str().unwrap().to_owned();
        let before = expect_data(before, StatusCode::OK).await;
        assert_eq!(
            before["settings"]["device.camera_enabled"]["locked"], true,
            "{before}"
        );
        expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/wipe")),
                &org.root,
                None,
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;

        let refused = expect_error(
            send(&app, Method::DELETE, &org.path(""), &org.root, None).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        assert!(
            refused["message"].as_str().unwrap().contains("force"),
            "{refused}"
        );
        expect_data(
            send(&app, Method::GET, &org.path(""), &org.root, None).await,
            StatusCode::OK,
        )
        .await;

        let pushes_before = app.count_rows("push_notifications").await;
        let deleted = send(&app, Method::DELETE, &org.path("?force=true"), &org.root, None).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT, "{backend:?}");
        expect_error(
            send(&app, Method::GET, &org.path(""), &org.root, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        // The device token is dead, the old ETag is stale and the policy lock is gone.
        expect_error(
            app.client
                .get(app.url(&settings))
                .bearer_auth(&device_token)
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        use sea_orm::EntityTrait;
        let stored =
            steward_persistence::entities::devices::Entity::find_by_id(device.parse::<uuid::Uuid>().unwrap())
                .one(app.db.connection())
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            (
                stored.is_managed,
                stored.enrollment_status.as_str(),
                stored.organization_id
            ),
            (false, "retired", None),
            "{backend:?}"
        );
        assert!(
            !etag.contains(&format!("\"{}.", stored.settings_version)),
            "the version moved on: {etag}"
        );
        let commands = steward_persistence::entities::device_commands::Entity::find()
            .all(app.db.connection())
            .await
            .unwrap();
        assert!(
            commands.iter().all(|c| c.status == "expired"),
            "{backend:?}: {commands:?}"
        );
        assert!(
            app.count_rows("push_notifications").await >= pushes_before,
            "a push is queued"
        );
        let retired = audit_of(&app, &org.root, "action=device.retired").await;
        assert_eq!(retired.len(), 1, "{backend:?}: {retired:?}");
        assert_eq!(retired[0]["organizationId"], org.id.as_str());
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nobody_claims_an_organizations_device_by_registering_its_identifier() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "acme").await;
        let (device, device_token) = enrolled_in(&app, &org, "fleet-7").await;
        let mallory = app.user("mallory@example.com").await;
        let key = app.api_key().await;
        let claim = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &key)
            .bearer_auth(&mallory.token)
            .json(&json!({"deviceId": "fleet-7", "displayName": "mine now"}))
            .send()
            .await
            .unwrap();
        expect_error(claim, StatusCode::CONFLICT, "CONFLICT").await;
        // The device's own token still works, and the device may register itself again.
        let settings = format!("/api/v1/devices/{device}/settings");
        expect_data(
            app.client
                .get(app.url(&settings))
                .bearer_auth(&device_token)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        // Suspended, it may not mint itself a new token.
        expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{device}/suspend")),
                &org.root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let again = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &key)
            .bearer_auth(&device_token)
            .json(&json!({"deviceId": "fleet-7", "displayName": "Phone"}))
            .send()
            .await
            .unwrap();
        expect_error(again, StatusCode::FORBIDDEN, "DEVICE_SUSPENDED").await;
        app.stop().await;
    })
    .await;
}
