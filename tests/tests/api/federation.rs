//! Google / Apple / OIDC sign-in against a real JWKS server on loopback, account linking and
//! takeover protection, and IdP group → role synchronisation with overrides.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::idp::{FakeProvider, ProviderKey, google_claims};
use steward_tests::{Backend, PASSWORD, TestApp, each_backend, expect_data, expect_error, spawn_app_with};

async fn app_with_google(backend: Backend, provider: &FakeProvider) -> TestApp {
    let url = provider.url.clone();
    spawn_app_with(backend, move |config| {
        config.google_client_ids = vec!["steward-test-client".to_owned()];
        config.google_jwks_url = url;
        config.oidc_jwks_min_refresh_secs = 1;
    })
    .await
}

fn google(
    app: &TestApp,
    token: &str,
    nonce: Option<&str>,
) -> impl Future<Output = reqwest::Response> + 'static + use<> {
    app.post_json(
        "/api/v1/auth/oauth/google",
        &json!({"idToken": token, "nonce": nonce}),
    )
}

#[tokio::test]
async fn valid_tokens_sign_in_and_every_forgery_is_refused() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("rsa-1");
        let ec = ProviderKey::ec("ec-1");
        let provider = FakeProvider::start(vec![rsa.clone(), ec.clone()]).await;
        let app = app_with_google(backend, &provider).await;

        let first = expect_data(
            google(&app, &rsa.sign(&google_claims("g-1", "ann@example.com")), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(first["user"]["email"], "ann@example.com");
        assert_eq!(first["user"]["emailVerified"], true);
        assert_eq!(first["user"]["displayName"], "Ann Example");
        let again = expect_data(
            google(&app, &ec.sign(&google_claims("g-1", "ann@example.com")), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            again["user"]["id"], first["user"]["id"],
            "{backend:?}: ES256 keys work and sub finds the user"
        );
        assert_eq!(provider.fetches(), 1, "the JWKS is cached");

        let mut wrong_audience = google_claims("g-1", "ann@example.com");
        wrong_audience["aud"] = json!("someone-elses-app");
        let mut wrong_issuer = google_claims("g-1", "ann@example.com");
        wrong_issuer["iss"] = json!("https://evil.example");
        let mut expired = google_claims("g-1", "ann@example.com");
        expired["iat"] = json!(chrono::Utc::now().timestamp() - 7200);
        expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
        let impostor = ProviderKey::rsa("rsa-1");
        let cases = [
            ("wrong audience", rsa.sign(&wrong_audience)),
            ("wrong issuer", rsa.sign(&wrong_issuer)),
            ("expired", rsa.sign(&expired)),
            (
                "bad signature",
                impostor.sign(&google_claims("g-1", "ann@example.com")),
            ),
            (
                "EC token under the RSA kid",
                ec.sign_as("rsa-1", &google_claims("g-1", "ann@example.com")),
            ),
            ("garbage", "not.a.token".to_owned()),
        ];
        for (name, token) in cases {
            let error = expect_error(
                google(&app, &token, None).await,
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
            )
            .await;
            assert!(
                error["message"].as_str().unwrap().contains("ID token"),
                "{backend:?} {name}: {error}"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_once_and_accepts_a_rotated_key() {
    let rsa = ProviderKey::rsa("rsa-1");
    let provider = FakeProvider::start(vec![rsa.clone()]).await;
    let app = app_with_google(Backend::Sqlite, &provider).await;
    expect_data(
        google(&app, &rsa.sign(&google_claims("g-1", "ann@example.com")), None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(provider.fetches(), 1);

    let rotated = ProviderKey::rsa("rsa-2");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    provider.publish(rotated.clone());
    expect_data(
        google(
            &app,
            &rotated.sign(&google_claims("g-1", "ann@example.com")),
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(provider.fetches(), 2, "one refetch for the unknown kid");

    let unknown = ProviderKey::rsa("never-published");
    for _ in 0..5 {
        let response = google(
            &app,
            &unknown.sign(&google_claims("g-1", "ann@example.com")),
            None,
        )
        .await;
        expect_error(response, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
    }
    assert!(
        provider.fetches() <= 3,
        "unknown kids do not make Steward hammer the provider: {}",
        provider.fetches()
    );
    app.stop().await;
}

#[tokio::test]
async fn nonces_must_match_and_cannot_be_replayed() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("rsa-1");
        let provider = FakeProvider::start(vec![rsa.clone()]).await;
        let app = app_with_google(backend, &provider).await;
        let mut claims = google_claims("g-1", "ann@example.com");
        claims["nonce"] = json!("nonce-123");
        let token = rsa.sign(&claims);

        expect_error(
            google(&app, &token, Some("another")).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        expect_data(google(&app, &token, Some("nonce-123")).await, StatusCode::OK).await;
        let replay = expect_error(
            google(&app, &token, Some("nonce-123")).await,
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        assert!(replay["message"].as_str().unwrap().contains("nonce"), "{replay}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn accounts_link_by_verified_email_only_and_provider_accounts_stay_with_their_user() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("rsa-1");
        let provider = FakeProvider::start(vec![rsa.clone()]).await;
        let app = app_with_google(backend, &provider).await;

        // The provider has not verified the address: no account is created.
        let mut unverified = google_claims("g-0", "nobody@example.com");
        unverified["email_verified"] = json!(false);
        expect_error(
            google(&app, &rsa.sign(&unverified), None).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;

        // Someone registered ann@ with a password but never verified it: no silent takeover.
        let squatter = app.register("ann@example.com").await;
        let error = expect_error(
            google(&app, &rsa.sign(&google_claims("g-ann", "ann@example.com")), None).await,
            StatusCode::CONFLICT,
            "ACCOUNT_LINK_REQUIRED",
        )
        .await;
        assert!(error["message"].as_str().unwrap().contains("link"), "{error}");

        // The owner of the password account links explicitly, then signs in with the provider.
        let token = squatter["accessToken"].as_str().unwrap();
        let link = app
            .authed(Method::POST, "/api/v1/auth/oauth/google/link", token)
            .json(&json!({"idToken": rsa.sign(&google_claims("g-ann", "ann@example.com"))}))
            .send()
            .await
            .unwrap();
        assert_eq!(link.status(), StatusCode::NO_CONTENT);
        let signed_in = expect_data(
            google(&app, &rsa.sign(&google_claims("g-ann", "ann@example.com")), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(signed_in["user"]["id"], squatter["user"]["id"]);

        // The provider account's email changes: still the same user (links are by subject).
        let moved = expect_data(
            google(&app, &rsa.sign(&google_claims("g-ann", "ann@new.example")), None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(moved["user"]["id"], squatter["user"]["id"]);

        // Another user cannot claim the linked provider account.
        let bob = app.register("bob@example.com").await;
        let claim = app
            .authed(
                Method::POST,
                "/api/v1/auth/oauth/google/link",
                bob["accessToken"].as_str().unwrap(),
            )
            .json(&json!({"idToken": rsa.sign(&google_claims("g-ann", "ann@example.com"))}))
            .send()
            .await
            .unwrap();
        expect_error(claim, StatusCode::CONFLICT, "CONFLICT").await;

        // A verified account links on first provider sign-in.
        let carol = expect_data(
            google(
                &app,
                &rsa.sign(&google_claims("g-carol", "carol@example.com")),
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let carol_token = carol["accessToken"].as_str().unwrap();
        let last = app
            .authed(Method::DELETE, "/api/v1/auth/oauth/google/link", carol_token)
            .send()
            .await
            .unwrap();
        expect_error(last, StatusCode::CONFLICT, "CONFLICT").await;

        // Ann has a password too, so she may unlink.
        let unlink = app
            .authed(Method::DELETE, "/api/v1/auth/oauth/google/link", token)
            .send()
            .await
            .unwrap();
        assert_eq!(unlink.status(), StatusCode::NO_CONTENT);
        let gone = app
            .authed(Method::DELETE, "/api/v1/auth/oauth/google/link", token)
            .send()
            .await
            .unwrap();
        expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        expect_data(app.login("ann@example.com", PASSWORD).await, StatusCode::OK).await;

        let apple = app
            .post_json("/api/v1/auth/oauth/apple", &json!({"idToken": "x"}))
            .await;
        expect_error(apple, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let actions = app.audit_actions().await;
        assert!(
            actions.contains(&"auth.provider_linked".to_owned())
                && actions.contains(&"auth.provider_unlinked".to_owned())
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn apple_tokens_with_string_flags_and_a_hashed_nonce_sign_in_with_the_given_name() {
    let rsa = ProviderKey::rsa("apple-1");
    let provider = FakeProvider::start(vec![rsa.clone()]).await;
    let url = provider.url.clone();
    let app = spawn_app_with(Backend::Sqlite, move |config| {
        config.apple_client_ids = vec!["com.example.app".to_owned()];
        config.apple_jwks_url = url;
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let raw_nonce = "raw-nonce-from-the-app";
    let claims = json!({
        "iss": "https://appleid.apple.com", "aud": "com.example.app", "sub": "001234.apple",
        "email": "ann@privaterelay.appleid.com", "email_verified": "true",
        "nonce": steward_auth::hash_token(raw_nonce), "iat": now, "exp": now + 600,
    });
    let signed_in = expect_data(
        app.post_json(
            "/api/v1/auth/oauth/apple",
            &json!({"idToken": rsa.sign(&claims), "nonce": raw_nonce, "name": "Ann Apple"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(signed_in["user"]["displayName"], "Ann Apple");
    assert_eq!(signed_in["user"]["emailVerified"], true);
    app.stop().await;
}

async fn roles(app: &TestApp, admin: &str, user: &Value) -> Value {
    let path = format!(
        "/api/admin/v1/users/{}/role-overrides",
        user["user"]["id"].as_str().unwrap()
    );
    expect_data(
        app.authed(Method::GET, &path, admin).send().await.unwrap(),
        StatusCode::OK,
    )
    .await
}

#[tokio::test]
async fn oidc_groups_map_to_roles_within_the_overrides() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("corp-1");
        let provider = FakeProvider::start(vec![rsa.clone()]).await;
        let url = provider.url.clone();
        let app = spawn_app_with(backend, move |config| {
            config.oidc_issuer = Some("https://idp.corp.example".to_owned());
            config.oidc_jwks_url = Some(url);
            config.oidc_client_ids = vec!["steward".to_owned()];
            config.oidc_group_role_map = "Auditors=auditor\\nops=support,ops=user_admin".to_owned();
            config.oidc_group_role_defaults = String::new();
        })
        .await;
        let corp = |groups: Value| {
            let now = chrono::Utc::now().timestamp();
            let token = rsa.sign(&json!({"iss": "https://idp.corp.example", "aud": "steward", "sub": "emp-7",
                "email": "dana@corp.example", "email_verified": true, "groups": groups, "iat": now, "exp": now + 600}));
            app.post_json("/api/v1/auth/oauth/oidc", &json!({"idToken": token}))
        };
        let dana = expect_data(corp(json!(["AUDITORS", "ops"])).await, StatusCode::OK).await;
        let dana_token = dana["accessToken"].as_str().unwrap().to_owned();
        let me = expect_data(app.authed(Method::GET, "/api/admin/v1/me", &dana_token).send().await.unwrap(), StatusCode::OK).await;
        assert_eq!(me["roles"].as_array().unwrap().len(), 3, "{backend:?}: {me}");

        // An administrator preserves `support`; the next sign-in drops the groups.
        let root = app.register("root@example.com").await;
        let root_id: uuid::Uuid = root["user"]["id"].as_str().unwrap().parse().unwrap();
        app.grant(root_id, "super_admin").await;
        let admin = root["accessToken"].as_str().unwrap();
        let path = format!("/api/admin/v1/users/{}/role-overrides", dana["user"]["id"].as_str().unwrap());
        assert_eq!(roles(&app, admin, &dana).await["configured"], false);
        let bad = app.authed(Method::PUT, &path, admin).json(&json!({"enabled": true, "preserved": ["wizard"]})).send().await.unwrap();
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let set = app
            .authed(Method::PUT, &path, admin)
            .json(&json!({"enabled": true, "preserved": [" Support "], "suppressed": ["user_admin"]}))
            .send()
            .await
            .unwrap();
        let saved = expect_data(set, StatusCode::OK).await;
        assert_eq!(saved["preserved"], json!(["support"]));
        // Custom roles are known to overrides too, and only someone holding a custom role's
        // permissions may change an override of it.
        let created = app
            .authed(Method::POST, "/api/admin/v1/roles", admin)
            .json(&json!({"name": "helpdesk", "permissions": ["users:read", "users:unlock"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let custom = json!({"enabled": true, "preserved": ["support", "helpdesk"], "suppressed": ["user_admin"]});
        let with_custom = app.authed(Method::PUT, &path, admin).json(&custom).send().await.unwrap();
        let saved = expect_data(with_custom, StatusCode::OK).await;
        assert_eq!(saved["preserved"], json!(["helpdesk", "support"]), "{backend:?}");
        let reader = app.register("reader@example.com").await;
        let reader_id: uuid::Uuid = reader["user"]["id"].as_str().unwrap().parse().unwrap();
        app.grant(reader_id, "user_admin").await;
        app.grant(reader_id, "auditor").await;
        let narrower = app
            .authed(Method::PUT, &path, reader["accessToken"].as_str().unwrap())
            .json(&json!({"enabled": true, "preserved": ["support"], "suppressed": ["user_admin"]}))
            .send()
            .await
            .unwrap();
        expect_error(narrower, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let set = app
            .authed(Method::PUT, &path, admin)
            .json(&json!({"enabled": true, "preserved": [" Support "], "suppressed": ["user_admin"]}))
            .send()
            .await
            .unwrap();
        expect_data(set, StatusCode::OK).await;
        // `auditor` may read users but not change their overrides.
        let auditor = app.register("audit@example.com").await;
        let auditor_id: uuid::Uuid = auditor["user"]["id"].as_str().unwrap().parse().unwrap();
        app.grant(auditor_id, "auditor").await;
        let auditor_token = auditor["accessToken"].as_str().unwrap();
        assert_eq!(app.authed(Method::GET, &path, auditor_token).send().await.unwrap().status(), StatusCode::OK);
        let forbidden = app.authed(Method::PUT, &path, auditor_token).json(&json!({"enabled": false})).send().await.unwrap();
        expect_error(forbidden, StatusCode::FORBIDDEN, "FORBIDDEN").await;

        let again = expect_data(corp(json!([])).await, StatusCode::OK).await;
        let me = expect_data(
            app.authed(Method::GET, "/api/admin/v1/me", again["accessToken"].as_str().unwrap()).send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["roles"], json!(["support"]), "{backend:?}: preserved kept, others revoked");

        let cleared = app.authed(Method::DELETE, &path, admin).send().await.unwrap();
        assert_eq!(cleared.status(), StatusCode::NO_CONTENT);
        assert_eq!(roles(&app, admin, &dana).await["configured"], false);
        let after = expect_data(corp(json!(["ops"])).await, StatusCode::OK).await;
        let me = expect_data(
            app.authed(Method::GET, "/api/admin/v1/me", after["accessToken"].as_str().unwrap()).send().await.unwrap(),
            StatusCode::OK,
        )
        .await;
        let mut granted: Vec<String> = serde_json::from_value(me["roles"].clone()).unwrap();
        granted.sort();
        assert_eq!(granted, ["support", "user_admin"]);
        let actions = app.audit_actions().await;
        for expected in ["admin.roles_synced", "admin.role_overrides_updated", "admin.role_overrides_cleared"] {
            assert!(actions.contains(&expected.to_owned()), "{expected} in {actions:?}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn oidc_userinfo_supplies_what_the_id_token_lacks() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("corp-1");
        let provider = FakeProvider::start(vec![rsa.clone()]).await;
        let (jwks, userinfo) = (
            provider.url.clone(),
            provider.userinfo_url(json!({"sub": "emp-9", "email": "eve@corp.example",
                "email_verified": true, "name": "Eve Corp", "groups": ["ops"]})),
        );
        let app = spawn_app_with(backend, move |config| {
            config.oidc_issuer = Some("https://idp.corp.example".to_owned());
            config.oidc_jwks_url = Some(jwks);
            config.oidc_userinfo_url = Some(userinfo);
            config.oidc_client_ids = vec!["steward".to_owned()];
            config.oidc_group_role_map = "ops=support".to_owned();
        })
        .await;
        let sign_in = |sub: &str, access_token: &str| {
            let now = chrono::Utc::now().timestamp();
            let token = rsa.sign(
                &json!({"iss": "https://idp.corp.example", "aud": "steward", "sub": sub,
                "iat": now, "exp": now + 600}),
            );
            app.post_json(
                "/api/v1/auth/oauth/oidc",
                &json!({"idToken": token, "accessToken": access_token}),
            )
        };

        let refused = sign_in("emp-9", "stolen").await;
        expect_error(refused, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        let foreign = sign_in("emp-10", "provider-access-token").await;
        let error = expect_error(foreign, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        assert!(
            error["message"].as_str().unwrap().contains("different subject"),
            "{error}"
        );
        assert_eq!(
            app.count_users().await,
            0,
            "{backend:?}: refused sign-ins create nobody"
        );

        let eve = expect_data(sign_in("emp-9", "provider-access-token").await, StatusCode::OK).await;
        assert_eq!(eve["user"]["email"], "eve@corp.example");
        assert_eq!(eve["user"]["displayName"], "Eve Corp");
        assert_eq!(eve["user"]["emailVerified"], true);
        let me = expect_data(
            app.authed(
                Method::GET,
                "/api/admin/v1/me",
                eve["accessToken"].as_str().unwrap(),
            )
            .send()
            .await
            .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            me["roles"],
            json!(["support"]),
            "{backend:?}: groups from UserInfo are mapped"
        );
        app.stop().await;
    })
    .await;
}
