//! The docs' examples run as written: values are read out of the Markdown, so an example that
//! names a key the catalog does not have, or a body the API refuses, fails here.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, docs, each_backend, expect_data, expect_error, send, spawn_app};

fn doc(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The JSON of the one block of `file` that holds `needle`.
fn json_block(file: &str, needle: &str) -> Value {
    let block = docs::block(file, needle);
    serde_json::from_str(&block.text).unwrap_or_else(|error| panic!("{}: {error}", block.place()))
}

/// The key of `` `key=value` `` right after `marker` in `text`.
fn key_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("the docs mention {marker:?}"))
        + marker.len();
    let rest = text[start..].trim_start().trim_start_matches('`');
    rest.split('=').next().unwrap().to_owned()
}

async fn catalog_keys(app: &TestApp, token: &steward_tests::TestUser) -> Vec<String> {
    expect_data(
        send(app, Method::GET, "/api/v1/setting-definitions", token, None).await,
        StatusCode::OK,
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|d| d["key"].as_str().unwrap().to_owned())
    .collect()
}

#[tokio::test]
async fn the_organizations_worked_example_runs_as_written() {
    let text = doc("organizations.md").replace('\n', " ");
    let key = key_after(&text, "the default policy `Baseline` sets");
    let device_policy_key = key_after(&text, "the device policy `Field crew` sets");
    assert_eq!(key, device_policy_key, "one key in the example");
    let refusal = format!("setting \\`{key}\\` is locked by policy \\`Baseline\\`");
    assert!(text.contains(&refusal), "the docs quote the refusal for {key}");
    each_backend(|backend| {
        let key = key.clone();
        async move {
            let app = spawn_app(backend).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            assert!(catalog_keys(&app, &root).await.contains(&key), "{key} is in the seeded catalog");
            let org = app.organization(&root, "acme", &root).await;
            let path = |rest: &str| format!("/api/admin/v1/organizations/{org}{rest}");
            expect_data(
                send(
                    &app,
                    Method::POST,
                    &path("/policies"),
                    &root,
                    Some(json!({"name": "Baseline", "isDefault": true, "settings": {&key: false}, "locks": [&key]})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
            let field = expect_data(
                send(
                    &app,
                    Method::POST,
                    &path("/policies"),
                    &root,
                    Some(json!({"name": "Field crew", "settings": {&key: true}})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
            let secret = expect_data(
                send(
                    &app,
                    Method::POST,
                    &path("/enrollment-tokens"),
                    &root,
                    Some(json!({"policyId": field["id"]})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await["token"]
                .as_str()
                .unwrap()
                .to_owned();
            let enrolled = expect_data(
                app.post_json(
                    "/api/v1/devices/enroll",
                    &json!({"enrollmentToken": secret, "deviceId": "phone-1", "displayName": "Phone"}),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
            let device = enrolled["deviceId"].as_str().unwrap();
            let token = enrolled["deviceToken"].as_str().unwrap();
            let settings = expect_data(
                app.authed(Method::GET, &format!("/api/v1/devices/{device}/settings?explain=true"), token)
                    .send()
                    .await
                    .unwrap(),
                StatusCode::OK,
            )
            .await;
            let setting = &settings["settings"][&key];
            assert_eq!(setting["value"], false, "{backend:?}: {setting}");
            assert_eq!(setting["locked"], true);
            assert_eq!(setting["lockedBy"], "organization_default");
            assert_eq!(setting["policy"]["name"], "Baseline");
            assert_eq!(setting["explanation"]["winner"]["layer"], "organization_default");
            assert_eq!(setting["explanation"]["conflicts"][0]["layer"], "device_policy");
            let refused = expect_error(
                app.authed(Method::PUT, &format!("/api/v1/devices/{device}/settings/{key}"), token)
                    .json(&json!({"value": true}))
                    .send()
                    .await
                    .unwrap(),
                StatusCode::CONFLICT,
                "SETTING_LOCKED",
            )
            .await;
            assert!(
                refused.to_string().contains("Baseline") && refused.to_string().contains(&key),
                "{refused}"
            );
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_sync_example_of_the_settings_guide_is_accepted_as_written() {
    let body = json_block("docs/settings-and-locks.md", "\"baseVersion\": 41");
    each_backend(|backend| {
        let body = body.clone();
        async move {
            let app = spawn_app(backend).await;
            // The documented token answer's fields are all there.
            let tokens = json_block("docs/authentication.md", "\"tokenType\": \"Bearer\"");
            let registered = app.register("ann@example.com").await;
            for key in tokens["data"].as_object().unwrap().keys() {
                assert!(
                    registered.get(key).is_some(),
                    "{backend:?}: {key} in {registered}"
                );
            }
            for key in tokens["data"]["user"].as_object().unwrap().keys() {
                assert!(registered["user"].get(key).is_some(), "{backend:?}: user.{key}");
            }
            assert_eq!(registered["tokenType"], tokens["data"]["tokenType"]);
            let ann = steward_tests::TestUser {
                id: registered["user"]["id"].as_str().unwrap().parse().unwrap(),
                token: registered["accessToken"].as_str().unwrap().to_owned(),
            };
            let keys = catalog_keys(&app, &ann).await;
            for key in body["changes"].as_object().unwrap().keys() {
                assert!(keys.contains(key), "{key} of the example is in the catalog");
            }
            for failure in body["failures"].as_array().unwrap() {
                assert!(
                    keys.contains(&failure["key"].as_str().unwrap().to_owned()),
                    "{failure}"
                );
            }
            let api_key = app.api_key().await;
            let registered = app
                .client
                .post(app.url("/api/v1/devices/register"))
                .header("x-api-key", &api_key)
                .bearer_auth(&ann.token)
                .json(&json!({"deviceId": "ann-phone", "displayName": "Phone"}))
                .send()
                .await
                .unwrap();
            let registered = expect_data(registered, StatusCode::CREATED).await;
            let device = registered["id"].as_str().unwrap();
            let token = registered["deviceToken"].as_str().unwrap();
            // Versions in the example are illustrative: the device's own take their place.
            let mut body = body;
            body["baseVersion"] = json!(0);
            body["appliedVersion"] = json!(0);
            let synced = expect_data(
                app.authed(
                    Method::POST,
                    &format!("/api/v1/devices/{device}/settings/sync"),
                    token,
                )
                .json(&body)
                .send()
                .await
                .unwrap(),
                StatusCode::OK,
            )
            .await;
            for (key, value) in body["changes"].as_object().unwrap() {
                assert_eq!(&synced["settings"][key]["value"], value, "{backend:?}: {synced}");
            }
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_envelopes_of_the_api_conventions_are_the_ones_served() {
    let error = json_block("docs/api-conventions.md", "\"success\": false");
    let list = json_block("docs/api-conventions.md", "\"meta\"");
    each_backend(|backend| {
        let (error, list) = (error.clone(), list.clone());
        async move {
            let app = spawn_app(backend).await;
            // The documented error is what a registration with a bad email answers.
            let answer = app
                .post_json(
                    "/api/v1/auth/register",
                    &json!({"email": "not an email", "password": steward_tests::PASSWORD, "displayName": "A"}),
                )
                .await;
            let served: Value = answer.json().await.unwrap();
            for key in ["code", "message", "details"] {
                assert_eq!(served["error"][key], error["error"][key], "{backend:?} {key}: {served}");
            }
            assert!(served["error"]["requestId"].is_string());
            // The documented token answer's fields are all there.
            let tokens = json_block("docs/authentication.md", "\"tokenType\": \"Bearer\"");
            let registered = app.register("ann@example.com").await;
            for key in tokens["data"].as_object().unwrap().keys() {
                assert!(registered.get(key).is_some(), "{backend:?}: {key} in {registered}");
            }
            for key in tokens["data"]["user"].as_object().unwrap().keys() {
                assert!(registered["user"].get(key).is_some(), "{backend:?}: user.{key}");
            }
            assert_eq!(registered["tokenType"], tokens["data"]["tokenType"]);
            let ann = steward_tests::TestUser {
                id: registered["user"]["id"].as_str().unwrap().parse().unwrap(),
                token: registered["accessToken"].as_str().unwrap().to_owned(),
            };
            let page: Value = send(&app, Method::GET, "/api/v1/groups", &ann, None)
                .await
                .json()
                .await
                .unwrap();
            let keys = |v: &Value| -> Vec<String> {
                let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                keys.sort();
                keys
            };
            assert_eq!(keys(&page), keys(&list), "{backend:?}: {page}");
            // A created object's envelope.
            let created: Value = send(&app, Method::POST, "/api/v1/groups", &ann, Some(json!({"name": "Home"})))
                .await
                .json()
                .await
                .unwrap();
            let shown = docs::example_json(&docs::block("docs/api-conventions.md", "{\"success\": true, \"data\": {\"id\": \"…\"}}").text).unwrap();
            docs::matches(&shown, &created).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            assert_eq!(keys(&page["meta"]), keys(&list["meta"]));
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_enrollment_request_of_the_organizations_guide_enrolls_as_written() {
    let example = json_block(
        "docs/organizations.md",
        "\"enrollmentToken\": \"stw_enr_…\", \"deviceId\"",
    );
    let qr = docs::example_json(
        &docs::block(
            "docs/organizations.md",
            "\"serverUrl\": \"https://steward.example.com\"",
        )
        .text,
    )
    .unwrap();
    each_backend(|backend| {
        let mut body = example.clone();
        let qr = qr.clone();
        async move {
            let app = spawn_app(backend).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            let org = app.organization(&root, "acme", &root).await;
            let minted = expect_data(
                send(
                    &app,
                    Method::POST,
                    &format!("/api/admin/v1/organizations/{org}/enrollment-tokens"),
                    &root,
                    Some(json!({})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
            let token = minted["token"].as_str().unwrap().to_owned();
            // The QR code holds what the guide shows (the test server's own URL).
            let png = send(
                &app,
                Method::GET,
                &format!(
                    "/api/admin/v1/organizations/{org}/enrollment-tokens/{}/qr",
                    minted["id"].as_str().unwrap()
                ),
                &root,
                None,
            )
            .await
            .bytes()
            .await
            .unwrap();
            let mut prepared =
                rqrr::PreparedImage::prepare(image::load_from_memory(&png).unwrap().to_luma8());
            let (_, text) = prepared.detect_grids()[0].decode().unwrap();
            let read: Value = serde_json::from_str(&text).unwrap();
            let mut shown = qr.clone();
            // Ids and the URL are this server's (an id's first digits are its time).
            shown["serverUrl"] = json!("…");
            shown["organizationId"] = json!("…");
            docs::matches(&shown, &read).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            assert_eq!(read["organizationId"], json!(org));
            assert_eq!(read["enrollmentToken"], json!(token));
            body["enrollmentToken"] = json!(token);
            let enrolled = expect_data(
                app.post_json("/api/v1/devices/enroll", &body).await,
                StatusCode::CREATED,
            )
            .await;
            for key in [
                "deviceId",
                "organizationId",
                "deviceToken",
                "deviceTokenExpiresAt",
                "adopted",
                "settings",
            ] {
                assert!(
                    enrolled.get(key).is_some(),
                    "{backend:?}: the documented {key} in {enrolled}"
                );
            }
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_second_factor_answers_are_the_ones_served() {
    let challenge = docs::block("docs/authentication.md", "\"mfaRequired\": true");
    let challenge = docs::example_json(&challenge.text).unwrap();
    let standing = docs::block("docs/admin-api.md", "{\"mfa\": {\"enforced\": true");
    let mut standing = docs::example_json(&standing.text).unwrap();
    // The deadline shown is an example time: any RFC 3339 time matches.
    let deadline = standing["mfa"]["deadline"].take();
    assert!(chrono::DateTime::parse_from_rfc3339(deadline.as_str().unwrap()).is_ok());
    standing["mfa"]["deadline"] = json!("…");
    each_backend(|backend| {
        let (challenge, standing) = (challenge.clone(), standing.clone());
        async move {
            let app = steward_tests::spawn_app_with(backend, |config| {
                config.admin_mfa_required = true;
                config.admin_mfa_grace_hours = 24;
            })
            .await;
            let ops = app.user("ops@example.com").await;
            app.grant(ops.id, "user_admin").await;
            let me = expect_data(
                send(&app, Method::GET, "/api/admin/v1/me", &ops, None).await,
                StatusCode::OK,
            )
            .await;
            docs::matches(&standing, &me).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            assert!(chrono::DateTime::parse_from_rfc3339(me["mfa"]["deadline"].as_str().unwrap()).is_ok());

            steward_tests::mfa::enrol(&app, &ops).await;
            let answer: Value = app
                .login("ops@example.com", steward_tests::PASSWORD)
                .await
                .json()
                .await
                .unwrap();
            docs::matches(&challenge, &answer)
                .unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_quota_refusals_are_the_ones_served() {
    let devices = docs::block("docs/organizations.md", "the organization's quota of 10 devices");
    let devices = docs::example_json(&devices.text).unwrap();
    let tokens = docs::block(
        "docs/organizations.md",
        "the account's quota of 10 personal access tokens",
    );
    let tokens = docs::example_json(&tokens.text).unwrap();
    each_backend(|backend| {
        let (devices, tokens) = (devices.clone(), tokens.clone());
        async move {
            let app = spawn_app(backend).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            let org = app.organization(&root, "acme", &root).await;
            expect_data(
                send(
                    &app,
                    Method::PUT,
                    &format!("/api/admin/v1/organizations/{org}/quotas"),
                    &root,
                    Some(json!({"overrides": {"devices": 10}})),
                )
                .await,
                StatusCode::OK,
            )
            .await;
            // Ten devices in one import, then one more.
            let import = |csv: String| {
                app.authed(
                    Method::POST,
                    &format!("/api/admin/v1/organizations/{org}/devices/import"),
                    &root.token,
                )
                .header("content-type", "text/csv")
                .body(csv)
                .send()
            };
            let ten: String = (0..10).map(|n| format!("phone-{n},Phone,android\n")).collect();
            let imported = import(format!("deviceId,displayName,platform\n{ten}"))
                .await
                .unwrap();
            assert_eq!(imported.status(), StatusCode::OK, "{backend:?}");
            let refused = import("deviceId,displayName,platform\nphone-10,Phone,android\n".to_owned())
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::CONFLICT, "{backend:?}");
            let refused: Value = refused.json().await.unwrap();
            docs::matches(&devices, &refused)
                .unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));

            let ann = app.user("ann@example.com").await;
            expect_data(
                send(
                    &app,
                    Method::PUT,
                    &format!("/api/admin/v1/users/{}/quotas", ann.id),
                    &root,
                    Some(json!({"overrides": {"personal_access_tokens": 10}})),
                )
                .await,
                StatusCode::OK,
            )
            .await;
            let create = |n: usize| {
                send(
                    &app,
                    Method::POST,
                    "/api/v1/auth/me/tokens",
                    &ann,
                    Some(json!({"name": format!("token {n}"), "scopes": ["account:read"]})),
                )
            };
            for n in 0..10 {
                expect_data(create(n).await, StatusCode::CREATED).await;
            }
            let refused: Value = create(10).await.json().await.unwrap();
            docs::matches(&tokens, &refused).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_device_registration_of_the_devices_guide_registers_as_written() {
    let block = docs::block("docs/devices.md", "POST /api/v1/devices/register");
    let (request, answer) = block.text.split_once('→').unwrap();
    let body = docs::example_json(&request[request.find('{').unwrap()..]).unwrap();
    assert!(request.contains("X-API-Key: stw_key_…"), "{request}");
    let answer = answer.trim_start();
    assert!(answer.starts_with("201 "), "{answer}");
    let shown = docs::example_json(&answer[answer.find('{').unwrap()..]).unwrap();
    each_backend(|backend| {
        let (body, shown) = (body.clone(), shown.clone());
        async move {
            let app = spawn_app(backend).await;
            let key = app.api_key().await;
            let ann = app.user("ann@example.com").await;
            // Without the optional Authorization, then with the user's token (the header line
            // in brackets).
            for bearer in [None, Some(&ann.token)] {
                let mut body = body.clone();
                body["deviceId"] = json!(format!("a1b2-{}", bearer.is_some()));
                let mut request = app
                    .client
                    .post(app.url("/api/v1/devices/register"))
                    .header("x-api-key", &key)
                    .json(&body);
                if let Some(token) = bearer {
                    request = request.bearer_auth(token);
                }
                let served: Value = {
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED, "{backend:?}");
                    response.json().await.unwrap()
                };
                let mut shown = shown.clone();
                shown["data"]["deviceId"] = body["deviceId"].clone();
                docs::matches(&shown, &served)
                    .unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            }
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_job_answers_of_the_jobs_guide_are_the_ones_served() {
    let block = docs::block("docs/jobs.md", "devices/import?async=true");
    let mut parts = block.text.split("GET /api/admin/v1/jobs/");
    let (submitted, polled) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(
        submitted.contains("→ 202  Location: /api/admin/v1/jobs/"),
        "{submitted}"
    );
    let mut accepted = docs::example_json(&submitted[submitted.find("{\"success\"").unwrap()..]).unwrap();
    // An id's first digits are its time.
    accepted["data"]["id"] = json!("…");
    let polled = docs::example_json(&polled[polled.find('{').unwrap()..]).unwrap();
    each_backend(|backend| {
        let (accepted, polled) = (accepted.clone(), polled.clone());
        async move {
            let app = spawn_app(backend).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            let org = app.organization(&root, "acme", &root).await;
            let response = app
                .authed(
                    Method::POST,
                    &format!("/api/admin/v1/organizations/{org}/devices/import?async=true"),
                    &root.token,
                )
                .header("content-type", "text/csv")
                .body("deviceId,displayName,platform\nphone-1,Phone,android\n")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED, "{backend:?}");
            let location = response.headers()["location"].to_str().unwrap().to_owned();
            let served: Value = response.json().await.unwrap();
            // The job may already have started when the answer is read back: "pending" as shown
            // is what the submission answers.
            docs::matches(&accepted, &served)
                .unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            assert_eq!(
                location,
                format!("/api/admin/v1/jobs/{}", served["data"]["id"].as_str().unwrap())
            );
            // The polled job has every field shown (its values are a moment of a larger import).
            let job: Value = send(&app, Method::GET, &location, &root, None)
                .await
                .json()
                .await
                .unwrap();
            docs::same_keys(&polled, &job).unwrap_or_else(|difference| panic!("{backend:?}: {difference}"));
            app.stop().await;
        }
    })
    .await;
}
