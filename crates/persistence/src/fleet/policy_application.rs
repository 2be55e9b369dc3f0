//! Applying and unapplying a policy to devices and fleet groups.

use super::*;
use steward_domain::fleet::{PolicyApplicationStore, targets_that_change};

impl PolicyApplicationStore for Database {
    async fn apply_policy(
        &self,
        organization: Uuid,
        policy: Uuid,
        targets: &PolicyTargets,
        apply: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<Vec<Uuid>, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let value = if apply { Some(policy) } else { None };
        let touched = match targets {
            PolicyTargets::Devices(ids) => {
                let ids: Vec<Uuid> = ids.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
                let targets = Condition::all()
                    .add(devices::Column::Id.is_in(ids.iter().copied()))
                    .add(managed_in(organization));
                // Claim the targets (a write, so the decision below holds until commit).
                let claimed = devices::Entity::update_many()
                    .col_expr(
                        devices::Column::Version,
                        Expr::col(devices::Column::Version).add(1),
                    )
                    .filter(targets.clone())
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                if claimed.rows_affected != ids.len() as u64 {
                    return Err(RepositoryError::NotFound);
                }
                let carried: Vec<(Uuid, Option<Uuid>)> = devices::Entity::find()
                    .select_only()
                    .column(devices::Column::Id)
                    .column(devices::Column::PolicyId)
                    .filter(targets)
                    .into_tuple()
                    .all(&transaction)
                    .await
                    .map_err(db)?;
                let changed = targets_that_change(policy, apply, carried);
                if !changed.is_empty() {
                    devices::Entity::update_many()
                        .col_expr(devices::Column::PolicyId, Expr::value(value))
                        .filter(devices::Column::Id.is_in(changed.iter().copied()))
                        .exec(&transaction)
                        .await
                        .map_err(db)?;
                }
                changed
            }
            PolicyTargets::Groups(ids) => {
                let ids: Vec<Uuid> = ids.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
                let targets = Condition::all()
                    .add(groups::Column::Id.is_in(ids.iter().copied()))
                    .add(groups::Column::OrganizationId.eq(organization))
                    .add(groups::Column::DeletedAt.is_null());
                let claimed = groups::Entity::update_many()
                    .col_expr(groups::Column::Version, Expr::col(groups::Column::Version).add(1))
                    .filter(targets.clone())
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                if claimed.rows_affected != ids.len() as u64 {
                    return Err(RepositoryError::NotFound);
                }
                let carried: Vec<(Uuid, Option<Uuid>)> = groups::Entity::find()
                    .select_only()
                    .column(groups::Column::Id)
                    .column(groups::Column::PolicyId)
                    .filter(targets)
                    .into_tuple()
                    .all(&transaction)
                    .await
                    .map_err(db)?;
                let changed = targets_that_change(policy, apply, carried);
                if changed.is_empty() {
                    Vec::new()
                } else {
                    groups::Entity::update_many()
                        .col_expr(groups::Column::PolicyId, Expr::value(value))
                        .filter(groups::Column::Id.is_in(changed.iter().copied()))
                        .exec(&transaction)
                        .await
                        .map_err(db)?;
                    devices::Entity::find()
                        .select_only()
                        .column(devices::Column::Id)
                        .filter(managed_in(organization))
                        .filter(devices::Column::FleetGroupId.is_in(changed))
                        .into_tuple()
                        .all(&transaction)
                        .await
                        .map_err(db)?
                }
            }
        };
        touch_devices(&transaction, &touched, "policy_changed", now).await?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(touched)
    }
}
