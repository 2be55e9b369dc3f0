//! The default organization's repair (seed 002's default tenant with backfill): the default
//! organization exists, every account that belongs to no organization is one of its users, and
//! every managed device without an organization is attached to it. Run once by migration
//! `m20261203_000036_default_org_members` and again by `steward db repair-default-org`; a
//! second run touches nothing.

use sea_orm::{ConnectionTrait, DbErr};
use sea_orm_migration::prelude::*;

use crate::m20260701_000011_organizations::DEFAULT_ORGANIZATION_ID;

/// What one repair changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefaultOrgRepair {
    /// 1 when the default organization had to be created again.
    pub organization_created: u64,
    /// Accounts (not deleted) that belonged to no organization and now are its users.
    pub users_added: u64,
    /// Managed devices without an organization, now the default organization's.
    pub devices_attached: u64,
}

impl DefaultOrgRepair {
    pub fn touched(&self) -> bool {
        self.organization_created + self.users_added + self.devices_attached > 0
    }
}

/// The default organization's id.
pub fn default_organization() -> Result<uuid::Uuid, DbErr> {
    DEFAULT_ORGANIZATION_ID
        .parse()
        .map_err(|_| DbErr::Custom("bad default organization id".to_owned()))
}

/// How many accounts are added per statement.
const BATCH: u64 = 1_000;

/// Repairs the default organization through `db` (a transaction, for the repair to be whole),
/// adding accounts with organization role `role`.
pub async fn repair<C: ConnectionTrait>(db: &C, role: &str) -> Result<DefaultOrgRepair, DbErr> {
    let backend = db.get_database_backend();
    let organization = default_organization()?;
    let now = chrono::Utc::now();
    let mut repair = DefaultOrgRepair::default();

    let find = backend.build(
        &Query::select()
            .expr(Expr::col("id"))
            .from("organizations")
            .and_where(Expr::col("id").eq(organization))
            .to_owned(),
    );
    let exists = db.query_one_raw(find).await?.is_some();
    if !exists {
        let insert = Query::insert()
            .into_table("organizations")
            .columns([
                "id",
                "name",
                "slug",
                "status",
                "description",
                "is_default",
                "version",
                "created_at",
                "updated_at",
            ])
            .values_panic([
                organization.into(),
                "Default".into(),
                "default".into(),
                "active".into(),
                "Users and devices that belong to no other organization.".into(),
                true.into(),
                1.into(),
                now.into(),
                now.into(),
            ])
            .to_owned();
        db.execute(&insert).await?;
        repair.organization_created = 1;
    }

    loop {
        let orphans = backend.build(
            &Query::select()
                .expr(Expr::col(("users", "id")))
                .from("users")
                .and_where(Expr::col(("users", "deleted_at")).is_null())
                .and_where(
                    Expr::exists(
                        Query::select()
                            .expr(Expr::val(1))
                            .from("org_users")
                            .and_where(Expr::col(("org_users", "user_id")).equals(("users", "id")))
                            .to_owned(),
                    )
                    .not(),
                )
                .limit(BATCH)
                .to_owned(),
        );
        let rows = db.query_all_raw(orphans).await?;
        if rows.is_empty() {
            break;
        }
        let mut insert = Query::insert()
            .into_table("org_users")
            .columns([
                "id",
                "organization_id",
                "user_id",
                "role",
                "created_at",
                "updated_at",
            ])
            .to_owned();
        for row in &rows {
            let user: uuid::Uuid = row.try_get("", "id")?;
            insert.values_panic([
                uuid::Uuid::now_v7().into(),
                organization.into(),
                user.into(),
                role.into(),
                now.into(),
                now.into(),
            ]);
        }
        db.execute(&insert).await?;
        repair.users_added += rows.len() as u64;
    }

    let attach = Query::update()
        .table("devices")
        .value("organization_id", organization)
        .value("settings_version", Expr::col("settings_version").add(1))
        .value("updated_at", now)
        .and_where(Expr::col("is_managed").eq(true))
        .and_where(Expr::col("organization_id").is_null())
        .to_owned();
    repair.devices_attached = db.execute(&attach).await?.rows_affected();
    Ok(repair)
}
