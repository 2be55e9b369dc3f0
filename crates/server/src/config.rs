//! Configuration: built-in defaults, then an optional TOML file, then `STEWARD_*` environment
//! variables (the last one wins). Every setting and its default is listed in
//! `docs/configuration.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};
use steward_domain::federation::{GroupRoleMap, parse_role_list};
use steward_domain::rbac::RoleCatalog;
use steward_persistence::Backend;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// One quota plan's limits; a limit left out is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlanConfig {
    /// Devices per organization.
    pub max_devices: Option<u64>,
    /// Users per organization.
    pub max_users: Option<u64>,
    /// Live enrollment tokens per organization.
    pub max_enrollment_tokens: Option<u64>,
    /// Device policies per organization.
    pub max_policies: Option<u64>,
    /// Device and user imports per organization in any 24 hours.
    pub max_imports_per_day: Option<u64>,
    /// Requests to an organization's routes per minute, on each instance.
    pub max_api_requests_per_minute: Option<u64>,
    /// Devices an account owns outside any organization.
    pub max_personal_devices: Option<u64>,
    /// Family groups an account owns.
    pub max_groups: Option<u64>,
    /// Members of each family group owned by an account on this plan.
    pub max_group_members: Option<u64>,
    /// Live personal access tokens per account.
    pub max_personal_access_tokens: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address and port to listen on (`STEWARD_BIND`).
    pub bind: SocketAddr,
    /// A separate management address for `GET /metrics` (and `GET /health`), such as
    /// `127.0.0.1:9090`; when set, the API's port no longer serves `/metrics`.
    pub metrics_bind: Option<SocketAddr>,
    /// Where the embedded database, development keys and the mail outbox live.
    pub data_dir: PathBuf,
    /// `sqlite:…` or `postgres://…`; defaults to `sqlite://<data_dir>/steward.db?mode=rwc`.
    pub database_url: Option<String>,
    /// Where migrations (and row-level security changes) run: the schema owner's URL when the
    /// server connects as a role of its own (`STEWARD_DATABASE_MIGRATION_URL`); the database URL
    /// when not set.
    pub database_migration_url: Option<String>,
    /// Largest number of pooled database connections per instance.
    pub database_max_connections: u32,
    /// Seconds to wait for the database when connecting; start-up fails after twice this.
    pub database_connect_timeout_secs: u64,
    /// Apply pending migrations when `serve` starts.
    #[serde(deserialize_with = "truthy")]
    pub migrate_on_start: bool,
    /// The externally visible base URL, used in links in mail and QR codes.
    pub public_url: Option<String>,
    /// `iss` of issued tokens.
    pub jwt_issuer: String,
    /// `aud` of issued tokens.
    pub jwt_audience: String,
    /// PEM files of RS256 private keys, oldest first; the last one signs. Empty: a development
    /// key under `<data_dir>/keys/` is used (generated on first start).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub jwt_private_keys: Vec<PathBuf>,
    /// The issuer authenticator apps show for TOTP (no `:`); default the public URL's host.
    pub mfa_issuer: Option<String>,
    /// Base64 of the 32-byte AES-256-GCM key that seals TOTP secrets. Empty: a development
    /// key under `<data_dir>/keys/` (generated on first start).
    pub mfa_encryption_key: Option<String>,
    /// Whether sign-in through Google, Apple or OIDC also asks for the second factor.
    #[serde(deserialize_with = "truthy")]
    pub mfa_for_federated: bool,
    /// Whether accounts with a system role must have a second factor to use the admin API.
    #[serde(deserialize_with = "truthy")]
    pub admin_mfa_required: bool,
    /// Hours an administrator without a second factor keeps working, from the role grant or
    /// from switching enforcement on, whichever is later (0 to 8760).
    pub admin_mfa_grace_hours: i64,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `steward=debug,info`; `RUST_LOG` overrides it.
    pub log_level: String,
    /// Networks of reverse proxies whose `X-Forwarded-For` is believed.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub trusted_proxies: Vec<IpNet>,
    /// Browser origins allowed to call the API cross-origin (`https://admin.example.com`);
    /// none by default.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub cors_allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Lets the app's `X-API-Key` plus `X-Device-Id` act as a device on the device API (the
    /// seed's legacy contract). Unsafe — the key ships in every copy of the app and device
    /// identifiers are not secrets — so off by default; devices use their device token.
    #[serde(deserialize_with = "truthy")]
    pub legacy_device_auth: bool,
    /// HTTP worker threads; defaults to the number of CPU cores.
    pub workers: Option<usize>,
    /// Argon2id memory cost in KiB (64 MiB).
    pub password_hash_memory_kib: u32,
    /// Argon2id passes.
    pub password_hash_iterations: u32,
    /// Argon2id lanes.
    pub password_hash_parallelism: u32,
    /// The least zxcvbn strength (0–4) a new password needs; 0 turns the estimate off.
    pub password_min_strength: u8,
    pub access_token_ttl_secs: i64,
    pub refresh_token_ttl_days: i64,
    /// After a refresh, the previous token answers the same successor for this long; 0 disables.
    pub refresh_grace_secs: i64,
    /// How long an instance trusts its last look at a session; bounds how late a revoked
    /// session's access token is refused.
    pub session_cache_ms: u64,
    /// Password checks per email per 15 minutes before the email locks for 15 minutes.
    pub login_max_attempts: i32,
    pub login_lockout_minutes: i64,
    /// Requests per hour per client IP; 0 disables.
    pub rate_limit_register_per_hour: u32,
    pub rate_limit_login_per_hour: u32,
    pub rate_limit_password_reset_per_hour: u32,
    pub rate_limit_refresh_per_hour: u32,
    /// Admin API requests per minute per signed-in caller; 0 disables.
    pub rate_limit_admin_per_minute: u32,
    /// Event batches per minute per device (`POST /api/v1/devices/{deviceId}/events`); 0 turns
    /// the limit off.
    pub rate_limit_device_events_per_minute: u32,
    /// `redis://[:password@]host:6379[/db]`, `rediss://…` or `unix:///path`: every instance
    /// counts the rate limits and the organizations' requests per minute there. Unset: each
    /// instance counts its own.
    pub redis_url: Option<String>,
    /// What every key Steward writes to Redis starts with.
    pub redis_key_prefix: String,
    /// How long a call to Redis may take before the instance counts alone for 5 s.
    pub redis_timeout_ms: u64,
    /// `smtp://user:pass@host:25`, `smtp://host:587?tls=required` or `smtps://host:465`. Unset:
    /// mail is written to the log and to `<data dir>/outbox/`.
    pub smtp_url: Option<String>,
    pub mail_from: String,
    /// Where the product's web or app front end lives: links in account mail lead to
    /// `{app_url}/verify-email?token=…`, `/reset-password?token=…` and
    /// `/accept-invitation?token=…`. Unset: they lead to Steward's public URL, where Steward
    /// serves minimal built-in pages at those paths.
    pub app_url: Option<String>,
    /// The verification link, with `{token}` where the token goes
    /// (`myapp://verify?token={token}`); default `{app_url}/verify-email?token={token}`.
    pub mail_link_verify_email: Option<String>,
    /// The password-reset link, with `{token}`; default `{app_url}/reset-password?token={token}`.
    pub mail_link_reset_password: Option<String>,
    /// The invitation link, with `{token}`; default `{app_url}/accept-invitation?token={token}`.
    pub mail_link_accept_invitation: Option<String>,
    /// A directory of mail templates replacing the built-in ones and adding translations
    /// (`de/reset-password.txt`); see docs/mail.md.
    pub mail_templates_dir: Option<PathBuf>,
    /// How often the mail outbox is checked.
    pub outbox_poll_ms: u64,
    /// A Google service-account key file (JSON) for FCM HTTP v1 pushes.
    pub fcm_service_account_file: Option<std::path::PathBuf>,
    /// FCM's base URL (tests point it at a loopback server).
    pub fcm_endpoint: String,
    /// Instead of FCM: POST each notification as JSON to this URL.
    pub push_webhook_url: Option<String>,
    /// Signs webhook bodies: `X-Steward-Signature: sha256=<hex HMAC-SHA256>`.
    pub push_webhook_secret: Option<String>,
    /// How often the push outbox is checked (and lifted locks returned).
    pub push_poll_ms: u64,
    /// Changes within this window send one push.
    pub push_collapse_ms: u64,
    /// How often new audit entries are sealed into the hash chain.
    pub audit_seal_ms: u64,
    /// A background job running longer fails.
    pub job_timeout_secs: u64,
    /// Per job kind, a time limit other than `job_timeout_secs` (`{audit_export = 3600}`).
    pub job_timeouts: std::collections::BTreeMap<String, u64>,
    /// Background jobs this instance runs at once.
    pub job_workers: usize,
    /// Background jobs of one organization running at once, over every instance.
    pub job_max_running_per_org: u32,
    /// How long an instance's claim on a job lasts without a heartbeat (a job whose instance
    /// died is taken over after it).
    pub job_lease_secs: u64,
    /// How often an idle instance looks for jobs submitted elsewhere.
    pub job_poll_ms: u64,
    /// Finished jobs and their result files are deleted this long after they finished.
    pub job_retention_hours: u64,
    /// How often the clean-up pass runs (on one instance at a time); 0 turns it off.
    pub maintenance_interval_secs: u64,
    /// How often each instance refreshes the quota utilisation gauges; 0 turns them off.
    pub quota_metrics_interval_secs: u64,
    /// Labels the quota utilisation gauge with each organization's id (`/metrics` is not
    /// authenticated: only where it is not public).
    #[serde(deserialize_with = "truthy")]
    pub metrics_organizations: bool,
    /// Accepts `http://` webhook URLs (development only).
    #[serde(deserialize_with = "truthy")]
    pub webhook_allow_http: bool,
    /// Networks webhooks may reach although loopback, private or link-local
    /// (`127.0.0.0/8,10.0.0.0/8`); none by default.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub webhook_allowed_networks: Vec<IpNet>,
    /// The same for organizations' subscriptions (kept apart so tenants do not reach internal
    /// services unless allowed); none by default.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub webhook_organization_networks: Vec<IpNet>,
    /// Seconds to wait before each retry of a failed delivery; one attempt more than delays.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub webhook_retry_delays: Vec<u64>,
    /// One delivery attempt's time limit.
    pub webhook_timeout_secs: u64,
    /// Deliveries in flight at once on this instance.
    pub webhook_concurrency: usize,
    /// How often an idle instance looks for new events and due deliveries.
    pub events_poll_ms: u64,
    /// Failed sign-ins of one account within the window that raise a notification.
    pub notify_failed_sign_ins: u32,
    /// Failed sign-ins from one IP address within the window that raise a notification.
    pub notify_failed_sign_ins_from_ip: u32,
    /// The window of the failed sign-in rules.
    pub notify_window_minutes: u32,
    /// A bulk action on more records than this raises a notification.
    pub notify_bulk_records: u64,
    /// How often notification mail goes out (a digest for more than 10 per operator).
    pub notification_mail_secs: u64,
    /// How often the report scheduler looks for due report schedules.
    pub report_poll_ms: u64,
    /// The time the report scheduler reads: the system clock, or one a test sets.
    #[serde(skip)]
    pub clock: steward_app::clock::Clock,
    /// Ended sessions and refresh tokens are deleted this long after they ended.
    pub retention_sessions_days: u32,
    /// Used or expired mail tokens, MFA challenges, OIDC nonces and sign-in throttles.
    pub retention_tokens_hours: u32,
    /// Sent (or given-up) mail.
    pub retention_mail_days: u32,
    /// Delivered (or given-up) pushes.
    pub retention_push_days: u32,
    /// Ended invites, transfers, commands, allowlist bypass tokens and webhook deliveries.
    pub retention_records_days: u32,
    /// Operators' notifications.
    pub retention_notifications_days: u32,
    /// Device events, after they occurred, where the organization set no retention of its own.
    pub event_retention_days: u32,
    /// Live device event streams one instance serves at most.
    pub event_streams_max: usize,
    /// Live device event streams one user (or device) may have open on one instance.
    pub event_streams_per_caller: usize,
    /// Health report thresholds, each `warn,critical`: request latency p99 over five minutes
    /// (ms).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub health_latency_p99_ms: Vec<u64>,
    /// Server errors over five minutes, percent of requests.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub health_error_percent: Vec<u64>,
    /// Pooled database connections in use, percent of the maximum.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub health_pool_in_use_percent: Vec<u64>,
    /// Messages waiting in one outgoing queue.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub health_queue_pending: Vec<u64>,
    /// Age of the oldest waiting message of one queue (seconds).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub health_queue_age_secs: Vec<u64>,
    /// The process's resident memory (MiB).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub health_memory_mb: Vec<u64>,
    /// The database's size (MiB).
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub health_database_mb: Vec<u64>,
    /// Quota plans by name (`[plans.team]` in the TOML file); `free` exists even when not
    /// listed (unlimited unless configured).
    pub plans: std::collections::BTreeMap<String, PlanConfig>,
    /// Client IDs accepted as `aud` of Google ID tokens; empty disables Google sign-in.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub google_client_ids: Vec<String>,
    pub google_jwks_url: String,
    /// Service IDs / bundle IDs accepted as `aud` of Apple ID tokens; empty disables Apple.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub apple_client_ids: Vec<String>,
    pub apple_jwks_url: String,
    /// A generic OpenID Connect provider (`/oauth/oidc`): its issuer, JWKS URL and client IDs.
    pub oidc_issuer: Option<String>,
    pub oidc_jwks_url: Option<String>,
    /// Where to ask for email, name or groups an OIDC ID token lacks (needs the client to send
    /// the provider's access token with the ID token).
    pub oidc_userinfo_url: Option<String>,
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub oidc_client_ids: Vec<String>,
    /// `group=role` pairs, comma or newline separated; applied at each OIDC sign-in.
    pub oidc_group_role_map: String,
    /// Roles every OIDC-provisioned account receives.
    pub oidc_group_role_defaults: String,
    /// Least seconds between two fetches of a provider's keys.
    pub oidc_jwks_min_refresh_secs: u64,
    /// Seed 002's `USER_MGMT_CORE`: the admin API's user, role, audit and organization routes,
    /// and OIDC sign-in creating accounts. Off, those routes answer 404 and an OIDC identity
    /// without an account is refused.
    #[serde(deserialize_with = "truthy")]
    pub user_mgmt_core: bool,
    /// Seed 002's `ENFORCE`: the database enforces tenancy too. Only the default of
    /// `rls_enforce`; off never loosens an application check (Steward has no permissive mode).
    #[serde(deserialize_with = "truthy")]
    pub enforce: bool,
    /// PostgreSQL row-level security turned on at start-up; `enforce` when not set.
    #[serde(deserialize_with = "optional_truthy")]
    pub rls_enforce: Option<bool>,
    /// The organization role `steward db repair-default-org` gives the accounts it adds to the
    /// default organization: `member` (belongs, reads nothing of it), `viewer`, `admin`, `owner`.
    pub default_org_role: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            metrics_bind: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_migration_url: None,
            database_max_connections: 16,
            database_connect_timeout_secs: 5,
            migrate_on_start: true,
            public_url: None,
            jwt_issuer: "steward".to_owned(),
            jwt_audience: "steward".to_owned(),
            jwt_private_keys: Vec::new(),
            mfa_issuer: None,
            mfa_encryption_key: None,
            mfa_for_federated: false,
            admin_mfa_required: false,
            admin_mfa_grace_hours: 24,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
            body_limit_bytes: 1024 * 1024,
            legacy_device_auth: false,
            workers: None,
            password_hash_memory_kib: 64 * 1024,
            password_hash_iterations: 3,
            password_hash_parallelism: 1,
            password_min_strength: steward_domain::identity::DEFAULT_PASSWORD_MIN_STRENGTH,
            access_token_ttl_secs: 3600,
            refresh_token_ttl_days: 30,
            refresh_grace_secs: 10,
            session_cache_ms: 2000,
            login_max_attempts: 5,
            login_lockout_minutes: 15,
            rate_limit_register_per_hour: 10,
            rate_limit_login_per_hour: 20,
            rate_limit_password_reset_per_hour: 5,
            rate_limit_refresh_per_hour: 60,
            rate_limit_admin_per_minute: 600,
            rate_limit_device_events_per_minute: 120,
            redis_url: None,
            redis_key_prefix: "steward:".to_owned(),
            redis_timeout_ms: 100,
            smtp_url: None,
            mail_from: "Steward <no-reply@localhost>".to_owned(),
            app_url: None,
            mail_link_verify_email: None,
            mail_link_reset_password: None,
            mail_link_accept_invitation: None,
            mail_templates_dir: None,
            outbox_poll_ms: 1000,
            fcm_service_account_file: None,
            fcm_endpoint: "https://fcm.googleapis.com".to_owned(),
            push_webhook_url: None,
            push_webhook_secret: None,
            push_poll_ms: 1000,
            push_collapse_ms: 2000,
            audit_seal_ms: 1000,
            job_timeout_secs: 600,
            job_timeouts: std::collections::BTreeMap::new(),
            job_workers: 2,
            job_max_running_per_org: 1,
            job_lease_secs: 30,
            job_poll_ms: 1000,
            job_retention_hours: 24,
            maintenance_interval_secs: 3600,
            quota_metrics_interval_secs: 300,
            metrics_organizations: false,
            user_mgmt_core: true,
            enforce: false,
            rls_enforce: None,
            default_org_role: "member".to_owned(),
            webhook_allow_http: false,
            webhook_allowed_networks: Vec::new(),
            webhook_organization_networks: Vec::new(),
            webhook_retry_delays: vec![5, 30, 300],
            webhook_timeout_secs: 10,
            webhook_concurrency: 128,
            events_poll_ms: 100,
            notify_failed_sign_ins: 5,
            notify_failed_sign_ins_from_ip: 20,
            notify_window_minutes: 10,
            notify_bulk_records: 100,
            notification_mail_secs: 60,
            report_poll_ms: 30_000,
            clock: steward_app::clock::Clock::default(),
            retention_sessions_days: 7,
            retention_tokens_hours: 24,
            retention_mail_days: 30,
            retention_push_days: 7,
            retention_records_days: 30,
            retention_notifications_days: 90,
            event_retention_days: 90,
            event_streams_max: 20_000,
            event_streams_per_caller: 16,
            health_latency_p99_ms: vec![500, 2000],
            health_error_percent: vec![1, 5],
            health_pool_in_use_percent: vec![80, 95],
            health_queue_pending: vec![1000, 10_000],
            health_queue_age_secs: vec![300, 3600],
            health_memory_mb: vec![1024, 4096],
            health_database_mb: vec![10_240, 102_400],
            plans: std::collections::BTreeMap::new(),
            google_client_ids: Vec::new(),
            google_jwks_url: "https://www.googleapis.com/oauth2/v3/certs".to_owned(),
            apple_client_ids: Vec::new(),
            apple_jwks_url: "https://appleid.apple.com/auth/keys".to_owned(),
            oidc_issuer: None,
            oidc_jwks_url: None,
            oidc_userinfo_url: None,
            oidc_client_ids: Vec::new(),
            oidc_group_role_map: String::new(),
            oidc_group_role_defaults: String::new(),
            oidc_jwks_min_refresh_secs: 60,
        }
    }
}

/// A configuration Steward refuses to start with. The message names the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads defaults ← TOML file (when given; it must exist) ← `STEWARD_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError(format!("--config: no such file {}", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        refuse_unknown_settings(file)?;
        // An on/off setting given empty is left at its default (or the file's value).
        // `vars()` panics on a variable that is not UTF-8; such a variable is no setting.
        let empty_switches = empty_switch_variables(
            std::env::vars_os()
                .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?))),
        );
        let config: Config = figment
            .merge(
                Env::prefixed("STEWARD_")
                    .filter(move |key| !empty_switches.contains(&key.as_str().to_ascii_lowercase())),
            )
            .extract()
            .map_err(|error| ConfigError(one_line(&error)))?;
        config.validate()?;
        Ok(config)
    }

    /// The effective settings as JSON, secrets masked: keys and webhook secrets as `***`, the
    /// password in a URL's user part as `***`.
    pub fn masked(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let Some(map) = value.as_object_mut() {
            for key in SECRET_SETTINGS {
                if let Some(slot) = map.get_mut(*key)
                    && !slot.is_null()
                {
                    *slot = serde_json::Value::String("***".to_owned());
                }
            }
            for (_, slot) in map.iter_mut() {
                if let serde_json::Value::String(text) = slot {
                    *text = mask_url_password(text);
                }
            }
            map.insert(
                "effective_database_url".to_owned(),
                serde_json::Value::String(mask_url_password(&self.database_url())),
            );
        }
        value
    }

    /// The quota plans as the rules read them.
    pub fn quota_plans(&self) -> steward_domain::quotas::QuotaPlans {
        use steward_domain::quotas::QuotaKey;
        steward_domain::quotas::QuotaPlans::new(
            self.plans
                .iter()
                .map(|(name, plan)| {
                    let limits = [
                        (QuotaKey::Devices, plan.max_devices),
                        (QuotaKey::Users, plan.max_users),
                        (QuotaKey::EnrollmentTokens, plan.max_enrollment_tokens),
                        (QuotaKey::Policies, plan.max_policies),
                        (QuotaKey::ImportsPerDay, plan.max_imports_per_day),
                        (QuotaKey::ApiRequestsPerMinute, plan.max_api_requests_per_minute),
                        (QuotaKey::PersonalDevices, plan.max_personal_devices),
                        (QuotaKey::Groups, plan.max_groups),
                        (QuotaKey::GroupMembers, plan.max_group_members),
                        (QuotaKey::PersonalAccessTokens, plan.max_personal_access_tokens),
                    ]
                    .into_iter()
                    .filter(|(_, limit)| limit.is_some())
                    .collect();
                    (name.clone(), limits)
                })
                .collect(),
        )
    }

    /// The health report's thresholds; a pair that is not `warn,critical` with `warn ≤
    /// critical` names its setting.
    pub fn health_thresholds(&self) -> Result<steward_domain::health::HealthThresholds, ConfigError> {
        use steward_domain::health::Threshold;
        let pair = |name: &str, values: &[u64]| {
            Threshold::from_pair(values).map_err(|error| ConfigError(format!("STEWARD_{name}: {error}")))
        };
        Ok(steward_domain::health::HealthThresholds {
            latency_p99_ms: pair("HEALTH_LATENCY_P99_MS", &self.health_latency_p99_ms)?,
            error_percent: pair("HEALTH_ERROR_PERCENT", &self.health_error_percent)?,
            pool_in_use_percent: pair("HEALTH_POOL_IN_USE_PERCENT", &self.health_pool_in_use_percent)?,
            queue_pending: pair("HEALTH_QUEUE_PENDING", &self.health_queue_pending)?,
            queue_age_secs: pair("HEALTH_QUEUE_AGE_SECS", &self.health_queue_age_secs)?,
            memory_mb: pair("HEALTH_MEMORY_MB", &self.health_memory_mb)?,
            database_mb: pair("HEALTH_DATABASE_MB", &self.health_database_mb)?,
        })
    }

    /// The event pipeline as configured.
    pub fn events(&self) -> steward_app::events::EventSettings {
        use steward_domain::events::webhooks::{OutboundRules, RetrySchedule};
        steward_app::events::EventSettings {
            poll: std::time::Duration::from_millis(self.events_poll_ms),
            retry: RetrySchedule(
                self.webhook_retry_delays
                    .iter()
                    .map(|delay| chrono::Duration::seconds(i64::try_from(*delay).unwrap_or(86_400)))
                    .collect(),
            ),
            timeout: std::time::Duration::from_secs(self.webhook_timeout_secs),
            outbound: OutboundRules {
                allow_http: self.webhook_allow_http,
                allowed_networks: self.webhook_allowed_networks.clone(),
                organization_networks: self.webhook_organization_networks.clone(),
            },
            concurrency: self.webhook_concurrency,
            thresholds: steward_domain::notifications::Thresholds {
                failed_sign_ins: self.notify_failed_sign_ins,
                failed_sign_ins_from_ip: self.notify_failed_sign_ins_from_ip,
                window: chrono::Duration::minutes(i64::from(self.notify_window_minutes)),
                bulk_records: self.notify_bulk_records,
            },
            mail_interval: std::time::Duration::from_secs(self.notification_mail_secs),
            ..steward_app::events::EventSettings::default()
        }
    }

    /// How long finished rows are kept before the clean-up deletes them.
    pub fn retention(&self) -> steward_domain::maintenance::Retention {
        use chrono::Duration;
        steward_domain::maintenance::Retention {
            sessions: Duration::days(i64::from(self.retention_sessions_days)),
            tokens: Duration::hours(i64::from(self.retention_tokens_hours)),
            mails: Duration::days(i64::from(self.retention_mail_days)),
            pushes: Duration::days(i64::from(self.retention_push_days)),
            records: Duration::days(i64::from(self.retention_records_days)),
            notifications: Duration::days(i64::from(self.retention_notifications_days)),
            device_events: Duration::days(i64::from(self.event_retention_days)),
        }
    }

    /// Checks the values again after something changed them (`serve`'s flags).
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validate()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        Backend::from_url(&self.database_url())
            .map_err(|error| ConfigError(format!("STEWARD_DATABASE_URL: {error}")))?;
        if let Some(url) = &self.database_migration_url {
            let (server, migrations) = (
                Backend::from_url(&self.database_url()).ok(),
                Backend::from_url(url),
            );
            match migrations {
                Err(error) => return Err(ConfigError(format!("STEWARD_DATABASE_MIGRATION_URL: {error}"))),
                Ok(backend) if Some(backend) != server => {
                    return Err(ConfigError(
                        "STEWARD_DATABASE_MIGRATION_URL: must name the same kind of database as STEWARD_DATABASE_URL"
                            .to_owned(),
                    ));
                }
                Ok(Backend::Sqlite) if *url != self.database_url() => {
                    return Err(ConfigError(
                        "STEWARD_DATABASE_MIGRATION_URL: SQLite has one role: leave it unset".to_owned(),
                    ));
                }
                Ok(_) => {}
            }
        }
        self.default_org_role()?;
        if let Some(url) = &self.redis_url {
            steward_persistence::shared_limits::check_url(url).map_err(|error| {
                ConfigError(format!("STEWARD_REDIS_URL: `{}` {error}", mask_url_password(url)))
            })?;
        }
        if !(10..=5000).contains(&self.redis_timeout_ms) {
            return Err(ConfigError(
                "STEWARD_REDIS_TIMEOUT_MS: must be 10 to 5000".to_owned(),
            ));
        }
        if self.redis_key_prefix.is_empty()
            || self.redis_key_prefix.len() > 64
            || !self.redis_key_prefix.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(ConfigError(
                "STEWARD_REDIS_KEY_PREFIX: must be 1 to 64 visible ASCII characters".to_owned(),
            ));
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError(format!(
                "STEWARD_PUBLIC_URL: `{url}` must start with http:// or https://"
            )));
        }
        if let Some(app) = &self.app_url {
            let valid = url::Url::parse(app).is_ok_and(|parsed| {
                matches!(parsed.scheme(), "http" | "https")
                    && parsed.host_str().is_some_and(|host| !host.is_empty())
                    && parsed.query().is_none()
                    && parsed.fragment().is_none()
            });
            if !valid {
                return Err(ConfigError(format!(
                    "STEWARD_APP_URL: `{app}` must be an http:// or https:// URL with a host and no query or fragment, such as https://app.example.com"
                )));
            }
        }
        for (variable, template) in [
            ("STEWARD_MAIL_LINK_VERIFY_EMAIL", &self.mail_link_verify_email),
            ("STEWARD_MAIL_LINK_RESET_PASSWORD", &self.mail_link_reset_password),
            (
                "STEWARD_MAIL_LINK_ACCEPT_INVITATION",
                &self.mail_link_accept_invitation,
            ),
        ] {
            if let Some(template) = template {
                check_link_template(template)
                    .map_err(|message| ConfigError(format!("{variable}: `{template}` {message}")))?;
            }
        }
        for origin in &self.cors_allowed_origins {
            if !valid_origin(origin) {
                return Err(ConfigError(format!(
                    "STEWARD_CORS_ALLOWED_ORIGINS: `{origin}` must be an origin such as https://admin.example.com (scheme, host, optional port; no path, no `*`)"
                )));
            }
        }
        if self.body_limit_bytes == 0 {
            return Err(ConfigError(
                "STEWARD_BODY_LIMIT_BYTES: must be more than 0".to_owned(),
            ));
        }
        if self
            .mfa_issuer
            .as_deref()
            .is_some_and(|issuer| issuer.contains(':') || issuer.len() > 100)
        {
            return Err(ConfigError(
                "STEWARD_MFA_ISSUER: at most 100 characters, without `:`".to_owned(),
            ));
        }
        if self.password_min_strength > 4 {
            return Err(ConfigError(
                "STEWARD_PASSWORD_MIN_STRENGTH: must be 0 to 4".to_owned(),
            ));
        }
        if !(0..=8760).contains(&self.admin_mfa_grace_hours) {
            return Err(ConfigError(
                "STEWARD_ADMIN_MFA_GRACE_HOURS: must be 0 to 8760".to_owned(),
            ));
        }
        if !(1..=86_400).contains(&self.job_timeout_secs) {
            return Err(ConfigError(
                "STEWARD_JOB_TIMEOUT_SECS: must be 1 to 86400".to_owned(),
            ));
        }
        for (kind, seconds) in &self.job_timeouts {
            if steward_domain::jobs::JobKind::parse(kind).is_none() {
                let kinds: Vec<&str> = steward_domain::jobs::JobKind::ALL
                    .iter()
                    .map(|kind| kind.as_str())
                    .collect();
                return Err(ConfigError(format!(
                    "STEWARD_JOB_TIMEOUTS: unknown job kind `{kind}` (one of {})",
                    kinds.join(", ")
                )));
            }
            if !(1..=86_400).contains(seconds) {
                return Err(ConfigError(format!(
                    "STEWARD_JOB_TIMEOUTS: {kind} must be 1 to 86400 seconds"
                )));
            }
        }
        if !(1..=64).contains(&self.job_workers) || !(1..=64).contains(&self.job_max_running_per_org) {
            return Err(ConfigError(
                "STEWARD_JOB_WORKERS and STEWARD_JOB_MAX_RUNNING_PER_ORG: must be 1 to 64".to_owned(),
            ));
        }
        if !(1..=3600).contains(&self.job_lease_secs) {
            return Err(ConfigError(
                "STEWARD_JOB_LEASE_SECS: must be 1 to 3600".to_owned(),
            ));
        }
        if !(10..=60_000).contains(&self.job_poll_ms) {
            return Err(ConfigError("STEWARD_JOB_POLL_MS: must be 10 to 60000".to_owned()));
        }
        if !(1..=8760).contains(&self.job_retention_hours) {
            return Err(ConfigError(
                "STEWARD_JOB_RETENTION_HOURS: must be 1 to 8760".to_owned(),
            ));
        }
        if self.quota_metrics_interval_secs > 86_400 {
            return Err(ConfigError(
                "STEWARD_QUOTA_METRICS_INTERVAL_SECS: 0 (off) or 1 to 86400".to_owned(),
            ));
        }
        if self.maintenance_interval_secs > 0 && !(60..=604_800).contains(&self.maintenance_interval_secs) {
            return Err(ConfigError(
                "STEWARD_MAINTENANCE_INTERVAL_SECS: 0 (off) or 60 to 604800".to_owned(),
            ));
        }
        if self.webhook_retry_delays.len() > 10
            || self.webhook_retry_delays.iter().any(|delay| *delay > 86_400)
        {
            return Err(ConfigError(
                "STEWARD_WEBHOOK_RETRY_DELAYS: at most 10 delays, each 0 to 86400 seconds".to_owned(),
            ));
        }
        self.health_thresholds()?;
        if !(1..=60).contains(&self.webhook_timeout_secs) {
            return Err(ConfigError(
                "STEWARD_WEBHOOK_TIMEOUT_SECS: must be 1 to 60".to_owned(),
            ));
        }
        if !(1..=1024).contains(&self.webhook_concurrency) {
            return Err(ConfigError(
                "STEWARD_WEBHOOK_CONCURRENCY: must be 1 to 1024".to_owned(),
            ));
        }
        if !(10..=60_000).contains(&self.events_poll_ms) {
            return Err(ConfigError(
                "STEWARD_EVENTS_POLL_MS: must be 10 to 60000".to_owned(),
            ));
        }
        if !(1..=10_000).contains(&self.notify_failed_sign_ins)
            || !(1..=100_000).contains(&self.notify_failed_sign_ins_from_ip)
        {
            return Err(ConfigError(
                "STEWARD_NOTIFY_FAILED_SIGN_INS (1 to 10000) and STEWARD_NOTIFY_FAILED_SIGN_INS_FROM_IP (1 to 100000)"
                    .to_owned(),
            ));
        }
        if !(1..=10_080).contains(&self.notify_window_minutes) {
            return Err(ConfigError(
                "STEWARD_NOTIFY_WINDOW_MINUTES: must be 1 to 10080".to_owned(),
            ));
        }
        if self.notify_bulk_records > 1_000_000_000 {
            return Err(ConfigError(
                "STEWARD_NOTIFY_BULK_RECORDS: at most 1000000000".to_owned(),
            ));
        }
        if !(1..=1_000_000).contains(&self.event_streams_max) {
            return Err(ConfigError(
                "STEWARD_EVENT_STREAMS_MAX: must be 1 to 1000000".to_owned(),
            ));
        }
        if !(1..=1_000_000).contains(&self.event_streams_per_caller) {
            return Err(ConfigError(
                "STEWARD_EVENT_STREAMS_PER_CALLER: must be 1 to 1000000".to_owned(),
            ));
        }
        if !(10..=3_600_000).contains(&self.report_poll_ms) {
            return Err(ConfigError(
                "STEWARD_REPORT_POLL_MS: must be 10 to 3600000".to_owned(),
            ));
        }
        if !(1..=86_400).contains(&self.notification_mail_secs) {
            return Err(ConfigError(
                "STEWARD_NOTIFICATION_MAIL_SECS: must be 1 to 86400".to_owned(),
            ));
        }
        for (name, value, max) in [
            (
                "STEWARD_RETENTION_SESSIONS_DAYS",
                self.retention_sessions_days,
                3650,
            ),
            (
                "STEWARD_RETENTION_TOKENS_HOURS",
                self.retention_tokens_hours,
                87_600,
            ),
            ("STEWARD_RETENTION_MAIL_DAYS", self.retention_mail_days, 3650),
            ("STEWARD_RETENTION_PUSH_DAYS", self.retention_push_days, 3650),
            (
                "STEWARD_RETENTION_RECORDS_DAYS",
                self.retention_records_days,
                3650,
            ),
            (
                "STEWARD_RETENTION_NOTIFICATIONS_DAYS",
                self.retention_notifications_days,
                3650,
            ),
            ("STEWARD_EVENT_RETENTION_DAYS", self.event_retention_days, 3650),
        ] {
            if !(1..=max).contains(&value) {
                return Err(ConfigError(format!("{name}: must be 1 to {max}")));
            }
        }
        for name in self.plans.keys() {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !valid {
                return Err(ConfigError(format!(
                    "plans: `{name}` must be 1 to 64 characters of a-z, 0-9, `_` and `-`"
                )));
            }
        }
        if self.database_max_connections == 0 {
            return Err(ConfigError(
                "STEWARD_DATABASE_MAX_CONNECTIONS: must be more than 0".to_owned(),
            ));
        }
        if self.jwt_issuer.trim().is_empty() || self.jwt_audience.trim().is_empty() {
            return Err(ConfigError(
                "STEWARD_JWT_ISSUER and STEWARD_JWT_AUDIENCE must not be empty".to_owned(),
            ));
        }
        if self.access_token_ttl_secs <= 0 || self.access_token_ttl_secs > 86_400 {
            return Err(ConfigError(
                "STEWARD_ACCESS_TOKEN_TTL_SECS: must be 1 to 86400".to_owned(),
            ));
        }
        if self.refresh_token_ttl_days <= 0 {
            return Err(ConfigError(
                "STEWARD_REFRESH_TOKEN_TTL_DAYS: must be more than 0".to_owned(),
            ));
        }
        if !(0..=300).contains(&self.refresh_grace_secs) {
            return Err(ConfigError(
                "STEWARD_REFRESH_GRACE_SECS: must be 0 to 300".to_owned(),
            ));
        }
        if self.session_cache_ms > 5000 {
            return Err(ConfigError(
                "STEWARD_SESSION_CACHE_MS: at most 5000, so revoked sessions are refused within 5 s"
                    .to_owned(),
            ));
        }
        if self.login_max_attempts <= 0 || self.login_lockout_minutes <= 0 {
            return Err(ConfigError(
                "STEWARD_LOGIN_MAX_ATTEMPTS and STEWARD_LOGIN_LOCKOUT_MINUTES must be more than 0".to_owned(),
            ));
        }
        if self.fcm_service_account_file.is_some() && self.push_webhook_url.is_some() {
            return Err(ConfigError(
                "STEWARD_FCM_SERVICE_ACCOUNT_FILE and STEWARD_PUSH_WEBHOOK_URL: configure one push provider"
                    .to_owned(),
            ));
        }
        for (name, url) in [
            ("STEWARD_PUSH_WEBHOOK_URL", self.push_webhook_url.as_deref()),
            ("STEWARD_FCM_ENDPOINT", Some(self.fcm_endpoint.as_str())),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return Err(ConfigError(format!("{name}: must be an http:// or https:// URL")));
            }
        }
        if let Some(url) = &self.smtp_url
            && !(url.starts_with("smtp://") || url.starts_with("smtps://"))
        {
            return Err(ConfigError(
                "STEWARD_SMTP_URL: must start with smtp:// or smtps://".to_owned(),
            ));
        }
        if self.mail_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError(format!(
                "STEWARD_MAIL_FROM: `{}` is not a mailbox",
                self.mail_from
            )));
        }
        let oidc_parts = [
            self.oidc_issuer.is_some(),
            self.oidc_jwks_url.is_some(),
            !self.oidc_client_ids.is_empty(),
        ];
        if oidc_parts.iter().any(|set| *set) && !oidc_parts.iter().all(|set| *set) {
            return Err(ConfigError(
                "STEWARD_OIDC_ISSUER, STEWARD_OIDC_JWKS_URL and STEWARD_OIDC_CLIENT_IDS go together"
                    .to_owned(),
            ));
        }
        self.group_role_mapping()?;
        if self.workers == Some(0) {
            return Err(ConfigError("STEWARD_WORKERS: must be more than 0".to_owned()));
        }
        Ok(())
    }

    /// The database URL in effect, with the default filled in.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}/steward.db?mode=rwc", self.data_dir.display()),
        }
    }

    /// Where migrations run: the migration URL, else the database URL.
    pub fn database_migration_url(&self) -> String {
        self.database_migration_url
            .clone()
            .unwrap_or_else(|| self.database_url())
    }

    /// The role `steward db repair-default-org` gives the accounts it adds.
    pub fn default_org_role(&self) -> Result<steward_domain::organizations::OrgRole, ConfigError> {
        steward_domain::organizations::parse_org_role(&self.default_org_role).map_err(|_| {
            ConfigError(format!(
                "STEWARD_DEFAULT_ORG_ROLE: `{}` must be member, viewer, admin or owner",
                self.default_org_role.chars().take(40).collect::<String>()
            ))
        })
    }

    /// Whether row-level security is turned on at start-up (`rls_enforce`, else `enforce`).
    pub fn rls_enforced(&self) -> bool {
        self.rls_enforce.unwrap_or(self.enforce)
    }

    /// Where the links in account mail lead.
    pub fn mail_links(&self) -> steward_app::mail::MailLinks {
        let mut links = match &self.app_url {
            Some(app) => steward_app::mail::MailLinks::under(app),
            None => steward_app::mail::MailLinks::built_in_pages(&self.public_url()),
        };
        for (chosen, link) in [
            (&self.mail_link_verify_email, &mut links.verify_email),
            (&self.mail_link_reset_password, &mut links.reset_password),
            (&self.mail_link_accept_invitation, &mut links.accept_invitation),
        ] {
            if let Some(template) = chosen {
                link.clone_from(template);
            }
        }
        links
    }

    /// The mail templates: built in, with `STEWARD_MAIL_TEMPLATES_DIR`'s files over them.
    pub fn mail_templates(&self) -> Result<steward_app::mail::MailTemplates, ConfigError> {
        match &self.mail_templates_dir {
            Some(dir) => steward_app::mail::MailTemplates::load(dir)
                .map_err(|error| ConfigError(format!("STEWARD_MAIL_TEMPLATES_DIR: {error}"))),
            None => Ok(steward_app::mail::MailTemplates::built_in()),
        }
    }

    /// Whether Steward serves its own pages for the links in mail (no `STEWARD_APP_URL`).
    pub fn serves_mail_pages(&self) -> bool {
        self.app_url.is_none()
    }

    /// The public base URL in effect, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.bind),
        }
    }

    /// The parsed IdP group → role mapping and default roles, checked against the role table.
    pub fn group_role_mapping(
        &self,
    ) -> Result<(GroupRoleMap, std::collections::BTreeSet<String>), ConfigError> {
        let map = GroupRoleMap::parse(&self.oidc_group_role_map)
            .map_err(|error| ConfigError(format!("STEWARD_OIDC_GROUP_ROLE_MAP: {error}")))?;
        let defaults = parse_role_list(&self.oidc_group_role_defaults)
            .map_err(|error| ConfigError(format!("STEWARD_OIDC_GROUP_ROLE_DEFAULTS: {error}")))?;
        let catalog = RoleCatalog::default();
        if let Some(role) = map.roles().into_iter().find(|role| !catalog.contains(role)) {
            return Err(ConfigError(format!(
                "STEWARD_OIDC_GROUP_ROLE_MAP: unknown role `{role}`"
            )));
        }
        if let Some(role) = defaults.iter().find(|role| !catalog.contains(role)) {
            return Err(ConfigError(format!(
                "STEWARD_OIDC_GROUP_ROLE_DEFAULTS: unknown role `{role}`"
            )));
        }
        Ok((map, defaults))
    }

    /// The TOTP issuer: `STEWARD_MFA_ISSUER`, else the public URL's host (without port).
    pub fn mfa_issuer(&self) -> String {
        if let Some(issuer) = self
            .mfa_issuer
            .as_deref()
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            return issuer.to_owned();
        }
        let url = self.public_url();
        let authority = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
        let host = authority.split('/').next().unwrap_or_default();
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        if host.is_empty() {
            "Steward".to_owned()
        } else {
            host.to_owned()
        }
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }
}

/// `http(s)://host[:port]`, as browsers send it in `Origin` (lower-case host name or IPv4
/// address, no path, no trailing slash).
fn valid_origin(origin: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, port) = match rest.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0))
}

/// figment's messages can span lines; operators get one.
/// Settings whose value is a secret.
const SECRET_SETTINGS: &[&str] = &["mfa_encryption_key", "push_webhook_secret"];

/// `scheme://user:password@host…` with the password as `***`; anything else unchanged.
fn mask_url_password(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return text.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = mask_query_password(tail);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return format!("{scheme}://{authority}{tail}");
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => format!("{scheme}://{authority}{tail}"),
    }
}

/// A URL's path and query with the values of `pass`, `password` and `passwd` parameters
/// (Redis's `unix:///sock?pass=…`, PostgreSQL's `?password=…`) as `***`.
fn mask_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let masked: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if ["pass", "password", "passwd"].contains(&key.to_ascii_lowercase().as_str()) => {
                format!("{key}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
    format!("{path}?{}{fragment}", masked.join("&"))
}

/// `STEWARD_*` variables that are not settings: the configuration file's path, and the test
/// suite's own.
const NOT_SETTINGS: &[&str] = &[
    "config",
    "test_postgres_url",
    "require_postgres",
    "test_redis_url",
    "require_redis",
    "test_rls",
    "test_backends",
];

/// Every setting's name (the file's keys; `STEWARD_` + upper case for the environment).
fn setting_names() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The setting `name` was probably meant to be, if one is close.
fn did_you_mean(name: &str, known: &[String]) -> Option<String> {
    known
        .iter()
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate.clone())
}

/// A typo must not silently fall back to a default: an unknown key in the file or an unknown
/// `STEWARD_*` variable stops start-up, naming it and the setting it was probably meant to be.
fn refuse_unknown_settings(file: Option<&Path>) -> Result<(), ConfigError> {
    use figment::Provider;
    let known = setting_names();
    let mut unknown = Vec::new();
    if let Some(path) = file {
        let data = Toml::file(path)
            .data()
            .map_err(|error| ConfigError(format!("--config: {}", one_line(&error))))?;
        for dict in data.values() {
            for key in dict.keys() {
                if !known.contains(key) {
                    let hint = did_you_mean(key, &known)
                        .map(|k| format!(" (did you mean `{k}`?)"))
                        .unwrap_or_default();
                    unknown.push(format!("`{key}` in {}{hint}", path.display()));
                }
            }
        }
    }
    let mut variables: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter_map(|name| name.strip_prefix("STEWARD_").map(str::to_lowercase))
        .filter(|name| !known.contains(name) && !NOT_SETTINGS.contains(&name.as_str()))
        .collect();
    variables.sort();
    for name in variables {
        let hint = did_you_mean(&name, &known)
            .map(|k| format!(" (did you mean STEWARD_{}?)", k.to_uppercase()))
            .unwrap_or_default();
        unknown.push(format!("STEWARD_{}{hint}", name.to_uppercase()));
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(ConfigError(format!("unknown setting: {}", unknown.join(", "))))
    }
}

/// Words an on/off setting accepts, case-insensitive: the one parser of every switch.
const TRUTHY: [&str; 4] = ["1", "true", "yes", "on"];
const FALSY: [&str; 4] = ["0", "false", "no", "off"];

/// Parses an on/off word (`1/true/yes/on`, `0/false/no/off`, any case, spaces around ignored).
pub fn parse_switch(text: &str) -> Result<bool, String> {
    let word = text.trim().to_ascii_lowercase();
    if TRUTHY.contains(&word.as_str()) {
        Ok(true)
    } else if FALSY.contains(&word.as_str()) {
        Ok(false)
    } else {
        Err(format!(
            "`{}` is not on or off: use 1, true, yes or on, or 0, false, no or off",
            text.chars().take(40).collect::<String>()
        ))
    }
}

/// On/off settings from TOML (`true`) or the environment (`yes`, `1`, `ON`, …).
fn truthy<'de, D>(deserializer: D) -> Result<bool, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Switch {
        Bool(bool),
        Number(i64),
        Text(String),
    }
    match Switch::deserialize(deserializer)? {
        Switch::Bool(value) => Ok(value),
        Switch::Number(1) => Ok(true),
        Switch::Number(0) => Ok(false),
        Switch::Number(other) => parse_switch(&other.to_string()).map_err(serde::de::Error::custom),
        Switch::Text(text) => parse_switch(&text).map_err(serde::de::Error::custom),
    }
}

/// An on/off setting that may be left unset (`None`): empty text inherits, like absence.
fn optional_truthy<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Switch {
        Bool(bool),
        Number(i64),
        Text(String),
    }
    match Option::<Switch>::deserialize(deserializer)? {
        None => Ok(None),
        Some(Switch::Bool(value)) => Ok(Some(value)),
        Some(Switch::Number(number)) => parse_switch(&number.to_string())
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(Switch::Text(text)) if text.trim().is_empty() => Ok(None),
        Some(Switch::Text(text)) => parse_switch(&text).map(Some).map_err(serde::de::Error::custom),
    }
}

/// The on/off settings (lower-case, without `STEWARD_`) given empty in `variables`.
fn empty_switch_variables(variables: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let switches: Vec<String> = match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(map)) => map
            .into_iter()
            .filter(|(_, value)| value.is_boolean())
            .map(|(key, _)| key)
            .collect(),
        _ => Vec::new(),
    };
    variables
        .filter(|(_, value)| value.trim().is_empty())
        .filter_map(|(key, _)| {
            // The environment provider matches the prefix in any case.
            key.get(..8)
                .filter(|prefix| prefix.eq_ignore_ascii_case("STEWARD_"))
                .and_then(|_| key.get(8..))
                .map(str::to_ascii_lowercase)
                .filter(|key| switches.contains(key))
        })
        .collect()
}

fn one_line(error: &figment::Error) -> String {
    let mut message = error.to_string().replace('\n', " ");
    if let Some(key) = error.path.first().map(|_| error.path.join(".")) {
        let variable = format!("STEWARD_{}", key.to_uppercase());
        if !message.contains(&variable) {
            message = format!("{variable}: {message}");
        }
    }
    message
}

/// Lists come from TOML as arrays and from the environment as `a,b,c`.
fn list_or_comma_separated<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    /// One item: text, or a number (TOML lists of numbers; figment reads `5` from the
    /// environment as a number).
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Text(String),
        Number(i64),
    }
    impl Item {
        fn text(self) -> String {
            match self {
                Item::Text(text) => text,
                Item::Number(number) => number.to_string(),
            }
        }
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<Item>),
        One(Item),
    }
    let items: Vec<String> = match Raw::deserialize(deserializer)? {
        Raw::List(items) => items.into_iter().map(Item::text).collect(),
        Raw::One(item) => item.text().split(',').map(str::to_owned).collect(),
    };
    items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<T>()
                .map_err(|e| serde::de::Error::custom(format!("`{item}`: {e}")))
        })
        .collect()
}

/// A mail link template: an absolute URL (any scheme, so apps can use their own) with exactly
/// one `{token}`.
fn check_link_template(template: &str) -> Result<(), String> {
    if template.matches("{token}").count() != 1 {
        return Err("must contain `{token}` once, where the token goes".to_owned());
    }
    let example = template.replace("{token}", "token");
    let parsed = url::Url::parse(&example).map_err(|error| format!("is not an absolute URL ({error})"))?;
    if matches!(parsed.scheme(), "javascript" | "data" | "vbscript" | "file") {
        return Err(format!(
            "uses the `{}:` scheme, which a mail link must not",
            parsed.scheme()
        ));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return its large error type
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_need_nothing() {
        Jail::expect_with(|_| {
            let config = Config::load(None).unwrap();
            assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
            assert_eq!(config.database_url(), "sqlite://./data/steward.db?mode=rwc");
            assert_eq!(config.body_limit_bytes, 1_048_576);
            assert_eq!(config.log_format, LogFormat::Pretty);
            assert!(config.migrate_on_start);
            Ok(())
        });
    }

    #[test]
    fn switches_take_every_on_and_off_word_and_refuse_the_rest() {
        for (word, expected) in [
            ("1", Some(true)),
            ("true", Some(true)),
            ("YES", Some(true)),
            (" On ", Some(true)),
            ("TRUE", Some(true)),
            ("0", Some(false)),
            ("false", Some(false)),
            ("No", Some(false)),
            ("OFF", Some(false)),
            ("2", None),
            ("maybe", None),
            ("enabled", None),
            ("y", None),
        ] {
            assert_eq!(parse_switch(word).ok(), expected, "{word:?}");
        }
        Jail::expect_with(|jail| {
            jail.create_file(
                "steward.toml",
                "legacy_device_auth = true\nuser_mgmt_core = false\n",
            )?;
            // Empty: the file's value (else the default) stays.
            jail.set_env("steward_legacy_device_auth", "");
            jail.set_env("STEWARD_USER_MGMT_CORE", " ");
            jail.set_env("STEWARD_MIGRATE_ON_START", "off");
            jail.set_env("STEWARD_WEBHOOK_ALLOW_HTTP", "1");
            jail.set_env("STEWARD_METRICS_ORGANIZATIONS", "Yes");
            let config = Config::load(Some(Path::new("steward.toml"))).unwrap();
            assert!(config.legacy_device_auth);
            assert!(!config.user_mgmt_core);
            assert!(!config.migrate_on_start);
            assert!(config.webhook_allow_http && config.metrics_organizations);
            jail.set_env("STEWARD_USER_MGMT_CORE", "sometimes");
            let error = Config::load(None).unwrap_err().to_string();
            assert!(error.contains("STEWARD_USER_MGMT_CORE"), "{error}");
            assert!(error.contains("use 1, true, yes or on"), "{error}");
            jail.set_env("STEWARD_USER_MGMT_CORE", "7");
            assert!(Config::load(None).is_err());
            Ok(())
        });
        Jail::expect_with(|_| {
            assert!(Config::load(None).unwrap().user_mgmt_core);
            Ok(())
        });
    }

    #[test]
    fn row_level_security_inherits_enforce_unless_set() {
        Jail::expect_with(|jail| {
            let config = Config::load(None).unwrap();
            assert!(!config.enforce && !config.rls_enforced());
            jail.set_env("STEWARD_ENFORCE", "yes");
            assert!(Config::load(None).unwrap().rls_enforced());
            jail.set_env("STEWARD_RLS_ENFORCE", "");
            assert!(Config::load(None).unwrap().rls_enforced());
            jail.set_env("STEWARD_RLS_ENFORCE", "Off");
            assert!(!Config::load(None).unwrap().rls_enforced());
            jail.set_env("STEWARD_ENFORCE", "0");
            jail.set_env("STEWARD_RLS_ENFORCE", "1");
            assert!(Config::load(None).unwrap().rls_enforced());
            jail.set_env("STEWARD_RLS_ENFORCE", "sometimes");
            let error = Config::load(None).unwrap_err().to_string();
            assert!(error.contains("STEWARD_RLS_ENFORCE"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "steward.toml",
                "bind = \"0.0.0.0:9000\"\nlog_format = \"json\"\ntrusted_proxies = [\"10.0.0.0/8\"]\n",
            )?;
            jail.set_env("STEWARD_BIND", "127.0.0.1:7000");
            jail.set_env("STEWARD_DATA_DIR", "/var/lib/steward");
            let config = Config::load(Some(Path::new("steward.toml"))).unwrap();
            assert_eq!(config.bind.to_string(), "127.0.0.1:7000");
            assert_eq!(config.log_format, LogFormat::Json);
            assert_eq!(
                config.trusted_proxies,
                vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
            );
            assert_eq!(
                config.database_url(),
                "sqlite:///var/lib/steward/steward.db?mode=rwc"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_settings_stop_start_up_with_a_suggestion() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "steward.toml",
                "bnd = \"0.0.0.0:9000\"\n[plans.team]\nmax_devices = 3\n",
            )?;
            let error = Config::load(Some(Path::new("steward.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("`bnd`"), "{error}");
            assert!(error.contains("did you mean `bind`"), "{error}");
            jail.create_file("steward.toml", "bind = \"0.0.0.0:9000\"\n")?;
            jail.set_env("STEWARD_DATABSE_URL", "sqlite://x.db");
            let error = Config::load(Some(Path::new("steward.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("STEWARD_DATABSE_URL"), "{error}");
            assert!(error.contains("did you mean STEWARD_DATABASE_URL"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn secrets_are_masked_in_the_effective_configuration() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_SMTP_URL", "smtp://mailer:hunter2@mail.example.com:587");
            jail.set_env(
                "STEWARD_DATABASE_URL",
                "postgres://steward:s3cret@db:5432/steward",
            );
            jail.set_env("STEWARD_MFA_ENCRYPTION_KEY", "c2VjcmV0LWtleS1tYXRlcmlhbA");
            let shown = Config::load(None).unwrap().masked().to_string();
            for secret in ["hunter2", "s3cret", "c2VjcmV0LWtleS1tYXRlcmlhbA"] {
                assert!(!shown.contains(secret), "{shown}");
            }
            assert!(
                shown.contains("smtp://mailer:***@mail.example.com:587"),
                "{shown}"
            );
            assert!(
                shown.contains("postgres://steward:***@db:5432/steward"),
                "{shown}"
            );
            Ok(())
        });
        assert_eq!(
            mask_url_password("sqlite://./data/steward.db?mode=rwc"),
            "sqlite://./data/steward.db?mode=rwc"
        );
        assert_eq!(
            mask_url_password("https://x.example/a@b"),
            "https://x.example/a@b"
        );
        assert_eq!(mask_url_password("redis://:pw@h:6379"), "redis://:***@h:6379");
        assert_eq!(
            mask_url_password("unix:///run/redis.sock?db=1&pass=pw"),
            "unix:///run/redis.sock?db=1&pass=***"
        );
        assert_eq!(
            mask_url_password("postgres://u@h/db?sslmode=require&Password=pw#x"),
            "postgres://u@h/db?sslmode=require&Password=***#x"
        );
    }

    #[test]
    fn every_documented_variable_is_a_setting() {
        let docs = include_str!("../../../docs/configuration.md");
        let known = setting_names();
        let mut documented = 0;
        for word in docs.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if let Some(name) = word.strip_prefix("STEWARD_") {
                let name = name.to_lowercase();
                // (`STEWARD_BND` is the docs' example of a typo.)
                if name.is_empty() || NOT_SETTINGS.contains(&name.as_str()) || name == "bnd" {
                    continue;
                }
                documented += 1;
                assert!(
                    known.contains(&name),
                    "docs/configuration.md names STEWARD_{}",
                    name.to_uppercase()
                );
            }
        }
        assert!(documented > 40, "{documented}");
    }

    #[test]
    fn lists_come_comma_separated_from_the_environment() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1/32");
            jail.set_env("STEWARD_JWT_PRIVATE_KEYS", "/k/old.pem,/k/new.pem");
            jail.set_env(
                "STEWARD_CORS_ALLOWED_ORIGINS",
                "https://admin.example.com, http://localhost:3000",
            );
            let config = Config::load(None).unwrap();
            assert_eq!(config.trusted_proxies.len(), 2);
            assert_eq!(
                config.cors_allowed_origins,
                ["https://admin.example.com", "http://localhost:3000"]
            );
            assert_eq!(
                config.jwt_private_keys,
                vec![PathBuf::from("/k/old.pem"), PathBuf::from("/k/new.pem")]
            );
            jail.set_env("STEWARD_WEBHOOK_RETRY_DELAYS", "1, 2,60");
            assert_eq!(Config::load(None).unwrap().webhook_retry_delays, [1, 2, 60]);
            // One number alone is read as a number.
            jail.set_env("STEWARD_WEBHOOK_RETRY_DELAYS", "7");
            assert_eq!(Config::load(None).unwrap().webhook_retry_delays, [7]);
            jail.set_env("STEWARD_WEBHOOK_RETRY_DELAYS", "");
            assert!(Config::load(None).unwrap().webhook_retry_delays.is_empty());
            jail.set_env("STEWARD_HEALTH_MEMORY_MB", "512,256");
            let error = Config::load(None).unwrap_err().to_string();
            assert!(
                error.contains("STEWARD_HEALTH_MEMORY_MB") && error.contains("above"),
                "{error}"
            );
            jail.set_env("STEWARD_HEALTH_MEMORY_MB", "512");
            let error = Config::load(None).unwrap_err().to_string();
            assert!(
                error.contains("STEWARD_HEALTH_MEMORY_MB") && error.contains("two values"),
                "{error}"
            );
            jail.set_env("STEWARD_HEALTH_MEMORY_MB", "256,512");
            let thresholds = Config::load(None).unwrap().health_thresholds().unwrap();
            assert_eq!(
                (thresholds.memory_mb.warn, thresholds.memory_mb.critical),
                (256.0, 512.0)
            );
            jail.create_file("steward.toml", "webhook_retry_delays = [10, 20]\n")?;
            jail.set_env("STEWARD_WEBHOOK_RETRY_DELAYS", "10,20");
            let from_file = Config::load(Some(std::path::Path::new("steward.toml"))).unwrap();
            assert_eq!(from_file.webhook_retry_delays, [10, 20]);
            jail.set_env("STEWARD_JOB_TIMEOUTS", "{audit_export=3600,device_import=20}");
            let timeouts = Config::load(None).unwrap().job_timeouts;
            assert_eq!(timeouts.get("audit_export"), Some(&3600));
            assert_eq!(timeouts.get("device_import"), Some(&20));
            assert_eq!(timeouts.len(), 2);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_their_setting() {
        let cases = [
            ("STEWARD_WEBHOOK_RETRY_DELAYS", "5,soon"),
            ("STEWARD_WEBHOOK_RETRY_DELAYS", "1,1,1,1,1,1,1,1,1,1,1"),
            ("STEWARD_WEBHOOK_RETRY_DELAYS", "86401"),
            ("STEWARD_WEBHOOK_TIMEOUT_SECS", "0"),
            ("STEWARD_JOB_TIMEOUTS", "{audit_exprt=60}"),
            ("STEWARD_JOB_TIMEOUTS", "{audit_export=0}"),
            ("STEWARD_JOB_TIMEOUTS", "{audit_export=86401}"),
            ("STEWARD_WEBHOOK_ALLOWED_NETWORKS", "10.0.0.0/33"),
            ("STEWARD_NOTIFY_WINDOW_MINUTES", "0"),
            ("STEWARD_BIND", "not-an-address"),
            ("STEWARD_LOG_FORMAT", "xml"),
            ("STEWARD_TRUSTED_PROXIES", "10.0.0.0/99"),
            ("STEWARD_CORS_ALLOWED_ORIGINS", "https://admin.example.com/"),
            ("STEWARD_CORS_ALLOWED_ORIGINS", "*"),
            ("STEWARD_DATABASE_URL", "mysql://localhost/x"),
            ("STEWARD_PUBLIC_URL", "ftp://example.com"),
            ("STEWARD_REDIS_URL", "http://:secret@cache:6379"),
            ("STEWARD_REDIS_KEY_PREFIX", "has space"),
            ("STEWARD_REDIS_KEY_PREFIX", ""),
            ("STEWARD_REDIS_TIMEOUT_MS", "0"),
            ("STEWARD_BODY_LIMIT_BYTES", "0"),
            ("STEWARD_MIGRATE_ON_START", "sometimes"),
            ("STEWARD_OIDC_GROUP_ROLE_MAP", "admins=super_admin,justagroup"),
            ("STEWARD_OIDC_GROUP_ROLE_MAP", "admins=wizard"),
            ("STEWARD_OIDC_GROUP_ROLE_DEFAULTS", "reader"),
        ];
        for (variable, value) in cases {
            Jail::expect_with(|jail| {
                jail.set_env(variable, value);
                let message = Config::load(None).unwrap_err().to_string();
                assert!(message.contains(variable), "{variable}={value}: {message}");
                assert!(!message.contains('\n'), "{message}");
                assert!(!message.contains("secret"), "{message}");
                Ok(())
            });
        }
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        Jail::expect_with(|_| {
            let message = Config::load(Some(Path::new("nope.toml")))
                .unwrap_err()
                .to_string();
            assert!(message.contains("nope.toml"));
            Ok(())
        });
    }

    #[test]
    fn mail_links_follow_the_app_url_and_per_link_templates() {
        Jail::expect_with(|jail| {
            jail.set_env("STEWARD_PUBLIC_URL", "https://steward.example.com/");
            let config = Config::load(None).unwrap();
            assert!(config.serves_mail_pages());
            let links = config.mail_links();
            assert_eq!(
                links.verify_email,
                "https://steward.example.com/verify-email#token={token}"
            );
            jail.set_env("STEWARD_APP_URL", "https://app.example.com/");
            jail.set_env("STEWARD_MAIL_LINK_RESET_PASSWORD", "myapp://reset?t={token}");
            let config = Config::load(None).unwrap();
            assert!(!config.serves_mail_pages());
            let links = config.mail_links();
            assert_eq!(
                links.verify_email,
                "https://app.example.com/verify-email?token={token}"
            );
            assert_eq!(
                links.accept_invitation,
                "https://app.example.com/accept-invitation?token={token}"
            );
            assert_eq!(links.reset_password, "myapp://reset?t={token}");
            for (bad, expected) in [
                ("https://app.example.com/reset", "`{token}` once"),
                ("https://x/{token}/{token}", "`{token}` once"),
                ("reset?token={token}", "absolute URL"),
                ("javascript:alert('{token}')", "must not"),
            ] {
                jail.set_env("STEWARD_MAIL_LINK_RESET_PASSWORD", bad);
                let error = Config::load(None).unwrap_err().to_string();
                assert!(
                    error.contains("STEWARD_MAIL_LINK_RESET_PASSWORD") && error.contains(expected),
                    "{bad}: {error}"
                );
            }
            jail.set_env("STEWARD_MAIL_LINK_RESET_PASSWORD", "myapp://reset?t={token}");
            for bad in [
                "app.example.com",
                "https://",
                "https://app.example.com/?x=1",
                "ftp://app.example.com",
            ] {
                jail.set_env("STEWARD_APP_URL", bad);
                let error = Config::load(None).unwrap_err().to_string();
                assert!(error.contains("STEWARD_APP_URL"), "{bad}: {error}");
            }
            Ok(())
        });
    }
}
