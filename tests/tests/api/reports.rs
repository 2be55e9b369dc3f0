//! Scheduled reports: a schedule due at T mails each subscribed recipient once at a real SMTP
//! listener (the scheduler's clock is set, not waited for), two instances send once, a long
//! downtime catches up one run, a recipient leaves through the signed link (and the one-click
//! header), runs act for the operator who saved the schedule, and every refusal.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Timelike, Utc};
use mail_parser::MimeHeaders;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward::Clock;
use steward_tests::smtp::{ReceivedMail, SmtpServer};
use steward_tests::{
    TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app_with, spawn_instance_with,
};

const SCHEDULES: &str = "/api/admin/v1/report-schedules";

/// The app with a real SMTP listener, a fast scheduler and a clock the test sets.
async fn app_with_clock(backend: steward_tests::Backend, smtp: &SmtpServer, clock: &Clock) -> TestApp {
    let url = smtp.url();
    let clock = clock.clone();
    spawn_app_with(backend, move |config| {
        config.smtp_url = Some(url);
        config.report_poll_ms = 50;
        config.clock = clock;
    })
    .await
}

async fn root(app: &TestApp) -> TestUser {
    let root = app.user("root@example.com").await;
    app.grant(root.id, "super_admin").await;
    root
}

fn schedule_body(time: &str, recipients: &[&str]) -> Value {
    json!({
        "name": "Daily security",
        "reportType": "security_summary",
        "frequency": "daily",
        "time": time,
        "format": "csv",
        "recipients": recipients,
    })
}

async fn schedule(app: &TestApp, user: &TestUser, id: &str) -> Value {
    expect_data(
        send(app, Method::GET, &format!("{SCHEDULES}/{id}"), user, None).await,
        StatusCode::OK,
    )
    .await
}

/// Waits until the schedule's runs satisfy `done` (the scheduler and the jobs run apart).
async fn runs_until(app: &TestApp, user: &TestUser, id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let runs = schedule(app, user, id).await["recentRuns"]
            .as_array()
            .unwrap()
            .clone();
        if done(&runs) {
            return runs;
        }
        assert!(tokio::time::Instant::now() < deadline, "runs: {runs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn at(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The CSV attachment of a report mail.
fn attachment(mail: &ReceivedMail) -> (String, String) {
    let parsed = mail.parsed();
    let file = parsed.attachments().next().expect("the report is attached");
    (
        file.attachment_name().unwrap_or_default().to_owned(),
        String::from_utf8(file.contents().to_vec()).unwrap(),
    )
}

fn mails_to(smtp: &SmtpServer, recipient: &str) -> usize {
    smtp.received()
        .iter()
        .filter(|mail| mail.recipients.iter().any(|r| r == recipient))
        .count()
}

#[tokio::test]
async fn a_due_schedule_mails_each_subscribed_recipient_once_across_two_instances() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let start = Utc::now();
        let clock = Clock::manual(start);
        let app = app_with_clock(backend, &smtp, &clock).await;
        let (_second, second_handle) = spawn_instance_with(&app, {
            let (url, clock) = (smtp.url(), clock.clone());
            move |config| {
                config.smtp_url = Some(url);
                config.report_poll_ms = 50;
                config.clock = clock;
            }
        })
        .await;
        let root = root(&app).await;
        // Two failed sign-ins the report counts.
        app.user("victim@example.com").await;
        for _ in 0..2 {
            assert_eq!(
                app.login("victim@example.com", "wrong password 1").await.status(),
                StatusCode::UNAUTHORIZED
            );
        }

        // Due two hours from now (UTC), to the minute.
        let slot = (start + Span::hours(2))
            .with_second(0)
            .unwrap()
            .with_nanosecond(0)
            .unwrap();
        let time = slot.format("%H:%M").to_string();
        let created = expect_data(
            send(
                &app,
                Method::POST,
                SCHEDULES,
                &root,
                Some(schedule_body(
                    &time,
                    &["a@example.com", "B@example.com", "c@example.com", "a@example.com"],
                )),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(at(&created["nextRunAt"]), slot, "{created}");
        assert_eq!(created["ownerId"], root.id.to_string());
        assert_eq!(created["timeZone"], "UTC");
        let emails: Vec<&str> = created["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["email"].as_str().unwrap())
            .collect();
        assert_eq!(emails, ["a@example.com", "b@example.com", "c@example.com"]);
        assert_eq!(
            app.audit_actions().await.last().unwrap(),
            "report.schedule_created"
        );

        // A test now: every recipient, marked as a test, with their own unsubscribe link.
        let test = expect_data(
            send(
                &app,
                Method::POST,
                &format!("{SCHEDULES}/{id}/send-test"),
                &root,
                None,
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(
            (
                test["kind"].as_str(),
                test["status"].as_str(),
                test["mailed"].as_i64()
            ),
            (Some("test"), Some("sent"), Some(3))
        );
        let to_c = smtp.wait_for("c@example.com", 1).await;
        assert!(
            to_c.subject().contains("[Test] Security summary: Daily security"),
            "{}",
            to_c.subject()
        );
        let header = to_c
            .parsed()
            .header_raw("List-Unsubscribe")
            .unwrap()
            .trim()
            .to_owned();
        assert!(
            header.starts_with("<http") && header.contains("/api/v1/report-unsubscribe?token="),
            "{header}"
        );
        assert_eq!(
            to_c.parsed().header_raw("List-Unsubscribe-Post").unwrap().trim(),
            "List-Unsubscribe=One-Click"
        );
        let token = to_c.link_token();
        // The page the mail links to, and the API behind it: no credential needed.
        assert!(to_c.text_body().contains("/report-unsubscribe?token="));
        let page = app.get(&format!("/report-unsubscribe?token={token}")).await;
        assert_eq!(page.status(), StatusCode::OK);
        let state = expect_data(
            app.get(&format!("/api/v1/report-unsubscribe?token={token}"))
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            state,
            json!({"scheduleName": "Daily security", "email": "c@example.com", "unsubscribed": false})
        );
        // One click as a mail client sends it (form body, no credential).
        let left = app
            .client
            .post(app.url(&format!("/api/v1/report-unsubscribe?token={token}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(expect_data(left, StatusCode::OK).await["unsubscribed"], true);
        // Again: nothing changes, still 200.
        let again = app
            .client
            .post(app.url(&format!("/api/v1/report-unsubscribe?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(expect_data(again, StatusCode::OK).await["unsubscribed"], true);
        let audited: Vec<String> = app.audit_actions().await;
        assert_eq!(audited.iter().filter(|a| *a == "report.unsubscribed").count(), 1);
        smtp.wait_for("a@example.com", 1).await;
        smtp.wait_for("b@example.com", 1).await;

        // Nothing before the slot: a minute early.
        clock.set(slot - Span::minutes(1));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            schedule(&app, &root, &id).await["recentRuns"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        // The slot passes: one run, sent by one instance, one mail to each subscribed recipient.
        clock.set(slot + Span::seconds(20));
        let runs = runs_until(&app, &root, &id, |runs| {
            runs.iter()
                .any(|run| run["kind"] == "scheduled" && run["status"] == "sent")
        })
        .await;
        let scheduled: Vec<&Value> = runs.iter().filter(|run| run["kind"] == "scheduled").collect();
        assert_eq!(scheduled.len(), 1, "{runs:?}");
        assert_eq!(at(&scheduled[0]["dueAt"]), slot);
        assert_eq!(at(&scheduled[0]["windowFrom"]), slot - Span::days(1));
        assert_eq!(at(&scheduled[0]["windowTo"]), slot);
        assert_eq!(scheduled[0]["mailed"], 2);
        // The job ends just after the run it sent.
        let job = scheduled[0]["jobId"].as_str().unwrap().to_owned();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let job = loop {
            let job = expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/jobs/{job}"),
                    &root,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            if job["status"] != "running" || tokio::time::Instant::now() > deadline {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(
            (job["kind"].as_str(), job["status"].as_str()),
            (Some("scheduled_report"), Some("succeeded")),
            "{job}"
        );
        let to_a = smtp.wait_for("a@example.com", 2).await;
        smtp.wait_for("b@example.com", 2).await;
        assert!(!to_a.subject().contains("[Test]"), "{}", to_a.subject());
        let (name, csv) = attachment(&to_a);
        // RFC 4180 lines.
        assert!(csv.contains("\r\n"), "{csv:?}");
        let csv = csv.replace("\r\n", "\n");
        assert_eq!(
            name,
            format!("steward-security-summary-{}.csv", slot.format("%Y-%m-%d"))
        );
        assert!(csv.starts_with("section,figure,value\n"), "{csv}");
        assert!(csv.contains("In the period,Failed sign-ins,2\n"), "{csv}");
        assert!(csv.contains("In the period,Lockouts,0\n"), "{csv}");
        // Both instances kept polling past the slot: still one run, and nothing for c.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.count_rows("report_runs").await, 2);
        assert_eq!(mails_to(&smtp, "a@example.com"), 2);
        assert_eq!(mails_to(&smtp, "c@example.com"), 1);
        assert_eq!(mails_to(&smtp, "b@example.com"), 2);
        let next = at(&schedule(&app, &root, &id).await["nextRunAt"]);
        assert_eq!(next, slot + Span::days(1));

        // Three days of downtime: one catch-up run for the latest missed slot, not three.
        clock.set(slot + Span::days(3) + Span::hours(5));
        let runs = runs_until(&app, &root, &id, |runs| {
            runs.iter()
                .filter(|run| run["kind"] == "scheduled" && run["status"] == "sent")
                .count()
                == 2
        })
        .await;
        assert_eq!(at(&runs[0]["dueAt"]), slot + Span::days(3), "{runs:?}");
        assert_eq!(at(&runs[0]["windowFrom"]), slot + Span::days(2));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.count_rows("report_runs").await, 3);
        assert_eq!(
            at(&schedule(&app, &root, &id).await["nextRunAt"]),
            slot + Span::days(4)
        );
        smtp.wait_for("b@example.com", 3).await;
        assert_eq!(mails_to(&smtp, "c@example.com"), 1);
        let actions = app.audit_actions().await;
        assert_eq!(
            actions.iter().filter(|a| *a == "report.sent").count(),
            2,
            "{actions:?}"
        );
        second_handle.stop(true).await;
    })
    .await;
}

#[tokio::test]
async fn runs_act_for_the_operator_who_saved_the_schedule() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let start = Utc::now();
        let clock = Clock::manual(start);
        let app = app_with_clock(backend, &smtp, &clock).await;
        let root = root(&app).await;
        let operator = app.user("operator@example.com").await;
        app.grant(operator.id, "super_admin").await;
        let slot = (start + Span::hours(1))
            .with_second(0)
            .unwrap()
            .with_nanosecond(0)
            .unwrap();
        let body = schedule_body(&slot.format("%H:%M").to_string(), &["ops@example.com"]);
        let created = expect_data(
            send(&app, Method::POST, SCHEDULES, &operator, Some(body.clone())).await,
            StatusCode::CREATED,
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(created["ownerId"], operator.id.to_string());

        // The operator loses super_admin: the run fails, no mail.
        let revoked = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/users/{}/roles/super_admin", operator.id),
            &root,
            None,
        )
        .await;
        assert!(revoked.status().is_success(), "{}", revoked.status());
        clock.set(slot + Span::seconds(5));
        let runs = runs_until(&app, &root, &id, |runs| {
            runs.iter().any(|run| run["status"] == "failed")
        })
        .await;
        assert!(
            runs[0]["error"].as_str().unwrap().contains("no longer holds"),
            "{runs:?}"
        );
        assert_eq!(runs[0]["mailed"], 0);

        // Saved again by root: the runs act for root, and the next slot mails.
        let saved = expect_data(
            send(
                &app,
                Method::PUT,
                &format!("{SCHEDULES}/{id}"),
                &root,
                Some(body.clone()),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(saved["ownerId"], root.id.to_string());
        // Created (1), the failed run's start moved it on (2), saved (3).
        assert_eq!(saved["version"], 3);
        assert_eq!(at(&saved["nextRunAt"]), slot + Span::days(1));
        clock.set(slot + Span::days(1) + Span::seconds(5));
        runs_until(&app, &root, &id, |runs| {
            runs.iter().any(|run| run["status"] == "sent")
        })
        .await;
        let mail = smtp.wait_for("ops@example.com", 1).await;
        assert!(mail.subject().contains("Security summary"));

        // A run whose job ended without it (cancelled before it ran, say) does not stay pending:
        // the scheduler fails it. (Made by hand: a job this fast cannot be cancelled in time.)
        {
            use sea_orm::ConnectionTrait;
            let connection = app.db.connection();
            connection
                .execute_unprepared(
                    "UPDATE report_runs SET status = 'pending', finished_at = NULL WHERE status = 'sent'",
                )
                .await
                .unwrap();
            connection
                .execute_unprepared("UPDATE jobs SET status = 'cancelled' WHERE kind = 'scheduled_report'")
                .await
                .unwrap();
        }
        let runs = runs_until(&app, &root, &id, |runs| {
            runs.iter().all(|run| run["status"] != "pending")
                && runs.iter().any(|run| {
                    run["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("ended without being sent"))
                })
        })
        .await;
        assert_eq!(
            runs.iter().filter(|run| run["status"] == "failed").count(),
            2,
            "{runs:?}"
        );

        // A stale version is refused; a disabled schedule is not due.
        let mut stale = body.clone();
        stale["version"] = json!(1);
        expect_error(
            send(
                &app,
                Method::PUT,
                &format!("{SCHEDULES}/{id}"),
                &root,
                Some(stale),
            )
            .await,
            StatusCode::CONFLICT,
            "VERSION_CONFLICT",
        )
        .await;
        let mut off = body.clone();
        off["enabled"] = json!(false);
        let off = expect_data(
            send(&app, Method::PUT, &format!("{SCHEDULES}/{id}"), &root, Some(off)).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(off["nextRunAt"], Value::Null);
        clock.set(slot + Span::days(5));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.count_rows("report_runs").await, 2);

        // An organization's schedule goes with the organization.
        let org = app.organization(&root, "acme", &root).await;
        let mut scoped = body.clone();
        scoped["organizationId"] = json!(org);
        scoped["format"] = json!("html");
        let scoped = expect_data(
            send(&app, Method::POST, SCHEDULES, &root, Some(scoped)).await,
            StatusCode::CREATED,
        )
        .await;
        let scoped_id = scoped["id"].as_str().unwrap();
        let test = send(
            &app,
            Method::POST,
            &format!("{SCHEDULES}/{scoped_id}/send-test"),
            &root,
            None,
        )
        .await;
        assert_eq!(test.status(), StatusCode::ACCEPTED);
        let html = smtp.wait_for("ops@example.com", 2).await;
        let body_html = html.html_body().unwrap();
        assert!(body_html.contains("the organization"), "{body_html}");
        assert!(html.parsed().attachments().next().is_none());
        // A second test in the same minute is refused.
        expect_error(
            send(
                &app,
                Method::POST,
                &format!("{SCHEDULES}/{scoped_id}/send-test"),
                &root,
                None,
            )
            .await,
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
        )
        .await;
        let deleted = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/organizations/{org}"),
            &root,
            None,
        )
        .await;
        assert!(deleted.status().is_success(), "{}", deleted.status());
        expect_error(
            send(
                &app,
                Method::GET,
                &format!("{SCHEDULES}/{scoped_id}"),
                &root,
                None,
            )
            .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

        // Deleting a schedule removes its runs; its unsubscribe links stop working.
        let token = smtp.wait_for("ops@example.com", 1).await.link_token();
        let gone = send(&app, Method::DELETE, &format!("{SCHEDULES}/{id}"), &root, None).await;
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.count_rows("report_runs").await, 0);
        expect_error(
            app.get(&format!("/api/v1/report-unsubscribe?token={token}"))
                .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

        // The operator's account is deleted: the schedule acts for no one, its runs fail.
        let leaver = app.user("leaver@example.com").await;
        app.grant(leaver.id, "super_admin").await;
        let left = expect_data(
            send(&app, Method::POST, SCHEDULES, &leaver, Some(body.clone())).await,
            StatusCode::CREATED,
        )
        .await;
        let left_id = left["id"].as_str().unwrap().to_owned();
        let due = at(&left["nextRunAt"]);
        let erased = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/users/{}", leaver.id),
            &root,
            None,
        )
        .await;
        assert!(erased.status().is_success(), "{}", erased.status());
        assert_eq!(schedule(&app, &root, &left_id).await["ownerId"], Value::Null);
        clock.set(due + Span::seconds(5));
        let runs = runs_until(&app, &root, &left_id, |runs| {
            runs.iter().any(|run| run["status"] == "failed")
        })
        .await;
        assert!(
            runs[0]["error"].as_str().unwrap().contains("no operator"),
            "{runs:?}"
        );
        assert_eq!(runs[0]["jobId"], Value::Null);
    })
    .await;
}

#[tokio::test]
async fn every_refusal() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let clock = Clock::manual(Utc::now());
        let app = app_with_clock(backend, &smtp, &clock).await;
        let root = root(&app).await;
        let auditor = app.user("auditor@example.com").await;
        app.grant(auditor.id, "auditor").await;
        let support = app.user("support@example.com").await;
        app.grant(support.id, "support").await;
        let nobody = app.user("nobody@example.com").await;
        let good = schedule_body("08:30", &["ops@example.com"]);

        // Who may: the auditor reads, only reports:manage changes, others are refused.
        let response = app.client.get(app.url(SCHEDULES)).send().await.unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        for user in [&support, &nobody] {
            expect_error(
                send(&app, Method::GET, SCHEDULES, user, None).await,
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
            )
            .await;
        }
        expect_data(
            send(&app, Method::GET, SCHEDULES, &auditor, None).await,
            StatusCode::OK,
        )
        .await;
        expect_error(
            send(&app, Method::POST, SCHEDULES, &auditor, Some(good.clone())).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        // A custom role with reports:manage but not what the report shows.
        expect_data(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/roles",
                &root,
                Some(json!({"name": "report_keeper", "permissions": ["reports:manage", "reports:read"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let keeper = app.user("keeper@example.com").await;
        app.grant(keeper.id, "report_keeper").await;
        let refused = expect_error(
            send(&app, Method::POST, SCHEDULES, &keeper, Some(good.clone())).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        assert!(
            refused["message"].as_str().unwrap().contains("dashboard:read"),
            "{refused}"
        );

        // A token needs the scopes of what the report shows, not only reports:manage.
        let token = |scopes: Vec<&'static str>| {
            let request = app
                .authed(Method::POST, "/api/v1/auth/me/tokens", &root.token)
                .json(&json!({"name": "reports", "scopes": scopes}));
            async move {
                expect_data(request.send().await.unwrap(), StatusCode::CREATED).await["secret"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        };
        let narrow = TestUser {
            id: root.id,
            token: token(vec!["reports:manage"]).await,
        };
        let refused = expect_error(
            send(&app, Method::POST, SCHEDULES, &narrow, Some(good.clone())).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        assert!(
            refused["message"].as_str().unwrap().contains("audit:read"),
            "{refused}"
        );
        let wide = TestUser {
            id: root.id,
            token: token(vec![
                "reports:manage",
                "dashboard:read",
                "audit:read",
                "reports:read",
            ])
            .await,
        };
        let made = expect_data(
            send(&app, Method::POST, SCHEDULES, &wide, Some(good.clone())).await,
            StatusCode::CREATED,
        )
        .await;
        let made = made["id"].as_str().unwrap().to_owned();
        let gone = send(&app, Method::DELETE, &format!("{SCHEDULES}/{made}"), &wide, None).await;
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);

        // Hostile and malformed input: 400 naming the field, nothing stored.
        let cases: Vec<(Value, &str)> = vec![
            (json!({"name": "a\u{0}b"}), "name"),
            (json!({"name": "x".repeat(10_000)}), "name"),
            (json!({"reportType": "everything"}), "reportType"),
            (json!({"frequency": "hourly"}), "frequency"),
            (json!({"time": "25:00"}), "time"),
            (json!({"time": "08:30\u{0}"}), "time"),
            (json!({"weekday": "monday"}), "weekday"),
            (json!({"frequency": "monthly", "dayOfMonth": 0}), "dayOfMonth"),
            (json!({"frequency": "monthly", "dayOfMonth": -5}), "dayOfMonth"),
            (json!({"frequency": "monthly"}), "dayOfMonth"),
            (json!({"timeZone": "Mars/Olympus"}), "timeZone"),
            (json!({"timeZone": "x".repeat(10_000)}), "timeZone"),
            (json!({"format": "pdf"}), "format"),
            (json!({"recipients": []}), "recipients"),
            (
                json!({"recipients": ["ops@example.com\r\nBcc: spy@example.com"]}),
                "recipients",
            ),
            (json!({"recipients": ["a\u{0}@example.com"]}), "recipients[0]"),
            (
                json!({"recipients": [format!("{}@example.com", "a".repeat(10_000))]}),
                "recipients",
            ),
            (
                json!({"recipients": (0..51).map(|i| format!("r{i}@example.com")).collect::<Vec<_>>()}),
                "recipients",
            ),
            (json!({"organizationId": uuid::Uuid::now_v7()}), "organizationId"),
        ];
        for (change, field) in cases {
            let mut body = good.clone();
            for (key, value) in change.as_object().unwrap() {
                body[key] = value.clone();
            }
            let error = expect_error(
                send(&app, Method::POST, SCHEDULES, &root, Some(body)).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(error["details"][0]["field"], field, "{change}: {error}");
        }
        // Bodies that do not parse: huge numbers, wrong types, unknown fields, no body.
        for body in [
            json!({"dayOfMonth": 1e30}),
            json!({"dayOfMonth": "3"}),
            json!({"recipients": "ops@example.com"}),
            json!({"enabled": "yes"}),
            json!({"extra": true}),
        ] {
            let mut sent = good.clone();
            for (key, value) in body.as_object().unwrap() {
                sent[key] = value.clone();
            }
            expect_error(
                send(&app, Method::POST, SCHEDULES, &root, Some(sent)).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
        }
        let empty = app
            .authed(Method::POST, SCHEDULES, &root.token)
            .send()
            .await
            .unwrap();
        assert!(empty.status().is_client_error(), "{}", empty.status());
        let text = app
            .authed(Method::POST, SCHEDULES, &root.token)
            .header("content-type", "text/plain")
            .body(good.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(app.count_rows("report_schedules").await, 0);

        // Unknown schedules are 404 everywhere.
        let missing = format!("{SCHEDULES}/{}", uuid::Uuid::now_v7());
        for (method, path, body) in [
            (Method::GET, missing.clone(), None),
            (Method::PUT, missing.clone(), Some(good.clone())),
            (Method::DELETE, missing.clone(), None),
            (Method::POST, format!("{missing}/send-test"), None),
        ] {
            expect_error(
                send(&app, method, &path, &root, body).await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
        }

        // Unsubscribe links: forged, truncated, absent.
        let created = expect_data(
            send(&app, Method::POST, SCHEDULES, &root, Some(good.clone())).await,
            StatusCode::CREATED,
        )
        .await;
        let id = created["id"].as_str().unwrap();
        send(
            &app,
            Method::POST,
            &format!("{SCHEDULES}/{id}/send-test"),
            &root,
            None,
        )
        .await;
        let token = smtp.wait_for("ops@example.com", 1).await.link_token();
        let (recipient, tag) = token.split_at(32);
        for forged in [
            format!("{recipient}AAAA"),
            format!("{}{tag}", uuid::Uuid::now_v7().simple()),
            token[..token.len() - 2].to_owned(),
            "x".repeat(10_000),
        ] {
            let response = app
                .client
                .post(app.url(&format!("/api/v1/report-unsubscribe?token={forged}")))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{forged}");
        }
        let response = app
            .client
            .post(app.url("/api/v1/report-unsubscribe"))
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        // The recipient is still subscribed; a schedule whose recipients all left sends no test.
        let listed = expect_data(
            send(&app, Method::GET, SCHEDULES, &auditor, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed[0]["recipients"][0]["unsubscribedAt"], Value::Null);
        let left = app
            .client
            .post(app.url(&format!("/api/v1/report-unsubscribe?token={token}")))
            .send()
            .await
            .unwrap();
        assert_eq!(left.status(), StatusCode::OK);
        clock.set(Utc::now() + Span::minutes(2));
        let none = send(
            &app,
            Method::POST,
            &format!("{SCHEDULES}/{id}/send-test"),
            &root,
            None,
        )
        .await;
        // (The test's minute is the scheduler clock's: a new minute, so not 429.)
        expect_error(none, StatusCode::CONFLICT, "CONFLICT").await;
        // The auditor reads but may not test or delete.
        for (method, path) in [
            (Method::POST, format!("{SCHEDULES}/{id}/send-test")),
            (Method::DELETE, format!("{SCHEDULES}/{id}")),
        ] {
            expect_error(
                send(&app, method, &path, &auditor, None).await,
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
            )
            .await;
        }
    })
    .await;
}

#[tokio::test]
async fn two_operators_creating_the_last_schedules_at_once_stay_within_the_limit() {
    each_backend(|backend| async move {
        let smtp = SmtpServer::start().await;
        let clock = Clock::manual(Utc::now());
        let app = app_with_clock(backend, &smtp, &clock).await;
        let root = root(&app).await;
        let body = schedule_body("07:00", &["ops@example.com"]);
        // 198 stored one by one, then four at once for the last two places.
        for _ in 0..198 {
            expect_data(
                send(&app, Method::POST, SCHEDULES, &root, Some(body.clone())).await,
                StatusCode::CREATED,
            )
            .await;
        }
        let racing: Vec<_> = (0..4)
            .map(|_| send(&app, Method::POST, SCHEDULES, &root, Some(body.clone())))
            .collect();
        let statuses: Vec<StatusCode> = futures_util::future::join_all(racing)
            .await
            .into_iter()
            .map(|response| response.status())
            .collect();
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
            2,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(),
            2,
            "{statuses:?}"
        );
        assert_eq!(app.count_rows("report_schedules").await, 200);
    })
    .await;
}

#[tokio::test]
async fn the_unsubscribe_page_is_served_when_the_product_has_its_own_front_end() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.app_url = Some("https://app.example.com".to_owned());
        })
        .await;
        let page = app.get("/report-unsubscribe?token=x").await;
        assert_eq!(page.status(), StatusCode::OK);
        assert!(page.text().await.unwrap().contains("Unsubscribe"));
        // The account pages are the product's then.
        assert_eq!(app.get("/verify-email").await.status(), StatusCode::NOT_FOUND);
    })
    .await;
}
