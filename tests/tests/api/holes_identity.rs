//! Identity at the seams: ID tokens from the future, a signed token naming another user on a
//! cached session.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::idp::{FakeProvider, ProviderKey, google_claims};
use steward_tests::{TestApp, each_backend, expect_data, expect_error, spawn_app_with};

async fn app_with_google(backend: steward_tests::Backend, provider: &FakeProvider) -> TestApp {
    let url = provider.url.clone();
    spawn_app_with(backend, move |config| {
        config.google_client_ids = vec!["steward-test-client".to_owned()];
        config.google_jwks_url = url;
    })
    .await
}

#[tokio::test]
async fn id_tokens_issued_in_the_future_or_without_iat_are_refused() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("rsa-1");
        let provider = FakeProvider::start(vec![rsa.clone()]).await;
        let app = app_with_google(backend, &provider).await;
        let now = chrono::Utc::now().timestamp();
        let mut cases = Vec::new();
        for (name, iat, nbf) in [
            ("iat an hour ahead", Some(now + 3600), None),
            ("iat five minutes ahead", Some(now + 300), None),
            ("nbf ahead", Some(now), Some(now + 600)),
            ("no iat", None, None),
        ] {
            let mut claims = google_claims(
                &format!("g-{name}"),
                &format!("{}@example.com", name.replace(' ', "-")),
            );
            claims["exp"] = json!(now + 7200);
            match iat {
                Some(iat) => claims["iat"] = json!(iat),
                None => {
                    claims.as_object_mut().unwrap().remove("iat");
                }
            }
            if let Some(nbf) = nbf {
                claims["nbf"] = json!(nbf);
            }
            cases.push((name, rsa.sign(&claims)));
        }
        for (name, token) in cases {
            let error = expect_error(
                app.post_json("/api/v1/auth/oauth/google", &json!({"idToken": token}))
                    .await,
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
            )
            .await;
            assert!(
                error["message"].as_str().unwrap().contains("ID token"),
                "{backend:?} {name}: {error}"
            );
        }
        assert_eq!(app.count_users().await, 0, "{backend:?}: no account was created");

        // Within the 60 s skew is fine.
        let mut claims = google_claims("g-skew", "skew@example.com");
        claims["iat"] = json!(now + 30);
        claims["nbf"] = json!(now + 30);
        expect_data(
            app.post_json(
                "/api/v1/auth/oauth/google",
                &json!({"idToken": rsa.sign(&claims)}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        app.stop().await;
    })
    .await;
}

fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

#[tokio::test]
async fn a_cached_session_still_checks_whose_token_it_is() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.session_cache_ms = 5000;
        })
        .await;
        let ann = app.user("ann@example.com").await;
        let bert = app.user("bert@example.com").await;
        // Ann's session is now in the cache.
        expect_data(
            app.authed(Method::GET, "/api/v1/auth/me", &ann.token)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;

        // A token signed with the server's own key, on Ann's session, naming Bert.
        let keys = app.data_dir.path().join("keys");
        let pem = std::fs::read_dir(&keys)
            .unwrap()
            .filter_map(Result::ok)
            .find(|entry| entry.path().extension().is_some_and(|e| e == "pem"))
            .map(|entry| std::fs::read(entry.path()).unwrap())
            .expect("the development signing key");
        let header = segment(&ann.token, 0);
        let mut claims = segment(&ann.token, 1);
        claims["sub"] = json!(bert.id);
        claims["jti"] = json!(uuid::Uuid::now_v7());
        let mut forged_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        forged_header.kid = header["kid"].as_str().map(str::to_owned);
        let forged = jsonwebtoken::encode(
            &forged_header,
            &claims,
            &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
        )
        .unwrap();
        expect_error(
            app.authed(Method::GET, "/api/v1/auth/me", &forged)
                .send()
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        )
        .await;
        // Ann's own token still works.
        let me = expect_data(
            app.authed(Method::GET, "/api/v1/auth/me", &ann.token)
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["email"], "ann@example.com", "{backend:?}");
        app.stop().await;
    })
    .await;
}
