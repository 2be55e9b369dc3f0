//! Building the application: one function used by `main` and by the tests, so the tests run
//! exactly what production runs.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::HttpServer;
use actix_web::dev::{Server, ServerHandle};
use std::sync::Arc;

use steward_api::rate_limit::{RateLimitSettings, RateLimits};
use steward_api::{AppState, HttpSettings};
use steward_app::Steward;
use steward_app::auth::{AuthService, AuthSettings, Federation, MfaSettings};
use steward_app::devices::DeviceAuthCache;
use steward_auth::oidc::{IdTokenVerifier, ProviderSettings, UserInfoClient};
use steward_auth::{HashingCost, KeyRing, PasswordHasher, SigningKeyPem};
use steward_domain::session::{LoginThrottlePolicy, TokenLifetimes};
use steward_persistence::{Database, DatabaseOptions, PersistenceError};

use crate::config::Config;
use crate::keys::{self, KeyLoadError};

/// Why the server could not start. Each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("STEWARD_DATABASE_URL: {0}")]
    Database(PersistenceError),
    #[error("migrations at start failed (set STEWARD_MIGRATE_ON_START=false to skip): {0}")]
    Migration(PersistenceError),
    #[error(transparent)]
    Keys(#[from] KeyLoadError),
    #[error("STEWARD_BIND: cannot listen on {address}: {source}")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics recorder: {0}")]
    Metrics(String),
    #[error("{0}")]
    Setting(String),
}

/// A built server, listening, not yet serving.
pub struct Application {
    port: u16,
    server: Server,
    /// The management server (`STEWARD_METRICS_BIND`) and its port.
    management: Option<(Server, u16)>,
    database: Database,
    signing_keys: Vec<SigningKeyPem>,
    outbox: tokio::task::JoinHandle<()>,
    push: tokio::task::JoinHandle<()>,
    sealer: tokio::task::JoinHandle<()>,
    jobs: tokio::task::JoinHandle<()>,
    events: tokio::task::JoinHandle<()>,
    reports: tokio::task::JoinHandle<()>,
    /// The device event hub and, on PostgreSQL, its listener.
    device_events: [tokio::task::JoinHandle<()>; 2],
    maintenance: Option<tokio::task::JoinHandle<()>>,
    quota_metrics: Option<tokio::task::JoinHandle<()>>,
    /// Hands freed memory back to the system now and then (`memory`).
    trimmer: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Binds the listener first (a port in use fails before anything else happens; port 0
    /// picks a free port), then connects to the database (failing fast when it does not
    /// answer), applies migrations when configured and loads the signing keys.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let listener = TcpListener::bind(config.bind).map_err(|source| StartupError::Bind {
            address: config.bind,
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                address: config.bind,
                source,
            })?
            .port();
        let management_listener = match config.metrics_bind {
            Some(address) => {
                let listener =
                    TcpListener::bind(address).map_err(|source| StartupError::Bind { address, source })?;
                let port = listener
                    .local_addr()
                    .map_err(|source| StartupError::Bind { address, source })?
                    .port();
                Some((listener, address, port))
            }
            None => None,
        };
        let database = connect_database(&config).await?;
        if config.migrate_on_start {
            migrate_up(&config, &database).await?;
        }
        if config.rls_enforced() {
            enforce_row_level_security(&database).await?;
        }
        let signing_keys = keys::load_or_generate(&config)?;
        let metrics = steward_api::metrics::recorder().map_err(StartupError::Metrics)?;
        let auth = auth_service(&config, database.clone(), &signing_keys)?;
        if let Err(error) = auth.prepare_admin_mfa().await {
            tracing::warn!(%error, "could not record the state of admin MFA enforcement; retried on first use");
        }
        let transport = crate::mail::MailTransport::from_config(config.smtp_url.as_deref(), &config.data_dir)
            .map_err(StartupError::Setting)?;
        let from = config
            .mail_from
            .parse()
            .map_err(|error| StartupError::Setting(format!("STEWARD_MAIL_FROM: {error}")))?;
        let health = Arc::new(steward_app::health::HealthBoard::new(
            config
                .health_thresholds()
                .map_err(|error| StartupError::Setting(error.0))?,
        ));
        let outbox = tokio::spawn(crate::mail::run_outbox(
            database.clone(),
            transport,
            from,
            Duration::from_millis(config.outbox_poll_ms.max(10)),
            health.clone(),
        ));

        let device_states = Arc::new(steward_app::settings::DeviceStateCache::default());
        let push = tokio::spawn(crate::push::run_push_worker(
            database.clone(),
            push_provider(&config)?,
            device_states.clone(),
            Duration::from_millis(config.push_poll_ms.max(10)),
            Duration::from_millis(config.push_collapse_ms),
            health.clone(),
        ));

        let sealer = tokio::spawn(crate::audit_sealer::run_audit_sealer(
            database.clone(),
            Duration::from_millis(config.audit_seal_ms.max(10)),
            health.clone(),
        ));

        if config.legacy_device_auth {
            tracing::warn!(
                "STEWARD_LEGACY_DEVICE_AUTH=true: X-API-Key + X-Device-Id act as a device; the key ships \
                 in every app and identifiers are not secrets, so anyone holding them can change that \
                 device's settings. Move devices to their device tokens and turn this off."
            );
        }
        let shared_limits = match &config.redis_url {
            Some(url) => {
                let store = steward_persistence::shared_limits::RedisLimitStore::open(
                    url,
                    &config.redis_key_prefix,
                    Duration::from_millis(config.redis_timeout_ms),
                )
                .map_err(|error| StartupError::Setting(format!("STEWARD_REDIS_URL: {error}")))?;
                let shared = Arc::new(steward_app::limits::SharedLimits::new(Arc::new(store)));
                // Not a reason to stop: the instance counts alone until Redis answers. But a
                // wrong password or address should be seen at once, not at the first 429.
                let probe = shared.clone();
                tokio::spawn(async move {
                    match probe.ping().await {
                        Ok(()) => tracing::info!("rate limits are shared through Redis"),
                        Err(error) => tracing::error!(
                            %error,
                            "STEWARD_REDIS_URL does not answer: this instance counts its own rate limits until it does"
                        ),
                    }
                });
                Some(shared)
            }
            None => None,
        };
        let steward = Steward::new(database.clone(), auth)
            .with_device_auth(DeviceAuthCache::default().with_legacy_auth(config.legacy_device_auth))
            .with_device_states(device_states)
            .with_quota_plans(config.quota_plans())
            .with_jobs(steward_app::jobs::JobSettings {
                timeout: Duration::from_secs(config.job_timeout_secs),
                timeouts: config
                    .job_timeouts
                    .iter()
                    .filter_map(|(kind, seconds)| {
                        steward_domain::jobs::JobKind::parse(kind)
                            .map(|kind| (kind, Duration::from_secs(*seconds)))
                    })
                    .collect(),
                lease: Duration::from_secs(config.job_lease_secs),
                poll: Duration::from_millis(config.job_poll_ms),
                // SQLite has one writer: a second import would only wait for the first.
                workers: if database.backend() == steward_persistence::Backend::Sqlite {
                    1
                } else {
                    config.job_workers
                },
                max_running_per_org: config.job_max_running_per_org,
                retention: Duration::from_secs(config.job_retention_hours * 3600),
            })
            .with_events(config.events())
            .with_health(health.clone())
            .with_clock(config.clock.clone())
            .with_device_events(steward_app::device_events::HubSettings {
                retention_days: config.event_retention_days,
                max_streams: config.event_streams_max,
                max_streams_per_caller: config.event_streams_per_caller,
            })
            .with_features(steward_app::features::Features {
                user_mgmt_core: config.user_mgmt_core,
                enforce: config.enforce,
                rls_enforce: config.rls_enforced(),
            })
            .with_shared_limits(shared_limits.clone());
        let jobs = tokio::spawn(steward_app::jobs::run_jobs(steward.clone()));
        let reports = tokio::spawn(steward_app::reports::run_report_scheduler(
            steward.clone(),
            Duration::from_millis(config.report_poll_ms),
        ));
        let events = tokio::spawn(steward_app::events::run_events(steward.clone()));
        let device_events = [
            tokio::spawn(steward_app::device_events::run_event_hub(
                steward.clone(),
                Duration::from_millis(250),
            )),
            tokio::spawn({
                let database = database.clone();
                let hub = steward.device_events.clone();
                async move {
                    database
                        .listen_device_events(|signal| match signal {
                            steward_persistence::EventSignal::Listening => hub.set_listening(true),
                            steward_persistence::EventSignal::Lost => hub.set_listening(false),
                            steward_persistence::EventSignal::Stored(low, high) => hub.notified(low, high),
                        })
                        .await;
                }
            }),
        ];
        let maintenance = (config.maintenance_interval_secs > 0).then(|| {
            let every = Duration::from_secs(config.maintenance_interval_secs);
            health
                .vitals
                .start(steward_app::health::Worker::Maintenance, every);
            tokio::spawn(steward_app::maintenance::run_maintenance(
                database.clone(),
                config.retention(),
                every,
                health.clone(),
                |report| {
                    steward_api::metrics::record_maintenance(report);
                    tracing::info!(
                        rows = report.total(),
                        seconds = report.elapsed.as_secs_f64(),
                        "clean-up pass"
                    );
                },
            ))
        });
        let quota_metrics = (config.quota_metrics_interval_secs > 0).then(|| {
            let per_organization = config.metrics_organizations;
            tokio::spawn(steward_app::quotas::run_quota_metrics(
                steward.clone(),
                Duration::from_secs(config.quota_metrics_interval_secs),
                move |lines| steward_api::metrics::record_quota_utilisation(lines, per_organization),
            ))
        });
        let state = AppState {
            steward,
            metrics,
            rate_limits: RateLimits::shared(
                RateLimitSettings {
                    register_per_hour: config.rate_limit_register_per_hour,
                    login_per_hour: config.rate_limit_login_per_hour,
                    password_reset_per_hour: config.rate_limit_password_reset_per_hour,
                    refresh_per_hour: config.rate_limit_refresh_per_hour,
                    admin_per_minute: config.rate_limit_admin_per_minute,
                    device_events_per_minute: config.rate_limit_device_events_per_minute,
                },
                shared_limits,
            ),
            metrics_on_api_port: config.metrics_bind.is_none(),
        };
        let management = match management_listener {
            Some((listener, address, port)) => {
                let management_state = state.clone();
                let server = HttpServer::new(move || steward_api::management_app(management_state.clone()))
                    .workers(1)
                    .shutdown_timeout(1)
                    .listen(listener)
                    .map_err(|source| StartupError::Bind { address, source })?
                    .run();
                tracing::info!(address = %address, port, "metrics served on the management address");
                Some((server, port))
            }
            None => None,
        };
        let settings = HttpSettings {
            body_limit: config.body_limit_bytes,
            trusted_proxies: config.trusted_proxies.clone(),
            cors_allowed_origins: config.cors_allowed_origins.clone(),
            mail_pages: config.serves_mail_pages(),
            openapi: Some(steward_api::openapi_document()),
        };
        let mut server = HttpServer::new(move || steward_api::app(state.clone(), settings.clone()))
            .shutdown_timeout(10)
            .client_request_timeout(Duration::from_secs(30));
        if let Some(workers) = config.workers {
            server = server.workers(workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                address: config.bind,
                source,
            })?
            .run();
        let host = match config.bind.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        tracing::info!(
            address = %config.bind,
            port,
            database = ?database.backend(),
            data_dir = %config.data_dir.display(),
            api_reference = %format!("http://{host}:{port}/docs/"),
            "listening"
        );
        Ok(Self {
            port,
            server,
            management,
            database,
            signing_keys,
            outbox,
            push,
            sealer,
            jobs,
            events,
            reports,
            device_events,
            maintenance,
            quota_metrics,
            trimmer: tokio::spawn(crate::memory::run_trimmer()),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The management port (`STEWARD_METRICS_BIND`), when one is configured.
    pub fn management_port(&self) -> Option<u16> {
        self.management.as_ref().map(|(_, port)| *port)
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    pub fn signing_keys(&self) -> &[SigningKeyPem] {
        &self.signing_keys
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM or [`ServerHandle::stop`]).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let management = self.management.map(|(server, _)| {
            let handle = server.handle();
            tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(%error, "the management server (STEWARD_METRICS_BIND) stopped");
                }
            });
            handle
        });
        let result = self.server.await;
        if let Some(management) = management {
            management.stop(true).await;
        }
        self.outbox.abort();
        self.push.abort();
        self.sealer.abort();
        self.jobs.abort();
        self.events.abort();
        self.reports.abort();
        for task in &self.device_events {
            task.abort();
        }
        if let Some(maintenance) = &self.maintenance {
            maintenance.abort();
        }
        if let Some(quota_metrics) = &self.quota_metrics {
            quota_metrics.abort();
        }
        self.trimmer.abort();
        result
    }
}

/// Opens the configured database with the configured pool limits.
pub async fn connect_database(config: &Config) -> Result<Database, StartupError> {
    let mut options = DatabaseOptions::new(config.database_url());
    options.max_connections = config.database_max_connections;
    options.connect_timeout = Duration::from_secs(config.database_connect_timeout_secs);
    Ok(Database::connect(&options)
        .await
        .map_err(StartupError::Database)?
        .with_quota_plans(config.quota_plans())
        .with_owner_url(config.database_migration_url()))
}

/// Applies pending migrations: as the schema owner (`STEWARD_DATABASE_MIGRATION_URL`) through
/// a connection of its own when that URL is set, else through `database`.
pub async fn migrate_up(config: &Config, database: &Database) -> Result<(), StartupError> {
    if config.database_migration_url.is_none() || config.database_migration_url() == config.database_url() {
        return database.migrate_up().await.map_err(StartupError::Migration);
    }
    let mut options = DatabaseOptions::new(config.database_migration_url());
    options.max_connections = 2;
    options.min_connections = 0;
    options.connect_timeout = Duration::from_secs(config.database_connect_timeout_secs);
    let owner = Database::connect(&options)
        .await
        .map_err(StartupError::Database)?;
    let outcome = owner.migrate_up().await.map_err(StartupError::Migration);
    let _ = owner.close().await;
    outcome
}

/// `STEWARD_RLS_ENFORCE`: turns row-level security on (idempotent). On PostgreSQL a table it
/// could not change stops the start (the operator asked for enforcement and would not have it);
/// on SQLite, which has none, a warning.
async fn enforce_row_level_security(database: &Database) -> Result<(), StartupError> {
    use steward_domain::tenancy::RlsStatus;
    let report = steward_app::tenancy::row_level_security(
        database,
        Some(true),
        steward_domain::Actor::system(),
        Default::default(),
    )
    .await
    .map_err(|error| StartupError::Setting(format!("STEWARD_RLS_ENFORCE: {error}")))?;
    for warning in &report.warnings {
        tracing::warn!("row-level security: {warning}");
    }
    if report.backend == "sqlite" {
        return Ok(());
    }
    if report.applies_to_server_role == Some(false) {
        return Err(StartupError::Setting(
            "STEWARD_RLS_ENFORCE: the server connects as a superuser or a BYPASSRLS role, which row-level security never binds; connect as a role of its own (deploy/postgres-roles.sql)"
                .to_owned(),
        ));
    }
    let refused: Vec<String> = report
        .tables
        .iter()
        .filter(|table| table.status == RlsStatus::Warning)
        .map(|table| {
            format!(
                "{}: {}",
                table.table,
                table.message.as_deref().unwrap_or("refused")
            )
        })
        .collect();
    if !refused.is_empty() {
        return Err(StartupError::Setting(format!(
            "STEWARD_RLS_ENFORCE: row-level security could not be turned on ({}); set STEWARD_DATABASE_MIGRATION_URL to the tables' owner",
            refused.join("; ")
        )));
    }
    let changed = report
        .tables
        .iter()
        .filter(|table| table.status == RlsStatus::Changed)
        .count();
    tracing::info!(
        changed,
        tables = report.tables.len(),
        "row-level security enforced"
    );
    Ok(())
}

/// The authentication service as configured: key ring, Argon2id cost, lifetimes and limits.
pub fn auth_service(
    config: &Config,
    database: Database,
    signing_keys: &[SigningKeyPem],
) -> Result<AuthService<Database>, StartupError> {
    let ring = KeyRing::new(signing_keys, &config.jwt_issuer, &config.jwt_audience)
        .map_err(|error| StartupError::Setting(format!("STEWARD_JWT_PRIVATE_KEYS: {error}")))?;
    let hasher = PasswordHasher::new(HashingCost {
        memory_kib: config.password_hash_memory_kib,
        iterations: config.password_hash_iterations,
        parallelism: config.password_hash_parallelism,
    })
    .map_err(|error| StartupError::Setting(format!("STEWARD_PASSWORD_HASH_*: {error}")))?;
    let settings = AuthSettings {
        lifetimes: TokenLifetimes {
            access: chrono::Duration::seconds(config.access_token_ttl_secs),
            refresh: chrono::Duration::days(config.refresh_token_ttl_days),
            refresh_grace: chrono::Duration::seconds(config.refresh_grace_secs),
        },
        throttle: LoginThrottlePolicy {
            max_attempts: config.login_max_attempts,
            window: chrono::Duration::minutes(config.login_lockout_minutes),
            lockout: chrono::Duration::minutes(config.login_lockout_minutes),
        },
        session_cache_ttl: Duration::from_millis(config.session_cache_ms),
        public_url: config.public_url(),
        links: config.mail_links(),
        mail: Arc::new(
            config
                .mail_templates()
                .map_err(|error| StartupError::Setting(error.0))?,
        ),
        password_min_strength: config.password_min_strength,
        ..AuthSettings::default()
    };
    let (group_roles, default_roles) = config
        .group_role_mapping()
        .map_err(|error| StartupError::Setting(error.to_string()))?;
    let client = reqwest::Client::builder()
        .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| StartupError::Setting(format!("HTTP client: {error}")))?;
    let min_refetch = Duration::from_secs(config.oidc_jwks_min_refresh_secs);
    let mut providers = std::collections::HashMap::new();
    let mut add = |name: &str, issuers: Vec<String>, jwks_url: &str, client_ids: &[String]| {
        if client_ids.is_empty() {
            return;
        }
        let settings = ProviderSettings {
            name: name.to_owned(),
            issuers,
            jwks_url: jwks_url.to_owned(),
            client_ids: client_ids.to_vec(),
            min_refetch,
        };
        providers.insert(
            name.to_owned(),
            Arc::new(IdTokenVerifier::new(settings, client.clone())),
        );
    };
    add(
        "google",
        vec![
            "https://accounts.google.com".to_owned(),
            "accounts.google.com".to_owned(),
        ],
        &config.google_jwks_url,
        &config.google_client_ids,
    );
    add(
        "apple",
        vec!["https://appleid.apple.com".to_owned()],
        &config.apple_jwks_url,
        &config.apple_client_ids,
    );
    if let (Some(issuer), Some(jwks_url)) = (&config.oidc_issuer, &config.oidc_jwks_url) {
        add("oidc", vec![issuer.clone()], jwks_url, &config.oidc_client_ids);
    }
    let userinfo = config
        .oidc_userinfo_url
        .clone()
        .map(|url| UserInfoClient::new(url, client.clone()));
    let federation = Federation {
        providers,
        group_roles,
        default_roles,
        userinfo,
        provisioning_off: !config.user_mgmt_core,
    };
    let mfa_key =
        crate::keys::mfa_encryption_key(config).map_err(|error| StartupError::Setting(error.to_string()))?;
    let secrets = steward_auth::mfa::SecretBox::from_base64(&mfa_key)
        .map_err(|error| StartupError::Setting(format!("STEWARD_MFA_ENCRYPTION_KEY: {error}")))?;
    let mfa = MfaSettings {
        issuer: config.mfa_issuer(),
        for_federated: config.mfa_for_federated,
        secrets: Arc::new(secrets),
        admin: steward_domain::mfa::AdminMfaPolicy {
            required: config.admin_mfa_required,
            grace: chrono::Duration::hours(config.admin_mfa_grace_hours),
        },
    };
    Ok(
        AuthService::new(database, Arc::new(ring), Arc::new(hasher), settings)
            .with_federation(federation)
            .with_mfa(mfa),
    )
}

/// The configured push provider: FCM, a webhook, or the log.
fn push_provider(config: &Config) -> Result<crate::push::PushProvider, StartupError> {
    use crate::push::{FcmClient, PushProvider, ServiceAccount};
    let http = || {
        reqwest::Client::builder()
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| StartupError::Setting(format!("HTTP client: {error}")))
    };
    if let Some(path) = &config.fcm_service_account_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            StartupError::Setting(format!(
                "STEWARD_FCM_SERVICE_ACCOUNT_FILE: cannot read {}: {error}",
                path.display()
            ))
        })?;
        let account: ServiceAccount = serde_json::from_str(&text).map_err(|error| {
            StartupError::Setting(format!(
                "STEWARD_FCM_SERVICE_ACCOUNT_FILE: not a service-account key file: {error}"
            ))
        })?;
        return Ok(PushProvider::Fcm(FcmClient::new(
            account,
            config.fcm_endpoint.clone(),
            http()?,
        )));
    }
    if let Some(url) = &config.push_webhook_url {
        return Ok(PushProvider::Webhook {
            url: url.clone(),
            secret: config.push_webhook_secret.clone(),
            http: http()?,
        });
    }
    Ok(PushProvider::Log)
}
