//! The clean-up pass deletes rows that served their purpose and keeps live ones; a dry run
//! deletes nothing; audit entries are never touched; one instance at a time claims a pass.

use chrono::{Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use steward_domain::maintenance::MaintenanceStore;
use steward_persistence::entities::{email_tokens, login_throttles, outbox_emails, user_sessions};
use steward_tests::{TestApp, each_backend, run_maintenance, spawn_app};

async fn counts(app: &TestApp) -> Vec<i64> {
    let mut counts = Vec::new();
    for table in [
        "user_sessions",
        "refresh_tokens",
        "email_tokens",
        "outbox_emails",
        "login_throttles",
        "audit_logs",
    ] {
        counts.push(app.count_rows(table).await);
    }
    counts
}

#[tokio::test]
async fn a_clean_up_pass_deletes_what_ended_keeps_what_lives_and_never_touches_the_audit() {
    each_backend(|backend| async move {
        let app = spawn_app(backend).await;
        let connection = app.db.connection();
        let ann = app.user("ann@example.com").await;
        let _bob = app.user("bob@example.com").await;
        // Four more sessions of ann's: one expired long ago, one revoked long ago, one revoked
        // yesterday (kept a week), one live.
        for _ in 0..4 {
            assert!(
                app.login("ann@example.com", steward_tests::PASSWORD)
                    .await
                    .status()
                    .is_success()
            );
        }
        let sessions: Vec<user_sessions::Model> = user_sessions::Entity::find()
            .filter(user_sessions::Column::UserId.eq(ann.id))
            .order_by_asc(user_sessions::Column::CreatedAt)
            .all(connection)
            .await
            .unwrap();
        assert_eq!(sessions.len(), 5);
        let long_ago = Utc::now() - Duration::days(8);
        let set = |id, column: user_sessions::Column, at: chrono::DateTime<Utc>| async move {
            user_sessions::Entity::update_many()
                .col_expr(column, Expr::value(Some(at)))
                .filter(user_sessions::Column::Id.eq(id))
                .exec(connection)
                .await
                .unwrap();
        };
        set(sessions[1].id, user_sessions::Column::ExpiresAt, long_ago).await;
        set(sessions[2].id, user_sessions::Column::RevokedAt, long_ago).await;
        set(
            sessions[3].id,
            user_sessions::Column::RevokedAt,
            Utc::now() - Duration::days(1),
        )
        .await;
        // One verification token expired two days ago; bob's is live.
        email_tokens::Entity::update_many()
            .col_expr(
                email_tokens::Column::ExpiresAt,
                Expr::value(Utc::now() - Duration::days(2)),
            )
            .filter(email_tokens::Column::UserId.eq(ann.id))
            .exec(connection)
            .await
            .unwrap();
        // Failed sign-ins: one counter from two days ago, one from now.
        for email in ["old@example.com", "new@example.com"] {
            let _ = app.login(email, "wrong password here").await;
        }
        login_throttles::Entity::update_many()
            .col_expr(
                login_throttles::Column::WindowStartedAt,
                Expr::value(Utc::now() - Duration::days(2)),
            )
            .filter(login_throttles::Column::Email.eq("old@example.com"))
            .exec(connection)
            .await
            .unwrap();
        // Every mail sent, one of them 31 days ago.
        let mut mails = 0;
        for _ in 0..200 {
            mails = app.count_rows("outbox_emails").await;
            let sent = outbox_emails::Entity::find()
                .filter(outbox_emails::Column::Status.eq("sent"))
                .all(connection)
                .await
                .unwrap()
                .len() as i64;
            if mails > 0 && sent == mails {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(mails >= 2, "{backend:?}");
        let oldest = outbox_emails::Entity::find()
            .order_by_asc(outbox_emails::Column::CreatedAt)
            .one(connection)
            .await
            .unwrap()
            .unwrap();
        outbox_emails::Entity::update_many()
            .col_expr(
                outbox_emails::Column::SentAt,
                Expr::value(Some(Utc::now() - Duration::days(31))),
            )
            .filter(outbox_emails::Column::Id.eq(oldest.id))
            .exec(connection)
            .await
            .unwrap();

        let before = counts(&app).await;
        run_maintenance(&app, true).await;
        assert_eq!(
            counts(&app).await,
            before,
            "a dry run deletes nothing {backend:?}"
        );

        run_maintenance(&app, false).await;
        let after = counts(&app).await;
        assert_eq!(after[0], before[0] - 2, "two sessions ended long ago {backend:?}");
        assert_eq!(
            after[1],
            before[1] - 2,
            "their refresh tokens went with them {backend:?}"
        );
        assert_eq!(after[2], before[2] - 1, "one spent mail token {backend:?}");
        assert_eq!(after[3], before[3] - 1, "one mail sent a month ago {backend:?}");
        assert_eq!(after[4], before[4] - 1, "one old sign-in counter {backend:?}");
        assert_eq!(after[5], before[5], "the audit log is never cleaned {backend:?}");
        // What lives still works: ann's live session, bob's verification.
        let me = app
            .authed(reqwest::Method::GET, "/api/v1/auth/me", &ann.token)
            .send()
            .await
            .unwrap();
        assert!(me.status().is_success());

        // A second pass finds nothing more.
        run_maintenance(&app, false).await;
        assert_eq!(counts(&app).await, after);

        // One instance claims each pass.
        let now = Utc::now() + Duration::hours(3);
        let every = Duration::hours(1);
        assert!(
            app.db.claim_maintenance_pass(now, every).await.unwrap(),
            "{backend:?}"
        );
        assert!(!app.db.claim_maintenance_pass(now, every).await.unwrap());
        assert!(
            !app.db
                .claim_maintenance_pass(now + Duration::minutes(30), every)
                .await
                .unwrap()
        );
        assert!(
            app.db
                .claim_maintenance_pass(now + Duration::hours(2), every)
                .await
                .unwrap()
        );
        app.stop().await;
    })
    .await;
}

#[tokio::test]
async fn finished_deliveries_old_notifications_and_stale_counters_are_cleaned() {
    use steward_persistence::entities::{notification_counters, notifications, webhook_deliveries};
    each_backend(|backend| async move {
        let receiver = steward_tests::receiver::Receiver::start().await;
        let app = spawn_app(backend).await;
        let connection = app.db.connection();
        let root = app.user("root@example.com").await;
        app.grant(root.id, "super_admin").await;
        let created = steward_tests::send(
            &app,
            reqwest::Method::POST,
            "/api/admin/v1/webhooks",
            &root,
            Some(serde_json::json!({"url": receiver.base_url.clone(), "events": ["group.created"]})),
        )
        .await;
        assert_eq!(created.status(), reqwest::StatusCode::CREATED);
        app.group(&root, "One").await;
        app.group(&root, "Two").await;
        receiver.wait_for("group.created", 2, 10).await;
        for _ in 0..5 {
            let _ = app.login("victim@example.com", "wrong password here").await;
        }
        // Wait for the deliveries to be recorded and the notifications to be raised and mailed.
        for _ in 0..200 {
            let done = webhook_deliveries::Entity::find()
                .filter(webhook_deliveries::Column::Status.eq("succeeded"))
                .all(connection)
                .await
                .unwrap()
                .len()
                == 2;
            let mailed = notifications::Entity::find()
                .filter(notifications::Column::Mailed.eq(true))
                .all(connection)
                .await
                .unwrap()
                .len();
            if done && mailed >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let long_ago = Utc::now() - Duration::days(91);
        let delivery = webhook_deliveries::Entity::find()
            .one(connection)
            .await
            .unwrap()
            .unwrap();
        webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::FinishedAt,
                Expr::value(Some(long_ago)),
            )
            .filter(webhook_deliveries::Column::Id.eq(delivery.id))
            .exec(connection)
            .await
            .unwrap();
        let notification = notifications::Entity::find()
            .filter(notifications::Column::Mailed.eq(true))
            .one(connection)
            .await
            .unwrap()
            .unwrap();
        notifications::Entity::update_many()
            .col_expr(notifications::Column::CreatedAt, Expr::value(long_ago))
            .filter(notifications::Column::Id.eq(notification.id))
            .exec(connection)
            .await
            .unwrap();
        // Every counter is old now; the admin's known addresses must stay.
        notification_counters::Entity::update_many()
            .col_expr(notification_counters::Column::Since, Expr::value(long_ago))
            .exec(connection)
            .await
            .unwrap();
        notification_counters::Entity::delete_many()
            .filter(notification_counters::Column::Rule.eq("admin_new_ip"))
            .exec(connection)
            .await
            .unwrap();
        notification_counters::Entity::insert(notification_counters::ActiveModel {
            id: sea_orm::ActiveValue::Set(uuid::Uuid::now_v7()),
            rule: sea_orm::ActiveValue::Set("admin_new_ip".to_owned()),
            subject: sea_orm::ActiveValue::Set(root.id.to_string()),
            count: sea_orm::ActiveValue::Set(0),
            since: sea_orm::ActiveValue::Set(long_ago),
            data: sea_orm::ActiveValue::Set(Some(serde_json::json!(["198.51.100.1"]))),
        })
        .exec_without_returning(connection)
        .await
        .unwrap();
        let table_counts = || async {
            (
                app.count_rows("webhook_deliveries").await,
                app.count_rows("notifications").await,
                app.count_rows("notification_counters").await,
            )
        };
        let before = table_counts().await;
        assert!(before.2 >= 3, "{before:?} {backend:?}");
        run_maintenance(&app, false).await;
        let after = table_counts().await;
        assert_eq!(
            after.0,
            before.0 - 1,
            "one delivery finished long ago {backend:?}"
        );
        assert_eq!(
            after.1,
            before.1 - 1,
            "one notification raised long ago {backend:?}"
        );
        assert_eq!(after.2, 1, "only the admin's known addresses remain {backend:?}");
        app.stop().await;
    })
    .await;
}
