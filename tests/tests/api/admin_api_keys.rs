//! Operators mint, list and revoke the application API keys device apps register with.

use reqwest::{Method, StatusCode};
use serde_json::json;
use steward_tests::{each_backend, expect_data, expect_error, send, spawn_app};

#[tokio::test]
async fn super_admins_mint_list_and_revoke_api_keys_that_work_at_once() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let owner = app.user("owner@example.com").await;

        let refused = send(
            &app,
            Method::POST,
            "/api/admin/v1/api-keys",
            &user_admin,
            Some(json!({"name": "App"})),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{backend:?}");
        for name in ["", "   ", &"x".repeat(101)] {
            let bad = send(
                &app,
                Method::POST,
                "/api/admin/v1/api-keys",
                &root,
                Some(json!({"name": name})),
            )
            .await;
            expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }

        let response = send(
            &app,
            Method::POST,
            "/api/admin/v1/api-keys",
            &root,
            Some(json!({"name": " Family app "})),
        )
        .await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let created = expect_data(response, StatusCode::CREATED).await;
        let secret = created["secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("stw_key_"), "{created}");
        assert_eq!(created["name"], "Family app");
        assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
        let id = created["id"].as_str().unwrap().to_owned();

        // The key registers devices; the listing never shows a secret.
        let register = |key: &str| {
            app.authed(Method::POST, "/api/v1/devices/register", &owner.token)
                .header("x-api-key", key)
                .json(&json!({"deviceId": "phone-1", "displayName": "Phone", "platform": "android"}))
                .send()
        };
        assert!(
            register(&secret).await.unwrap().status().is_success(),
            "{backend:?}"
        );
        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/api-keys", &root, None).await,
            StatusCode::OK,
        )
        .await;
        let listed_key = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap()
            .clone();
        assert!(listed_key.get("secret").is_none(), "{listed_key}");
        assert!(
            !listed_key["lastUsedAt"].is_null(),
            "{backend:?}: its use is recorded"
        );
        assert!(!listed.to_string().contains(&secret));

        // Revoked: refused at once on this instance; a second revocation is 404.
        let revoked = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/api-keys/{id}"),
            &root,
            None,
        )
        .await;
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT, "{backend:?}");
        expect_error(
            register(&secret).await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        let again = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/api-keys/{id}"),
            &root,
            None,
        )
        .await;
        expect_error(again, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let actions = app.audit_actions().await;
        assert!(
            actions.iter().any(|a| a == "apikey.created") && actions.iter().any(|a| a == "apikey.revoked")
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_rotated_key_keeps_its_old_secret_for_the_overlap_only_and_counts_requests_per_day() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let created = expect_data(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/api-keys",
                &root,
                Some(json!({"name": "App"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let old = created["secret"].as_str().unwrap().to_owned();
        let register = |key: &str, device: &str| {
            app.authed(Method::POST, "/api/v1/devices/register", &owner.token)
                .header("x-api-key", key)
                .json(&json!({"deviceId": device, "displayName": "Phone", "platform": "android"}))
                .send()
        };
        let rotate = format!("/api/admin/v1/api-keys/{id}/rotate");

        // Hostile overlaps and bodies are refused; nothing rotates.
        for body in [
            json!({"overlapSeconds": -1}),
            json!({"overlapSeconds": 2_592_001}),
            json!({"overlapSeconds": 1e300}),
            json!({"overlapSeconds": "soon"}),
            json!({"overlap": 5}),
        ] {
            let refused = send(&app, Method::POST, &rotate, &root, Some(body.clone())).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body} {backend:?}");
        }
        let malformed = app
            .authed(Method::POST, &rotate, &root.token)
            .header("content-type", "application/json")
            .body("{\"overlapSeconds\":")
            .send()
            .await
            .unwrap();
        assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
        assert!(
            register(&old, "phone-0").await.unwrap().status().is_success(),
            "{backend:?}"
        );

        // The default overlap is 24 hours.
        let response = send(&app, Method::POST, &rotate, &root, None).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let first = expect_data(response, StatusCode::OK).await;
        let until: chrono::DateTime<chrono::Utc> =
            first["previousValidUntil"].as_str().unwrap().parse().unwrap();
        let hours = (until - chrono::Utc::now()).num_minutes();
        assert!((23 * 60..=24 * 60).contains(&hours), "{first}");
        let second_secret = first["secret"].as_str().unwrap().to_owned();
        assert_ne!(second_secret, old);
        assert!(
            register(&old, "phone-1").await.unwrap().status().is_success(),
            "{backend:?}"
        );
        assert!(
            register(&second_secret, "phone-2")
                .await
                .unwrap()
                .status()
                .is_success()
        );

        // Rotating again with a 2-second overlap ends the first secret now; the second works
        // for 2 seconds, the newest throughout.
        let third = expect_data(
            send(
                &app,
                Method::POST,
                &rotate,
                &root,
                Some(json!({"overlapSeconds": 2})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let newest = third["secret"].as_str().unwrap().to_owned();
        expect_error(
            register(&old, "phone-3").await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        assert!(
            register(&second_secret, "phone-4")
                .await
                .unwrap()
                .status()
                .is_success()
        );
        tokio::time::sleep(std::time::Duration::from_millis(2_500)).await;
        expect_error(
            register(&second_secret, "phone-5").await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        assert!(register(&newest, "phone-6").await.unwrap().status().is_success());

        // Every accepted request is counted on its day.
        let listed = expect_data(
            send(&app, Method::GET, "/api/admin/v1/api-keys", &root, None).await,
            StatusCode::OK,
        )
        .await;
        let key = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id.as_str())
            .unwrap()
            .clone();
        let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
        assert_eq!(
            key["usage"],
            json!([{"day": today, "requests": 5}]),
            "{backend:?}"
        );
        assert_eq!(key["prefix"], third["prefix"]);
        assert!(newest.starts_with(key["prefix"].as_str().unwrap()));
        assert!(!listed.to_string().contains(&newest));

        // Revoked keys do not rotate; unknown keys neither; nor may anyone but api_keys:write.
        let user_admin = app.user("ua@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let refused = send(&app, Method::POST, &rotate, &user_admin, None).await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/api-keys/{id}"),
            &root,
            None,
        )
        .await;
        let gone = send(&app, Method::POST, &rotate, &root, None).await;
        expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        expect_error(
            register(&newest, "phone-7").await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        let unknown = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/api-keys/{}/rotate", uuid::Uuid::now_v7()),
            &root,
            None,
        )
        .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert!(app.audit_actions().await.iter().any(|a| a == "apikey.rotated"));
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn of_two_concurrent_rotations_of_one_key_one_wins_and_the_original_secret_keeps_its_overlap() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let rounds = 6;
        let mut sequential = 0;
        for round in 0..rounds {
            let created = expect_data(
                send(
                    &app,
                    Method::POST,
                    "/api/admin/v1/api-keys",
                    &root,
                    Some(json!({"name": format!("App {round}")})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
            let id = created["id"].as_str().unwrap().to_owned();
            let original = created["secret"].as_str().unwrap().to_owned();
            let rotate = format!("/api/admin/v1/api-keys/{id}/rotate");
            let (a, b) = tokio::join!(
                send(&app, Method::POST, &rotate, &root, None),
                send(&app, Method::POST, &rotate, &root, None)
            );
            // Two rotations that both read the key before either wrote: one wins, the other is
            // refused (it would end the winner's overlap at once). Ones that did not overlap in
            // time both succeed, the second ending the original secret as documented.
            let (a_ok, b_ok) = (a.status() == StatusCode::OK, b.status() == StatusCode::OK);
            assert!(a_ok || b_ok, "round {round} {backend:?}");
            let both = a_ok && b_ok;
            if both {
                sequential += 1;
            }
            let (winner, loser) = if a_ok { (a, b) } else { (b, a) };
            if !both {
                expect_error(loser, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
            }
            let newest = expect_data(winner, StatusCode::OK).await["secret"]
                .as_str()
                .unwrap()
                .to_owned();
            // Devices still holding the original secret keep working through the overlap.
            for (secret, device) in [(&original, "old"), (&newest, "new")] {
                if both && device == "old" {
                    continue;
                }
                let registered = app
                    .authed(Method::POST, "/api/v1/devices/register", &owner.token)
                    .header("x-api-key", secret.as_str())
                    .json(&json!({
                        "deviceId": format!("phone-{round}-{device}"),
                        "displayName": "Phone",
                        "platform": "android"
                    }))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    registered.status().is_success(),
                    "{device} round {round} {backend:?}"
                );
            }
        }
        // The race itself must have happened for this test to mean anything.
        assert!(sequential < rounds, "no two rotations overlapped {backend:?}");
    })
    .await;
}
