//! The `steward` command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::app::{self, Application};
use crate::config::Config;
use crate::{keys, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    about = "User management and remote device control"
)]
pub struct Cli {
    /// A TOML configuration file; `STEWARD_*` environment variables override it.
    #[arg(long, global = true, env = "STEWARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Let a command that uses the database (admin, apikeys, allowlist, maintenance, quotas)
    /// create and migrate a new one when none is there; without it such a command refuses, so
    /// one run outside the server's data dir does not silently make a second database.
    #[arg(long, global = true)]
    pub init: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings `serve` takes as flags; a flag wins over the environment and the file.
#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on (`STEWARD_BIND`, default 127.0.0.1:8080).
    #[arg(long)]
    pub bind: Option<std::net::SocketAddr>,
    /// Where SQLite's database, generated keys and local mail live (`STEWARD_DATA_DIR`,
    /// default ./data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://…` or `postgres://…` (`STEWARD_DATABASE_URL`, default SQLite in the data dir).
    #[arg(long)]
    pub database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Manage the database schema.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// The database's own defences: PostgreSQL row-level security.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Print the OpenAPI document as JSON.
    Openapi,
    /// Ask the local server whether it is ready (`GET /health/ready` on the configured bind
    /// address; a wildcard address is asked on loopback): exit 0 when it answers 200, 1
    /// otherwise. For container health checks, where no curl is at hand.
    Health {
        /// Ask `GET /health` (liveness) instead of readiness.
        #[arg(long)]
        live: bool,
    },
    /// Manage RS256 signing keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage administrators.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Manage the application API keys device apps send as `X-API-Key`.
    Apikeys {
        #[command(subcommand)]
        action: ApiKeysAction,
    },
    /// The admin API's IP allowlist.
    Allowlist {
        #[command(subcommand)]
        action: AllowlistAction,
    },
    /// Database clean-up.
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
    },
    /// Organizations' plans and quotas.
    Quotas {
        #[command(subcommand)]
        action: QuotasAction,
    },
    /// The configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Check the configuration (defaults, the file, the environment) as `serve` would, and
    /// print the effective values as JSON with secrets masked. A bad configuration exits 2
    /// naming the setting.
    Check,
    /// Export the instance's configuration (setting catalog, organizations, policies, custom
    /// roles, IP allowlist, webhooks, notification rules, plans) as the document `POST
    /// /api/admin/v1/config/export` makes, to standard output or `--out`.
    Export {
        /// Comma-separated categories (default: all).
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
        /// Seal the file with a passphrase read from the first line of standard input
        /// (webhook secrets are included only then).
        #[arg(long)]
        passphrase_stdin: bool,
        /// Write the file here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a configuration file as `POST /api/admin/v1/config/import` does: everything is
    /// checked first, the diff is printed, and the changes are applied in one transaction
    /// (none with `--dry-run`). Exit 2 with the problems when the file does not fit.
    Import {
        /// The file (`-`: standard input).
        file: PathBuf,
        /// Print the diff and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// For items that exist and differ: `skip` (default) or `overwrite`.
        #[arg(long, default_value = "skip")]
        on_conflict: String,
        /// Read the passphrase of a sealed file from the first line of standard input.
        #[arg(long)]
        passphrase_stdin: bool,
        /// The operator (email) who owns the webhooks the import creates; needed when it
        /// creates any.
        #[arg(long = "as")]
        owner: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QuotasAction {
    /// Set one quota of an organization or an account, or its plan. Audited like `PUT …/quotas`.
    Set {
        /// The organization's id or slug, or an account's email address.
        org: String,
        /// An organization's `devices`, `users`, `enrollment_tokens`, `policies`, `imports_per_day`, `api_requests_per_minute`; an account's
        /// `personal_devices`, `groups`, `group_members`, `personal_access_tokens`; or `plan`.
        key: String,
        /// A whole number, `unlimited`, or `default` (back to the plan's limit); for `plan`,
        /// a configured plan's name.
        value: String,
    },
    /// Print an organization's or account's plan and each quota beside its use.
    Show {
        /// The organization's id or slug, or an account's email address.
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MaintenanceAction {
    /// Run one clean-up pass now: delete expired sessions, spent tokens, sent mail, delivered
    /// pushes and ended invites, transfers and commands (audit entries are never deleted).
    /// Prints the rows per table.
    Run {
        /// Count what would be deleted and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AllowlistAction {
    /// Stop enforcing the allowlist (the break-glass path when no allowed address is at hand;
    /// every instance stops within 5 seconds). The entries stay.
    Disable,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysAction {
    /// Create a key; its secret is printed once.
    Create {
        /// What the key is for (1 to 100 characters), shown in listings.
        #[arg(long)]
        name: String,
    },
    /// List keys (prefix, name, created, last used, revoked).
    List,
    /// Revoke a key by its id.
    Revoke {
        /// The key's id, as `apikeys list` shows it.
        id: uuid::Uuid,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Create a `super_admin`, or promote an existing account to one.
    Create {
        /// The account's email address (created when no account has it).
        #[arg(long)]
        email: String,
        /// Read the new account's password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// The new account's display name (default: the part of the address before `@`).
        #[arg(long)]
        display_name: Option<String>,
    },
    /// Remove an account's second factor and end its sessions (the break-glass path when an
    /// administrator lost the device and the recovery codes, and nobody else can reset it).
    ResetMfa {
        /// The account's email address.
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// PostgreSQL row-level security on every organization-owned table: prints the report as
    /// JSON (a table the role may not change is a `warning` line; then the exit code is 1).
    Rls {
        #[command(subcommand)]
        action: RlsAction,
    },
    /// Make sure the default organization exists, add every account that belongs to no
    /// organization to it and attach managed devices without an organization to it; prints
    /// how many rows each step touched as JSON (a second run touches none).
    RepairDefaultOrg {
        /// The organization role of the accounts added (default `STEWARD_DEFAULT_ORG_ROLE`,
        /// `member`).
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RlsAction {
    /// Put Steward's policy on every organization-owned table and force it (idempotent: a
    /// second run reports `unchanged`).
    Enable,
    /// Take row-level security off those tables.
    Disable,
    /// Report each table as it stands.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply all pending migrations.
    Up,
    /// Roll back migrations: the last one, `--steps N`, or `--all`.
    Down {
        /// How many migrations to roll back, newest first.
        #[arg(long, default_value_t = 1, conflicts_with = "all")]
        steps: u32,
        /// Roll back every migration (an empty database).
        #[arg(long)]
        all: bool,
    },
    /// List applied and pending migrations.
    Status,
    /// Drop every table and migrate from scratch. Destroys all data; needs `--yes`.
    Fresh {
        /// Confirm that every row in the database may be destroyed.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Generate an RS256 private key (PKCS#8 PEM): to stdout, or to a new file with `--out`.
    Generate {
        /// Write the key to this new file (mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add a new signing key to the development key directory (`<data dir>/keys`, or `--dir`):
    /// it signs after the next start, and the older keys keep verifying.
    Rotate {
        /// The key directory (default: `<data dir>/keys`).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// A failure of a command, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Startup(#[from] crate::app::StartupError),
    #[error("{0}")]
    Failed(String),
    /// `steward health`: the server did not answer 200 (exit 1, what container health checks
    /// read as unhealthy; 2 is reserved there).
    #[error("{0}")]
    Unhealthy(String),
}

impl CliError {
    /// The process's exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Unhealthy(_) => 1,
            _ => 2,
        }
    }
}

pub async fn run(cli: Cli) -> Result<(), CliError> {
    let init = cli.init;
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Openapi => {
            println!("{}", openapi_json()?);
            Ok(())
        }
        Command::Health { live } => {
            let config = load(cli.config)?;
            let path = if live { "/health" } else { "/health/ready" };
            let status = probe(config.bind, path).map_err(|error| {
                CliError::Unhealthy(format!("no answer from {}{path}: {error}", config.bind))
            })?;
            if status == 200 {
                println!("ok");
                Ok(())
            } else {
                Err(CliError::Unhealthy(format!(
                    "{}{path} answered {status}",
                    config.bind
                )))
            }
        }
        Command::Keys {
            action: KeysAction::Generate { out },
        } => generate_key(out),
        Command::Serve(flags) => {
            let mut config = load(cli.config)?;
            if let Some(bind) = flags.bind {
                config.bind = bind;
            }
            if let Some(data_dir) = flags.data_dir {
                config.data_dir = data_dir;
            }
            if let Some(url) = flags.database_url {
                config.database_url = Some(url);
            }
            config.check().map_err(CliError::Config)?;
            let application = Application::build(config).await?;
            application
                .run_until_stopped()
                .await
                .map_err(|error| CliError::Failed(format!("server stopped: {error}")))
        }
        Command::Migrate { action } => {
            let config = load(cli.config)?;
            migrate(&config, action).await
        }
        Command::Db {
            action: DbAction::Rls { action },
        } => {
            let config = load(cli.config)?;
            row_level_security(&config, action).await
        }
        Command::Db {
            action: DbAction::RepairDefaultOrg { role },
        } => {
            let mut config = load(cli.config)?;
            if let Some(role) = role {
                config.default_org_role = role;
            }
            let role = config.default_org_role().map_err(CliError::Config)?;
            let database = open_database(&config, false).await?;
            let repair = steward_app::tenancy::repair_default_organization(
                &database,
                role,
                steward_domain::Actor::system(),
            )
            .await
            .map_err(|error| CliError::Failed(error.to_string()))?;
            let text =
                serde_json::to_string_pretty(&repair).map_err(|error| CliError::Failed(error.to_string()))?;
            println!("{text}");
            Ok(())
        }
        Command::Keys {
            action: KeysAction::Rotate { dir },
        } => {
            let dir = match dir {
                Some(dir) => dir,
                None => load(cli.config)?.keys_dir(),
            };
            let path = keys::write_new_key(&dir).map_err(CliError::Failed)?;
            println!("{}", path.display());
            eprintln!(
                "new signing key written; it signs after the next start. Keep the older keys until \
                 their last access token has expired (the access-token lifetime), then remove them."
            );
            Ok(())
        }
        Command::Admin {
            action:
                AdminAction::Create {
                    email,
                    password_stdin,
                    display_name,
                },
        } => {
            let config = load(cli.config)?;
            create_admin(&config, &email, password_stdin, display_name, init).await
        }
        Command::Admin {
            action: AdminAction::ResetMfa { email },
        } => {
            let config = load(cli.config)?;
            let database = open_database(&config, init).await?;
            let signing_keys =
                keys::load_or_generate(&config).map_err(|error| CliError::Failed(error.to_string()))?;
            let service = app::auth_service(&config, database, &signing_keys)?;
            let user = service
                .reset_mfa_by_email(&email)
                .await
                .map_err(|error| CliError::Failed(error.to_string()))?;
            println!(
                "removed the second factor of {} ({}) and ended its sessions",
                user.email, user.id
            );
            Ok(())
        }
        Command::Apikeys { action } => {
            let config = load(cli.config)?;
            api_keys(&config, action, init).await
        }
        Command::Maintenance {
            action: MaintenanceAction::Run { dry_run },
        } => {
            let config = load(cli.config)?;
            let database = open_database(&config, init).await?;
            let report = steward_app::maintenance::run_cleanup(
                &database,
                &config.retention(),
                chrono::Utc::now(),
                dry_run,
            )
            .await
            .map_err(|error| CliError::Failed(error.to_string()))?;
            let verb = if dry_run { "would delete" } else { "deleted" };
            for (target, rows) in &report.deleted {
                println!("{:<26} {rows:>10}", target.table());
            }
            println!("{:<26} {:>10}", "total", report.total());
            eprintln!(
                "{verb} {} rows in {:.2} s (audit entries are never deleted)",
                report.total(),
                report.elapsed.as_secs_f64()
            );
            if report.rolled_up_days > 0 {
                eprintln!(
                    "counted {} days of audit entries for the usage statistics",
                    report.rolled_up_days
                );
            }
            Ok(())
        }
        Command::Config {
            action: ConfigAction::Check,
        } => {
            let config = load(cli.config)?;
            let templates = config
                .mail_templates()
                .map_err(|error| CliError::Failed(error.0))?;
            let shown = serde_json::to_string_pretty(&config.masked())
                .map_err(|error| CliError::Failed(error.to_string()))?;
            println!("{shown}");
            if !templates.locales().is_empty() {
                eprintln!("mail translations: {}", templates.locales().join(", "));
            }
            eprintln!("the configuration is valid");
            Ok(())
        }
        Command::Quotas { action } => {
            let config = load(cli.config)?;
            quotas(&config, action, init).await
        }
        Command::Config {
            action:
                ConfigAction::Export {
                    include,
                    passphrase_stdin,
                    out,
                },
        } => {
            let config = load(cli.config)?;
            let steward = shell_steward(&config, init).await?;
            let include = steward_app::config_backup::parse_include(&include).map_err(app_failed)?;
            let passphrase = passphrase_stdin.then(read_stdin_line).transpose()?;
            let file = steward_app::config_backup::ConfigBackup::new(&steward)
                .export(
                    "shell",
                    &include,
                    passphrase,
                    steward_auth::sealed::KdfCost::default(),
                    Some(
                        steward_domain::audit::AuditEntry::new(
                            steward_domain::audit::Actor::system(),
                            steward_domain::audit::AuditAction::known("config.exported"),
                            "configuration",
                        )
                        .origin(shell_origin()),
                    ),
                )
                .await
                .map_err(app_failed)?;
            match out {
                Some(path) => {
                    write_private(&path, &file.bytes)
                        .map_err(|error| CliError::Failed(format!("{}: {error}", path.display())))?;
                    eprintln!(
                        "wrote {} ({} bytes, {})",
                        path.display(),
                        file.bytes.len(),
                        file.checksum
                    );
                }
                None => {
                    use std::io::Write as _;
                    std::io::stdout()
                        .write_all(&file.bytes)
                        .map_err(|error| CliError::Failed(error.to_string()))?;
                }
            }
            Ok(())
        }
        Command::Config {
            action:
                ConfigAction::Import {
                    file,
                    dry_run,
                    on_conflict,
                    passphrase_stdin,
                    owner,
                },
        } => {
            let config = load(cli.config)?;
            let on_conflict = steward_domain::config_backup::OnConflict::parse(&on_conflict)
                .ok_or_else(|| CliError::Failed("--on-conflict must be skip or overwrite".to_owned()))?;
            if passphrase_stdin && file.as_os_str() == "-" {
                return Err(CliError::Failed(
                    "standard input cannot carry both the file and the passphrase".to_owned(),
                ));
            }
            let bytes = if file.as_os_str() == "-" {
                use std::io::Read as _;
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .map_err(|error| CliError::Failed(error.to_string()))?;
                bytes
            } else {
                std::fs::read(&file)
                    .map_err(|error| CliError::Failed(format!("{}: {error}", file.display())))?
            };
            let passphrase = passphrase_stdin.then(read_stdin_line).transpose()?;
            let steward = shell_steward(&config, init).await?;
            let owner = match owner {
                None => None,
                Some(email) => Some({
                    use steward_domain::accounts::AccountStore as _;
                    let address = steward_domain::identity::EmailAddress::parse(&email)
                        .map_err(|error| CliError::Failed(format!("--as: {error}")))?;
                    steward
                        .store
                        .find_user_by_email(&address)
                        .await
                        .map_err(|error| CliError::Failed(error.to_string()))?
                        .ok_or_else(|| CliError::Failed(format!("no account {email}")))?
                        .id
                }),
            };
            let report = steward_app::config_backup::ConfigBackup::new(&steward)
                .import(
                    &steward_app::config_backup::Importer::Shell { owner },
                    &bytes,
                    passphrase,
                    steward_app::config_backup::ImportOptions { dry_run, on_conflict },
                    &shell_origin(),
                )
                .await
                .map_err(app_failed)?;
            for item in &report.items {
                let action = serde_json::to_value(item.action).unwrap_or_default();
                let scope = item
                    .organization
                    .as_deref()
                    .map(|slug| format!("{slug}/"))
                    .unwrap_or_default();
                let fields = if item.fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", item.fields.join(", "))
                };
                let reason = item
                    .reason
                    .as_deref()
                    .map(|reason| format!(": {reason}"))
                    .unwrap_or_default();
                println!(
                    "{:<10} {:<19} {scope}{}{fields}{reason}",
                    action.as_str().unwrap_or_default(),
                    item.category.as_str(),
                    item.key
                );
            }
            let counts: Vec<String> = report
                .counts
                .iter()
                .map(|(name, count)| format!("{count} {name}"))
                .collect();
            eprintln!(
                "{}: {}",
                if report.applied {
                    "imported"
                } else {
                    "dry run, nothing changed"
                },
                counts.join(", ")
            );
            Ok(())
        }
        Command::Allowlist {
            action: AllowlistAction::Disable,
        } => {
            let config = load(cli.config)?;
            let database = open_database(&config, init).await?;
            steward_app::ip_allowlist::disable_from_shell(&database)
                .await
                .map_err(|error| CliError::Failed(error.message))?;
            println!(
                "the admin API's IP allowlist is disabled; every instance stops enforcing it within 5 seconds"
            );
            Ok(())
        }
    }
}

/// A Steward for a shell command: the database, the instance's key (webhook secrets), its plans
/// and event settings; no workers.
async fn shell_steward(
    config: &Config,
    init: bool,
) -> Result<steward_app::Steward<steward_persistence::Database>, CliError> {
    // Webhook secrets are sealed with the server's key: a shell that made a key of its own (run
    // with another data dir) would export nothing it could open and import what the server
    // cannot open.
    let key_file = config.keys_dir().join("mfa-encryption.key");
    if config.mfa_encryption_key.is_none() && !key_file.exists() {
        return Err(CliError::Failed(format!(
            "no STEWARD_MFA_ENCRYPTION_KEY and no {}: run the command with the server's \
             configuration (its data dir, or the key in STEWARD_MFA_ENCRYPTION_KEY)",
            key_file.display()
        )));
    }
    let database = open_database(config, init).await?;
    let signing_keys = keys::load_or_generate(config).map_err(|error| CliError::Failed(error.to_string()))?;
    let auth = app::auth_service(config, database.clone(), &signing_keys)?;
    Ok(steward_app::Steward::new(database, auth)
        .with_quota_plans(config.quota_plans())
        .with_events(config.events()))
}

fn shell_origin() -> steward_domain::audit::RequestOrigin {
    steward_domain::audit::RequestOrigin {
        user_agent: Some("steward-cli".to_owned()),
        ..Default::default()
    }
}

/// An application refusal, with its field problems, as the command's error.
fn app_failed(error: steward_app::AppError) -> CliError {
    let mut message = error.message.clone();
    for detail in &error.details {
        message.push_str(&format!("\n  {}: {}", detail.field, detail.message));
    }
    CliError::Failed(message)
}

/// Writes a file only its owner may read (0600 on Unix): an export names the instance's
/// networks, webhooks and roles.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    // An existing file keeps its mode when opened: set it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)
}

fn read_stdin_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|error| CliError::Failed(error.to_string()))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// The database for an administrative command, migrated like `serve` would.
/// Refuses (without `init`) to create a database: a SQLite file that is not there, or a database
/// without Steward's schema.
async fn open_database(config: &Config, init: bool) -> Result<steward_persistence::Database, CliError> {
    let hint = "run the command with the server's configuration (its data dir, STEWARD_DATA_DIR or \
                --config), or pass --init to create and migrate a new database";
    if !init
        && let Some(path) = sqlite_file(&config.database_url())
        && !path.exists()
    {
        return Err(CliError::Failed(format!(
            "no Steward database at {}: {hint}",
            path.display()
        )));
    }
    let database = app::connect_database(config).await?;
    // A read only: the refusal must not leave a migrations table behind.
    if !init
        && !database
            .has_table("seaql_migrations")
            .await
            .map_err(|error| CliError::Failed(error.to_string()))?
    {
        return Err(CliError::Failed(format!(
            "the database has no Steward schema yet: {hint}"
        )));
    }
    // Only what is pending, and as the schema owner when a migration URL is set: the
    // application role may not create SeaORM's table, even one that exists.
    let pending = !database
        .migration_state()
        .await
        .map_err(|error| CliError::Failed(error.to_string()))?
        .pending
        .is_empty();
    if (init || config.migrate_on_start) && pending {
        app::migrate_up(config, &database).await?;
    }
    Ok(database)
}

async fn api_keys(config: &Config, action: ApiKeysAction, init: bool) -> Result<(), CliError> {
    use steward_domain::devices::ApiKeyStore;
    let failed = |error: steward_domain::RepositoryError| CliError::Failed(error.to_string());
    let database = open_database(config, init).await?;
    match action {
        ApiKeysAction::Create { name } => {
            if name.trim().is_empty() {
                return Err(CliError::Failed("--name must not be empty".to_owned()));
            }
            let (key, secret) = steward_app::devices::create_api_key(&database, &name)
                .await
                .map_err(failed)?;
            eprintln!(
                "created API key {} ({}); the secret is shown only now:",
                key.id, key.name
            );
            println!("{secret}");
        }
        ApiKeysAction::List => {
            for key in database.api_keys().await.map_err(failed)? {
                let last_used = key.last_used_at.map_or("never".to_owned(), |at| at.to_rfc3339());
                let state = key
                    .revoked_at
                    .map_or("active".to_owned(), |at| format!("revoked {}", at.to_rfc3339()));
                println!(
                    "{}\t{}…\t{}\tcreated {}\tlast used {}\t{}",
                    key.id,
                    key.prefix,
                    key.name,
                    key.created_at.to_rfc3339(),
                    last_used,
                    state
                );
            }
        }
        ApiKeysAction::Revoke { id } => {
            let audit = steward_domain::AuditEntry::new(
                steward_domain::Actor::system(),
                steward_domain::AuditAction::known("apikey.revoked"),
                "api_key",
            )
            .resource_id(id);
            if !database.revoke_api_key(id, &audit).await.map_err(failed)? {
                return Err(CliError::Failed(format!("no active API key {id}")));
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}

async fn create_admin(
    config: &Config,
    email: &str,
    password_stdin: bool,
    display_name: Option<String>,
    init: bool,
) -> Result<(), CliError> {
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|error| CliError::Failed(format!("cannot read the password: {error}")))?;
        Some(line.trim_end_matches(['\r', '\n']).to_owned())
    } else {
        None
    };
    let database = open_database(config, init).await?;
    let signing_keys = keys::load_or_generate(config).map_err(|error| CliError::Failed(error.to_string()))?;
    let service = app::auth_service(config, database, &signing_keys)?;
    let (user, created) = service
        .create_or_promote_admin(email, password, display_name)
        .await
        .map_err(|error| CliError::Failed(error.to_string()))?;
    if created {
        println!("created {} ({}) as super_admin", user.email, user.id);
    } else {
        println!("granted super_admin to {} ({})", user.email, user.id);
    }
    Ok(())
}

/// The spec exactly as `openapi/openapi.json` stores it.
pub fn openapi_json() -> Result<String, CliError> {
    serde_json::to_string_pretty(&steward_api::openapi())
        .map_err(|error| CliError::Failed(format!("cannot render the OpenAPI document: {error}")))
}

/// The status of `GET path` on the server at `bind` (a wildcard address is asked on loopback),
/// over plain HTTP/1.1 with a 5-second limit.
fn probe(bind: std::net::SocketAddr, path: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut address = bind;
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let limit = std::time::Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&address, limit)?;
    stream.set_read_timeout(Some(limit))?;
    stream.set_write_timeout(Some(limit))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0_u8; 64];
    let read = stream.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..read]);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {line:?}")))
}

/// The file a `sqlite:` URL names (none for an in-memory database or another backend).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:" && !url.contains("mode=memory")).then(|| PathBuf::from(path))
}

fn load(file: Option<PathBuf>) -> Result<Config, CliError> {
    let config = Config::load(file.as_deref())?;
    telemetry::init(config.log_format, &config.log_level);
    Ok(config)
}

fn generate_key(out: Option<PathBuf>) -> Result<(), CliError> {
    let key = steward_auth::SigningKeyPem::generate().map_err(|error| CliError::Failed(error.to_string()))?;
    match out {
        None => print!("{}", key.as_str()),
        Some(path) => {
            keys::write_private(&path, key.as_str())
                .map_err(|error| CliError::Failed(format!("cannot write {}: {error}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

async fn row_level_security(config: &Config, action: RlsAction) -> Result<(), CliError> {
    let database = open_database(config, false).await?;
    let change = match action {
        RlsAction::Enable => Some(true),
        RlsAction::Disable => Some(false),
        RlsAction::Status => None,
    };
    let report = steward_app::tenancy::row_level_security(
        &database,
        change,
        steward_domain::Actor::system(),
        Default::default(),
    )
    .await
    .map_err(|error| CliError::Failed(error.to_string()))?;
    let text = serde_json::to_string_pretty(&report).map_err(|error| CliError::Failed(error.to_string()))?;
    println!("{text}");
    // PostgreSQL: exit 1 whenever the report warns (a table refused or not as it should be,
    // the server's role not bound), so a monitor can run `steward db rls status`.
    if report.backend == "postgres" && report.has_warnings() {
        return Err(CliError::Failed(match change {
            Some(true) => "row-level security is not in force: see the report's warnings (a refused change needs STEWARD_DATABASE_MIGRATION_URL set to the tables' owner)",
            Some(false) => "some tables could not be changed: see the report's warnings",
            None => "row-level security is not in force: see the report's warnings",
        }
        .to_owned()));
    }
    Ok(())
}

async fn migrate(config: &Config, action: MigrateAction) -> Result<(), CliError> {
    // Migrations run as the schema owner when a migration URL is set.
    let mut owner = config.clone();
    owner.database_url = Some(config.database_migration_url());
    let database = app::connect_database(&owner).await?;
    let failed = |error: steward_persistence::PersistenceError| CliError::Failed(error.to_string());
    match action {
        MigrateAction::Up => database.migrate_up().await.map_err(failed)?,
        MigrateAction::Down { steps, all } => database
            .migrate_down(if all { None } else { Some(steps) })
            .await
            .map_err(failed)?,
        MigrateAction::Fresh { yes: false } => {
            return Err(CliError::Failed(
                "`migrate fresh` drops every table and all data; run it again with --yes".to_owned(),
            ));
        }
        MigrateAction::Fresh { yes: true } => database.migrate_fresh().await.map_err(failed)?,
        MigrateAction::Status => {}
    }
    let state = database.migration_state().await.map_err(failed)?;
    for name in &state.applied {
        println!("applied  {name}");
    }
    for name in &state.pending {
        println!("pending  {name}");
    }
    Ok(())
}

async fn quotas(config: &Config, action: QuotasAction, init: bool) -> Result<(), CliError> {
    use steward_domain::organizations::OrganizationStore;
    use steward_domain::quotas::QuotaKey;
    let failed = |error: steward_domain::RepositoryError| CliError::Failed(error.to_string());
    let database = open_database(config, init).await?;
    let plans = config.quota_plans();
    let (target, change) = match action {
        QuotasAction::Set { org, key, value } => (org, Some((key, value))),
        QuotasAction::Show { org } => (org, None),
    };
    if target.contains('@') {
        return user_quotas(&database, &plans, &target, change).await;
    }
    let found = match target.parse::<uuid::Uuid>() {
        Ok(id) => database.find_organization(id).await.map_err(failed)?,
        Err(_) => database
            .find_organization_by_slug(&target)
            .await
            .map_err(failed)?,
    }
    .ok_or_else(|| CliError::Failed(format!("no organization `{target}`")))?;
    let organization = match change {
        None => found,
        Some((key, value)) => {
            let mut quota = found.quota.clone();
            edit_quota(&mut quota, &plans, &QuotaKey::ORGANIZATION, &key, value)?;
            let audit = steward_domain::AuditEntry::new(
                steward_domain::Actor::system(),
                steward_domain::AuditAction::known("organization.quota_changed"),
                "organization",
            )
            .resource_id(found.id)
            .organization(found.id)
            .change(
                Some(serde_json::json!(found.quota)),
                Some(serde_json::json!(quota)),
            );
            database
                .set_org_quota(found.id, &quota, &audit)
                .await
                .map_err(failed)?
        }
    };
    let usage = database.quota_usage(organization.id).await.map_err(failed)?;
    println!(
        "{} ({}): plan {}",
        organization.slug, organization.id, organization.quota.plan
    );
    print_quotas(&plans, &organization.quota, &QuotaKey::ORGANIZATION, &usage);
    Ok(())
}

/// `steward quotas set|show EMAIL …`: an account's quotas.
async fn user_quotas(
    database: &steward_persistence::Database,
    plans: &steward_domain::quotas::QuotaPlans,
    email: &str,
    change: Option<(String, String)>,
) -> Result<(), CliError> {
    use steward_domain::accounts::AccountStore;
    use steward_domain::quotas::{QuotaKey, UserQuotaStore};
    let failed = |error: steward_domain::RepositoryError| CliError::Failed(error.to_string());
    let address = steward_domain::identity::EmailAddress::parse(email)
        .map_err(|_| CliError::Failed(format!("`{email}` is not an email address")))?;
    let user = database
        .find_user_by_email(&address)
        .await
        .map_err(failed)?
        .filter(|user| user.status != "deleted")
        .ok_or_else(|| CliError::Failed(format!("no account `{email}`")))?;
    let before = database.user_quota(user.id).await.map_err(failed)?;
    let quota = match change {
        None => before,
        Some((key, value)) => {
            let mut quota = before.clone();
            edit_quota(&mut quota, plans, &QuotaKey::USER, &key, value)?;
            let audit = steward_domain::AuditEntry::new(
                steward_domain::Actor::system(),
                steward_domain::AuditAction::known("user.quota_changed"),
                "user",
            )
            .resource_id(user.id)
            .change(Some(serde_json::json!(before)), Some(serde_json::json!(quota)));
            database
                .set_user_quota(user.id, &quota, &audit)
                .await
                .map_err(failed)?
        }
    };
    let usage = database.user_quota_usage(user.id).await.map_err(failed)?;
    println!("{} ({}): plan {}", user.email, user.id, quota.plan);
    print_quotas(plans, &quota, &QuotaKey::USER, &usage);
    Ok(())
}

/// Applies `KEY VALUE` from the command line to a plan and overrides; `keys` are the limits
/// this kind of holder has.
fn edit_quota(
    quota: &mut steward_domain::quotas::OrgQuota,
    plans: &steward_domain::quotas::QuotaPlans,
    keys: &[steward_domain::quotas::QuotaKey],
    key: &str,
    value: String,
) -> Result<(), CliError> {
    use steward_domain::quotas::QuotaKey;
    if key == "plan" {
        if plans.get(&value).is_none() {
            return Err(CliError::Failed(format!(
                "unknown plan `{value}`; configured: {}",
                plans.names().collect::<Vec<_>>().join(", ")
            )));
        }
        quota.plan = value;
        return Ok(());
    }
    let key = QuotaKey::parse(key)
        .filter(|found| keys.contains(found))
        .ok_or_else(|| {
            CliError::Failed(format!(
                "unknown quota `{key}`: use {} or plan",
                keys.iter().map(|key| key.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
    match value.as_str() {
        "default" => {
            quota.overrides.remove(&key);
        }
        "unlimited" => {
            quota.overrides.insert(key, None);
        }
        number => {
            let limit = number
                .parse::<u64>()
                .ok()
                .filter(|limit| *limit <= 1_000_000_000)
                .ok_or_else(|| {
                    CliError::Failed(
                        "the value is a whole number up to 1000000000, `unlimited` or `default`".to_owned(),
                    )
                })?;
            quota.overrides.insert(key, Some(limit));
        }
    }
    Ok(())
}

fn print_quotas(
    plans: &steward_domain::quotas::QuotaPlans,
    quota: &steward_domain::quotas::OrgQuota,
    keys: &[steward_domain::quotas::QuotaKey],
    usage: &std::collections::BTreeMap<steward_domain::quotas::QuotaKey, u64>,
) {
    for key in keys {
        let limit = plans
            .limit(quota, *key)
            .map_or_else(|| "unlimited".to_owned(), |limit| limit.to_string());
        let source = if quota.overrides.contains_key(key) {
            "override"
        } else {
            "plan"
        };
        println!(
            "{:<22} {:>10} of {:<10} ({source})",
            key.as_str(),
            usage.get(key).copied().unwrap_or(0),
            limit
        );
    }
}
