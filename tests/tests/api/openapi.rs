use std::path::PathBuf;

use reqwest::StatusCode;
use steward_tests::{Backend, spawn_app};

fn committed_spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

#[test]
fn the_committed_spec_matches_the_code() {
    let generated = steward::cli::openapi_json().unwrap();
    let committed = std::fs::read_to_string(committed_spec_path()).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is out of date with the handlers: run `just openapi` and commit it"
    );
}

#[test]
fn the_spec_is_openapi_3_1_with_envelopes_and_security_schemes() {
    let spec: serde_json::Value = serde_json::from_str(&steward::cli::openapi_json().unwrap()).unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    for path in ["/health", "/health/ready", "/metrics"] {
        assert!(spec["paths"][path]["get"].is_object(), "{path} is documented");
    }
    let schemas = &spec["components"]["schemas"];
    for schema in ["ErrorEnvelope", "ErrorBody", "ErrorCode", "FieldError"] {
        assert!(schemas[schema].is_object(), "{schema} is in the spec");
    }
    let codes: Vec<&str> = schemas["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for code in [
        "VALIDATION_ERROR",
        "UNAUTHORIZED",
        "VERSION_CONFLICT",
        "SETTING_LOCKED",
        "RATE_LIMITED",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let schemes = &spec["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["bearer"]["bearerFormat"], "JWT");
    assert_eq!(schemes["apiKey"]["name"], "X-API-Key");
    assert_eq!(schemes["apiKey"]["in"], "header");
    assert!(
        spec["paths"]["/health/ready"]["get"]["responses"]["503"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/ErrorEnvelope")
    );
}

#[tokio::test]
async fn the_served_spec_is_the_generated_one() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/api-docs/openapi.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let served: serde_json::Value = response.json().await.unwrap();
    let generated: serde_json::Value = serde_json::from_str(&steward::cli::openapi_json().unwrap()).unwrap();
    assert_eq!(served, generated);
    app.stop().await;
}

/// Where `value` breaks `schema` (a subset of JSON Schema: `$ref`, `type` with `null`,
/// `properties` with `required` and no others, `items`, `allOf`, `enum`), as paths.
fn mismatches(
    spec: &serde_json::Value,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    at: &str,
) -> Vec<String> {
    use serde_json::Value;
    if let Some(reference) = schema["$ref"].as_str() {
        let pointer = reference.trim_start_matches('#');
        return mismatches(
            spec,
            spec.pointer(pointer).expect("a $ref that resolves"),
            value,
            at,
        );
    }
    let mut found = Vec::new();
    if let Some(all) = schema["allOf"].as_array() {
        for part in all {
            found.extend(mismatches(spec, part, value, at));
        }
    }
    if let Some(choices) = schema["enum"].as_array()
        && !choices.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {choices:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !fits {
            found.push(format!("{at}: a {actual}, declared {types:?}"));
            return found;
        }
    }
    if let (Some(properties), Some(object)) = (schema["properties"].as_object(), value.as_object()) {
        for (key, item) in object {
            match properties.get(key) {
                Some(declared) => found.extend(mismatches(spec, declared, item, &format!("{at}.{key}"))),
                None if schema["allOf"].is_null() => found.push(format!("{at}.{key}: not declared")),
                None => {}
            }
        }
        for key in schema["required"].as_array().into_iter().flatten() {
            let key = key.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                found.push(format!("{at}.{key}: required, missing"));
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            found.extend(mismatches(spec, items, item, &format!("{at}[{index}]")));
        }
    }
    found
}

/// The answers whose JSON is assembled outside the API crate (JWKS, discovery, the audit log,
/// the chain report, the GDPR export, a device's compliance) match the schemas the spec gives
/// them, field by field.
#[tokio::test]
async fn every_typed_answer_matches_its_schema() {
    use reqwest::Method;
    use steward_tests::send;
    let app = spawn_app(Backend::Sqlite).await;
    let spec: serde_json::Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
    let admin = app.user("root@example.com").await;
    app.grant(admin.id, "super_admin").await;
    let owner = app.user("owner@example.com").await;
    let key = app.api_key().await;
    let (device, _) = app.device(&key, &owner, "phone-1").await;
    let status_path = format!("/api/v1/devices/{device}/settings/status");
    let checks: Vec<(&str, String, Option<&steward_tests::TestUser>)> = vec![
        (
            "/.well-known/jwks.json",
            "/.well-known/jwks.json".to_owned(),
            None,
        ),
        (
            "/.well-known/openid-configuration",
            "/.well-known/openid-configuration".to_owned(),
            None,
        ),
        (
            "/api/admin/v1/audit-logs",
            "/api/admin/v1/audit-logs?perPage=100".to_owned(),
            Some(&admin),
        ),
        (
            "/api/admin/v1/audit-logs/verify",
            "/api/admin/v1/audit-logs/verify".to_owned(),
            Some(&admin),
        ),
        (
            "/api/v1/auth/me/export",
            "/api/v1/auth/me/export".to_owned(),
            Some(&owner),
        ),
        (
            "/api/v1/devices/{deviceId}/settings/status",
            status_path,
            Some(&owner),
        ),
    ];
    for (template, path, user) in checks {
        let response = match user {
            Some(user) => send(&app, Method::GET, &path, user, None).await,
            None => app.get(&path).await,
        };
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let body: serde_json::Value = response.json().await.unwrap();
        let schema =
            &spec["paths"][template]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{template} declares its 200 body");
        let found = mismatches(&spec, schema, &body, "$");
        assert!(
            found.is_empty(),
            "{path}: the answer does not match its schema: {found:#?}\n{body:#}"
        );
    }
    app.stop().await;
}

/// Every request example of the served spec, sent as written to a server where the objects its
/// path names exist (an organization, a group, a device and a user of the caller's; the
/// examples' user id is that user; other ids are unknown): none is refused (400, 413, 415) or
/// fails (5xx). Their schemas are checked by `redocly lint` (no-invalid-media-type-examples,
/// no unknown fields).
#[tokio::test]
async fn every_request_example_of_the_spec_is_accepted_as_a_request() {
    use reqwest::Method;
    use serde_json::{Value, json};
    use steward_tests::{expect_data, send};
    // With the quota plans of the docs' example (`team`).
    let plans = steward_tests::docs::example_plans();
    steward_tests::each_backend(|backend| {
        let plans = plans.clone();
        async move {
            let app = steward_tests::spawn_app_with(backend, move |config| config.plans = plans).await;
            let spec: Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            let tara = app.user("tara@example.com").await;
            let org = app.organization(&root, "ctx", &root).await;
            let group = app.group(&root, "Smith family").await;
            // The examples' user id is Tara, a member of the group.
            app.join(&group, &root, &tara, "member").await;
            let key = app.api_key().await;
            let (device, _) = app.device(&key, &root, "phone-1").await;
            let in_org = |rest: &str| format!("/api/admin/v1/organizations/{org}{rest}");
            let created = |path: String, body: Value| {
                let (app, root) = (&app, &root);
                async move { steward_tests::fleet::post(app, root, &path, body).await }
            };
            let id = |made: Value, key: &str| made[key].as_str().unwrap().to_owned();
            let policy = id(
                created(in_org("/policies"), json!({"name": "Context"})).await,
                "id",
            );
            // In the organization: Tara, a fleet group and an enrolled device.
            created(in_org("/users"), json!({"userId": tara.id, "role": "viewer"})).await;
            let fleet_group = id(
                created(in_org("/groups"), json!({"name": "Field crew"})).await,
                "id",
            );
            let secret = id(created(in_org("/enrollment-tokens"), json!({})).await, "token");
            let (org_device, _, _) = steward_tests::fleet::enrolled(&app, &secret, "field-000").await;
            // The examples' other id names the object its field asks for.
            let other = "01938a5e-7a1b-7c3d-9e4f-5a6b7c8d9e10";
            let fill = |body: &Value| -> String {
                fn walk(value: &mut Value, key: &str, pick: &dyn Fn(&str) -> Option<String>) {
                    match value {
                        Value::Object(map) => {
                            for (key, value) in map.iter_mut() {
                                walk(value, key, pick);
                            }
                        }
                        Value::Array(items) => items.iter_mut().for_each(|item| walk(item, key, pick)),
                        Value::String(text) if text == "01938a5e-7a1b-7c3d-9e4f-5a6b7c8d9e10" => {
                            if let Some(id) = pick(key) {
                                *text = id;
                            }
                        }
                        _ => {}
                    }
                }
                let mut body = body.clone();
                let pick = |key: &str| match key {
                    "policyId" => Some(policy.clone()),
                    "groupId" | "groupIds" => Some(fleet_group.clone()),
                    "deviceIds" => Some(org_device.clone()),
                    _ => None,
                };
                walk(&mut body, "", &pick);
                body.to_string()
                    .replace("01938a5e-7a1b-7c3d-9e4f-5a6b7c8d9e0f", &tara.id.to_string())
            };
            assert!(other.len() == 36);
            // The example switches the IP allowlist on: with the caller's address on it.
            expect_data(
                send(
                    &app,
                    Method::POST,
                    "/api/admin/v1/ip-allowlist",
                    &root,
                    Some(json!({"cidr": "127.0.0.1/32", "name": "loopback"})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
            let mut sent = 0;
            let mut accepted = 0;
            for (template, item) in spec["paths"].as_object().unwrap() {
                for (method, operation) in item.as_object().unwrap() {
                    let Some(content) = operation
                        .pointer("/requestBody/content")
                        .and_then(Value::as_object)
                    else {
                        continue;
                    };
                    let device_here = if template.starts_with("/api/admin/v1/organizations/") {
                        &org_device
                    } else {
                        &device
                    };
                    // An account's admin actions (lock, delete, …) each get an account of their own.
                    let user_here = if template.starts_with("/api/admin/v1/users/{userId}") {
                        app.user(&format!("account{sent}@example.com"))
                            .await
                            .id
                            .to_string()
                    } else {
                        tara.id.to_string()
                    };
                    let path = template
                        .replace("{orgId}", &org)
                        .replace("{groupId}", &group)
                        .replace("{deviceId}", device_here)
                        .replace("{userId}", &user_here)
                        .replace("{policyId}", &policy)
                        .replace("{provider}", "google")
                        .replace("{name}", "helpdesk")
                        .replace(
                            "{key}",
                            if template.contains("setting-definitions") {
                                "app.dark_mode"
                            } else {
                                "device.camera_enabled"
                            },
                        );
                    let path = path
                        .split('/')
                        .map(|segment| {
                            if segment.starts_with('{') {
                                uuid::Uuid::now_v7().to_string()
                            } else {
                                segment.to_owned()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("/");
                    let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                    for (media, described) in content {
                        let example = described
                            .get("example")
                            .unwrap_or_else(|| panic!("{method} {template}: no example for {media}"));
                        let request = app.authed(method.clone(), &path, &root.token);
                        let request = match example {
                            Value::String(text) => {
                                request.header("content-type", media.as_str()).body(text.clone())
                            }
                            body => request
                                .header("content-type", "application/json")
                                .body(fill(body)),
                        };
                        let answer = request.send().await.unwrap();
                        let status = answer.status().as_u16();
                        let text = answer.text().await.unwrap();
                        // A value shown as `…` (a token from a mail, an ID token) stands for one the
                        // reader has: refusing the placeholder itself is the right answer.
                        let placeholders: Vec<&str> = example
                            .as_object()
                            .map(|fields| {
                                fields
                                    .iter()
                                    .filter(|(_, value)| {
                                        value.as_str().is_some_and(|text| text.contains('…'))
                                    })
                                    .map(|(key, _)| key.as_str())
                                    .collect()
                            })
                            .unwrap_or_default();
                        let refused_placeholder = status == 400
                            && serde_json::from_str::<Value>(&text).is_ok_and(|error| {
                                error["error"]["details"].as_array().is_some_and(|details| {
                                    !details.is_empty()
                                        && details.iter().all(|detail| {
                                            detail["field"]
                                                .as_str()
                                                .is_some_and(|field| placeholders.contains(&field))
                                        })
                                })
                            });
                        assert!(
                            refused_placeholder || (!matches!(status, 400 | 413 | 415 | 422) && status < 500),
                            "{backend:?} {method} {template} with its example {example} → {status} {text}"
                        );
                        sent += 1;
                        accepted += usize::from((200..300).contains(&status));
                    }
                }
            }
            assert!(sent >= 76, "{sent} examples");
            // At least half are carried out, not only parsed: the objects they name exist.
            assert!(
                accepted >= 35,
                "{backend:?}: {accepted} of {sent} examples answered 2xx"
            );
            // No example locked the caller out on the way (that would make the rest vacuous).
            let still = send(&app, Method::GET, "/api/admin/v1/users", &root, None).await;
            assert_eq!(still.status(), StatusCode::OK, "{backend:?}");
            app.stop().await;
        }
    })
    .await;
}
