//! Device policies of organizations.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
};
use serde_json::json;
use steward_domain::policies::{PolicyRecord, PolicyStore};
use steward_domain::{AuditEntry, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{device_policies, devices, groups};
use crate::error::db_err_to_repository as db;
use crate::fleet::{policy_device_ids, touch_devices};

pub(crate) fn record(model: device_policies::Model) -> PolicyRecord {
    PolicyRecord {
        id: model.id,
        organization_id: model.organization_id,
        name: model.name,
        description: model.description,
        settings: serde_json::from_value(model.settings).unwrap_or_default(),
        locks: serde_json::from_value(model.locked_keys).unwrap_or_default(),
        priority: model.priority,
        is_default: model.is_default,
        version: model.version,
        created_at: model.created_at,
        updated_at: model.updated_at,
    }
}

/// The row of a new policy (version 1).
pub(crate) fn new_policy_row(policy: &PolicyRecord) -> device_policies::ActiveModel {
    device_policies::ActiveModel {
        id: Set(policy.id),
        organization_id: Set(policy.organization_id),
        name: Set(policy.name.clone()),
        description: Set(policy.description.clone()),
        settings: Set(json!(policy.settings)),
        locked_keys: Set(json!(policy.locks)),
        priority: Set(policy.priority),
        is_default: Set(policy.is_default),
        version: Set(1),
        created_at: Set(policy.created_at),
        updated_at: Set(policy.created_at),
    }
}

/// Takes the policy's row (a no-op write) before reading it, so what is read holds until
/// commit; `NotFound` when the organization has no such policy.
async fn claim_policy(
    transaction: &DatabaseTransaction,
    organization: Uuid,
    policy: Uuid,
) -> Result<(), RepositoryError> {
    let claimed = device_policies::Entity::update_many()
        .col_expr(
            device_policies::Column::Version,
            Expr::col(device_policies::Column::Version),
        )
        .filter(device_policies::Column::Id.eq(policy))
        .filter(device_policies::Column::OrganizationId.eq(organization))
        .exec(transaction)
        .await
        .map_err(db)?;
    if claimed.rows_affected == 0 {
        return Err(RepositoryError::NotFound);
    }
    Ok(())
}

/// One default per organization: the new default unsets the others.
pub(crate) async fn unset_other_defaults(
    transaction: &DatabaseTransaction,
    policy: &PolicyRecord,
) -> Result<(), RepositoryError> {
    if policy.is_default {
        device_policies::Entity::update_many()
            .col_expr(device_policies::Column::IsDefault, Expr::value(false))
            .filter(device_policies::Column::OrganizationId.eq(policy.organization_id))
            .filter(device_policies::Column::Id.ne(policy.id))
            .exec(transaction)
            .await
            .map_err(db)?;
    }
    Ok(())
}

impl PolicyStore for Database {
    async fn create_policy(
        &self,
        policy: &PolicyRecord,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, steward_domain::RuleStoreError> {
        // Reads the quota before it writes: on SQLite the write lock is taken first.
        let transaction = self.begin_write().await.map_err(db)?;
        crate::organizations::check_quota_locked(
            &transaction,
            self.quota_plans(),
            policy.organization_id,
            steward_domain::quotas::QuotaKey::Policies,
            1,
        )
        .await?;
        unset_other_defaults(&transaction, policy).await?;
        device_policies::Entity::insert(new_policy_row(policy))
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        // A new policy reaches devices only as the organization's default.
        let touched = if policy.is_default {
            policy_device_ids(&transaction, policy.organization_id, policy.id, true).await?
        } else {
            Vec::new()
        };
        touch_devices(&transaction, &touched, "policy_changed", Utc::now()).await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(touched)
    }

    async fn policies(&self, organization: Uuid) -> Result<Vec<PolicyRecord>, RepositoryError> {
        Ok(device_policies::Entity::find()
            .filter(device_policies::Column::OrganizationId.eq(organization))
            .order_by_desc(device_policies::Column::Priority)
            .order_by_asc(device_policies::Column::Name)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(record)
            .collect())
    }

    async fn find_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
    ) -> Result<Option<PolicyRecord>, RepositoryError> {
        Ok(device_policies::Entity::find_by_id(policy)
            .filter(device_policies::Column::OrganizationId.eq(organization))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(record))
    }

    async fn update_policy(
        &self,
        policy: &PolicyRecord,
        expected_version: Option<i32>,
        audit: &AuditEntry,
    ) -> Result<(PolicyRecord, Vec<Uuid>), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        claim_policy(&transaction, policy.organization_id, policy.id).await?;
        let was_default = device_policies::Entity::find_by_id(policy.id)
            .filter(device_policies::Column::OrganizationId.eq(policy.organization_id))
            .one(&transaction)
            .await
            .map_err(db)?
            .is_some_and(|current| current.is_default);
        let mut update = device_policies::Entity::update_many()
            .col_expr(device_policies::Column::Name, Expr::value(policy.name.clone()))
            .col_expr(
                device_policies::Column::Description,
                Expr::value(policy.description.clone()),
            )
            .col_expr(
                device_policies::Column::Settings,
                Expr::value(json!(policy.settings)),
            )
            .col_expr(
                device_policies::Column::LockedKeys,
                Expr::value(json!(policy.locks)),
            )
            .col_expr(device_policies::Column::Priority, Expr::value(policy.priority))
            .col_expr(device_policies::Column::IsDefault, Expr::value(policy.is_default))
            .col_expr(
                device_policies::Column::Version,
                Expr::col(device_policies::Column::Version).add(1),
            )
            .col_expr(device_policies::Column::UpdatedAt, Expr::value(Utc::now()))
            .filter(device_policies::Column::Id.eq(policy.id))
            .filter(device_policies::Column::OrganizationId.eq(policy.organization_id));
        if let Some(version) = expected_version {
            update = update.filter(device_policies::Column::Version.eq(version));
        }
        if update.exec(&transaction).await.map_err(db)?.rows_affected == 0 {
            let exists = device_policies::Entity::find_by_id(policy.id)
                .filter(device_policies::Column::OrganizationId.eq(policy.organization_id))
                .one(&transaction)
                .await
                .map_err(db)?;
            return Err(match exists {
                Some(_) if expected_version.is_some() => RepositoryError::VersionConflict,
                _ => RepositoryError::NotFound,
            });
        }
        unset_other_defaults(&transaction, policy).await?;
        let touched = policy_device_ids(
            &transaction,
            policy.organization_id,
            policy.id,
            was_default || policy.is_default,
        )
        .await?;
        touch_devices(&transaction, &touched, "policy_changed", Utc::now()).await?;
        insert_audit_entry(&transaction, audit).await?;
        let stored = device_policies::Entity::find_by_id(policy.id)
            .one(&transaction)
            .await
            .map_err(db)?
            .ok_or(RepositoryError::NotFound)?;
        transaction.commit().await.map_err(db)?;
        Ok((record(stored), touched))
    }

    async fn delete_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        claim_policy(&transaction, organization, policy).await?;
        let Some(current) = device_policies::Entity::find_by_id(policy)
            .filter(device_policies::Column::OrganizationId.eq(organization))
            .one(&transaction)
            .await
            .map_err(db)?
        else {
            return Err(RepositoryError::NotFound);
        };
        let touched = policy_device_ids(&transaction, organization, policy, current.is_default).await?;
        let now = Utc::now();
        touch_devices(&transaction, &touched, "policy_changed", now).await?;
        devices::Entity::update_many()
            .col_expr(devices::Column::PolicyId, Expr::value(Option::<Uuid>::None))
            .filter(devices::Column::PolicyId.eq(policy))
            .exec(&transaction)
            .await
            .map_err(db)?;
        groups::Entity::update_many()
            .col_expr(groups::Column::PolicyId, Expr::value(Option::<Uuid>::None))
            .filter(groups::Column::PolicyId.eq(policy))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let deleted = device_policies::Entity::delete_many()
            .filter(device_policies::Column::Id.eq(policy))
            .filter(device_policies::Column::OrganizationId.eq(organization))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if deleted.rows_affected == 0 {
            return Err(RepositoryError::NotFound);
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(touched)
    }
}
