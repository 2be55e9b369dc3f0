//! Accounts: register, sign in, profile, sessions, password change, JWKS, and every error case.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{Backend, PASSWORD, each_backend, expect_data, expect_error, spawn_app};

fn jwt_header(token: &str) -> Value {
    use base64::Engine;
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn register_sign_in_read_the_profile_and_sign_out() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let registered = app.register("Ann@Example.com").await;
        assert_eq!(registered["tokenType"], "Bearer");
        assert_eq!(registered["expiresIn"], 3600);
        assert_eq!(
            registered["user"]["email"], "ann@example.com",
            "emails are normalised"
        );
        assert_eq!(registered["user"]["emailVerified"], false);
        assert_eq!(registered["user"]["displayName"], "Test User");
        assert!(
            registered["refreshToken"].as_str().unwrap().len() >= 43,
            "≥ 256 bits"
        );

        let response = app.login("ann@example.com", PASSWORD).await;
        assert_eq!(response.headers()["cache-control"], "no-store");
        let signed_in = expect_data(response, StatusCode::OK).await;
        let token = signed_in["accessToken"].as_str().unwrap().to_owned();
        let header = jwt_header(&token);
        assert_eq!(header["alg"], "RS256");
        let jwks = expect_jwks(&app).await;
        assert_eq!(
            jwks["keys"][0]["kid"], header["kid"],
            "the signing key is published"
        );

        let me = expect_data(
            app.authed(Method::GET, "/api/v1/auth/me", &token)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["id"], registered["user"]["id"]);

        let out = app
            .authed(Method::POST, "/api/v1/auth/logout", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(out.status(), StatusCode::NO_CONTENT);
        let after = app
            .authed(Method::GET, "/api/v1/auth/me", &token)
            .send()
            .await
            .unwrap();
        expect_error(after, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let refresh = app
            .post_json(
                "/api/v1/auth/refresh",
                &json!({"refreshToken": signed_in["refreshToken"]}),
            )
            .await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;

        let actions = app.audit_actions().await;
        for expected in ["auth.registered", "auth.login_succeeded", "auth.logout"] {
            assert!(
                actions.iter().any(|a| a == expected),
                "{backend:?}: {expected} in {actions:?}"
            );
        }
        app.stop().await;
    })
    .await;
}

async fn expect_jwks(app: &steward_tests::TestApp) -> Value {
    let response = app.get("/.well-known/jwks.json").await;
    assert_eq!(response.status(), StatusCode::OK);
    let jwks: Value = response.json().await.unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert!(key["n"].as_str().unwrap().len() > 300);
    assert_eq!(key["e"], "AQAB");
    jwks
}

async fn users(app: &steward_tests::TestApp) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    steward_persistence::entities::users::Entity::find()
        .count(app.db.connection())
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_registrations_get_field_errors_and_change_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        app.register("taken@example.com").await;
        let cases = [
            (
                json!({"email": "not-an-email", "password": PASSWORD, "displayName": "A"}),
                "email",
            ),
            (
                json!({"email": "a@example.com", "password": "short", "displayName": "A"}),
                "password",
            ),
            (
                json!({"email": "a@example.com", "password": "password123", "displayName": "A"}),
                "password",
            ),
            (
                json!({"email": "a@example.com", "password": "a@example.com", "displayName": "A"}),
                "password",
            ),
            (
                json!({"email": "a@example.com", "password": PASSWORD, "displayName": "   "}),
                "displayName",
            ),
        ];
        for (body, field) in cases {
            let error = expect_error(
                app.post_json("/api/v1/auth/register", &body).await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert_eq!(error["details"][0]["field"], field, "{backend:?} {body}");
        }
        let missing = app
            .post_json("/api/v1/auth/register", &json!({"email": "a@example.com"}))
            .await;
        expect_error(missing, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        let duplicate = app
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": "TAKEN@example.com", "password": PASSWORD, "displayName": "B"}),
            )
            .await;
        let error = expect_error(duplicate, StatusCode::CONFLICT, "CONFLICT").await;
        assert_eq!(error["message"], "an account with this email already exists");
        assert_eq!(users(&app).await, 1, "{backend:?}: nothing was created");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app(Backend::Sqlite).await;
    app.register("ann@example.com").await;
    let unknown = expect_error(
        app.login("nobody@example.com", PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
    let wrong = expect_error(
        app.login("ann@example.com", "wrong password!").await,
        StatusCode::UNAUTHORIZED,
        "INVALID_CREDENTIALS",
    )
    .await;
    assert_eq!(unknown["message"], wrong["message"]);
    assert_eq!(unknown["details"], wrong["details"]);
    let malformed = app.login("not an email", PASSWORD).await;
    expect_error(malformed, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
    let actions = app.audit_actions().await;
    assert_eq!(
        actions.iter().filter(|a| *a == "auth.login_failed").count(),
        2,
        "{actions:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_real_json_endpoint_answers_bad_bodies_with_the_envelope() {
    let app =
        steward_tests::spawn_app_with(Backend::Sqlite, |config| config.body_limit_bytes = 1024 * 1024).await;
    let url = app.url("/api/v1/auth/register");
    let malformed = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    expect_error(malformed, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
    let plain = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    expect_error(
        plain,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    .await;
    let big = format!("{{\"email\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let oversized = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    expect_error(oversized, StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE").await;
    assert_eq!(users(&app).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn missing_forged_and_foreign_tokens_are_refused() {
    let app = spawn_app(Backend::Sqlite).await;
    let other = spawn_app(Backend::Sqlite).await;
    let foreign = other.register("eve@example.com").await["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let none = app.get("/api/v1/auth/me").await;
    expect_error(none, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    for token in ["garbage", "a.b.c", foreign.as_str()] {
        let response = app
            .authed(Method::GET, "/api/v1/auth/me", token)
            .send()
            .await
            .unwrap();
        expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
    let basic = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    expect_error(basic, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    other.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_profile_updates_with_optimistic_concurrency() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let token = app.register("ann@example.com").await["accessToken"].as_str().unwrap().to_owned();
        let updated = expect_data(
            app.authed(Method::PUT, "/api/v1/auth/me", &token)
                .header("if-match", "\"1\"")
                .json(&json!({"displayName": "Ann", "locale": "en-GB", "timezone": "Europe/Berlin", "avatarUrl": "https://example.com/a.png"}))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(updated["displayName"], "Ann");
        assert_eq!(updated["locale"], "en-GB");
        assert_eq!(updated["timezone"], "Europe/Berlin");
        assert_eq!(updated["version"], 2);

        let stale = app
            .authed(Method::PUT, "/api/v1/auth/me", &token)
            .header("if-match", "\"1\"")
            .json(&json!({"displayName": "Overwrite"}))
            .send()
            .await
            .unwrap();
        expect_error(stale, StatusCode::CONFLICT, "VERSION_CONFLICT").await;

        let cleared = expect_data(
            app.authed(Method::PUT, "/api/v1/auth/me", &token)
                .json(&json!({"locale": null, "version": 2}))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(cleared["locale"], Value::Null);
        assert_eq!(cleared["timezone"], "Europe/Berlin", "absent fields stay");
        assert_eq!(cleared["displayName"], "Ann");

        let invalid = app
            .authed(Method::PUT, "/api/v1/auth/me", &token)
            .json(&json!({"avatarUrl": "javascript:alert(1)", "timezone": "Not a zone!"}))
            .send()
            .await
            .unwrap();
        let error = expect_error(invalid, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(error["details"].as_array().unwrap().len(), 2);
        let me = expect_data(app.authed(Method::GET, "/api/v1/auth/me", &token).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(me["version"], 3, "the refused update changed nothing");
        app.stop().await;
    })
    .await;
}

/// Profile changes are small writes that SQLite groups into shared transactions: under a burst
/// each answer still matches what is stored — of 24 updates expecting version 1 exactly one wins
/// and the others conflict without writing, while 16 other accounts' updates all land, each with
/// its one audit entry.
#[tokio::test]
async fn concurrent_profile_updates_each_get_the_answer_of_what_was_stored() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let contested = app.user("contested@example.com").await;
        let mut others = Vec::new();
        for n in 0..16 {
            others.push(app.user_owned(format!("writer{n}@example.com")).await);
        }
        let before = app
            .audit_actions()
            .await
            .iter()
            .filter(|action| *action == "user.profile_updated")
            .count();
        let mut requests = Vec::new();
        for n in 0..24 {
            requests.push(
                app.authed(Method::PUT, "/api/v1/auth/me", &contested.token)
                    .header("if-match", "\"1\"")
                    .json(&json!({"displayName": format!("Contender {n}")}))
                    .send(),
            );
        }
        for (n, other) in others.iter().enumerate() {
            requests.push(
                app.authed(Method::PUT, "/api/v1/auth/me", &other.token)
                    .json(&json!({"displayName": format!("Writer {n}")}))
                    .send(),
            );
        }
        let answers = futures_util::future::join_all(requests).await;
        let mut winner = None;
        let mut conflicts = 0;
        for (n, answer) in answers.into_iter().enumerate() {
            let answer = answer.unwrap();
            if n < 24 {
                if answer.status() == StatusCode::OK {
                    let body = expect_data(answer, StatusCode::OK).await;
                    assert_eq!(body["version"], 2);
                    assert!(
                        winner
                            .replace(body["displayName"].as_str().unwrap().to_owned())
                            .is_none(),
                        "two updates of version 1 won"
                    );
                } else {
                    expect_error(answer, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
                    conflicts += 1;
                }
            } else {
                let body = expect_data(answer, StatusCode::OK).await;
                assert_eq!(body["displayName"], format!("Writer {}", n - 24));
            }
        }
        assert_eq!(conflicts, 23);
        let me = expect_data(
            app.authed(Method::GET, "/api/v1/auth/me", &contested.token)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["version"], 2);
        assert_eq!(Some(me["displayName"].as_str().unwrap().to_owned()), winner);
        for (n, other) in others.iter().enumerate() {
            let me = expect_data(
                app.authed(Method::GET, "/api/v1/auth/me", &other.token)
                    .send()
                    .await
                    .unwrap(),
                StatusCode::OK,
            )
            .await;
            assert_eq!(me["displayName"], format!("Writer {n}"));
        }
        let after = app
            .audit_actions()
            .await
            .iter()
            .filter(|action| *action == "user.profile_updated")
            .count();
        assert_eq!(after - before, 17, "one audit entry per update that was stored");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_by_one() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let first = app.register("ann@example.com").await;
        let second = expect_data(app.login("ann@example.com", PASSWORD).await, StatusCode::OK).await;
        let token = second["accessToken"].as_str().unwrap();
        let response = app
            .authed(Method::GET, "/api/v1/auth/sessions", token)
            .header("user-agent", "steward-tests/1")
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["meta"]["total"], 2, "{body}");
        let sessions = body["data"].as_array().unwrap();
        assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
        let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(sessions[0]["ipAddress"], "127.0.0.1");

        let revoked = app
            .authed(Method::DELETE, &format!("/api/v1/auth/sessions/{other}"), token)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
        let old = app
            .authed(
                Method::GET,
                "/api/v1/auth/me",
                first["accessToken"].as_str().unwrap(),
            )
            .send()
            .await
            .unwrap();
        expect_error(old, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let again = app
            .authed(Method::DELETE, &format!("/api/v1/auth/sessions/{other}"), token)
            .send()
            .await
            .unwrap();
        expect_error(again, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        let bob = app.register("bob@example.com").await;
        let current = sessions.iter().find(|s| s["current"] == true).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let foreign = app
            .authed(
                Method::DELETE,
                &format!("/api/v1/auth/sessions/{current}"),
                bob["accessToken"].as_str().unwrap(),
            )
            .send()
            .await
            .unwrap();
        expect_error(foreign, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let bad_id = app
            .authed(Method::DELETE, "/api/v1/auth/sessions/not-a-uuid", token)
            .send()
            .await
            .unwrap();
        expect_error(bad_id, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert!(
            app.audit_actions()
                .await
                .contains(&"auth.session_revoked".to_owned())
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn changing_the_password_checks_the_old_one_and_the_history() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let other_session = app.register("ann@example.com").await;
        let current = expect_data(app.login("ann@example.com", PASSWORD).await, StatusCode::OK).await;
        let token = current["accessToken"].as_str().unwrap();
        let change = |current_password: &str, new_password: &str| {
            app.authed(Method::PUT, "/api/v1/auth/me/password", token)
                .json(&json!({"currentPassword": current_password, "newPassword": new_password}))
                .send()
        };
        expect_error(
            change("wrong one!", "brand new passphrase").await.unwrap(),
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        )
        .await;
        let reused = expect_error(
            change(PASSWORD, PASSWORD).await.unwrap(),
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(reused["details"][0]["field"], "newPassword");
        assert!(
            reused["details"][0]["message"]
                .as_str()
                .unwrap()
                .contains("last 5"),
            "{reused}"
        );
        assert_eq!(
            change(PASSWORD, "brand new passphrase").await.unwrap().status(),
            StatusCode::NO_CONTENT
        );

        let kept = app
            .authed(Method::GET, "/api/v1/auth/me", token)
            .send()
            .await
            .unwrap();
        assert_eq!(kept.status(), StatusCode::OK, "this session stays signed in");
        let refresh = app
            .post_json(
                "/api/v1/auth/refresh",
                &json!({"refreshToken": other_session["refreshToken"]}),
            )
            .await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        expect_error(
            app.login("ann@example.com", PASSWORD).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        )
        .await;
        expect_data(
            app.login("ann@example.com", "brand new passphrase").await,
            StatusCode::OK,
        )
        .await;
        assert!(
            app.audit_actions()
                .await
                .contains(&"auth.password_changed".to_owned())
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_hash_with_outdated_parameters_is_upgraded_at_the_next_sign_in() {
    use sea_orm::EntityTrait;
    let app = spawn_app(Backend::Sqlite).await;
    let registered = app.register("ann@example.com").await;
    let id: uuid::Uuid = registered["user"]["id"].as_str().unwrap().parse().unwrap();
    let hash = |app: &steward_tests::TestApp| {
        let connection = app.db.connection().clone();
        async move {
            steward_persistence::entities::users::Entity::find_by_id(id)
                .one(&connection)
                .await
                .unwrap()
                .unwrap()
                .password_hash
                .unwrap()
        }
    };
    assert!(hash(&app).await.contains("m=8192,t=1,p=1"));

    let stronger =
        steward_tests::spawn_instance_with(&app, |config| config.password_hash_iterations = 2).await;
    let response = app
        .client
        .post(format!("{}/api/v1/auth/login", stronger.0))
        .json(&json!({"email": "ann@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    expect_data(response, StatusCode::OK).await;
    assert!(
        hash(&app).await.contains("m=8192,t=2,p=1"),
        "rehashed with the configured cost"
    );
    expect_data(app.login("ann@example.com", PASSWORD).await, StatusCode::OK).await;
    stronger.1.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn a_resource_server_finds_the_issuer_and_keys_by_discovery() {
    use base64::Engine;
    let app = spawn_app(Backend::Sqlite).await;
    let registered = app.register("discover@example.com").await;
    let token = registered["accessToken"].as_str().unwrap();
    let decode = |part: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    let parts: Vec<&str> = token.split('.').collect();
    let (header, claims) = (decode(parts[0]), decode(parts[1]));

    let response = app.get("/.well-known/openid-configuration").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age")
    );
    let discovery: Value = response.json().await.unwrap();
    assert_eq!(discovery["issuer"], claims["iss"], "{discovery}");
    assert_eq!(discovery["audience"], claims["aud"]);
    assert_eq!(
        discovery["id_token_signing_alg_values_supported"],
        json!([header["alg"]])
    );
    let jwks_uri = discovery["jwks_uri"].as_str().unwrap();
    let path = jwks_uri.split_once("://").unwrap().1.split_once('/').unwrap().1;
    assert_eq!(format!("/{path}"), "/.well-known/jwks.json");
    let jwks = expect_jwks(&app).await;
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|key| key["kid"] == header["kid"]),
        "the token's key is published at jwks_uri"
    );
    app.stop().await;
}
