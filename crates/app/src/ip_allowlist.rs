//! The admin API's IP allowlist: managing its entries and switch (refusing changes that would
//! shut out the operator making them), bypass tokens, and the per-request check, answered from
//! a per-instance cache that rereads the list at most [`REFRESH`] after a change elsewhere.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::json;
use steward_auth::{hash_token, random_token};
use steward_domain::ip_allowlist::{
    AllowlistChange, AllowlistEntry, AllowlistRefusal, AllowlistSnapshot, BypassToken, MAX_BYPASS_HOURS,
    check_label, parse_network,
};
use steward_domain::{Actor, AuditAction, AuditEntry, RequestOrigin};
use uuid::Uuid;

use crate::cache::TtlCache;
use crate::error::{AppError, ErrorKind};
use crate::principal::Principal;
use crate::steward::{Steward, Store};

/// How long an instance trusts its last read of the list; a change on another instance is
/// enforced here within this time.
pub const REFRESH: StdDuration = StdDuration::from_secs(3);

/// The prefix of bypass token secrets.
pub const BYPASS_PREFIX: &str = "stw_byp_";
/// The length of a bypass token secret: the prefix and 32 random bytes in base64url.
const BYPASS_LEN: usize = BYPASS_PREFIX.len() + 43;

/// Addresses whose refusal was audited in the last minute.
pub type RefusalCache = TtlCache<(), String>;

/// The instance's copy of the list.
pub type AllowlistCache = TtlCache<Arc<AllowlistSnapshot>, ()>;

/// What the check decided about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowlistDecision {
    Allowed,
    /// Outside the list, let through by a live bypass token.
    Bypassed,
    Refused,
}

/// A new entry or the new state of one.
#[derive(Debug, Clone)]
pub struct EntryInput {
    pub network: String,
    pub name: String,
    pub description: Option<String>,
}

fn audit(admin: Uuid, action: &'static str, origin: &RequestOrigin) -> AuditEntry {
    AuditEntry::new(Actor::admin(admin), AuditAction::known(action), "ip_allowlist").origin(origin.clone())
}

fn lock_out() -> AppError {
    AppError::new(
        ErrorKind::AllowlistWouldLockOut,
        "this change would refuse your own address: add it first, or send `force: true` as a super_admin",
    )
}

impl<S: Store> Steward<S> {
    /// The list as enforced: from the instance's cache, reread when older than [`REFRESH`].
    pub async fn allowlist_snapshot(&self) -> Result<Arc<AllowlistSnapshot>, AppError> {
        if let Some(snapshot) = self.allowlist.get(&()) {
            return Ok(snapshot);
        }
        let (enabled, entries) = self.store.allowlist().await?;
        let snapshot = Arc::new(AllowlistSnapshot {
            enabled,
            networks: entries.into_iter().map(|entry| entry.network).collect(),
        });
        self.allowlist.put((), Arc::clone(&snapshot));
        Ok(snapshot)
    }

    /// Whether a request from `ip` may reach the admin API; a request from outside the list
    /// with a live bypass token passes, and that use is audited with the address.
    pub async fn check_allowlist(
        &self,
        ip: Option<IpAddr>,
        bypass: Option<&str>,
        origin: &RequestOrigin,
    ) -> Result<AllowlistDecision, AppError> {
        let snapshot = self.allowlist_snapshot().await?;
        if snapshot.allows(ip) {
            return Ok(AllowlistDecision::Allowed);
        }
        if let Some(secret) =
            bypass.filter(|secret| secret.starts_with(BYPASS_PREFIX) && secret.len() == BYPASS_LEN)
            && let Some(token) = self
                .store
                .use_bypass_token(&hash_token(secret), Utc::now())
                .await?
        {
            let entry = AuditEntry::new(
                Actor::system(),
                AuditAction::known("admin.allowlist_bypassed"),
                "allowlist_bypass_token",
            )
            .resource_id(token.id)
            .change(None, Some(json!({"ip": ip.map(|ip| ip.to_string())})))
            .origin(origin.clone());
            self.store.record(&entry).await?;
            return Ok(AllowlistDecision::Bypassed);
        }
        // One audit entry per address and minute: a flood from outside must not fill the
        // audit log (the metric counts every refusal).
        let address = ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        if self.allowlist_refusals.get(&address).is_none() {
            self.allowlist_refusals.put(address.clone(), ());
            let entry = AuditEntry::new(
                Actor::system(),
                AuditAction::known("admin.ip_refused"),
                "admin_api",
            )
            .change(None, Some(json!({"ip": address})))
            .origin(origin.clone());
            self.store.record(&entry).await?;
        }
        Ok(AllowlistDecision::Refused)
    }
}

pub struct AllowlistService<'a, S> {
    steward: &'a Steward<S>,
}

impl<'a, S: Store> AllowlistService<'a, S> {
    pub fn new(steward: &'a Steward<S>) -> Self {
        Self { steward }
    }

    /// Whether the list is enforced, and its entries, oldest first.
    pub async fn list(&self) -> Result<(bool, Vec<AllowlistEntry>), AppError> {
        Ok(self.steward.store.allowlist().await?)
    }

    fn checked(input: &EntryInput) -> Result<(ipnet::IpNet, String, Option<String>), AppError> {
        let network = parse_network(&input.network).map_err(|message| AppError::invalid("cidr", message))?;
        check_label(&input.name, input.description.as_deref())
            .map_err(|(field, message)| AppError::invalid(field, message))?;
        let description = input
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        Ok((network, input.name.trim().to_owned(), description))
    }

    /// Applies `change` under the list's lock with the domain's rule; `force` counts from a
    /// super_admin only.
    async fn apply(
        &self,
        admin: &Principal,
        change: &AllowlistChange,
        force: bool,
        caller: Option<IpAddr>,
        record: &AuditEntry,
    ) -> Result<(), AppError> {
        let may_force = force && admin.roles.iter().any(|role| role == "super_admin");
        let decided = self
            .steward
            .store
            .change_allowlist(change, caller, may_force, record)
            .await?;
        self.steward.allowlist.forget(&());
        decided.map_err(|refusal| match refusal {
            AllowlistRefusal::WouldLockOut => lock_out(),
            AllowlistRefusal::EmptyList => AppError::conflict(
                "an empty allowlist would shut the admin API for everyone: add an entry first",
            ),
            AllowlistRefusal::Full => AppError::conflict("the allowlist holds 1000 entries, its limit"),
            AllowlistRefusal::NotFound => AppError::not_found("no such allowlist entry"),
        })
    }

    pub async fn create(
        &self,
        admin: &Principal,
        input: EntryInput,
        origin: &RequestOrigin,
    ) -> Result<AllowlistEntry, AppError> {
        let (network, name, description) = Self::checked(&input)?;
        let now = Utc::now();
        let entry = AllowlistEntry {
            id: Uuid::now_v7(),
            network,
            name,
            description,
            created_by: Some(admin.user),
            created_at: now,
            updated_at: now,
        };
        let record = audit(admin.user, "admin.allowlist_entry_created", origin)
            .resource_id(entry.id)
            .change(
                None,
                Some(json!({"network": network.to_string(), "name": entry.name})),
            );
        self.apply(
            admin,
            &AllowlistChange::Create(entry.clone()),
            false,
            None,
            &record,
        )
        .await?;
        Ok(entry)
    }

    async fn existing(&self, id: Uuid) -> Result<AllowlistEntry, AppError> {
        let (_, entries) = self.steward.store.allowlist().await?;
        entries
            .into_iter()
            .find(|entry| entry.id == id)
            .ok_or_else(|| AppError::not_found("no such allowlist entry"))
    }

    pub async fn update(
        &self,
        admin: &Principal,
        id: Uuid,
        input: EntryInput,
        force: bool,
        caller: Option<IpAddr>,
        origin: &RequestOrigin,
    ) -> Result<AllowlistEntry, AppError> {
        let (network, name, description) = Self::checked(&input)?;
        let current = self.existing(id).await?;
        let updated = AllowlistEntry {
            network,
            name,
            description,
            updated_at: Utc::now(),
            ..current.clone()
        };
        let record = audit(admin.user, "admin.allowlist_entry_updated", origin)
            .resource_id(id)
            .change(
                Some(json!({"network": current.network.to_string(), "name": current.name})),
                Some(json!({"network": updated.network.to_string(), "name": updated.name, "forced": force})),
            );
        self.apply(
            admin,
            &AllowlistChange::Update(updated.clone()),
            force,
            caller,
            &record,
        )
        .await?;
        Ok(updated)
    }

    pub async fn delete(
        &self,
        admin: &Principal,
        id: Uuid,
        force: bool,
        caller: Option<IpAddr>,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let removed = self.existing(id).await?;
        let record = audit(admin.user, "admin.allowlist_entry_deleted", origin)
            .resource_id(id)
            .change(
                Some(json!({"network": removed.network.to_string(), "name": removed.name})),
                Some(json!({"forced": force})),
            );
        self.apply(admin, &AllowlistChange::Delete(id), force, caller, &record)
            .await
    }

    /// Switches enforcement on or off; switching it on from an address outside the list is
    /// refused without `force`, and an empty list is never switched on.
    pub async fn set_enabled(
        &self,
        admin: &Principal,
        enabled: bool,
        force: bool,
        caller: Option<IpAddr>,
        origin: &RequestOrigin,
    ) -> Result<bool, AppError> {
        let (was, _) = self.steward.store.allowlist().await?;
        let record = audit(admin.user, "admin.allowlist_settings_changed", origin).change(
            Some(json!({"enabled": was})),
            Some(json!({"enabled": enabled, "forced": force})),
        );
        self.apply(
            admin,
            &AllowlistChange::SetEnabled(enabled),
            force,
            caller,
            &record,
        )
        .await?;
        Ok(enabled)
    }

    /// A bypass token: the secret (shown once) and its record.
    pub async fn create_bypass_token(
        &self,
        admin: &Principal,
        reason: &str,
        ttl_hours: i64,
        origin: &RequestOrigin,
    ) -> Result<(BypassToken, String), AppError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
            return Err(AppError::invalid(
                "reason",
                "must be 1 to 500 characters without control characters",
            ));
        }
        if !(1..=MAX_BYPASS_HOURS).contains(&ttl_hours) {
            return Err(AppError::invalid("ttlHours", "must be 1 to 24"));
        }
        let secret = format!("{BYPASS_PREFIX}{}", random_token(32));
        let now = Utc::now();
        let token = BypassToken {
            id: Uuid::now_v7(),
            prefix: secret.chars().take(BYPASS_PREFIX.len() + 4).collect(),
            reason: reason.to_owned(),
            created_by: Some(admin.user),
            created_at: now,
            expires_at: now + Duration::hours(ttl_hours),
            revoked_at: None,
            last_used_at: None,
        };
        let record = AuditEntry::new(
            Actor::admin(admin.user),
            AuditAction::known("admin.allowlist_bypass_created"),
            "allowlist_bypass_token",
        )
        .resource_id(token.id)
        .change(
            None,
            Some(json!({"reason": token.reason, "expiresAt": token.expires_at})),
        )
        .origin(origin.clone());
        self.steward
            .store
            .create_bypass_token(&token, hash_token(&secret), &record)
            .await?;
        Ok((token, secret))
    }

    pub async fn bypass_tokens(&self) -> Result<Vec<BypassToken>, AppError> {
        Ok(self.steward.store.bypass_tokens().await?)
    }

    pub async fn revoke_bypass_token(
        &self,
        admin: &Principal,
        id: Uuid,
        origin: &RequestOrigin,
    ) -> Result<(), AppError> {
        let record = AuditEntry::new(
            Actor::admin(admin.user),
            AuditAction::known("admin.allowlist_bypass_revoked"),
            "allowlist_bypass_token",
        )
        .resource_id(id)
        .origin(origin.clone());
        if self
            .steward
            .store
            .revoke_bypass_token(id, Utc::now(), &record)
            .await?
        {
            Ok(())
        } else {
            Err(AppError::not_found("no such live bypass token"))
        }
    }
}

/// Switches enforcement off from the operator's shell (`steward allowlist disable`): the
/// break-glass path, which needs no request and so no allowed address.
pub async fn disable_from_shell<S: Store>(store: &S) -> Result<(), AppError> {
    let record = AuditEntry::new(
        Actor::system(),
        AuditAction::known("admin.allowlist_settings_changed"),
        "ip_allowlist",
    )
    .change(None, Some(json!({"enabled": false, "via": "cli"})));
    store.set_allowlist_enabled(false, Some(&record)).await?;
    Ok(())
}
