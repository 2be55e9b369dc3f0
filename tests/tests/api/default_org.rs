//! Seed 002's default organization: the backfill migration makes accounts that belong to no
//! organization its `member`s and attaches managed devices without one; `steward db
//! repair-default-org` does it again, idempotently; a member belongs but reads nothing.

use reqwest::{Method, StatusCode};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use steward_domain::Actor;
use steward_domain::organizations::OrgRole;
use steward_tests::fleet::{enrolled, organization, token};
use steward_tests::{TestApp, each_backend, expect_data, expect_error, send, spawn_app};

const DEFAULT: &str = "00000000-0000-7000-8000-000000000001";

async fn default_users(app: &TestApp, root: &steward_tests::TestUser) -> Vec<(String, String)> {
    let page = expect_data(
        send(
            app,
            Method::GET,
            &format!("/api/admin/v1/organizations/{DEFAULT}/users?perPage=100"),
            root,
            None,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    page.as_array()
        .unwrap()
        .iter()
        .map(|user| {
            (
                user["email"].as_str().unwrap().to_owned(),
                user["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn repair(app: &TestApp, role: OrgRole) -> Value {
    use steward_domain::tenancy::TenancyStore;
    let audit = steward_domain::AuditEntry::new(
        Actor::system(),
        steward_domain::AuditAction::known("organization.default_repaired"),
        "organization",
    );
    let report = app.db.repair_default_organization(role, &audit).await.unwrap();
    serde_json::to_value(report).unwrap()
}

#[tokio::test]
async fn accounts_without_an_organization_join_the_default_one_and_the_repair_is_idempotent() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        // Created after the migrations ran: an account in an organization, two in none, and a
        // managed device whose organization is gone.
        let org = organization(&app, "acme").await;
        let (_, secret) = token(&app, &org, json!({})).await;
        let (device, _, _) = enrolled(&app, &secret, "orphan-phone").await;
        app.db
            .connection()
            .execute_unprepared(
                "UPDATE devices SET organization_id = NULL WHERE device_identifier = 'orphan-phone'",
            )
            .await
            .unwrap();
        let ann = app.user("ann@example.com").await;
        let bob = app.user("bob@example.com").await;
        assert!(default_users(&app, &org.root).await.is_empty());

        // The backfill migration, run again from below it, takes in every account without an
        // organization as a member (the owner and root of `acme` stay where they are... root
        // belongs to none, so it joins too).
        app.db.migrate_down(Some(1)).await.unwrap();
        app.db.migrate_up().await.unwrap();
        let users = default_users(&app, &org.root).await;
        for email in ["ann@example.com", "bob@example.com", "root-acme@example.com"] {
            assert!(
                users.contains(&(email.to_owned(), "member".to_owned())),
                "{users:?}"
            );
        }
        assert!(
            !users.iter().any(|(email, _)| email == "owner-acme@example.com"),
            "{users:?}"
        );
        let fleet = expect_data(
            send(
                &app,
                Method::GET,
                &format!("/api/admin/v1/organizations/{DEFAULT}/devices"),
                &org.root,
                None,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        assert!(
            fleet
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["id"] == device.as_str()),
            "{fleet}"
        );

        // A member reads nothing of the organization: not even in its list.
        let mine = expect_data(
            send(&app, Method::GET, "/api/admin/v1/organizations", &ann, None).await,
            StatusCode::OK,
        )
        .await;
        assert!(
            !mine.as_array().unwrap().iter().any(|o| o["id"] == DEFAULT),
            "{mine}"
        );
        for path in ["", "/users", "/devices", "/usage", "/policies"] {
            expect_error(
                send(
                    &app,
                    Method::GET,
                    &format!("/api/admin/v1/organizations/{DEFAULT}{path}"),
                    &ann,
                    None,
                )
                .await,
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
            )
            .await;
        }

        // Nothing left to do: the repair touches nothing, twice.
        for _ in 0..2 {
            assert_eq!(
                repair(&app, OrgRole::Member).await,
                json!({"organizationCreated": 0, "usersAdded": 0, "devicesAttached": 0})
            );
        }
        // A newcomer joins with the role asked for; a viewer reads the organization.
        let cid = app.user("cid@example.com").await;
        assert_eq!(repair(&app, OrgRole::Viewer).await["usersAdded"], 1);
        let seen = send(
            &app,
            Method::GET,
            &format!("/api/admin/v1/organizations/{DEFAULT}"),
            &cid,
            None,
        )
        .await;
        assert_eq!(seen.status(), StatusCode::OK);
        assert!(
            app.audit_actions()
                .await
                .iter()
                .any(|a| a == "organization.default_repaired")
        );
        let _ = bob;

        // The default organization's row gone (its memberships with it): created again, and
        // everyone without an organization back in it.
        app.db
            .connection()
            .execute_unprepared(&format!(
                "UPDATE devices SET organization_id = NULL WHERE organization_id = {0}; \
                 DELETE FROM org_users WHERE organization_id = {0}; DELETE FROM organizations WHERE id = {0}",
                match backend {
                    steward_tests::Backend::Sqlite => "X'00000000000070008000000000000001'".to_owned(),
                    steward_tests::Backend::Postgres => format!("'{DEFAULT}'"),
                }
            ))
            .await
            .unwrap();
        let again = repair(&app, OrgRole::Member).await;
        assert_eq!(again["organizationCreated"], 1, "{again}");
        assert_eq!(again["usersAdded"], 4, "{again}");
        assert_eq!(again["devicesAttached"], 1, "{again}");
        assert_eq!(
            repair(&app, OrgRole::Member).await,
            json!({"organizationCreated": 0, "usersAdded": 0, "devicesAttached": 0})
        );
    })
    .await;
}

#[tokio::test]
async fn the_repair_command_runs_from_the_shell_and_refuses_an_unknown_role() {
    use clap::Parser;
    let app = spawn_app(steward_tests::Backend::Sqlite).await;
    app.user("dan@example.com").await;
    let config = app.data_dir.path().join("steward.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\ndatabase_url = {:?}\n",
            app.data_dir.path().display().to_string(),
            app.database.url
        ),
    )
    .unwrap();
    let run = |role: &str| {
        let args = [
            "steward",
            "--config",
            config.to_str().unwrap(),
            "db",
            "repair-default-org",
            "--role",
            role,
        ];
        steward::cli::run(steward::cli::Cli::parse_from(args))
    };
    let refused = run("emperor").await.unwrap_err().to_string();
    assert!(refused.contains("STEWARD_DEFAULT_ORG_ROLE"), "{refused}");
    run("member").await.unwrap();
    assert_eq!(
        repair(&app, OrgRole::Member).await,
        json!({"organizationCreated": 0, "usersAdded": 0, "devicesAttached": 0})
    );
}
