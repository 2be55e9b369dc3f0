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

#[tokio::test]
async fn re_entering_the_password_counts_toward_the_sign_in_lockout() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        let ann = app.user("ann@example.com").await;
        let change = |current: &str| {
            app.authed(Method::PUT, "/api/v1/auth/me/password", &ann.token)
                .json(&json!({"currentPassword": current, "newPassword": "a brand new passphrase"}))
                .send()
        };
        for _ in 0..3 {
            expect_error(
                change("wrong guess 1").await.unwrap(),
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
            )
            .await;
        }
        for _ in 0..2 {
            let deleted = app
                .authed(Method::DELETE, "/api/v1/auth/me", &ann.token)
                .json(&json!({"password": "wrong guess 2"}))
                .send()
                .await
                .unwrap();
            expect_error(deleted, StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS").await;
        }
        // Five wrong answers lock the account: the right password is refused too, everywhere.
        let locked = change(steward_tests::PASSWORD).await.unwrap();
        assert!(locked.headers().contains_key("retry-after"));
        expect_error(locked, StatusCode::TOO_MANY_REQUESTS, "ACCOUNT_LOCKED").await;
        expect_error(
            app.login("ann@example.com", steward_tests::PASSWORD).await,
            StatusCode::TOO_MANY_REQUESTS,
            "ACCOUNT_LOCKED",
        )
        .await;
        let actions = app.audit_actions().await;
        assert_eq!(
            actions
                .iter()
                .filter(|a| *a == "auth.reauthentication_failed")
                .count(),
            5,
            "{backend:?}: {actions:?}"
        );
        assert!(actions.contains(&"auth.account_locked".to_owned()));
        assert_eq!(app.count_users().await, 1, "the account was not deleted");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn role_overrides_name_only_grantable_roles_and_never_revoke_hand_grants() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("corp-1");
        let provider = FakeProvider::start(vec![rsa.clone()]).await;
        let url = provider.url.clone();
        let app = spawn_app_with(backend, move |config| {
            config.oidc_issuer = Some("https://idp.corp.example".to_owned());
            config.oidc_jwks_url = Some(url);
            config.oidc_client_ids = vec!["steward".to_owned()];
            config.oidc_group_role_map = "ops=user_admin".to_owned();
            config.oidc_group_role_defaults = String::new();
        })
        .await;
        let sign_in = |sub: &str, email: &str| {
            let now = chrono::Utc::now().timestamp();
            let token = rsa.sign(
                &json!({"iss": "https://idp.corp.example", "aud": "steward", "sub": sub,
                "email": email, "email_verified": true, "groups": [], "iat": now, "exp": now + 600}),
            );
            app.post_json("/api/v1/auth/oauth/oidc", &json!({"idToken": token}))
        };
        // The boss signs in through the IdP and is made super_admin by hand.
        let boss = expect_data(sign_in("emp-1", "boss@corp.example").await, StatusCode::OK).await;
        let boss_id: uuid::Uuid = boss["user"]["id"].as_str().unwrap().parse().unwrap();
        app.grant(boss_id, "super_admin").await;
        let user_admin = app.user("helpdesk@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        let path = format!("/api/admin/v1/users/{boss_id}/role-overrides");
        let put = |body: Value| {
            app.authed(Method::PUT, &path, &user_admin.token)
                .json(&body)
                .send()
        };

        for body in [
            json!({"enabled": true, "suppressed": ["super_admin"]}),
            json!({"enabled": true, "preserved": ["super_admin"]}),
            json!({"enabled": true, "suppressed": ["support"]}),
        ] {
            expect_error(
                put(body.clone()).await.unwrap(),
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
            )
            .await;
        }
        assert!(
            !app.audit_actions()
                .await
                .contains(&"admin.role_overrides_updated".to_owned()),
            "{backend:?}: nothing was saved"
        );
        // Pausing revocation reaches the boss's super_admin too: refused.
        expect_error(
            put(json!({"enabled": false, "preserved": [], "suppressed": []}))
                .await
                .unwrap(),
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        // Roles within their own are fine.
        expect_data(
            put(json!({"enabled": true, "suppressed": ["user_admin"]}))
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;

        // Even a super_admin's suppression never takes a hand-granted role away at sign-in.
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        expect_data(
            app.authed(Method::PUT, &path, &root.token)
                .json(&json!({"enabled": true, "suppressed": ["super_admin"]}))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let again = expect_data(sign_in("emp-1", "boss@corp.example").await, StatusCode::OK).await;
        let me = expect_data(
            app.authed(
                Method::GET,
                "/api/admin/v1/me",
                again["accessToken"].as_str().unwrap(),
            )
            .send()
            .await
            .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(me["roles"], json!(["super_admin"]), "{backend:?}: {me}");
        // And a user_admin cannot clear overrides naming a role beyond theirs either.
        let cleared = app
            .authed(Method::DELETE, &path, &user_admin.token)
            .send()
            .await
            .unwrap();
        expect_error(cleared, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        app.stop().await;
    })
    .await;
}

/// Waits until `n` reset requests have been handled (each leaves one audit entry).
async fn reset_requests_handled(app: &TestApp, n: usize) -> (usize, usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let actions = app.audit_actions().await;
        let sent = actions
            .iter()
            .filter(|a| *a == "auth.password_reset_requested")
            .count();
        let capped = actions
            .iter()
            .filter(|a| *a == "auth.password_reset_capped")
            .count();
        if sent + capped >= n {
            return (sent, capped);
        }
        assert!(tokio::time::Instant::now() < deadline, "{sent} + {capped} of {n}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn reset_mail_is_capped_per_recipient_and_ipv6_limits_count_by_64() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |config| {
            config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
            config.rate_limit_password_reset_per_hour = 5;
        })
        .await;
        app.user("victim@example.com").await;
        let forgot = |from: String| {
            let request = app
                .client
                .post(app.url("/api/v1/auth/forgot-password"))
                .header("x-forwarded-for", from)
                .json(&json!({"email": "victim@example.com"}));
            async move { request.send().await.unwrap() }
        };
        // Twelve addresses of one IPv6 /64 share its limit of five.
        let mut statuses = Vec::new();
        for i in 1..=12 {
            statuses.push(forgot(format!("2001:db8:aa:1::{i:x}")).await.status());
        }
        let accepted = statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count();
        assert_eq!(accepted, 5, "{backend:?}: {statuses:?}");
        assert!(statuses[5..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS));

        // From twelve different networks at once: all answered alike, three mails at most.
        let racing: Vec<_> = (1..=12).map(|i| forgot(format!("2001:db8:{i:x}::1"))).collect();
        let answers = futures_util::future::join_all(racing).await;
        assert!(
            answers.iter().all(|a| a.status() == StatusCode::ACCEPTED),
            "{backend:?}"
        );
        let (sent, capped) = reset_requests_handled(&app, 17).await;
        assert_eq!((sent, capped), (3, 14), "{backend:?}");
        assert_eq!(
            app.count_rows("email_tokens").await,
            1 + 3,
            "the verification token and three resets"
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn ten_concurrent_first_sign_ins_of_one_identity_all_succeed_with_one_account() {
    each_backend(|backend| async move {
        let rsa = ProviderKey::rsa("rsa-1");
        let provider = FakeProvider::start(vec![rsa.clone()]).await;
        let app = app_with_google(backend, &provider).await;
        let token = rsa.sign(&google_claims("g-double-tap", "tap@example.com"));
        let attempts: Vec<_> = (0..10)
            .map(|_| app.post_json("/api/v1/auth/oauth/google", &json!({"idToken": token})))
            .collect();
        let answers = futures_util::future::join_all(attempts).await;
        let mut users = std::collections::BTreeSet::new();
        let mut sessions = std::collections::BTreeSet::new();
        for answer in answers {
            let data = expect_data(answer, StatusCode::OK).await;
            users.insert(data["user"]["id"].as_str().unwrap().to_owned());
            sessions.insert(data["refreshToken"].as_str().unwrap().to_owned());
        }
        assert_eq!(users.len(), 1, "{backend:?}: one account");
        assert_eq!(sessions.len(), 10, "{backend:?}: a session each");
        assert_eq!(app.count_users().await, 1);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn emails_and_names_with_bidi_overrides_or_invisible_characters_are_refused() {
    each_backend(|backend| async move {
        let app = spawn_app_with(backend, |_| {}).await;
        for (email, name, field) in [
            ("alice\u{202E}moc.evil@example.com", "Alice", "email"),
            ("zw\u{200B}sp@example.com", "Alice", "email"),
            ("alice@example.com", "Alice\u{202E}nimda", "displayName"),
            ("alice@example.com", "\u{2066}Alice\u{2069}", "displayName"),
        ] {
            let refused = expect_error(
                app.post_json(
                    "/api/v1/auth/register",
                    &json!({"email": email, "password": steward_tests::PASSWORD, "displayName": name}),
                )
                .await,
                StatusCode::BAD_REQUEST,
                "VALIDATION_ERROR",
            )
            .await;
            assert!(
                refused.to_string().contains(field),
                "{backend:?} {email:?} {name:?}: {refused}"
            );
        }
        assert_eq!(app.count_users().await, 0);
        let family = expect_data(
            app.post_json(
                "/api/v1/auth/register",
                &json!({"email": "fam@example.com", "password": steward_tests::PASSWORD,
                    "displayName": "👨\u{200D}👩\u{200D}👧 Family"}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(family["user"]["displayName"], "👨\u{200D}👩\u{200D}👧 Family");
        app.stop().await;
    })
    .await;
}
