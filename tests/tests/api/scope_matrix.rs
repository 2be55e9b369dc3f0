//! The personal-access-token scope matrix over every admin route the served spec lists: a
//! system administrator's token reaches an admin route only with the scope the route names
//! (403 naming it otherwise, before anything is looked up or read), a token with exactly that
//! scope gets past the check, and a session is never refused. Organization routes have their
//! own matrix in `holes_access.rs`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, spawn_app};

async fn personal_token(app: &TestApp, user: &TestUser, scopes: &[&str]) -> String {
    let created = expect_data(
        app.authed(Method::POST, "/api/v1/auth/me/tokens", &user.token)
            .json(&json!({"name": "matrix", "scopes": scopes}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    created["secret"].as_str().unwrap().to_owned()
}

/// Every admin operation outside `/organizations/{orgId}`, path ids filled in at random.
async fn admin_operations(app: &TestApp) -> Vec<(Method, String, bool)> {
    let spec: Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
    let mut operations = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.starts_with("/api/admin/v1") || path.starts_with("/api/admin/v1/organizations/{orgId}") {
            continue;
        }
        let mut concrete = path.clone();
        while let Some(start) = concrete.find('{') {
            let end = concrete[start..].find('}').unwrap() + start;
            let filler = if concrete[start..=end] == *"{key}" {
                "matrix.setting".to_owned()
            } else {
                uuid::Uuid::now_v7().to_string()
            };
            concrete.replace_range(start..=end, &filler);
        }
        for (method, operation) in item.as_object().unwrap() {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            operations.push((method, concrete.clone(), operation.get("requestBody").is_some()));
        }
    }
    assert!(
        operations.len() >= 12,
        "the admin routes are in the spec: {operations:?}"
    );
    operations
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: bool) -> (StatusCode, Value) {
    let request = app.authed(method, path, token);
    let request = if body { request.json(&json!({})) } else { request };
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Routes that also serve organization owners and admins, so they ask for no system role: a
/// user who manages nothing is answered as having nothing.
fn for_everyone(path: &str) -> bool {
    [
        "/webhooks",
        "/deliveries",
        "/event-types",
        "/notifications",
        "/me/notification-preferences",
    ]
    .iter()
    .any(|prefix| path.starts_with(&format!("/api/admin/v1{prefix}")))
}

/// Routes with a system view (a system permission) and an organization view (its owners and
/// admins): a token without the scope is refused before anything else, but that is not an
/// admin denial; a user who manages nothing is refused the system view (403).
fn system_or_organization(path: &str) -> bool {
    ["/dashboard", "/statistics"]
        .iter()
        .any(|prefix| path.starts_with(&format!("/api/admin/v1{prefix}")))
}

/// The scope a refusal names: "… lacks the scope `users:read`".
fn named_scope(body: &Value) -> Option<String> {
    let message = body["error"]["message"].as_str()?;
    let start = message.find("lacks the scope `")? + "lacks the scope `".len();
    let end = message[start..].find('`')? + start;
    Some(message[start..end].to_owned())
}

#[tokio::test]
async fn every_admin_route_needs_its_scope_from_a_token_and_never_refuses_a_session() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let unscoped = personal_token(&app, &root, &["account:read"]).await;
        let audit_before = app.audit_actions().await.len();

        // Without the scope: refused before anything is looked up or done.
        let mut needs = Vec::new();
        for (method, path, body) in admin_operations(&app).await {
            let (status, refused) = call(&app, method.clone(), &path, &unscoped, body).await;
            if method == Method::GET
                && (path == "/api/admin/v1/me"
                    || path == "/api/admin/v1/features"
                    || path.starts_with("/api/admin/v1/roles"))
            {
                // Any system role, no scope: the admin API's identity, its feature switches and the role table (a
                // role with a random name is 404).
                let expected = if path.starts_with("/api/admin/v1/roles/") {
                    StatusCode::NOT_FOUND
                } else {
                    StatusCode::OK
                };
                assert_eq!(status, expected, "{backend:?} {method} {path}: {refused}");
                continue;
            }
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{backend:?} {method} {path}: {refused}"
            );
            let scope = named_scope(&refused)
                .unwrap_or_else(|| panic!("{backend:?} {method} {path} names no scope: {refused}"));
            // Reads need a reading scope (`…:read`, or `audit:export` for the export); nothing
            // that changes something may be reached with one.
            // (`POST …/export` is the export as a job: it needs the export's reading scope too.)
            // The configuration export may carry webhook secrets: it needs `config:manage`.
            let reading = scope.ends_with(":read")
                || scope == "audit:export"
                || (path == "/api/admin/v1/config/export" && scope == "config:manage");
            let a_read = method == Method::GET || path.ends_with("/export");
            assert_eq!(a_read, reading, "{backend:?} {method} {path} needs {scope}");
            needs.push((method, path, body, scope));
        }
        assert!(needs.len() >= 11, "{backend:?}: {needs:?}");
        // The refused calls did nothing but leave one `admin.access_denied` entry each.
        let after: Vec<String> = app.audit_actions().await.into_iter().skip(audit_before).collect();
        // (The organization list is open to members for their own organizations, and the jobs
        // to everyone for their own, so they ask for no system permission and their refusals
        // are not admin denials.)
        let admin_only = needs
            .iter()
            .filter(|(method, path, _, _)| {
                let own_organizations = *method == Method::GET && path == "/api/admin/v1/organizations";
                !(own_organizations
                    || path.starts_with("/api/admin/v1/jobs")
                    || for_everyone(path)
                    || system_or_organization(path))
            })
            .count();
        assert_eq!(after.len(), admin_only, "{backend:?}: {after:?}");
        assert!(
            after.iter().all(|action| action == "admin.access_denied"),
            "{backend:?}: {after:?}"
        );

        // With exactly the named scope: past the check.
        for (method, path, body, scope) in needs {
            // A report schedule mails the dashboard's figures and counts of the audit trail:
            // saving one needs their reading scopes too (tested in reports.rs).
            let mut scopes = vec![scope.as_str()];
            if method == Method::POST && path == "/api/admin/v1/report-schedules" {
                scopes.extend(["dashboard:read", "audit:read"]);
            }
            let scoped = personal_token(&app, &root, &scopes).await;
            let (status, answer) = call(&app, method.clone(), &path, &scoped, body).await;
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{backend:?} {method} {path} with {scope}: {status} {answer}"
            );
        }

        // A session is never refused.
        for (method, path, body) in admin_operations(&app).await {
            let (status, answer) = call(&app, method.clone(), &path, &root.token, body).await;
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{backend:?} {method} {path}: {status} {answer}"
            );
        }

        // A user without a system role gets 403 on every admin route but the organization
        // list (which shows them their own) and the jobs (their own: none here; another's job
        // is 404), even with every scope.
        let plain = app.user("plain@example.com").await;
        for (method, path, body) in admin_operations(&app).await {
            let (status, answer) = call(&app, method.clone(), &path, &plain.token, body).await;
            if path == "/api/admin/v1/organizations" && method == Method::GET {
                assert_eq!(status, StatusCode::OK, "{backend:?}: {answer}");
                continue;
            }
            if path == "/api/admin/v1/jobs" {
                assert_eq!(answer["data"], json!([]), "{backend:?}: {answer}");
                continue;
            }
            if for_everyone(&path) {
                // Webhooks and notifications are also organization owners' and admins': a user
                // who manages nothing sees empty lists, 404 for an id, 400 for an empty body.
                let expected = match (method.clone(), body) {
                    (Method::GET, _) if path.ends_with("/webhooks") || path.ends_with("/notifications") => {
                        assert_eq!(answer["data"], json!([]), "{backend:?} {path}: {answer}");
                        StatusCode::OK
                    }
                    (Method::GET, _)
                        if path.ends_with("/event-types") || path.ends_with("/notification-preferences") =>
                    {
                        StatusCode::OK
                    }
                    (Method::POST, _) if path.ends_with("/read-all") => StatusCode::OK,
                    (_, true)
                        if path.ends_with("/webhooks") || path.ends_with("/notification-preferences") =>
                    {
                        StatusCode::BAD_REQUEST
                    }
                    _ => StatusCode::NOT_FOUND,
                };
                assert_eq!(status, expected, "{backend:?} {method} {path}: {answer}");
                continue;
            }
            if path.starts_with("/api/admin/v1/jobs/") {
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{backend:?} {method} {path}: {answer}"
                );
                continue;
            }
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{backend:?} {method} {path}: {answer}"
            );
        }
        app.stop().await;
    })
    .await;
}
