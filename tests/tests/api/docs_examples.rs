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

/// The JSON of the first fenced ```json block after `marker` in `text`.
fn json_block_after(text: &str, marker: &str) -> Value {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("the docs mention {marker:?}"));
    let fence = text[start..].find("```json").unwrap() + start + "```json".len();
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
            let org = expect_data(
                send(
                    &app,
                    Method::POST,
                    "/api/admin/v1/organizations",
                    &root,
                    Some(json!({"name": "Acme", "slug": "acme", "ownerUserId": root.id})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_owned();
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
            let ann = app.user("ann@example.com").await;
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
