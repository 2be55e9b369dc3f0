//! Operators see every group and force ownership transfers: who may, what the filters select,
//! and that concurrent transfers leave exactly one owner.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn with_role(app: &TestApp, email: &str, role: &str) -> TestUser {
    let user = app.user(email).await;
    app.grant(user.id, role).await;
    user
}

fn ids(listed: &Value) -> Vec<String> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn operators_find_every_group_and_see_its_members() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = with_role(&app, "root@example.com", "super_admin").await;
        let user_admin = with_role(&app, "ua@example.com", "user_admin").await;
        let support = with_role(&app, "support@example.com", "support").await;
        let auditor = with_role(&app, "auditor@example.com", "auditor").await;
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;
        let family = app.group(&ann, "The Smiths").await;
        app.join(&family, &ann, &bob, "member").await;
        let other = app.group(&bob, "Chess club").await;
        let organization = app.organization(&root, "acme", &ann).await;
        let fleet = expect_data(
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/organizations/{organization}/groups"),
                &ann,
                Some(json!({"name": "Field phones"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_owned();

        for refused in [&support, &auditor, &ann] {
            let answer = send(&app, Method::GET, "/api/admin/v1/groups", refused, None).await;
            assert_eq!(answer.status(), StatusCode::FORBIDDEN, "{backend:?}");
        }
        let list = |query: &str| {
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/groups{query}"),
                &user_admin,
                None,
            )
        };
        let all = list("").await;
        let body: Value = all.json().await.unwrap();
        assert_eq!(body["meta"]["total"], 3, "{body}");
        assert_eq!(
            ids(&body["data"]),
            [fleet.clone(), other.clone(), family.clone()],
            "newest first"
        );
        let smiths = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == family.as_str())
            .unwrap()
            .clone();
        assert_eq!(smiths["kind"], "family");
        assert_eq!(smiths["memberCount"], 2);
        assert_eq!(smiths["owner"]["email"], "ann@example.com");
        assert_eq!(smiths["organizationId"], Value::Null);
        let field = body["data"][0].clone();
        assert_eq!(field["kind"], "fleet");
        assert_eq!(field["organizationId"], organization.as_str());

        for (query, expected) in [
            ("?q=SMITH", vec![family.clone()]),
            ("?q=%25", vec![]),
            ("?kind=fleet", vec![fleet.clone()]),
            ("?kind=family", vec![other.clone(), family.clone()]),
            (&format!("?organizationId={organization}"), vec![fleet.clone()]),
            (&format!("?ownerId={}", bob.id), vec![other.clone()]),
            ("?archived=true", vec![]),
            ("?archived=false&perPage=1&page=3", vec![family.clone()]),
        ] {
            let found = expect_data(list(query).await, StatusCode::OK).await;
            assert_eq!(ids(&found), expected, "{query} {backend:?}");
        }
        for query in [
            "?kind=team",
            "?archived=maybe",
            "?ownerId=nope",
            "?perPage=0",
            &format!("?q={}", "x".repeat(201)),
        ] {
            let refused = list(query).await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{query} {backend:?}");
        }

        let detail = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/groups/{family}"),
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let members: Vec<(String, String)> = detail["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["email"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            members,
            [
                ("ann@example.com".to_owned(), "owner".to_owned()),
                ("bob@example.com".to_owned(), "member".to_owned())
            ]
        );
        let missing = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/groups/{}", uuid::Uuid::now_v7()),
            &root,
            None,
        )
        .await;
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        // Deleted groups are gone for operators too.
        let deleted = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/groups/{other}"),
            &bob,
            None,
        )
        .await;
        assert!(deleted.status().is_success(), "{backend:?}");
        let gone = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/groups/{other}"),
            &root,
            None,
        )
        .await;
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn operators_force_an_ownership_transfer_and_concurrent_ones_leave_one_owner() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let user_admin = with_role(&app, "ua@example.com", "user_admin").await;
        let support = with_role(&app, "support@example.com", "support").await;
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;
        let cat = app.user("cat@example.com").await;
        let stranger = app.user("stranger@example.com").await;
        let family = app.group(&ann, "The Smiths").await;
        app.join(&family, &ann, &bob, "member").await;
        app.join(&family, &ann, &cat, "admin").await;
        let transfer = |by: &TestUser, user: uuid::Uuid| {
            send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/groups/{family}/transfer"),
                by,
                Some(json!({"userId": user})),
            )
        };

        assert_eq!(transfer(&support, bob.id).await.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            transfer(&ann, bob.id).await.status(),
            StatusCode::FORBIDDEN,
            "owners use the group API"
        );
        expect_error(
            transfer(&user_admin, stranger.id).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        expect_error(
            transfer(&user_admin, ann.id).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        for body in [
            json!({}),
            json!({"userId": "nope"}),
            json!({"userId": bob.id, "force": true}),
        ] {
            let refused = send(
                &app,
                Method::POST,
                &format!("/api/admin/v1/groups/{family}/transfer"),
                &user_admin,
                Some(body.clone()),
            )
            .await;
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{body}");
        }
        let unknown = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/groups/{}/transfer", uuid::Uuid::now_v7()),
            &user_admin,
            Some(json!({"userId": bob.id})),
        )
        .await;
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

        let moved = expect_data(transfer(&user_admin, bob.id).await, StatusCode::OK).await;
        assert_eq!(moved["owner"]["userId"], bob.id.to_string(), "{moved}");
        let roles: Vec<(String, String)> = moved["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["email"].as_str().unwrap().to_owned(),
                    m["role"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            roles.contains(&("ann@example.com".to_owned(), "admin".to_owned())),
            "{roles:?}"
        );
        // The new owner acts as owner at once.
        let renamed = send(
            &app,
            Method::PUT,
            &format!("/api/v1/groups/{family}"),
            &bob,
            Some(json!({"name": "Bob's"})),
        )
        .await;
        assert_eq!(renamed.status(), StatusCode::OK, "{backend:?}");

        // Two operators at once, to two members: each decided under the group's lock.
        let (first, second) = tokio::join!(transfer(&user_admin, ann.id), transfer(&user_admin, cat.id));
        assert!(first.status().is_success() || first.status() == StatusCode::BAD_REQUEST);
        assert!(second.status().is_success() || second.status() == StatusCode::BAD_REQUEST);
        let detail = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/groups/{family}"),
                &user_admin,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let owners = detail["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "owner")
            .count();
        assert_eq!(owners, 1, "{backend:?}: {detail}");
        assert!(
            app.audit_actions()
                .await
                .iter()
                .any(|a| a == "admin.group_ownership_transferred")
        );
        app.stop().await;
    })
    .await;
}
