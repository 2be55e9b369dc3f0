//! Unlock requests and their decisions.

use super::*;
use steward_domain::settings::store::UnlockRequestStore;

impl UnlockRequestStore for Database {
    async fn create_unlock_request(
        &self,
        request: &UnlockRequest,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        unlock_requests::Entity::insert(unlock_requests::ActiveModel {
            id: Set(request.id),
            device_id: Set(request.device_id),
            setting_key: Set(request.setting_key.clone()),
            requested_by: Set(request.requested_by),
            reason: Set(request.reason.clone()),
            status: Set(UnlockStatus::Pending.as_str().to_owned()),
            decided_by: Set(None),
            decided_at: Set(None),
            decision_note: Set(None),
            unlock_until: Set(None),
            created_at: Set(request.created_at),
            updated_at: Set(request.created_at),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }
    async fn unlock_requests(
        &self,
        devices: &[Uuid],
        status: Option<UnlockStatus>,
    ) -> Result<Vec<UnlockRequest>, RepositoryError> {
        if devices.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = unlock_requests::Entity::find()
            .filter(unlock_requests::Column::DeviceId.is_in(devices.iter().copied()));
        if let Some(status) = status {
            query = query.filter(unlock_requests::Column::Status.eq(status.as_str()));
        }
        query
            .order_by_desc(unlock_requests::Column::CreatedAt)
            .limit(500)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(unlock_request)
            .collect()
    }
    async fn find_unlock_request(&self, id: Uuid) -> Result<Option<UnlockRequest>, RepositoryError> {
        unlock_requests::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(unlock_request)
            .transpose()
    }
    async fn decide_unlock_request(
        &self,
        id: Uuid,
        decision: &UnlockDecision,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<UnlockRequest, SettingsStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let status = if decision.approve {
            UnlockStatus::Approved
        } else {
            UnlockStatus::Denied
        };
        let decided = unlock_requests::Entity::update_many()
            .col_expr(unlock_requests::Column::Status, Expr::value(status.as_str()))
            .col_expr(
                unlock_requests::Column::DecidedBy,
                Expr::value(Some(decision.decided_by)),
            )
            .col_expr(unlock_requests::Column::DecidedAt, Expr::value(Some(now)))
            .col_expr(
                unlock_requests::Column::DecisionNote,
                Expr::value(decision.note.clone()),
            )
            .col_expr(
                unlock_requests::Column::UnlockUntil,
                Expr::value(decision.until.filter(|_| decision.approve)),
            )
            .col_expr(unlock_requests::Column::UpdatedAt, Expr::value(now))
            .filter(unlock_requests::Column::Id.eq(id))
            .filter(unlock_requests::Column::Status.eq(UnlockStatus::Pending.as_str()))
            .exec(&transaction)
            .await
            .map_err(db)?;
        if decided.rows_affected == 0 {
            return Err(RepositoryError::NotFound.into());
        }
        let request = unlock_request(
            unlock_requests::Entity::find_by_id(id)
                .one(&transaction)
                .await
                .map_err(db)?
                .ok_or(RepositoryError::NotFound)?,
        )?;
        if decision.approve {
            let version = bump_version(&transaction, request.device_id, None, now).await?;
            let change = match decision.until {
                Some(until) => SettingChange::LiftLockUntil {
                    key: request.setting_key.clone(),
                    until,
                },
                None => SettingChange::Unlock {
                    key: request.setting_key.clone(),
                },
            };
            apply_change(
                &transaction,
                request.device_id,
                &change,
                Some(decision.decided_by),
                version,
                now,
            )
            .await?;
            enqueue(&transaction, request.device_id, "unlock_approved", now).await?;
        } else {
            enqueue(&transaction, request.device_id, "unlock_denied", now).await?;
        }
        let entry = audit.clone().resource_id(id).change(
            Some(json!({"status": "pending"})),
            Some(
                json!({"status": status.as_str(), "deviceId": request.device_id, "key": request.setting_key,
                        "until": request.unlock_until, "note": request.decision_note}),
            ),
        );
        insert_audit_entry(&transaction, &entry).await?;
        transaction.commit().await.map_err(db)?;
        Ok(request)
    }
}
