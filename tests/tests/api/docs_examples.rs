//! The docs' examples run as written: values are read out of the Markdown, so an example that
//! names a key the catalog does not have, or a body the API refuses, fails here.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, each_backend, expect_data, expect_error, send, spawn_app};

fn doc(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The JSON of the fenced ```json block holding `marker` (or the first one after it).
fn json_block_after(text: &str, marker: &str) -> Value {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("the docs mention {marker:?}"));
    // The block that holds the marker, or else the next one.
    let open = text[..start]
        .rfind("```json")
        .filter(|open| !text[*open + "```json".len()..start].contains("```"))
        .or_else(|| text[start..].find("```json").map(|at| at + start))
        .unwrap_or_else(|| panic!("a ```json block at {marker:?}"));
    let fence = open + "```json".len();
    let end = text[fence..].find("```").unwrap() + fence;
    serde_json::from_str(text[fence..end].trim()).unwrap_or_else(|error| panic!("{marker}: {error}"))
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
    let body = json_block_after(&doc("settings-and-locks.md"), "**Push local changes**");
    each_backend(|backend| {
        let body = body.clone();
        async move {
            let app = spawn_app(backend).await;
            // The documented token answer's fields are all there.
            let tokens = json_block_after(&doc("authentication.md"), "\"tokenType\": \"Bearer\"");
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

/// Every `METHOD /path {json}` request line in a fenced block of the docs (a body may sit on
/// the next line, indented), with its path's placeholders and `"…"` values filled in.
fn request_lines() -> Vec<(String, String, Method, String, Value)> {
    let mut found = Vec::new();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut files: Vec<_> = std::fs::read_dir(&docs).unwrap().filter_map(Result::ok).collect();
    files.sort_by_key(|entry| entry.file_name());
    for entry in files {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut fenced = false;
        for (index, line) in lines.iter().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
                continue;
            }
            if !fenced {
                continue;
            }
            let mut words = line.split_whitespace();
            let method = match words.next() {
                Some("POST") => Method::POST,
                Some("PUT") => Method::PUT,
                _ => continue,
            };
            let Some(path) = words.next().filter(|p| p.starts_with('/')) else {
                continue;
            };
            let path_end = line.find(path).unwrap() + path.len();
            let inline = line[path_end..].find('{').map(|at| at + path_end);
            let body = match inline {
                Some(at) => line[at..].split("  ").next().unwrap().to_owned(),
                None => match lines.get(index + 1).map(|next| next.trim()) {
                    Some(next) if next.starts_with('{') => next.to_owned(),
                    _ => continue,
                },
            };
            let body: Value = serde_json::from_str(&body).unwrap_or_else(|error| {
                panic!("{name}:{}: the example body is not JSON: {error}", index + 1)
            });
            found.push((
                name.clone(),
                format!("{}:{}", name, index + 1),
                method,
                path.to_owned(),
                body,
            ));
        }
    }
    found
}

#[tokio::test]
async fn every_request_line_of_the_docs_is_accepted_as_a_request() {
    let requests = request_lines();
    assert!(requests.len() >= 5, "{requests:?}");
    each_backend(|backend| {
        let requests = requests.clone();
        async move {
            let app = spawn_app(backend).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            for (_, place, method, path, body) in requests {
                let path = path
                    .replace("{userId}", &root.id.to_string())
                    .replace("{provider}", "google")
                    .replace("{id}", &uuid::Uuid::now_v7().to_string())
                    .replace("{orgId}", &uuid::Uuid::now_v7().to_string());
                let answer = send(&app, method.clone(), &path, &root, Some(body.clone())).await;
                let status = answer.status();
                let text = answer.text().await.unwrap();
                // The example's shape is right: whatever the answer, it is not a refusal of the
                // request's form (placeholders like "…" may still fail later checks, as a
                // fake ID token must).
                assert!(
                    !matches!(status.as_u16(), 400 | 413 | 415 | 422) && status.as_u16() < 500,
                    "{backend:?} {place}: {method} {path} {body} → {status} {text}"
                );
            }
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_envelopes_of_the_api_conventions_are_the_ones_served() {
    let text = doc("api-conventions.md");
    let error = json_block_after(&text, "\"success\": false");
    let list = json_block_after(&text, "\"meta\"");
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
            let tokens = json_block_after(&doc("authentication.md"), "\"tokenType\": \"Bearer\"");
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
            assert_eq!(keys(&page["meta"]), keys(&list["meta"]));
            app.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn the_enrollment_request_of_the_organizations_guide_enrolls_as_written() {
    let example = json_block_after(
        &doc("organizations.md"),
        "\"enrollmentToken\": \"stw_enr_…\", \"deviceId\"",
    );
    each_backend(|backend| {
        let mut body = example.clone();
        async move {
            let app = spawn_app(backend).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            let org = app.organization(&root, "acme", &root).await;
            let token = expect_data(
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
            .await["token"]
                .as_str()
                .unwrap()
                .to_owned();
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
