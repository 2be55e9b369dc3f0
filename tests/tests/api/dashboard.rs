//! The operators' dashboard and usage statistics: every figure equals what the test did (the
//! whole system's and one organization's), who may read which view (404 for outsiders, 403 for
//! members without the right, a token needs `dashboard:read`), the ten-second cache, and the
//! statistics' buckets and refusals.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::fleet::{enrolled, organization, post, sync, token};
use steward_tests::{PASSWORD, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn read(app: &TestApp, user: &TestUser, path: &str) -> Value {
    expect_data(send(app, Method::GET, path, user, None).await, StatusCode::OK).await
}

async fn status(app: &TestApp, user: &TestUser, path: &str) -> StatusCode {
    send(app, Method::GET, path, user, None).await.status()
}

async fn operator(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

/// Signs in `count` times; each answers 200.
async fn sign_in(app: &TestApp, email: &str, count: usize) {
    for _ in 0..count {
        assert_eq!(app.login(email, PASSWORD).await.status(), StatusCode::OK);
    }
}

async fn fail_sign_in(app: &TestApp, email: &str, count: usize) {
    for _ in 0..count {
        assert_eq!(
            app.login(email, "not the password 123").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
}

fn hourly_sum(dashboard: &Value, field: &str) -> u64 {
    dashboard["signIns"]["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hour| hour[field].as_u64().unwrap())
        .sum()
}

#[tokio::test]
async fn dashboard_figures_equal_what_was_done_for_the_system_and_for_an_organization() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        // Registrations: root and owner (organization), then four more. Each registration
        // opens a session and counts as a sign-in.
        let org = organization(&app, "dash").await;
        let auditor = operator(&app, "auditor@example.com", "auditor").await;
        let member = app.user("member@example.com").await;
        let viewer = app.user("viewer@example.com").await;
        let loner = app.user("loner@example.com").await;
        let registered = 6;
        for (user, role) in [(&member, "admin"), (&viewer, "viewer")] {
            post(
                &app,
                &org.owner,
                &org.path("/users"),
                json!({"userId": user.id, "role": role}),
            )
            .await;
        }
        // Sign-ins: three by the member, one by the loner; failures: two against the member,
        // one against the loner, one against an unknown address; then five against the viewer,
        // which locks that address once.
        sign_in(&app, "member@example.com", 3).await;
        sign_in(&app, "loner@example.com", 1).await;
        fail_sign_in(&app, "member@example.com", 2).await;
        fail_sign_in(&app, "loner@example.com", 1).await;
        fail_sign_in(&app, "nobody@example.com", 1).await;
        fail_sign_in(&app, "viewer@example.com", 5).await;
        // The loner signs out of one session; an operator locks them; the member's address is
        // verified.
        let logout = app
            .authed(Method::POST, "/api/v1/auth/logout", &loner.token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert!(logout.status().is_success(), "{}", logout.status());
        let locked = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/users/{}/lock", loner.id),
            &org.root,
            Some(json!({})),
        )
        .await;
        assert!(locked.status().is_success(), "{}", locked.status());
        let verified = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/users/{}/verify-email", member.id),
            &org.root,
            None,
        )
        .await;
        assert!(verified.status().is_success(), "{}", verified.status());

        // Devices: three enrolled into the organization (android), one suspended, one synced
        // to its settings version; one personal device without a platform.
        let (_, secret) = token(&app, &org, json!({})).await;
        let (van1, van1_token, _) = enrolled(&app, &secret, "van-1").await;
        let (van2, _, _) = enrolled(&app, &secret, "van-2").await;
        enrolled(&app, &secret, "van-3").await;
        let (van4, _, _) = enrolled(&app, &secret, "van-4").await;
        let retired = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{van4}/retire")),
            &org.owner,
            Some(json!({})),
        )
        .await;
        assert!(retired.status().is_success(), "{}", retired.status());
        let synced = expect_data(
            sync(&app, &van1, &van1_token, json!({"baseVersion": 0})).await,
            StatusCode::OK,
        )
        .await;
        let version = synced["version"].as_i64().unwrap();
        expect_data(
            sync(
                &app,
                &van1,
                &van1_token,
                json!({"baseVersion": version, "appliedVersion": version}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let suspended = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{van2}/suspend")),
            &org.owner,
            Some(json!({})),
        )
        .await;
        assert!(suspended.status().is_success(), "{}", suspended.status());
        let key = app.api_key().await;
        app.device(&key, &member, "phone-1").await;
        // Groups: one personal, one of the organization.
        app.group(&member, "Family").await;
        post(&app, &org.owner, &org.path("/groups"), json!({"name": "Drivers"})).await;
        // An account an operator creates (invited: never signed in, not verified).
        let created = send(
            &app,
            Method::POST,
            "/api/admin/v1/users",
            &org.root,
            Some(json!({"email": "hire@example.com", "displayName": "New Hire"})),
        )
        .await;
        expect_data(created, StatusCode::CREATED).await;
        // Webhooks: one of the system (turned off), one of the organization; neither listens to
        // anything this test does.
        let hook = |by: &TestUser, organization: Option<&str>| {
            let mut body = json!({"url": "http://127.0.0.1:9/hook", "events": ["organization.deleted"]});
            if let Some(organization) = organization {
                body["organizationId"] = json!(organization);
            }
            send(&app, Method::POST, "/api/admin/v1/webhooks", by, Some(body))
        };
        let system_hook = expect_data(hook(&org.root, None).await, StatusCode::CREATED).await;
        expect_data(hook(&org.owner, Some(&org.id)).await, StatusCode::CREATED).await;
        let off = send(
            &app,
            Method::PATCH,
            &format!("/api/admin/v1/webhooks/{}", system_hook["id"].as_str().unwrap()),
            &org.root,
            Some(json!({"enabled": false})),
        )
        .await;
        expect_data(off, StatusCode::OK).await;
        let organizations = send(
            &app,
            Method::GET,
            "/api/admin/v1/organizations?perPage=100",
            &org.root,
            None,
        )
        .await;
        let organizations: Value = organizations.json().await.unwrap();
        let organizations = organizations["meta"]["total"]
            .as_u64()
            .or_else(|| organizations["data"].as_array().map(|all| all.len() as u64))
            .unwrap();

        let system = read(&app, &auditor, "/api/admin/v1/dashboard").await;
        assert_eq!(system["organizationId"], Value::Null);
        assert_eq!(system["users"]["total"], registered + 1, "{system}");
        for window in ["active24h", "active7d", "active30d"] {
            assert_eq!(system["users"][window], registered, "{window}");
        }
        assert_eq!(system["users"]["locked"], 1);
        assert_eq!(system["users"]["unverified"], registered);
        // A session per registration and per sign-in, one signed out, the loner's other one
        // revoked by the lock.
        let live = (registered + 4 - 2) as u64;
        assert_eq!(system["liveSessions"], live, "{system}");
        assert_eq!(system["signIns"]["succeeded"], registered + 4);
        assert_eq!(system["signIns"]["failed"], 9);
        assert_eq!(system["signIns"]["lockouts"], 1);
        assert_eq!(system["signIns"]["hourly"].as_array().unwrap().len(), 24);
        for field in ["succeeded", "failed", "lockouts"] {
            assert_eq!(
                Some(hourly_sum(&system, field)),
                system["signIns"][field].as_u64()
            );
        }
        assert_eq!(system["devices"]["total"], 5);
        assert_eq!(
            system["devices"]["byStatus"],
            json!({"active": 3, "suspended": 1, "retired": 1})
        );
        assert_eq!(
            system["devices"]["byPlatform"],
            json!({"android": 4, "unknown": 1})
        );
        // The devices that never reported applying their settings, the retired one aside.
        assert_eq!(system["devices"]["nonCompliant"], 3, "{system}");
        assert_eq!(system["devices"]["pendingUnlockRequests"], 0);
        assert_eq!(system["organizations"], organizations);
        assert_eq!(system["groups"], 2);
        assert_eq!(
            system["jobs"],
            json!({"pending": 0, "running": 0, "failed24h": 0})
        );
        assert_eq!(
            system["webhooks"],
            json!({"total": 2, "failing": 0, "disabled": 1})
        );

        // The organization's view: owner, member and viewer; their sessions, their sign-ins and
        // the failures naming their addresses since they joined (the registrations before do
        // not count), its devices, groups and webhooks.
        let path = format!("/api/admin/v1/dashboard?organizationId={}", org.id);
        let view = read(&app, &org.owner, &path).await;
        assert_eq!(view["organizationId"], org.id.as_str());
        assert_eq!(view["users"]["total"], 3, "{view}");
        assert_eq!(view["users"]["locked"], 0);
        assert_eq!(view["users"]["unverified"], 2);
        assert_eq!(view["liveSessions"], 3 + 3);
        assert_eq!(view["signIns"]["succeeded"], 3);
        assert_eq!(view["signIns"]["failed"], 2 + 5);
        assert_eq!(view["signIns"]["lockouts"], 1);
        // A retired device has left the organization.
        assert_eq!(view["devices"]["total"], 3);
        assert_eq!(view["devices"]["byPlatform"], json!({"android": 3}));
        assert_eq!(view["devices"]["nonCompliant"], 2);
        assert_eq!(view["organizations"], Value::Null);
        assert_eq!(view["groups"], 1);
        assert_eq!(view["webhooks"], json!({"total": 1, "failing": 0, "disabled": 0}));
        // A system reader sees the same organization view; the organization's admin too.
        assert_eq!(read(&app, &org.root, &path).await["users"], view["users"]);
        assert_eq!(read(&app, &member, &path).await["devices"], view["devices"]);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn who_may_read_which_dashboard() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "access").await;
        let auditor = operator(&app, "auditor@example.com", "auditor").await;
        let support = operator(&app, "support@example.com", "support").await;
        let user_admin = operator(&app, "useradmin@example.com", "user_admin").await;
        let org_admin = operator(&app, "orgadmin@example.com", "org_admin").await;
        let viewer = app.user("viewer@example.com").await;
        let outsider = app.user("outsider@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": viewer.id, "role": "viewer"}),
        )
        .await;
        let org_view = format!("/api/admin/v1/dashboard?organizationId={}", org.id);
        let org_stats = format!(
            "/api/admin/v1/statistics?metric=signins&organizationId={}",
            org.id
        );
        for path in [
            "/api/admin/v1/dashboard",
            "/api/admin/v1/statistics?metric=signins",
        ] {
            assert_eq!(status(&app, &org.root, path).await, StatusCode::OK, "{path}");
            assert_eq!(status(&app, &auditor, path).await, StatusCode::OK, "{path}");
            for refused in [&support, &user_admin, &org_admin, &org.owner, &outsider] {
                expect_error(
                    send(&app, Method::GET, path, refused, None).await,
                    StatusCode::FORBIDDEN,
                    "FORBIDDEN",
                )
                .await;
            }
        }
        // Refusing the system view leaves a trail.
        let denied = app
            .audit_actions()
            .await
            .iter()
            .filter(|action| *action == "admin.access_denied")
            .count();
        assert_eq!(denied, 2 * 5);
        for path in [&org_view, &org_stats] {
            // Owners and admins; readers of every organization (`organizations:read`).
            for allowed in [&org.owner, &auditor, &org_admin] {
                assert_eq!(status(&app, allowed, path).await, StatusCode::OK, "{path}");
            }
            // A member whose role does not manage the organization: 403; outsiders (and
            // operators without the permission): 404, as if it did not exist.
            assert_eq!(status(&app, &viewer, path).await, StatusCode::FORBIDDEN, "{path}");
            for outside in [&outsider, &support, &user_admin] {
                assert_eq!(status(&app, outside, path).await, StatusCode::NOT_FOUND, "{path}");
            }
        }
        let ghost = format!("/api/admin/v1/dashboard?organizationId={}", uuid::Uuid::now_v7());
        assert_eq!(status(&app, &org.root, &ghost).await, StatusCode::NOT_FOUND);
        // Tokens: the scope `dashboard:read` is needed, and is enough for an owner's view.
        let mint = |session: &TestUser, scopes: Value| {
            let id = session.id;
            let request = app
                .authed(Method::POST, "/api/v1/auth/me/tokens", &session.token)
                .json(&json!({"name": "dashboard", "scopes": scopes}));
            async move {
                let created = request.send().await.unwrap();
                let data = expect_data(created, StatusCode::CREATED).await;
                TestUser {
                    id,
                    token: data["secret"].as_str().unwrap().to_owned(),
                }
            }
        };
        let without = mint(&auditor, json!(["audit:read"])).await;
        let refused = send(&app, Method::GET, "/api/admin/v1/dashboard", &without, None).await;
        let body = expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        assert!(
            body["message"].as_str().unwrap().contains("dashboard:read"),
            "{body}"
        );
        let with = mint(&auditor, json!(["dashboard:read"])).await;
        assert_eq!(
            status(&app, &with, "/api/admin/v1/dashboard").await,
            StatusCode::OK
        );
        let owner_token = mint(&org.owner, json!(["dashboard:read"])).await;
        assert_eq!(status(&app, &owner_token, &org_view).await, StatusCode::OK);
        // Without a token at all: 401.
        assert_eq!(
            app.get("/api/admin/v1/dashboard").await.status(),
            StatusCode::UNAUTHORIZED
        );
        // What does not parse is 400, never a default.
        for bad in [
            "/api/admin/v1/dashboard?organizationId=not-a-uuid",
            "/api/admin/v1/dashboard?organizationId=%00",
            "/api/admin/v1/dashboard?unknown=1",
        ] {
            assert_eq!(
                status(&app, &org.root, bad).await,
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn each_instance_computes_a_view_at_most_every_ten_seconds() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let first = read(&app, &root, "/api/admin/v1/dashboard").await;
        app.user("later@example.com").await;
        let second = read(&app, &root, "/api/admin/v1/dashboard").await;
        // Answered from memory: the same figures, computed at the same time.
        assert_eq!(second["generatedAt"], first["generatedAt"]);
        assert_eq!(second["users"]["total"], first["users"]["total"]);
        // A statistic is not cached: it sees the new account at once.
        let registrations = read(
            &app,
            &root,
            "/api/admin/v1/statistics?metric=registrations&interval=hour",
        )
        .await;
        assert_eq!(registrations["total"], 2);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn statistics_count_each_metric_per_bucket_and_refuse_what_does_not_parse() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "stats").await;
        app.user("other@example.com").await;
        sign_in(&app, "other@example.com", 2).await;
        // The owner signs in once as a member of the organization.
        sign_in(&app, "owner-stats@example.com", 1).await;
        let created = send(
            &app,
            Method::POST,
            "/api/admin/v1/users",
            &org.root,
            Some(json!({"email": "hire@example.com", "displayName": "New Hire"})),
        )
        .await;
        expect_data(created, StatusCode::CREATED).await;
        let (_, secret) = token(&app, &org, json!({})).await;
        let (device, _, _) = enrolled(&app, &secret, "tab-1").await;
        enrolled(&app, &secret, "tab-2").await;
        let wiped = send(
            &app,
            Method::POST,
            &org.path(&format!("/devices/{device}/wipe")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(wiped.status(), StatusCode::ACCEPTED);

        let stat = |query: &str| format!("/api/admin/v1/statistics?{query}");
        let signins = read(&app, &org.root, &stat("metric=signins&interval=hour")).await;
        // root, owner and other registered (a sign-in each), then other signed in twice and the
        // owner once.
        assert_eq!(signins["total"], 3 + 2 + 1, "{signins}");
        assert_eq!(signins["metric"], "signins");
        assert_eq!(signins["interval"], "hour");
        let series = signins["series"].as_array().unwrap();
        assert_eq!(series.len(), 25, "the hour of `from` and the 24 after it");
        // All in the last bucket, or the last two when the test crossed the hour.
        let recent: u64 = series[series.len() - 2..]
            .iter()
            .map(|point| point["count"].as_u64().unwrap())
            .sum();
        assert_eq!(recent, 6);
        let sum: u64 = series.iter().map(|point| point["count"].as_u64().unwrap()).sum();
        assert_eq!(signins["total"], sum);
        // Days (the default interval) and weeks see the same events.
        for interval in ["day", "week"] {
            let view = read(
                &app,
                &org.root,
                &stat(&format!("metric=signins&interval={interval}")),
            )
            .await;
            assert_eq!(view["total"], 6, "{interval}");
        }
        let daily = read(&app, &org.root, &stat("metric=registrations")).await;
        assert_eq!(daily["interval"], "day");
        // Three registered, one created by an operator.
        assert_eq!(daily["total"], 3 + 1);
        let enrolled_devices = read(&app, &org.root, &stat("metric=devices_enrolled")).await;
        assert_eq!(enrolled_devices["total"], 2);
        let commands = read(&app, &org.root, &stat("metric=commands")).await;
        assert_eq!(commands["total"], 1);
        // The organization's own: its owner's sign-in since joining (not the registration before)
        // and its devices' enrolments and commands.
        let in_org = |metric: &str| stat(&format!("metric={metric}&organizationId={}", org.id));
        assert_eq!(read(&app, &org.owner, &in_org("signins")).await["total"], 1);
        assert_eq!(
            read(&app, &org.owner, &in_org("devices_enrolled")).await["total"],
            2
        );
        assert_eq!(read(&app, &org.owner, &in_org("commands")).await["total"], 1);
        let keys = read(&app, &org.root, &stat("metric=api_key_requests&interval=week")).await;
        assert_eq!(keys["metric"], "api_key_requests");
        assert!(keys["series"].as_array().unwrap().len() >= 12);
        // A window in the past holds nothing.
        let past = read(
            &app,
            &org.root,
            &stat("metric=signins&interval=day&from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z"),
        )
        .await;
        assert_eq!(past["total"], 0);
        assert_eq!(past["series"].as_array().unwrap().len(), 31);
        assert_eq!(past["from"], "2020-01-01T00:00:00Z");

        for (query, field) in [
            ("metric=nonsense", "metric"),
            ("metric=signins%00", "query"),
            ("metric=signins&interval=minute", "interval"),
            (
                "metric=signins&from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
                "from",
            ),
            (
                "metric=signins&interval=hour&from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
                "to",
            ),
            ("metric=api_key_requests&interval=hour", "interval"),
            ("metric=signins&to=%2B262142-12-31T23:59:59Z", "to"),
            ("metric=signins&to=2999-01-01T00:00:00Z", "to"),
            ("metric=signins&from=1900-01-01T00:00:00Z", "from"),
        ] {
            let refused = send(&app, Method::GET, &stat(query), &org.root, None).await;
            let body = expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
            assert_eq!(body["details"][0]["field"], field, "{query}: {body}");
        }
        let per_org = stat(&format!("metric=api_key_requests&organizationId={}", org.id));
        let refused = send(&app, Method::GET, &per_org, &org.root, None).await;
        expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        for query in [
            "",
            "metric=signins&from=yesterday",
            "metric=signins&to=99999999999999999999",
            "metric=signins&from=-262144-01-01T00:00:00Z",
            "metric=signins&extra=1",
        ] {
            assert_eq!(
                status(&app, &org.root, &stat(query)).await,
                StatusCode::BAD_REQUEST,
                "{query}"
            );
        }
        // A window that ends later this year is answered.
        let ahead = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%dT%H:%M:%SZ");
        let later = read(&app, &org.root, &stat(&format!("metric=signins&to={ahead}"))).await;
        assert_eq!(later["total"], 6);
        app.stop().await;
    })
    .await;
}

/// An audit entry written straight into the database at `at` (outside the hash chain, like the
/// bench's), for history the test cannot make happen in the past.
async fn past_entry(app: &TestApp, seq: i64, action: &str, at: chrono::DateTime<chrono::Utc>) {
    use sea_orm::{ConnectionTrait, Statement};
    let connection = app.db.connection();
    let backend = connection.get_database_backend();
    let sql = if backend == sea_orm::DatabaseBackend::Postgres {
        "INSERT INTO audit_logs (id, occurred_at, actor_kind, action, resource_type, chain_seq, chain_hash) \
         VALUES ($1, $2, 'user', $3, 'user', $4, 'test')"
    } else {
        "INSERT INTO audit_logs (id, occurred_at, actor_kind, action, resource_type, chain_seq, chain_hash) \
         VALUES (?, ?, 'user', ?, 'user', ?, 'test')"
    };
    connection
        .execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                uuid::Uuid::now_v7().into(),
                at.into(),
                action.into(),
                (-seq).into(),
            ],
        ))
        .await
        .unwrap();
}

/// Entries of `action` at or after `from`, counted one by one.
async fn entries_since(app: &TestApp, action: &str, from: chrono::DateTime<chrono::Utc>) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let connection = app.db.connection();
    let backend = connection.get_database_backend();
    let sql = if backend == sea_orm::DatabaseBackend::Postgres {
        "SELECT COUNT(*) FROM audit_logs WHERE action = $1 AND occurred_at >= $2"
    } else {
        "SELECT COUNT(*) FROM audit_logs WHERE action = ? AND occurred_at >= ?"
    };
    let row = connection
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [action.into(), from.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

#[tokio::test]
async fn statistics_read_whole_past_days_from_the_daily_rollup_and_count_the_edges() {
    use chrono::{Duration, Utc};
    use steward_domain::dashboard::{Interval, rollup_until, truncate};
    use steward_domain::maintenance::MaintenanceStore;
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = operator(&app, "root@example.com", "super_admin").await;
        let today = truncate(Utc::now(), Interval::Day);
        let three = today - Duration::days(3);
        let ten = today - Duration::days(10);
        let mut seq = 0;
        for (day, count) in [(three, 5), (ten, 2)] {
            for i in 0..count {
                seq += 1;
                past_entry(&app, seq, "auth.login_succeeded", day + Duration::hours(i + 1)).await;
            }
        }
        seq += 1;
        past_entry(&app, seq, "auth.login_failed", three + Duration::hours(2)).await;

        // The clean-up pass's step: every ended day counted, once.
        let days = app
            .db
            .roll_up_audit_days(rollup_until(Utc::now()), 400)
            .await
            .unwrap();
        assert!(days >= 10, "{days}");
        assert_eq!(
            app.db
                .roll_up_audit_days(rollup_until(Utc::now()), 400)
                .await
                .unwrap(),
            0
        );
        assert!(app.count_rows("audit_daily_counts").await >= 3);

        let from = (today - Duration::days(14)).to_rfc3339().replace("+00:00", "Z");
        let stat = |interval: &str| {
            format!("/api/admin/v1/statistics?metric=signins&interval={interval}&from={from}")
        };
        // Equal to the entries counted one by one, by day and by week.
        let counted = entries_since(&app, "auth.login_succeeded", today - Duration::days(14)).await;
        for interval in ["day", "week"] {
            let view = read(&app, &root, &stat(interval)).await;
            assert_eq!(view["total"], counted, "{interval}: {view}");
        }
        let daily = read(&app, &root, &stat("day")).await;
        let on = |view: &Value, day: chrono::DateTime<Utc>| {
            view["series"]
                .as_array()
                .unwrap()
                .iter()
                .find(|point| point["start"] == day.to_rfc3339().replace("+00:00", "Z"))
                .map(|point| point["count"].as_u64().unwrap())
        };
        assert_eq!(on(&daily, three), Some(5), "{daily}");
        assert_eq!(on(&daily, ten), Some(2), "{daily}");
        // Today's sign-ins (not rolled up yet) are counted entry by entry.
        assert!(on(&daily, today).unwrap() >= 1, "{daily}");

        // The rolled-up days are read from the rollup: a changed day count shows in days and
        // weeks, while hours (always counted entry by entry) still see the entries.
        use sea_orm::ConnectionTrait;
        app.db
            .connection()
            .execute_unprepared(
                "UPDATE audit_daily_counts SET entries = entries + 100 WHERE action = 'auth.login_succeeded' \
                 AND entries = 2",
            )
            .await
            .unwrap();
        let daily = read(&app, &root, &stat("day")).await;
        assert_eq!(on(&daily, ten), Some(102), "{daily}");
        let hourly_from = ten.to_rfc3339().replace("+00:00", "Z");
        let hourly_to = (ten + Duration::days(1)).to_rfc3339().replace("+00:00", "Z");
        let hourly = read(
            &app,
            &root,
            &format!(
                "/api/admin/v1/statistics?metric=signins&interval=hour&from={hourly_from}&to={hourly_to}"
            ),
        )
        .await;
        assert_eq!(hourly["total"], 2, "{hourly}");
        // A window that ends mid-day counts its last, partial day entry by entry.
        let until = (three + Duration::hours(3)).to_rfc3339().replace("+00:00", "Z");
        let view = read(
            &app,
            &root,
            &format!("/api/admin/v1/statistics?metric=signins&interval=day&from={from}&to={until}"),
        )
        .await;
        assert_eq!(on(&view, three), Some(2), "{view}");
        assert_eq!(on(&view, ten), Some(102), "{view}");
    })
    .await;
}
