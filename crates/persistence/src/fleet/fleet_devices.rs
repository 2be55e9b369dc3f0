//! Fleet groups and devices: listings, assignment, suspension and retirement.

use super::*;
use std::collections::HashMap;

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use steward_domain::fleet::FleetDeviceStore;

impl FleetDeviceStore for Database {
    async fn fleet_groups(&self, organization: Uuid) -> Result<Vec<FleetGroup>, RepositoryError> {
        Ok(groups::Entity::find()
            .filter(groups::Column::OrganizationId.eq(organization))
            .filter(groups::Column::DeletedAt.is_null())
            .order_by_asc(groups::Column::Name)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|group| FleetGroup {
                id: group.id,
                organization_id: organization,
                name: group.name,
                description: group.description,
                policy_id: group.policy_id,
                created_at: group.created_at,
            })
            .collect())
    }
    async fn create_fleet_group(
        &self,
        group: &FleetGroup,
        creator: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        if let Some(policy) = group.policy_id
            && !policy_is_the_orgs(&transaction, group.organization_id, policy).await?
        {
            return Err(RepositoryError::NotFound);
        }
        groups::Entity::insert(crate::groups::group_row(crate::groups::GroupRow {
            id: group.id,
            name: &group.name,
            description: group.description.as_deref(),
            organization: Some(group.organization_id),
            creator,
            policy: group.policy_id,
            at: group.created_at,
        }))
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        group_memberships::Entity::insert(group_memberships::ActiveModel {
            id: Set(Uuid::now_v7()),
            group_id: Set(group.id),
            user_id: Set(creator),
            role: Set("owner".to_owned()),
            invited_by: Set(None),
            joined_at: Set(group.created_at),
            updated_at: Set(group.created_at),
        })
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }
    async fn device_status(&self, device: Uuid) -> Result<Option<DeviceStatus>, RepositoryError> {
        let status: Option<String> = devices::Entity::find_by_id(device)
            .select_only()
            .column(devices::Column::Status)
            .into_tuple()
            .one(self.connection())
            .await
            .map_err(db)?;
        Ok(status.map(|s| DeviceStatus::parse(&s).unwrap_or(DeviceStatus::Active)))
    }
    async fn fleet_devices(
        &self,
        organization: Uuid,
        query: &FleetQuery,
    ) -> Result<(Vec<FleetDevice>, u64), RepositoryError> {
        let mut select = devices::Entity::find().filter(managed_in(organization));
        if let Some(status) = query.status {
            select = select.filter(devices::Column::Status.eq(status.as_str()));
        }
        if let Some(policy) = query.policy_id {
            select = select.filter(devices::Column::PolicyId.eq(policy));
        }
        if let Some(group) = query.group_id {
            select = select.filter(devices::Column::FleetGroupId.eq(group));
        }
        if let Some(platform) = &query.platform {
            select = select.filter(devices::Column::Platform.eq(platform.to_lowercase()));
        }
        if let Some(user) = query.assigned_user_id {
            select = select.filter(devices::Column::AssignedUserId.eq(user));
        }
        if let Some(before) = query.last_seen_before {
            select = select.filter(devices::Column::LastSeenAt.lt(before));
        }
        if let Some(after) = query.last_seen_after {
            select = select.filter(devices::Column::LastSeenAt.gt(after));
        }
        if let Some(text) = query.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let pattern = search_pattern(text);
            match self.indexed_device_search(organization, text).await? {
                // The trigram table narrows the candidates; the condition below decides, so the
                // answer is the same as a scan's.
                Some(found) => select = select.filter(devices::Column::Id.is_in(found)),
                None => {
                    if self.connection().get_database_backend() == DatabaseBackend::Postgres {
                        // Exactly the expression of the trigram index idx_devices_search_trgm
                        // (m20261203_000034_device_search), which finds the candidates; the
                        // condition below then drops a match spanning a joining space.
                        select = select.filter(
                            Expr::cust(
                                r#"(lower("devices"."display_name") || ' ' || lower(coalesce("devices"."serial_number", '')) || ' ' || lower("devices"."device_identifier"))"#,
                            )
                            .like(pattern.clone()),
                        );
                    }
                }
            }
            let lower = |column: devices::Column| Expr::expr(Func::lower(Expr::col(column)));
            select = select.filter(
                Condition::any()
                    .add(lower(devices::Column::DisplayName).like(pattern.clone()))
                    .add(lower(devices::Column::SerialNumber).like(pattern.clone()))
                    .add(lower(devices::Column::DeviceIdentifier).like(pattern)),
            );
        }
        let total = select.clone().count(self.connection()).await.map_err(db)?;
        let column = match query.sort {
            FleetSort::Name => devices::Column::DisplayName,
            FleetSort::LastSeen => devices::Column::LastSeenAt,
            FleetSort::EnrolledAt => devices::Column::EnrolledAt,
            FleetSort::Status => devices::Column::Status,
            FleetSort::Platform => devices::Column::Platform,
        };
        select = if query.descending {
            select.order_by_desc(column).order_by_desc(devices::Column::Id)
        } else {
            select.order_by_asc(column).order_by_asc(devices::Column::Id)
        };
        // The page's ids first, from an index where the sort has one, then only those rows: a
        // deep page skips index entries rather than whole devices.
        let ids: Vec<Uuid> = select
            .select_only()
            .column(devices::Column::Id)
            .offset(query.offset)
            .limit(query.limit)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        if ids.is_empty() {
            return Ok((Vec::new(), total));
        }
        let mut rows: HashMap<Uuid, devices::Model> = devices::Entity::find()
            .filter(devices::Column::Id.is_in(ids.iter().copied()))
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        // A device retired or deleted between the two reads drops out of the page.
        let page = ids
            .iter()
            .filter_map(|id| rows.remove(id))
            .map(fleet_device)
            .collect();
        Ok((page, total))
    }
    async fn find_fleet_device(
        &self,
        organization: Uuid,
        device: Uuid,
    ) -> Result<Option<FleetDevice>, RepositoryError> {
        Ok(devices::Entity::find_by_id(device)
            .filter(managed_in(organization))
            .one(self.connection())
            .await
            .map_err(db)?
            .map(fleet_device))
    }
    async fn fleet_devices_in_groups(
        &self,
        organization: Uuid,
        groups: &[Uuid],
    ) -> Result<Vec<Uuid>, RepositoryError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        devices::Entity::find()
            .select_only()
            .column(devices::Column::Id)
            .filter(managed_in(organization))
            .filter(devices::Column::FleetGroupId.is_in(groups.iter().copied()))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)
    }
    async fn assign_device(
        &self,
        organization: Uuid,
        device: Uuid,
        assignment: &Assignment,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), FleetStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let before = claim_device(&transaction, organization, device, now).await?;
        if let Some(Some(policy)) = assignment.policy_id
            && !policy_is_the_orgs(&transaction, organization, policy).await?
        {
            return Err(FleetRuleError::Invalid {
                field: "policyId",
                message: "no such policy in this organization",
            }
            .into());
        }
        if let Some(Some(group)) = assignment.group_id
            && !group_is_the_orgs(&transaction, organization, group).await?
        {
            return Err(FleetRuleError::Invalid {
                field: "groupId",
                message: "no such group in this organization",
            }
            .into());
        }
        if let Some(Some(user)) = assignment.assigned_user_id
            && !user_is_the_orgs(&transaction, organization, user).await?
        {
            return Err(FleetRuleError::Invalid {
                field: "userId",
                message: "the user is not a member of this organization",
            }
            .into());
        }
        let mut update = devices::Entity::update_many().filter(devices::Column::Id.eq(device));
        if let Some(policy) = assignment.policy_id {
            update = update.col_expr(devices::Column::PolicyId, Expr::value(policy));
        }
        if let Some(group) = assignment.group_id {
            update = update.col_expr(devices::Column::FleetGroupId, Expr::value(group));
        }
        if let Some(user) = assignment.assigned_user_id {
            update = update.col_expr(devices::Column::AssignedUserId, Expr::value(user));
        }
        update.exec(&transaction).await.map_err(db)?;
        let entry = audit
            .clone()
            .resource_id(device)
            .organization(organization)
            .change(
                Some(serde_json::json!({
                    "policyId": before.policy_id,
                    "groupId": before.fleet_group_id,
                    "userId": before.assigned_user_id,
                })),
                Some(serde_json::json!({
                    "policyId": assignment.policy_id.unwrap_or(before.policy_id),
                    "groupId": assignment.group_id.unwrap_or(before.fleet_group_id),
                    "userId": assignment.assigned_user_id.unwrap_or(before.assigned_user_id),
                })),
            );
        insert_audit_entry(&transaction, &entry).await?;
        enqueue(&transaction, device, "assigned", now).await?;
        transaction.commit().await.map_err(db)?;
        Ok(())
    }
    async fn set_device_suspended(
        &self,
        organization: Uuid,
        device: Uuid,
        suspend: bool,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<DeviceStatus, FleetStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let current = claim_device(&transaction, organization, device, now).await?;
        let status = next_status(
            DeviceStatus::parse(&current.status).unwrap_or(DeviceStatus::Active),
            suspend,
        )?;
        devices::Entity::update_many()
            .col_expr(devices::Column::Status, Expr::value(status.as_str()))
            .filter(devices::Column::Id.eq(device))
            .exec(&transaction)
            .await
            .map_err(db)?;
        let entry = audit
            .clone()
            .resource_id(device)
            .organization(organization)
            .change(
                Some(serde_json::json!({"status": current.status})),
                Some(serde_json::json!({"status": status.as_str()})),
            );
        insert_audit_entry(&transaction, &entry).await?;
        enqueue(
            &transaction,
            device,
            if suspend { "suspended" } else { "resumed" },
            now,
        )
        .await?;
        transaction.commit().await.map_err(db)?;
        Ok(status)
    }
    async fn retire_device(
        &self,
        organization: Uuid,
        device: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> Result<(), FleetStoreError> {
        let transaction = self.begin_write().await.map_err(db)?;
        // The claim decides against a concurrent retirement or adoption; then the same end
        // state as an organization's deletion gives each of its devices.
        let before = claim_device(&transaction, organization, device, now).await?;
        retire_devices(&transaction, organization, &[before], now, audit).await?;
        transaction.commit().await.map_err(db)?;
        Ok(())
    }
}

/// Above this many matches the trigram table stops paying off against a scan.
const INDEXED_SEARCH_CAP: usize = 1000;

impl Database {
    /// On SQLite, the organization's managed devices whose name, serial number or identifier
    /// may contain `text` (3 characters or more), from the trigram table `devices_search` —
    /// `None` when the term is shorter, the database is PostgreSQL (its trigram index serves the
    /// plain query), or more than [`INDEXED_SEARCH_CAP`] of them match (a scan is then as
    /// fast). Only the organization's devices count towards the cap, so other tenants' fleets
    /// never change how a search is answered.
    async fn indexed_device_search(
        &self,
        organization: Uuid,
        text: &str,
    ) -> Result<Option<Vec<Uuid>>, RepositoryError> {
        let connection = self.connection();
        if connection.get_database_backend() != DatabaseBackend::Sqlite || text.chars().count() < 3 {
            return Ok(None);
        }
        // A quoted FTS5 phrase: the trigram tokenizer matches it as a substring, any case.
        let phrase = format!("\"{}\"", text.replace('"', "\"\""));
        let rows = connection
            .query_all_raw(Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "SELECT s.device_id FROM devices_search s JOIN devices d ON d.id = s.device_id \
                 WHERE devices_search MATCH ? AND d.organization_id = ? AND d.is_managed \
                 LIMIT ?",
                [
                    phrase.into(),
                    organization.into(),
                    ((INDEXED_SEARCH_CAP + 1) as i64).into(),
                ],
            ))
            .await
            .map_err(db)?;
        if rows.len() > INDEXED_SEARCH_CAP {
            return Ok(None);
        }
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            found.push(row.try_get::<Uuid>("", "device_id").map_err(db)?);
        }
        Ok(Some(found))
    }
}
