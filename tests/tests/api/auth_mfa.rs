//! Second factor: enrol with an authenticator app (computed here with `totp-rs`, as an app
//! would), sign in with a code, replays and used recovery codes refused, wrong codes lock the
//! account like wrong passwords, and removal needs the password and a code.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::mfa::{code, enrol};
use steward_tests::{PASSWORD, TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};
use totp_rs::Secret;

async fn challenge(app: &TestApp, email: &str) -> String {
    let answer = expect_data(app.login(email, PASSWORD).await, StatusCode::OK).await;
    assert_eq!(answer["mfaRequired"], true, "{answer}");
    assert!(
        answer.get("accessToken").is_none(),
        "no tokens before the second factor: {answer}"
    );
    assert_eq!(answer["expiresIn"], 300);
    answer["mfaToken"].as_str().unwrap().to_owned()
}

async fn complete(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/api/v1/auth/login/mfa", &body).await
}

#[tokio::test]
async fn enrol_verify_sign_in_with_a_code_and_never_twice_with_the_same_one() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ana = app.user("ana@example.com").await;

        let status = expect_data(
            send(&app, Method::GET, "/api/v1/auth/mfa", &ana, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(status["enabled"], false);
        let setup = expect_data(
            send(&app, Method::POST, "/api/v1/auth/mfa/totp", &ana, None).await,
            StatusCode::OK,
        )
        .await;
        let uri = setup["otpauthUri"].as_str().unwrap();
        assert!(
            uri.starts_with("otpauth://totp/127.0.0.1:ana%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!("secret={}", setup["secret"].as_str().unwrap())),
            "{uri}"
        );
        assert!(
            setup["qrPng"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        assert!(setup["qrSvg"].as_str().unwrap().contains("<svg"));
        // Pending: sign-in does not ask for a code yet.
        let plain = expect_data(app.login("ana@example.com", PASSWORD).await, StatusCode::OK).await;
        assert!(plain["accessToken"].is_string(), "{plain}");
        // A wrong code does not confirm it.
        expect_error(
            send(
                &app,
                Method::POST,
                "/api/v1/auth/mfa/totp/verify",
                &ana,
                Some(json!({"code": "000000"})),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "INVALID_MFA_CODE",
        )
        .await;
        let (secret, codes) = {
            let secret = setup["secret"].as_str().unwrap().to_owned();
            let verified = expect_data(
                send(
                    &app,
                    Method::POST,
                    "/api/v1/auth/mfa/totp/verify",
                    &ana,
                    Some(json!({"code": code(&secret, 0)})),
                )
                .await,
                StatusCode::OK,
            )
            .await;
            (secret, verified["recoveryCodes"].as_array().unwrap().clone())
        };
        assert_eq!(codes.len(), 10);
        // The holder is told by mail, so a factor they did not add does not go unnoticed.
        let notice = app
            .outbox_mail("A second factor (an authenticator app) was added")
            .await;
        assert!(notice.contains("ana@example.com"), "{notice}");
        let status = expect_data(
            send(&app, Method::GET, "/api/v1/auth/mfa", &ana, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(status["enabled"], true, "{backend:?}");
        assert_eq!(status["recoveryCodesLeft"], 10);
        // Enrolling again while enabled is refused.
        expect_error(
            send(&app, Method::POST, "/api/v1/auth/mfa/totp", &ana, None).await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;

        // Sign-in: the password alone gives a challenge, the code the tokens.
        let token = challenge(&app, "ana@example.com").await;
        // The code of the verification's step was used: refused as a replay.
        expect_error(
            complete(&app, json!({"mfaToken": token, "code": code(&secret, 0)})).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_MFA_CODE",
        )
        .await;
        let next = code(&secret, 1);
        let tokens = expect_data(
            complete(&app, json!({"mfaToken": token, "code": next})).await,
            StatusCode::OK,
        )
        .await;
        assert!(tokens["accessToken"].is_string());
        assert_eq!(tokens["user"]["email"], "ana@example.com");
        // The mfaToken is spent.
        expect_error(
            complete(&app, json!({"mfaToken": token, "code": code(&secret, 1)})).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        // The same code with a fresh challenge: refused (accepted once).
        let again = challenge(&app, "ana@example.com").await;
        expect_error(
            complete(&app, json!({"mfaToken": again, "code": next})).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_MFA_CODE",
        )
        .await;
        // Malformed proofs are 400, never a default.
        for body in [
            json!({"mfaToken": again}),
            json!({"mfaToken": again, "code": "123456", "recoveryCode": "x"}),
            json!({"mfaToken": again, "code": 123456}),
            json!({"mfaToken": again, "code": "123456", "extra": true}),
        ] {
            let response = complete(&app, body.clone()).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body}");
        }
        expect_error(
            complete(&app, json!({"mfaToken": again, "code": "12345\u{0}6"})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        for hostile in [&"9".repeat(10_000), "-1", "", "１２３４５６"] {
            expect_error(
                complete(&app, json!({"mfaToken": again, "code": hostile})).await,
                StatusCode::UNAUTHORIZED,
                "INVALID_MFA_CODE",
            )
            .await;
        }
        // The audit trail.
        let actions = app.audit_actions().await;
        for action in ["auth.mfa_enrolled", "auth.mfa_verified", "auth.mfa_failed"] {
            assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
        }
        // The secret is sealed at rest: neither its base32 nor its bytes are in the row.
        let sealed = {
            use sea_orm::{ConnectionTrait, Statement};
            let connection = app.db.connection();
            let row = connection
                .query_one_raw(Statement::from_string(
                    connection.get_database_backend(),
                    "SELECT secret_sealed FROM user_mfa".to_owned(),
                ))
                .await
                .unwrap()
                .unwrap();
            row.try_get::<String>("", "secret_sealed").unwrap()
        };
        use base64::Engine;
        let raw = Secret::try_from_base32(&secret).unwrap();
        let sealed_bytes = base64::engine::general_purpose::STANDARD.decode(&sealed).unwrap();
        assert!(!sealed.contains(&secret));
        assert!(
            !sealed_bytes
                .windows(raw.as_ref().len())
                .any(|w| w == raw.as_ref()),
            "{backend:?}: the secret's bytes are stored in the clear"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_regeneration_replaces_them() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let bo = app.user("bo@example.com").await;
        let (secret, codes) = enrol(&app, &bo).await;

        let token = challenge(&app, "bo@example.com").await;
        // Case and dashes do not matter.
        let typed = codes[0].to_uppercase().replace('-', " ");
        let session = expect_data(
            complete(&app, json!({"mfaToken": token, "recoveryCode": typed})).await,
            StatusCode::OK,
        )
        .await;
        let bo_again = TestUser {
            id: bo.id,
            token: session["accessToken"].as_str().unwrap().to_owned(),
        };
        let token = challenge(&app, "bo@example.com").await;
        expect_error(
            complete(&app, json!({"mfaToken": token, "recoveryCode": codes[0]})).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_MFA_CODE",
        )
        .await;
        let status = expect_data(
            send(&app, Method::GET, "/api/v1/auth/mfa", &bo_again, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(status["recoveryCodesLeft"], 9, "{backend:?}");

        // New codes need a code; the old ones stop working.
        expect_error(
            send(
                &app,
                Method::POST,
                "/api/v1/auth/mfa/recovery-codes",
                &bo_again,
                Some(json!({})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        let fresh = expect_data(
            send(
                &app,
                Method::POST,
                "/api/v1/auth/mfa/recovery-codes",
                &bo_again,
                Some(json!({"code": code(&secret, 1)})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let fresh: Vec<String> = fresh["recoveryCodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(fresh.len(), 10);
        assert!(
            fresh
                .iter()
                .all(|c| !codes.contains(&json!(c).as_str().unwrap().to_owned()))
        );
        expect_error(
            complete(&app, json!({"mfaToken": token, "recoveryCode": codes[1]})).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_MFA_CODE",
        )
        .await;
        expect_data(
            complete(&app, json!({"mfaToken": token, "recoveryCode": fresh[3]})).await,
            StatusCode::OK,
        )
        .await;
        let actions = app.audit_actions().await;
        for action in [
            "auth.mfa_recovery_code_used",
            "auth.mfa_recovery_codes_regenerated",
        ] {
            assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn five_wrong_codes_lock_the_account_like_wrong_passwords() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let cy = app.user("cy@example.com").await;
        let (secret, _) = enrol(&app, &cy).await;
        let wrong = |secret: &str| {
            // A code of a step far away: well-formed and wrong.
            code(secret, 100)
        };
        // A right password between wrong codes does not reset the count.
        let token = challenge(&app, "cy@example.com").await;
        for _ in 0..2 {
            expect_error(
                complete(&app, json!({"mfaToken": token, "code": wrong(&secret)})).await,
                StatusCode::UNAUTHORIZED,
                "INVALID_MFA_CODE",
            )
            .await;
        }
        let token = challenge(&app, "cy@example.com").await;
        for _ in 0..3 {
            expect_error(
                complete(&app, json!({"mfaToken": token, "code": wrong(&secret)})).await,
                StatusCode::UNAUTHORIZED,
                "INVALID_MFA_CODE",
            )
            .await;
        }
        // Locked: the right code and the right password are refused alike.
        let locked = complete(&app, json!({"mfaToken": token, "code": code(&secret, 1)})).await;
        assert!(locked.headers().contains_key("retry-after"));
        expect_error(locked, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
        expect_error(
            app.login("cy@example.com", PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS,
            "ACCOUNT_LOCKED",
        )
        .await;
        assert!(
            app.audit_actions()
                .await
                .contains(&"auth.account_locked".to_owned()),
            "{backend:?}"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn removal_needs_the_password_and_a_code_and_a_personal_token_cannot_manage_it() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let di = app.user("di@example.com").await;
        let (secret, _) = enrol(&app, &di).await;

        // A personal access token (any scope) cannot reach the MFA endpoints: session only.
        let pat = expect_data(
            send(
                &app,
                Method::POST,
                "/api/v1/auth/me/tokens",
                &di,
                Some(json!({"name": "ci", "scopes": ["account:read", "account:write"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let pat = TestUser {
            id: di.id,
            token: pat["secret"].as_str().unwrap().to_owned(),
        };
        for (method, path) in [
            (Method::GET, "/api/v1/auth/mfa"),
            (Method::POST, "/api/v1/auth/mfa/totp"),
            (Method::DELETE, "/api/v1/auth/mfa/totp"),
            (Method::POST, "/api/v1/auth/mfa/recovery-codes"),
        ] {
            let response = send(&app, method.clone(), path, &pat, Some(json!({}))).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
        }

        // Operators see that it is on; the account's export says so, without the secret.
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/users?q=di%40example",
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed[0]["mfaEnrolled"], true, "{backend:?}: {listed}");
        let detail = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/users/{}", di.id),
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(detail["mfaEnrolled"], true);
        let export = expect_data(
            send(&app, Method::GET, "/api/v1/auth/me/export", &di, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(export["mfa"]["enabled"], true, "{export}");
        assert_eq!(export["mfa"]["method"], "totp");
        assert!(
            !export.to_string().contains(&secret),
            "the export never holds the secret"
        );

        // Without a code: 400; with a wrong password: 401; with a wrong code: 401.
        expect_error(
            send(
                &app,
                Method::DELETE,
                "/api/v1/auth/mfa/totp",
                &di,
                Some(json!({"password": PASSWORD})),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        expect_error(
            send(
                &app,
                Method::DELETE,
                "/api/v1/auth/mfa/totp",
                &di,
                Some(json!({"password": "not the password", "code": code(&secret, 1)})),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "INVALID_CREDENTIALS",
        )
        .await;
        expect_error(
            send(
                &app,
                Method::DELETE,
                "/api/v1/auth/mfa/totp",
                &di,
                Some(json!({"password": PASSWORD, "code": code(&secret, 100)})),
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "INVALID_MFA_CODE",
        )
        .await;
        let removed = send(
            &app,
            Method::DELETE,
            "/api/v1/auth/mfa/totp",
            &di,
            Some(json!({"password": PASSWORD, "code": code(&secret, 1)})),
        )
        .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT, "{backend:?}");
        let notice = app
            .outbox_mail("The second factor of your account was removed")
            .await;
        assert!(notice.contains("di@example.com"), "{notice}");
        let plain = expect_data(app.login("di@example.com", PASSWORD).await, StatusCode::OK).await;
        assert!(plain["accessToken"].is_string());
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/users?q=di%40example",
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(listed[0]["mfaEnrolled"], false);
        assert_eq!(app.count_rows("mfa_recovery_codes").await, 0);
        assert!(
            app.audit_actions()
                .await
                .contains(&"auth.mfa_disabled".to_owned())
        );
        expect_error(
            send(
                &app,
                Method::DELETE,
                "/api/v1/auth/mfa/totp",
                &di,
                Some(json!({})),
            )
            .await,
            StatusCode::CONFLICT,
            "CONFLICT",
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn two_sign_ins_racing_with_one_code_get_one_session() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ed = app.user("ed@example.com").await;
        let (secret, _) = enrol(&app, &ed).await;
        let first = challenge(&app, "ed@example.com").await;
        let second = challenge(&app, "ed@example.com").await;
        let code = code(&secret, 1);
        let (a, b) = tokio::join!(
            complete(&app, json!({"mfaToken": first, "code": code})),
            complete(&app, json!({"mfaToken": second, "code": code})),
        );
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401], "{backend:?}");
        // Erasing the account erases its second factor.
        let erased = send(
            &app,
            Method::DELETE,
            "/api/v1/auth/me",
            &ed,
            Some(json!({"password": PASSWORD})),
        )
        .await;
        assert_eq!(erased.status(), StatusCode::NO_CONTENT);
        assert_eq!(app.count_rows("user_mfa").await, 0);
        assert_eq!(app.count_rows("mfa_recovery_codes").await, 0);
        assert_eq!(app.count_rows("mfa_challenges").await, 0);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn federated_sign_in_asks_for_the_code_only_when_configured() {
    use steward_tests::idp::{FakeProvider, ProviderKey, google_claims};
    each_backend(|backend| async move {
        let key = ProviderKey::rsa("rsa-1");
        let provider = FakeProvider::start(vec![key.clone()]).await;
        let url = provider.url.clone();
        let app = steward_tests::spawn_app_with(backend, move |config| {
            config.google_client_ids = vec!["steward-test-client".to_owned()];
            config.google_jwks_url = url;
        })
        .await;
        let google = |address: &str| {
            reqwest::Client::new()
                .post(format!("{address}/api/v1/auth/oauth/google"))
                .json(&json!({"idToken": key.sign(&google_claims("g-1", "fay@example.com"))}))
                .send()
        };
        let first = expect_data(google(&app.address).await.unwrap(), StatusCode::OK).await;
        let fay = TestUser {
            id: first["user"]["id"].as_str().unwrap().parse().unwrap(),
            token: first["accessToken"].as_str().unwrap().to_owned(),
        };
        let (secret, codes) = enrol(&app, &fay).await;
        // Default: the provider's sign-in is enough.
        let plain = expect_data(google(&app.address).await.unwrap(), StatusCode::OK).await;
        assert!(plain["accessToken"].is_string(), "{backend:?}: {plain}");

        // An instance with STEWARD_MFA_FOR_FEDERATED=true (same database and keys) asks.
        let provider_url = provider.url.clone();
        let (strict, handle) = steward_tests::spawn_instance_with(&app, move |config| {
            config.google_client_ids = vec!["steward-test-client".to_owned()];
            config.google_jwks_url = provider_url;
            config.mfa_for_federated = true;
        })
        .await;
        let asked = expect_data(google(&strict).await.unwrap(), StatusCode::OK).await;
        assert_eq!(asked["mfaRequired"], true, "{asked}");
        assert!(asked.get("accessToken").is_none());
        let done = expect_data(
            reqwest::Client::new()
                .post(format!("{strict}/api/v1/auth/login/mfa"))
                .json(&json!({"mfaToken": asked["mfaToken"], "code": code(&secret, 1)}))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(done["user"]["email"], "fay@example.com");

        // An account without a password removes its second factor with a code alone.
        let removed = send(
            &app,
            Method::DELETE,
            "/api/v1/auth/mfa/totp",
            &fay,
            Some(json!({"recoveryCode": "not-a-code"})),
        )
        .await;
        expect_error(removed, StatusCode::UNAUTHORIZED, "INVALID_MFA_CODE").await;
        let removed = send(
            &app,
            Method::DELETE,
            "/api/v1/auth/mfa/totp",
            &fay,
            Some(json!({"recoveryCode": codes[0]})),
        )
        .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT, "{backend:?}");
        let status = expect_data(
            send(&app, Method::GET, "/api/v1/auth/mfa", &fay, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(status["enabled"], false);
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_provider_never_links_itself_to_an_account_with_a_second_factor_without_a_code() {
    use steward_tests::idp::{FakeProvider, ProviderKey, google_claims};
    each_backend(|backend| async move {
        let key = ProviderKey::rsa("rsa-1");
        let provider = FakeProvider::start(vec![key.clone()]).await;
        let url = provider.url.clone();
        let app = steward_tests::spawn_app_with(backend, move |config| {
            config.google_client_ids = vec!["steward-test-client".to_owned()];
            config.google_jwks_url = url;
        })
        .await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let hal = app.user("hal@example.com").await;
        let verified = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/users/{}/verify-email", hal.id),
            &root,
            None,
        )
        .await;
        assert!(verified.status().is_success(), "{}", verified.status());
        let (secret, _) = enrol(&app, &hal).await;
        let id_token = key.sign(&google_claims("g-hal", "hal@example.com"));

        // The provider's verified email alone does not attach it (the code would be skipped).
        expect_error(
            app.post_json("/api/v1/auth/oauth/google", &json!({"idToken": id_token}))
                .await,
            StatusCode::CONFLICT,
            "ACCOUNT_LINK_REQUIRED",
        )
        .await;
        // Linking from a session needs a code too: a stolen session cannot add a way around it.
        let link = |body: Value| {
            send(
                &app,
                Method::POST,
                "/api/v1/auth/oauth/google/link",
                &hal,
                Some(body),
            )
        };
        expect_error(
            link(json!({"idToken": id_token})).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        expect_error(
            link(json!({"idToken": id_token, "code": code(&secret, 100)})).await,
            StatusCode::UNAUTHORIZED,
            "INVALID_MFA_CODE",
        )
        .await;
        let linked = link(json!({"idToken": id_token, "code": code(&secret, 1)})).await;
        assert_eq!(linked.status(), StatusCode::NO_CONTENT, "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn with_a_changed_mfa_key_codes_cannot_be_checked_but_recovery_codes_work_and_nothing_locks() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ivy = app.user("ivy@example.com").await;
        let (secret, codes) = enrol(&app, &ivy).await;
        let (other, handle) = steward_tests::spawn_instance_with(&app, |config| {
            config.mfa_encryption_key = Some(steward_auth::mfa::SecretBox::generate_key());
        })
        .await;
        let client = reqwest::Client::new();
        let post = |path: &str, body: Value| client.post(format!("{other}{path}")).json(&body).send();
        for _ in 0..6 {
            let challenge = expect_data(
                post(
                    "/api/v1/auth/login",
                    json!({"email": "ivy@example.com", "password": PASSWORD}),
                )
                .await
                .unwrap(),
                StatusCode::OK,
            )
            .await;
            let refused = expect_error(
                post(
                    "/api/v1/auth/login/mfa",
                    json!({"mfaToken": challenge["mfaToken"], "code": code(&secret, 1)}),
                )
                .await
                .unwrap(),
                StatusCode::CONFLICT,
                "CONFLICT",
            )
            .await;
            assert!(
                refused["message"].as_str().unwrap().contains("recovery code"),
                "{refused}"
            );
        }
        let challenge = expect_data(
            post(
                "/api/v1/auth/login",
                json!({"email": "ivy@example.com", "password": PASSWORD}),
            )
            .await
            .unwrap(),
            StatusCode::OK,
        )
        .await;
        let tokens = expect_data(
            post(
                "/api/v1/auth/login/mfa",
                json!({"mfaToken": challenge["mfaToken"], "recoveryCode": codes[0]}),
            )
            .await
            .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert!(tokens["accessToken"].is_string(), "{backend:?}");
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}
