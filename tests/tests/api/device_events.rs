//! Device events end to end: a device's batches (item by item, idempotent), queries with each
//! filter, full text and cursor paging under inserts, counts, server events from the audit,
//! live streams with `Last-Event-ID` replay (and across two instances on PostgreSQL),
//! retention, and every refusal.

use std::time::{Duration, Instant};

use chrono::{Duration as Span, SecondsFormat, Utc};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use steward_tests::docs;
use steward_tests::fleet::{Org, as_device, enrolled, organization, token};
use steward_tests::{
    Backend, TestApp, TestUser, each_backend, expect_data, expect_error, run_maintenance, send, spawn_app,
    spawn_second_instance,
};

fn ago(span: Span) -> String {
    (Utc::now() - span).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn events_path(device: &str) -> String {
    format!("/api/v1/devices/{device}/events")
}

async fn post_events(app: &TestApp, device: &str, token: &str, key: Option<&str>, events: Value) -> Response {
    let mut request = app
        .client
        .post(app.url(&events_path(device)))
        .bearer_auth(token)
        .json(&json!({"events": events}));
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    request.send().await.unwrap()
}

async fn list(app: &TestApp, user: &TestUser, path: &str) -> (Vec<Value>, Option<String>) {
    let response = send(app, Method::GET, path, user, None).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    (
        body["data"].as_array().unwrap().clone(),
        body["meta"]["nextCursor"].as_str().map(str::to_owned),
    )
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["type"].as_str().unwrap().to_owned())
        .collect()
}

async fn fleet_device(app: &TestApp, org: &Org, name: &str) -> (String, String) {
    let (_, secret) = token(app, org, json!({"maxUses": 10})).await;
    let (device, device_token, _) = enrolled(app, &secret, name).await;
    (device, device_token)
}

#[tokio::test]
async fn batches_are_checked_by_item_stored_once_and_read_with_every_filter() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "events").await;
        let (phone, phone_token) = fleet_device(&app, &org, "phone-1").await;
        let (tablet, tablet_token) = fleet_device(&app, &org, "tablet-1").await;

        let batch = json!([
            {"type": "app.installed", "occurredAt": ago(Span::minutes(50)), "summary": "Maps installed",
             "data": {"packageName": "com.example.maps", "version": "12.4"}},
            {"type": "battery.low", "occurredAt": ago(Span::minutes(40)), "severity": "warning", "data": {"level": 9}},
            {"type": "custom.door_opened", "occurredAt": ago(Span::minutes(30)), "severity": "critical"},
            {"type": "app.installed", "occurredAt": ago(Span::minutes(-10))},
            {"type": "battery.low", "occurredAt": ago(Span::minutes(1)), "summary": "a\u{7}b"},
            {"type": "device.suspended", "occurredAt": ago(Span::minutes(1))},
        ]);
        let first = expect_data(
            post_events(&app, &phone, &phone_token, Some("batch-1"), batch.clone()).await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!((first["accepted"].as_u64(), first["rejected"].as_u64()), (Some(3), Some(3)), "{first}");
        let refused: Vec<(u64, &str)> = first["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|problem| (problem["index"].as_u64().unwrap(), problem["field"].as_str().unwrap()))
            .collect();
        assert_eq!(refused, [(3, "occurredAt"), (4, "summary"), (5, "type")]);
        // The same batch again is stored once; another batch under the key is a conflict.
        let again = expect_data(
            post_events(&app, &phone, &phone_token, Some("batch-1"), batch).await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!((again["accepted"].as_u64(), again["duplicate"].as_u64()), (Some(0), Some(3)), "{again}");
        let other = post_events(&app, &phone, &phone_token, Some("batch-1"), json!([
            {"type": "system.booted", "occurredAt": ago(Span::minutes(1))}])).await;
        expect_error(other, StatusCode::CONFLICT, "CONFLICT").await;
        expect_data(
            post_events(&app, &tablet, &tablet_token, None, json!([
                {"type": "app.removed", "occurredAt": ago(Span::minutes(20)), "data": {"packageName": "com.example.chess"}}])).await,
            StatusCode::ACCEPTED,
        )
        .await;

        // The organization sees both devices' stories, the enrollments (server events) included.
        let owner = &org.owner;
        let all = list(&app, owner, &org.path("/events?limit=200")).await.0;
        let reported: Vec<&Value> = all.iter().filter(|event| event["source"] == "device").collect();
        assert_eq!(reported.len(), 4, "{all:?}");
        assert!(all.iter().any(|event| event["source"] == "server"
            && event["type"] == "device.enrolled"
            && event["deviceId"] == phone.as_str()), "{all:?}");
        let by = |query: &str| {
            let path = org.path(&format!("/events?{query}"));
            let app = &app;
            async move { list(app, owner, &path).await }
        };
        assert_eq!(kinds(&by("type=app.").await.0), ["app.removed", "app.installed"]);
        assert_eq!(kinds(&by("severity=warning").await.0), ["custom.door_opened", "battery.low"]);
        assert_eq!(kinds(&by("severity=critical").await.0), ["custom.door_opened"]);
        assert_eq!(kinds(&by(&format!("deviceId={tablet}&type=app")).await.0), ["app.removed"]);
        assert_eq!(kinds(&by("q=maps").await.0), ["app.installed"]);
        assert_eq!(kinds(&by("q=com.example%20CHESS").await.0), ["app.removed"]);
        assert!(by("q=nothing-like-this").await.0.is_empty());
        let from = ago(Span::minutes(45)).replace('+', "%2B");
        let to = ago(Span::minutes(25)).replace('+', "%2B");
        assert_eq!(
            kinds(&by(&format!("from={from}&to={to}&type=custom.")).await.0),
            ["custom.door_opened"]
        );
        assert_eq!(kinds(&by(&format!("from={from}&to={to}&type=b")).await.0), ["battery.low"]);

        // Counts for charts.
        let counts = |query: &str| {
            let request = send(&app, Method::GET, &org.path(&format!("/events/counts?{query}")), owner, None);
            async move { expect_data(request.await, StatusCode::OK).await }
        };
        let by_type = counts("groupBy=type&type=app.").await;
        assert_eq!(by_type, json!([{"key": "app.installed", "count": 1}, {"key": "app.removed", "count": 1}]));
        let by_device = counts("groupBy=device&type=battery").await;
        assert_eq!(by_device, json!([{"key": phone, "count": 1}]));
        let by_day = counts("groupBy=day&severity=warning").await;
        let day_total: u64 = by_day.as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum();
        assert_eq!(day_total, 2, "{by_day}");
        expect_error(
            send(&app, Method::GET, &org.path("/events/counts"), owner, None).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;

        // Cursor paging, with newer and older events arriving between pages: no duplicates, no
        // gaps among the events there were when paging started.
        let more: Vec<Value> = (0..7)
            .map(|n| json!({"type": "custom.tick", "occurredAt": ago(Span::minutes(10 + n)), "data": {"n": n}}))
            .collect();
        expect_data(post_events(&app, &phone, &phone_token, None, json!(more)).await, StatusCode::ACCEPTED).await;
        let path = format!("{}?type=custom.tick&limit=3", events_path(&phone));
        // The device's own route is for those who may read its settings: here a super_admin.
        let root = &org.root;
        let (mut seen, mut cursor) = list(&app, root, &path).await;
        while let Some(next) = cursor {
            expect_data(
                post_events(&app, &phone, &phone_token, None, json!([
                    {"type": "custom.tick", "occurredAt": ago(Span::minutes(1)), "data": {"n": "newer"}}])).await,
                StatusCode::ACCEPTED,
            )
            .await;
            let (page, following) = list(&app, root, &format!("{path}&cursor={next}")).await;
            seen.extend(page);
            cursor = following;
        }
        let ticks: Vec<i64> = seen.iter().filter_map(|event| event["data"]["n"].as_i64()).collect();
        assert_eq!(ticks, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(seen.len(), 7, "the newer ones sort before the first page");

        // The documented batch, sent as written (its times moved to now) with its key.
        let block = docs::block("docs/events.md", "POST /api/v1/devices/{deviceId}/events").text;
        let key = block.lines().find_map(|line| line.strip_prefix("Idempotency-Key: ")).unwrap();
        let (request, answer) = block.split_once("→ 202 ").unwrap();
        let body = request[request.find("{\"events\"").unwrap()..]
            .replace("2026-12-03T09:58:12Z", &ago(Span::minutes(2)))
            .replace("2026-12-03T09:59:40Z", &ago(Span::minutes(1)))
            .replace("2026-12-04T10:00:00Z", &ago(Span::days(-1)));
        let body: Value = serde_json::from_str(&body).unwrap();
        let documented: Value = serde_json::from_str(answer).unwrap();
        let (tablet2, tablet2_token) = fleet_device(&app, &org, "tablet-2").await;
        let sent = post_events(&app, &tablet2, &tablet2_token, Some(key), body["events"].clone()).await;
        assert_eq!(expect_data(sent, StatusCode::ACCEPTED).await, documented["data"]);

        // Who may read and write: the device itself posts; its organization's users read.
        let stranger = app.user("stranger@example.com").await;
        expect_error(
            send(&app, Method::GET, &org.path("/events"), &stranger, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        expect_error(
            send(&app, Method::GET, &events_path(&phone), &stranger, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        // Another device's token: 404, as for anyone else.
        let foreign = post_events(&app, &phone, &tablet_token, None, json!([
            {"type": "system.booted", "occurredAt": ago(Span::minutes(1))}])).await;
        expect_error(foreign, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let read_other = as_device(&app, Method::GET, &events_path(&phone), &tablet_token, None).await;
        expect_error(read_other, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let own = as_device(&app, Method::GET, &events_path(&phone), &phone_token, None).await;
        expect_data(own, StatusCode::OK).await;

        // A personal device: its owner reads, but only the device reports.
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let (personal, personal_token) = app.device(&key, &ann, "ann-phone").await;
        expect_data(
            post_events(&app, &personal, &personal_token, None, json!([
                {"type": "user.signed_in", "occurredAt": ago(Span::minutes(2))}])).await,
            StatusCode::ACCEPTED,
        )
        .await;
        let mine = list(&app, &ann, &format!("{}?type=user.", events_path(&personal))).await.0;
        assert_eq!(kinds(&mine), ["user.signed_in"]);
        let by_owner = send(&app, Method::POST, &events_path(&personal), &ann,
            Some(json!({"events": [{"type": "system.booted", "occurredAt": ago(Span::minutes(1))}]}))).await;
        expect_error(by_owner, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        // The organization never sees a personal device's events.
        assert!(list(&app, owner, &org.path(&format!("/events?deviceId={personal}"))).await.0.is_empty());
        // Given to Bob, the device's earlier story stays Ann's: Bob reads from his time on.
        let bob = app.user("bob@example.com").await;
        expect_data(
            send(&app, Method::POST, &format!("/api/v1/users/{}/devices/{personal}/transfer", ann.id), root,
                Some(json!({"toUserId": bob.id}))).await,
            StatusCode::OK,
        )
        .await;
        expect_data(
            post_events(&app, &personal, &personal_token, None, json!([
                {"type": "user.signed_out", "occurredAt": ago(Span::minutes(1))}])).await,
            StatusCode::ACCEPTED,
        )
        .await;
        let bobs = list(&app, &bob, &format!("{}?type=user.", events_path(&personal))).await.0;
        assert_eq!(kinds(&bobs), ["user.signed_out"]);
        let whole = list(&app, root, &format!("{}?type=user.", events_path(&personal))).await.0;
        assert_eq!(kinds(&whole), ["user.signed_out", "user.signed_in"]);
        let own_story = as_device(&app, Method::GET, &format!("{}?type=user.", events_path(&personal)), &personal_token, None).await;
        assert_eq!(expect_data(own_story, StatusCode::OK).await.as_array().unwrap().len(), 1);
        expect_error(
            send(&app, Method::GET, &events_path(&personal), &ann, None).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;

        // Hostile input.
        let bad = |query: &'static str| {
            let request = send(&app, Method::GET, &format!("{}?{query}", events_path(&phone)), root, None);
            async move {
                let response = request.await;
                assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
                expect_error(response, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await
            }
        };
        for query in ["cursor=junk", "limit=0", "limit=201", "limit=99999999999999999999", "severity=fatal",
            "from=yesterday", "unknown=1", "deviceId=x", "q=%00", "type=%00"] {
            bad(query).await;
        }
        let long = format!("q={}", (0..20).map(|n| format!("w{n}")).collect::<Vec<_>>().join("%20"));
        expect_error(
            send(&app, Method::GET, &format!("{}?{long}", events_path(&phone)), root, None).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let raw = |body: &'static str, content_type: &'static str| {
            app.client
                .post(app.url(&events_path(&phone)))
                .bearer_auth(&phone_token)
                .header("content-type", content_type)
                .body(body)
                .send()
        };
        expect_error(raw("{", "application/json").await.unwrap(), StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        expect_error(raw("{}", "application/json").await.unwrap(), StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        expect_error(raw(r#"{"events": []}"#, "application/json").await.unwrap(), StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        expect_error(raw(r#"{"events": 5}"#, "application/json").await.unwrap(), StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let wrong_type = raw(r#"{"events": []}"#, "text/plain").await.unwrap();
        assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let too_many: Vec<Value> = (0..501).map(|_| json!({"type": "system.booted", "occurredAt": ago(Span::minutes(1))})).collect();
        expect_error(
            post_events(&app, &phone, &phone_token, None, json!(too_many)).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let odd = expect_data(
            post_events(&app, &phone, &phone_token, None, json!([
                {"type": "system.booted", "occurredAt": 1e300},
                {"type": "x".repeat(10_000), "occurredAt": ago(Span::minutes(1))},
                {"type": "system.booted", "occurredAt": ago(Span::minutes(1)), "data": {"big": "y".repeat(17_000)}},
                {"type": "system.booted", "occurredAt": ago(Span::minutes(1)), "data": {"k\u{1}": 1}},
                {"type": "system.booted", "occurredAt": "+275760-09-13T00:00:00Z"},
                {"type": "system.booted", "occurredAt": ago(Span::minutes(1)), "summary": 5}
            ])).await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!((odd["accepted"].as_u64(), odd["rejected"].as_u64()), (Some(0), Some(6)), "{odd}");
        // A NUL anywhere in a body refuses the whole request, as everywhere in the API.
        let nul = post_events(&app, &phone, &phone_token, None, json!([
            {"type": "system.booted", "occurredAt": ago(Span::minutes(1)), "summary": "a\u{0}b"}])).await;
        expect_error(nul, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let bad_key = post_events(&app, &phone, &phone_token, Some("has space"), json!([
            {"type": "system.booted", "occurredAt": ago(Span::minutes(1))}])).await;
        expect_error(bad_key, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        app.stop().await;
    })
    .await;
}

/// Reads the stream until `count` `device_event` messages arrived (or 10 s passed); answers
/// their (id, type) and how long the first took.
async fn read_events(response: &mut Response, count: usize) -> (Vec<(String, String)>, Duration) {
    let started = Instant::now();
    let mut first = None;
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while events.len() < count {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} events arrived: {events:?}", events.len()))
            .unwrap()
            .expect("the stream ended");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let message: String = buffer.drain(..end + 2).collect();
            if !message.contains("event: device_event") {
                continue;
            }
            let id = message
                .lines()
                .find_map(|line| line.strip_prefix("id: "))
                .unwrap()
                .to_owned();
            let data: Value = serde_json::from_str(
                message
                    .lines()
                    .find_map(|line| line.strip_prefix("data: "))
                    .unwrap(),
            )
            .unwrap();
            first.get_or_insert_with(|| started.elapsed());
            events.push((id, data["type"].as_str().unwrap().to_owned()));
        }
    }
    (events, first.unwrap_or_default())
}

fn subscribe(
    app_url: &str,
    client: &reqwest::Client,
    path: &str,
    user: &TestUser,
    last: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = client.get(format!("{app_url}{path}")).bearer_auth(&user.token);
    if let Some(last) = last {
        request = request.header("last-event-id", last);
    }
    request
}

#[tokio::test]
async fn streams_deliver_live_replay_after_a_reconnect_and_cross_instances() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "live").await;
        let (phone, phone_token) = fleet_device(&app, &org, "live-1").await;
        let stream_path = format!("{}/stream?type=custom.", events_path(&phone));

        let mut stream = subscribe(&app.address, &app.client, &stream_path, &org.root, None)
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status(), StatusCode::OK);
        assert!(
            stream.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let first = String::from_utf8(stream.chunk().await.unwrap().unwrap().to_vec()).unwrap();
        // The stream opens as docs/events.md shows it.
        let documented = docs::block("docs/events.md", "event: device_event").text;
        assert!(documented.starts_with(&first), "{first:?}");
        let posted = Instant::now();
        expect_data(
            post_events(
                &app,
                &phone,
                &phone_token,
                None,
                json!([
                {"type": "custom.live", "occurredAt": ago(Span::seconds(1))},
                {"type": "system.booted", "occurredAt": ago(Span::seconds(1))}]),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let (live, _) = read_events(&mut stream, 1).await;
        let latency = posted.elapsed();
        assert_eq!(live[0].1, "custom.live");
        assert!(latency < Duration::from_secs(1), "the event took {latency:?}");
        drop(stream);

        // Three while disconnected; the reconnect replays exactly those, in order, then live.
        for n in 1..=3 {
            expect_data(
                post_events(
                    &app,
                    &phone,
                    &phone_token,
                    None,
                    json!([
                    {"type": format!("custom.missed_{n}"), "occurredAt": ago(Span::seconds(1))}]),
                )
                .await,
                StatusCode::ACCEPTED,
            )
            .await;
        }
        let mut stream = subscribe(
            &app.address,
            &app.client,
            &stream_path,
            &org.root,
            Some(&live[0].0),
        )
        .send()
        .await
        .unwrap();
        let (replayed, _) = read_events(&mut stream, 3).await;
        assert_eq!(
            replayed.iter().map(|(_, kind)| kind.as_str()).collect::<Vec<_>>(),
            ["custom.missed_1", "custom.missed_2", "custom.missed_3"]
        );
        expect_data(
            post_events(
                &app,
                &phone,
                &phone_token,
                None,
                json!([
                {"type": "custom.after", "occurredAt": ago(Span::seconds(1))}]),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        let (after, _) = read_events(&mut stream, 1).await;
        assert_eq!(after[0].1, "custom.after");
        assert!(after[0].0.parse::<i64>().unwrap() > replayed[2].0.parse::<i64>().unwrap());

        // The subscriber count is in /metrics while the stream is open.
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let open_streams = metrics
            .lines()
            .find_map(|line| line.strip_prefix("steward_event_stream_subscribers "))
            .and_then(|value| value.trim().parse::<f64>().ok());
        assert!(open_streams.is_some_and(|n| n >= 1.0), "{metrics}");
        drop(stream);

        // At most 16 streams per caller (here the organization's owner, on its stream).
        let org_stream = org.path("/events/stream");
        let mut open = Vec::new();
        for _ in 0..16 {
            let stream = subscribe(&app.address, &app.client, &org_stream, &org.owner, None)
                .send()
                .await
                .unwrap();
            assert_eq!(stream.status(), StatusCode::OK);
            open.push(stream);
        }
        let seventeenth = subscribe(&app.address, &app.client, &org_stream, &org.owner, None)
            .send()
            .await
            .unwrap();
        expect_error(seventeenth, StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED").await;
        drop(open);

        // The stream needs what the query needs; hostile headers are refused.
        let stranger = app.user("outsider@example.com").await;
        let refused = subscribe(&app.address, &app.client, &stream_path, &stranger, None)
            .send()
            .await
            .unwrap();
        expect_error(refused, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let bad_id = subscribe(&app.address, &app.client, &stream_path, &org.root, Some("-5"))
            .send()
            .await
            .unwrap();
        expect_error(bad_id, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let paged = subscribe(
            &app.address,
            &app.client,
            &format!("{stream_path}&limit=5"),
            &org.root,
            None,
        )
        .send()
        .await
        .unwrap();
        expect_error(paged, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        // Two instances on one PostgreSQL: posted on one, received on the other.
        if backend == Backend::Postgres {
            let (second, handle) = spawn_second_instance(&app).await;
            let mut remote = subscribe(
                &second,
                &app.client,
                &org.path("/events/stream?type=custom.remote"),
                &org.owner,
                None,
            )
            .send()
            .await
            .unwrap();
            assert_eq!(remote.status(), StatusCode::OK);
            remote.chunk().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let posted = Instant::now();
            expect_data(
                post_events(
                    &app,
                    &phone,
                    &phone_token,
                    None,
                    json!([
                    {"type": "custom.remote", "occurredAt": ago(Span::seconds(1))}]),
                )
                .await,
                StatusCode::ACCEPTED,
            )
            .await;
            let (received, _) = read_events(&mut remote, 1).await;
            assert_eq!(received[0].1, "custom.remote");
            assert!(
                posted.elapsed() < Duration::from_secs(1),
                "took {:?}",
                posted.elapsed()
            );
            drop(remote);
            handle.stop(false).await;
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn retention_removes_only_older_events_and_changes_are_server_events() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "keep").await;
        let (phone, phone_token) = fleet_device(&app, &org, "keep-1").await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let (personal, personal_token) = app.device(&key, &ann, "ann-keep").await;

        let old_and_new = json!([
            {"type": "custom.old", "occurredAt": ago(Span::hours(50))},
            {"type": "custom.new", "occurredAt": ago(Span::hours(1))}]);
        expect_data(
            post_events(&app, &phone, &phone_token, None, old_and_new.clone()).await,
            StatusCode::ACCEPTED,
        )
        .await;
        expect_data(
            post_events(&app, &personal, &personal_token, None, old_and_new).await,
            StatusCode::ACCEPTED,
        )
        .await;
        // The configured 90 days: older is refused.
        let too_old = expect_data(
            post_events(
                &app,
                &personal,
                &personal_token,
                None,
                json!([
                {"type": "custom.ancient", "occurredAt": ago(Span::days(91))}]),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(too_old["rejected"], 1);

        // The organization keeps a day; owners set it, strangers learn nothing.
        let retention = org.path("/event-retention");
        let set = |user: &TestUser, body: Value| send(&app, Method::PUT, &retention, user, Some(body));
        assert_eq!(
            expect_data(
                send(&app, Method::GET, &retention, &org.owner, None).await,
                StatusCode::OK
            )
            .await,
            json!({"days": 90, "own": false})
        );
        for body in [
            json!({"days": 0}),
            json!({"days": 3651}),
            json!({"days": -1}),
            json!({"days": "x"}),
            json!({"days": 1e20}),
            json!({"weeks": 1}),
        ] {
            expect_error(
                set(&org.owner, body).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
        }
        let stranger = app.user("stranger@example.com").await;
        expect_error(
            set(&stranger, json!({"days": 1})).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        assert_eq!(
            expect_data(set(&org.owner, json!({"days": 1})).await, StatusCode::OK).await,
            json!({"days": 1, "own": true})
        );
        let refused = expect_data(
            post_events(
                &app,
                &phone,
                &phone_token,
                None,
                json!([
                {"type": "custom.stale", "occurredAt": ago(Span::hours(30))}]),
            )
            .await,
            StatusCode::ACCEPTED,
        )
        .await;
        assert_eq!(refused["rejected"], 1);

        run_maintenance(&app, false).await;
        let org_events = list(&app, &org.owner, &org.path("/events?type=custom.")).await.0;
        assert_eq!(kinds(&org_events), ["custom.new"]);
        let personal_events = list(&app, &ann, &format!("{}?type=custom.", events_path(&personal)))
            .await
            .0;
        assert_eq!(kinds(&personal_events), ["custom.new", "custom.old"]);
        let counted = expect_data(
            send(
                &app,
                Method::GET,
                &org.path("/events/counts?groupBy=type&type=custom."),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(counted, json!([{"key": "custom.new", "count": 1}]));

        // A fleet action is part of the device's story, from its audit entry.
        expect_data(
            send(
                &app,
                Method::POST,
                &org.path(&format!("/devices/{phone}/suspend")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let story = list(
            &app,
            &org.owner,
            &org.path(&format!("/events?deviceId={phone}&type=device.")),
        )
        .await
        .0;
        assert_eq!(kinds(&story)[0], "device.suspended");
        assert_eq!(story[0]["source"], "server");
        assert_eq!(story[0]["severity"], "warning");
        assert_eq!(story[0]["data"]["actorId"], org.owner.id.to_string());
        // A suspended device reports nothing.
        let suspended = post_events(
            &app,
            &phone,
            &phone_token,
            None,
            json!([
            {"type": "system.booted", "occurredAt": ago(Span::minutes(1))}]),
        )
        .await;
        expect_error(suspended, StatusCode::FORBIDDEN, "DEVICE_SUSPENDED").await;
        app.stop().await;
    })
    .await;
}

async fn sync(app: &TestApp, device: &str, token: &str, body: Value) -> Value {
    let response = app
        .client
        .post(app.url(&format!("/api/v1/devices/{device}/settings/sync")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    expect_data(response, StatusCode::OK).await
}

#[tokio::test]
async fn applied_and_non_compliant_reports_are_server_events_once_each() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        let ann = app.user("ann@example.com").await;
        let (phone, phone_token) = app.device(&key, &ann, "ann-applies").await;
        let path = format!("{}?type=settings.", events_path(&phone));
        let version = sync(&app, &phone, &phone_token, json!({"baseVersion": 0})).await["version"]
            .as_i64()
            .unwrap();

        // Two equal reports racing each other: one change, one event.
        let report = json!({"baseVersion": version, "appliedVersion": version});
        let (first, second) = tokio::join!(
            sync(&app, &phone, &phone_token, report.clone()),
            sync(&app, &phone, &phone_token, report.clone())
        );
        assert_eq!(first["version"], second["version"]);
        sync(&app, &phone, &phone_token, report).await;
        let story = list(&app, &ann, &path).await.0;
        assert_eq!(kinds(&story), ["settings.applied"]);
        assert_eq!(story[0]["source"], "server");
        assert_eq!(story[0]["severity"], "info");
        assert_eq!(story[0]["data"]["actorKind"], "device");
        assert_eq!(
            story[0]["data"]["after"],
            json!({"appliedVersion": version, "failures": null})
        );

        // Failures make it non-compliant: a warning, once for the same failures.
        let failing = json!({"baseVersion": version, "appliedVersion": version,
            "failures": [{"key": "device.camera_enabled", "reason": "managed by the OS"}]});
        sync(&app, &phone, &phone_token, failing.clone()).await;
        sync(&app, &phone, &phone_token, failing).await;
        let story = list(&app, &ann, &path).await.0;
        assert_eq!(kinds(&story), ["settings.non_compliant", "settings.applied"]);
        assert_eq!(story[0]["severity"], "warning");
        assert_eq!(
            story[0]["data"]["after"]["failures"][0]["reason"],
            "managed by the OS"
        );
        let warnings = list(&app, &ann, &format!("{path}&severity=warning")).await.0;
        assert_eq!(kinds(&warnings), ["settings.non_compliant"]);
        // Server events are searchable too (their words are stored by the database's trigger).
        let found = list(&app, &ann, &format!("{path}&q=Compliant%20OS")).await.0;
        assert_eq!(kinds(&found), ["settings.non_compliant"]);

        // Fixed: applied again, and the status agrees.
        sync(
            &app,
            &phone,
            &phone_token,
            json!({"baseVersion": version, "appliedVersion": version}),
        )
        .await;
        let story = list(&app, &ann, &path).await.0;
        assert_eq!(
            kinds(&story),
            ["settings.applied", "settings.non_compliant", "settings.applied"]
        );
        let status = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/devices/{phone}/settings/status"),
                &ann,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(status["appliedVersion"], version);
        assert_eq!(status["compliant"], true);
        // The audit has the same entries.
        let audited = app.audit_actions().await;
        let count = |action: &str| audited.iter().filter(|a| *a == action).count();
        assert_eq!(
            (count("settings.applied"), count("settings.non_compliant")),
            (2, 1)
        );

        // The same failures in another order, or repeated, are the same report.
        let two = |first: usize| {
            let failures = [
                json!({"key": "device.camera_enabled", "reason": "managed by the OS"}),
                json!({"key": "location.high_accuracy", "reason": "no GPS"}),
            ];
            json!({"baseVersion": version, "appliedVersion": version,
                "failures": [failures[first], failures[1 - first], failures[first]]})
        };
        sync(&app, &phone, &phone_token, two(0)).await;
        sync(&app, &phone, &phone_token, two(1)).await;
        let story = list(&app, &ann, &path).await.0;
        assert_eq!(kinds(&story)[..2], ["settings.non_compliant", "settings.applied"]);
        assert_eq!(story.len(), 4);
        assert_eq!(story[0]["data"]["after"]["failures"].as_array().map(Vec::len), Some(2));

        // Reports are bounded: 101 failures, a long key or reason, a control character.
        let refused = |failures: Value| {
            json!({"baseVersion": version, "appliedVersion": version, "failures": failures})
        };
        let many: Vec<Value> = (0..101)
            .map(|n| json!({"key": format!("k{n}"), "reason": "x"}))
            .collect();
        for (body, field) in [
            (refused(json!(many)), "failures"),
            (refused(json!([{"key": "k".repeat(129), "reason": ""}])), "failures.key"),
            (refused(json!([{"key": "", "reason": ""}])), "failures.key"),
            (refused(json!([{"key": "k", "reason": "r".repeat(501)}])), "failures.reason"),
            (refused(json!([{"key": "k", "reason": "line\u{1b}[2J"}])), "failures.reason"),
            (refused(json!([{"key": "k", "reason": "fine\u{202E}txt.exe"}])), "failures.reason"),
        ] {
            let response = app
                .client
                .post(app.url(&format!("/api/v1/devices/{phone}/settings/sync")))
                .bearer_auth(&phone_token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let error = expect_error(response, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
            assert_eq!(error["details"][0]["field"], field, "{error}");
        }

        // The device's own changes in the sync that reports: it has them, so the version it
        // was given is not behind.
        let own = sync(
            &app,
            &phone,
            &phone_token,
            json!({"baseVersion": version, "changes": {"location.high_accuracy": true},
                "appliedVersion": version}),
        )
        .await["version"]
            .as_i64()
            .unwrap();
        assert!(own > version);
        let story = list(&app, &ann, &path).await.0;
        assert_eq!(kinds(&story)[..2], ["settings.applied", "settings.synced"]);
        assert_eq!(story[0]["data"]["after"], json!({"appliedVersion": version, "failures": null}));

        // A change on the server: a report of an older version is non-compliant, without
        // failures too.
        let changed = send(
            &app,
            Method::PUT,
            &format!("/api/v1/devices/{phone}/settings"),
            &ann,
            Some(json!({"settings": {"location.high_accuracy": false}})),
        )
        .await;
        let newer = expect_data(changed, StatusCode::OK).await["version"].as_i64().unwrap();
        assert!(newer > own);
        sync(&app, &phone, &phone_token, json!({"baseVersion": newer, "appliedVersion": own})).await;
        let story = list(&app, &ann, &path).await.0;
        assert_eq!(story[0]["type"], "settings.non_compliant");
        assert_eq!(story[0]["severity"], "warning");
        assert_eq!(story[0]["data"]["after"], json!({"appliedVersion": own, "failures": null}));
        sync(&app, &phone, &phone_token, json!({"baseVersion": newer, "appliedVersion": newer})).await;
        let story = list(&app, &ann, &path).await.0;
        assert_eq!(story[0]["type"], "settings.applied");
        assert_eq!(story[0]["data"]["after"]["appliedVersion"], newer);
        app.stop().await;
    })
    .await;
}
