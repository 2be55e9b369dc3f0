//! Organizations and their users over the admin API, and the cross-organization matrix.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn create(app: &TestApp, admin: &TestUser, slug: &str, owner: &TestUser) -> String {
    let created = send(
        app,
        Method::POST,
        "/api/admin/v1/organizations",
        admin,
        Some(json!({"name": slug, "slug": slug, "ownerUserId": owner.id})),
    )
    .await;
    expect_data(created, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn organizations_are_created_by_system_admins_and_run_by_their_owners() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let (ann, bob, carol) = (
            app.user("ann@example.com").await,
            app.user("bob@example.com").await,
            app.user("carol@example.com").await,
        );

        // The default organization is seeded and cannot be deleted.
        let all: Value = send(&app, Method::GET, "/api/admin/v1/organizations", &root, None)
            .await
            .json()
            .await
            .unwrap();
        let default = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["slug"] == "default")
            .cloned()
            .unwrap();
        assert_eq!(default["isDefault"], true, "{backend:?}: {all}");
        let refuse = send(
            &app,
            Method::DELETE,
            &format!("/api/admin/v1/organizations/{}", default["id"].as_str().unwrap()),
            &root,
            None,
        )
        .await;
        expect_error(refuse, StatusCode::CONFLICT, "CONFLICT").await;

        let by_user = send(
            &app,
            Method::POST,
            "/api/admin/v1/organizations",
            &ann,
            Some(json!({"name": "Mine", "slug": "mine"})),
        )
        .await;
        expect_error(by_user, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let bad = send(
            &app,
            Method::POST,
            "/api/admin/v1/organizations",
            &root,
            Some(json!({"name": "Acme", "slug": "Acme Corp"})),
        )
        .await;
        expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let acme = create(&app, &root, "acme", &ann).await;
        let taken = send(
            &app,
            Method::POST,
            "/api/admin/v1/organizations",
            &root,
            Some(json!({"name": "Acme 2", "slug": "acme"})),
        )
        .await;
        expect_error(taken, StatusCode::CONFLICT, "CONFLICT").await;

        // Ann sees only her organization and runs it.
        let mine: Value = send(&app, Method::GET, "/api/admin/v1/organizations", &ann, None)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(mine["meta"]["total"], 1);
        let users = format!("/api/admin/v1/organizations/{acme}/users");
        let added = send(
            &app,
            Method::POST,
            &users,
            &ann,
            Some(json!({"email": "BOB@example.com", "role": "admin"})),
        )
        .await;
        expect_data(added, StatusCode::CREATED).await;
        let twice = send(
            &app,
            Method::POST,
            &users,
            &ann,
            Some(json!({"userId": bob.id, "role": "viewer"})),
        )
        .await;
        expect_error(twice, StatusCode::CONFLICT, "CONFLICT").await;
        let crown = send(
            &app,
            Method::POST,
            &users,
            &bob,
            Some(json!({"userId": carol.id, "role": "owner"})),
        )
        .await;
        expect_error(crown, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        expect_data(
            send(
                &app,
                Method::POST,
                &users,
                &bob,
                Some(json!({"userId": carol.id, "role": "viewer"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let by_viewer = send(&app, Method::DELETE, &format!("{users}/{}", bob.id), &carol, None).await;
        expect_error(by_viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let last_owner = send(
            &app,
            Method::PUT,
            &format!("{users}/{}", ann.id),
            &ann,
            Some(json!({"role": "admin"})),
        )
        .await;
        expect_error(last_owner, StatusCode::CONFLICT, "CONFLICT").await;
        let remove_last = send(&app, Method::DELETE, &format!("{users}/{}", ann.id), &root, None).await;
        expect_error(remove_last, StatusCode::CONFLICT, "CONFLICT").await;
        expect_data(
            send(
                &app,
                Method::PUT,
                &format!("{users}/{}", bob.id),
                &ann,
                Some(json!({"role": "owner"})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let leave = send(&app, Method::DELETE, &format!("{users}/{}", ann.id), &ann, None).await;
        assert_eq!(leave.status(), StatusCode::NO_CONTENT);
        let listed = expect_data(send(&app, Method::GET, &users, &bob, None).await, StatusCode::OK).await;
        let roles: Vec<(&str, &str)> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|u| (u["email"].as_str().unwrap(), u["role"].as_str().unwrap()))
            .collect();
        assert_eq!(
            roles,
            [("bob@example.com", "owner"), ("carol@example.com", "viewer")]
        );

        // Updates with versions; usage counts.
        let path = format!("/api/admin/v1/organizations/{acme}");
        let viewer_update = send(
            &app,
            Method::PUT,
            &path,
            &carol,
            Some(json!({"name": "Carol Inc"})),
        )
        .await;
        expect_error(viewer_update, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let stale = send(
            &app,
            Method::PUT,
            &path,
            &bob,
            Some(json!({"name": "Acme Ltd", "version": 99})),
        )
        .await;
        expect_error(stale, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
        let renamed = expect_data(
            send(
                &app,
                Method::PUT,
                &path,
                &bob,
                Some(json!({"name": "Acme Ltd", "version": 1})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(renamed["version"], 2);
        let usage = expect_data(
            send(&app, Method::GET, &format!("{path}/usage"), &carol, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(usage["users"], 2);
        assert_eq!(usage["policies"], 0);
        let actions = app.audit_actions().await;
        for expected in [
            "organization.created",
            "organization.user_added",
            "organization.user_role_changed",
            "organization.user_removed",
            "organization.updated",
        ] {
            assert!(actions.contains(&expected.to_owned()), "{backend:?}: {expected}");
        }
        let deleted = send(&app, Method::DELETE, &path, &bob, None).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_admin_of_one_organization_gets_404_for_everything_of_another() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let (alice, bert) = (
            app.user("alice@example.com").await,
            app.user("bert@example.com").await,
        );
        let _a = create(&app, &root, "org-a", &alice).await;
        let b = create(&app, &root, "org-b", &bert).await;
        let before = (
            expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/organizations/{b}"),
                    &bert,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await,
            app.audit_actions().await.len(),
        );
        let base = format!("/api/admin/v1/organizations/{b}");
        for (method, path, body) in [
            (Method::GET, base.clone(), None),
            (Method::PUT, base.clone(), Some(json!({"name": "Hijacked"}))),
            (Method::DELETE, base.clone(), None),
            (Method::GET, format!("{base}/usage"), None),
            (Method::GET, format!("{base}/users"), None),
            (
                Method::POST,
                format!("{base}/users"),
                Some(json!({"userId": alice.id, "role": "owner"})),
            ),
            (
                Method::PUT,
                format!("{base}/users/{}", bert.id),
                Some(json!({"role": "viewer"})),
            ),
            (Method::DELETE, format!("{base}/users/{}", bert.id), None),
            (
                Method::GET,
                format!("/api/admin/v1/organizations/{}", uuid::Uuid::now_v7()),
                None,
            ),
        ] {
            let response = send(&app, method, &path, &alice, body).await;
            expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        }
        let after = (
            expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/organizations/{b}"),
                    &bert,
                    None,
                )
                .await,
                StatusCode::OK,
            )
            .await,
            app.audit_actions().await.len(),
        );
        assert_eq!(after, before, "{backend:?}: org B is untouched");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn policies_are_validated_against_the_catalog_and_scoped_to_their_organization() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let (alice, bert, vic) = (
            app.user("alice@example.com").await,
            app.user("bert@example.com").await,
            app.user("vic@example.com").await,
        );
        let a = create(&app, &root, "org-a", &alice).await;
        let b = create(&app, &root, "org-b", &bert).await;
        let users = format!("/api/admin/v1/organizations/{a}/users");
        expect_data(
            send(
                &app,
                Method::POST,
                &users,
                &alice,
                Some(json!({"userId": vic.id, "role": "viewer"})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let policies = format!("/api/admin/v1/organizations/{a}/policies");

        let bad = send(
            &app,
            Method::POST,
            &policies,
            &alice,
            Some(json!({"name": "Kids",
            "settings": {"device.camera_enabled": "off", "made.up": 1},
            "locks": ["notifications.enabled", "apps.install_allowed"]})),
        )
        .await;
        let error = expect_error(bad, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let fields: Vec<&str> = error["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "device.camera_enabled",
                "made.up",
                "locks.apps.install_allowed",
                "locks.notifications.enabled"
            ],
            "{backend:?}"
        );
        let by_viewer = send(&app, Method::POST, &policies, &vic, Some(json!({"name": "Mine"}))).await;
        expect_error(by_viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;

        let kids = expect_data(
            send(
                &app,
                Method::POST,
                &policies,
                &alice,
                Some(json!({"name": "Kids", "isDefault": true,
            "settings": {"device.camera_enabled": false, "apps.blocked": ["games", "chat", "games"]},
            "locks": ["device.camera_enabled"]})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        assert_eq!(kids["settings"]["apps.blocked"], json!(["chat", "games"]));
        let duplicate = send(
            &app,
            Method::POST,
            &policies,
            &alice,
            Some(json!({"name": "Kids"})),
        )
        .await;
        expect_error(duplicate, StatusCode::CONFLICT, "CONFLICT").await;
        let staff = expect_data(
            send(
                &app,
                Method::POST,
                &policies,
                &alice,
                Some(json!({"name": "Staff", "isDefault": true, "priority": 5})),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let listed = expect_data(
            send(&app, Method::GET, &policies, &vic, None).await,
            StatusCode::OK,
        )
        .await;
        let defaults: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["isDefault"] == true)
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(defaults, ["Staff"], "{backend:?}: one default per organization");
        assert_eq!(listed[0]["name"], "Staff", "highest priority first");

        let kids_path = format!("{policies}/{}", kids["id"].as_str().unwrap());
        let stale = send(
            &app,
            Method::PUT,
            &kids_path,
            &alice,
            Some(json!({"name": "Kids", "version": 7})),
        )
        .await;
        expect_error(stale, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
        let renamed = expect_data(
            send(
                &app,
                Method::PUT,
                &kids_path,
                &alice,
                Some(json!({"name": "Children", "version": 1,
            "settings": {"device.camera_enabled": false}, "locks": ["device.camera_enabled"]})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(renamed["version"], 2);
        assert_eq!(renamed["locks"], json!(["device.camera_enabled"]));

        // Org B's owner sees none of it, whatever the path.
        let staff_path = format!("{policies}/{}", staff["id"].as_str().unwrap());
        for (method, path, body) in [
            (Method::GET, policies.clone(), None),
            (Method::POST, policies.clone(), Some(json!({"name": "Intruder"}))),
            (Method::GET, kids_path.clone(), None),
            (Method::PUT, kids_path.clone(), Some(json!({"name": "Mine"}))),
            (Method::DELETE, staff_path.clone(), None),
            // Org A's policy through org B's path.
            (
                Method::GET,
                format!(
                    "/api/admin/v1/organizations/{b}/policies/{}",
                    kids["id"].as_str().unwrap()
                ),
                None,
            ),
        ] {
            let response = send(&app, method, &path, &bert, body).await;
            expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        }
        let deleted = send(&app, Method::DELETE, &staff_path, &alice, None).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            expect_data(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/organizations/{a}/usage"),
                    &vic,
                    None
                )
                .await,
                StatusCode::OK
            )
            .await["policies"],
            1
        );
        let actions = app.audit_actions().await;
        for expected in ["policy.created", "policy.updated", "policy.deleted"] {
            assert!(actions.contains(&expected.to_owned()), "{backend:?}: {expected}");
        }
        app.stop().await;
    })
    .await;
}
