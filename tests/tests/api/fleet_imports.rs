//! Bulk imports end to end: devices and organization users, problems by line, all or nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::fleet::{enrolled, organization, post, token};
use steward_tests::{TestUser, each_backend, expect_data, expect_error, send, spawn_app};

#[tokio::test]
async fn imports_report_problems_by_line_and_are_all_or_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "import").await;
        let member = app.user("member@example.com").await;
        post(
            &app,
            &org.owner,
            &org.path("/users"),
            json!({"userId": member.id, "role": "viewer"}),
        )
        .await;
        let policy = post(&app, &org.owner, &org.path("/policies"), json!({"name": "P"})).await;
        let import = |query: &str, content_type: &str, body: String| {
            app.authed(
                Method::POST,
                &org.path(&format!("/devices/import{query}")),
                &org.owner.token,
            )
            .header("content-type", content_type.to_owned())
            .body(body)
            .send()
        };
        let csv = format!(
            "deviceId,displayName,platform,serialNumber,policyId,assignedUserEmail\n\
             tab-1,Tablet 1,android,S1,{policy},member@example.com\n\
             tab-2,Tablet 2,ios,S2,,\n\
             ,No id,android,S3,,\n\
             tab-4,Tablet 4,android,S4,{unknown},nobody@example.com\n\
             tab-1,Again,android,S5,,\n\
             tab-6,Tablet 6,android,S6,not-a-uuid,\n",
            policy = policy["id"].as_str().unwrap(),
            unknown = uuid::Uuid::now_v7()
        );
        let dry = expect_data(
            import("?dryRun=true", "text/csv", csv.clone()).await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(dry["rows"], 6);
        let errors: Vec<(i64, &str)> = dry["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap()))
            .collect();
        assert_eq!(
            errors,
            [
                (4, "deviceId"),
                (5, "policyId"),
                (5, "assignedUserEmail"),
                (6, "deviceId"),
                (7, "policyId")
            ],
            "{dry}"
        );
        assert_eq!(app.count_rows("devices").await, 0);

        let real = import("", "text/csv", csv).await.unwrap();
        let error = expect_error(real, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        assert_eq!(error["details"].as_array().unwrap().len(), 5, "{error}");
        assert_eq!(app.count_rows("devices").await, 0, "nothing imported");

        let good = format!(
            "deviceId,displayName,platform,serialNumber,policyId,assignedUserEmail\n\
             tab-1,Tablet 1,android,S1,{policy},member@example.com\n\
             tab-2,Tablet 2,ios,S2,,\n",
            policy = policy["id"].as_str().unwrap()
        );
        let done = expect_data(import("", "text/csv", good).await.unwrap(), StatusCode::OK).await;
        assert_eq!(
            (done["created"].as_i64(), done["skipped"].as_i64()),
            (Some(2), Some(0)),
            "{done}"
        );
        let listed: Value = send(
            &app,
            Method::GET,
            &org.path("/devices?sort=name"),
            &org.owner,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(listed["data"][0]["enrollmentStatus"], "pending");
        assert_eq!(listed["data"][0]["policyId"], policy["id"]);
        assert_eq!(listed["data"][0]["assignedUserId"], member.id.to_string());

        // JSON, with duplicates skipped or updated.
        let json_rows =
            json!([{"deviceId": "tab-2", "displayName": "Renamed"}, {"deviceId": "tab-3"}]).to_string();
        let skipped = expect_data(
            import("", "application/json", json_rows.clone()).await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            (skipped["created"].as_i64(), skipped["skipped"].as_i64()),
            (Some(1), Some(1))
        );
        let updated = expect_data(
            import("?onDuplicate=update", "application/json", json_rows)
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(updated["updated"], 2);
        let renamed: Value = send(
            &app,
            Method::GET,
            &org.path("/devices?q=renamed"),
            &org.owner,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(renamed["meta"]["total"], 1);
        // A personal device cannot be taken over by an import, whatever the option.
        let key = app.api_key().await;
        let personal = app
            .client
            .post(app.url("/api/v1/devices/register"))
            .header("x-api-key", &key)
            .json(&json!({"deviceId": "personal-1", "displayName": "Mine"}))
            .send()
            .await
            .unwrap();
        expect_data(personal, StatusCode::CREATED).await;
        let takeover = expect_data(
            import(
                "?onDuplicate=update&dryRun=true",
                "application/json",
                json!([{"deviceId": "personal-1"}]).to_string(),
            )
            .await
            .unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(takeover["errors"][0]["field"], "deviceId", "{takeover}");
        assert!(
            takeover["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("outside this organization")
        );
        let wrong_type = import("", "text/plain", "x".to_owned()).await.unwrap();
        expect_error(
            wrong_type,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
        )
        .await;
        let actions = app.audit_actions().await;
        assert_eq!(actions.iter().filter(|a| *a == "device.imported").count(), 3);
        assert_eq!(
            actions.iter().filter(|a| *a == "device.import_updated").count(),
            2
        );

        // An imported device enrolls into its pre-registered record.
        let (_, secret) = token(&app, &org, json!({})).await;
        let (_, _, answer) = enrolled(&app, &secret, "tab-1").await;
        assert_eq!(answer["adopted"], true);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn organization_users_import_existing_accounts_with_roles_the_importer_may_grant() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "people").await;
        let (ann, bob, _carol) = (
            app.user("ann@example.com").await,
            app.user("bob@example.com").await,
            app.user("carol@example.com").await,
        );
        let import = |user: &TestUser, query: &str, body: &str| {
            app.authed(Method::POST, &org.path(&format!("/users/import{query}")), &user.token)
                .header("content-type", "text/csv")
                .body(body.to_owned())
                .send()
        };
        let csv = "email,role\nANN@example.com,admin\nbob@example.com,\nghost@example.com,viewer\ncarol@example.com,boss\nann@example.com,viewer\n";
        let dry = expect_data(import(&org.owner, "?dryRun=true", csv).await.unwrap(), StatusCode::OK).await;
        let errors: Vec<(i64, &str)> = dry["errors"].as_array().unwrap().iter()
            .map(|e| (e["line"].as_i64().unwrap(), e["field"].as_str().unwrap())).collect();
        assert_eq!(errors, [(4, "email"), (5, "role"), (6, "email")], "{dry}");
        let refused = import(&org.owner, "", csv).await.unwrap();
        expect_error(refused, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let members = || send(&app, Method::GET, &org.path("/users"), &org.owner, None);
        assert_eq!(expect_data(members().await, StatusCode::OK).await.as_array().unwrap().len(), 1, "nothing imported");

        let added = |actions: &[String]| actions.iter().filter(|a| *a == "organization.user_added").count();
        let before = added(&app.audit_actions().await);
        let done = expect_data(
            import(&org.owner, "", "email,role\nann@example.com,admin\nbob@example.com,viewer\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(done["created"], 2, "{done}");
        let listed = expect_data(members().await, StatusCode::OK).await;
        let role_of = |listed: &Value, id: uuid::Uuid| {
            listed.as_array().unwrap().iter().find(|m| m["userId"] == id.to_string()).map(|m| m["role"].clone())
        };
        assert_eq!(role_of(&listed, ann.id), Some(json!("admin")));
        assert_eq!(role_of(&listed, bob.id), Some(json!("viewer")));

        // An admin may not grant owner; existing users are skipped unless updating.
        let by_admin = expect_data(
            import(&ann, "?dryRun=true", "email,role\ncarol@example.com,owner\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(by_admin["errors"][0]["field"], "role", "{by_admin}");
        let viewer = import(&bob, "?dryRun=true", "email\ncarol@example.com\n").await.unwrap();
        expect_error(viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let skipped = expect_data(import(&ann, "", "email,role\nbob@example.com,admin\n").await.unwrap(), StatusCode::OK).await;
        assert_eq!(skipped["skipped"], 1);
        let updated = expect_data(
            import(&ann, "?onDuplicate=update", "email,role\nbob@example.com,admin\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(updated["updated"], 1);
        assert_eq!(role_of(&expect_data(members().await, StatusCode::OK).await, bob.id), Some(json!("admin")));
        let owner_kept = expect_data(
            import(&ann, "?onDuplicate=update", "email,role\nowner-people@example.com,viewer\n").await.unwrap(),
            StatusCode::OK,
        )
        .await;
        assert_eq!(owner_kept["skipped"], 1, "an import never changes an owner: {owner_kept}");
        let actions = app.audit_actions().await;
        assert_eq!(added(&actions) - before, 2, "one entry per imported user: {actions:?}");
        assert!(actions.contains(&"organization.user_role_changed".to_owned()));
        app.stop().await;
    })
    .await;
}

/// The import's plan is made on the users read under the organization's lock: racing a
/// promotion to owner, an import that demotes the same user either runs first (and the
/// promotion follows) or sees the owner and skips — never demotes an owner.
#[tokio::test]
async fn an_import_racing_a_promotion_never_demotes_the_new_owner() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let org = organization(&app, "racers").await;
        let mut users = Vec::new();
        for n in 0..6 {
            let user = app.user(&format!("racer{n}@example.com")).await;
            expect_data(
                send(
                    &app,
                    Method::POST,
                    &org.path("/users"),
                    &org.owner,
                    Some(json!({"userId": user.id, "role": "admin"})),
                )
                .await,
                StatusCode::CREATED,
            )
            .await;
            users.push(user);
        }
        let csv: String = std::iter::once("email,role".to_owned())
            .chain((0..6).map(|n| format!("racer{n}@example.com,viewer")))
            .collect::<Vec<_>>()
            .join("\n");
        let import = app
            .authed(
                Method::POST,
                &org.path("/users/import?onDuplicate=update"),
                &org.owner.token,
            )
            .header("content-type", "text/csv")
            .body(csv)
            .send();
        let promotions = users.iter().map(|user| {
            send(
                &app,
                Method::PUT,
                &org.path(&format!("/users/{}", user.id)),
                &org.owner,
                Some(json!({"role": "owner"})),
            )
        });
        let (imported, promoted) = tokio::join!(import, futures_util::future::join_all(promotions));
        let imported = imported.unwrap();
        assert_eq!(imported.status(), StatusCode::OK, "{backend:?}");
        for response in promoted {
            assert_eq!(response.status(), StatusCode::OK, "{backend:?}");
        }
        let listed = expect_data(
            send(&app, Method::GET, &org.path("/users"), &org.owner, None).await,
            StatusCode::OK,
        )
        .await;
        for user in &users {
            let role = listed
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["userId"] == user.id.to_string())
                .map(|m| m["role"].clone());
            assert_eq!(role, Some(json!("owner")), "{backend:?}: {listed}");
        }
        app.stop().await;
    })
    .await;
}
