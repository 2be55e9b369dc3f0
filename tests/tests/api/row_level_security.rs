//! Row-level security (PostgreSQL): the database itself refuses one organization's rows to a
//! connection acting for another, with the two roles `deploy/postgres-roles.sql` creates; the
//! report is idempotent and says where a privilege is missing; SQLite says `unsupported`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, Row};
use steward_domain::tenancy::{RlsStatus, TenancyStore};
use steward_persistence::{Database, DatabaseOptions};
use steward_tests::fleet::{enrolled, organization, token};
use steward_tests::{
    Backend, TestApp, TestDatabase, backends, expect_data, expect_error, send, spawn_app, spawn_app_on,
};

/// The organization-owned tables docs/operations.md lists.
const TABLES: [&str; 41] = [
    "org_users",
    "device_policies",
    "enrollment_tokens",
    "devices",
    "device_commands",
    "device_tokens",
    "groups",
    "audit_logs",
    "device_events",
    "api_keys",
    "jobs",
    "notifications",
    "quota_alerts",
    "quota_spends",
    "report_schedules",
    "webhooks",
    "unlock_requests",
    "device_settings",
    "device_transfers",
    "push_notifications",
    "device_event_batches",
    "group_memberships",
    "group_invites",
    "webhook_deliveries",
    "job_blobs",
    "report_runs",
    "report_recipients",
    "user_sessions",
    "refresh_tokens",
    "email_tokens",
    "password_history",
    "oauth_accounts",
    "user_mfa",
    "mfa_challenges",
    "mfa_recovery_codes",
    "mfa_exemptions",
    "user_system_roles",
    "user_role_overrides",
    "user_quotas",
    "notification_preferences",
    "notification_reads",
];

/// `url` with another user.
fn as_role(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let host = rest.split_once('@').map(|(_, host)| host).unwrap_or(rest);
    format!("{scheme}://{role}@{host}")
}

/// Runs deploy/postgres-roles.sql in `database` with roles of this test's own: (owner, app).
async fn two_roles(database: &TestDatabase) -> (String, String) {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let (owner, app) = (format!("steward_owner_{suffix}"), format!("steward_app_{suffix}"));
    let script = include_str!("../../../deploy/postgres-roles.sql")
        .replace("steward_owner", &owner)
        .replace("steward_app", &app)
        .replace("DATABASE steward", &format!("DATABASE \"{}\"", database.name));
    let mut admin = sqlx::PgConnection::connect(&database.url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = admin.close().await;
    (owner, app)
}

async fn report(app: &TestApp, who: &steward_tests::TestUser, enable: Option<bool>) -> Value {
    let response = match enable {
        None => send(app, Method::GET, "/api/admin/v1/database/rls", who, None).await,
        Some(enable) => {
            send(
                app,
                Method::POST,
                "/api/admin/v1/database/rls",
                who,
                Some(json!({"enable": enable})),
            )
            .await
        }
    };
    expect_data(response, StatusCode::OK).await
}

fn statuses(report: &Value) -> Vec<(String, String)> {
    report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|table| {
            (
                table["table"].as_str().unwrap().to_owned(),
                table["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn all(report: &Value, status: &str) -> bool {
    statuses(report).iter().all(|(_, actual)| actual == status)
}

/// The devices a raw connection of the application role sees after `settings`.
async fn visible_devices(url: &str, settings: &str) -> Vec<String> {
    let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
    connection
        .execute(sqlx::AssertSqlSafe(settings.to_owned()))
        .await
        .unwrap();
    // Deliberately unfiltered: the policy alone decides.
    let rows = sqlx::query("SELECT id::text AS id FROM devices")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    let _ = connection.close().await;
    rows.iter().map(|row| row.get::<String, _>("id")).collect()
}

#[tokio::test]
async fn postgres_refuses_another_organizations_rows_to_the_application_role() {
    if !backends().await.contains(&Backend::Postgres) {
        return;
    }
    let database = TestDatabase::create(Backend::Postgres).await;
    let (owner_role, app_role) = two_roles(&database).await;
    let owner_url = as_role(&database.url, &owner_role);
    let app_url = as_role(&database.url, &app_role);
    let (server_url, migration_url) = (app_url.clone(), owner_url.clone());
    let app = spawn_app_on(database, move |config| {
        config.database_url = Some(server_url);
        config.database_migration_url = Some(migration_url);
        config.rls_enforce = Some(true);
    })
    .await;

    // Two organizations, a device enrolled in each, through the API as the server role.
    let alpha = organization(&app, "alpha").await;
    let beta = organization(&app, "beta").await;
    let (_, alpha_secret) = token(&app, &alpha, json!({"name": "floor"})).await;
    let (alpha_device, alpha_token, _) = enrolled(&app, &alpha_secret, "alpha-phone-1").await;
    let (_, beta_secret) = token(&app, &beta, json!({"name": "floor"})).await;
    let (beta_device, _, _) = enrolled(&app, &beta_secret, "beta-phone-1").await;
    // The application works as before under its policies.
    let fleet = expect_data(
        send(&app, Method::GET, &alpha.path("/devices"), &alpha.owner, None).await,
        StatusCode::OK,
    )
    .await;
    let listed: Vec<&str> = fleet
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![alpha_device.as_str()], "{fleet}");
    let poll = app
        .client
        .get(app.url(&format!("/api/v1/devices/{alpha_device}/settings")))
        .bearer_auth(&alpha_token)
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), StatusCode::OK);
    expect_error(
        send(&app, Method::GET, &beta.path("/devices"), &alpha.owner, None).await,
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
    )
    .await;

    // The database refuses the other organization's rows to an unfiltered query.
    let as_alpha = format!("SET app.org_ids = '{}'", alpha.id);
    let seen = visible_devices(&app_url, &as_alpha).await;
    assert!(seen.contains(&alpha_device), "{seen:?}");
    assert!(!seen.contains(&beta_device), "{seen:?}");
    let braces = format!("SET app.org_ids = '{{{},{}}}'", alpha.id, beta.id);
    let both = visible_devices(&app_url, &braces).await;
    assert!(
        both.contains(&alpha_device) && both.contains(&beta_device),
        "{both:?}"
    );
    assert!(
        !visible_devices(&app_url, "SELECT 1")
            .await
            .contains(&alpha_device)
    );
    let system = visible_devices(&app_url, "SET app.is_system = 'on'").await;
    assert!(system.contains(&beta_device), "{system:?}");

    // Nor may it write them: an update or delete of B's rows touches none, an insert is refused.
    let mut raw = sqlx::PgConnection::connect(&app_url).await.unwrap();
    raw.execute(sqlx::AssertSqlSafe(as_alpha.clone())).await.unwrap();
    let updated = sqlx::query("UPDATE devices SET display_name = 'taken' WHERE id = $1::uuid")
        .bind(&beta_device)
        .execute(&mut raw)
        .await
        .unwrap();
    assert_eq!(updated.rows_affected(), 0);
    let deleted = sqlx::query("DELETE FROM org_users WHERE organization_id = $1::uuid")
        .bind(&beta.id)
        .execute(&mut raw)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 0);
    let moved = sqlx::query("UPDATE devices SET organization_id = $1::uuid WHERE id = $2::uuid")
        .bind(&beta.id)
        .bind(&alpha_device)
        .execute(&mut raw)
        .await
        .unwrap_err();
    assert!(moved.to_string().contains("row-level security"), "{moved}");
    // Nor join another organization: a membership of one's own is readable, never writable
    // into an organization that is not one's own.
    raw.execute(sqlx::AssertSqlSafe(format!(
        "SET app.user_id = '{}'",
        alpha.owner.id
    )))
    .await
    .unwrap();
    let joined = sqlx::query(
        "INSERT INTO org_users (id, organization_id, user_id, role, created_at, updated_at) \
         VALUES (gen_random_uuid(), $1::uuid, $2, 'owner', now(), now())",
    )
    .bind(&beta.id)
    .bind(alpha.owner.id)
    .execute(&mut raw)
    .await
    .unwrap_err();
    assert!(joined.to_string().contains("row-level security"), "{joined}");
    let _ = raw.close().await;

    // The report: every table on and forced, binding the server's role; a second enable
    // changes nothing.
    let status = report(&app, &alpha.root, None).await;
    assert_eq!(status["backend"], "postgres");
    assert_eq!(status["enforced"], true, "{status}");
    assert_eq!(status["appliesToServerRole"], true, "{status}");
    assert_eq!(status["warnings"], json!([]));
    let names: Vec<String> = statuses(&status).into_iter().map(|(table, _)| table).collect();
    assert_eq!(names, TABLES);
    assert!(all(&status, "ok"), "{status}");
    for table in status["tables"].as_array().unwrap() {
        assert_eq!(table["rlsEnabled"], true, "{table}");
        assert_eq!(table["forced"], true, "{table}");
        assert_eq!(table["policies"], json!(["steward_tenant_v3"]), "{table}");
    }
    let again = report(&app, &alpha.root, Some(true)).await;
    assert!(all(&again, "unchanged"), "{again}");
    // A policy Steward did not make widens its own: reported, and no longer enforced.
    let mut admin = sqlx::PgConnection::connect(&app.database.url).await.unwrap();
    admin
        .execute("CREATE POLICY widen ON devices USING (true)")
        .await
        .unwrap();
    let widened = report(&app, &alpha.root, None).await;
    assert_eq!(widened["enforced"], false, "{widened}");
    let devices = widened["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "devices")
        .unwrap();
    assert_eq!(devices["status"], "warning", "{devices}");
    assert!(
        devices["message"].as_str().unwrap().contains("widen"),
        "{devices}"
    );
    admin.execute("DROP POLICY widen ON devices").await.unwrap();
    let _ = admin.close().await;
    assert_eq!(report(&app, &alpha.root, None).await["enforced"], true);
    // Enforcement asked of a server whose role bypasses the policies (a superuser): no start.
    let mut config = steward_tests::test_config(&app.database, app.data_dir.path());
    config.database_url = Some(app.database.url.clone());
    config.database_migration_url = Some(app.database.url.clone());
    config.rls_enforce = Some(true);
    let bypassing = match steward::app::Application::build(config).await {
        Ok(_) => panic!("started as a role the policies do not bind"),
        Err(error) => error.to_string(),
    };
    assert!(bypassing.contains("BYPASSRLS"), "{bypassing}");
    // Only operators: an organization's owner is refused.
    expect_error(
        send(
            &app,
            Method::GET,
            "/api/admin/v1/database/rls",
            &alpha.owner,
            None,
        )
        .await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;

    // The application role may not change the tables: each line a warning, nothing changed.
    let as_app = Database::connect(&DatabaseOptions::new(app_url.clone()))
        .await
        .unwrap();
    let refused = as_app.row_level_security(Some(false), None).await.unwrap();
    assert!(
        refused
            .tables
            .iter()
            .all(|table| table.status == RlsStatus::Warning
                && table.rls_enabled
                && table
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("must be owner"))),
        "{refused:?}"
    );
    assert!(report(&app, &alpha.root, None).await["enforced"] == true);
    let _ = as_app.close().await;

    // Off and on again through the API, audited.
    let off = report(&app, &alpha.root, Some(false)).await;
    assert!(all(&off, "changed"), "{off}");
    assert_eq!(off["enforced"], false);
    assert!(visible_devices(&app_url, &as_alpha).await.contains(&beta_device));
    let status = report(&app, &alpha.root, None).await;
    assert_eq!(status["enforced"], false);
    assert!(all(&status, "warning"), "{status}");
    // A start that must enforce it but may not change the tables stops, naming the setting.
    let mut config = steward_tests::test_config(&app.database, app.data_dir.path());
    config.database_url = Some(app_url.clone());
    config.database_migration_url = Some(app_url.clone());
    config.migrate_on_start = false;
    config.rls_enforce = Some(true);
    let refused = match steward::app::Application::build(config).await {
        Ok(_) => panic!("started without row-level security"),
        Err(error) => error.to_string(),
    };
    assert!(
        refused.contains("STEWARD_RLS_ENFORCE") && refused.contains("must be owner"),
        "{refused}"
    );
    let on = report(&app, &alpha.root, Some(true)).await;
    assert!(all(&on, "changed"), "{on}");
    assert!(!visible_devices(&app_url, &as_alpha).await.contains(&beta_device));
    let actions = app.audit_actions().await;
    assert!(
        actions.iter().any(|a| a == "database.rls_disabled"),
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "database.rls_enabled"), "{actions:?}");

    // Clean up the roles (they own the database's objects).
    let name = app.database.name.clone();
    let admin = app.database.url.clone();
    app.stop().await;
    let mut connection = sqlx::PgConnection::connect(&admin.replace(&format!("/{name}"), "/postgres"))
        .await
        .unwrap();
    for statement in [
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        format!("DROP ROLE IF EXISTS {app_role}"),
        format!("DROP ROLE IF EXISTS {owner_role}"),
    ] {
        connection.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    }
    let _ = connection.close().await;
}

#[tokio::test]
async fn sqlite_reports_row_level_security_unsupported_and_refuses_bad_requests() {
    let app = spawn_app(Backend::Sqlite).await;
    let root = app.user("root@example.com").await;
    app.grant(root.id, "super_admin").await;
    let status = report(&app, &root, None).await;
    assert_eq!(status["backend"], "sqlite");
    assert_eq!(status["enforced"], false);
    assert_eq!(status["appliesToServerRole"], Value::Null);
    assert!(all(&status, "unsupported"), "{status}");
    let names: Vec<String> = statuses(&status).into_iter().map(|(table, _)| table).collect();
    assert_eq!(names, TABLES);
    assert!(
        status["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no row-level security")
    );
    let enable = report(&app, &root, Some(true)).await;
    assert_eq!(enable["action"], "enable");
    assert!(all(&enable, "unsupported"), "{enable}");
    for body in [
        json!({}),
        json!({"enable": "yes"}),
        json!({"enable": true, "force": true}),
    ] {
        expect_error(
            send(
                &app,
                Method::POST,
                "/api/admin/v1/database/rls",
                &root,
                Some(body),
            )
            .await,
            StatusCode::BAD_REQUEST,
            "VALIDATION_ERROR",
        )
        .await;
    }
    let auditor = app.user("auditor@example.com").await;
    app.grant(auditor.id, "auditor").await;
    // An auditor reads the report but may not change anything; a user without a role neither.
    assert_eq!(report(&app, &auditor, None).await["backend"], "sqlite");
    expect_error(
        send(
            &app,
            Method::POST,
            "/api/admin/v1/database/rls",
            &auditor,
            Some(json!({"enable": false})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
    )
    .await;
    let nobody = app.user("nobody@example.com").await;
    for method in [Method::GET, Method::POST] {
        let body = (method == Method::POST).then(|| json!({"enable": false}));
        expect_error(
            send(&app, method, "/api/admin/v1/database/rls", &nobody, body).await,
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
        )
        .await;
    }
    let anonymous = app.get("/api/admin/v1/database/rls").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let features = expect_data(
        send(&app, Method::GET, "/api/admin/v1/features", &root, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(features["enforce"], false);
    assert_eq!(features["rlsEnforce"], false);
}
