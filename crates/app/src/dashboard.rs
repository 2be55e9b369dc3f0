//! The operators' dashboard and usage statistics. Holders of `dashboard:read` (`super_admin`,
//! `auditor`) see the whole system and any organization; owners and admins of an organization
//! see that organization's view; members with another role are refused (403), others do not
//! learn the organization exists (404). A dashboard is computed at most once per
//! [`DASHBOARD_TTL`] per view on each instance.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use steward_domain::RequestOrigin;
use steward_domain::dashboard::{
    Dashboard, Interval, LOCKOUT, Metric, MetricSource, SIGN_IN_FAILED, SIGN_IN_SUCCEEDED, Scope,
    StatisticsQuery, series_start,
};
use steward_domain::organizations::OrgPermission;
use steward_domain::rbac::Permission;
use uuid::Uuid;

use crate::error::AppError;
use crate::organizations::OrganizationService;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// How long one instance answers a view's dashboard from memory.
pub const DASHBOARD_TTL: Duration = Duration::from_secs(10);

/// Dashboards computed recently, per view, and the lock one computation holds.
#[derive(Debug)]
pub struct DashboardCache {
    entries: crate::cache::TtlCache<Arc<Dashboard>, Scope>,
    computing: tokio::sync::Mutex<()>,
}

/// A fresh cache: one entry per view, a bound far above the number of organizations an
/// operator looks at within ten seconds.
pub fn dashboard_cache() -> DashboardCache {
    DashboardCache {
        entries: crate::cache::TtlCache::with_capacity(DASHBOARD_TTL, 10_000),
        computing: tokio::sync::Mutex::new(()),
    }
}

/// The request as the audit trail names a refusal: `METHOD /path` and where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub target: &'a str,
    pub origin: &'a RequestOrigin,
}

/// A statistic as asked for (before it is checked, which happens after the caller's access
/// is: an outsider learns nothing from a 400).
#[derive(Debug, Clone)]
pub struct StatisticsRequest {
    /// Required; one of [`Metric::ALL`]'s names.
    pub metric: Option<String>,
    /// One of `hour`, `day`, `week`; default `day`.
    pub interval: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub organization: Option<Uuid>,
}

/// A statistic: the checked window and one count per bucket.
#[derive(Debug, Clone)]
pub struct Statistics {
    pub query: StatisticsQuery,
    pub series: Vec<(DateTime<Utc>, u64)>,
}

impl Statistics {
    pub fn total(&self) -> u64 {
        self.series.iter().map(|(_, count)| count).sum()
    }
}

pub struct DashboardService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> DashboardService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// The view `principal` asked for, if they may see it. Holders of `dashboard:read` or of
    /// `organizations:read` (every organization's figures are theirs to read already) see any
    /// organization's view; a refused system view is audited as `admin.access_denied`.
    async fn scope(
        &self,
        principal: Principal,
        organization: Option<Uuid>,
        asked: &Asked<'_>,
    ) -> Result<Scope, AppError> {
        let principal = self.steward.auth.with_roles(principal).await?;
        match organization {
            None if principal.allows(Permission::DashboardRead) => Ok(Scope::System),
            None => {
                if let Err(error) = self
                    .steward
                    .auth
                    .record_access_denied(
                        &principal,
                        Some(Permission::DashboardRead.as_str()),
                        false,
                        asked.target,
                        asked.origin,
                    )
                    .await
                {
                    tracing::warn!(%error, "could not audit a refused dashboard request");
                }
                Err(AppError::forbidden(
                    "the whole system's figures need the permission dashboard:read; \
                     organization owners and admins ask with organizationId",
                ))
            }
            Some(organization)
                if principal.allows(Permission::DashboardRead)
                    || principal.allows(Permission::OrganizationsRead) =>
            {
                self.steward
                    .store
                    .find_organization(organization)
                    .await?
                    .ok_or_else(|| AppError::not_found("no such organization"))?;
                Ok(Scope::Organization(organization))
            }
            Some(organization) => {
                OrganizationService::new(self.steward)
                    .standing(
                        principal,
                        organization,
                        OrgPermission::Manage,
                        Permission::DashboardRead,
                    )
                    .await?;
                Ok(Scope::Organization(organization))
            }
        }
    }

    /// The dashboard of the whole system (`organization` absent) or of one organization.
    pub async fn dashboard(
        &self,
        principal: Principal,
        organization: Option<Uuid>,
        asked: &Asked<'_>,
    ) -> Result<Arc<Dashboard>, AppError> {
        let scope = self.scope(principal, organization, asked).await?;
        if let Some(dashboard) = self.steward.dashboards.entries.get(&scope) {
            return Ok(dashboard);
        }
        // One computation at a time on this instance: requests that missed together wait for
        // the first and take its answer instead of scanning the same tables again.
        let _computing = self.steward.dashboards.computing.lock().await;
        if let Some(dashboard) = self.steward.dashboards.entries.get(&scope) {
            return Ok(dashboard);
        }
        let now = Utc::now();
        let store = &self.steward.store;
        let (counts, sign_ins) = tokio::try_join!(
            store.dashboard_counts(scope, now),
            store.audit_counts(
                &[SIGN_IN_SUCCEEDED, SIGN_IN_FAILED, LOCKOUT],
                scope,
                series_start(now),
                now,
                Interval::Hour,
            ),
        )?;
        let dashboard = Arc::new(Dashboard::new(scope, now, counts, &sign_ins));
        self.steward.dashboards.entries.put(scope, Arc::clone(&dashboard));
        Ok(dashboard)
    }

    /// One usage statistic over time.
    pub async fn statistics(
        &self,
        principal: Principal,
        request: StatisticsRequest,
        asked: &Asked<'_>,
    ) -> Result<Statistics, AppError> {
        let scope = self.scope(principal, request.organization, asked).await?;
        let metric = request
            .metric
            .as_deref()
            .ok_or_else(|| AppError::invalid("metric", "is required"))?;
        let metric = Metric::parse(metric).ok_or_else(|| {
            AppError::invalid(
                "metric",
                "must be signins, registrations, devices_enrolled, commands or api_key_requests",
            )
        })?;
        let interval = match request.interval.as_deref() {
            None => Interval::Day,
            Some(interval) => Interval::parse(interval)
                .ok_or_else(|| AppError::invalid("interval", "must be hour, day or week"))?,
        };
        let query = StatisticsQuery::new(metric, interval, request.from, request.to, scope, Utc::now())?;
        let store = &self.steward.store;
        let counted = match metric.source() {
            MetricSource::Audit(actions) => store
                .audit_counts(actions, scope, query.from, query.to, query.interval)
                .await?
                .into_iter()
                .map(|(_, at, count)| (at, count))
                .collect(),
            MetricSource::ApiKeyDays => store.api_key_request_days(query.from, query.to).await?,
        };
        Ok(Statistics {
            series: query.series(&counted),
            query,
        })
    }
}
