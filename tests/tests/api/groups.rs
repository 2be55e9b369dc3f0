//! Groups over HTTP: lifecycle, roles, invites, the cross-user matrix and the races.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn create_group(app: &TestApp, owner: &TestUser, name: &str) -> String {
    let created = expect_data(
        send(
            app,
            Method::POST,
            "/api/v1/groups",
            owner,
            Some(json!({"name": name})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["myRole"], "owner");
    assert_eq!(created["memberCount"], 1);
    created["id"].as_str().unwrap().to_owned()
}

async fn invite(app: &TestApp, group: &str, by: &TestUser, body: Value) -> Value {
    expect_data(
        send(
            app,
            Method::POST,
            &format!("/api/v1/groups/{group}/invites"),
            by,
            Some(body),
        )
        .await,
        StatusCode::CREATED,
    )
    .await
}

async fn join(app: &TestApp, user: &TestUser, code: &str) -> reqwest::Response {
    send(
        app,
        Method::POST,
        "/api/v1/groups/join",
        user,
        Some(json!({"code": code})),
    )
    .await
}

async fn members(app: &TestApp, group: &str, viewer: &TestUser) -> Value {
    expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/v1/groups/{group}/members"),
            viewer,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await
}

fn role_of(members: &Value, user: &TestUser) -> Option<String> {
    members
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["userId"] == user.id.to_string())
        .map(|m| m["role"].as_str().unwrap().to_owned())
}

/// A group owned by ann with bob (admin), cat (member) and dan (viewer).
async fn family(app: &TestApp) -> (String, [TestUser; 4]) {
    let ann = app.user("ann@example.com").await;
    let bob = app.user("bob@example.com").await;
    let cat = app.user("cat@example.com").await;
    let dan = app.user("dan@example.com").await;
    let group = create_group(app, &ann, "Family").await;
    for (user, role) in [(&bob, "admin"), (&cat, "member"), (&dan, "viewer")] {
        let code = invite(app, &group, &ann, json!({"role": role})).await;
        let joined = expect_data(
            join(app, user, code["code"].as_str().unwrap()).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(joined["myRole"], role);
    }
    (group, [ann, bob, cat, dan])
}

#[tokio::test]
async fn groups_roles_and_invites_follow_the_permission_table() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let (group, [ann, bob, cat, dan]) = family(&app).await;
        let path = format!("/api/v1/groups/{group}");

        // Lists and views.
        let mine = send(&app, Method::GET, "/api/v1/groups", &bob, None).await;
        let body: Value = mine.json().await.unwrap();
        assert_eq!(body["meta"]["total"], 1, "{backend:?}: {body}");
        assert_eq!(body["data"][0]["myRole"], "admin");
        assert_eq!(body["data"][0]["memberCount"], 4);
        let as_viewer = members(&app, &group, &dan).await;
        assert_eq!(as_viewer.as_array().unwrap().len(), 4);
        assert_eq!(as_viewer[0]["role"], "owner", "most powerful first");
        assert!(as_viewer[0]["devices"].is_null() && as_viewer[0]["email"].is_null());
        let as_member = members(&app, &group, &cat).await;
        assert!(as_member[0]["devices"].is_array() && as_member[0]["email"].is_null());
        let as_admin = members(&app, &group, &bob).await;
        assert_eq!(as_admin[0]["email"], "ann@example.com");

        // Updates: admins may, viewers may not; stale versions are refused.
        let denied = send(&app, Method::PUT, &path, &dan, Some(json!({"name": "Mine"}))).await;
        expect_error(denied, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let current = expect_data(send(&app, Method::GET, &path, &bob, None).await, StatusCode::OK).await;
        let version = current["version"].as_i64().unwrap();
        let stale = app
            .authed(Method::PUT, &path, &bob.token)
            .header("if-match", format!("\"{}\"", version - 1))
            .json(&json!({"name": "Stale"}))
            .send()
            .await
            .unwrap();
        expect_error(stale, StatusCode::CONFLICT, "VERSION_CONFLICT").await;
        let renamed = app
            .authed(Method::PUT, &path, &bob.token)
            .header("if-match", format!("\"{version}\""))
            .json(&json!({"name": " The Smiths ", "description": "family"}))
            .send()
            .await
            .unwrap();
        let renamed = expect_data(renamed, StatusCode::OK).await;
        assert_eq!(renamed["name"], "The Smiths");
        let blank = send(&app, Method::PUT, &path, &bob, Some(json!({"name": "  "}))).await;
        expect_error(blank, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;

        // Roles: below oneself only, never above oneself, never ownership.
        let role = |target: &TestUser| format!("{path}/members/{}/role", target.id);
        let ok = send(
            &app,
            Method::PUT,
            &role(&cat),
            &bob,
            Some(json!({"role": "viewer"})),
        )
        .await;
        assert_eq!(expect_data(ok, StatusCode::OK).await["role"], "viewer");
        let up = send(
            &app,
            Method::PUT,
            &role(&ann),
            &bob,
            Some(json!({"role": "member"})),
        )
        .await;
        expect_error(up, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let crown = send(
            &app,
            Method::PUT,
            &role(&cat),
            &bob,
            Some(json!({"role": "owner"})),
        )
        .await;
        expect_error(crown, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let unknown = send(
            &app,
            Method::PUT,
            &role(&cat),
            &bob,
            Some(json!({"role": "boss"})),
        )
        .await;
        expect_error(unknown, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let by_viewer = send(
            &app,
            Method::PUT,
            &role(&dan),
            &cat,
            Some(json!({"role": "member"})),
        )
        .await;
        expect_error(by_viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let self_demote = send(
            &app,
            Method::PUT,
            &role(&ann),
            &ann,
            Some(json!({"role": "admin"})),
        )
        .await;
        expect_error(self_demote, StatusCode::CONFLICT, "CONFLICT").await;

        // Invites: admins invite up to their own role; codes are single-purpose.
        let as_owner = send(
            &app,
            Method::POST,
            &format!("{path}/invites"),
            &bob,
            Some(json!({"role": "owner"})),
        )
        .await;
        expect_error(as_owner, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let by_viewer = send(
            &app,
            Method::POST,
            &format!("{path}/invites"),
            &dan,
            Some(json!({})),
        )
        .await;
        expect_error(by_viewer, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let too_many = send(
            &app,
            Method::POST,
            &format!("{path}/invites"),
            &bob,
            Some(json!({"maxUses": 0})),
        )
        .await;
        expect_error(too_many, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let code = invite(&app, &group, &bob, json!({"maxUses": 3, "expiresInHours": 1})).await;
        let text = code["code"].as_str().unwrap();
        assert_eq!(text.len(), 8);
        assert!(
            text.bytes()
                .all(|b| b"ABCDEFGHJKMNPQRSTUVWXYZ23456789".contains(&b)),
            "{text}"
        );
        assert_eq!(code["role"], "member");
        let listed = expect_data(
            send(&app, Method::GET, &format!("{path}/invites"), &bob, None).await,
            StatusCode::OK,
        )
        .await;
        assert!(listed.as_array().unwrap().iter().any(|i| i["code"] == text));
        let again = join(&app, &cat, text).await;
        expect_error(again, StatusCode::CONFLICT, "CONFLICT").await;
        let eve = app.user("eve@example.com").await;
        let mangled = join(&app, &eve, "nope").await;
        expect_error(mangled, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let revoke = send(
            &app,
            Method::DELETE,
            &format!("{path}/invites/{}", code["id"].as_str().unwrap()),
            &bob,
            None,
        )
        .await;
        assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
        let revoked = join(&app, &eve, &text.to_lowercase()).await;
        expect_error(revoked, StatusCode::NOT_FOUND, "NOT_FOUND").await;

        // Leaving and removal.
        let leave_as_owner = send(
            &app,
            Method::DELETE,
            &format!("{path}/members/{}", ann.id),
            &ann,
            None,
        )
        .await;
        expect_error(leave_as_owner, StatusCode::CONFLICT, "CONFLICT").await;
        let viewer_removes = send(
            &app,
            Method::DELETE,
            &format!("{path}/members/{}", dan.id),
            &cat,
            None,
        )
        .await;
        expect_error(viewer_removes, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let leave = send(
            &app,
            Method::DELETE,
            &format!("{path}/members/{}", dan.id),
            &dan,
            None,
        )
        .await;
        assert_eq!(leave.status(), StatusCode::NO_CONTENT);
        let gone = send(&app, Method::GET, &path, &dan, None).await;
        expect_error(gone, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        let removed = send(
            &app,
            Method::DELETE,
            &format!("{path}/members/{}", cat.id),
            &bob,
            None,
        )
        .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);

        // Ownership moves to an existing member only; the old owner becomes an admin.
        let outsider = send(
            &app,
            Method::POST,
            &format!("{path}/transfer"),
            &ann,
            Some(json!({"userId": eve.id})),
        )
        .await;
        expect_error(outsider, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        let by_admin = send(
            &app,
            Method::POST,
            &format!("{path}/transfer"),
            &bob,
            Some(json!({"userId": bob.id})),
        )
        .await;
        expect_error(by_admin, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let moved = send(
            &app,
            Method::POST,
            &format!("{path}/transfer"),
            &ann,
            Some(json!({"userId": bob.id})),
        )
        .await;
        assert_eq!(expect_data(moved, StatusCode::OK).await["myRole"], "admin");
        let now = members(&app, &group, &bob).await;
        assert_eq!(role_of(&now, &bob).as_deref(), Some("owner"));
        assert_eq!(role_of(&now, &ann).as_deref(), Some("admin"));

        // Only the owner deletes; the group disappears for everyone.
        let by_ann = send(&app, Method::DELETE, &path, &ann, None).await;
        expect_error(by_ann, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let deleted = send(&app, Method::DELETE, &path, &bob, None).await;
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let after = send(&app, Method::GET, &path, &ann, None).await;
        expect_error(after, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        assert_eq!(
            app.count_rows("groups").await,
            1,
            "soft-deleted: the row stays for the audit trail"
        );

        let actions = app.audit_actions().await;
        for expected in [
            "group.created",
            "group.member_joined",
            "group.updated",
            "group.member_role_changed",
            "group.invite_created",
            "group.invite_revoked",
            "group.member_left",
            "group.member_removed",
            "group.ownership_transferred",
            "group.deleted",
        ] {
            assert!(
                actions.contains(&expected.to_owned()),
                "{backend:?}: {expected} in {actions:?}"
            );
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn outsiders_get_404_everywhere_and_change_nothing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let (group, [ann, bob, _cat, _dan]) = family(&app).await;
        let code = invite(&app, &group, &ann, json!({})).await;
        let eve = app.user("eve@example.com").await;
        let before = (members(&app, &group, &ann).await, app.audit_actions().await.len());
        let invite_id = code["id"].as_str().unwrap();
        let base = format!("/api/v1/groups/{group}");
        let attempts: Vec<(Method, String, Option<Value>)> = vec![
            (Method::GET, base.clone(), None),
            (Method::PUT, base.clone(), Some(json!({"name": "Eve's"}))),
            (Method::DELETE, base.clone(), None),
            (Method::GET, format!("{base}/members"), None),
            (
                Method::PUT,
                format!("{base}/members/{}/role", bob.id),
                Some(json!({"role": "viewer"})),
            ),
            (Method::DELETE, format!("{base}/members/{}", bob.id), None),
            (Method::POST, format!("{base}/invites"), Some(json!({}))),
            (Method::GET, format!("{base}/invites"), None),
            (Method::DELETE, format!("{base}/invites/{invite_id}"), None),
            (
                Method::POST,
                format!("{base}/transfer"),
                Some(json!({"userId": eve.id})),
            ),
            // A group that does not exist looks the same.
            (
                Method::GET,
                format!("/api/v1/groups/{}", uuid::Uuid::now_v7()),
                None,
            ),
        ];
        for (method, path, body) in attempts {
            let response = send(&app, method.clone(), &path, &eve, body).await;
            expect_error(response, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        }
        // A malformed id is a bad request, for members and strangers alike.
        for user in [&eve, &ann] {
            let response = send(&app, Method::GET, "/api/v1/groups/not-a-uuid", user, None).await;
            expect_error(response, StatusCode::BAD_REQUEST, "VALIDATION_ERROR").await;
        }
        let anonymous = app.get(&base).await;
        expect_error(anonymous, StatusCode::UNAUTHORIZED, "UNAUTHORIZED").await;
        assert_eq!(
            (members(&app, &group, &ann).await, app.audit_actions().await.len()),
            before,
            "{backend:?}: nothing changed"
        );
        // The invite still works for its intended use.
        expect_data(
            join(&app, &eve, code["code"].as_str().unwrap()).await,
            StatusCode::OK,
        )
        .await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn twenty_clients_racing_for_the_last_use_admit_exactly_one() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let ann = app.user("ann@example.com").await;
        let group = create_group(&app, &ann, "Club").await;
        let code = invite(&app, &group, &ann, json!({"maxUses": 1})).await;
        let code = code["code"].as_str().unwrap().to_owned();
        let mut users = Vec::new();
        for i in 0..20 {
            users.push(app.user(&format!("racer{i}@example.com")).await);
        }
        let joins = users.iter().map(|user| join(&app, user, &code));
        let statuses: Vec<StatusCode> = futures_util::future::join_all(joins)
            .await
            .into_iter()
            .map(|response| response.status())
            .collect();
        let joined = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!(joined, 1, "{backend:?}: {statuses:?}");
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::NOT_FOUND),
            "{backend:?}: losers are told the code is used up: {statuses:?}"
        );
        assert_eq!(members(&app, &group, &ann).await.as_array().unwrap().len(), 2);
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn racing_transfers_and_role_changes_leave_exactly_one_owner() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let (group, [ann, bob, cat, _dan]) = family(&app).await;
        let path = format!("/api/v1/groups/{group}");
        // Make cat an admin too, so both admins are candidates.
        let promoted = send(
            &app,
            Method::PUT,
            &format!("{path}/members/{}/role", cat.id),
            &ann,
            Some(json!({"role": "admin"})),
        )
        .await;
        expect_data(promoted, StatusCode::OK).await;
        for round in 0..4 {
            let everyone = [&ann, &bob, &cat];
            let mut requests = Vec::new();
            for actor in everyone {
                for target in everyone {
                    if actor.id != target.id {
                        requests.push(send(
                            &app,
                            Method::POST,
                            &format!("{path}/transfer"),
                            actor,
                            Some(json!({"userId": target.id})),
                        ));
                        requests.push(send(
                            &app,
                            Method::PUT,
                            &format!("{path}/members/{}/role", target.id),
                            actor,
                            Some(json!({"role": if round % 2 == 0 { "member" } else { "admin" }})),
                        ));
                    }
                }
            }
            let statuses: Vec<StatusCode> = futures_util::future::join_all(requests)
                .await
                .into_iter()
                .map(|response| response.status())
                .collect();
            assert!(
                statuses.iter().all(|s| s.is_success() || s.is_client_error()),
                "{backend:?}: no server errors: {statuses:?}"
            );
            let now = members(&app, &group, &ann).await;
            let owners = now
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["role"] == "owner")
                .count();
            assert_eq!(owners, 1, "{backend:?} round {round}: {now}");
        }
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_deleted_owner_hands_over_to_the_longest_standing_admin_or_the_group_is_archived() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let (family_group, [ann, bob, cat, dan]) = family(&app).await;
        let promoted = send(
            &app,
            Method::PUT,
            &format!("/api/v1/groups/{family_group}/members/{}/role", cat.id),
            &ann,
            Some(json!({"role": "admin"})),
        )
        .await;
        expect_data(promoted, StatusCode::OK).await;
        let club = create_group(&app, &ann, "Club").await;
        let code = invite(&app, &club, &ann, json!({"role": "member"})).await;
        expect_data(
            join(&app, &dan, code["code"].as_str().unwrap()).await,
            StatusCode::OK,
        )
        .await;

        let deleted = app
            .authed(Method::DELETE, "/api/v1/auth/me", &ann.token)
            .json(&json!({"password": steward_tests::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(deleted.status().is_success(), "{}", deleted.status());

        let now = members(&app, &family_group, &bob).await;
        assert_eq!(
            role_of(&now, &bob).as_deref(),
            Some("owner"),
            "{backend:?}: bob joined before cat: {now}"
        );
        assert_eq!(role_of(&now, &cat).as_deref(), Some("admin"));
        assert_eq!(role_of(&now, &ann), None);
        let archived = expect_data(
            send(&app, Method::GET, &format!("/api/v1/groups/{club}"), &dan, None).await,
            StatusCode::OK,
        )
        .await;
        assert!(archived["archivedAt"].is_string(), "{backend:?}: {archived}");
        let rename = send(
            &app,
            Method::PUT,
            &format!("/api/v1/groups/{club}"),
            &dan,
            Some(json!({"name": "Mine"})),
        )
        .await;
        expect_error(rename, StatusCode::FORBIDDEN, "FORBIDDEN").await;
        let leave = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/groups/{club}/members/{}", dan.id),
            &dan,
            None,
        )
        .await;
        assert_eq!(
            leave.status(),
            StatusCode::NO_CONTENT,
            "members may leave an archived group"
        );
        assert!(
            app.audit_actions()
                .await
                .contains(&"group.member_erased".to_owned())
        );
        app.stop().await;
    })
    .await;
}
