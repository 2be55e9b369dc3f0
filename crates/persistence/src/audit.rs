//! The audit writer: store methods insert entries on the transaction that makes the change, so
//! they commit and roll back with the change they describe. Every entry gets its row in the
//! event outbox in the same statement batch, so webhooks and notification rules hear of exactly
//! what committed.

use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use steward_domain::{AuditEntry, AuditRecorder, RepositoryError};
use uuid::Uuid;

use crate::entities::{audit_logs, device_commands, devices};
use crate::error::db_err_to_repository;

/// For events that change nothing else (a failed sign-in, a rendered QR code).
impl AuditRecorder for crate::Database {
    async fn record(&self, entry: &AuditEntry) -> Result<(), RepositoryError> {
        // The entry and its outbox row commit together.
        // Reads (the entry's organization), then writes: on SQLite the write lock comes first.
        // A frequent small write (a failed sign-in, a device's report): grouped with the others
        // waiting on SQLite's one writer.
        let entry = entry.clone();
        self.write_grouped(move |transaction| {
            let entry = entry.clone();
            Box::pin(async move { insert_audit_entry(transaction, &entry).await })
        })
        .await
    }
}

fn audit_row(entry: &AuditEntry) -> audit_logs::ActiveModel {
    audit_logs::ActiveModel {
        id: Set(entry.id),
        occurred_at: Set(entry.occurred_at),
        actor_kind: Set(entry.actor.kind.as_str().to_owned()),
        actor_id: Set(entry.actor.id),
        action: Set(entry.action.as_str().to_owned()),
        resource_type: Set(entry.resource_type.clone()),
        resource_id: Set(entry.resource_id.clone()),
        organization_id: Set(entry.organization_id),
        before: Set(entry.before.clone()),
        after: Set(entry.after.clone()),
        ip_address: Set(entry.origin.ip_address.clone()),
        user_agent: Set(entry.origin.user_agent.clone()),
        request_id: Set(entry.origin.request_id.clone()),
        chain_seq: Set(None),
        chain_hash: Set(None),
        session_id: Set(entry.origin.session.get()),
    }
}

/// An entry about a device or a device command belongs to the device's organization, if it
/// has one: filled in here so no writer can forget it and `?organizationId=` finds them all.
async fn with_organization(
    connection: &impl ConnectionTrait,
    entry: &AuditEntry,
) -> Result<Option<Uuid>, RepositoryError> {
    if entry.organization_id.is_some() {
        return Ok(entry.organization_id);
    }
    let Some(id) = entry
        .resource_id
        .as_deref()
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        return Ok(None);
    };
    let organization = match entry.resource_type.as_str() {
        "device" => devices::Entity::find_by_id(id)
            .one(connection)
            .await
            .map_err(db_err_to_repository)?
            .and_then(|device| device.organization_id),
        "device_command" => device_commands::Entity::find_by_id(id)
            .one(connection)
            .await
            .map_err(db_err_to_repository)?
            .and_then(|command| command.organization_id),
        _ => None,
    };
    Ok(organization)
}

/// Many entries in few statements (bulk imports audit every record), each with its outbox row
/// (written by the trigger)
/// (the caller's transaction makes them one write).
pub(crate) async fn insert_audit_entries(
    connection: &impl ConnectionTrait,
    mut entries: Vec<AuditEntry>,
) -> Result<(), RepositoryError> {
    for entry in &mut entries {
        entry.organization_id = with_organization(connection, entry).await?;
    }
    for chunk in entries.chunks(500) {
        // Each row's outbox row is written by the `audit_logs_outbox` trigger (migration 22).
        audit_logs::Entity::insert_many(chunk.iter().map(audit_row))
            .exec_without_returning(connection)
            .await
            .map_err(db_err_to_repository)?;
    }
    Ok(())
}

pub(crate) async fn insert_audit_entry(
    connection: &impl ConnectionTrait,
    entry: &AuditEntry,
) -> Result<(), RepositoryError> {
    let mut row = audit_row(entry);
    row.organization_id = Set(with_organization(connection, entry).await?);
    audit_logs::Entity::insert(row)
        .exec_without_returning(connection)
        .await
        .map_err(db_err_to_repository)?;
    // Announced to webhooks and notification rules once the caller's transaction commits:
    // the `audit_logs_outbox` trigger (migration 22) writes its outbox row in the same INSERT.
    Ok(())
}
