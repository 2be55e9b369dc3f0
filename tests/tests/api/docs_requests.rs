//! Every block of request lines in the docs (`METHOD /path {body}` with, where shown,
//! `→ status {answer}`) is sent as written to a fresh server, in the block's order: a shown
//! status must be the answer's, a shown answer must match it (`…` matches anything), and a
//! line without either must at least be accepted as a request (not 400, 413, 415, 422 or 5xx).
//! Path placeholders name real objects made for the block: `{id}` after `users` is a user,
//! after `groups` a group, and so on; the example user id `01938a5e-7a1b-7c3d-9e4f-5a6b7c8d9e0f`
//! in a body or answer is the block's user (`…9e10` stays a user that does not exist).
//! A request whose body holds a `…` value (an ID token, say) is checked for its form only, and
//! so are the block's later lines (they build on what it could not do).

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::docs::{self, Block};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, send, spawn_app_with};

/// Blocks of request lines that another test checks, because they need what a line cannot
/// say (headers, a file to upload). The inventory test holds those tests to account.
pub const CHECKED_ELSEWHERE: &[(&str, &str)] = &[
    ("docs/devices.md", "POST /api/v1/devices/register"),
    ("docs/events.md", "POST /api/v1/devices/{deviceId}/events"),
    ("docs/jobs.md", "devices/import?async=true"),
    (
        "docs/operations.md",
        "POST /api/admin/v1/config/import?dryRun=true&onConflict=skip",
    ),
];

/// Answers shown in a block of their own: (file, a text only that block holds, a text of the
/// request line it answers). The answer is matched like one shown on the line.
pub const ANSWERS: &[(&str, &str, &str)] = &[
    (
        "docs/admin-api.md",
        "{\"dryRun\": true, \"rows\": 2",
        "/api/admin/v1/users/import?dryRun=true",
    ),
    ("docs/admin-api.md", "{\"results\": [", "\"action\": \"lock\""),
];

/// The example user id of the docs (see the module's comment).
const EXAMPLE_USER: &str = "01938a5e-7a1b-7c3d-9e4f-5a6b7c8d9e0f";

#[derive(Debug, Clone)]
enum Body {
    Json(Value),
    Csv(String),
}

#[derive(Debug, Clone)]
struct Request {
    place: String,
    /// The request line as written.
    line: String,
    method: Method,
    path: String,
    body: Option<Body>,
    /// The text after `→`, continuation lines included.
    answer: Option<String>,
}

fn method(word: &str) -> Option<Method> {
    match word {
        "GET" => Some(Method::GET),
        "POST" => Some(Method::POST),
        "PUT" => Some(Method::PUT),
        "PATCH" => Some(Method::PATCH),
        "DELETE" => Some(Method::DELETE),
        _ => None,
    }
}

/// The request lines of a block, or `None` when it is not a block of request lines.
fn requests(block: &Block) -> Option<Vec<Request>> {
    let mut found: Vec<Request> = Vec::new();
    let mut csv = false;
    for (offset, line) in block.text.lines().enumerate() {
        let place = format!("{}:{}", block.file, block.line + 1 + offset);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let mut words = trimmed.split_whitespace();
        if let (Some(method), Some(path)) = (words.next().and_then(method), words.next())
            && path.starts_with('/')
        {
            let rest = trimmed[trimmed.find(path)? + path.len()..].trim_start();
            let mut body = None;
            let mut after = rest;
            if rest.starts_with('{') {
                let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
                let value = stream
                    .next()?
                    .unwrap_or_else(|error| panic!("{place}: the body is not JSON: {error}"));
                after = &rest[stream.byte_offset()..];
                body = Some(Body::Json(value));
            }
            csv = after.contains("Content-Type: text/csv");
            let answer = after.split_once('→').map(|(_, answer)| answer.trim().to_owned());
            found.push(Request {
                place,
                line: trimmed.to_owned(),
                method,
                path: path.to_owned(),
                body,
                answer,
            });
            continue;
        }
        let last = found.last_mut()?;
        if let Some(answer) = trimmed.strip_prefix('→') {
            last.answer = Some(answer.trim().to_owned());
        } else if let Some(answer) = &mut last.answer {
            answer.push('\n');
            answer.push_str(trimmed);
        } else if trimmed.starts_with('{') && last.body.is_none() {
            let value = serde_json::from_str(trimmed)
                .unwrap_or_else(|error| panic!("{place}: the body is not JSON: {error}"));
            last.body = Some(Body::Json(value));
        } else if csv {
            let text = match last.body.take() {
                Some(Body::Csv(text)) => format!("{text}{trimmed}\n"),
                _ => format!("{trimmed}\n"),
            };
            last.body = Some(Body::Csv(text));
        } else {
            return None;
        }
    }
    (!found.is_empty()).then_some(found)
}

/// The blocks of request lines the generic run covers.
pub fn request_blocks() -> Vec<(Block, usize)> {
    docs::blocks()
        .into_iter()
        .filter(|block| {
            !CHECKED_ELSEWHERE
                .iter()
                .any(|(file, needle)| block.file == *file && block.text.contains(needle))
        })
        .filter_map(|block| requests(&block).map(|found| (block, found.len())))
        .collect()
}

/// The objects a block's placeholders name, made when first asked for.
struct Objects<'a> {
    app: &'a TestApp,
    root: &'a TestUser,
    serial: usize,
    made: HashMap<&'static str, String>,
    target: Option<(TestUser, String)>,
}

impl Objects<'_> {
    async fn target(&mut self) -> TestUser {
        if self.target.is_none() {
            let email = format!("tara.smith{}@example.com", self.serial);
            let user = self.app.user(&email).await;
            self.target = Some((user, email));
        }
        self.target.as_ref().unwrap().0.clone()
    }

    async fn get(&mut self, kind: &'static str) -> String {
        if let Some(id) = self.made.get(kind) {
            return id.clone();
        }
        let (app, root) = (self.app, self.root);
        let id = match kind {
            "user" => self.target().await.id.to_string(),
            "organization" => {
                let target = self.target().await;
                app.organization(root, &format!("org-{}", self.serial), &target)
                    .await
            }
            // The caller's, with the block's user a member (who may take it over).
            "group" => {
                let target = self.target().await;
                let group = app.group(root, "Smith family").await;
                app.join(&group, root, &target, "member").await;
                group
            }
            "api-key" => created(app, root, "/api/admin/v1/api-keys", json!({"name": "Docs"})).await,
            "ip-allowlist" => {
                // The caller's own address first, so that enabling the list locks nobody out.
                created(
                    app,
                    root,
                    "/api/admin/v1/ip-allowlist",
                    json!({"cidr": "127.0.0.1/32", "name": "loopback"}),
                )
                .await;
                created(
                    app,
                    root,
                    "/api/admin/v1/ip-allowlist",
                    json!({"cidr": "198.51.100.0/24", "name": "branch"}),
                )
                .await
            }
            "bypass-token" => {
                created(
                    app,
                    root,
                    "/api/admin/v1/ip-allowlist/bypass-tokens",
                    json!({"reason": "docs", "ttlHours": 1}),
                )
                .await
            }
            "personal-token" => {
                created(
                    app,
                    root,
                    "/api/v1/auth/me/tokens",
                    json!({"name": "docs", "scopes": ["account:read"]}),
                )
                .await
            }
            "session" => {
                // Three sessions: the block revokes one, then "the rest" (two).
                let (target, email) = {
                    self.target().await;
                    self.target.clone().unwrap()
                };
                for _ in 0..2 {
                    expect_data(app.login(&email, steward_tests::PASSWORD).await, StatusCode::OK).await;
                }
                let sessions = expect_data(
                    send(
                        app,
                        Method::GET,
                        &format!("/api/admin/v1/users/{}/sessions", target.id),
                        root,
                        None,
                    )
                    .await,
                    StatusCode::OK,
                )
                .await;
                sessions[0]["id"].as_str().unwrap().to_owned()
            }
            other => panic!("no object of kind {other}"),
        };
        self.made.insert(kind, id.clone());
        id
    }

    /// The path with its placeholders (and `…` query values) replaced.
    async fn fill(&mut self, place: &str, path: &str) -> String {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut filled = Vec::new();
        let mut previous = "";
        for segment in path.split('/') {
            let value = match segment {
                "{userId}" => self.get("user").await,
                "{orgId}" => self.get("organization").await,
                "{keyId}" => self.get("api-key").await,
                "{sessionId}" => self.get("session").await,
                "{provider}" => "google".to_owned(),
                "{role}" => "support".to_owned(),
                "{id}" => {
                    let kind = match previous {
                        "users" => "user",
                        "groups" => "group",
                        "organizations" => "organization",
                        "api-keys" => "api-key",
                        "ip-allowlist" => "ip-allowlist",
                        "bypass-tokens" => "bypass-token",
                        "tokens" => "personal-token",
                        other => panic!("{place}: no object for {{id}} after {other}"),
                    };
                    self.get(kind).await
                }
                other if other.starts_with('{') => panic!("{place}: unknown placeholder {other}"),
                other => other.to_owned(),
            };
            previous = segment;
            filled.push(value);
        }
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = match (name, value) {
                ("organizationId", "…") => self.get("organization").await,
                ("ownerId" | "adminId", "…") => self.get("user").await,
                (_, "…") => panic!("{place}: no value for {name}=…"),
                _ => value.to_owned(),
            };
            pairs.push(format!("{name}={value}"));
        }
        let path = filled.join("/");
        if pairs.is_empty() {
            path
        } else {
            format!("{path}?{}", pairs.join("&"))
        }
    }
}

async fn created(app: &TestApp, root: &TestUser, path: &str, body: Value) -> String {
    let made = expect_data(
        send(app, Method::POST, path, root, Some(body)).await,
        StatusCode::CREATED,
    )
    .await;
    made["id"]
        .as_str()
        .or_else(|| made["apiKey"]["id"].as_str())
        .or_else(|| made["token"]["id"].as_str())
        .unwrap_or_else(|| panic!("{path}: no id in {made}"))
        .to_owned()
}

/// The status and example answer of `→ …` text (`→ 204; 404 when …` shows 204 and no body,
/// `→ the live sessions` neither).
fn shown_answer(place: &str, text: &str) -> (Option<u16>, Option<Value>) {
    let digits: String = text.chars().take_while(char::is_ascii_digit).collect();
    let status = (digits.len() == 3).then(|| digits.parse().unwrap());
    let json = text.find('{').map(|at| {
        docs::example_json(&text[at..])
            .unwrap_or_else(|error| panic!("{place}: the answer is not JSON: {error}"))
    });
    (status, json)
}

/// Whether the served spec has `method` on a path of this shape (`{…}` segments match any).
fn in_spec(spec: &Value, method: &Method, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    let wanted: Vec<&str> = path.split('/').collect();
    spec["paths"].as_object().unwrap().iter().any(|(template, item)| {
        let have: Vec<&str> = template.split('/').collect();
        have.len() == wanted.len()
            && have
                .iter()
                .zip(&wanted)
                .all(|(a, b)| a == b || a.starts_with('{') || b.starts_with('{'))
            && item.get(method.as_str().to_lowercase()).is_some()
    })
}

/// Runs a block; answers each request line with what was served (`data` of the envelope).
async fn run_block(
    app: &TestApp,
    root: &TestUser,
    spec: &Value,
    block: &Block,
    serial: usize,
) -> Vec<(String, Value)> {
    let mut served_answers = Vec::new();
    let mut objects = Objects {
        app,
        root,
        serial,
        made: HashMap::new(),
        target: None,
    };
    let mut placeholders = false;
    for request in requests(block).unwrap() {
        assert!(
            in_spec(spec, &request.method, &request.path),
            "{}: {} {} is not an operation of the served spec",
            request.place,
            request.method,
            request.path
        );
        let path = objects.fill(&request.place, &request.path).await;
        let mut builder = app.authed(request.method.clone(), &path, &root.token);
        placeholders |= matches!(&request.body, Some(Body::Json(body)) if body.to_string().contains('…'));
        builder = match &request.body {
            Some(Body::Json(body)) if body.to_string().contains(EXAMPLE_USER) => {
                let user = objects.get("user").await;
                let body: Value =
                    serde_json::from_str(&body.to_string().replace(EXAMPLE_USER, &user)).unwrap();
                builder.json(&body)
            }
            Some(Body::Json(body)) => builder.json(body),
            Some(Body::Csv(text)) => builder.header("content-type", "text/csv").body(text.clone()),
            None => builder,
        };
        let answer = builder.send().await.unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        let what = format!("{}: {} {path} → {status} {text}", request.place, request.method);
        let (shown_status, shown_json) = match &request.answer {
            Some(_) if placeholders => (None, None),
            Some(shown) => shown_answer(&request.place, shown),
            None => (None, None),
        };
        let served: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        served_answers.push((request.line.clone(), served["data"].clone()));
        match shown_status {
            Some(shown) => assert_eq!(status, shown, "{what}"),
            None if shown_json.is_some() => assert!((200..300).contains(&status), "{what}"),
            None => assert!(
                !matches!(status, 400 | 405 | 413 | 415 | 422) && status < 500,
                "the request is refused for its form: {what}"
            ),
        }
        if let Some(shown) = shown_json {
            // An example with the envelope is matched against the envelope, one without it
            // against `data`.
            let served = if shown.get("success").is_some() {
                served
            } else {
                served["data"].clone()
            };
            if let Err(difference) = docs::matches(&shown, &served) {
                panic!("{what}\nthe docs show another answer: {difference}");
            }
        }
    }
    let user = objects.made.get("user").cloned();
    served_answers
        .into_iter()
        .map(|(line, served)| {
            let text = served.to_string();
            let text = match &user {
                Some(user) => text.replace(user.as_str(), EXAMPLE_USER),
                None => text,
            };
            (line, serde_json::from_str(&text).unwrap())
        })
        .collect()
}

#[test]
fn the_request_blocks_are_read_as_requests() {
    let blocks = request_blocks();
    let lines: usize = blocks.iter().map(|(_, count)| count).sum();
    assert!(
        blocks.len() >= 20 && lines >= 50,
        "{} blocks, {lines} lines",
        blocks.len()
    );
}

#[tokio::test]
async fn every_request_block_of_the_docs_runs_as_written() {
    let blocks: Vec<Block> = request_blocks().into_iter().map(|(block, _)| block).collect();
    // The server has the quota plans of docs/configuration.md's example (`team`, which the
    // organizations guide sets).
    let plans = docs::example_plans();
    each_backend(|backend| {
        let (blocks, plans) = (blocks.clone(), plans.clone());
        async move {
            let app = spawn_app_with(backend, move |config| config.plans = plans).await;
            let root = app.user("root@example.com").await;
            app.grant(root.id, "super_admin").await;
            // The docs' example organization.
            app.organization(&root, "acme", &root).await;
            let spec: Value = app.get("/api-docs/openapi.json").await.json().await.unwrap();
            let mut served = Vec::new();
            for (serial, block) in blocks.iter().enumerate() {
                served.extend(run_block(&app, &root, &spec, block, serial).await);
                // A block may switch the IP allowlist on; the next starts without it.
                let _ = send(
                    &app,
                    Method::PUT,
                    "/api/admin/v1/ip-allowlist/settings",
                    &root,
                    Some(json!({"enabled": false})),
                )
                .await;
            }
            for (file, needle, line) in ANSWERS {
                let block = docs::block(file, needle);
                let shown = docs::example_json(&block.text)
                    .unwrap_or_else(|error| panic!("{}: {error}", block.place()));
                let answer = &served
                    .iter()
                    .find(|(written, _)| written.contains(line))
                    .unwrap_or_else(|| panic!("{}: no request line holds {line:?}", block.place()))
                    .1;
                if let Err(difference) = docs::matches(&shown, answer) {
                    panic!(
                        "{backend:?} {}: the answer to {line:?} is another: {difference}\n{answer}",
                        block.place()
                    );
                }
            }
            app.stop().await;
        }
    })
    .await;
}
