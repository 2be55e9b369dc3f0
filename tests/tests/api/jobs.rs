//! Background jobs end to end: a large device import as a job (202 at once, progress, result),
//! cancelled (nothing written), seen only by who may see it, taken over after its instance
//! died, run after a restart, and run once with two instances.

use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_domain::jobs::{JobKind, JobStore, NewJob};
use steward_domain::{Actor, AuditAction, AuditEntry};
use steward_tests::fleet::{Org, organization, post};
use steward_tests::{
    TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app, spawn_app_with,
};
use uuid::Uuid;

fn devices_csv(prefix: &str, rows: usize) -> String {
    let mut csv = String::from("deviceId,displayName,platform,serialNumber\n");
    for n in 0..rows {
        csv.push_str(&format!("{prefix}-{n},Tablet {n},android,SN-{prefix}-{n}\n"));
    }
    csv
}

async fn submit(app: &TestApp, org: &Org, by: &TestUser, csv: String, query: &str) -> reqwest::Response {
    app.authed(
        Method::POST,
        &org.path(&format!("/devices/import?async=true{query}")),
        &by.token,
    )
    .header("content-type", "text/csv")
    .body(csv)
    .send()
    .await
    .unwrap()
}

async fn job(app: &TestApp, by: &TestUser, id: &str) -> Value {
    expect_data(
        send(app, Method::GET, &format!("/api/admin/v1/jobs/{id}"), by, None).await,
        StatusCode::OK,
    )
    .await
}

/// Polls until the job finished; answers it and every status seen on the way.
async fn finished(app: &TestApp, by: &TestUser, id: &str) -> (Value, Vec<String>) {
    let mut seen = Vec::new();
    for _ in 0..1200 {
        let current = job(app, by, id).await;
        let status = current["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if ["succeeded", "failed", "cancelled"].contains(&status.as_str()) {
            return (current, seen);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish: {seen:?}");
}

async fn fleet_total(app: &TestApp, org: &Org) -> u64 {
    let listed = send(
        app,
        Method::GET,
        &org.path("/devices?perPage=1"),
        &org.owner,
        None,
    )
    .await;
    let body: Value = listed.json().await.unwrap();
    body["meta"]["total"].as_u64().unwrap()
}

#[tokio::test]
async fn a_large_device_import_runs_as_a_job_with_progress_and_its_report() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "bulk").await;
        let rows = 20_000;
        let response = submit(&app, &org, &org.owner, devices_csv("bulk", rows), "").await;
        assert_eq!(response.status(), StatusCode::ACCEPTED, "{backend:?}");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let accepted = expect_data(response, StatusCode::ACCEPTED).await;
        let id = accepted["id"].as_str().unwrap().to_owned();
        assert_eq!(location, format!("/api/admin/v1/jobs/{id}"));
        assert_eq!(accepted["kind"], "device_import");
        assert_eq!(accepted["status"], "pending");
        assert_eq!(accepted["organizationId"], org.id.as_str());
        assert_eq!(
            accepted["parameters"],
            json!({"format": "csv", "dryRun": false, "onDuplicate": "skip"})
        );

        let (done, seen) = finished(&app, &org.owner, &id).await;
        assert_eq!(done["status"], "succeeded", "{done} {backend:?}");
        assert!(seen.len() >= 2, "the job was answered before it ran: {seen:?}");
        assert_eq!(done["result"]["created"], rows as u64, "{done}");
        assert_eq!(done["result"]["errors"], json!([]));
        assert_eq!(done["progress"]["total"], rows as u64);
        assert_eq!(done["progress"]["done"], rows as u64);
        assert_eq!(done["attempts"], 1);
        assert!(done["finishedAt"].is_string() && done["startedAt"].is_string());
        assert_eq!(fleet_total(&app, &org).await, rows as u64);

        // A job with problems fails and names them by line; nothing is imported.
        let bad = "deviceId,displayName,platform\nok-1,Fine,android\n,No id,android\nok-1,Again,android\n";
        let response = submit(&app, &org, &org.owner, bad.to_owned(), "").await;
        let failing = expect_data(response, StatusCode::ACCEPTED).await;
        let (failed, _) = finished(&app, &org.owner, failing["id"].as_str().unwrap()).await;
        assert_eq!(failed["status"], "failed", "{failed}");
        let lines: Vec<&str> = failed["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert!(lines.iter().any(|f| f.starts_with("line 3")), "{failed}");
        assert!(lines.iter().any(|f| f.starts_with("line 4")), "{failed}");
        assert_eq!(fleet_total(&app, &org).await, rows as u64);

        // A dry run as a job reports and writes nothing.
        let dry = submit(&app, &org, &org.owner, devices_csv("dry", 10), "&dryRun=true").await;
        let dry = expect_data(dry, StatusCode::ACCEPTED).await;
        let (dry, _) = finished(&app, &org.owner, dry["id"].as_str().unwrap()).await;
        assert_eq!(dry["result"]["dryRun"], true);
        assert_eq!(dry["result"]["created"], 10);
        assert_eq!(fleet_total(&app, &org).await, rows as u64);

        // Refused before a job exists: a wrong type, a NUL byte, a bad option.
        let wrong = app
            .authed(
                Method::POST,
                &org.path("/devices/import?async=true"),
                &org.owner.token,
            )
            .header("content-type", "text/plain")
            .body("deviceId\nx\n")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let nul = submit(
            &app,
            &org,
            &org.owner,
            "deviceId,displayName,platform\na\0b,x,android\n".to_owned(),
            "",
        )
        .await;
        assert_eq!(nul.status(), StatusCode::BAD_REQUEST);
        let option = submit(&app, &org, &org.owner, devices_csv("x", 1), "&onDuplicate=merge").await;
        assert_eq!(option.status(), StatusCode::BAD_REQUEST);
        let async_flag = submit(&app, &org, &org.owner, devices_csv("x", 1), "&async=maybe").await;
        assert_eq!(async_flag.status(), StatusCode::BAD_REQUEST);

        let actions = app.audit_actions().await;
        assert!(actions.iter().any(|a| a == "job.submitted"), "{backend:?}");
        assert_eq!(
            actions.iter().filter(|a| *a == "device.imported").count(),
            rows,
            "each device audited once {backend:?}"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_cancelled_import_writes_nothing_and_a_finished_job_cannot_be_cancelled() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "cancel").await;
        let response = submit(&app, &org, &org.owner, devices_csv("c", 50_000), "").await;
        let id = expect_data(response, StatusCode::ACCEPTED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        // Cancelled while it writes: running, with rows written.
        let mut writing = false;
        for _ in 0..2000 {
            let current = job(&app, &org.owner, &id).await;
            if current["status"] == "running" && current["progress"]["done"].as_i64().unwrap_or(0) > 0 {
                writing = true;
                break;
            }
            assert!(
                current["status"] == "pending" || current["status"] == "running",
                "it ended before it could be cancelled: {current} {backend:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(writing, "never saw the import writing {backend:?}");
        let cancelled = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/jobs/{id}"),
            &org.owner,
            None,
        )
        .await;
        let cancelled = expect_data(cancelled, StatusCode::OK).await;
        assert_eq!(cancelled["cancelRequested"], true, "{cancelled}");
        let (ended, _) = finished(&app, &org.owner, &id).await;
        assert_eq!(ended["status"], "cancelled", "{ended} {backend:?}");
        assert_eq!(
            fleet_total(&app, &org).await,
            0,
            "a cancelled import rolls back {backend:?}"
        );
        let again = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/jobs/{id}"),
            &org.owner,
            None,
        )
        .await;
        expect_error(again, StatusCode::CONFLICT, "CONFLICT").await;

        // A job that finished cannot be cancelled either.
        let small = submit(&app, &org, &org.owner, devices_csv("s", 3), "").await;
        let small = expect_data(small, StatusCode::ACCEPTED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (ended, _) = finished(&app, &org.owner, &small).await;
        assert_eq!(ended["status"], "succeeded");
        let late = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/jobs/{small}"),
            &org.owner,
            None,
        )
        .await;
        expect_error(late, StatusCode::CONFLICT, "CONFLICT").await;
        assert!(app.audit_actions().await.iter().any(|a| a == "job.cancelled"));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_job_is_seen_by_its_owner_its_organization_s_managers_and_operators_only() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "seen").await;
        let other = organization(&app, "other").await;
        let viewer = app.user("viewer@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": viewer.id, "role": "viewer"}),
        )
        .await;
        let admin = app.user("orgadmin@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": admin.id, "role": "admin"}),
        )
        .await;
        let stranger = app.user("stranger@example.com").await;

        let response = submit(&app, &org, &org.owner, devices_csv("v", 5), "").await;
        let id = expect_data(response, StatusCode::ACCEPTED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        finished(&app, &org.owner, &id).await;
        let path = format!("/api/admin/v1/jobs/{id}");

        for (who, user) in [
            ("other org's owner", &other.owner),
            ("viewer", &viewer),
            ("stranger", &stranger),
        ] {
            expect_error(
                send(&app, Method::GET, &path, user, None).await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
            expect_error(
                send(&app, Method::DELETE, &path, user, None).await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
            let listed = expect_data(
                send(&app, Method::GET, "/api/admin/v1/jobs", user, None).await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(listed, json!([]), "{who} {backend:?}");
        }
        for user in [&org.owner, &admin, &org.root] {
            assert_eq!(job(&app, user, &id).await["id"], id.as_str());
            let listed = expect_data(
                send(&app, Method::GET, "/api/admin/v1/jobs", user, None).await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(listed.as_array().unwrap().len(), 1, "{backend:?}");
        }
        // Filters, and input that does not parse.
        let filtered = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/jobs?status=succeeded&kind=device_import",
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(filtered.as_array().unwrap().len(), 1);
        for bad in [
            "?status=done",
            "?kind=export",
            "?organizationId=nope",
            "?perPage=0",
            "?colour=red",
        ] {
            let refused = send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/jobs{bad}"),
                &org.owner,
                None,
            )
            .await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
        expect_error(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/jobs/not-a-uuid",
                &org.owner,
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        expect_error(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/jobs/{}", Uuid::now_v7()),
                &org.owner,
                None,
            )
            .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        // An import job has no result file.
        expect_error(
            send(&app, Method::GET, &format!("{path}/result"), &org.owner, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

        // Tokens need the jobs scopes.
        let token = |scopes: Value| {
            let app = &app;
            let owner = &org.owner;
            async move {
                expect_data(
                    send(
                        app,
                        Method::POST,
                        "/api/v1/auth/me/tokens",
                        owner,
                        Some(json!({"name": "jobs", "scopes": scopes})),
                    )
                    .await,
                    StatusCode::CREATED,
                )
                .await["secret"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let reader = token(json!(["jobs:read"])).await;
        let unscoped = token(json!(["account:read"])).await;
        let as_token = |token: &str, method: Method| app.authed(method, &path, token).send();
        assert_eq!(
            as_token(&reader, Method::GET).await.unwrap().status(),
            StatusCode::OK
        );
        assert_eq!(
            as_token(&unscoped, Method::GET).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            as_token(&reader, Method::DELETE).await.unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.get(&path).await.status(), StatusCode::UNAUTHORIZED);

        // Deleting the organization deletes its jobs.
        let deleted = send(&app, Method::DELETE, &org.path("?force=true"), &org.root, None).await;
        let status = deleted.status();
        assert!(status.is_success(), "{status} {}", deleted.text().await.unwrap());
        expect_error(
            send(&app, Method::GET, &path, &org.root, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_owner_who_may_no_longer_manage_the_organization_gets_a_failed_job() {
    each_backend(|backend| async move {
        // No worker of this instance looks for work on its own, so the job waits.
        let app = spawn_app_with(backend, |config| config.job_poll_ms = 60_000).await;
        let org = organization(&app, "demoted").await;
        let admin = app.user("orgadmin@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": admin.id, "role": "admin"}),
        )
        .await;
        let locked = app.user("locked@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": locked.id, "role": "admin"}),
        )
        .await;
        let organization: Uuid = org.id.parse().unwrap();
        let id = pending_job(&app, admin.id, organization, &devices_csv("d", 3)).await;
        let locked_job = pending_job(&app, locked.id, organization, &devices_csv("l", 3)).await;
        // A job submitted with a token that could not write to organizations.
        let narrow = pending_job_with(
            &app,
            org.owner.id,
            organization,
            &devices_csv("n", 3),
            json!(["jobs:read"]),
        )
        .await;
        // Locked by an operator before the job runs.
        let lock = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/users/{}/lock", locked.id),
            &org.root,
            Some(json!({"reason": "left"})),
        )
        .await;
        assert!(lock.status().is_success(), "{}", lock.status());
        // Demoted to viewer before the job runs.
        let demoted = send(
            &app,
            Method::PUT,
            &org.path(&format!("/users/{}", admin.id)),
            &org.owner,
            Some(json!({"role": "viewer"})),
        )
        .await;
        assert!(demoted.status().is_success(), "{}", demoted.status());
        let (address, handle) =
            steward_tests::spawn_instance_with(&app, |config| config.job_poll_ms = 50).await;
        for job in [&id, &locked_job, &narrow] {
            let ended = wait_on(&app, &address, &org.root, job).await;
            assert_eq!(ended["status"], "failed", "{ended} {backend:?}");
            assert!(ended["error"]["message"].is_string(), "{ended}");
        }
        assert_eq!(fleet_total(&app, &org).await, 0);
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

/// A pending device import stored straight into the database, as an instance that stopped
/// right after accepting it would leave it.
async fn pending_job(app: &TestApp, owner: Uuid, organization: Uuid, csv: &str) -> String {
    pending_job_with(app, owner, organization, csv, Value::Null).await
}

/// [`pending_job`] as submitted with a personal access token of these scopes (`null`: a session).
async fn pending_job_with(
    app: &TestApp,
    owner: Uuid,
    organization: Uuid,
    csv: &str,
    scopes: Value,
) -> String {
    let job = NewJob {
        id: Uuid::now_v7(),
        kind: JobKind::DeviceImport,
        owner_id: owner,
        organization_id: Some(organization),
        parameters: json!({"format": "csv", "dryRun": false, "onDuplicate": "skip", "scopes": scopes}),
        input: Some(csv.as_bytes().to_vec()),
        created_at: Utc::now(),
    };
    let audit =
        AuditEntry::new(Actor::user(owner), AuditAction::known("job.submitted"), "job").resource_id(job.id);
    app.db.create_job(&job, &audit).await.unwrap();
    job.id.to_string()
}

/// Polls another instance until the job finished.
async fn wait_on(app: &TestApp, address: &str, by: &TestUser, id: &str) -> Value {
    for _ in 0..600 {
        let current: Value = app
            .client
            .get(format!("{address}/api/admin/v1/jobs/{id}"))
            .bearer_auth(&by.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let status = current["data"]["status"].as_str().unwrap_or_default().to_owned();
        if ["succeeded", "failed", "cancelled"].contains(&status.as_str()) {
            return current["data"].clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

#[tokio::test]
async fn jobs_left_by_a_stopped_instance_run_after_a_restart_or_once_its_lease_runs_out() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.job_poll_ms = 60_000).await;
        let org = organization(&app, "restart").await;
        let organization: Uuid = org.id.parse().unwrap();
        // Claimed by an instance that died while running it: its lease runs out in a second.
        let orphan = pending_job(&app, org.owner.id, organization, &devices_csv("o", 6)).await;
        let now = Utc::now();
        let claimed = app
            .db
            .claim_job("a-dead-instance", now, now + chrono::Duration::seconds(1), 10)
            .await
            .unwrap();
        let stored = app.db.find_job(orphan.parse().unwrap()).await.unwrap();
        let claimed = claimed.unwrap_or_else(|| panic!("not claimed: {stored:?} {backend:?}"));
        assert_eq!(claimed.id.to_string(), orphan);
        // Pending when its instance stopped.
        let pending = pending_job(&app, org.owner.id, organization, &devices_csv("p", 4)).await;

        let (address, handle) =
            steward_tests::spawn_instance_with(&app, |config| config.job_poll_ms = 50).await;
        for (id, rows, attempts) in [(&pending, 4, 1), (&orphan, 6, 2)] {
            let ended = wait_on(&app, &address, &org.owner, id).await;
            assert_eq!(ended["status"], "succeeded", "{ended} {backend:?}");
            assert_eq!(ended["result"]["created"], rows);
            assert_eq!(ended["attempts"], attempts, "{ended} {backend:?}");
        }
        assert_eq!(fleet_total(&app, &org).await, 10);
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn with_two_instances_each_job_runs_once() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.job_poll_ms = 20;
            config.job_max_running_per_org = 8;
        })
        .await;
        let (address, handle) = steward_tests::spawn_instance_with(&app, |config| {
            config.job_poll_ms = 20;
            config.job_max_running_per_org = 8;
        })
        .await;
        let org = organization(&app, "twice").await;
        let organization: Uuid = org.id.parse().unwrap();
        let mut ids = Vec::new();
        for n in 0..8 {
            ids.push(
                pending_job(
                    &app,
                    org.owner.id,
                    organization,
                    &devices_csv(&format!("t{n}"), 25),
                )
                .await,
            );
        }
        for id in &ids {
            let ended = wait_on(&app, &address, &org.owner, id).await;
            assert_eq!(ended["status"], "succeeded", "{ended} {backend:?}");
            assert_eq!(ended["attempts"], 1, "{ended} {backend:?}");
            assert_eq!(ended["result"]["created"], 25, "{ended} {backend:?}");
        }
        assert_eq!(fleet_total(&app, &org).await, 200);
        let imported = app
            .audit_actions()
            .await
            .iter()
            .filter(|a| *a == "device.imported")
            .count();
        assert_eq!(imported, 200, "every device imported once {backend:?}");
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn racing_submissions_never_pass_the_open_job_cap() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.job_poll_ms = 60_000).await;
        let org = organization(&app, "racing-jobs").await;
        let organization: Uuid = org.id.parse().unwrap();
        // One job running on an instance that holds its lease (so the organization's one
        // running slot is taken and nothing else starts), six waiting: seven open.
        let running = pending_job(&app, org.owner.id, organization, &devices_csv("run", 1)).await;
        {
            use sea_orm::sea_query::Expr;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            use steward_persistence::entities::jobs;
            jobs::Entity::update_many()
                .col_expr(jobs::Column::Status, Expr::value("running"))
                .col_expr(jobs::Column::ClaimedBy, Expr::value(Some("elsewhere".to_owned())))
                .col_expr(
                    jobs::Column::LeaseUntil,
                    Expr::value(Some(Utc::now() + chrono::Duration::hours(1))),
                )
                .filter(jobs::Column::Id.eq(running.parse::<Uuid>().unwrap()))
                .exec(app.db.connection())
                .await
                .unwrap();
        }
        for n in 0..6 {
            pending_job(
                &app,
                org.owner.id,
                organization,
                &devices_csv(&format!("wait{n}"), 1),
            )
            .await;
        }
        let racing: Vec<_> = (0..8)
            .map(|n| submit(&app, &org, &org.owner, devices_csv(&format!("race{n}"), 1), ""))
            .collect();
        let mut accepted = 0;
        for response in futures_util::future::join_all(racing).await {
            if response.status() == StatusCode::ACCEPTED {
                accepted += 1;
            } else {
                expect_error(response, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
            }
        }
        assert_eq!(accepted, 3, "{backend:?}: 7 open + 3 = the cap of 10");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_account_has_at_most_ten_jobs_waiting_or_running() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.job_poll_ms = 60_000).await;
        let org = organization(&app, "capped").await;
        let organization: Uuid = org.id.parse().unwrap();
        for n in 0..10 {
            pending_job(
                &app,
                org.owner.id,
                organization,
                &devices_csv(&format!("w{n}"), 1),
            )
            .await;
        }
        let refused = submit(&app, &org, &org.owner, devices_csv("x", 1), "").await;
        let body = expect_error(refused, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
        assert!(body["message"].as_str().unwrap().contains("10"), "{body}");
        // The cap counts every kind of job (asked before a job is accepted: an accepted job
        // wakes the worker, which may then finish one of the ten).
        let users = app
            .authed(
                Method::POST,
                &org.path("/users/import?async=true"),
                &org.owner.token,
            )
            .header("content-type", "text/csv")
            .body("email,role\n")
            .send()
            .await
            .unwrap();
        assert_eq!(users.status(), StatusCode::TOO_MANY_REQUESTS);
        // Someone else's queue is their own.
        let admin = app.user("other-admin@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": admin.id, "role": "admin"}),
        )
        .await;
        let accepted = submit(&app, &org, &admin, devices_csv("y", 1), "").await;
        assert_eq!(accepted.status(), StatusCode::ACCEPTED, "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn user_imports_run_as_jobs_and_a_cancelled_account_import_reports_what_it_did() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "people").await;
        for n in 0..3 {
            app.user(&format!("member{n}@example.com")).await;
        }
        // Organization users, as a job.
        let response = app
            .authed(
                Method::POST,
                &org.path("/users/import?async=true"),
                &org.owner.token,
            )
            .header("content-type", "text/csv")
            .body("email,role\nmember0@example.com,viewer\nmember1@example.com,admin\n")
            .send()
            .await
            .unwrap();
        let accepted = expect_data(response, StatusCode::ACCEPTED).await;
        assert_eq!(accepted["kind"], "org_user_import");
        let (done, _) = finished(&app, &org.owner, accepted["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "succeeded", "{done} {backend:?}");
        assert_eq!(done["result"]["created"], 2, "{done}");
        let members = expect_data(
            send(&app, Method::GET, &org.path("/users"), &org.owner, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(members.as_array().unwrap().len(), 3, "{members}");

        // Accounts, as a job, cancelled half-way: what was done stays and is reported.
        let rows = 400;
        let mut csv = String::from("email,displayName,roles,organizationSlug,orgRole\n");
        for n in 0..rows {
            csv.push_str(&format!("new{n}@example.com,New {n},,,\n"));
        }
        let before = app.count_users().await;
        let response = app
            .authed(
                Method::POST,
                "/api/admin/v1/users/import?async=true&sendInvitations=false",
                &org.root.token,
            )
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        let accepted = expect_data(response, StatusCode::ACCEPTED).await;
        assert_eq!(accepted["kind"], "account_import");
        assert_eq!(accepted["organizationId"], Value::Null);
        let id = accepted["id"].as_str().unwrap().to_owned();
        // The owner of another organization does not see an operator's account import.
        expect_error(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/jobs/{id}"),
                &org.owner,
                None,
            )
            .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        let mut applying = false;
        for _ in 0..2000 {
            let current = job(&app, &org.root, &id).await;
            if current["status"] == "running" && current["progress"]["done"].as_i64().unwrap_or(0) > 0 {
                applying = true;
                break;
            }
            assert!(
                current["status"] == "pending" || current["status"] == "running",
                "it ended before it could be cancelled: {current} {backend:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(applying, "never saw the import applying rows {backend:?}");
        let cancelled = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/jobs/{id}"),
            &org.root,
            None,
        )
        .await;
        expect_data(cancelled, StatusCode::OK).await;
        let (ended, _) = finished(&app, &org.root, &id).await;
        assert_eq!(ended["status"], "cancelled", "{ended} {backend:?}");
        let created = ended["result"]["created"].as_i64().unwrap();
        assert!(created > 0 && created < rows, "{ended}");
        assert_eq!(app.count_users().await - before, created, "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_audit_export_runs_as_a_job_and_its_file_is_fetched_by_its_owner_only() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "audited").await;
        for n in 0..5 {
            app.user(&format!("someone{n}@example.com")).await;
        }
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let refused = send(
            &app,
            Method::POST,
            "/api/admin/v1/audit-logs/export",
            &user_admin,
            None,
        )
        .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        let bad = send(
            &app,
            Method::POST,
            "/api/admin/v1/audit-logs/export?format=xml",
            &org.root,
            None,
        )
        .await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

        for (format, content_type) in [("csv", "text/csv"), ("json", "application/json")] {
            let response = send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/audit-logs/export?format={format}&action=auth.registered"),
                &org.root,
                None,
            )
            .await;
            let accepted = expect_data(response, StatusCode::ACCEPTED).await;
            assert_eq!(accepted["kind"], "audit_export");
            let id = accepted["id"].as_str().unwrap().to_owned();
            let (done, _) = finished(&app, &org.root, &id).await;
            assert_eq!(done["status"], "succeeded", "{done} {backend:?}");
            let entries = done["result"]["entries"].as_u64().unwrap();
            assert!(entries >= 7, "{done}");
            let url = done["resultUrl"].as_str().unwrap().to_owned();
            assert_eq!(url, format!("/api/admin/v1/jobs/{id}/result"));
            let file = send(&app, Method::GET, &url, &org.root, None).await;
            assert_eq!(file.status(), StatusCode::OK);
            assert!(
                file.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with(content_type)
            );
            assert!(
                file.headers()["content-disposition"]
                    .to_str()
                    .unwrap()
                    .contains("attachment")
            );
            let body = file.text().await.unwrap();
            if format == "csv" {
                let mut lines = body.lines();
                assert!(
                    lines.next().unwrap().starts_with("id,occurredAt,actorKind"),
                    "{body}"
                );
                assert_eq!(lines.count() as u64, entries, "{backend:?}");
                // A file of several chunks is sent chunk by chunk, in order, whole: two more
                // chunks of 1 MiB are put behind this one.
                let job: Uuid = id.parse().unwrap();
                let mut expected = body.clone().into_bytes();
                for (seq, fill) in [(1, b'a'), (2, b'b')] {
                    let data = vec![fill; 1 << 20];
                    expected.extend_from_slice(&data);
                    use sea_orm::{ActiveValue::Set, EntityTrait};
                    use steward_persistence::entities::job_blobs;
                    job_blobs::Entity::insert(job_blobs::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        job_id: Set(job),
                        part: Set("result".to_owned()),
                        seq: Set(seq),
                        data: Set(data),
                    })
                    .exec_without_returning(app.db.connection())
                    .await
                    .unwrap();
                }
                let file = send(&app, Method::GET, &url, &org.root, None).await;
                assert_eq!(file.status(), StatusCode::OK);
                assert_eq!(
                    file.headers()["content-length"].to_str().unwrap(),
                    expected.len().to_string()
                );
                let bytes = file.bytes().await.unwrap();
                assert!(
                    bytes[..] == expected[..],
                    "{backend:?}: the chunks arrived whole and in order"
                );
            } else {
                let rows: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(rows.as_array().unwrap().len() as u64, entries);
                assert!(
                    rows.as_array()
                        .unwrap()
                        .iter()
                        .all(|row| row["action"] == "auth.registered")
                );
            }
            // Seeing the job is not enough to read its file: a token with only `jobs:read`
            // sees the job but gets 403 for the file.
            let token = expect_data(
                send(
                    &app,
                    Method::POST,
                    "/api/v1/auth/me/tokens",
                    &org.root,
                    Some(json!({"name": "jobs only", "scopes": ["jobs:read"]})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await["secret"]
                .as_str()
                .unwrap()
                .to_owned();
            let seen = app
                .authed(Method::GET, &format!("/api/admin/v1/jobs/{id}"), &token)
                .send()
                .await
                .unwrap();
            assert_eq!(seen.status(), StatusCode::OK);
            let file = app.authed(Method::GET, &url, &token).send().await.unwrap();
            assert_eq!(file.status(), StatusCode::FORBIDDEN, "{backend:?}");
            // Another administrator does not see it, nor its file.
            for path in [format!("/api/admin/v1/jobs/{id}"), url.clone()] {
                expect_error(
                    send(&app, Method::GET, &path, &user_admin, None).await,
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                )
                .await;
            }
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_user_export_job_writes_the_same_file_the_streaming_export_answers() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        for n in 0..130 {
            app.user(&format!("exported{n}@example.com")).await;
        }
        let support = app.user("support@example.com").await;
        app.grant(support.id, "support").await;
        for format in ["csv", "json"] {
            let query = format!("format={format}&q=exported&sort=email&order=asc");
            let response = send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/users/export?{query}"),
                &root,
                None,
            )
            .await;
            let accepted = expect_data(response, StatusCode::ACCEPTED).await;
            assert_eq!(accepted["kind"], "user_export");
            let id = accepted["id"].as_str().unwrap().to_owned();
            let (done, _) = finished(&app, &root, &id).await;
            assert_eq!(done["status"], "succeeded", "{done} {backend:?}");
            assert_eq!(done["result"]["accounts"], 130, "{done}");
            let file = send(
                &app,
                Method::GET,
                done["resultUrl"].as_str().unwrap(),
                &root,
                None,
            )
            .await
            .text()
            .await
            .unwrap();
            let streamed = send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/users/export?{query}"),
                &root,
                None,
            )
            .await
            .text()
            .await
            .unwrap();
            assert_eq!(file, streamed, "{format} {backend:?}");
            // Another holder of users:read does not see this job's file.
            expect_error(
                send(
                    &app,
                    Method::GET,
                    done["resultUrl"].as_str().unwrap(),
                    &support,
                    None,
                )
                .await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
        }
        let bad = send(
            &app,
            Method::POST,
            "/api/admin/v1/users/export?status=asleep",
            &root,
            None,
        )
        .await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        let plain = app.user("plain@example.com").await;
        let refused = send(&app, Method::POST, "/api/admin/v1/users/export", &plain, None).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_fleet_export_runs_as_a_job_for_whoever_may_view_the_organization() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "exported").await;
        let other = organization(&app, "elsewhere").await;
        let viewer = app.user("viewer@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": viewer.id, "role": "viewer"}),
        )
        .await;
        let import = app
            .authed(Method::POST, &org.path("/devices/import"), &org.owner.token)
            .header("content-type", "text/csv")
            .body(devices_csv("fx", 120).replace(",SN-fx-7\n", ",=cmd|' /C calc'!A0\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(import.status(), StatusCode::OK, "{backend:?}");
        for format in ["csv", "json"] {
            let response = send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/export?format={format}&sort=name")),
                &viewer,
                None,
            )
            .await;
            let accepted = expect_data(response, StatusCode::ACCEPTED).await;
            assert_eq!(accepted["kind"], "fleet_export");
            let id = accepted["id"].as_str().unwrap().to_owned();
            let (done, _) = finished(&app, &viewer, &id).await;
            assert_eq!(done["status"], "succeeded", "{done} {backend:?}");
            assert_eq!(done["result"]["devices"], 120, "{done}");
            let url = done["resultUrl"].as_str().unwrap().to_owned();
            // The organization's owner sees the viewer's export; another organization does not.
            let file = send(&app, Method::GET, &url, &org.owner, None)
                .await
                .text()
                .await
                .unwrap();
            expect_error(
                send(&app, Method::GET, &url, &other.owner, None).await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
            if format == "csv" {
                let mut lines = file.lines();
                assert!(
                    lines.next().unwrap().starts_with("id,deviceId,displayName"),
                    "{file}"
                );
                assert_eq!(lines.count(), 120);
                assert!(file.contains("'=cmd"), "formulas are defused");
            } else {
                let rows: Value = serde_json::from_str(&file).unwrap();
                assert_eq!(rows.as_array().unwrap().len(), 120);
                assert!(rows[0]["deviceId"].as_str().unwrap().starts_with("fx-"));
            }
        }
        let refused = send(
            &app,
            Method::POST,
            &org.path("/devices/export"),
            &other.owner,
            None,
        )
        .await;
        assert_eq!(refused.status(), StatusCode::NOT_FOUND);
        let bad = send(
            &app,
            Method::POST,
            &org.path("/devices/export?status=sleeping"),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_job_at_its_time_limit_stops_between_rows_and_reports_what_it_did() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| config.job_timeout_secs = 1).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let rows = 3000;
        let mut csv = String::from("email,displayName,roles,organizationSlug,orgRole\n");
        for n in 0..rows {
            csv.push_str(&format!("slow{n}@example.com,Slow {n},,,\n"));
        }
        let before = app.count_users().await;
        let response = app
            .authed(
                Method::POST,
                "/api/admin/v1/users/import?async=true&sendInvitations=false",
                &root.token,
            )
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        let id = expect_data(response, StatusCode::ACCEPTED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (ended, _) = finished(&app, &root, &id).await;
        assert_eq!(ended["status"], "failed", "{ended} {backend:?}");
        assert!(
            ended["error"]["message"].as_str().unwrap().contains("time limit"),
            "{ended}"
        );
        let created = ended["result"]["created"].as_i64().unwrap();
        assert!(created > 0 && created < rows, "{ended}");
        assert_eq!(
            ended["result"]["appliedRows"].as_i64().unwrap(),
            created,
            "{ended}"
        );
        assert_eq!(app.count_users().await - before, created, "{backend:?}");
        app.stop().await;
    })
    .await;
}
#[tokio::test]
async fn a_kind_with_a_time_limit_of_its_own_stops_at_it() {
    each_backend(|backend| async move {
        // Every other kind keeps the long default; account imports have 1 s.
        let app = spawn_app_with(backend, |config| {
            config.job_timeout_secs = 600;
            config.job_timeouts = [("account_import".to_owned(), 1)].into();
        })
        .await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let rows = 3000;
        let mut csv = String::from("email,displayName,roles,organizationSlug,orgRole\n");
        for n in 0..rows {
            csv.push_str(&format!("slow{n}@example.com,Slow {n},,,\n"));
        }
        let before = app.count_users().await;
        let response = app
            .authed(
                Method::POST,
                "/api/admin/v1/users/import?async=true&sendInvitations=false",
                &root.token,
            )
            .header("content-type", "text/csv")
            .body(csv)
            .send()
            .await
            .unwrap();
        let id = expect_data(response, StatusCode::ACCEPTED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (ended, _) = finished(&app, &root, &id).await;
        assert_eq!(ended["status"], "failed", "{ended} {backend:?}");
        assert!(
            ended["error"]["message"].as_str().unwrap().contains("time limit"),
            "{ended}"
        );
        let created = ended["result"]["created"].as_i64().unwrap();
        assert!(created > 0 && created < rows, "{ended}");
        assert_eq!(
            ended["result"]["appliedRows"].as_i64().unwrap(),
            created,
            "{ended}"
        );
        assert_eq!(app.count_users().await - before, created, "{backend:?}");
        app.stop().await;
    })
    .await;
}
