//! Operators' notifications: raised with the fan-out of their event (counted rules decided
//! under a lock on their counter row), read marks per operator, preferences, and the mail pass.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect,
};
use serde_json::json;
use steward_domain::accounts::{OutgoingMail, STATUS_ACTIVE};
use steward_domain::notifications::{
    Candidate, Check, NotificationFilter, NotificationRecord, NotificationStore, NotificationView,
    NotificationViewer, Operator, Preferences, Recent, Rule, Severity,
};
use steward_domain::organizations::{OrgPermission, OrgRole};
use steward_domain::{AuditEntry, PageRequest, RepositoryError};
use uuid::Uuid;

use crate::audit::insert_audit_entry;
use crate::database::Database;
use crate::entities::{
    notification_counters, notification_preferences, notification_reads, notifications, org_users,
    user_system_roles, users, webhook_deliveries, webhooks,
};
use crate::error::db_err_to_repository as db;

/// Addresses remembered per admin for [`Rule::AdminNewIp`].
const KNOWN_ADDRESSES: usize = 100;

fn notification(row: notifications::Model) -> Result<NotificationRecord, RepositoryError> {
    Ok(NotificationRecord {
        id: row.id,
        rule: Rule::parse(&row.rule)
            .ok_or_else(|| RepositoryError::Other(format!("unknown notification rule {:?}", row.rule)))?,
        severity: Severity::parse(&row.severity)
            .ok_or_else(|| RepositoryError::Other(format!("unknown severity {:?}", row.severity)))?,
        title: row.title,
        message: row.message,
        organization_id: row.organization_id,
        event_id: row.event_id,
        data: row.data,
        created_at: row.created_at,
    })
}

/// The counter row of `(rule, subject)`, created if missing and locked until the transaction
/// ends (PostgreSQL; SQLite's writer already holds the database).
async fn locked_counter(
    connection: &impl ConnectionTrait,
    rule: Rule,
    subject: &str,
    at: DateTime<Utc>,
) -> Result<notification_counters::Model, RepositoryError> {
    notification_counters::Entity::insert(notification_counters::ActiveModel {
        id: Set(Uuid::now_v7()),
        rule: Set(rule.as_str().to_owned()),
        subject: Set(subject.to_owned()),
        count: Set(0),
        since: Set(at),
        data: Set(None),
    })
    .on_conflict(
        OnConflict::columns([
            notification_counters::Column::Rule,
            notification_counters::Column::Subject,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(connection)
    .await
    .map_err(db)?;
    let mut select = notification_counters::Entity::find()
        .filter(notification_counters::Column::Rule.eq(rule.as_str()))
        .filter(notification_counters::Column::Subject.eq(subject));
    if connection.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        select = select.lock_exclusive();
    }
    select
        .one(connection)
        .await
        .map_err(db)?
        .ok_or(RepositoryError::NotFound)
}

/// The key a check locks, if it locks one: counters are locked in this order by every
/// transaction, so two instances fanning out interleaved batches never deadlock.
fn lock_key(candidate: &Candidate) -> Option<(String, String)> {
    match &candidate.check {
        Check::Always => None,
        Check::Count { subject, .. } => Some((
            candidate.notification.rule.as_str().to_owned(),
            subject.chars().take(200).collect(),
        )),
        Check::NewAdminAddress { user, .. } => {
            Some((candidate.notification.rule.as_str().to_owned(), user.to_string()))
        }
    }
}

async fn insert_notification(
    connection: &impl ConnectionTrait,
    note: &NotificationRecord,
) -> Result<(), RepositoryError> {
    notifications::ActiveModel {
        id: Set(note.id),
        rule: Set(note.rule.as_str().to_owned()),
        severity: Set(note.severity.as_str().to_owned()),
        title: Set(note.title.clone()),
        message: Set(note.message.clone()),
        organization_id: Set(note.organization_id),
        event_id: Set(note.event_id),
        data: Set(note.data.clone()),
        mailed: Set(false),
        created_at: Set(note.created_at),
    }
    .insert(connection)
    .await
    .map_err(db)?;
    Ok(())
}

/// Decides each candidate — the counted ones under their counter's lock, taken in key order,
/// each counter read and written once per batch — and writes those raised.
pub(crate) async fn raise(
    connection: &impl ConnectionTrait,
    candidates: &[Candidate],
) -> Result<(), RepositoryError> {
    let mut locked: std::collections::BTreeMap<(String, String), Vec<&Candidate>> = Default::default();
    for candidate in candidates {
        match lock_key(candidate) {
            Some(key) => locked.entry(key).or_default().push(candidate),
            None => insert_notification(connection, &candidate.notification).await?,
        }
    }
    for ((_, subject), mut group) in locked {
        group.sort_by_key(|candidate| candidate.notification.created_at);
        let Some(first) = group.first() else { continue };
        let rule = first.notification.rule;
        if let Check::NewAdminAddress { user, .. } = &first.check {
            let admin = user_system_roles::Entity::find()
                .filter(user_system_roles::Column::UserId.eq(*user))
                .count(connection)
                .await
                .map_err(db)?
                > 0;
            if !admin {
                continue;
            }
        }
        let row = locked_counter(connection, rule, &subject, first.notification.created_at).await?;
        let (mut recent, mut known): (Recent, Vec<String>) = match &first.check {
            Check::NewAdminAddress { .. } => (
                Recent::default(),
                row.data
                    .clone()
                    .and_then(|data| serde_json::from_value(data).ok())
                    .unwrap_or_default(),
            ),
            _ => (
                row.data
                    .clone()
                    .and_then(|data| serde_json::from_value(data).ok())
                    .unwrap_or_default(),
                Vec::new(),
            ),
        };
        let mut last_seen = row.since;
        for candidate in group {
            let note = &candidate.notification;
            last_seen = last_seen.max(note.created_at);
            let raised = match &candidate.check {
                Check::Count {
                    threshold, window, ..
                } => recent.observe(note.created_at, *window, *threshold),
                Check::NewAdminAddress { address, .. } => {
                    if known.iter().any(|seen| seen == address) {
                        false
                    } else {
                        // An admin's very first sign-in has no "usual" address to differ from.
                        let first = known.is_empty();
                        known.push(address.clone());
                        if known.len() > KNOWN_ADDRESSES {
                            known.remove(0);
                        }
                        !first
                    }
                }
                Check::Always => true,
            };
            if raised {
                insert_notification(connection, note).await?;
            }
        }
        let (count, data) = if known.is_empty() {
            (recent.at.len(), json!(recent))
        } else {
            (known.len(), json!(known))
        };
        notification_counters::Entity::update_many()
            .col_expr(
                notification_counters::Column::Count,
                Expr::value(i32::try_from(count).unwrap_or(i32::MAX)),
            )
            .col_expr(notification_counters::Column::Since, Expr::value(last_seen))
            .col_expr(notification_counters::Column::Data, Expr::value(Some(data)))
            .filter(notification_counters::Column::Id.eq(row.id))
            .exec(connection)
            .await
            .map_err(db)?;
    }
    Ok(())
}

fn visible(viewer: &NotificationViewer) -> Condition {
    if viewer.sees_all {
        Condition::all()
    } else if viewer.organizations.is_empty() {
        // Nothing: ids are never null.
        Condition::all().add(notifications::Column::Id.is_null())
    } else {
        Condition::all().add(notifications::Column::OrganizationId.is_in(viewer.organizations.clone()))
    }
}

fn read_by(user: Uuid) -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .column(notification_reads::Column::NotificationId)
        .from(notification_reads::Entity)
        .and_where(notification_reads::Column::UserId.eq(user))
        .to_owned()
}

fn preferences(row: Option<notification_preferences::Model>) -> Preferences {
    row.map_or_else(Preferences::default, |row| Preferences {
        email_enabled: row.email_enabled,
        email_threshold: Severity::parse(&row.email_threshold).unwrap_or(Severity::Medium),
        muted_rules: serde_json::from_value::<Vec<String>>(row.muted_rules)
            .unwrap_or_default()
            .iter()
            .filter_map(|rule| Rule::parse(rule))
            .collect(),
    })
}

impl NotificationStore for Database {
    async fn notifications(
        &self,
        viewer: &NotificationViewer,
        filter: &NotificationFilter,
        page: PageRequest,
    ) -> Result<(Vec<NotificationView>, u64), RepositoryError> {
        let mut select = notifications::Entity::find().filter(visible(viewer));
        match filter.unread {
            Some(true) => {
                select = select.filter(notifications::Column::Id.not_in_subquery(read_by(viewer.user)))
            }
            Some(false) => {
                select = select.filter(notifications::Column::Id.in_subquery(read_by(viewer.user)))
            }
            None => {}
        }
        if let Some(severity) = filter.severity {
            select = select.filter(notifications::Column::Severity.eq(severity.as_str()));
        }
        let total = select.clone().count(self.connection()).await.map_err(db)?;
        let rows = select
            .order_by_desc(notifications::Column::CreatedAt)
            .order_by_desc(notifications::Column::Id)
            .offset(page.offset())
            .limit(page.per_page())
            .all(self.connection())
            .await
            .map_err(db)?;
        let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
        let reads: std::collections::HashMap<Uuid, DateTime<Utc>> = notification_reads::Entity::find()
            .filter(notification_reads::Column::UserId.eq(viewer.user))
            .filter(notification_reads::Column::NotificationId.is_in(ids))
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(|read| (read.notification_id, read.read_at))
            .collect();
        let mut views = Vec::with_capacity(rows.len());
        for row in rows {
            let read_at = reads.get(&row.id).copied();
            views.push(NotificationView {
                notification: notification(row)?,
                read_at,
            });
        }
        Ok((views, total))
    }

    async fn notification(&self, id: Uuid) -> Result<Option<NotificationRecord>, RepositoryError> {
        notifications::Entity::find_by_id(id)
            .one(self.connection())
            .await
            .map_err(db)?
            .map(notification)
            .transpose()
    }

    async fn mark_read(&self, user: Uuid, id: Uuid, at: DateTime<Utc>) -> Result<(), RepositoryError> {
        notification_reads::Entity::insert(notification_reads::ActiveModel {
            id: Set(Uuid::now_v7()),
            notification_id: Set(id),
            user_id: Set(user),
            read_at: Set(at),
        })
        .on_conflict(
            OnConflict::columns([
                notification_reads::Column::NotificationId,
                notification_reads::Column::UserId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(self.writer())
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn mark_all_read(
        &self,
        viewer: &NotificationViewer,
        at: DateTime<Utc>,
    ) -> Result<u64, RepositoryError> {
        let unread: Vec<Uuid> = notifications::Entity::find()
            .select_only()
            .column(notifications::Column::Id)
            .filter(visible(viewer))
            .filter(notifications::Column::Id.not_in_subquery(read_by(viewer.user)))
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        let transaction = self.begin_write().await.map_err(db)?;
        for chunk in unread.chunks(500) {
            notification_reads::Entity::insert_many(chunk.iter().map(|id| notification_reads::ActiveModel {
                id: Set(Uuid::now_v7()),
                notification_id: Set(*id),
                user_id: Set(viewer.user),
                read_at: Set(at),
            }))
            .on_conflict(
                OnConflict::columns([
                    notification_reads::Column::NotificationId,
                    notification_reads::Column::UserId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&transaction)
            .await
            .map_err(db)?;
        }
        transaction.commit().await.map_err(db)?;
        Ok(u64::try_from(unread.len()).unwrap_or(u64::MAX))
    }

    async fn unread_count(&self, viewer: &NotificationViewer) -> Result<u64, RepositoryError> {
        notifications::Entity::find()
            .filter(visible(viewer))
            .filter(notifications::Column::Id.not_in_subquery(read_by(viewer.user)))
            .count(self.connection())
            .await
            .map_err(db)
    }

    async fn preferences(&self, user: Uuid) -> Result<Preferences, RepositoryError> {
        Ok(preferences(
            notification_preferences::Entity::find_by_id(user)
                .one(self.connection())
                .await
                .map_err(db)?,
        ))
    }

    async fn save_preferences(
        &self,
        user: Uuid,
        chosen: &Preferences,
        personal: Option<Option<&steward_domain::events::webhooks::WebhookRecord>>,
        audit: &AuditEntry,
    ) -> Result<(), RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let muted: Vec<&str> = chosen.muted_rules.iter().map(|rule| rule.as_str()).collect();
        notification_preferences::Entity::insert(notification_preferences::ActiveModel {
            user_id: Set(user),
            email_enabled: Set(chosen.email_enabled),
            email_threshold: Set(chosen.email_threshold.as_str().to_owned()),
            muted_rules: Set(json!(muted)),
            updated_at: Set(Utc::now()),
        })
        .on_conflict(
            OnConflict::column(notification_preferences::Column::UserId)
                .update_columns([
                    notification_preferences::Column::EmailEnabled,
                    notification_preferences::Column::EmailThreshold,
                    notification_preferences::Column::MutedRules,
                    notification_preferences::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&transaction)
        .await
        .map_err(db)?;
        if let Some(personal) = personal {
            let current: Vec<Uuid> = webhooks::Entity::find()
                .select_only()
                .column(webhooks::Column::Id)
                .filter(webhooks::Column::PersonalUserId.eq(user))
                .into_tuple()
                .all(&transaction)
                .await
                .map_err(db)?;
            if !current.is_empty() {
                webhook_deliveries::Entity::delete_many()
                    .filter(webhook_deliveries::Column::WebhookId.is_in(current.clone()))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
                webhooks::Entity::delete_many()
                    .filter(webhooks::Column::Id.is_in(current))
                    .exec(&transaction)
                    .await
                    .map_err(db)?;
            }
            if let Some(hook) = personal {
                crate::events::webhook_row(hook)
                    .insert(&transaction)
                    .await
                    .map_err(db)?;
            }
        }
        insert_audit_entry(&transaction, audit).await?;
        transaction.commit().await.map_err(db)
    }

    async fn unmailed_notifications(&self, limit: u64) -> Result<Vec<NotificationRecord>, RepositoryError> {
        notifications::Entity::find()
            .filter(notifications::Column::Mailed.eq(false))
            .order_by_asc(notifications::Column::CreatedAt)
            .order_by_asc(notifications::Column::Id)
            .limit(limit)
            .all(self.connection())
            .await
            .map_err(db)?
            .into_iter()
            .map(notification)
            .collect()
    }

    async fn operators(&self) -> Result<Vec<Operator>, RepositoryError> {
        let mut by_user: std::collections::BTreeMap<Uuid, (Vec<String>, Vec<Uuid>)> = Default::default();
        let roles: Vec<(Uuid, String)> = user_system_roles::Entity::find()
            .select_only()
            .column(user_system_roles::Column::UserId)
            .column(user_system_roles::Column::Role)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        for (user, role) in roles {
            by_user.entry(user).or_default().0.push(role);
        }
        let managers: Vec<(Uuid, Uuid, String)> = org_users::Entity::find()
            .select_only()
            .column(org_users::Column::UserId)
            .column(org_users::Column::OrganizationId)
            .column(org_users::Column::Role)
            .into_tuple()
            .all(self.connection())
            .await
            .map_err(db)?;
        for (user, organization, role) in managers {
            if OrgRole::parse(&role).is_some_and(|role| role.allows(OrgPermission::Manage)) {
                by_user.entry(user).or_default().1.push(organization);
            }
        }
        let ids: Vec<Uuid> = by_user.keys().copied().collect();
        let mut operators = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let accounts = users::Entity::find()
                .filter(users::Column::Id.is_in(chunk.to_vec()))
                .filter(users::Column::Status.eq(STATUS_ACTIVE))
                .filter(users::Column::DeletedAt.is_null())
                .all(self.connection())
                .await
                .map_err(db)?;
            let personal: std::collections::HashMap<Uuid, Uuid> = webhooks::Entity::find()
                .filter(webhooks::Column::PersonalUserId.is_in(chunk.to_vec()))
                .filter(webhooks::Column::Enabled.eq(true))
                .all(self.connection())
                .await
                .map_err(db)?
                .into_iter()
                .filter_map(|hook| hook.personal_user_id.map(|user| (user, hook.id)))
                .collect();
            let chosen: std::collections::HashMap<Uuid, notification_preferences::Model> =
                notification_preferences::Entity::find()
                    .filter(notification_preferences::Column::UserId.is_in(chunk.to_vec()))
                    .all(self.connection())
                    .await
                    .map_err(db)?
                    .into_iter()
                    .map(|row| (row.user_id, row))
                    .collect();
            for account in accounts {
                let (roles, organizations) = by_user.remove(&account.id).unwrap_or_default();
                operators.push(Operator {
                    user: account.id,
                    email: account.email,
                    display_name: account.display_name,
                    locale: account.locale,
                    roles,
                    organizations,
                    preferences: preferences(chosen.get(&account.id).cloned()),
                    webhook: personal.get(&account.id).copied(),
                });
            }
        }
        Ok(operators)
    }

    async fn record_mailing(
        &self,
        ids: &[Uuid],
        mail: &[OutgoingMail],
        deliveries: &[steward_domain::events::webhooks::DeliveryRecord],
    ) -> Result<bool, RepositoryError> {
        let transaction = self.begin_write().await.map_err(db)?;
        let mut marked = 0;
        for chunk in ids.chunks(500) {
            marked += notifications::Entity::update_many()
                .col_expr(notifications::Column::Mailed, Expr::value(true))
                .filter(notifications::Column::Id.is_in(chunk.to_vec()))
                .filter(notifications::Column::Mailed.eq(false))
                .exec(&transaction)
                .await
                .map_err(db)?
                .rows_affected;
        }
        if marked != u64::try_from(ids.len()).unwrap_or(u64::MAX) {
            transaction.rollback().await.map_err(db)?;
            return Ok(false);
        }
        for message in mail {
            crate::accounts::insert_mail(&transaction, message).await?;
        }
        for chunk in deliveries.chunks(500) {
            webhook_deliveries::Entity::insert_many(chunk.iter().map(crate::events::delivery_row))
                .exec_without_returning(&transaction)
                .await
                .map_err(db)?;
        }
        transaction.commit().await.map_err(db)?;
        Ok(true)
    }
}
