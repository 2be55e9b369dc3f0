//! Conditional polls of many devices at once: on PostgreSQL their versions are read in shared
//! batches, and each device must still get the answer for its own version.

use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_tests::{each_backend, expect_data, send, spawn_app};

#[tokio::test]
async fn many_devices_polling_at_once_each_get_their_own_answer() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let key = app.api_key().await;
        let owner = app.user("fleet-owner@example.com").await;
        let mut devices = Vec::new();
        for n in 0..24 {
            let (id, token) = app.device(&key, &owner, &format!("poller-{n}")).await;
            let response = app
                .client
                .get(app.url(&format!("/api/v1/devices/{id}/settings")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let etag = response.headers()["etag"].to_str().unwrap().to_owned();
            devices.push((id, token, etag));
        }
        // Every third device's settings change (its version moves on); the others stay.
        for (id, _, _) in devices.iter().step_by(3) {
            let changed = send(
                &app,
                Method::PUT,
                &format!("/api/v1/devices/{id}/settings"),
                &owner,
                Some(json!({"settings": {"location.high_accuracy": true}})),
            )
            .await;
            expect_data(changed, StatusCode::OK).await;
        }
        // Past the instance's one-second version cache, so every poll reads the database.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        for round in 0..3 {
            let polls: Vec<_> = devices
                .iter()
                .map(|(id, token, etag)| {
                    let request = app
                        .client
                        .get(app.url(&format!("/api/v1/devices/{id}/settings")))
                        .bearer_auth(token)
                        .header("if-none-match", etag);
                    tokio::spawn(async move { request.send().await.unwrap().status() })
                })
                .collect();
            for (n, poll) in polls.into_iter().enumerate() {
                let expected = if n % 3 == 0 {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_MODIFIED
                };
                assert_eq!(
                    poll.await.unwrap(),
                    expected,
                    "{backend:?}, round {round}, device {n}"
                );
            }
        }
        app.stop().await;
    })
    .await;
}
