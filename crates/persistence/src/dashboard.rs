//! The dashboard's counts and the usage statistics: a few aggregate statements (one scan per
//! table with conditional sums, counts grouped by bucket over indexed time ranges), written in
//! SQL both backends run, with the bucket arithmetic spelled per backend.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend};
use steward_domain::RepositoryError;
use steward_domain::dashboard::{
    DashboardCounts, DashboardStore, DeviceCounts, Interval, JobCounts, LOCKOUT, SIGN_IN_FAILED, Scope,
    UserCounts, WebhookCounts, outside, rolled_days, truncate,
};
use uuid::Uuid;

use crate::database::Database;
use crate::error::db_err_to_repository as db;

use crate::audit_rollup::{day_counts, rolled_through};
use crate::sql::{Sql, all, count, one};

/// `AND <column> IN (the organization's members)`.
fn members(sql: &mut Sql, column: &str, organization: Uuid) {
    sql.push(&format!(
        " AND {column} IN (SELECT user_id FROM org_users WHERE organization_id = "
    ))
    .bind(organization)
    .push(")");
}

/// Accounts: one scan with conditional sums.
async fn users(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<UserCounts, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push("SELECT COUNT(*) AS total, SUM(CASE WHEN last_login_at >= ")
        .bind(now - Duration::hours(24))
        .push(" THEN 1 ELSE 0 END) AS active_24h, SUM(CASE WHEN last_login_at >= ")
        .bind(now - Duration::days(7))
        .push(" THEN 1 ELSE 0 END) AS active_7d, SUM(CASE WHEN last_login_at >= ")
        .bind(now - Duration::days(30))
        .push(
            " THEN 1 ELSE 0 END) AS active_30d, \
             SUM(CASE WHEN status = 'locked' THEN 1 ELSE 0 END) AS locked, \
             SUM(CASE WHEN email_verified_at IS NULL THEN 1 ELSE 0 END) AS unverified \
             FROM users WHERE deleted_at IS NULL",
        );
    if let Some(organization) = organization {
        members(&mut sql, "id", organization);
    }
    let row = one(connection, &sql).await?;
    Ok(UserCounts {
        total: count(&row, "total")?,
        active_24h: count(&row, "active_24h")?,
        active_7d: count(&row, "active_7d")?,
        active_30d: count(&row, "active_30d")?,
        locked: count(&row, "locked")?,
        unverified: count(&row, "unverified")?,
    })
}

async fn live_sessions(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<u64, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push("SELECT COUNT(*) AS n FROM user_sessions WHERE revoked_at IS NULL AND expires_at > ")
        .bind(now);
    if let Some(organization) = organization {
        members(&mut sql, "user_id", organization);
    }
    count(&one(connection, &sql).await?, "n")
}

/// Devices by status and platform, and how many are not compliant.
async fn devices(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
) -> Result<DeviceCounts, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    // Retired devices are counted under their own status and never as non-compliant; the
    // rule is the compliance endpoint's: the applied version is the current one and the
    // device reported no failures.
    sql.push(
        "SELECT CASE WHEN enrollment_status = 'retired' THEN 'retired' ELSE status END AS shown, \
         platform, COUNT(*) AS n, SUM(CASE WHEN enrollment_status <> 'retired' AND \
         (applied_settings_version IS NULL OR applied_settings_version <> settings_version \
         OR COALESCE(CAST(apply_failures AS TEXT), '[]') NOT IN ('[]', 'null')) THEN 1 ELSE 0 END) \
         AS non_compliant FROM devices",
    );
    if let Some(organization) = organization {
        sql.push(" WHERE organization_id = ").bind(organization);
    }
    sql.push(" GROUP BY shown, platform");
    let mut devices = DeviceCounts::default();
    for row in all(connection, &sql).await? {
        let n = count(&row, "n")?;
        let status: String = row.try_get("", "shown").map_err(db)?;
        let platform: Option<String> = row.try_get("", "platform").map_err(db)?;
        let platform = platform
            .filter(|platform| !platform.trim().is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        devices.total += n;
        devices.non_compliant += count(&row, "non_compliant")?;
        *devices.by_status.entry(status).or_default() += n;
        *devices.by_platform.entry(platform).or_default() += n;
    }
    Ok(devices)
}

async fn pending_unlock_requests(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
) -> Result<u64, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push(
        "SELECT COUNT(*) AS n FROM unlock_requests r JOIN devices d ON d.id = r.device_id \
         WHERE r.status = 'pending' AND d.enrollment_status <> 'retired'",
    );
    if let Some(organization) = organization {
        sql.push(" AND d.organization_id = ").bind(organization);
    }
    count(&one(connection, &sql).await?, "n")
}

async fn organizations(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
) -> Result<Option<u64>, RepositoryError> {
    if organization.is_some() {
        return Ok(None);
    }
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push("SELECT COUNT(*) AS n FROM organizations");
    Ok(Some(count(&one(connection, &sql).await?, "n")?))
}

async fn groups(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
) -> Result<u64, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push("SELECT COUNT(*) AS n FROM \"groups\" WHERE deleted_at IS NULL");
    if let Some(organization) = organization {
        sql.push(" AND organization_id = ").bind(organization);
    }
    count(&one(connection, &sql).await?, "n")
}

async fn jobs(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<JobCounts, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push(
        "SELECT SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS pending, \
         SUM(CASE WHEN status = 'running' THEN 1 ELSE 0 END) AS running, \
         SUM(CASE WHEN status = 'failed' AND finished_at >= ",
    )
    .bind(now - Duration::hours(24))
    .push(" THEN 1 ELSE 0 END) AS failed FROM jobs");
    if let Some(organization) = organization {
        sql.push(" WHERE organization_id = ").bind(organization);
    }
    let row = one(connection, &sql).await?;
    Ok(JobCounts {
        pending: count(&row, "pending")?,
        running: count(&row, "running")?,
        failed_24h: count(&row, "failed")?,
    })
}

async fn webhooks(
    connection: &impl ConnectionTrait,
    organization: Option<Uuid>,
) -> Result<WebhookCounts, RepositoryError> {
    let mut sql = Sql::new(connection.get_database_backend());
    sql.push(
        "SELECT COUNT(*) AS total, \
         SUM(CASE WHEN enabled AND consecutive_failures > 0 THEN 1 ELSE 0 END) AS failing, \
         SUM(CASE WHEN enabled THEN 0 ELSE 1 END) AS disabled FROM webhooks",
    );
    if let Some(organization) = organization {
        sql.push(" WHERE organization_id = ").bind(organization);
    }
    let row = one(connection, &sql).await?;
    Ok(WebhookCounts {
        total: count(&row, "total")?,
        failing: count(&row, "failing")?,
        disabled: count(&row, "disabled")?,
    })
}

/// `AND (…)`: an organization's entries, and its members' since they joined — by actor, or
/// (failed sign-ins and lockouts, which name the address tried, not an account) by address.
fn organization_entries(sql: &mut Sql, backend: DatabaseBackend, action: &str, organization: Uuid) {
    sql.push(" AND (organization_id = ")
        .bind(organization)
        .push(
            " OR EXISTS (SELECT 1 FROM org_users ou WHERE ou.user_id = audit_logs.actor_id \
             AND ou.created_at <= audit_logs.occurred_at AND ou.organization_id = ",
        )
        .bind(organization)
        .push(")");
    if [SIGN_IN_FAILED, LOCKOUT].contains(&action) {
        let email = if backend == DatabaseBackend::Postgres {
            "(audit_logs.after ->> 'email')"
        } else {
            "json_extract(audit_logs.after, '$.email')"
        };
        sql.push(&format!(
            " OR EXISTS (SELECT 1 FROM users u JOIN org_users ou ON ou.user_id = u.id \
             WHERE u.email = {email} AND ou.created_at <= audit_logs.occurred_at \
             AND ou.organization_id = "
        ))
        .bind(organization)
        .push(")");
    }
    sql.push(")");
}

impl DashboardStore for Database {
    /// The figures' statements run at once, on connections of their own (the pool's readers).
    async fn dashboard_counts(
        &self,
        scope: Scope,
        now: DateTime<Utc>,
    ) -> Result<DashboardCounts, RepositoryError> {
        let connection = self.connection();
        let organization = scope.organization();
        let (users, live_sessions, mut devices, pending, organizations, groups, jobs, webhooks) = tokio::try_join!(
            users(connection, organization, now),
            live_sessions(connection, organization, now),
            devices(connection, organization),
            pending_unlock_requests(connection, organization),
            organizations(connection, organization),
            groups(connection, organization),
            jobs(connection, organization, now),
            webhooks(connection, organization),
        )?;
        devices.pending_unlock_requests = pending;
        Ok(DashboardCounts {
            users,
            live_sessions,
            devices,
            organizations,
            groups,
            jobs,
            webhooks,
        })
    }

    /// One statement per action: the window's buckets as a list of bounds, each counted with
    /// an index range count on `(action, occurred_at)` — no date arithmetic and no sort per
    /// row, which over a year of a million entries took seconds.
    async fn audit_counts(
        &self,
        actions: &[&str],
        scope: Scope,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        interval: Interval,
    ) -> Result<Vec<(String, DateTime<Utc>, u64)>, RepositoryError> {
        let mut starts = Vec::new();
        let mut at = truncate(from, interval);
        while at < to {
            starts.push(at);
            match at.checked_add_signed(Duration::seconds(interval.seconds())) {
                Some(next) => at = next,
                None => break,
            }
        }
        if actions.is_empty() || starts.is_empty() {
            return Ok(Vec::new());
        }
        let connection = self.connection();
        let backend = connection.get_database_backend();
        // The whole system's day and week buckets read whole days from the daily rollup (an
        // organization's view depends on who is a member now, so it is always counted).
        let rolled = if scope == Scope::System && interval != Interval::Hour {
            rolled_days(from, to, rolled_through(connection).await?)
        } else {
            None
        };
        let width = Duration::seconds(interval.seconds());
        let mut counted = Vec::new();
        for action in actions {
            let mut sums = vec![0u64; starts.len()];
            let mut sql = Sql::new(backend);
            let mut parts = 0;
            for (index, start) in starts.iter().enumerate() {
                let upper = (*start + width).min(to);
                for (lower, upper) in outside((*start).max(from), upper, rolled) {
                    sql.push(if parts == 0 {
                        "WITH bounds (k, lower, upper) AS (VALUES ("
                    } else {
                        ", ("
                    })
                    .push(&index.to_string())
                    .push(", ")
                    .bind(lower)
                    .push(", ")
                    .bind(upper)
                    .push(")");
                    parts += 1;
                }
            }
            if parts > 0 {
                sql.push(
                    ") SELECT CAST(k AS BIGINT) AS k, (SELECT COUNT(*) FROM audit_logs WHERE occurred_at >= bounds.lower \
                     AND occurred_at < bounds.upper AND action = ",
                )
                .bind(*action);
                if let Some(organization) = scope.organization() {
                    organization_entries(&mut sql, backend, action, organization);
                }
                sql.push(") AS n FROM bounds");
                for row in all(connection, &sql).await? {
                    let k: i64 = row.try_get("", "k").map_err(db)?;
                    let n = count(&row, "n")?;
                    if let Some(sum) = usize::try_from(k).ok().and_then(|k| sums.get_mut(k)) {
                        *sum = sum.saturating_add(n);
                    }
                }
            }
            if let Some(days) = rolled {
                for (day, n) in day_counts(connection, action, days).await? {
                    let bucket = truncate(day, interval);
                    if let Ok(index) = starts.binary_search(&bucket) {
                        sums[index] = sums[index].saturating_add(n);
                    }
                }
            }
            for (start, n) in starts.iter().zip(sums) {
                if n > 0 {
                    counted.push(((*action).to_owned(), *start, n));
                }
            }
        }
        Ok(counted)
    }

    async fn api_key_request_days(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, RepositoryError> {
        let connection = self.connection();
        let mut sql = Sql::new(connection.get_database_backend());
        // Days are `YYYY-MM-DD` text, so they compare in order.
        let last = to - Duration::seconds(1);
        sql.push("SELECT day, CAST(SUM(requests) AS BIGINT) AS n FROM api_key_usage WHERE day >= ")
            .bind(from.format("%Y-%m-%d").to_string())
            .push(" AND day <= ")
            .bind(last.format("%Y-%m-%d").to_string())
            .push(" GROUP BY day");
        let mut days = Vec::new();
        for row in all(connection, &sql).await? {
            let day: String = row.try_get("", "day").map_err(db)?;
            let n = count(&row, "n")?;
            let Ok(date) = NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
                continue;
            };
            days.push((date.and_time(chrono::NaiveTime::MIN).and_utc(), n));
        }
        Ok(days)
    }
}
