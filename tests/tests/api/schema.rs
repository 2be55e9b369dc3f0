//! The migrations create the whole schema of seed 000 with its keys and constraints, and roll
//! back completely, on both databases.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use steward_migration::{SEED_TABLES, TABLES};
use steward_tests::{TestDatabase, each_backend};
use uuid::Uuid;

#[tokio::test]
async fn up_down_up_creates_and_removes_every_table() {
    each_backend(|backend| async move {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;

        db.migrate_up().await.unwrap();
        for table in TABLES {
            assert!(
                db.has_table(table).await.unwrap(),
                "{backend:?}: {table} exists after up"
            );
        }
        assert_eq!(
            SEED_TABLES.len(),
            17,
            "seed 000's fifteen new tables plus devices and api_keys"
        );
        assert!(SEED_TABLES.iter().all(|table| TABLES.contains(table)));

        db.migrate_down(None).await.unwrap();
        for table in TABLES {
            assert!(
                !db.has_table(table).await.unwrap(),
                "{backend:?}: {table} is gone after down"
            );
        }
        assert_eq!(db.migration_state().await.unwrap().applied.len(), 0);

        db.migrate_up().await.unwrap();
        for table in TABLES {
            assert!(
                db.has_table(table).await.unwrap(),
                "{backend:?}: {table} exists after up again"
            );
        }
        assert!(db.migration_state().await.unwrap().pending.is_empty());
    })
    .await;
}

#[tokio::test]
async fn one_step_down_removes_only_the_last_migration() {
    each_backend(|backend| async move {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;
        db.migrate_up().await.unwrap();
        let bedtime_kind = || async {
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            use steward_persistence::entities::setting_definitions;
            setting_definitions::Entity::find()
                .filter(setting_definitions::Column::Key.eq("screen_time.bedtime_start"))
                .one(db.connection())
                .await
                .unwrap()
                .unwrap()
                .value_type
        };
        assert_eq!(bedtime_kind().await, "time");
        db.migrate_down(Some(1)).await.unwrap();
        // The last migration only adds rows (the default organization's members; down removes them).
        assert!(db.has_table("org_users").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds an index row-level security's policy uses.
        assert!(db.has_table("device_commands").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the fleet's search (a table and triggers on SQLite, an index
        // on PostgreSQL).
        assert!(db.has_table("devices").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before only adds the lists' indexes.
        assert!(db.has_table("devices").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before only stores PostgreSQL's search words in a column.
        assert!(db.has_table("device_events").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before only makes non-compliance a warning (the server events' trigger).
        assert!(db.has_table("device_events").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds device events (and the trigger writing server events).
        for table in ["device_events", "device_event_batches"] {
            assert!(!db.has_table(table).await.unwrap(), "{table}");
        }
        assert!(db.has_table("audit_daily_counts").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the audit entries' daily counts.
        assert!(!db.has_table("audit_daily_counts").await.unwrap());
        assert!(db.has_table("report_runs").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds scheduled reports (three tables) and mail attachments.
        for table in ["report_schedules", "report_recipients", "report_runs"] {
            assert!(!db.has_table(table).await.unwrap(), "{table}");
        }
        assert!(db.has_table("outbox_emails").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the audit entries' session (a column only).
        assert!(db.has_table("audit_logs").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the dashboard's indexes (indexes only).
        assert!(db.has_table("audit_logs").await.unwrap());
        assert!(db.has_table("device_commands").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the HTML part and language of outgoing mail (columns only).
        assert!(db.has_table("quota_spends").await.unwrap());
        assert!(db.has_table("outbox_emails").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the uses of daily quotas.
        assert!(!db.has_table("quota_spends").await.unwrap());
        assert!(db.has_table("user_quotas").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds accounts' quotas.
        assert!(!db.has_table("user_quotas").await.unwrap());
        assert!(db.has_table("event_outbox").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before only makes the database queue every audit entry (a trigger).
        assert!(db.has_table("event_outbox").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the event outbox, webhooks and notifications.
        for table in [
            "event_outbox",
            "webhooks",
            "webhook_deliveries",
            "notifications",
            "notification_preferences",
        ] {
            assert!(!db.has_table(table).await.unwrap(), "{table}");
        }
        assert!(db.has_table("jobs").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before gives organizations plans and quota overrides.
        assert!(db.has_table("jobs").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds background jobs.
        assert!(!db.has_table("jobs").await.unwrap());
        assert!(!db.has_table("job_blobs").await.unwrap());
        if backend == steward_tests::Backend::Sqlite {
            assert!(db.has_table("users_search_keys").await.unwrap());
        }
        db.migrate_down(Some(1)).await.unwrap();
        // The one before keys SQLite's search rows.
        assert!(!db.has_table("users_search_keys").await.unwrap());
        assert!(db.has_table("ip_allowlist").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the IP allowlist.
        assert!(!db.has_table("ip_allowlist").await.unwrap());
        assert!(!db.has_table("allowlist_bypass_tokens").await.unwrap());
        assert!(db.has_table("user_mfa").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the second factor's tables.
        for table in [
            "user_mfa",
            "mfa_recovery_codes",
            "mfa_challenges",
            "mfa_exemptions",
            "instance_flags",
        ] {
            assert!(!db.has_table(table).await.unwrap(), "{table}");
        }
        if backend == steward_tests::Backend::Sqlite {
            assert!(db.has_table("users_search").await.unwrap());
        }
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds the user search index.
        if backend == steward_tests::Backend::Sqlite {
            assert!(!db.has_table("users_search").await.unwrap());
        }
        assert!(db.has_table("custom_roles").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds custom roles and API key usage.
        assert!(!db.has_table("custom_roles").await.unwrap());
        assert!(!db.has_table("api_key_usage").await.unwrap());
        assert!(db.has_table("api_keys").await.unwrap());
        assert_eq!(bedtime_kind().await, "time");
        db.migrate_down(Some(1)).await.unwrap();
        // The one before makes the seeded bedtime keys `time`.
        assert_eq!(bedtime_kind().await, "string");
        assert!(db.has_table("device_commands").await.unwrap());
        db.migrate_down(Some(1)).await.unwrap();
        // The one before adds fleet columns and the device commands table.
        assert!(!db.has_table("device_commands").await.unwrap());
        assert!(db.has_table("audit_chain").await.unwrap());
        assert!(db.has_table("organizations").await.unwrap());
        assert!(db.has_table("device_transfers").await.unwrap());
        assert!(db.has_table("oidc_nonces").await.unwrap());
        assert!(db.has_table("groups").await.unwrap());
        assert_eq!(db.migration_state().await.unwrap().pending.len(), 25);
        // And up again: the API keys regain the rotation columns.
        db.migrate_up().await.unwrap();
        assert!(db.has_table("api_key_usage").await.unwrap());
    })
    .await;
}

async fn insert(
    connection: &DatabaseConnection,
    table: &str,
    values: Vec<(&str, sea_orm::Value)>,
) -> Result<(), String> {
    let mut statement = Query::insert();
    statement
        .into_table(Alias::new(table))
        .columns(values.iter().map(|(column, _)| Alias::new(*column)));
    statement
        .values(values.into_iter().map(|(_, value)| Expr::val(value)))
        .map_err(|e| e.to_string())?;
    connection
        .execute(&statement)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn now() -> sea_orm::Value {
    chrono::Utc::now().into()
}

async fn insert_user(connection: &DatabaseConnection, email: &str) -> Result<Uuid, String> {
    let id = Uuid::now_v7();
    insert(
        connection,
        "users",
        vec![
            ("id", id.into()),
            ("email", email.into()),
            ("display_name", "Test".into()),
            ("created_at", now()),
            ("updated_at", now()),
        ],
    )
    .await?;
    Ok(id)
}

#[tokio::test]
async fn keys_and_constraints_hold_on_both_databases() {
    each_backend(|backend| async move {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;
        db.migrate_up().await.unwrap();
        let connection = db.connection();

        let user = insert_user(connection, "a@example.com").await.unwrap();
        assert!(
            insert_user(connection, "a@example.com").await.is_err(),
            "{backend:?}: emails are unique"
        );

        let orphan_session = insert(
            connection,
            "user_sessions",
            vec![
                ("id", Uuid::now_v7().into()),
                ("user_id", Uuid::now_v7().into()),
                ("family_id", Uuid::now_v7().into()),
                ("refresh_token_hash", "h1".into()),
                ("expires_at", now()),
                ("created_at", now()),
            ],
        )
        .await;
        assert!(
            orphan_session.is_err(),
            "{backend:?}: a session needs an existing user"
        );

        let device = Uuid::now_v7();
        insert(
            connection,
            "devices",
            vec![
                ("id", device.into()),
                ("device_identifier", "phone-1".into()),
                ("display_name", "Phone".into()),
                ("owner_user_id", user.into()),
                ("created_at", now()),
                ("updated_at", now()),
            ],
        )
        .await
        .unwrap();

        let unlock_request = |status: &'static str| {
            vec![
                ("id", Uuid::now_v7().into()),
                ("device_id", device.into()),
                ("setting_key", "location.sharing_enabled".into()),
                ("requested_by", user.into()),
                ("status", status.into()),
                ("created_at", now()),
                ("updated_at", now()),
            ]
        };
        insert(connection, "unlock_requests", unlock_request("denied"))
            .await
            .unwrap();
        insert(connection, "unlock_requests", unlock_request("pending"))
            .await
            .unwrap();
        assert!(
            insert(connection, "unlock_requests", unlock_request("pending"))
                .await
                .is_err(),
            "{backend:?}: one pending unlock request per device and key"
        );
        insert(connection, "unlock_requests", unlock_request("approved"))
            .await
            .unwrap();

        // Deleting the owner keeps the device (ownership is cleared) and cascades the requests.
        connection
            .execute(
                Query::delete()
                    .from_table(Alias::new("users"))
                    .and_where(Expr::col(Alias::new("id")).eq(user)),
            )
            .await
            .unwrap();
        let remaining = connection
            .query_one(
                Query::select()
                    .expr(Expr::col(Alias::new("owner_user_id")))
                    .from(Alias::new("devices"))
                    .and_where(Expr::col(Alias::new("id")).eq(device)),
            )
            .await
            .unwrap()
            .expect("the device survives its owner");
        assert_eq!(remaining.try_get_by_index::<Option<Uuid>>(0).unwrap(), None);
        let requests = connection
            .query_one(
                Query::select()
                    .expr(Expr::cust("COUNT(*)"))
                    .from(Alias::new("unlock_requests")),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(requests.try_get_by_index::<i64>(0).unwrap(), 0);
    })
    .await;
}
