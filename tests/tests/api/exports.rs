//! Exports as files: an organization's users (whoever may list them) and every group with its
//! members (operators with `groups:read`), as JSON and CSV, equal to the listings, with
//! formula cells defused, across the export's pages, and every refusal.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn download(app: &TestApp, user: &TestUser, path: &str) -> (String, String, String) {
    let answer = send(app, Method::GET, path, user, None).await;
    assert_eq!(answer.status(), StatusCode::OK, "{path}");
    let header = |name: &str| answer.headers()[name].to_str().unwrap().to_owned();
    let (content_type, disposition) = (header("content-type"), header("content-disposition"));
    assert_eq!(header("cache-control"), "no-store");
    (content_type, disposition, answer.text().await.unwrap())
}

/// Polls the job until it finished.
async fn finished(app: &TestApp, by: &TestUser, id: &str) -> Value {
    for _ in 0..600 {
        let job = expect_data(
            send(app, Method::GET, &format!("/api/admin/v1/jobs/{id}"), by, None).await,
            StatusCode::OK,
        )
        .await;
        if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = reader
        .records()
        .map(|row| row.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

#[tokio::test]
async fn an_organizations_users_export_equals_its_listing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let org = app.organization(&root, "exporting", &owner).await;
        let viewer = app.user("viewer@example.com").await;
        // A display name a spreadsheet would run.
        let renamed = send(
            &app,
            Method::PUT,
            "/api/v1/auth/me",
            &viewer,
            Some(json!({"displayName": "=HYPERLINK(\"x\")"})),
        )
        .await;
        assert!(renamed.status().is_success(), "{}", renamed.status());
        let added = send(
            &app,
            Method::POST,
            &format!("/api/admin/v1/organizations/{org}/users"),
            &owner,
            Some(json!({"userId": viewer.id, "role": "viewer"})),
        )
        .await;
        assert_eq!(added.status(), StatusCode::CREATED);
        let listed = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/organizations/{org}/users"),
                &viewer,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;

        let (content_type, disposition, text) = download(
            &app,
            &owner,
            &format!("/api/admin/v1/organizations/{org}/users/export"),
        )
        .await;
        assert!(content_type.starts_with("application/json"));
        assert_eq!(
            disposition,
            format!("attachment; filename=\"org-{org}-users.json\"")
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), listed);

        let (content_type, disposition, text) = download(
            &app,
            &owner,
            &format!("/api/admin/v1/organizations/{org}/users/export?format=csv"),
        )
        .await;
        assert!(content_type.starts_with("text/csv"));
        assert!(disposition.ends_with(".csv\""));
        let (header, rows) = csv_rows(&text);
        assert_eq!(header, ["userId", "email", "displayName", "role", "joinedAt"]);
        assert_eq!(rows.len(), listed.as_array().unwrap().len());
        let row = rows.iter().find(|row| row[0] == viewer.id.to_string()).unwrap();
        assert_eq!(
            (row[1].as_str(), row[2].as_str(), row[3].as_str()),
            ("viewer@example.com", "'=HYPERLINK(\"x\")", "viewer")
        );

        // Operators who read every organization may export it too.
        let auditor = app.user("auditor@example.com").await;
        app.grant(auditor.id, "auditor").await;
        let (_, _, text) = download(
            &app,
            &auditor,
            &format!("/api/admin/v1/organizations/{org}/users/export?format=csv"),
        )
        .await;
        assert_eq!(csv_rows(&text).1.len(), rows.len());
        // A viewer may list the users but not take a bulk copy; outsiders do not learn the
        // organization exists; a bad format is named.
        expect_error(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/organizations/{org}/users/export"),
                &viewer,
                None,
            )
            .await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
        let outsider = app.user("outsider@example.com").await;
        expect_error(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/organizations/{org}/users/export"),
                &outsider,
                None,
            )
            .await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        let error = expect_error(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/organizations/{org}/users/export?format=xml"),
                &owner,
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(error["details"][0]["field"], "format");
        assert_eq!(
            app.get(&format!("/api/admin/v1/organizations/{org}/users/export"))
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn every_group_exports_with_its_members_across_pages() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let owner = app.user("owner@example.com").await;
        let member = app.user("member@example.com").await;
        // More than a page of 100.
        let mut groups = Vec::new();
        for i in 0..101 {
            groups.push(app.group(&owner, &format!("Group {i}")).await);
        }
        app.join(&groups[0], &owner, &member, "member").await;
        let formula = app.group(&owner, "@SUM(A1)").await;

        let (content_type, disposition, json_text) =
            download(&app, &root, "/api/admin/v1/groups/export").await;
        assert!(content_type.starts_with("application/json"));
        assert_eq!(disposition, "attachment; filename=\"groups.json\"");
        let exported: Value =
            serde_json::from_str(&json_text).unwrap_or_else(|_| panic!("not JSON: {json_text}"));
        let exported = exported.as_array().unwrap();
        assert_eq!(exported.len(), 102);
        let first = exported
            .iter()
            .find(|group| group["id"] == groups[0].as_str())
            .unwrap();
        let members: Vec<&str> = first["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["email"].as_str().unwrap())
            .collect();
        assert_eq!(members, ["owner@example.com", "member@example.com"]);
        assert_eq!(first["memberCount"], 2);
        // Each group as `GET /groups/{id}` answers it.
        let detail = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/groups/{}", groups[0]),
                &root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(first, &detail);

        let (content_type, _, text) = download(&app, &root, "/api/admin/v1/groups/export?format=csv").await;
        assert!(content_type.starts_with("text/csv"));
        let (header, rows) = csv_rows(&text);
        assert_eq!(header[0], "groupId");
        assert_eq!(header.len(), 13);
        // A row per group and member: 103 groups' owners and one member more.
        assert_eq!(rows.len(), 103);
        let named = rows.iter().find(|row| row[0] == formula).unwrap();
        assert_eq!(named[1], "'@SUM(A1)");
        assert_eq!(
            (named[9].as_str(), named[11].as_str()),
            ("owner@example.com", "owner")
        );
        // The same export as a background job: its file holds the same bytes.
        for (format, streamed) in [("json", json_text.clone()), ("csv", text.clone())] {
            let accepted = expect_data(
                send(
                    &app,
                    Method::POST,
                    &format!("/api/admin/v1/groups/export?format={format}"),
                    &root,
                    None,
                )
                .await,
                StatusCode::ACCEPTED,
            )
            .await;
            assert_eq!(accepted["kind"], "group_export");
            let id = accepted["id"].as_str().unwrap().to_owned();
            let done = finished(&app, &root, &id).await;
            assert_eq!(done["status"], "succeeded", "{done}");
            assert_eq!(done["result"]["groups"], 102, "{done}");
            let file = send(
                &app,
                Method::GET,
                done["resultUrl"].as_str().unwrap(),
                &root,
                None,
            )
            .await;
            assert_eq!(file.status(), StatusCode::OK);
            assert_eq!(file.text().await.unwrap(), streamed, "{format}");
        }
        // The listing's filters apply.
        let (_, _, text) = download(&app, &root, "/api/admin/v1/groups/export?kind=fleet").await;
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!([]));
        let (_, _, text) = download(&app, &root, "/api/admin/v1/groups/export?format=csv&kind=fleet").await;
        assert_eq!(csv_rows(&text).1.len(), 0);

        // Who may export (`groups:read`: user admins too, support not), and refusals.
        let user_admin = app.user("useradmin@example.com").await;
        app.grant(user_admin.id, "user_admin").await;
        download(&app, &user_admin, "/api/admin/v1/groups/export?format=csv").await;
        let support = app.user("support@example.com").await;
        app.grant(support.id, "support").await;
        let plain = app.user("plain@example.com").await;
        for refused in [&plain, &owner, &support] {
            expect_error(
                send(&app, Method::GET, "/api/admin/v1/groups/export", refused, None).await,
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
            )
            .await;
        }
        let error = expect_error(
            send(
                &app,
                Method::GET,
                "/api/admin/v1/groups/export?format=pdf",
                &root,
                None,
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        assert_eq!(error["details"][0]["field"], "format");
        for (query, field) in [
            ("kind=castle", "kind"),
            ("q=a%00b", "query"),
            ("format=csv&q=%07", "q"),
        ] {
            for method in [Method::GET, Method::POST] {
                let error = expect_error(
                    send(
                        &app,
                        method,
                        &format!("/api/admin/v1/groups/export?{query}"),
                        &root,
                        None,
                    )
                    .await,
                    StatusCode::BAD_REQUEST,
                    "VALIDATION_ERROR",
                )
                .await;
                assert_eq!(error["details"][0]["field"], field, "{query}: {error}");
            }
        }
        // The listing refuses the same control characters (NUL never reaches it).
        expect_error(
            send(&app, Method::GET, "/api/admin/v1/groups?q=%1B", &root, None).await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
        app.stop().await;
    })
    .await;
}

/// The group export reads page after page along a keyset cursor (creation time, id), so a group
/// created while it runs (the newest, listed first) shifts nothing: no group of the next page
/// repeats one already read, and none is skipped.
#[tokio::test]
async fn the_group_exports_pages_follow_a_cursor_not_an_offset() {
    use steward_domain::group_admin::{GroupAdminStore, GroupFilter};
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let owner = app.user("owner@example.com").await;
        let mut created = Vec::new();
        for i in 0..5 {
            created.push(app.group(&owner, &format!("Group {i}")).await);
        }
        let database = app.database.connect().await;
        let page = |size| steward_domain::PageRequest::parse(Some(1), Some(size)).unwrap();
        let filter = GroupFilter::default();
        let (first, total) = database.list_all_groups(&filter, page(2)).await.unwrap();
        assert_eq!(total, 5);
        let ids = |listings: &[steward_domain::group_admin::GroupListing]| {
            listings
                .iter()
                .map(|listing| listing.group.id.to_string())
                .collect::<Vec<_>>()
        };
        // Newest first.
        assert_eq!(ids(&first), [created[4].clone(), created[3].clone()]);
        // A group created meanwhile comes first in the listing: an offset would now repeat
        // `created[3]`; the cursor goes on from it.
        app.group(&owner, "Created during the export").await;
        let last = first.last().unwrap();
        let after = GroupFilter {
            after: Some((last.group.created_at, last.group.id)),
            ..GroupFilter::default()
        };
        let (second, remaining) = database.list_all_groups(&after, page(2)).await.unwrap();
        assert_eq!(ids(&second), [created[2].clone(), created[1].clone()]);
        assert_eq!(remaining, 3);
        let last = second.last().unwrap();
        let after = GroupFilter {
            after: Some((last.group.created_at, last.group.id)),
            ..GroupFilter::default()
        };
        let (third, _) = database.list_all_groups(&after, page(2)).await.unwrap();
        assert_eq!(ids(&third), [created[0].clone()]);
        app.stop().await;
    })
    .await;
}
