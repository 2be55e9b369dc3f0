//! Feature switches (seed 002): `STEWARD_USER_MGMT_CORE` off takes the admin API's user, role,
//! audit and organization routes away (404 to everyone) and stops the OIDC provider creating
//! accounts or mapping roles, while accounts it already linked still sign in;
//! `GET /api/admin/v1/features` shows the switches.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::idp::{FakeProvider, ProviderKey};
use steward_tests::{
    Backend, TestApp, each_backend, expect_data, expect_error, send, spawn_app, spawn_instance_with,
};

const CORE_PATHS: [&str; 9] = [
    "/api/admin/v1/users",
    "/api/admin/v1/%75sers",
    "/api/%61dmin/v1/roles",
    "/api/admin/v1/users/bulk",
    "/api/admin/v1/roles",
    "/api/admin/v1/audit-logs",
    "/api/admin/v1/audit-logs/verify",
    "/api/admin/v1/organizations",
    "/api/admin/v1/organizations/00000000-0000-7000-8000-000000000001/users",
];

#[tokio::test]
async fn the_features_are_shown_to_operators_only() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let auditor = app.user("auditor@example.com").await;
        app.grant(auditor.id, "auditor").await;
        let ann = app.user("ann@example.com").await;
        for operator in [&root, &auditor] {
            let features = expect_data(
                send(&app, Method::GET, "/api/admin/v1/features", operator, None).await,
                StatusCode::OK,
            )
            .await;
            // Row-level security is enforced in the suite's PostgreSQL runs with STEWARD_TEST_RLS.
            let rls = app.database.app_url.is_some();
            assert_eq!(
                features,
                json!({"userMgmtCore": true, "coreRoutes": ["users", "roles", "audit-logs", "organizations"],
                    "enforce": false, "rlsEnforce": rls})
            );
        }
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/features", &ann, None).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        let anonymous = app
            .client
            .get(app.url("/api/admin/v1/features"))
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        // On, the core routes answer.
        for path in [
            "/api/admin/v1/users",
            "/api/admin/v1/roles",
            "/api/admin/v1/organizations",
        ] {
            expect_data(send(&app, Method::GET, path, &root, None).await, StatusCode::OK).await;
        }
        app.stop().await;
    })
    .await;
}

async fn oidc_sign_in(
    client: &Client,
    base: &str,
    key: &ProviderKey,
    sub: &str,
    email: &str,
) -> reqwest::Response {
    let now = chrono::Utc::now().timestamp();
    let token = key.sign(
        &json!({"iss": "https://idp.corp.example", "aud": "steward", "sub": sub,
        "email": email, "email_verified": true, "groups": ["Auditors"], "iat": now, "exp": now + 600}),
    );
    client
        .post(format!("{base}/api/v1/auth/oauth/oidc"))
        .json(&json!({"idToken": token}))
        .send()
        .await
        .unwrap()
}

async fn roles_of(client: &Client, base: &str, token: &str) -> StatusCode {
    client
        .get(format!("{base}/api/admin/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn core_off_hides_the_core_routes_and_stops_provisioning() {
    each_backend(|backend: Backend| async move {
        let key = ProviderKey::rsa("corp-1");
        let provider = FakeProvider::start(vec![key.clone()]).await;
        let oidc = |config: &mut steward::config::Config, url: String| {
            config.oidc_issuer = Some("https://idp.corp.example".to_owned());
            config.oidc_jwks_url = Some(url);
            config.oidc_client_ids = vec!["steward".to_owned()];
            config.oidc_group_role_map = "Auditors=auditor".to_owned();
            config.oidc_group_role_defaults = String::new();
        };
        let url = provider.url.clone();
        let app: TestApp = steward_tests::spawn_app_with(backend, |config| oidc(config, url)).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        // With the core on, the provider creates Dana's account and maps her group.
        let dana = expect_data(
            oidc_sign_in(&app.client, &app.address, &key, "emp-1", "dana@corp.example").await,
            StatusCode::OK,
        )
        .await;
        let dana_token = dana["accessToken"].as_str().unwrap().to_owned();
        assert_eq!(
            roles_of(&app.client, &app.address, &dana_token).await,
            StatusCode::OK
        );

        // A second instance on the same database runs with the core off.
        let url = provider.url.clone();
        let (off, handle) = spawn_instance_with(&app, |config| {
            oidc(config, url);
            config.user_mgmt_core = false;
        })
        .await;
        let client = &app.client;
        for path in CORE_PATHS {
            for token in [root.token.as_str(), "not-a-token"] {
                let response = client
                    .get(format!("{off}{path}"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
                assert_eq!(body["error"]["code"], "NOT_FOUND", "{path}: {body}");
            }
        }
        let created = client
            .post(format!("{off}/api/admin/v1/users"))
            .bearer_auth(&root.token)
            .json(&json!({"email": "new@example.com"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::NOT_FOUND);
        // The rest of the admin API stays.
        let features = client
            .get(format!("{off}/api/admin/v1/features"))
            .bearer_auth(&root.token)
            .send()
            .await
            .unwrap();
        let features: Value = features.json().await.unwrap();
        assert_eq!(features["data"]["userMgmtCore"], false, "{features}");
        let dashboard = client
            .get(format!("{off}/api/admin/v1/dashboard"))
            .bearer_auth(&root.token)
            .send()
            .await
            .unwrap();
        assert_eq!(dashboard.status(), StatusCode::OK);
        // The first instance, still on, answers as before.
        expect_data(
            send(&app, Method::GET, "/api/admin/v1/users", &root, None).await,
            StatusCode::OK,
        )
        .await;

        // Dana's linked account still signs in; a new identity gets no account.
        let again = oidc_sign_in(client, &off, &key, "emp-1", "dana@corp.example").await;
        assert_eq!(again.status(), StatusCode::OK);
        let users_before = app.count_users().await;
        let refused = oidc_sign_in(client, &off, &key, "emp-2", "erin@corp.example").await;
        let body = expect_error(refused, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("does not create accounts"),
            "{body}"
        );
        assert_eq!(app.count_users().await, users_before);
        handle.stop(true).await;
        app.stop().await;
    })
    .await;
}
