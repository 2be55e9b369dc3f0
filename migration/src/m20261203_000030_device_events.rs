//! Device events: what devices report and what Steward did to them, numbered in arrival order
//! (`seq`), searchable (FTS5 on SQLite, a `tsvector` index on PostgreSQL), written for changes
//! to a device by a trigger on `audit_logs` (so every use case that audits a device also tells
//! its story), announced on PostgreSQL with `NOTIFY steward_device_events` carrying the range
//! of arrival numbers one statement stored. Batches' `Idempotency-Key`s are remembered a day;
//! an organization may set its own retention.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The audit entries that are also server events: every change of a device or one of its
/// commands (the catalog's own entries are not a device's).
const SERVER_EVENT_WHEN: &str =
    "NEW.resource_type IN ('device', 'device_command') AND NEW.resource_id IS NOT NULL";

/// A UUID blob as SQLite text, hyphenated (NULL stays NULL).
fn sqlite_uuid_text(column: &str) -> String {
    let hex = format!("lower(hex({column}))");
    format!(
        "CASE WHEN {column} IS NULL THEN NULL ELSE substr({hex}, 1, 8) || '-' || substr({hex}, 9, 4) || '-' || \
         substr({hex}, 13, 4) || '-' || substr({hex}, 17, 4) || '-' || substr({hex}, 21) END"
    )
}

/// The severity of a server event by its audit action, as this migration set it (migration 31
/// adds `settings.non_compliant`).
pub(crate) const SEVERITY: &str = "CASE WHEN NEW.action = 'device.wipe_requested' THEN 'critical' \
     WHEN NEW.action IN ('device.suspended', 'device.retired', 'settings.unlock_requested') THEN 'warning' \
     ELSE 'info' END";

/// SQLite's trigger turning a device's audit entry into its server event.
pub(crate) fn sqlite_server_event_trigger(severity: &str) -> String {
    format!(
        "CREATE TRIGGER audit_logs_device_events AFTER INSERT ON audit_logs \
         WHEN {SERVER_EVENT_WHEN} BEGIN \
         INSERT INTO device_events (id, device_id, organization_id, owner_user_id, source, type, severity, \
         summary, data, occurred_at, received_at) \
         SELECT NEW.id, d.id, coalesce(NEW.organization_id, d.organization_id), d.owner_user_id, 'server', \
         NEW.action, {severity}, NULL, json_object('auditId', {audit}, 'actorKind', NEW.actor_kind, 'actorId', {actor}, \
         'before', json(NEW.before), 'after', json(NEW.after)), NEW.occurred_at, NEW.occurred_at \
         FROM devices d WHERE d.id = CASE WHEN NEW.resource_type = 'device' \
         THEN unhex(replace(NEW.resource_id, '-', '')) \
         ELSE (SELECT c.device_id FROM device_commands c WHERE c.id = unhex(replace(NEW.resource_id, '-', ''))) \
         END; END",
        audit = sqlite_uuid_text("NEW.id"),
        actor = sqlite_uuid_text("NEW.actor_id"),
    )
}

/// PostgreSQL's trigger function turning a device's audit entry into its server event.
pub(crate) fn postgres_server_event_function(severity: &str) -> String {
    format!(
        "CREATE OR REPLACE FUNCTION audit_logs_device_events() RETURNS trigger LANGUAGE plpgsql AS $$ \
         DECLARE target uuid; \
         BEGIN IF {SERVER_EVENT_WHEN} \
         AND NEW.resource_id ~ '^[0-9a-fA-F]{{8}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{4}}-[0-9a-fA-F]{{12}}$' THEN \
         target := NEW.resource_id::uuid; \
         IF NEW.resource_type = 'device_command' THEN \
         SELECT c.device_id INTO target FROM device_commands c WHERE c.id = target; END IF; \
         INSERT INTO device_events (id, device_id, organization_id, owner_user_id, source, type, severity, \
         summary, data, occurred_at, received_at) \
         SELECT NEW.id, d.id, coalesce(NEW.organization_id, d.organization_id), d.owner_user_id, 'server', \
         NEW.action, {severity}, NULL, json_build_object('auditId', NEW.id, 'actorKind', NEW.actor_kind, 'actorId', NEW.actor_id, \
         'before', NEW.before, 'after', NEW.after)::text, NEW.occurred_at, NEW.occurred_at \
         FROM devices d WHERE d.id = target; \
         END IF; RETURN NULL; END $$"
    )
}

fn sqlite_up() -> Vec<String> {
    vec![
        "CREATE TABLE device_events (\
         seq INTEGER PRIMARY KEY AUTOINCREMENT, \
         id uuid_text NOT NULL, \
         device_id uuid_text NOT NULL REFERENCES devices (id) ON DELETE CASCADE ON UPDATE CASCADE, \
         organization_id uuid_text NULL REFERENCES organizations (id) ON DELETE SET NULL, \
         owner_user_id uuid_text NULL, \
         source varchar NOT NULL, type varchar NOT NULL, severity varchar NOT NULL, \
         summary text NULL, data text NOT NULL, \
         occurred_at timestamp_with_timezone_text NOT NULL, \
         received_at timestamp_with_timezone_text NOT NULL)"
            .to_owned(),
        "CREATE VIRTUAL TABLE device_events_fts USING fts5(type, summary, data, \
         content='device_events', content_rowid='seq', tokenize='unicode61 remove_diacritics 0')"
            .to_owned(),
        "CREATE TRIGGER device_events_fts_insert AFTER INSERT ON device_events BEGIN \
         INSERT INTO device_events_fts (rowid, type, summary, data) \
         VALUES (NEW.seq, NEW.type, NEW.summary, NEW.data); END"
            .to_owned(),
        "CREATE TRIGGER device_events_fts_delete AFTER DELETE ON device_events BEGIN \
         INSERT INTO device_events_fts (device_events_fts, rowid, type, summary, data) \
         VALUES ('delete', OLD.seq, OLD.type, OLD.summary, OLD.data); END"
            .to_owned(),
        sqlite_server_event_trigger(SEVERITY),
    ]
}

fn postgres_up() -> Vec<String> {
    vec![
        "CREATE TABLE device_events (\
         seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
         id uuid NOT NULL, \
         device_id uuid NOT NULL REFERENCES devices (id) ON DELETE CASCADE ON UPDATE CASCADE, \
         organization_id uuid NULL REFERENCES organizations (id) ON DELETE SET NULL, \
         owner_user_id uuid NULL, \
         source varchar NOT NULL, type varchar NOT NULL, severity varchar NOT NULL, \
         summary text NULL, data text NOT NULL, \
         occurred_at timestamptz NOT NULL, received_at timestamptz NOT NULL)"
            .to_owned(),
        "CREATE INDEX idx_device_events_search ON device_events USING gin (to_tsvector('simple', \
         regexp_replace(type || ' ' || coalesce(summary, '') || ' ' || data, '[^[:alnum:]]+', ' ', 'g')))"
            .to_owned(),
        "CREATE OR REPLACE FUNCTION device_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$ \
         DECLARE low bigint; high bigint; \
         BEGIN SELECT min(seq), max(seq) INTO low, high FROM inserted; \
         IF low IS NOT NULL THEN PERFORM pg_notify('steward_device_events', low::text || '-' || high::text); \
         END IF; RETURN NULL; END $$"
            .to_owned(),
        "CREATE TRIGGER device_events_notify AFTER INSERT ON device_events \
         REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION device_events_notify()"
            .to_owned(),
        postgres_server_event_function(SEVERITY),
        "CREATE TRIGGER audit_logs_device_events AFTER INSERT ON audit_logs \
         FOR EACH ROW EXECUTE FUNCTION audit_logs_device_events()"
            .to_owned(),
    ]
}

const COMMON_UP: [&str; 7] = [
    "CREATE INDEX idx_device_events_device ON device_events (device_id, occurred_at, seq)",
    "CREATE INDEX idx_device_events_organization ON device_events (organization_id, occurred_at, seq)",
    // A reconnecting stream's replay: what arrived after a number, in one scope.
    "CREATE INDEX idx_device_events_device_seq ON device_events (device_id, seq)",
    "CREATE INDEX idx_device_events_organization_seq ON device_events (organization_id, seq)",
    "CREATE INDEX idx_device_events_occurred_at ON device_events (occurred_at)",
    "CREATE TABLE device_event_batches (device_id uuid_text NOT NULL, idempotency_key varchar NOT NULL, \
     fingerprint varchar NOT NULL, answer text NOT NULL, created_at timestamp_with_timezone_text NOT NULL, \
     PRIMARY KEY (device_id, idempotency_key))",
    "CREATE INDEX idx_device_event_batches_created_at ON device_event_batches (created_at)",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let backend = manager.get_database_backend();
        let statements = match backend {
            DatabaseBackend::Sqlite => sqlite_up(),
            _ => postgres_up(),
        };
        for statement in statements {
            connection.execute_unprepared(&statement).await?;
        }
        for statement in COMMON_UP {
            let statement = if backend == DatabaseBackend::Postgres {
                statement
                    .replace("uuid_text", "uuid")
                    .replace("timestamp_with_timezone_text", "timestamptz")
            } else {
                statement.to_owned()
            };
            connection.execute_unprepared(&statement).await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("organizations")
                    .add_column(ColumnDef::new("event_retention_days").integer().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let connection = manager.get_connection();
        let statements: &[&str] = match manager.get_database_backend() {
            DatabaseBackend::Sqlite => &[
                "DROP TRIGGER IF EXISTS audit_logs_device_events",
                "DROP TRIGGER IF EXISTS device_events_fts_insert",
                "DROP TRIGGER IF EXISTS device_events_fts_delete",
                "DROP TABLE IF EXISTS device_events_fts",
            ],
            _ => &[
                "DROP TRIGGER IF EXISTS audit_logs_device_events ON audit_logs",
                "DROP FUNCTION IF EXISTS audit_logs_device_events()",
            ],
        };
        for statement in statements {
            connection.execute_unprepared(statement).await?;
        }
        connection
            .execute_unprepared("DROP TABLE IF EXISTS device_event_batches")
            .await?;
        connection
            .execute_unprepared("DROP TABLE IF EXISTS device_events")
            .await?;
        if manager.get_database_backend() == DatabaseBackend::Postgres {
            connection
                .execute_unprepared("DROP FUNCTION IF EXISTS device_events_notify()")
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("organizations")
                    .drop_column("event_retention_days")
                    .to_owned(),
            )
            .await
    }
}
