//! Configuration backup and restore for operators (`config:manage`) and the shell: an export
//! is a versioned JSON document with a checksum, sealed with a passphrase on request (Argon2id
//! and AES-256-GCM, see `steward_auth::sealed`; webhook secrets travel only then); an import
//! checks the whole document first, answers its diff, and applies it all or not at all.

use std::collections::BTreeSet;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use steward_auth::sealed::{self, KdfCost, SealError, SealedFile};
use steward_domain::audit::{Actor, AuditAction, AuditEntry, RequestOrigin};
use steward_domain::config_backup::plan::ItemDiff;
use steward_domain::config_backup::{
    Category, ConfigDocument, ConfigSnapshot, FORMAT, ImportRules, InstanceConfig, MAX_DOCUMENT_BYTES,
    OnConflict, Problem, SCHEMA_VERSION, checksum_material, export_data, plan_import,
};
use steward_domain::events::webhooks::WebhookRecord;
use steward_domain::rbac::Permission;
use uuid::Uuid;

use crate::error::{AppError, ErrorKind, FieldError};
use crate::events::secret_context;
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// Passphrase derivations (64 MiB each) running at once on this instance; more wait their turn
/// for a moment, then are refused (429), so parallel imports cannot exhaust memory.
static SEALING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

async fn sealing_turn() -> Result<tokio::sync::SemaphorePermit<'static>, AppError> {
    match tokio::time::timeout(std::time::Duration::from_secs(10), SEALING.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AppError::new(
            ErrorKind::RateLimited,
            "other sealed configuration files are being opened or sealed; try again shortly",
        )
        .with_retry_after(5)),
    }
}

/// The path of the first string or key holding U+0000 (no database stores it alike).
fn nul_path(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(at.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_path(item, &format!("{at}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let here = format!("{at}.{key}");
            if key.contains('\0') {
                Some(here)
            } else {
                nul_path(item, &here)
            }
        }),
        _ => None,
    }
}

/// The permissions an import of `data` needs beside `config:manage`: each category is the
/// change its own endpoint makes, and needs what that endpoint needs.
fn needed_permissions(data: &steward_domain::config_backup::ConfigData) -> Vec<Permission> {
    let mut needed = Vec::new();
    if data.setting_definitions.is_some() || data.ip_allowlist.is_some() {
        needed.push(Permission::SettingsWrite);
    }
    if data.organizations.is_some() {
        // Organizations carry their plan and quota overrides.
        needed.extend([Permission::OrganizationsWrite, Permission::QuotasWrite]);
    }
    if data.policies.is_some() {
        needed.push(Permission::PoliciesWrite);
    }
    if data.roles.is_some() {
        needed.push(Permission::RolesWrite);
    }
    if data.webhooks.is_some() {
        needed.push(Permission::WebhooksManage);
    }
    needed
}

fn missing_permission(principal: &Principal, needed: &[Permission], what: &str) -> Result<(), AppError> {
    match needed.iter().find(|permission| !principal.allows(**permission)) {
        None => Ok(()),
        Some(permission) => Err(AppError::forbidden(format!(
            "{what} needs the permission {} (as its own endpoint does)",
            permission.as_str()
        ))),
    }
}

/// Whether `principal` may export `include` (secrets too when `sealed`): webhook secrets are
/// shown only to holders of `webhooks:manage`.
pub fn check_export(
    principal: &Principal,
    include: &BTreeSet<Category>,
    sealed: bool,
) -> Result<(), AppError> {
    if sealed && include.contains(&Category::Webhooks) {
        missing_permission(
            principal,
            &[Permission::WebhooksManage],
            "a sealed export of webhooks (their secrets)",
        )?;
    }
    Ok(())
}

/// The additional data an export job's passphrase is sealed with while it waits.
pub(crate) const PASSPHRASE_CONTEXT: &[u8] = b"config-export-passphrase";

/// A finished export: the file's bytes and name.
#[derive(Debug, Clone)]
pub struct ExportFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub sealed: bool,
    pub checksum: String,
}

/// Who imports: an operator (their permissions bound what roles they may import, their
/// address what allowlist they may leave), or the shell.
#[derive(Debug, Clone)]
pub enum Importer {
    Operator {
        principal: Principal,
        ip: Option<IpAddr>,
    },
    /// `steward config import`; `owner` owns the webhooks it creates.
    Shell { owner: Option<Uuid> },
}

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    pub dry_run: bool,
    pub on_conflict: OnConflict,
}

/// What an import found and did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub dry_run: bool,
    /// True when the changes were written (never on a dry run).
    pub applied: bool,
    pub on_conflict: &'static str,
    /// The document's own description.
    pub document: DocumentInfo,
    /// Items per action: `create`, `update`, `unchanged`, `conflict`.
    pub counts: std::collections::BTreeMap<&'static str, usize>,
    pub items: Vec<ItemDiff>,
}

/// The header of an imported document.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentInfo {
    pub schema_version: u32,
    pub steward_version: String,
    pub created_at: DateTime<Utc>,
    pub exported_by: String,
    pub include: Vec<Category>,
    pub sealed: bool,
    pub secrets_included: bool,
    pub checksum: String,
}

/// The file name of an export.
fn file_name(created_at: DateTime<Utc>, sealed: bool) -> String {
    format!(
        "steward-config-{}{}.json",
        created_at.format("%Y%m%dT%H%M%SZ"),
        if sealed { ".sealed" } else { "" }
    )
}

fn checksum(data: &Value) -> Result<String, AppError> {
    let material = checksum_material(data).map_err(|_| AppError::internal())?;
    Ok(format!("sha256:{}", hex_string(&Sha256::digest(material))))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The categories named in `include` (all when empty); an unknown name is 400.
pub fn parse_include(include: &[String]) -> Result<BTreeSet<Category>, AppError> {
    if include.is_empty() {
        return Ok(Category::ALL.into_iter().collect());
    }
    include
        .iter()
        .map(|name| {
            Category::parse(name).ok_or_else(|| {
                AppError::invalid(
                    "include",
                    format!(
                        "unknown category `{}`; the categories are {}",
                        name.chars()
                            .filter(|c| !c.is_control())
                            .take(64)
                            .collect::<String>(),
                        Category::ALL.map(Category::as_str).join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// Checks a passphrase before a job is queued with it.
pub fn check_passphrase(passphrase: &str) -> Result<(), AppError> {
    if passphrase.chars().count() < sealed::MIN_PASSPHRASE_CHARS || passphrase.chars().count() > 1024 {
        return Err(AppError::invalid(
            "passphrase",
            format!("must be {} to 1024 characters", sealed::MIN_PASSPHRASE_CHARS),
        ));
    }
    Ok(())
}

fn seal_refused(error: SealError) -> AppError {
    match error {
        SealError::WeakPassphrase(_) => AppError::invalid("passphrase", error.to_string()),
        SealError::Malformed(_) => AppError::invalid("file", error.to_string()),
        SealError::DoesNotOpen => AppError::invalid("passphrase", error.to_string()),
    }
}

fn problems_error(problems: Vec<Problem>) -> AppError {
    let lock_out = problems.iter().any(|problem| problem.field == "ipAllowlist");
    let details = problems
        .into_iter()
        .take(200)
        .map(|problem| FieldError {
            field: problem.field,
            message: problem.message,
        })
        .collect();
    if lock_out {
        AppError::new(
            ErrorKind::AllowlistWouldLockOut,
            "the allowlist this import leaves would refuse your own address; nothing was imported",
        )
        .with_details(details)
    } else {
        AppError::validation("the document does not fit this instance; nothing was imported")
            .with_details(details)
    }
}

/// Export and import of the configuration.
pub struct ConfigBackup<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> ConfigBackup<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    fn instance(&self) -> InstanceConfig<'_> {
        InstanceConfig {
            plans: &self.steward.quota_plans,
            thresholds: self.steward.events.settings.thresholds,
        }
    }

    /// A webhook's secret, opened with this instance's key.
    fn open_secret(&self, webhook: &WebhookRecord) -> Option<String> {
        self.steward
            .auth
            .secret_box()
            .open(&webhook.secret_sealed, &secret_context(webhook.id))
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    }

    /// The export file of `include`, sealed with `passphrase` when given (then with the
    /// webhooks' secrets). `exported_by` names who asked; `audit` is recorded with it.
    pub async fn export(
        &self,
        exported_by: &str,
        include: &BTreeSet<Category>,
        passphrase: Option<String>,
        cost: KdfCost,
        audit: Option<AuditEntry>,
    ) -> Result<ExportFile, AppError> {
        if let Some(passphrase) = &passphrase {
            check_passphrase(passphrase)?;
        }
        let snapshot: ConfigSnapshot = self.steward.store.config_snapshot().await?;
        if passphrase.is_some()
            && include.contains(&Category::Webhooks)
            && let Some(unreadable) = snapshot
                .webhooks
                .iter()
                .find(|webhook| webhook.personal_user_id.is_none() && self.open_secret(webhook).is_none())
        {
            tracing::error!(webhook = %unreadable.id, "a webhook secret does not open with this instance's key");
            return Err(AppError::new(
                ErrorKind::Conflict,
                format!(
                    "the secret of webhook {} does not open with this instance's key \
                     (STEWARD_MFA_ENCRYPTION_KEY): a sealed export would lose it",
                    unreadable.id
                ),
            ));
        }
        let open = |webhook: &WebhookRecord| self.open_secret(webhook);
        let secrets: Option<&steward_domain::config_backup::SecretOpener<'_>> =
            passphrase.as_ref().map(|_| &open as _);
        let data = export_data(&snapshot, include, self.instance(), secrets);
        let created_at = Utc::now();
        let document = ConfigDocument {
            format: FORMAT.to_owned(),
            schema_version: SCHEMA_VERSION,
            steward_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            exported_by: exported_by.to_owned(),
            include: data.categories(),
            secrets_included: passphrase.is_some() && include.contains(&Category::Webhooks),
            checksum: checksum(&serde_json::to_value(&data).map_err(|_| AppError::internal())?)?,
            data,
        };
        let plain = serde_json::to_vec_pretty(&document).map_err(|_| AppError::internal())?;
        let is_sealed = passphrase.is_some();
        let bytes = match passphrase {
            None => plain,
            Some(passphrase) => {
                let _turn = sealing_turn().await?;
                let sealed =
                    tokio::task::spawn_blocking(move || sealed::seal(FORMAT, &plain, &passphrase, cost))
                        .await
                        .map_err(|_| AppError::internal())?
                        .map_err(seal_refused)?;
                serde_json::to_vec_pretty(&sealed).map_err(|_| AppError::internal())?
            }
        };
        if let Some(audit) = audit {
            let audit = audit.change(
                None,
                Some(json!({
                    "include": document.include,
                    "secretsIncluded": document.secrets_included,
                    "checksum": document.checksum,
                })),
            );
            self.steward.store.record(&audit).await?;
        }
        Ok(ExportFile {
            name: file_name(created_at, is_sealed),
            bytes,
            sealed: is_sealed,
            checksum: document.checksum,
        })
    }

    /// Reads `file` (plain or sealed) into a checked document.
    pub async fn read(
        &self,
        file: &[u8],
        passphrase: Option<String>,
    ) -> Result<(ConfigDocument, bool), AppError> {
        if file.len() > MAX_DOCUMENT_BYTES {
            return Err(AppError::new(
                ErrorKind::TooLarge,
                format!("a configuration file is at most {MAX_DOCUMENT_BYTES} bytes"),
            ));
        }
        let value: Value = serde_json::from_slice(file)
            .map_err(|error| AppError::invalid("file", format!("not JSON: {error}")))?;
        let format = value
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let (value, sealed) = if format == sealed::SEALED_FORMAT {
            let sealed_file: SealedFile = serde_json::from_value(value)
                .map_err(|error| AppError::invalid("file", format!("not a sealed file: {error}")))?;
            let Some(passphrase) = passphrase else {
                return Err(AppError::invalid(
                    "passphrase",
                    "the file is sealed: give the passphrase it was exported with",
                ));
            };
            let _turn = sealing_turn().await?;
            let plain = tokio::task::spawn_blocking(move || sealed::open(&sealed_file, FORMAT, &passphrase))
                .await
                .map_err(|_| AppError::internal())?
                .map_err(seal_refused)?;
            let value: Value = serde_json::from_slice(&plain).map_err(|error| {
                AppError::invalid("file", format!("the sealed document does not read: {error}"))
            })?;
            (value, true)
        } else if format == FORMAT {
            (value, false)
        } else {
            return Err(AppError::invalid(
                "file",
                format!(
                    "`format` must be {FORMAT} or {}: this is not a Steward configuration file",
                    sealed::SEALED_FORMAT
                ),
            ));
        };
        if value.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(AppError::invalid("file", format!("`format` must be {FORMAT}")));
        }
        match value.get("schemaVersion").and_then(Value::as_u64) {
            Some(version) if version == u64::from(SCHEMA_VERSION) => {}
            other => {
                return Err(AppError::invalid(
                    "schemaVersion",
                    format!(
                        "this Steward reads schema version {SCHEMA_VERSION}; the file has {}",
                        other.map_or_else(|| "none".to_owned(), |version| version.to_string())
                    ),
                ));
            }
        }
        if let Some(path) = nul_path(&value, "file") {
            return Err(AppError::invalid(
                &path,
                "must not contain the NUL character (U+0000)",
            ));
        }
        for field in ["exportedBy", "stewardVersion"] {
            if let Some(text) = value.get(field).and_then(Value::as_str)
                && (text.chars().count() > 320 || text.chars().any(char::is_control))
            {
                return Err(AppError::invalid(
                    field,
                    "must be at most 320 characters without control characters",
                ));
            }
        }
        let stated = value.get("checksum").and_then(Value::as_str).map(str::to_owned);
        let computed = value.get("data").map(checksum).transpose()?;
        let document: ConfigDocument = serde_json::from_value(value)
            .map_err(|error| AppError::invalid("file", format!("not a configuration document: {error}")))?;
        if stated.is_none() || stated != computed {
            return Err(AppError::invalid(
                "checksum",
                "the file's content does not match its checksum: it was changed after it was exported",
            ));
        }
        if !sealed
            && (document.secrets_included
                || document
                    .data
                    .webhooks
                    .iter()
                    .flatten()
                    .any(|webhook| webhook.secret.is_some()))
        {
            return Err(AppError::invalid(
                "webhooks",
                "webhook secrets travel only in a sealed file (export with a passphrase)",
            ));
        }
        if document.include != document.data.categories() {
            return Err(AppError::invalid(
                "include",
                "does not list the categories the document holds",
            ));
        }
        Ok((document, sealed))
    }

    /// Checks `file` against this instance and answers the diff; applies it unless it is a
    /// dry run. Nothing is written when anything is wrong.
    pub async fn import(
        &self,
        importer: &Importer,
        file: &[u8],
        passphrase: Option<String>,
        options: ImportOptions,
        origin: &RequestOrigin,
    ) -> Result<ImportReport, AppError> {
        let (document, sealed) = self.read(file, passphrase).await?;
        if let Importer::Operator { principal, .. } = importer {
            missing_permission(
                principal,
                &needed_permissions(&document.data),
                "importing this file",
            )?;
        }
        if let (Importer::Operator { principal, .. }, Some(roles)) = (importer, &document.data.roles) {
            for role in roles {
                if !principal.catalog.holds_all(&principal.roles, &role.permissions) {
                    return Err(AppError::forbidden(format!(
                        "the role `{}` holds permissions you do not hold; an import grants only what you hold",
                        role.name
                            .chars()
                            .filter(|c| !c.is_control())
                            .take(64)
                            .collect::<String>()
                    )));
                }
                if let Some(missing) = role
                    .permissions
                    .iter()
                    .find(|permission| !principal.has_scope(permission))
                {
                    return Err(AppError::forbidden(format!(
                        "this personal access token lacks the scope `{missing}`"
                    )));
                }
            }
        }
        let (caller, actor, audit_actor) = match importer {
            Importer::Operator { principal, ip } => {
                (Some(*ip), Some(principal.user), Actor::admin(principal.user))
            }
            Importer::Shell { owner } => (None, *owner, Actor::system()),
        };
        let rules = ImportRules {
            on_conflict: options.on_conflict,
            instance: self.instance(),
            outbound: &self.steward.events.settings.outbound,
            caller,
            actor,
            now: Utc::now(),
        };
        let info = DocumentInfo {
            schema_version: document.schema_version,
            steward_version: document.steward_version.clone(),
            created_at: document.created_at,
            exported_by: document.exported_by.clone(),
            include: document.include.clone(),
            sealed,
            secrets_included: document.secrets_included,
            checksum: document.checksum.clone(),
        };
        let on_conflict = match options.on_conflict {
            OnConflict::Skip => "skip",
            OnConflict::Overwrite => "overwrite",
        };
        let open = |webhook: &WebhookRecord| self.open_secret(webhook);
        if options.dry_run {
            let snapshot = self.steward.store.config_snapshot().await?;
            let plan = plan_import(&snapshot, &document.data, rules, &open, &mut Uuid::now_v7)
                .map_err(problems_error)?;
            check_role_updates(importer, &snapshot, &plan)?;
            return Ok(ImportReport {
                dry_run: true,
                applied: false,
                on_conflict,
                document: info,
                counts: plan.counts(),
                items: plan.diff,
            });
        }
        let secret_box = self.steward.auth.secret_box().clone();
        let overlap = self.steward.events.settings.secret_overlap;
        let mut report = None;
        let decided = self
            .steward
            .store
            .import_config(|snapshot| {
                let mut plan = plan_import(snapshot, &document.data, rules, &open, &mut Uuid::now_v7)
                    .map_err(problems_error)?;
                check_role_updates(importer, snapshot, &plan)?;
                let now = Utc::now();
                for write in &mut plan.changes.webhooks {
                    let (record, replacing) = match write {
                        steward_domain::config_backup::Write::Create(record) => (record, false),
                        steward_domain::config_backup::Write::Update(record) => (record, true),
                    };
                    if let Some(secret) = plan.secrets.get(&record.id) {
                        let secret = secret.clone().unwrap_or_else(crate::webhooks::new_secret);
                        if replacing {
                            // As a rotation: the secret it replaces keeps signing for a while.
                            let current = snapshot.webhooks.iter().find(|webhook| webhook.id == record.id);
                            record.previous_secret_sealed =
                                current.map(|webhook| webhook.secret_sealed.clone());
                            record.previous_secret_until = Some(now + overlap);
                        }
                        record.secret_sealed = secret_box
                            .seal(secret.as_bytes(), &secret_context(record.id))
                            .map_err(|_| AppError::internal())?;
                    }
                }
                let changed: Vec<&ItemDiff> = plan
                    .diff
                    .iter()
                    .filter(|item| {
                        matches!(
                            item.action,
                            steward_domain::config_backup::plan::ItemAction::Create
                                | steward_domain::config_backup::plan::ItemAction::Update
                        )
                    })
                    .collect();
                let audit = AuditEntry::new(
                    audit_actor,
                    AuditAction::known("config.imported"),
                    "configuration",
                )
                .change(
                    None,
                    Some(json!({
                        "onConflict": on_conflict,
                        "counts": plan.counts(),
                        "document": {
                            "createdAt": info.created_at,
                            "exportedBy": info.exported_by,
                            "stewardVersion": info.steward_version,
                            "checksum": info.checksum,
                            "sealed": sealed,
                        },
                        "changed": changed.iter().take(1000).collect::<Vec<_>>(),
                    })),
                )
                .origin(origin.clone());
                let changes = plan.changes.clone();
                report = Some(ImportReport {
                    dry_run: false,
                    applied: true,
                    on_conflict,
                    document: info.clone(),
                    counts: plan.counts(),
                    items: plan.diff,
                });
                Ok::<_, AppError>((changes, audit))
            })
            .await?;
        let applied = decided?;
        self.steward.settings_catalog.invalidate();
        self.steward.allowlist.forget(&());
        for device in &applied.touched_devices {
            self.steward.device_states.forget(*device);
        }
        report.ok_or_else(AppError::internal)
    }
}

/// An operator overwrites a custom role only if they hold what it holds now (as
/// `PUT /roles/{name}` requires), not only what the file gives it.
fn check_role_updates(
    importer: &Importer,
    snapshot: &steward_domain::config_backup::ConfigSnapshot,
    plan: &steward_domain::config_backup::ImportPlan,
) -> Result<(), AppError> {
    let Importer::Operator { principal, .. } = importer else {
        return Ok(());
    };
    for write in &plan.changes.roles {
        if let steward_domain::config_backup::Write::Update(role) = write
            && let Some(current) = snapshot.roles.iter().find(|current| current.name == role.name)
            && !principal
                .catalog
                .holds_all(&principal.roles, &current.permissions)
        {
            return Err(AppError::forbidden(format!(
                "the role `{}` holds permissions you do not hold; you may not change it",
                role.name
            )));
        }
    }
    Ok(())
}
