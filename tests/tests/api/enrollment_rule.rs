//! "Is this enrollment token usable" is decided twice: by the SQL filter of the store's
//! conditional UPDATE (which takes a use), and by the domain's `EnrollmentToken::refusal`
//! (which names why not). At every boundary — expiring exactly now, one use left, none left,
//! revoked — they must agree, on both databases.

use chrono::{Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use steward_domain::devices::DeviceRegistration;
use steward_domain::fleet::{
    Enrollment, EnrollmentRefusal, EnrollmentStore, EnrollmentToken, Hardware, NewDeviceToken,
};
use steward_domain::organizations::{OrganizationRecord, OrganizationStore};
use steward_domain::{Actor, AuditAction, AuditEntry};
use steward_persistence::Database;
use steward_persistence::entities::enrollment_tokens;
use steward_tests::{TestDatabase, each_backend};
use uuid::Uuid;

fn audit(action: &str) -> AuditEntry {
    AuditEntry::new(
        Actor::system(),
        AuditAction::parse(action).unwrap(),
        "enrollment_token",
    )
}

async fn organization(db: &Database) -> Uuid {
    let now = Utc::now();
    let record = OrganizationRecord {
        id: Uuid::now_v7(),
        name: "Acme".into(),
        slug: "acme".into(),
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
    };
    db.create_organization(&record, None, &audit("organization.created"))
        .await
        .unwrap();
    record.id
}

/// A token as a case describes it: stored, then its use count and revocation set in place.
async fn token(
    db: &Database,
    organization: Uuid,
    case: &str,
    max_uses: Option<i32>,
    use_count: i32,
    expires_at: Option<chrono::DateTime<Utc>>,
    revoked: bool,
) -> String {
    let id = Uuid::now_v7();
    let hash = format!("hash-{case}-{id}");
    let record = EnrollmentToken {
        id,
        organization_id: organization,
        name: Some(case.to_owned()),
        prefix: "stw_enr_test".into(),
        policy_id: None,
        group_id: None,
        max_uses,
        use_count: 0,
        expires_at,
        revoked_at: None,
        created_by: None,
        created_at: Utc::now() - Duration::days(2),
        note: None,
        additional_data: None,
    };
    db.create_enrollment_token(&record, &hash, &audit("enrollment_token.created"))
        .await
        .unwrap();
    let mut update = enrollment_tokens::Entity::update_many()
        .col_expr(enrollment_tokens::Column::UseCount, Expr::value(use_count));
    if revoked {
        update = update.col_expr(
            enrollment_tokens::Column::RevokedAt,
            Expr::value(Some(Utc::now() - Duration::hours(1))),
        );
    }
    update
        .filter(enrollment_tokens::Column::Id.eq(id))
        .exec(db.connection())
        .await
        .unwrap();
    hash
}

#[tokio::test]
async fn the_sql_filter_and_the_domain_refusal_agree_at_every_boundary() {
    each_backend(|backend| async move {
        let database = TestDatabase::create(backend).await;
        let db = database.connect().await;
        db.migrate_up().await.unwrap();
        let organization = organization(&db).await;
        // Whole seconds: both databases store the instant exactly.
        let now = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
        let second = Duration::seconds(1);
        let cases = [
            ("no limits", None, 0, None, false, None),
            (
                "expires a second from now",
                None,
                0,
                Some(now + second),
                false,
                None,
            ),
            (
                "expires exactly now",
                None,
                0,
                Some(now),
                false,
                Some(EnrollmentRefusal::Expired),
            ),
            (
                "expired a second ago",
                None,
                0,
                Some(now - second),
                false,
                Some(EnrollmentRefusal::Expired),
            ),
            ("one use left", Some(3), 2, None, false, None),
            (
                "no use left",
                Some(3),
                3,
                None,
                false,
                Some(EnrollmentRefusal::UsedUp),
            ),
            (
                "over-used",
                Some(3),
                4,
                None,
                false,
                Some(EnrollmentRefusal::UsedUp),
            ),
            ("revoked", None, 0, None, true, Some(EnrollmentRefusal::Revoked)),
            (
                "revoked beats expired",
                None,
                0,
                Some(now - second),
                true,
                Some(EnrollmentRefusal::Revoked),
            ),
            (
                "expired beats used up",
                Some(1),
                1,
                Some(now),
                false,
                Some(EnrollmentRefusal::Expired),
            ),
        ];
        for (n, (case, max_uses, use_count, expires_at, revoked, expected)) in cases.into_iter().enumerate() {
            let hash = token(&db, organization, case, max_uses, use_count, expires_at, revoked).await;
            let stored = enrollment_tokens::Entity::find()
                .filter(enrollment_tokens::Column::TokenHash.eq(hash.clone()))
                .one(db.connection())
                .await
                .unwrap()
                .unwrap();
            let record = db
                .find_enrollment_token(organization, stored.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                record.refusal(now),
                expected,
                "{backend:?} {case}: the domain's rule"
            );
            let enrollment = Enrollment {
                device: DeviceRegistration::parse(
                    &format!("device-{n}"),
                    "Handheld",
                    Some("android"),
                    None,
                    None,
                    None,
                    None,
                )
                .unwrap(),
                hardware: Hardware::default(),
            };
            let device_token = NewDeviceToken {
                id: Uuid::now_v7(),
                hash: format!("device-token-{n}"),
                prefix: "stw_dev_test".into(),
                expires_at: now + Duration::days(90),
            };
            let outcome = db
                .enroll(&hash, &enrollment, &device_token, now, &audit("device.enrolled"))
                .await
                .unwrap();
            assert_eq!(
                outcome.err(),
                expected,
                "{backend:?} {case}: the store's filter must agree with the domain"
            );
        }
        let unknown = db
            .enroll(
                "no-such-hash",
                &Enrollment {
                    device: DeviceRegistration::parse("ghost", "Ghost", None, None, None, None, None)
                        .unwrap(),
                    hardware: Hardware::default(),
                },
                &NewDeviceToken {
                    id: Uuid::now_v7(),
                    hash: "ghost-token".into(),
                    prefix: "stw_dev_test".into(),
                    expires_at: now + Duration::days(90),
                },
                now,
                &audit("device.enrolled"),
            )
            .await
            .unwrap();
        assert_eq!(unknown.err(), Some(EnrollmentRefusal::Unknown), "{backend:?}");
    })
    .await;
}
