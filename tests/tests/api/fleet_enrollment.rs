//! Enrollment end to end: enrollment tokens and their QR codes, refusals (revoked, expired,
//! used up), enrollment and device tokens, and the enrollment race.

use reqwest::{Method, StatusCode};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use steward_tests::fleet::{Org, enroll, enrolled, organization, past, post, token};
use steward_tests::{TestApp, each_backend, expect_data, expect_error, send, spawn_app};

#[tokio::test]
async fn enrollment_tokens_render_qr_codes_and_refuse_when_revoked_expired_or_used_up() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "acme").await;
        let created = post(
            &app,
            &org.owner,
            &org.path("/enrollment-tokens"),
            json!({"name": "Warehouse", "oneTime": true, "note": "shelf 3",
                "expiresAt": (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339(),
                "additionalData": {"site": "north"}}),
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        let secret = created["token"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("stw_enr_"), "{created}");
        assert_eq!(created["maxUses"], 1);
        assert_eq!(created["state"], "active");
        // Never readable again through the API.
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                &org.path("/enrollment-tokens"),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(!listed.to_string().contains(&secret), "{listed}");
        let one = expect_data(
            send(
                &app,
                Method::GET,
                &org.path(&format!("/enrollment-tokens/{id}")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(one.get("token").is_none(), "{one}");
        assert_eq!(one["note"], "shelf 3");

        // QR codes, PNG and SVG, carry the documented payload.
        let png = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr?size=256")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(png.status(), StatusCode::OK);
        assert_eq!(png.headers()["content-type"], "image/png");
        let bytes = png.bytes().await.unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let image = image::load_from_memory(&bytes).unwrap();
        assert!(image.width() >= 256, "{}", image.width());
        let svg = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr?format=svg")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(svg.headers()["content-type"], "image/svg+xml");
        assert!(svg.text().await.unwrap().contains("<svg"));
        let bad = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr?format=gif")),
            &org.owner,
            None,
        )
        .await;
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let code = qrcode_payload(&app, &org, &id).await;
        assert_eq!(code["enrollmentToken"], secret.as_str());
        assert_eq!(code["organizationId"], org.id.as_str());
        assert_eq!(code["v"], 1);
        assert!(code["serverUrl"].as_str().unwrap().starts_with("http"));

        // Bad specs are refused.
        for body in [
            json!({"maxUses": 0}),
            json!({"oneTime": true, "maxUses": 3}),
            json!({"expiresAt": "2001-01-01T00:00:00Z"}),
            json!({"additionalData": [1]}),
            json!({"policyId": uuid::Uuid::now_v7()}),
        ] {
            let refused = send(
                &app,
                Method::POST,
                &org.path("/enrollment-tokens"),
                &org.owner,
                Some(body),
            )
            .await;
            expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }

        // One use: the second device is refused; the first got the additional data.
        let (_, _, first) = enrolled(&app, code["enrollmentToken"].as_str().unwrap(), "dev-1").await;
        assert_eq!(first["additionalData"]["site"], "north");
        assert_eq!(first["organizationId"], org.id.as_str());
        let used_up = enroll(&app, &secret, "dev-2").await;
        expect_error(used_up, StatusCode::CONFLICT, "ENROLLMENT_TOKEN_USED_UP").await;
        let unknown = enroll(&app, "stw_enr_nope", "dev-2").await;
        expect_error(unknown, StatusCode::UNAUTHORIZED, "ENROLLMENT_TOKEN_INVALID").await;
        let no_qr = send(
            &app,
            Method::GET,
            &org.path(&format!("/enrollment-tokens/{id}/qr")),
            &org.owner,
            None,
        )
        .await;
        expect_error(no_qr, StatusCode::CONFLICT, "CONFLICT").await;

        // Revoked.
        let (revoked, revoked_secret) = token(&app, &org, json!({})).await;
        let gone = send(
            &app,
            Method::DELETE,
            &org.path(&format!("/enrollment-tokens/{revoked}")),
            &org.owner,
            None,
        )
        .await;
        assert_eq!(gone.status(), StatusCode::NO_CONTENT);
        expect_error(
            enroll(&app, &revoked_secret, "dev-3").await,
            StatusCode::GONE,
            "ENROLLMENT_TOKEN_EXPIRED",
        )
        .await;
        let again = send(
            &app,
            Method::DELETE,
            &org.path(&format!("/enrollment-tokens/{revoked}")),
            &org.owner,
            None,
        )
        .await;
        expect_error(again, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // Expired: moved into the past directly in the database.
        let (expiring, expiring_secret) = token(&app, &org, json!({})).await;
        {
            use steward_persistence::entities::enrollment_tokens;
            enrollment_tokens::Entity::update_many()
                .col_expr(enrollment_tokens::Column::ExpiresAt, Expr::value(Some(past())))
                .filter(enrollment_tokens::Column::Id.eq(expiring.parse::<uuid::Uuid>().unwrap()))
                .exec(app.db.connection())
                .await
                .unwrap();
        }
        expect_error(
            enroll(&app, &expiring_secret, "dev-4").await,
            StatusCode::GONE,
            "ENROLLMENT_TOKEN_EXPIRED",
        )
        .await;
        let state = expect_data(
            send(
                &app,
                Method::GET,
                &org.path(&format!("/enrollment-tokens/{expiring}")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(state["state"], "expired");
        assert_eq!(
            app.count_rows("devices").await,
            1,
            "refused enrollments created nothing"
        );
        let actions = app.audit_actions().await;
        assert!(actions.contains(&"enrollment_token.created".to_owned()));
        assert!(actions.contains(&"enrollment_token.revoked".to_owned()));
        assert!(
            actions.contains(&"enrollment_token.qr_rendered".to_owned()),
            "rendering the secret is audited"
        );
        assert!(actions.contains(&"device.enrolled".to_owned()));
        app.stop().await;
    })
    .await;
}

/// Reads the PNG QR code back as a device's camera would.
async fn qrcode_payload(app: &TestApp, org: &Org, id: &str) -> Value {
    let png = send(
        app,
        Method::GET,
        &org.path(&format!("/enrollment-tokens/{id}/qr")),
        &org.owner,
        None,
    )
    .await
    .bytes()
    .await
    .unwrap();
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    let (_, text) = grids[0].decode().unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn thirty_devices_racing_for_ten_uses_enroll_exactly_ten() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "race").await;
        let (id, secret) = token(&app, &org, json!({"maxUses": 10})).await;
        let attempts: Vec<_> = (0..30)
            .map(|n| enroll(&app, &secret, &format!("racer-{n}")))
            .collect();
        let responses = futures_util::future::join_all(attempts.into_iter().map(tokio::spawn)).await;
        let mut statuses = Vec::new();
        for response in responses {
            let response = response.unwrap();
            let status = response.status();
            if status != StatusCode::CREATED {
                expect_error(response, StatusCode::CONFLICT, "ENROLLMENT_TOKEN_USED_UP").await;
            }
            statuses.push(status);
        }
        let won = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
        assert_eq!(won, 10, "{backend:?}: {statuses:?}");
        assert_eq!(app.count_rows("devices").await, 10);
        assert_eq!(app.count_rows("device_tokens").await, 10);
        let state = expect_data(
            send(
                &app,
                Method::GET,
                &org.path(&format!("/enrollment-tokens/{id}")),
                &org.owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(state["useCount"], 10);
        assert_eq!(state["usesLeft"], 0);
        assert_eq!(state["state"], "used_up");
        app.stop().await;
    })
    .await;
}
