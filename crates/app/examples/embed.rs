//! Steward's use cases embedded in another Rust program, without the HTTP server: open an
//! SQLite database through `steward-persistence`, run the migrations, register a user, create a
//! group, register a device, lock a setting and print the device's explained effective
//! settings.
//!
//! `cargo run -p steward-app --example embed [-- <sqlite-url>]` (default: a file in the
//! system's temporary directory, removed afterwards).

use std::sync::Arc;

use serde_json::json;
use steward_app::auth::{AuthService, AuthSettings, NewAccount};
use steward_app::devices::DeviceService;
use steward_app::groups::{GroupService, InviteRequest};
use steward_app::settings::{LockRequest, SettingsCallerKind, SettingsService};
use steward_app::{AppError, Steward};
use steward_auth::{HashingCost, KeyRing, PasswordHasher, SigningKeyPem};
use steward_domain::RequestOrigin;
use steward_domain::devices::DeviceRegistration;
use steward_domain::rbac::Permission;
use steward_persistence::{Database, DatabaseOptions};
use uuid::Uuid;

type Failure = Box<dyn std::error::Error>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Failure> {
    let scratch = std::env::temp_dir().join(format!("steward-embed-{}.db", std::process::id()));
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", scratch.display()));
    let outcome = run(&url).await;
    let _ = std::fs::remove_file(&scratch);
    outcome
}

async fn run(url: &str) -> Result<(), Failure> {
    let store = Database::connect(&DatabaseOptions::new(url)).await?;
    store.migrate_up().await?;

    // The authentication service signs tokens; an embedding program brings its own keys.
    let keys = KeyRing::new(&[SigningKeyPem::generate()?], "embedded", "embedded")?;
    // A light Argon2id cost keeps the example quick; servers use the default (64 MiB, t = 3).
    let hasher = PasswordHasher::new(HashingCost {
        memory_kib: 8 * 1024,
        iterations: 1,
        parallelism: 1,
    })?;
    let auth = AuthService::new(
        store.clone(),
        Arc::new(keys),
        Arc::new(hasher),
        AuthSettings::default(),
    );
    let steward = Steward::new(store.clone(), auth);
    let origin = RequestOrigin::default();

    let parent = register(&steward, "parent@example.com", "Parent", &origin).await?;
    let child = register(&steward, "child@example.com", "Child", &origin).await?;

    // The parent creates the family group and invites the child, who joins.
    let groups = GroupService::new(&steward.store);
    let group = groups
        .create(parent, "Family", Some("The household's devices"), &origin)
        .await?;
    println!("created group {:?} ({})", group.group.name, group.group.id);
    let invite = groups
        .create_invite(
            parent,
            group.my_role,
            group.group.id,
            InviteRequest::default(),
            &origin,
        )
        .await?;
    groups.join(child, &invite.code, &origin).await?;
    println!("child joined with invite {}", invite.code);

    // The child's tablet registers as the child's device.
    let registration = DeviceRegistration::parse(
        "kids-tablet",
        "Kid's tablet",
        Some("android"),
        None,
        None,
        None,
        None,
    )?;
    let (device, _, _) = DeviceService::new(&steward)
        .register(registration, Some(child), None, &origin)
        .await?;
    println!("registered device {:?} ({})", device.display_name, device.id);

    // The parent, owner of the child's group, locks a setting on it.
    let settings = SettingsService::new(&steward);
    let access = settings
        .access(
            SettingsCallerKind::User(parent),
            device.id,
            Permission::DevicesWrite,
        )
        .await?;
    settings
        .change_locks(
            &access,
            vec![LockRequest {
                key: "location.sharing_enabled".to_owned(),
                locked: true,
                value: Some(json!(true)),
                reason: Some("Family rule".to_owned()),
            }],
            None,
            &origin,
        )
        .await?;
    println!("locked location.sharing_enabled = true");

    let (effective, etag) = settings.effective(device.id, true).await?;
    let shown = effective
        .settings
        .get("location.sharing_enabled")
        .ok_or("the seeded catalog has location.sharing_enabled")?;
    println!(
        "effective settings version {} (ETag {etag}):\n{}",
        effective.version,
        serde_json::to_string_pretty(&json!({ "location.sharing_enabled": shown }))?
    );
    if !shown.locked || shown.value != json!(true) {
        return Err("the lock did not take effect".into());
    }
    store.close().await?;
    Ok(())
}

/// Registers an account and answers its id.
async fn register(
    steward: &Steward<Database>,
    email: &str,
    name: &str,
    origin: &RequestOrigin,
) -> Result<Uuid, AppError> {
    let account = steward
        .auth
        .register(
            NewAccount {
                email: email.to_owned(),
                password: "correct horse battery staple".to_owned(),
                display_name: name.to_owned(),
                locale: None,
            },
            origin,
        )
        .await?;
    println!("registered {} ({})", account.user.email, account.user.id);
    Ok(account.user.id)
}
