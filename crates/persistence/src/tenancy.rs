//! Tenant isolation in the database (PostgreSQL row-level security).
//!
//! Every connection handed out by the pool first says whom it acts for, in three settings the
//! policies read: `app.user_id`, `app.org_ids` (comma-separated organization ids) and
//! `app.is_system` (`on` crosses tenants). Who that is comes from the task: a request starts as
//! the system (authentication reads credentials before anyone is known) and becomes its caller
//! once identified ([`act_for`]); background work, the CLI and start-up act as the system. The
//! settings are session settings written on every checkout, so no connection carries one
//! request's settings into another.
//!
//! [`report`] puts one policy ([`POLICY`]) on every organization-owned and per-account table
//! and forces it (the tables' owner is bound too), reads them, or takes them off.

use std::cell::RefCell;
use std::future::Future;

use sea_orm::sqlx;
use steward_domain::tenancy::{RlsReport, RlsStatus, RlsTable, table_status};
use uuid::Uuid;

/// Whom the database work of a task acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenancy {
    /// Every tenant: background work, the CLI, start-up, and a request until its caller is known.
    System,
    /// A signed-in user: the organizations they belong to (as more than a `member`) and those
    /// managing a device they own or are assigned, or a device of someone in a group they
    /// manage (owner or admin): a brought-in phone obeys its organization's policies, which its
    /// owner and their family's managers read. Every tenant when they hold a system role. Read
    /// on the request's first checkout, so a change counts from the next request.
    User(Uuid),
    /// A device: its organization's rows (a managed device) and its owner's, read from
    /// `devices` on the request's first checkout.
    Device(Uuid),
}

/// A task's tenancy, and once a narrowed one was looked up, what it came to: later checkouts
/// of the same request write those values instead of looking them up again (about a
/// millisecond of the database's planning each).
struct Scope {
    tenancy: Tenancy,
    resolved: Option<Resolved>,
}

/// The settings a narrowed tenancy came to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resolved {
    user: String,
    org_ids: String,
    system: bool,
}

impl Scope {
    fn new(tenancy: Tenancy) -> RefCell<Self> {
        RefCell::new(Self {
            tenancy,
            resolved: None,
        })
    }
}

tokio::task_local! {
    static TENANCY: RefCell<Scope>;
}

/// Runs a request's `future` with a tenancy of its own, the system until [`act_for`] narrows it.
pub async fn in_request<F: Future>(future: F) -> F::Output {
    TENANCY.scope(Scope::new(Tenancy::System), future).await
}

/// From now on this request's database work acts for `tenancy` (no effect outside a request).
pub fn act_for(tenancy: Tenancy) {
    let _ = TENANCY.try_with(|current| {
        let mut current = current.borrow_mut();
        if current.tenancy != tenancy {
            *current = Scope {
                tenancy,
                resolved: None,
            };
        }
    });
}

/// Runs `future` as the system: for the few writes a caller makes where they do not belong yet
/// (accepting an invitation into an organization, enrolling with a token).
pub async fn as_system<F: Future>(future: F) -> F::Output {
    TENANCY.scope(Scope::new(Tenancy::System), future).await
}

/// Whom this task acts for now.
pub fn current() -> Tenancy {
    TENANCY
        .try_with(|current| current.borrow().tenancy.clone())
        .unwrap_or(Tenancy::System)
}

fn resolved() -> Option<Resolved> {
    TENANCY
        .try_with(|current| current.borrow().resolved.clone())
        .ok()
        .flatten()
}

fn remember(tenancy: &Tenancy, resolved: Resolved) {
    let _ = TENANCY.try_with(|current| {
        let mut current = current.borrow_mut();
        if current.tenancy == *tenancy {
            current.resolved = Some(resolved);
        }
    });
}

/// A SQL string literal of `text` (quotes doubled); the values are ids the database formatted.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The one statement writing settings already looked up.
fn resolved_sql(resolved: &Resolved) -> String {
    format!(
        "SELECT set_config('app.user_id', {}, false), set_config('app.org_ids', {}, false), \
         set_config('app.is_system', '{}', false)",
        literal(&resolved.user),
        literal(&resolved.org_ids),
        if resolved.system { "on" } else { "off" }
    )
}

/// The statements that tell a connection whom it acts for: one round trip (the simple query
/// protocol runs both of a user's statements at once). Ids are formatted by `Uuid`, never text
/// from a request.
pub(crate) fn settings_sql(tenancy: &Tenancy) -> String {
    // A narrowed caller's organizations are read as the system (the first statement), and the
    // last statement decides `app.is_system`; a failure in between closes the connection.
    const SYSTEM_FIRST: &str = "SELECT set_config('app.is_system', 'on', false), ";
    match tenancy {
        Tenancy::System => format!(
            "{SYSTEM_FIRST}set_config('app.user_id', '', false), set_config('app.org_ids', '', false)"
        ),
        Tenancy::User(user) => format!(
            "{SYSTEM_FIRST}set_config('app.user_id', '{user}', false), set_config('app.org_ids', '', false); \
             SELECT set_config('app.org_ids', coalesce((SELECT string_agg(organization_id::text, ',') \
             FROM (SELECT organization_id FROM org_users WHERE user_id = '{user}' AND role <> 'member' UNION \
             SELECT organization_id FROM devices WHERE organization_id IS NOT NULL AND \
             (owner_user_id = '{user}' OR assigned_user_id = '{user}') UNION \
             SELECT d.organization_id FROM group_memberships mine \
             JOIN groups g ON g.id = mine.group_id AND g.deleted_at IS NULL \
             JOIN group_memberships theirs ON theirs.group_id = mine.group_id \
             JOIN devices d ON d.owner_user_id = theirs.user_id \
             WHERE mine.user_id = '{user}' AND mine.role IN ('owner', 'admin') \
             AND d.organization_id IS NOT NULL) AS related), ''), false); \
             SELECT set_config('app.is_system', CASE WHEN EXISTS (SELECT 1 FROM user_system_roles \
             WHERE user_id = '{user}') THEN 'on' ELSE 'off' END, false)"
        ),
        Tenancy::Device(device) => format!(
            "{SYSTEM_FIRST}set_config('app.user_id', '', false), set_config('app.org_ids', '', false); \
             SELECT set_config('app.user_id', coalesce((SELECT owner_user_id::text FROM devices \
             WHERE id = '{device}'), ''), false), set_config('app.org_ids', coalesce((SELECT \
             organization_id::text FROM devices WHERE id = '{device}'), ''), false); \
             SELECT set_config('app.is_system', 'off', false)"
        ),
    }
}

/// Writes the current task's tenancy into `connection` (each checkout and each new
/// connection): the system's in one constant statement; a narrowed caller's looked up once per
/// request (one round trip) and written as constants after that.
pub(crate) async fn apply(connection: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    use sqlx::{Executor, Row};
    let tenancy = current();
    if tenancy == Tenancy::System {
        return connection
            .execute(sqlx::AssertSqlSafe(settings_sql(&tenancy)))
            .await
            .map(|_| ());
    }
    if let Some(resolved) = resolved() {
        return connection
            .execute(sqlx::AssertSqlSafe(resolved_sql(&resolved)))
            .await
            .map(|_| ());
    }
    let sql = format!(
        "{}; SELECT current_setting('app.user_id') AS user_id, current_setting('app.org_ids') AS org_ids, \
         current_setting('app.is_system') AS is_system",
        settings_sql(&tenancy)
    );
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .fetch_all(&mut *connection)
        .await?;
    if let Some(row) = rows.last() {
        let resolved = Resolved {
            user: row.try_get("user_id")?,
            org_ids: row.try_get("org_ids")?,
            system: row.try_get::<String, _>("is_system")? == "on",
        };
        remember(&tenancy, resolved);
    }
    Ok(())
}

/// The policy's name; a new version of the rule gets a new name, so an enable replaces an old one.
pub const POLICY: &str = "steward_tenant_v3";

const SYSTEM: &str = "(SELECT coalesce(current_setting('app.is_system', true), '') = 'on')";
const ORGS: &str = "(SELECT string_to_array(nullif(btrim(coalesce(current_setting('app.org_ids', true), ''), '{} '), ''), ',')::uuid[])";
const USER: &str = "(SELECT nullif(current_setting('app.user_id', true), '')::uuid)";

/// How a table's rows belong to an organization.
enum Owner {
    /// Its `organization_id`; `nullable`: rows without one (personal, instance-wide) stay
    /// visible, the application decides who reads them.
    Column { nullable: bool },
    /// `org_users`: also the caller's own memberships (how a user's organizations are found).
    Memberships,
    /// `devices`: also the devices the caller owns or is assigned.
    Devices,
    /// An organization's, or with none a person's (`person`: the column naming them; a row
    /// with neither is the instance's, visible to all): API keys and personal access tokens,
    /// webhooks, jobs.
    OrgOrPerson { person: &'static str },
    /// One account's own (`column` naming it): second factors, preferences.
    Person { column: &'static str },
    /// One account's own, and readable by the organizations it belongs to (sessions, which an
    /// organization's dashboard counts).
    PersonInOrgs { column: &'static str },
    /// A refresh token: its session's account's alone (an organization that may count its
    /// users' sessions reads none of their tokens).
    OwnSession,
    /// Through the row it belongs to (`column` naming a row of `parent`, itself policed):
    /// visible and writable where that row is.
    Through {
        column: &'static str,
        parent: &'static str,
    },
}

/// Every organization-owned table and how it belongs.
const TABLES: [(&str, Owner); 41] = [
    ("org_users", Owner::Memberships),
    ("device_policies", Owner::Column { nullable: false }),
    ("enrollment_tokens", Owner::Column { nullable: false }),
    ("devices", Owner::Devices),
    ("device_commands", Owner::Column { nullable: true }),
    ("device_tokens", THROUGH_DEVICE),
    ("groups", Owner::Column { nullable: true }),
    ("audit_logs", Owner::Column { nullable: true }),
    ("device_events", Owner::Column { nullable: true }),
    ("api_keys", Owner::OrgOrPerson { person: "user_id" }),
    ("jobs", Owner::OrgOrPerson { person: "owner_id" }),
    ("notifications", Owner::Column { nullable: true }),
    ("quota_alerts", Owner::Column { nullable: false }),
    ("quota_spends", Owner::Column { nullable: false }),
    ("report_schedules", Owner::Column { nullable: true }),
    (
        "webhooks",
        Owner::OrgOrPerson {
            person: "personal_user_id",
        },
    ),
    ("unlock_requests", THROUGH_DEVICE),
    ("device_settings", THROUGH_DEVICE),
    ("device_transfers", THROUGH_DEVICE),
    ("push_notifications", THROUGH_DEVICE),
    ("device_event_batches", THROUGH_DEVICE),
    (
        "group_memberships",
        Owner::Through {
            column: "group_id",
            parent: "groups",
        },
    ),
    (
        "group_invites",
        Owner::Through {
            column: "group_id",
            parent: "groups",
        },
    ),
    (
        "webhook_deliveries",
        Owner::Through {
            column: "webhook_id",
            parent: "webhooks",
        },
    ),
    (
        "job_blobs",
        Owner::Through {
            column: "job_id",
            parent: "jobs",
        },
    ),
    (
        "report_runs",
        Owner::Through {
            column: "schedule_id",
            parent: "report_schedules",
        },
    ),
    (
        "report_recipients",
        Owner::Through {
            column: "schedule_id",
            parent: "report_schedules",
        },
    ),
    ("user_sessions", Owner::PersonInOrgs { column: "user_id" }),
    ("refresh_tokens", Owner::OwnSession),
    ("email_tokens", PERSON),
    ("password_history", PERSON),
    ("oauth_accounts", PERSON),
    ("user_mfa", PERSON),
    ("mfa_challenges", PERSON),
    ("mfa_recovery_codes", PERSON),
    ("mfa_exemptions", PERSON),
    ("user_system_roles", PERSON),
    ("user_role_overrides", PERSON),
    ("user_quotas", PERSON),
    ("notification_preferences", PERSON),
    ("notification_reads", PERSON),
];

const PERSON: Owner = Owner::Person { column: "user_id" };

const THROUGH_DEVICE: Owner = Owner::Through {
    column: "device_id",
    parent: "devices",
};

/// The organization-owned tables, in report order.
pub fn tables() -> Vec<&'static str> {
    TABLES.iter().map(|(table, _)| *table).collect()
}

fn predicate(table: &str, owner: &Owner) -> String {
    let in_orgs = format!("organization_id = ANY ({ORGS}::uuid[])");
    match owner {
        Owner::Column { nullable: false } => format!("{SYSTEM} OR {in_orgs}"),
        Owner::Column { nullable: true } => format!("organization_id IS NULL OR {SYSTEM} OR {in_orgs}"),
        Owner::Memberships => format!("{SYSTEM} OR {in_orgs} OR user_id = {USER}"),
        Owner::Devices => format!(
            "organization_id IS NULL OR {SYSTEM} OR {in_orgs} OR owner_user_id = {USER} OR assigned_user_id = {USER}"
        ),
        Owner::OrgOrPerson { person } => format!(
            "{SYSTEM} OR {in_orgs} OR (organization_id IS NULL AND ({person} IS NULL OR {person} = {USER}))"
        ),
        Owner::Person { column } => format!("{SYSTEM} OR {column} = {USER}"),
        Owner::OwnSession => format!(
            "{SYSTEM} OR EXISTS (SELECT 1 FROM user_sessions WHERE user_sessions.id = {table}.session_id \
             AND user_sessions.user_id = {USER})"
        ),
        Owner::PersonInOrgs { column } => format!(
            "{SYSTEM} OR {column} = {USER} OR {column} IN (SELECT org_users.user_id FROM org_users \
             WHERE org_users.organization_id = ANY ({ORGS}::uuid[]) AND EXISTS (SELECT 1 FROM org_users mine \
             WHERE mine.organization_id = org_users.organization_id AND mine.user_id = {USER} \
             AND mine.role IN ('owner', 'admin')))"
        ),
        Owner::Through { column, parent } => {
            format!("{SYSTEM} OR EXISTS (SELECT 1 FROM {parent} WHERE {parent}.id = {table}.{column})")
        }
    }
}

/// Which rows a connection may write (`WITH CHECK`): only into its organizations (or none).
/// Being the member or the device's owner lets a caller read a row, never move one into an
/// organization that is not theirs (a membership of their own in another organization, their
/// device handed to one).
fn check(table: &str, owner: &Owner) -> String {
    let in_orgs = format!("organization_id = ANY ({ORGS}::uuid[])");
    match owner {
        Owner::Memberships => format!("{SYSTEM} OR {in_orgs}"),
        Owner::Devices => format!("organization_id IS NULL OR {SYSTEM} OR {in_orgs}"),
        // An organization reads its users' sessions; only their own account writes them.
        Owner::PersonInOrgs { column } => predicate(table, &Owner::Person { column }),
        other => predicate(table, other),
    }
}

/// What one table is now.
struct TableState {
    exists: bool,
    enabled: bool,
    forced: bool,
    policies: Vec<String>,
    /// Steward's current policy is there, for every command.
    ours: bool,
}

impl TableState {
    /// Older versions of Steward's policy, and Steward's own when it is not for every command.
    fn stale(&self) -> Vec<&String> {
        self.policies
            .iter()
            .filter(|name| name.starts_with("steward_tenant") && (name.as_str() != POLICY || !self.ours))
            .collect()
    }

    /// Policies Steward did not make: PostgreSQL lets a row through when any permissive policy
    /// does, so each widens Steward's.
    fn foreign(&self) -> Vec<&String> {
        self.policies
            .iter()
            .filter(|name| !name.starts_with("steward_tenant"))
            .collect()
    }
}

async fn table_state(connection: &mut sqlx::PgConnection, table: &str) -> Result<TableState, sqlx::Error> {
    let row: Option<(bool, bool)> = sqlx::query_as(
        "SELECT c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relname = $1 AND n.nspname = current_schema() AND c.relkind = 'r'",
    )
    .bind(table)
    .fetch_optional(&mut *connection)
    .await?;
    let Some((enabled, forced)) = row else {
        return Ok(TableState {
            exists: false,
            enabled: false,
            forced: false,
            policies: Vec::new(),
            ours: false,
        });
    };
    let policies: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT policyname::text, cmd::text, permissive::text FROM pg_policies \
         WHERE schemaname = current_schema() AND tablename = $1 ORDER BY 1",
    )
    .bind(table)
    .fetch_all(&mut *connection)
    .await?;
    let ours = policies
        .iter()
        .any(|(name, cmd, permissive)| name == POLICY && cmd == "ALL" && permissive == "PERMISSIVE");
    Ok(TableState {
        exists: true,
        enabled,
        forced,
        policies: policies.into_iter().map(|(name, _, _)| name).collect(),
        ours,
    })
}

/// The statements turning `table`'s policy on (replacing older versions) or off.
fn change_sql(table: &str, owner: &Owner, state: &TableState, enable: bool) -> Vec<String> {
    let mut statements = vec!["SET LOCAL lock_timeout = '10s'".to_owned()];
    let drop: Vec<&String> = if enable {
        state.stale()
    } else {
        state
            .policies
            .iter()
            .filter(|name| name.starts_with("steward_tenant"))
            .collect()
    };
    statements.extend(
        drop.iter()
            .map(|name| format!("DROP POLICY \"{name}\" ON \"{table}\"")),
    );
    if enable {
        if !state.ours {
            statements.push(format!(
                "CREATE POLICY {POLICY} ON \"{table}\" FOR ALL USING ({}) WITH CHECK ({})",
                predicate(table, owner),
                check(table, owner)
            ));
        }
        if !state.enabled {
            statements.push(format!("ALTER TABLE \"{table}\" ENABLE ROW LEVEL SECURITY"));
        }
        if !state.forced {
            statements.push(format!("ALTER TABLE \"{table}\" FORCE ROW LEVEL SECURITY"));
        }
    } else {
        if state.forced {
            statements.push(format!("ALTER TABLE \"{table}\" NO FORCE ROW LEVEL SECURITY"));
        }
        if state.enabled {
            statements.push(format!("ALTER TABLE \"{table}\" DISABLE ROW LEVEL SECURITY"));
        }
    }
    statements
}

/// Reads (`change = None`) or changes every organization-owned table's row-level security
/// through `connection` (the schema owner's, to change anything); a statement the role may not
/// run makes its table's line a warning, never an error.
pub async fn report(
    connection: &mut sqlx::PgConnection,
    change: Option<bool>,
) -> Result<RlsReport, sqlx::Error> {
    use sqlx::Executor;
    // Instances starting together with enforcement on take turns: the second finds the
    // first's policies and changes nothing.
    if change.is_some() {
        connection.execute("SELECT pg_advisory_lock(7301815243)").await?;
    }
    let outcome = table_lines(connection, change).await;
    if change.is_some() {
        let _ = connection.execute("SELECT pg_advisory_unlock(7301815243)").await;
    }
    let tables = outcome?;
    let enforced = change != Some(false)
        && tables.iter().all(|table| {
            table.rls_enabled
                && table.forced
                && matches!(
                    table.status,
                    RlsStatus::Ok | RlsStatus::Changed | RlsStatus::Unchanged
                )
        });
    Ok(RlsReport {
        backend: "postgres".to_owned(),
        action: match change {
            None => "status",
            Some(true) => "enable",
            Some(false) => "disable",
        }
        .to_owned(),
        enforced,
        applies_to_server_role: None,
        warnings: Vec::new(),
        tables,
    })
}

async fn table_lines(
    connection: &mut sqlx::PgConnection,
    change: Option<bool>,
) -> Result<Vec<RlsTable>, sqlx::Error> {
    use sqlx::Executor;
    let mut tables = Vec::with_capacity(TABLES.len());
    for (table, owner) in &TABLES {
        let before = table_state(connection, table).await?;
        if !before.exists {
            tables.push(RlsTable {
                table: (*table).to_owned(),
                rls_enabled: false,
                forced: false,
                policies: Vec::new(),
                status: RlsStatus::Warning,
                message: Some("the table does not exist: run the migrations".to_owned()),
            });
            continue;
        }
        let current = before.ours && before.stale().is_empty();
        let (mut status, mut message) = table_status(change, before.enabled, before.forced, current);
        let mut after = before;
        if let Some(enable) = change
            && status == RlsStatus::Changed
        {
            // One transaction per table: a table is changed whole or not at all.
            let statements = change_sql(table, owner, &after, enable);
            let script = format!("BEGIN; {}; COMMIT", statements.join("; "));
            if let Err(error) = connection.execute(sqlx::AssertSqlSafe(script)).await {
                let _ = connection.execute("ROLLBACK").await;
                status = RlsStatus::Warning;
                message = Some(match &error {
                    sqlx::Error::Database(db) => db.message().to_owned(),
                    other => other.to_string(),
                });
            }
            after = table_state(connection, table).await?;
        }
        let foreign = after.foreign();
        if change != Some(false) && !foreign.is_empty() && status != RlsStatus::Warning {
            status = RlsStatus::Warning;
            message = Some(format!(
                "other policies on the table let rows through too (PostgreSQL allows a row any permissive policy allows): {}",
                foreign
                    .iter()
                    .map(|name| name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        tables.push(RlsTable {
            table: (*table).to_owned(),
            rls_enabled: after.enabled,
            forced: after.forced,
            policies: after.policies,
            status,
            message,
        });
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_narrowed_callers_settings_are_read_as_the_system_and_decided_last() {
        let user = Uuid::nil();
        let sql = settings_sql(&Tenancy::User(user));
        assert_eq!(sql.matches("SELECT set_config").count(), 3);
        assert!(sql.starts_with("SELECT set_config('app.is_system', 'on', false)"));
        assert!(sql.contains("FROM org_users WHERE user_id = '00000000-0000-0000-0000-000000000000'"));
        assert!(sql.trim_end().ends_with("THEN 'on' ELSE 'off' END, false)"));
        assert!(!settings_sql(&Tenancy::System).contains("'off'"));
        let device = settings_sql(&Tenancy::Device(user));
        assert!(device.contains("FROM devices WHERE id = '00000000-0000-0000-0000-000000000000'"));
        assert!(device.ends_with("SELECT set_config('app.is_system', 'off', false)"));
    }

    #[test]
    fn settings_looked_up_once_are_written_as_quoted_constants() {
        let sql = resolved_sql(&Resolved {
            user: "u'1".to_owned(),
            org_ids: "a,b".to_owned(),
            system: false,
        });
        assert!(
            sql.contains("'u''1'") && sql.contains("'a,b'") && sql.contains("'off'"),
            "{sql}"
        );
    }

    #[tokio::test]
    async fn a_request_narrows_its_own_tenancy_only() {
        assert_eq!(current(), Tenancy::System);
        let user = Uuid::new_v4();
        in_request(async {
            assert_eq!(current(), Tenancy::System);
            act_for(Tenancy::User(user));
            assert_eq!(current(), Tenancy::User(user));
            as_system(async { assert_eq!(current(), Tenancy::System) }).await;
            assert_eq!(current(), Tenancy::User(user));
        })
        .await;
        act_for(Tenancy::User(user));
        assert_eq!(current(), Tenancy::System);
    }

    #[test]
    fn every_policy_reads_the_settings_once_per_statement() {
        for (table, owner) in &TABLES {
            let predicate = predicate(table, owner);
            assert!(predicate.contains(SYSTEM), "{table}");
            assert!(
                !predicate.contains("current_setting('app.org_ids', true) ="),
                "{table}"
            );
        }
    }
}
