//! Groups at the seams: invites outliving their creator's rights.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use steward_tests::{TestApp, TestUser, each_backend, expect_data, expect_error, send, spawn_app};

async fn group_with_admin(app: &TestApp, owner: &TestUser, admin: &TestUser) -> String {
    let group = app.group(owner, "Team").await;
    let code = invite(app, &group, owner, "admin").await;
    expect_data(join(app, admin, &code).await, StatusCode::OK).await;
    group
}

async fn invite(app: &TestApp, group: &str, by: &TestUser, role: &str) -> String {
    expect_data(
        send(
            app,
            Method::POST,
            &format!("/api/v1/groups/{group}/invites"),
            by,
            Some(json!({"role": role, "maxUses": 5})),
        )
        .await,
        StatusCode::CREATED,
    )
    .await["code"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn join(
    app: &TestApp,
    user: &TestUser,
    code: &str,
) -> impl Future<Output = reqwest::Response> + 'static + use<> {
    let request = app
        .authed(Method::POST, "/api/v1/groups/join", &user.token)
        .json(&json!({"code": code}));
    async move { request.send().await.unwrap() }
}

async fn set_role(app: &TestApp, group: &str, owner: &TestUser, target: &TestUser, role: &str) {
    expect_data(
        send(
            app,
            Method::PUT,
            &format!("/api/v1/groups/{group}/members/{}/role", target.id),
            owner,
            Some(json!({"role": role})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn invites_stop_working_when_their_creator_loses_the_right_to_grant_them() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let owner = app.user("owner@example.com").await;
        let admin = app.user("admin@example.com").await;
        let (first, second, third) = (
            app.user("first@example.com").await,
            app.user("second@example.com").await,
            app.user("third@example.com").await,
        );
        let group = group_with_admin(&app, &owner, &admin).await;
        let admins_invite = invite(&app, &group, &admin, "admin").await;
        let members_invite = invite(&app, &group, &admin, "member").await;
        let joined: Value = expect_data(join(&app, &first, &admins_invite).await, StatusCode::OK).await;
        assert_eq!(
            joined["myRole"], "admin",
            "{backend:?}: works while the creator is admin"
        );

        // Demoted to member: neither of the admin's invites makes anyone anything any more.
        set_role(&app, &group, &owner, &admin, "member").await;
        for code in [&admins_invite, &members_invite] {
            expect_error(
                join(&app, &second, code).await,
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
            )
            .await;
        }
        // Promoted back, they work again (the invites were not spent by the refusals).
        set_role(&app, &group, &owner, &admin, "admin").await;
        expect_data(join(&app, &second, &members_invite).await, StatusCode::OK).await;

        // Removed: dead again.
        let removed = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/groups/{group}/members/{}", admin.id),
            &owner,
            None,
        )
        .await;
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        expect_error(
            join(&app, &third, &admins_invite).await,
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
        )
        .await;
        let roles: Vec<String> = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/groups/{group}/members"),
                &owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap().to_owned())
        .collect();
        assert_eq!(roles, ["owner", "admin", "member"], "{backend:?}: {roles:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_demotion_racing_joins_never_lets_a_join_outrank_the_creators_standing() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let owner = app.user("owner@example.com").await;
        let admin = app.user("admin@example.com").await;
        let group = group_with_admin(&app, &owner, &admin).await;
        let code = invite(&app, &group, &admin, "admin").await;
        let mut joiners = Vec::new();
        for i in 0..5 {
            joiners.push(app.user(&format!("joiner{i}@example.com")).await);
        }
        let demote = send(
            &app,
            Method::PUT,
            &format!("/api/v1/groups/{group}/members/{}/role", admin.id),
            &owner,
            Some(json!({"role": "member"})),
        );
        let joins: Vec<_> = joiners.iter().map(|user| join(&app, user, &code)).collect();
        let (demoted, answers) = tokio::join!(demote, futures_util::future::join_all(joins));
        assert_eq!(demoted.status(), StatusCode::OK);
        let joined = answers.iter().filter(|a| a.status() == StatusCode::OK).count();
        assert!(
            answers
                .iter()
                .all(|a| a.status() == StatusCode::OK || a.status() == StatusCode::NOT_FOUND),
            "{backend:?}"
        );
        // Each join either came before the demotion (an admin) or was refused; whoever joined
        // is an admin, and the demoted creator is a member.
        let members = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/groups/{group}/members"),
                &owner,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let admins = members
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "admin")
            .count();
        assert_eq!(admins, joined, "{backend:?}: {members}");
        // And after it, the code is dead.
        let late = app.user("late@example.com").await;
        expect_error(join(&app, &late, &code).await, StatusCode::NOT_FOUND, "NOT_FOUND").await;
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn locks_are_released_when_their_setter_no_longer_manages_the_device() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let owner = app.user("owner@example.com").await;
        let admin = app.user("admin@example.com").await;
        let kid = app.user("kid@example.com").await;
        let group = group_with_admin(&app, &owner, &admin).await;
        let code = invite(&app, &group, &owner, "member").await;
        expect_data(join(&app, &kid, &code).await, StatusCode::OK).await;
        let key = app.api_key().await;
        let (device, _) = app.device(&key, &kid, "kid-phone").await;
        let settings = format!("/api/v1/devices/{device}/settings");
        let lock = |by: &TestUser, key: &str| {
            send(
                &app,
                Method::POST,
                &format!("{settings}/{key}/lock"),
                by,
                Some(json!({"value": false})),
            )
        };
        expect_data(lock(&admin, "location.sharing_enabled").await, StatusCode::OK).await;
        expect_data(lock(&owner, "device.bluetooth_enabled").await, StatusCode::OK).await;
        let asked = expect_data(
            send(
                &app,
                Method::POST,
                &format!("{settings}/location.sharing_enabled/unlock-request"),
                &kid,
                None,
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let version = |value: &Value| value["version"].as_i64().unwrap();
        let before = expect_data(
            send(&app, Method::GET, &settings, &kid, None).await,
            StatusCode::OK,
        )
        .await;

        // The admin is demoted: their lock goes, the owner's stays.
        set_role(&app, &group, &owner, &admin, "member").await;
        let after = expect_data(
            send(&app, Method::GET, &settings, &kid, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            after["settings"]["location.sharing_enabled"]["locked"], false,
            "{backend:?}: {after}"
        );
        assert_eq!(after["settings"]["device.bluetooth_enabled"]["locked"], true);
        assert!(version(&after) > version(&before), "the version moved on");
        let requests = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/v1/devices/{device}/unlock-requests"),
                &kid,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let request = requests
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == asked["id"])
            .unwrap();
        assert_eq!(request["status"], "denied", "{backend:?}: {request}");

        // The kid leaves: the owner's lock goes too — nobody may lift it any more otherwise.
        let left = send(
            &app,
            Method::DELETE,
            &format!("/api/v1/groups/{group}/members/{}", kid.id),
            &kid,
            None,
        )
        .await;
        assert_eq!(left.status(), StatusCode::NO_CONTENT);
        let alone = expect_data(
            send(&app, Method::GET, &settings, &kid, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            alone["settings"]["device.bluetooth_enabled"]["locked"], false,
            "{backend:?}: {alone}"
        );
        let released = app
            .audit_actions()
            .await
            .into_iter()
            .filter(|a| a == "settings.lock_released")
            .count();
        assert_eq!(released, 2, "{backend:?}");
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_parent_who_deletes_their_account_leaves_no_lock_behind() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let owner = app.user("owner@example.com").await;
        let admin = app.user("admin@example.com").await;
        let kid = app.user("kid@example.com").await;
        let group = group_with_admin(&app, &owner, &admin).await;
        let code = invite(&app, &group, &owner, "member").await;
        expect_data(join(&app, &kid, &code).await, StatusCode::OK).await;
        let key = app.api_key().await;
        let (device, _) = app.device(&key, &kid, "kid-phone").await;
        let settings = format!("/api/v1/devices/{device}/settings");
        expect_data(
            send(
                &app,
                Method::POST,
                &format!("{settings}/location.sharing_enabled/lock"),
                &admin,
                Some(json!({"value": false})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let deleted = app
            .authed(Method::DELETE, "/api/v1/auth/me", &admin.token)
            .json(&json!({"password": steward_tests::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let after = expect_data(
            send(&app, Method::GET, &settings, &kid, None).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(
            after["settings"]["location.sharing_enabled"]["locked"], false,
            "{backend:?}: {after}"
        );
        app.stop().await;
    })
    .await;
}
