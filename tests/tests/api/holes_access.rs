//! Who may reach what, at the seams: personal-access-token scopes on every organization route,
//! authorization before the body is read, and the session cache checking whose token it is.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn personal_token(app: &TestApp, user: &TestUser, scopes: Value) -> TestUser {
    let created = expect_data(
        send(
            app,
            Method::POST,
            "/api/v1/auth/me/tokens",
            user,
            Some(json!({"name": "script", "scopes": scopes})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    TestUser {
        id: user.id,
        token: created["secret"].as_str().unwrap().to_owned(),
    }
}

/// Every operation of the served spec under `/api/admin/v1/organizations/{orgId}`, with the
/// path filled in (other ids random) and whether it takes a body.
async fn organization_operations(app: &TestApp, org: &str) -> Vec<(Method, String, bool)> {
    let spec: Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/admin/v1/organizations/{orgId}") {
            continue;
        }
        let mut concrete = path.replace("{orgId}", org);
        while let Some(start) = concrete.find('{') {
            let end = concrete[start..].find('}').unwrap() + start;
            concrete.replace_range(start..=end, &uuid::Uuid::now_v7().to_string());
        }
        for (method, operation) in item.as_object().unwrap() {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "delete" => Method::DELETE,
                _ => continue,
            };
            operations.push((method, concrete.clone(), operation.get("requestBody").is_some()));
        }
    }
    assert!(
        operations.len() >= 33,
        "the organization routes are in the spec: {operations:?}"
    );
    operations
}

fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: bool,
) -> impl Future<Output = reqwest::Response> + 'static + use<> {
    let request = app.authed(method, path, token);
    let request = if body { request.json(&json!({})) } else { request };
    async move { request.send().await.unwrap() }
}

#[tokio::test]
async fn every_organization_route_needs_the_token_scope_and_sessions_pass() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let org = app.organization(&root, "acme", &owner).await;
        let read_only = personal_token(&app, &root, json!(["account:read"])).await;
        let reader = personal_token(&app, &root, json!(["organizations:read"])).await;
        let audit_before = app.audit_actions().await.len();

        for (method, path, body) in organization_operations(&app, &org).await {
            // A QR code shows the enrollment secret: reading it is a write-level act.
            let needed = if method == Method::PUT && path.ends_with("/quotas") {
                // Quotas are the operator's: a system permission, not an organization role.
                "quotas:write"
            } else if (method == Method::GET && !path.ends_with("/qr")) || path.ends_with("/devices/export") {
                // (The fleet export job reads the fleet.)
                "organizations:read"
            } else {
                "organizations:write"
            };
            let refused = expect_error(
                call(&app, method.clone(), &path, &read_only.token, body).await,
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
            )
            .await;
            assert!(
                refused["message"].as_str().unwrap().contains(needed),
                "{backend:?} {method} {path}: {refused}"
            );
            if needed == "organizations:write" {
                let refused = expect_error(
                    call(&app, method.clone(), &path, &reader.token, body).await,
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                )
                .await;
                assert!(
                    refused["message"]
                        .as_str()
                        .unwrap()
                        .contains("organizations:write"),
                    "{backend:?} {method} {path}: {refused}"
                );
            }
        }
        // (A refused system permission is recorded as `admin.access_denied`; nothing else.)
        let done: Vec<String> = app
            .audit_actions()
            .await
            .into_iter()
            .skip(audit_before)
            .filter(|action| action != "admin.access_denied")
            .collect();
        assert!(
            done.is_empty(),
            "{backend:?}: nothing was done with the refused tokens: {done:?}"
        );
        assert_eq!(app.count_rows("enrollment_tokens").await, 0);

        // A session reaches every route (the answers are whatever the route says, never a
        // refusal of the caller); DELETE of the organization itself goes last.
        let mut operations = organization_operations(&app, &org).await;
        operations.sort_by_key(|(method, path, _)| {
            (*method == Method::DELETE && path.ends_with(&org), path.clone())
        });
        for (method, path, body) in operations {
            let status = call(&app, method.clone(), &path, &root.token, body)
                .await
                .status();
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{backend:?} {method} {path}: {status}"
            );
        }

        // The organization's owner may give a token organization scopes and use it.
        let other = app.organization(&root, "other", &owner).await;
        let owners_token =
            personal_token(&app, &owner, json!(["organizations:read", "organizations:write"])).await;
        expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/organizations/{other}/enrollment-tokens"),
                &owners_token,
                Some(json!({"name": "by script"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/organizations",
                &owners_token,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed.as_array().unwrap().len(), 1, "{backend:?}: {listed}");
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/organizations", &read_only, None).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn callers_are_authorized_before_their_bodies_are_read() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let viewer = app.user("viewer@example.com").await;
        let stranger = app.user("stranger@example.com").await;
        let org = app.organization(&root, "acme", &owner).await;
        expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/organizations/{org}/users"),
                &owner,
                Some(json!({"userId": viewer.id, "role": "viewer"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let malformed = |user: &TestUser, method: Method, path: &str| {
            let request = app
                .authed(method, path, &user.token)
                .header("content-type", "application/json")
                .body("{\"name\": ,,,");
            async move { request.send().await.unwrap() }
        };

        // System permission routes: a plain user learns 403, not what the body should be.
        for body in [json!({}), json!({"name": 5})] {
            expect_error(
                send(
                    &app,
                    Method::POST,
                    "/api/admin/v1/organizations",
                    &stranger,
                    Some(body),
                )
                .await,
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
            )
            .await;
        }
        expect_error(
            malformed(&stranger, Method::POST, "/api/admin/v1/organizations").await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        expect_error(
            malformed(&stranger, Method::POST, "/api/admin/v1/setting-definitions").await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        let unauthenticated = app
            .client
            .post(app.url("/api/admin/v1/organizations"))
            .header("content-type", "application/json")
            .body("{,")
            .send()
            .await
            .unwrap();
        expect_error(unauthenticated, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

        // Organization routes: outsiders 404, members without the right 403, then 400.
        let update = format!("/api/admin/v1/organizations/{org}");
        expect_error(
            malformed(&stranger, Method::PUT, &update).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        expect_error(
            malformed(&viewer, Method::PUT, &update).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        expect_error(
            malformed(&owner, Method::PUT, &update).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let policies = format!("/api/admin/v1/organizations/{org}/policies");
        expect_error(
            send(&app, Method::POST, &policies, &stranger, Some(json!({}))).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        expect_error(
            send(&app, Method::POST, &policies, &viewer, Some(json!({}))).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;

        // Group routes likewise: a stranger's malformed invite is a 404.
        let group = app.group(&owner, "Home").await;
        expect_error(
            malformed(
                &stranger,
                Method::POST,
                &format!("/api/v1/groups/{group}/invites"),
            )
            .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        expect_error(
            malformed(&owner, Method::POST, &format!("/api/v1/groups/{group}/invites")).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_apps_public_key_and_a_device_identifier_are_not_a_devices_identity() {
    for legacy in [false, true] {
        each_backend(|backend| async move {
            let app = steward_tests::spawn_app_with(backend, |config| {
                config.legacy_device_auth = legacy;
            })
            .await;
            let olivia = app.user("olivia@example.com").await;
            let mia = app.user("mia@example.com").await;
            let max = app.user("max@example.com").await;
            let group = app.group(&olivia, "Home").await;
            app.join(&group, &olivia, &mia, "member").await;
            app.join(&group, &olivia, &max, "member").await;
            let key = app.api_key().await;
            let (device, device_token) = app.device(&key, &max, "max-phone").await;

            // A fellow member sees the device, but not the identifier the app registered with.
            let seen = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/v1/devices/{device}"),
                    &mia,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            assert!(seen["deviceId"].is_null(), "{backend:?}: {seen}");
            let own = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/v1/devices/{device}"),
                    &max,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(own["deviceId"], "max-phone");

            // The key plus the identifier acts as the device only where legacy auth is on.
            let key_path = format!("/api/v1/devices/{device}/settings/location.sharing_enabled");
            let legacy_write = app
                .client
                .put(app.url(&key_path))
                .header("x-api-key", &key)
                .header("x-device-id", "max-phone")
                .json(&json!({"value": false}))
                .send()
                .await
                .unwrap();
            if legacy {
                expect_data(legacy_write, StatusCode::OK).await;
            } else {
                let refused = expect_error(legacy_write, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
                assert!(
                    refused["message"].as_str().unwrap().contains("device token"),
                    "{refused}"
                );
                let value = expect_data(
                    send(&app, Method::GET, &key_path, &max, None).await,
                    StatusCode::OK,
                )
                .await;
                assert_eq!(
                    value["value"], true,
                    "{backend:?}: nothing was written (the default stays)"
                );
            }

            // The device's own token works either way; a revoked one does not.
            let by_token = app
                .client
                .put(app.url(&key_path))
                .bearer_auth(&device_token)
                .json(&json!({"value": true}))
                .send()
                .await
                .unwrap();
            expect_data(by_token, StatusCode::OK).await;
            let again = app
                .client
                .post(app.url("/api/v1/devices/register"))
                .header("x-api-key", &key)
                .bearer_auth(&max.token)
                .json(&json!({"deviceId": "max-phone", "displayName": "Device max-phone"}))
                .send()
                .await
                .unwrap();
            let fresh = expect_data(again, StatusCode::OK).await["deviceToken"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_ne!(fresh, device_token);
            let stale = app
                .client
                .get(app.url(&format!("/api/v1/devices/{device}/settings")))
                .bearer_auth(&device_token)
                .send()
                .await
                .unwrap();
            expect_error(stale, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

            // Without legacy auth the key alone cannot re-register (and so re-point) the device.
            let hijack = app
                .client
                .post(app.url("/api/v1/devices/register"))
                .header("x-api-key", &key)
                .json(&json!({"deviceId": "max-phone", "displayName": "pwned", "pushToken": "attacker"}))
                .send()
                .await
                .unwrap();
            if legacy {
                let updated = expect_data(hijack, StatusCode::OK).await;
                assert!(updated["deviceToken"].is_null(), "legacy updates give no token");
            } else {
                expect_error(hijack, StatusCode::CONFLICT, "CONFLICT").await;
                let own = expect_data(
                    send(
                        &app,
                        Method::GET,
                        &format!("/api/v1/devices/{device}"),
                        &max,
                        None,
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
                assert_eq!(own["displayName"], "Device max-phone", "{backend:?}");
            }
            app.stop().await;
        })
        .await;
    }
}

#[tokio::test]
async fn device_routes_decide_access_before_the_body() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ann = app.user("ann@example.com").await;
        let stranger = app.user("stranger@example.com").await;
        let key = app.api_key().await;
        let (device, _) = app.device(&key, &ann, "ann-phone").await;
        let malformed = |user: &TestUser, method: Method, path: String| {
            let request = app
                .authed(method, &path, &user.token)
                .header("content-type", "application/json")
                .body("{\"value\": ,");
            async move { request.send().await.unwrap() }
        };
        let settings = format!("/api/v1/devices/{device}/settings");
        for (method, path) in [
            (Method::PUT, format!("{settings}/location.sharing_enabled")),
            (Method::PUT, settings.clone()),
            (Method::POST, format!("{settings}/sync")),
            (Method::POST, format!("{settings}/location.sharing_enabled/lock")),
            (Method::PUT, format!("{settings}/locks")),
        ] {
            expect_error(
                malformed(&stranger, method.clone(), path.clone()).await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
            expect_error(
                malformed(&ann, method.clone(), path.clone()).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
        }
        app.stop().await;
    })
    .await;
}
