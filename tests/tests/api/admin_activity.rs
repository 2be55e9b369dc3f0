//! An operator's activity (`GET /api/admin/v1/admin-activity`): audit entries name the session
//! they were made in; one session's actions are one group, two sessions two groups, a token's
//! actions a group without a session; a burst of deletions, an unusual hour and a new address
//! are flagged with their rules; the export; who may read it and every refusal.

use base64::Engine;
use chrono::{Duration, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_domain::{Actor, AuditAction, AuditEntry, AuditRecorder, RequestOrigin};
use steward_tests::{PASSWORD, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn operator(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

/// The session an access token belongs to (its `sid` claim).
fn session_of(token: &str) -> String {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["sid"].as_str().unwrap().to_owned()
}

async fn activity(app: &TestApp, reader: &TestUser, query: &str) -> Value {
    expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/admin/v1/admin-activity?{query}"),
            reader,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await
}

fn group<'a>(report: &'a Value, session: Option<&str>) -> &'a Value {
    report["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|group| group["sessionId"].as_str() == session)
        .unwrap_or_else(|| panic!("no group for {session:?}: {report}"))
}

fn count(group: &Value, action: &str) -> u64 {
    group["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["action"] == action)
        .map_or(0, |entry| entry["count"].as_u64().unwrap())
}

/// An operator locks (`lock`) or unlocks (`unlock`) `user` with `token`.
async fn act(app: &TestApp, token: &str, verb: &str, user: &TestUser) {
    let answer = app
        .authed(
            Method::POST,
            &format!("/api/admin/v1/users/{}/{verb}", user.id),
            token,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "{}",
        answer.text().await.unwrap()
    );
}

/// Waits for the audit entries the requests wrote (SQLite groups small writes): at least
/// `total` within ten seconds.
async fn settle(app: &TestApp, reader: &TestUser, admin: &TestUser, total: u64) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let report = activity(app, reader, &format!("adminId={}", admin.id)).await;
        if report["total"].as_u64().unwrap() >= total {
            return report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {total} entries after 10 s: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn one_sessions_actions_are_one_group_and_two_sessions_are_two() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let auditor = operator(&app, "auditor@example.com", "auditor").await;
        let target = app.user("target@example.com").await;
        let first = root.token.clone();
        // A second session: a sign-in of its own.
        let signed_in: Value = app
            .login("root@example.com", PASSWORD)
            .await
            .json()
            .await
            .unwrap();
        let second = signed_in["data"]["accessToken"].as_str().unwrap().to_owned();
        let (first_session, second_session) = (session_of(&first), session_of(&second));
        assert_ne!(first_session, second_session);
        // A personal access token: no session.
        let created = expect_data(
            app.authed(Method::POST, "/api/v1/auth/me/tokens", &first)
                .json(&json!({"name": "ops", "scopes": ["users:lock", "users:unlock"]}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        let pat = created["secret"].as_str().unwrap().to_owned();

        act(&app, &first, "lock", &target).await;
        act(&app, &first, "unlock", &target).await;
        act(&app, &first, "lock", &target).await;
        act(&app, &second, "unlock", &target).await;
        act(&app, &pat, "lock", &target).await;

        let report = settle(&app, &auditor, &root, 8).await;
        let one = group(&report, Some(&first_session));
        let two = group(&report, Some(&second_session));
        let none = group(&report, None);
        let locked = "admin.user_locked";
        let unlocked = "admin.user_unlocked";
        assert_eq!((count(one, locked), count(one, unlocked)), (2, 1), "{one}");
        assert_eq!((count(two, locked), count(two, unlocked)), (0, 1), "{two}");
        assert_eq!(count(none, locked), 1, "{none}");
        // Each session's sign-in opens its group.
        assert_eq!(count(two, "auth.login_succeeded"), 1, "{two}");
        assert!(one["total"].as_u64().unwrap() >= 3, "{one}");
        assert_eq!(two["total"], 2, "{two}");
        assert_eq!(one["ipAddresses"], json!(["127.0.0.1"]));
        assert!(one["firstAt"].as_str().unwrap() <= one["lastAt"].as_str().unwrap());
        // Groups and days add up to the total.
        let total = report["total"].as_u64().unwrap();
        let grouped: u64 = report["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["total"].as_u64().unwrap())
            .sum();
        let daily: u64 = report["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["total"].as_u64().unwrap())
            .sum();
        assert_eq!((grouped, daily), (total, total), "{report}");
        assert_eq!(report["adminId"], root.id.to_string());

        // The audit trail names each entry's session too.
        let entries = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/audit-logs?actorId={}&action={unlocked}", root.id),
                &auditor,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let mut sessions: Vec<&str> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["sessionId"].as_str().unwrap())
            .collect();
        sessions.sort_unstable();
        let mut expected = vec![first_session.as_str(), second_session.as_str()];
        expected.sort_unstable();
        assert_eq!(sessions, expected);
        // Entries with sessions seal into an intact chain.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let chain = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/audit-logs/verify",
                &auditor,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(chain["intact"], true, "{chain}");
        assert!(chain["sealed"].as_u64().unwrap() >= total, "{chain}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_burst_of_deletions_an_unusual_hour_and_a_new_address_are_flagged() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let auditor = operator(&app, "auditor@example.com", "auditor").await;
        // Usual habits: 25 entries ten days ago, twelve hours away from now, from another
        // address.
        let now = Utc::now();
        let usual = now - Duration::days(10) + Duration::hours(12);
        for i in 0..25 {
            let mut entry = AuditEntry::new(
                Actor::user(root.id),
                AuditAction::known("admin.user_locked"),
                "user",
            )
            .origin(RequestOrigin {
                ip_address: Some("198.51.100.1".into()),
                ..RequestOrigin::default()
            });
            entry.occurred_at = usual + Duration::seconds(i);
            app.db.record(&entry).await.unwrap();
        }
        // Twelve accounts deleted within a minute.
        let mut victims = Vec::new();
        for i in 0..12 {
            victims.push(app.user(&format!("victim{i}@example.com")).await);
        }
        for victim in &victims {
            let answer = send(
                &app,
                Method::DELETE,
                &format!("/api/admin/v1/users/{}", victim.id),
                &root,
                None,
            )
            .await;
            assert!(answer.status().is_success(), "{}", answer.status());
        }
        let report = settle(&app, &auditor, &root, 13).await;
        let flags = report["flags"].as_array().unwrap();
        let flag = |rule: &str| {
            flags
                .iter()
                .find(|flag| flag["rule"] == rule)
                .unwrap_or_else(|| panic!("no {rule} flag: {report}"))
        };
        let burst = flag("deletion_burst");
        assert_eq!(burst["count"], 12, "{burst}");
        assert_eq!(
            burst["sessionId"].as_str(),
            Some(session_of(&root.token).as_str())
        );
        assert!(
            burst["description"]
                .as_str()
                .unwrap()
                .contains("10 or more deletions"),
            "{burst}"
        );
        let address = flag("new_ip");
        assert_eq!(address["subject"], "127.0.0.1");
        // Every deletion fell in an hour the operator is not usually active (one flag per hour:
        // two if the deletions crossed an hour).
        let unusual: Vec<&Value> = flags
            .iter()
            .filter(|flag| flag["rule"] == "unusual_hour")
            .collect();
        assert!(!unusual.is_empty(), "{report}");
        for hour in &unusual {
            assert!(hour["subject"].as_str().unwrap().ends_with(":00"), "{hour}");
            assert_ne!(hour["subject"], format!("{:02}:00", usual.hour()), "{hour}");
        }
        let in_unusual_hours: u64 = unusual.iter().map(|flag| flag["count"].as_u64().unwrap()).sum();
        assert!(in_unusual_hours >= 12, "{report}");
        assert!(
            !flags.iter().any(|flag| flag["subject"] == "198.51.100.1"),
            "the usual address is not new: {report}"
        );
        // The usual habits are outside the window: not counted.
        assert!(report["total"].as_u64().unwrap() < 25, "{report}");

        // An operator with no history raises no hour or address flags.
        let other = operator(&app, "other@example.com", "super_admin").await;
        let target = app.user("target@example.com").await;
        act(&app, &other.token, "lock", &target).await;
        let report = settle(&app, &auditor, &other, 2).await;
        assert_eq!(report["flags"], json!([]), "{report}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_activity_exports_and_every_refusal_is_answered() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let auditor = operator(&app, "auditor@example.com", "auditor").await;
        let support = operator(&app, "support@example.com", "support").await;
        let plain = app.user("plain@example.com").await;
        let target = app.user("target@example.com").await;
        act(&app, &root.token, "lock", &target).await;
        settle(&app, &auditor, &root, 2).await;

        let path = format!(
            "/api/admin/v1/admin-activity/export?adminId={}&format=csv",
            root.id
        );
        let answer = send(&app, Method::GET, &path, &auditor, None).await;
        assert_eq!(answer.status(), StatusCode::OK);
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert_eq!(
            answer.headers()["content-disposition"].to_str().unwrap(),
            format!("attachment; filename=\"admin-activity-{}.csv\"", root.id)
        );
        let text = answer.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            [
                "section",
                "sessionId",
                "from",
                "to",
                "action",
                "count",
                "ipAddresses",
                "userAgent",
                "rule",
                "subject",
                "note"
            ]
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let session = session_of(&root.token);
        assert!(
            rows.iter().any(|row| &row[0] == "session"
                && row[1] == session
                && &row[4] == "admin.user_locked"
                && &row[5] == "1"),
            "{text}"
        );
        assert!(
            rows.iter()
                .any(|row| &row[0] == "day" && &row[4] == "admin.user_locked"),
            "{text}"
        );
        let path = format!("/api/admin/v1/admin-activity/export?adminId={}", root.id);
        let json: Value = send(&app, Method::GET, &path, &auditor, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(json["adminId"], root.id.to_string(), "{json}");

        // Who may read it.
        let read = format!("/api/admin/v1/admin-activity?adminId={}", root.id);
        for refused in [&support, &plain] {
            for path in [
                read.clone(),
                format!("/api/admin/v1/admin-activity/export?adminId={}", root.id),
            ] {
                expect_error(
                    send(&app, Method::GET, &path, refused, None).await,
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                )
                .await;
            }
        }
        assert_eq!(app.get(&read).await.status(), StatusCode::UNAUTHORIZED);
        // A token needs `audit:read`.
        let token = |scopes: Value| {
            let request = app
                .authed(Method::POST, "/api/v1/auth/me/tokens", &auditor.token)
                .json(&json!({"name": "t", "scopes": scopes}));
            async move {
                expect_data(request.send().await.unwrap(), StatusCode::CREATED).await["secret"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let reading = token(json!(["audit:read"])).await;
        assert_eq!(
            app.authed(Method::GET, &read, &reading)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::OK
        );
        let other = token(json!(["users:read"])).await;
        assert_eq!(
            app.authed(Method::GET, &read, &other)
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );

        // Refusals of the question, each naming its parameter.
        let now = Utc::now();
        let stamp = |time: chrono::DateTime<Utc>| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for (query, field) in [
            (String::new(), "adminId"),
            (
                format!(
                    "adminId={}&from={}&to={}",
                    root.id,
                    stamp(now),
                    stamp(now - Duration::hours(1))
                ),
                "from",
            ),
            (
                format!(
                    "adminId={}&from={}&to={}",
                    root.id,
                    stamp(now - Duration::days(93)),
                    stamp(now)
                ),
                "from",
            ),
            (
                format!("adminId={}&to={}", root.id, stamp(now + Duration::days(3))),
                "to",
            ),
            (
                format!(
                    "adminId={}&from=1900-01-01T00:00:00Z&to=1900-01-02T00:00:00Z",
                    root.id
                ),
                "from",
            ),
        ] {
            let error = expect_error(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/admin-activity?{query}"),
                    &auditor,
                    None,
                )
                .await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(error["details"][0]["field"], field, "{query}: {error}");
        }
        for query in ["adminId=not-a-uuid", "adminId=%00", "unknown=1"] {
            expect_error(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/admin-activity?{query}"),
                    &auditor,
                    None,
                )
                .await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
        }
        let error = expect_error(
            send(
                &app,
                Method::GET,
                &format!(
                    "/api/admin/v1/admin-activity/export?adminId={}&format=xml",
                    root.id
                ),
                &auditor,
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(error["details"][0]["field"], "format");
        // An operator who did nothing: an empty timeline, not an error.
        let nobody = activity(&app, &auditor, &format!("adminId={}", uuid::Uuid::now_v7())).await;
        assert_eq!(
            (nobody["total"].as_u64(), nobody["sessions"].clone()),
            (Some(0), json!([]))
        );
        app.stop().await;
    })
    .await;
}
