//! Organization user import, all or nothing; an import never changes an owner.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use steward_domain::fleet::ImportCounts;
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entries;
use crate::database::Database;
use crate::entities::{org_users, users};
use crate::error::db_err_to_repository as db;
use crate::fleet::CHUNK;

use steward_domain::fleet::ImportProblem;
use steward_domain::organizations::{
    OrgRole, OrgUserImportStore, ResolvedUserImport, UserImportPlan, UserImportStep,
};

impl OrgUserImportStore for Database {
    async fn user_ids_by_email(&self, emails: &[String]) -> Result<BTreeMap<String, Uuid>, RepositoryError> {
        let mut found = BTreeMap::new();
        for chunk in emails.chunks(CHUNK) {
            let rows: Vec<(String, Uuid)> = users::Entity::find()
                .select_only()
                .column(users::Column::Email)
                .column(users::Column::Id)
                .filter(users::Column::Email.is_in(chunk.iter().cloned()))
                .filter(users::Column::DeletedAt.is_null())
                .into_tuple()
                .all(self.connection())
                .await
                .map_err(db)?;
            found.extend(rows);
        }
        Ok(found)
    }
    async fn import_org_users<F, A>(
        &self,
        organization: Uuid,
        rows: &[ResolvedUserImport],
        decide: F,
        now: DateTime<Utc>,
        audit: A,
    ) -> Result<Result<ImportCounts, Vec<ImportProblem>>, steward_domain::RuleStoreError>
    where
        F: FnOnce(&BTreeMap<Uuid, OrgRole>) -> Result<UserImportPlan, Vec<ImportProblem>> + Send,
        A: Fn(&ResolvedUserImport, bool) -> AuditEntry + Send + Sync,
    {
        let transaction = self.begin_write().await.map_err(db)?;
        crate::organizations::claim_organization(&transaction, organization).await?;
        let members = org_users::Entity::find()
            .select_only()
            .column(org_users::Column::UserId)
            .column(org_users::Column::Role)
            .filter(org_users::Column::OrganizationId.eq(organization))
            .into_tuple::<(Uuid, String)>()
            .all(&transaction)
            .await
            .map_err(db)?
            .into_iter()
            .map(|(user, role)| {
                OrgRole::parse(&role)
                    .map(|role| (user, role))
                    .ok_or_else(|| RepositoryError::Other(format!("unknown organization role `{role}`")))
            })
            .collect::<Result<BTreeMap<Uuid, OrgRole>, _>>()?;
        let plan = match decide(&members) {
            Ok(plan) => plan,
            Err(problems) => {
                transaction.rollback().await.map_err(db)?;
                return Ok(Err(problems));
            }
        };
        let mut inserts = Vec::new();
        let mut entries = Vec::new();
        for (resolved, step) in rows.iter().zip(&plan.steps) {
            let role = resolved.row.role.as_str();
            match step {
                UserImportStep::Add => {
                    inserts.push(org_users::ActiveModel {
                        id: Set(Uuid::now_v7()),
                        organization_id: Set(organization),
                        user_id: Set(resolved.user_id),
                        role: Set(role.to_owned()),
                        permissions: Set(None),
                        created_at: Set(now),
                        updated_at: Set(now),
                    });
                    entries.push(audit(resolved, true));
                }
                UserImportStep::ChangeRole => {
                    org_users::Entity::update_many()
                        .col_expr(org_users::Column::Role, Expr::value(role))
                        .col_expr(org_users::Column::UpdatedAt, Expr::value(now))
                        .filter(org_users::Column::OrganizationId.eq(organization))
                        .filter(org_users::Column::UserId.eq(resolved.user_id))
                        .exec(&transaction)
                        .await
                        .map_err(db)?;
                    entries.push(audit(resolved, false));
                }
                UserImportStep::Skip => {}
            }
        }
        super::spend_quota_locked(
            &transaction,
            self.quota_plans(),
            organization,
            steward_domain::quotas::QuotaKey::ImportsPerDay,
        )
        .await?;
        super::check_quota_locked(
            &transaction,
            self.quota_plans(),
            organization,
            steward_domain::quotas::QuotaKey::Users,
            inserts.len() as u64,
        )
        .await?;
        for chunk in inserts.chunks(500) {
            org_users::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
        }
        insert_audit_entries(&transaction, entries).await?;
        transaction.commit().await.map_err(db)?;
        Ok(Ok(plan.counts))
    }
}
