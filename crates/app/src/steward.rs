//! The application core: one store and the caches the use cases share.

use std::sync::Arc;

use steward_domain::AuditRecorder;
use steward_domain::accounts::{
    AccountStore, EmailTokenStore, FederationStore, LoginThrottleStore, Outbox, PersonalTokenStore,
    SessionStore,
};
use steward_domain::audit_log::AuditLogStore;
use steward_domain::devices::{ApiKeyStore, DeviceStore};
use steward_domain::fleet::{
    CommandStore, DeviceImportStore, EnrollmentStore, FleetDeviceStore, PolicyApplicationStore,
};
use steward_domain::group_admin::GroupAdminStore;
use steward_domain::group_store::GroupStore;
use steward_domain::organizations::{OrgUserImportStore, OrganizationStore};
use steward_domain::policies::PolicyStore;
use steward_domain::roles::RoleStore;
use steward_domain::settings::store::{
    DeviceSettingsStore, PushQueue, SettingCatalogStore, UnlockRequestStore,
};

use crate::auth::AuthService;
use crate::devices::DeviceAuthCache;
use crate::settings::{DeviceStateCache, SettingsCatalog};

/// Every store trait the use cases need, implemented by one backend (`steward-persistence`'s
/// `Database` in the server). A blanket implementation covers any type that has them all.
pub trait Store:
    AccountStore
    + SessionStore
    + LoginThrottleStore
    + EmailTokenStore
    + Outbox
    + FederationStore
    + PersonalTokenStore
    + AuditRecorder
    + AuditLogStore
    + DeviceStore
    + ApiKeyStore
    + EnrollmentStore
    + FleetDeviceStore
    + CommandStore
    + PolicyApplicationStore
    + DeviceImportStore
    + OrgUserImportStore
    + GroupStore
    + OrganizationStore
    + PolicyStore
    + SettingCatalogStore
    + DeviceSettingsStore
    + UnlockRequestStore
    + PushQueue
    + RoleStore
    + GroupAdminStore
    + steward_domain::mfa::MfaStore
    + steward_domain::ip_allowlist::AllowlistStore
    + steward_domain::jobs::JobStore
    + steward_domain::events::webhooks::WebhookStore
    + steward_domain::notifications::NotificationStore
    + steward_domain::quotas::UserQuotaStore
    + steward_domain::dashboard::DashboardStore
    + steward_domain::health::HealthStore
    + steward_domain::admin_activity::AdminActivityStore
    + steward_domain::config_backup::ConfigStore
    + steward_domain::reports::ReportStore
    + steward_domain::device_events::DeviceEventStore
    + steward_domain::tenancy::TenancyStore
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AccountStore
        + SessionStore
        + LoginThrottleStore
        + EmailTokenStore
        + Outbox
        + FederationStore
        + PersonalTokenStore
        + AuditRecorder
        + AuditLogStore
        + DeviceStore
        + ApiKeyStore
        + EnrollmentStore
        + FleetDeviceStore
        + CommandStore
        + PolicyApplicationStore
        + DeviceImportStore
        + OrgUserImportStore
        + GroupStore
        + OrganizationStore
        + PolicyStore
        + SettingCatalogStore
        + DeviceSettingsStore
        + UnlockRequestStore
        + PushQueue
        + RoleStore
        + GroupAdminStore
        + steward_domain::mfa::MfaStore
        + steward_domain::ip_allowlist::AllowlistStore
        + steward_domain::jobs::JobStore
        + steward_domain::events::webhooks::WebhookStore
        + steward_domain::notifications::NotificationStore
        + steward_domain::quotas::UserQuotaStore
        + steward_domain::dashboard::DashboardStore
        + steward_domain::health::HealthStore
        + steward_domain::admin_activity::AdminActivityStore
        + steward_domain::config_backup::ConfigStore
        + steward_domain::reports::ReportStore
        + steward_domain::device_events::DeviceEventStore
        + steward_domain::tenancy::TenancyStore
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// The store plus the state shared by every request: the authentication service (keys and
/// session caches), the setting catalog, device credentials and device settings state.
/// Cloning is cheap (reference counts).
pub struct Steward<S> {
    pub store: S,
    pub auth: Arc<AuthService<S>>,
    pub settings_catalog: Arc<SettingsCatalog>,
    pub device_auth: Arc<DeviceAuthCache>,
    /// Shared with the push worker, which returns expired unlocks.
    pub device_states: Arc<DeviceStateCache>,
    /// The admin API's IP allowlist as last read (see `ip_allowlist::REFRESH`).
    pub allowlist: Arc<crate::ip_allowlist::AllowlistCache>,
    /// Addresses whose refused admin request was audited in the last minute.
    pub allowlist_refusals: Arc<crate::ip_allowlist::RefusalCache>,
    /// The background jobs this instance runs, and how.
    pub jobs: Arc<crate::jobs::JobBoard>,
    /// The plans organizations' quotas come from (the store decides with the same plans).
    pub quota_plans: Arc<steward_domain::quotas::QuotaPlans>,
    /// The event pipeline's settings, HTTP client and wake-ups.
    pub events: Arc<crate::events::EventBoard>,
    /// Requests to each organization's routes this minute (`api_requests_per_minute`).
    pub organization_requests: Arc<crate::quotas::RequestCounter>,
    /// Dashboards computed in the last ten seconds, per view.
    pub dashboards: Arc<crate::dashboard::DashboardCache>,
    /// This instance's vitals (requests, workers, deliveries) and the health thresholds.
    pub health: Arc<crate::health::HealthBoard>,
    /// The time the report scheduler reads (settable in tests).
    pub clock: crate::clock::Clock,
    /// This instance's fan-out of device events to live subscribers, and their retention.
    pub device_events: Arc<crate::device_events::EventHub>,
    /// The operator's feature switches.
    pub features: crate::features::Features,
    /// The store every instance counts its limits in, when one is configured.
    pub shared_limits: Option<Arc<crate::limits::SharedLimits>>,
}

impl<S: Clone> Clone for Steward<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            auth: Arc::clone(&self.auth),
            settings_catalog: Arc::clone(&self.settings_catalog),
            device_auth: Arc::clone(&self.device_auth),
            device_states: Arc::clone(&self.device_states),
            allowlist: Arc::clone(&self.allowlist),
            allowlist_refusals: Arc::clone(&self.allowlist_refusals),
            jobs: Arc::clone(&self.jobs),
            quota_plans: Arc::clone(&self.quota_plans),
            events: Arc::clone(&self.events),
            organization_requests: Arc::clone(&self.organization_requests),
            dashboards: Arc::clone(&self.dashboards),
            health: Arc::clone(&self.health),
            clock: self.clock.clone(),
            device_events: Arc::clone(&self.device_events),
            features: self.features,
            shared_limits: self.shared_limits.clone(),
        }
    }
}

impl<S: Store> Steward<S> {
    /// A core around `store` with empty caches and the given authentication service.
    pub fn new(store: S, auth: AuthService<S>) -> Self {
        Self {
            store,
            auth: Arc::new(auth),
            settings_catalog: Arc::default(),
            device_auth: Arc::default(),
            device_states: Arc::default(),
            allowlist: Arc::new(crate::cache::TtlCache::new(crate::ip_allowlist::REFRESH)),
            // Keyed by refused client addresses, which an attacker chooses: a small bound.
            allowlist_refusals: Arc::new(crate::cache::TtlCache::with_capacity(
                std::time::Duration::from_secs(60),
                10_000,
            )),
            jobs: Arc::default(),
            quota_plans: Arc::new(steward_domain::quotas::QuotaPlans::new(Default::default())),
            events: Arc::default(),
            organization_requests: Arc::default(),
            dashboards: Arc::new(crate::dashboard::dashboard_cache()),
            health: Arc::default(),
            clock: crate::clock::Clock::default(),
            device_events: Arc::default(),
            features: crate::features::Features::default(),
            shared_limits: None,
        }
    }

    /// Runs with the operator's feature switches.
    pub fn with_features(mut self, features: crate::features::Features) -> Self {
        self.features = features;
        self
    }

    /// Counts the organizations' requests per minute in a store every instance shares.
    pub fn with_shared_limits(mut self, shared: Option<Arc<crate::limits::SharedLimits>>) -> Self {
        self.shared_limits = shared;
        self
    }

    /// Shares the health board (thresholds and vitals) with the workers that report to it.
    pub fn with_health(mut self, health: Arc<crate::health::HealthBoard>) -> Self {
        self.health = health;
        self
    }

    /// Device events: their retention where an organization set none, and the live streams'
    /// limits.
    pub fn with_device_events(mut self, settings: crate::device_events::HubSettings) -> Self {
        self.device_events = Arc::new(crate::device_events::EventHub::new(settings));
        self
    }

    /// Reads the report scheduler's time from `clock`.
    pub fn with_clock(mut self, clock: crate::clock::Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs the event pipeline with these settings (retries, outbound rules, thresholds).
    pub fn with_events(mut self, settings: crate::events::EventSettings) -> Self {
        self.events = Arc::new(crate::events::EventBoard::new(settings));
        self
    }

    /// The quota plans (configuration); give the store the same ones.
    pub fn with_quota_plans(mut self, plans: steward_domain::quotas::QuotaPlans) -> Self {
        self.quota_plans = Arc::new(plans);
        self
    }

    /// Runs background jobs with these settings (timeouts, lease, workers, limits).
    pub fn with_jobs(mut self, settings: crate::jobs::JobSettings) -> Self {
        self.jobs = Arc::new(crate::jobs::JobBoard::new(settings));
        self
    }

    /// Replaces the device credential cache (to allow legacy `X-API-Key` + `X-Device-Id`).
    pub fn with_device_auth(mut self, device_auth: DeviceAuthCache) -> Self {
        self.device_auth = Arc::new(device_auth);
        self
    }

    /// Shares a device state cache with a worker (the push worker returns expired unlocks).
    pub fn with_device_states(mut self, device_states: Arc<DeviceStateCache>) -> Self {
        self.device_states = device_states;
        self
    }
}
