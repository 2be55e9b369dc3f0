//! The audit writer records inside the change's own transaction: both commit or neither does.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use steward_domain::{Actor, AuditAction, AuditEntry, AuditRecorder, RequestOrigin};
use steward_persistence::Database;
use steward_persistence::entities::{audit_logs, organizations};
use steward_tests::{TestDatabase, each_backend};
use uuid::Uuid;

async fn create_organization_with_audit(db: &Database, commit: bool) -> (Uuid, Uuid) {
    let unit = db.begin().await.unwrap();
    let id = Uuid::now_v7();
    let now = chrono::Utc::now();
    organizations::ActiveModel {
        id: Set(id),
        name: Set("Acme".into()),
        slug: Set(format!("acme-{}", id.simple())),
        status: Set("active".into()),
        contact_email: Set(None),
        max_devices: Set(None),
        max_users: Set(None),
        default_settings: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
        description: Set(None),
        is_default: Set(false),
    }
    .insert(unit.connection())
    .await
    .unwrap();
    let admin = Uuid::now_v7();
    let entry = AuditEntry::new(
        Actor::admin(admin),
        AuditAction::parse("organization.created").unwrap(),
        "organization",
    )
    .resource_id(id)
    .organization(id)
    .change(None, Some(json!({"name": "Acme"})))
    .origin(RequestOrigin {
        ip_address: Some("198.51.100.7".into()),
        user_agent: Some("tests".into()),
        request_id: Some("req-1".into()),
    });
    unit.record(&entry).await.unwrap();
    if commit {
        unit.commit().await.unwrap();
    } else {
        unit.rollback().await.unwrap();
    }
    (id, admin)
}

#[tokio::test]
async fn a_rolled_back_change_leaves_no_audit_entry() {
    each_backend(|backend| async move {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;
        db.migrate_up().await.unwrap();

        create_organization_with_audit(&db, false).await;
        assert_eq!(
            organizations::Entity::find()
                .filter(organizations::Column::IsDefault.eq(false))
                .count(db.connection())
                .await
                .unwrap(),
            0,
            "{backend:?}"
        );
        assert_eq!(
            audit_logs::Entity::find().count(db.connection()).await.unwrap(),
            0,
            "{backend:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_committed_change_has_its_complete_audit_entry() {
    each_backend(|backend| async move {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;
        db.migrate_up().await.unwrap();

        let (organization, admin) = create_organization_with_audit(&db, true).await;
        assert_eq!(
            organizations::Entity::find()
                .filter(organizations::Column::IsDefault.eq(false))
                .count(db.connection())
                .await
                .unwrap(),
            1
        );
        let entries = audit_logs::Entity::find().all(db.connection()).await.unwrap();
        assert_eq!(entries.len(), 1, "{backend:?}");
        let entry = &entries[0];
        assert_eq!(entry.action, "organization.created");
        assert_eq!(entry.actor_kind, "admin");
        assert_eq!(entry.actor_id, Some(admin));
        assert_eq!(entry.resource_type, "organization");
        assert_eq!(entry.resource_id, Some(organization.to_string()));
        assert_eq!(entry.organization_id, Some(organization));
        assert_eq!(entry.before, None);
        assert_eq!(entry.after, Some(json!({"name": "Acme"})));
        assert_eq!(entry.ip_address.as_deref(), Some("198.51.100.7"));
        assert_eq!(entry.user_agent.as_deref(), Some("tests"));
        assert_eq!(entry.request_id.as_deref(), Some("req-1"));
    })
    .await;
}
