//! A store method records its audit entry inside the change's own transaction: both commit or
//! neither does.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use steward_domain::organizations::{OrganizationRecord, OrganizationStore};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use steward_persistence::Database;
use steward_persistence::entities::{audit_logs, organizations};
use steward_tests::{TestDatabase, each_backend};
use uuid::Uuid;

fn organization(slug: &str) -> OrganizationRecord {
    let now = chrono::Utc::now();
    OrganizationRecord {
        id: Uuid::now_v7(),
        name: "Acme".into(),
        slug: slug.into(),
        description: None,
        status: "active".into(),
        is_default: false,
        settings: None,
        version: 1,
        created_at: now,
        updated_at: now,
        quota: steward_domain::quotas::OrgQuota {
            plan: steward_domain::quotas::DEFAULT_PLAN.to_owned(),
            overrides: Default::default(),
        },
    }
}

fn entry(organization: Uuid, admin: Uuid) -> AuditEntry {
    AuditEntry::new(
        Actor::admin(admin),
        AuditAction::parse("organization.created").unwrap(),
        "organization",
    )
    .resource_id(organization)
    .organization(organization)
    .change(None, Some(json!({"name": "Acme"})))
    .origin(RequestOrigin {
        ip_address: Some("198.51.100.7".into()),
        user_agent: Some("tests".into()),
        request_id: Some("req-1".into()),
        ..RequestOrigin::default()
    })
}

/// Creates an organization through the store, which writes the row and its audit entry in one
/// transaction (the audit entry last).
async fn create_organization_with_audit(db: &Database) -> (Uuid, Uuid, AuditEntry) {
    let record = organization("acme");
    let admin = Uuid::now_v7();
    let entry = entry(record.id, admin);
    db.create_organization(&record, None, &entry).await.unwrap();
    (record.id, admin, entry)
}

#[tokio::test]
async fn a_failed_audit_entry_rolls_the_change_back() {
    each_backend(|backend| async move {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;
        db.migrate_up().await.unwrap();

        let (_, _, first) = create_organization_with_audit(&db).await;
        // The second organization's audit entry cannot be written (its id is taken): the
        // organization row written before it in the same transaction must roll back too.
        let second = organization("globex");
        let refused = db.create_organization(&second, None, &first).await;
        assert!(refused.is_err(), "{backend:?}");
        assert!(
            db.find_organization(second.id).await.unwrap().is_none(),
            "{backend:?}: the organization outlived its failed audit entry"
        );
        assert_eq!(
            organizations::Entity::find()
                .filter(organizations::Column::IsDefault.eq(false))
                .count(db.connection())
                .await
                .unwrap(),
            1,
            "{backend:?}"
        );
        assert_eq!(
            audit_logs::Entity::find().count(db.connection()).await.unwrap(),
            1,
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

        let (organization, admin, _) = create_organization_with_audit(&db).await;
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
