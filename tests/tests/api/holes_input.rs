//! Hostile and sloppy input at the seams: malformed optional bodies, huge page numbers,
//! impossible sync versions, weak validators.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

const SHARING: &str = "location.sharing_enabled";

struct Family {
    parent: TestUser,
    child: TestUser,
    device: String,
    group: String,
}

/// A parent owning a group, a child member with a registered phone whose sharing key the
/// parent has locked.
async fn family(app: &TestApp) -> Family {
    let parent = app.user("parent@example.com").await;
    let child = app.user("child@example.com").await;
    let group = app.group(&parent, "Home").await;
    app.join(&group, &parent, &child, "member").await;
    let key = app.api_key().await;
    let (device, _) = app.device(&key, &child, "kid-phone").await;
    let family = Family {
        parent,
        child,
        device,
        group,
    };
    expect_data(
        send(
            app,
            Method::POST,
            &format!("{}/{SHARING}/lock", settings_path(&family)),
            &family.parent,
            Some(json!({"value": true})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    family
}

fn settings_path(family: &Family) -> String {
    format!("/api/v1/devices/{}/settings", family.device)
}

fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    user: &TestUser,
    body: &'static str,
) -> impl Future<Output = Response> + 'static + use<> {
    let request = app
        .authed(method, path, &user.token)
        .header("content-type", "application/json")
        .body(body);
    async move { request.send().await.unwrap() }
}

async fn sharing(app: &TestApp, family: &Family) -> Value {
    expect_data(
        send(app, Method::GET, &settings_path(family), &family.child, None).await,
        StatusCode::OK,
    )
    .await["settings"][SHARING]
        .clone()
}

#[tokio::test]
async fn a_malformed_optional_body_is_refused_and_changes_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let key_path = format!("{}/{SHARING}", settings_path(&family));
        let asked = expect_data(
            send(
                &app,
                Method::POST,
                &format!("{key_path}/unlock-request"),
                &family.child,
                None,
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let request = asked["id"].as_str().unwrap().to_owned();
        let approve = format!("/api/v1/unlock-requests/{request}/approve");
        let deny = format!("/api/v1/unlock-requests/{request}/deny");

        for (path, body) in [
            (&approve, "{\"durationMinutes\": 5,,,}"),
            (&approve, "{\"durationMinute\": 5}"),
            (&approve, "[5]"),
            (&approve, "{\"durationMinutes\": \"5\"}"),
            (&deny, "{\"note\": \"no\",,}"),
        ] {
            let refused = expect_error(
                raw(&app, Method::POST, path, &family.parent, body).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert!(
                !refused["message"].as_str().unwrap().is_empty(),
                "{backend:?} {body}"
            );
        }
        let wrong_type = app
            .authed(Method::POST, &approve, &family.parent.token)
            .header("content-type", "text/plain")
            .body("{\"durationMinutes\": 5}")
            .send()
            .await
            .unwrap();
        expect_error(
            wrong_type,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
        let untyped = app
            .authed(Method::POST, &approve, &family.parent.token)
            .body("{\"durationMinutes\": 5}")
            .send()
            .await
            .unwrap();
        expect_error(
            untyped,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
        assert_eq!(
            sharing(&app, &family).await["locked"],
            true,
            "{backend:?}: no refused approval unlocked the key"
        );

        // Other optional bodies: lock, unlock request.
        expect_error(
            raw(
                &app,
                Method::POST,
                &format!("{key_path}/lock"),
                &family.parent,
                "{\"value\": false,}",
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(sharing(&app, &family).await["value"], true);

        // An empty body still means the defaults: approved for good.
        let approved = app
            .authed(Method::POST, &approve, &family.parent.token)
            .header("content-type", "application/json")
            .send()
            .await
            .unwrap();
        let approved = expect_data(approved, StatusCode::OK).await;
        assert_eq!(approved["status"], "approved");
        assert!(approved["unlockUntil"].is_null());
        assert_eq!(sharing(&app, &family).await["locked"], false);
        expect_error(
            raw(
                &app,
                Method::POST,
                &format!("{key_path}/unlock-request"),
                &family.child,
                "{\"reason\": }",
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let _ = &family.group;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn huge_page_numbers_are_refused_on_every_list() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let org = app.organization(&root, "acme", &root).await;
        let lists = [
            "/api/v1/groups".to_owned(),
            "/api/admin/v1/organizations".to_owned(),
            "/api/admin/v1/audit-logs".to_owned(),
            format!("/api/admin/v1/organizations/{org}/devices"),
            "/api/v1/auth/sessions".to_owned(),
        ];
        for list in &lists {
            for page in ["4611686018427387904", "18446744073709551615", "1000001"] {
                let refused = expect_error(
                    send(&app, Method::GET, &format!("{list}?page={page}"), &root, None).await,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                )
                .await;
                assert!(
                    refused.to_string().contains("page"),
                    "{backend:?} {list} {page}: {refused}"
                );
            }
            for page in ["0", "-1", "abc"] {
                expect_error(
                    send(&app, Method::GET, &format!("{list}?page={page}"), &root, None).await,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                )
                .await;
            }
            let last = send(
                &app,
                Method::GET,
                &format!("{list}?page=1000000&perPage=100"),
                &root,
                None,
            )
            .await;
            let body: Value = last.json().await.unwrap();
            assert_eq!(body["success"], true, "{backend:?} {list}: {body}");
            assert_eq!(body["data"].as_array().map(Vec::len), Some(0), "{body}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sync_refuses_impossible_versions_and_etags_compare_weakly() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let path = settings_path(&family);
        let current = expect_data(
            send(&app, Method::GET, &path, &family.child, None).await,
            StatusCode::OK,
        )
        .await["version"]
            .as_i64()
            .unwrap();
        let sync = format!("{path}/sync");
        for (body, field) in [
            (json!({"baseVersion": -1}), "baseVersion"),
            (json!({"baseVersion": current + 1}), "baseVersion"),
            (
                json!({"baseVersion": current + 1000, "changes": {SHARING: false}}),
                "baseVersion",
            ),
            (
                json!({"baseVersion": current, "appliedVersion": current + 1}),
                "appliedVersion",
            ),
            (
                json!({"baseVersion": current, "appliedVersion": -5}),
                "appliedVersion",
            ),
        ] {
            let refused = expect_error(
                send(&app, Method::POST, &sync, &family.child, Some(body.clone())).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert!(
                refused.to_string().contains(field),
                "{backend:?} {body}: {refused}"
            );
        }
        let status = expect_data(
            send(&app, Method::GET, &format!("{path}/status"), &family.parent, None).await,
            StatusCode::OK,
        )
        .await;
        assert!(status["appliedVersion"].is_null(), "{backend:?}: {status}");
        let synced = expect_data(
            send(
                &app,
                Method::POST,
                &sync,
                &family.child,
                Some(json!({"baseVersion": current, "appliedVersion": current})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(synced["version"], current);

        // If-None-Match: the weak form of the current tag is a match.
        let first = send(&app, Method::GET, &path, &family.child, None).await;
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        for candidate in [etag.clone(), format!("W/{etag}"), format!("\"nope\", W/{etag}")] {
            let polled = app
                .authed(Method::GET, &path, &family.child.token)
                .header("if-none-match", &candidate)
                .send()
                .await
                .unwrap();
            assert_eq!(
                polled.status(),
                StatusCode::NOT_MODIFIED,
                "{backend:?} {candidate}"
            );
        }
        let stale = app
            .authed(Method::GET, &path, &family.child.token)
            .header("if-none-match", "W/\"0.stale\"")
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), StatusCode::OK);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn nul_characters_and_out_of_range_times_are_refused_alike_on_both_databases() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let family = family(&app).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let org = app.organization(&root, "acme", &root).await;
        let nul = "a\u{0}b";
        let cases = [
            (Method::POST, "/api/v1/auth/me/tokens".to_owned(), json!({"name": nul, "scopes": ["account:read"]}), "name"),
            (Method::PUT, format!("/api/v1/groups/{}", family.group), json!({"description": nul}), "description"),
            (Method::POST, "/api/v1/groups".to_owned(), json!({"name": "x", "description": nul}), "description"),
            (Method::PUT, format!("/api/admin/v1/organizations/{org}"), json!({"description": nul}), "description"),
            (
                Method::POST,
                format!("/api/admin/v1/organizations/{org}/policies"),
                json!({"name": "p", "description": nul, "settings": {}}),
                "description",
            ),
            (
                Method::POST,
                format!("/api/admin/v1/organizations/{org}/enrollment-tokens"),
                json!({"name": "t", "additionalData": {"site": nul}}),
                "additionalData.site",
            ),
            (
                Method::PUT,
                format!("{}/screen_time.bedtime_start", settings_path(&family)),
                json!({"value": nul}),
                "value",
            ),
        ];
        for (method, path, body, field) in cases {
            let user = if path.contains("/groups/") || path.contains("/settings/") {
                &family.parent
            } else {
                &root
            };
            let refused = expect_error(
                send(&app, method.clone(), &path, user, Some(body)).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(refused["details"][0]["field"], field, "{backend:?} {method} {path}: {refused}");
        }
        for query in [
            "/api/admin/v1/audit-logs?action=a%00b",
            "/api/admin/v1/audit-logs/export?format=csv&action=%00",
            &format!("/api/admin/v1/organizations/{org}/devices?q=%00"),
            "/api/admin/v1/audit-logs?from=-200000-01-01T00:00:00Z",
            "/api/admin/v1/audit-logs?to=%2B275760-01-01T00:00:00Z",
            "/api/admin/v1/audit-logs/export?from=-200000-01-01T00:00:00Z",
            &format!("/api/admin/v1/organizations/{org}/devices?lastSeenAfter=-200000-01-01T00:00:00Z"),
        ] {
            expect_error(
                send(&app, Method::GET, query, &root, None).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
        }
        // Imports read their own bodies: a NUL there is refused too, raw in CSV or escaped in JSON.
        for (content_type, body) in [
            ("text/csv", "email,role\na\u{0}@example.com,viewer\n".to_owned()),
            ("application/json", r#"[{"email": "a\u0000@example.com", "role": "viewer"}]"#.to_owned()),
        ] {
            let imported = app
                .authed(Method::POST, &format!("/api/admin/v1/organizations/{org}/users/import?dryRun=true"), &root.token)
                .header("content-type", content_type)
                .body(body)
                .send()
                .await
                .unwrap();
            expect_error(imported, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }
        let far = expect_error(
            send(
                &app,
                Method::POST,
                "/api/v1/auth/me/tokens",
                &root,
                Some(json!({"name": "far", "scopes": ["account:read"], "expiresAt": "+200000-01-01T00:00:00Z"})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert!(far.to_string().contains("expiresAt"), "{backend:?}: {far}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_malformed_id_in_any_path_is_a_bad_request() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let spec: Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
        let mut checked = 0;
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let method = match method.as_str() {
                    "get" => Method::GET,
                    "post" => Method::POST,
                    "put" => Method::PUT,
                    "delete" => Method::DELETE,
                    _ => continue,
                };
                let uuid_params: Vec<String> = operation["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|p| p["in"] == "path" && p["schema"]["format"] == "uuid")
                    .map(|p| p["name"].as_str().unwrap().to_owned())
                    .collect();
                for malformed in &uuid_params {
                    let mut concrete = path.clone();
                    for name in &uuid_params {
                        let value = if name == malformed {
                            "not-a-uuid".to_owned()
                        } else {
                            uuid::Uuid::now_v7().to_string()
                        };
                        concrete = concrete.replace(&format!("{{{name}}}"), &value);
                    }
                    concrete = concrete.replace("{key}", "location.sharing_enabled");
                    let body = operation.get("requestBody").is_some().then(|| json!({}));
                    let answer = send(&app, method.clone(), &concrete, &root, body).await;
                    let status = answer.status();
                    let text = answer.text().await.unwrap();
                    assert_eq!(
                        status,
                        StatusCode::BAD_REQUEST,
                        "{backend:?} {method} {concrete}: {text}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "{checked} operations checked");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn every_seeded_setting_takes_a_good_value_and_refuses_a_bad_one() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ann = app.user("ann@example.com").await;
        let key = app.api_key().await;
        let (device, _) = app.device(&key, &ann, "ann-phone").await;
        let catalog = expect_data(
            send(&app, Method::GET, "/api/v1/setting-definitions", &ann, None).await,
            StatusCode::OK,
        )
        .await;
        let definitions = catalog.as_array().unwrap();
        assert!(definitions.len() >= 17, "the seeded catalog: {catalog}");
        for definition in definitions {
            let key = definition["key"].as_str().unwrap();
            let constraints = &definition["constraints"];
            let (good, bad): (Vec<Value>, Vec<Value>) = match definition["valueType"].as_str().unwrap() {
                "bool" => (vec![json!(true), json!(false)], vec![json!("yes"), json!(1)]),
                "int" => {
                    let (min, max) = (constraints["min"].as_i64(), constraints["max"].as_i64());
                    let (Some(min), Some(max)) = (min, max) else {
                        panic!("{backend:?}: seeded int {key} has a documented range: {definition}");
                    };
                    (
                        vec![json!(min), json!(max)],
                        vec![json!(max + 1), json!(min - 1), json!("5"), json!(1.5)],
                    )
                }
                "enum" => (
                    vec![constraints["allowed"][0].clone()],
                    vec![json!("nope"), json!(3)],
                ),
                "string_set" => (
                    vec![json!(["com.example.app"]), json!([])],
                    vec![json!("com.example.app"), json!([1])],
                ),
                "time" => (
                    vec![json!("06:30"), json!("23:59")],
                    vec![json!("25:99"), json!("soon"), json!("24:00"), json!(630)],
                ),
                other => {
                    panic!("{backend:?}: seeded {key} is {other}: give it a kind that checks its meaning")
                }
            };
            let path = format!("/api/v1/devices/{device}/settings/{key}");
            for value in good {
                expect_data(
                    send(&app, Method::PUT, &path, &ann, Some(json!({"value": value}))).await,
                    StatusCode::OK,
                )
                .await;
            }
            for value in bad {
                let refused = expect_error(
                    send(
                        &app,
                        Method::PUT,
                        &path,
                        &ann,
                        Some(json!({"value": value.clone()})),
                    )
                    .await,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                )
                .await;
                assert!(!refused.to_string().is_empty(), "{backend:?} {key} {value}");
            }
        }
        app.stop().await;
    })
    .await;
}

/// A compressed body is refused as such (415 naming the encoding), not misread as malformed
/// JSON, and creates nothing; `identity` is no encoding.
#[tokio::test]
async fn a_compressed_request_body_is_refused_with_415() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let body =
            json!({"email": "ann@example.com", "password": steward_tests::PASSWORD, "displayName": "Ann"});
        for encoding in ["gzip", "br", "zstd", "deflate", "gzip, identity"] {
            let refused = app
                .client
                .post(app.url("/api/v1/auth/register"))
                .header("content-type", "application/json")
                .header("content-encoding", encoding)
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let error = expect_error(
                refused,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
            )
            .await;
            assert!(
                error["message"].as_str().unwrap().contains("Content-Encoding"),
                "{backend:?}: {error}"
            );
        }
        assert_eq!(app.count_users().await, 0, "{backend:?}: nothing was created");
        let plain = app
            .client
            .post(app.url("/api/v1/auth/register"))
            .header("content-type", "application/json")
            .header("content-encoding", "identity")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(plain.status(), StatusCode::CREATED, "{backend:?}");
        app.stop().await;
    })
    .await;
}
