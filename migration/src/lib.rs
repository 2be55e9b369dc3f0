//! Steward's schema, created in the order of the product's data model (seed 000): tenants and
//! accounts first, then groups, devices and their settings, enrollment, audit and access keys.
//! Every migration can be rolled back; later features add tables with new migrations.

pub use sea_orm_migration::prelude::*;

pub mod default_org;
mod m20260101_000001_accounts;
mod m20260101_000002_groups;
mod m20260101_000003_devices_and_settings;
mod m20260101_000004_enrollment;
mod m20260101_000005_audit_and_access;
mod m20260201_000006_authentication;
mod m20260301_000007_federation;
mod m20260401_000008_groups_and_devices;
mod m20260501_000009_settings;
mod m20260601_000010_audit_chain;
mod m20260701_000011_organizations;
mod m20260801_000012_fleet;
mod m20261101_000013_time_settings;
mod m20261201_000014_admin_api;
mod m20261201_000015_user_search;
mod m20261201_000016_mfa;
mod m20261201_000017_ip_allowlist;
mod m20261201_000018_user_search_keys;
mod m20261201_000019_jobs;
mod m20261201_000020_quotas;
mod m20261201_000021_events;
mod m20261201_000022_audit_outbox_trigger;
mod m20261201_000023_user_quotas;
mod m20261201_000024_quota_spends;
mod m20261201_000025_mail_parts;
mod m20261201_000026_dashboard_indexes;
mod m20261202_000027_audit_sessions;
mod m20261202_000028_report_schedules;
mod m20261202_000029_audit_daily_counts;
mod m20261203_000030_device_events;
mod m20261203_000031_compliance_events;
mod m20261203_000032_event_search_column;
mod m20261203_000033_list_indexes;
mod m20261203_000034_device_search;
mod m20261203_000035_tenant_indexes;
mod m20261203_000036_default_org_members;

pub use m20260701_000011_organizations::DEFAULT_ORGANIZATION_ID;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_accounts::Migration),
            Box::new(m20260101_000002_groups::Migration),
            Box::new(m20260101_000003_devices_and_settings::Migration),
            Box::new(m20260101_000004_enrollment::Migration),
            Box::new(m20260101_000005_audit_and_access::Migration),
            Box::new(m20260201_000006_authentication::Migration),
            Box::new(m20260301_000007_federation::Migration),
            Box::new(m20260401_000008_groups_and_devices::Migration),
            Box::new(m20260501_000009_settings::Migration),
            Box::new(m20260601_000010_audit_chain::Migration),
            Box::new(m20260701_000011_organizations::Migration),
            Box::new(m20260801_000012_fleet::Migration),
            Box::new(m20261101_000013_time_settings::Migration),
            Box::new(m20261201_000014_admin_api::Migration),
            Box::new(m20261201_000015_user_search::Migration),
            Box::new(m20261201_000016_mfa::Migration),
            Box::new(m20261201_000017_ip_allowlist::Migration),
            Box::new(m20261201_000018_user_search_keys::Migration),
            Box::new(m20261201_000019_jobs::Migration),
            Box::new(m20261201_000020_quotas::Migration),
            Box::new(m20261201_000021_events::Migration),
            Box::new(m20261201_000022_audit_outbox_trigger::Migration),
            Box::new(m20261201_000023_user_quotas::Migration),
            Box::new(m20261201_000024_quota_spends::Migration),
            Box::new(m20261201_000025_mail_parts::Migration),
            Box::new(m20261201_000026_dashboard_indexes::Migration),
            Box::new(m20261202_000027_audit_sessions::Migration),
            Box::new(m20261202_000028_report_schedules::Migration),
            Box::new(m20261202_000029_audit_daily_counts::Migration),
            Box::new(m20261203_000030_device_events::Migration),
            Box::new(m20261203_000031_compliance_events::Migration),
            Box::new(m20261203_000032_event_search_column::Migration),
            Box::new(m20261203_000033_list_indexes::Migration),
            Box::new(m20261203_000034_device_search::Migration),
            Box::new(m20261203_000035_tenant_indexes::Migration),
            Box::new(m20261203_000036_default_org_members::Migration),
        ]
    }
}

/// Every table the migrations create, in creation order. Tests check each exists after `up`
/// and is gone after `down`.
pub const TABLES: &[&str] = &[
    "organizations",
    "users",
    "oauth_accounts",
    "user_sessions",
    "groups",
    "group_memberships",
    "group_invites",
    "device_policies",
    "devices",
    "device_settings",
    "setting_definitions",
    "unlock_requests",
    "enrollment_tokens",
    "device_tokens",
    "audit_logs",
    "org_users",
    "api_keys",
    "refresh_tokens",
    "login_throttles",
    "email_tokens",
    "outbox_emails",
    "password_history",
    "user_system_roles",
    "oidc_nonces",
    "user_role_overrides",
    "device_transfers",
    "push_notifications",
    "audit_chain",
    "device_commands",
    "custom_roles",
    "api_key_usage",
    "user_mfa",
    "mfa_recovery_codes",
    "mfa_challenges",
    "mfa_exemptions",
    "instance_flags",
    "ip_allowlist",
    "allowlist_bypass_tokens",
    "jobs",
    "job_blobs",
    "event_outbox",
    "webhooks",
    "webhook_deliveries",
    "notifications",
    "notification_reads",
    "notification_counters",
    "notification_preferences",
    "user_quotas",
    "quota_spends",
    "quota_alerts",
    "report_schedules",
    "report_recipients",
    "report_runs",
    "audit_daily_counts",
    "device_events",
    "device_event_batches",
];

/// The tables of seed 000's data model, the first 17 of [`TABLES`].
pub const SEED_TABLES: &[&str] = TABLES.split_at(17).0;

/// Shorthands the migrations share so every table spells ids, timestamps and foreign keys the
/// same way on SQLite and PostgreSQL.
pub(crate) mod columns {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema;

    pub fn id() -> ColumnDef {
        schema::pk_uuid(Alias::new("id"))
    }

    pub fn created_at() -> ColumnDef {
        schema::timestamp_with_time_zone(Alias::new("created_at"))
    }

    pub fn updated_at() -> ColumnDef {
        schema::timestamp_with_time_zone(Alias::new("updated_at"))
    }

    /// Optimistic-concurrency counter of mutable resources.
    pub fn version() -> ColumnDef {
        schema::integer(Alias::new("version")).default(1).take()
    }

    pub fn foreign_key(
        table: &str,
        column: &str,
        target: &str,
        on_delete: ForeignKeyAction,
    ) -> ForeignKeyCreateStatement {
        ForeignKey::create()
            .name(format!("fk_{table}_{column}"))
            .from(Alias::new(table), Alias::new(column))
            .to(Alias::new(target), Alias::new("id"))
            .on_delete(on_delete)
            .on_update(ForeignKeyAction::Cascade)
            .take()
    }

    pub fn index(table: &str, columns: &[&str]) -> IndexCreateStatement {
        let mut index = Index::create();
        index
            .name(format!("idx_{table}_{}", columns.join("_")))
            .table(Alias::new(table));
        for column in columns {
            index.col(Alias::new(*column));
        }
        index
    }

    pub fn unique_index(table: &str, columns: &[&str]) -> IndexCreateStatement {
        let mut index = index(table, columns);
        index.name(format!("uq_{table}_{}", columns.join("_"))).unique();
        index
    }

    pub async fn drop_tables(manager: &SchemaManager<'_>, tables: &[&str]) -> Result<(), DbErr> {
        for table in tables.iter().rev() {
            manager
                .drop_table(Table::drop().table(Alias::new(*table)).to_owned())
                .await?;
        }
        Ok(())
    }

    pub async fn create_indexes(
        manager: &SchemaManager<'_>,
        indexes: Vec<IndexCreateStatement>,
    ) -> Result<(), DbErr> {
        for index in indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}
