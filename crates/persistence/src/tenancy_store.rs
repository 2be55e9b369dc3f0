//! [`TenancyStore`] for the database: row-level security read and changed through the schema
//! owner's connection, the server role's exemption noted.

use sea_orm::sqlx::{self, Connection};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use steward_domain::tenancy::{DefaultOrgRepair, RlsReport, RlsStatus, TenancyStore};
use steward_domain::{AuditEntry, RepositoryError};

use crate::audit::insert_audit_entry;
use crate::database::{Backend, Database};
use crate::error::db_err_to_repository as db;

fn failed(error: sqlx::Error) -> RepositoryError {
    RepositoryError::Unavailable(format!("row-level security: {error}"))
}

impl TenancyStore for Database {
    async fn row_level_security(
        &self,
        change: Option<bool>,
        audit: Option<&AuditEntry>,
    ) -> Result<RlsReport, RepositoryError> {
        let action = match change {
            None => "status",
            Some(true) => "enable",
            Some(false) => "disable",
        };
        if self.backend() == Backend::Sqlite {
            return Ok(RlsReport::unsupported(action, &crate::tenancy::tables()));
        }
        // Catalogs and DDL, for every tenant: as the system whoever asks.
        crate::tenancy::as_system(self.row_level_security_as_system(change, action, audit)).await
    }

    async fn repair_default_organization(
        &self,
        role: steward_domain::organizations::OrgRole,
        audit: &AuditEntry,
    ) -> Result<DefaultOrgRepair, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let repair = steward_migration::default_org::repair(&transaction, role.as_str())
            .await
            .map_err(db)?;
        let repair = DefaultOrgRepair {
            organization_created: repair.organization_created,
            users_added: repair.users_added,
            devices_attached: repair.devices_attached,
        };
        if repair.organization_created + repair.users_added + repair.devices_attached > 0 {
            let mut audit = audit.clone();
            audit.after = Some(serde_json::json!({
                "role": role.as_str(),
                "organizationCreated": repair.organization_created,
                "usersAdded": repair.users_added,
                "devicesAttached": repair.devices_attached,
            }));
            insert_audit_entry(&transaction, &audit).await?;
        }
        transaction.commit().await.map_err(db)?;
        Ok(repair)
    }
}

impl Database {
    async fn row_level_security_as_system(
        &self,
        change: Option<bool>,
        action: &str,
        audit: Option<&AuditEntry>,
    ) -> Result<RlsReport, RepositoryError> {
        let mut owner = sqlx::PgConnection::connect(self.owner_url())
            .await
            .map_err(failed)?;
        // The owner is bound by forced policies too: this connection acts as the system.
        crate::tenancy::apply(&mut owner).await.map_err(failed)?;
        let outcome = crate::tenancy::report(&mut owner, change).await;
        let _ = owner.close().await;
        let mut report = outcome.map_err(failed)?;
        // Whether the policies bind the role the server's requests use (the pool's).
        let row = self
            .connection()
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_user::text AS name, (rolsuper OR rolbypassrls) AS bypasses FROM pg_roles WHERE rolname = current_user",
            ))
            .await
            .map_err(db)?;
        let (role, bypasses) = match row {
            Some(row) => (
                row.try_get::<String>("", "name").map_err(db)?,
                row.try_get::<bool>("", "bypasses").map_err(db)?,
            ),
            None => (String::new(), false),
        };
        report.applies_to_server_role = Some(!bypasses);
        report.enforced &= !bypasses;
        if bypasses {
            report.warnings.push(format!(
                "the server connects as `{role}`, a superuser or a role with BYPASSRLS: the policies do not bind it; connect as a role of its own (docs/operations.md#row-level-security-postgresql)"
            ));
        }
        let changed = report
            .tables
            .iter()
            .any(|table| table.status == RlsStatus::Changed);
        if changed && let Some(audit) = audit {
            let mut audit = audit.clone();
            audit.after = Some(serde_json::json!({
                "action": action,
                "tables": report
                    .tables
                    .iter()
                    .filter(|table| table.status == RlsStatus::Changed)
                    .map(|table| table.table.clone())
                    .collect::<Vec<_>>(),
            }));
            insert_audit_entry(self.writer(), &audit).await?;
        }
        Ok(report)
    }
}
