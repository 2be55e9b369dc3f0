//! The admin API's IP allowlist: networks (CIDR or single addresses, IPv4 and IPv6) an
//! administrator must call from when the list is enabled, the rule that nobody switches it so
//! their own address is refused without saying so, and short-lived bypass tokens.

use std::future::Future;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use uuid::Uuid;

use crate::audit::AuditEntry;
use crate::repository::RepositoryError;

/// The longest entry name and description kept.
pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Entries at most.
pub const MAX_ENTRIES: usize = 1000;
/// A bypass token lives at most this many hours.
pub const MAX_BYPASS_HOURS: i64 = 24;

/// One allowed network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowlistEntry {
    pub id: Uuid,
    pub network: IpNet,
    pub name: String,
    pub description: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What enforcement reads: whether the list is on, and its networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowlistSnapshot {
    pub enabled: bool,
    pub networks: Vec<IpNet>,
}

impl AllowlistSnapshot {
    /// Whether a request from `ip` may use the admin API. An unknown address (no peer) is
    /// refused while the list is on.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if !self.enabled {
            return true;
        }
        ip.is_some_and(|ip| {
            let ip = canonical(ip);
            self.networks.iter().any(|network| network.contains(&ip))
        })
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, as dual-stack sockets report it)
/// counts as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// A network as an operator writes it: `203.0.113.0/24`, `2001:db8::/32`, or a single address
/// (`198.51.100.7`, `::1`). Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if text.is_empty() || text.len() > 64 {
        return Err("must be an IPv4 or IPv6 address or CIDR network".to_owned());
    }
    if let Ok(network) = text.parse::<IpNet>() {
        // `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8 (clients are compared as IPv4).
        if let IpNet::V6(v6) = network
            && let Some(v4) = v6.addr().to_ipv4_mapped()
            && v6.prefix_len() >= 96
            && let Ok(mapped) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
        {
            return Ok(IpNet::V4(mapped.trunc()));
        }
        return Ok(network.trunc());
    }
    text.parse::<IpAddr>()
        .map(|ip| IpNet::from(canonical(ip)))
        .map_err(|_| format!("`{text}` is not an IPv4 or IPv6 address or CIDR network"))
}

/// Checks an entry's name and description.
pub fn check_label(name: &str, description: Option<&str>) -> Result<(), (&'static str, String)> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err((
            "name",
            "must be 1 to 100 characters without control characters".to_owned(),
        ));
    }
    if description.is_some_and(|d| {
        let d = d.trim();
        d.chars().count() > MAX_DESCRIPTION_CHARS
            || d.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
    }) {
        return Err((
            "description",
            "must be at most 500 characters without control characters".to_owned(),
        ));
    }
    Ok(())
}

/// Whether a change would refuse the caller's own address: the list as it would be after the
/// change is enabled and does not allow `caller`.
pub fn would_lock_out(after: &AllowlistSnapshot, caller: Option<IpAddr>) -> bool {
    after.enabled && !after.allows(caller)
}

/// A change of the list, decided by [`decide_change`] while every other change waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowlistChange {
    Create(AllowlistEntry),
    Update(AllowlistEntry),
    Delete(Uuid),
    SetEnabled(bool),
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowlistRefusal {
    /// The list after it would refuse the caller's own address.
    WouldLockOut,
    /// Enabling a list without entries would shut the admin API for everyone.
    EmptyList,
    /// The list holds [`MAX_ENTRIES`].
    Full,
    /// The entry is gone.
    NotFound,
}

/// The pure rule of every change: the entry exists, the list stays within its size, an empty
/// list is never switched on, and the caller's own address stays allowed unless `may_force`
/// (a super_admin asked for it).
pub fn decide_change(
    enabled: bool,
    entries: &[AllowlistEntry],
    change: &AllowlistChange,
    caller: Option<IpAddr>,
    may_force: bool,
) -> Result<(), AllowlistRefusal> {
    let mut after = AllowlistSnapshot {
        enabled,
        networks: entries.iter().map(|entry| entry.network).collect(),
    };
    match change {
        AllowlistChange::Create(_) if entries.len() >= MAX_ENTRIES => return Err(AllowlistRefusal::Full),
        // Adding a network only widens the list.
        AllowlistChange::Create(_) => return Ok(()),
        AllowlistChange::Update(entry) => {
            let position = entries
                .iter()
                .position(|existing| existing.id == entry.id)
                .ok_or(AllowlistRefusal::NotFound)?;
            after.networks[position] = entry.network;
        }
        AllowlistChange::Delete(id) => {
            let position = entries
                .iter()
                .position(|existing| existing.id == *id)
                .ok_or(AllowlistRefusal::NotFound)?;
            after.networks.remove(position);
        }
        AllowlistChange::SetEnabled(on) => {
            if *on && entries.is_empty() {
                return Err(AllowlistRefusal::EmptyList);
            }
            after.enabled = *on;
        }
    }
    if would_lock_out(&after, caller) && !may_force {
        return Err(AllowlistRefusal::WouldLockOut);
    }
    Ok(())
}

/// A secret that lets its bearer past the list for a while (sent as
/// `X-Steward-Allowlist-Bypass`); shown once, stored hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BypassToken {
    pub id: Uuid,
    pub prefix: String,
    pub reason: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl BypassToken {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

pub trait AllowlistStore {
    fn allowlist(&self) -> impl Future<Output = Result<(bool, Vec<AllowlistEntry>), RepositoryError>> + Send;
    /// Applies `change` when [`decide_change`] allows it, deciding on the list as it is while
    /// every other change of it waits (one transaction), so two changes cannot each pass the
    /// lock-out rule on a list the other is changing.
    fn change_allowlist(
        &self,
        change: &AllowlistChange,
        caller: Option<IpAddr>,
        may_force: bool,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<Result<(), AllowlistRefusal>, RepositoryError>> + Send;
    fn set_allowlist_enabled(
        &self,
        enabled: bool,
        audit: Option<&AuditEntry>,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    fn create_bypass_token(
        &self,
        token: &BypassToken,
        secret_hash: String,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;
    /// Every token, newest first.
    fn bypass_tokens(&self) -> impl Future<Output = Result<Vec<BypassToken>, RepositoryError>> + Send;
    /// False when there was no live token with this id.
    fn revoke_bypass_token(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
        audit: &AuditEntry,
    ) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
    /// The live token with this secret hash, marked used now.
    fn use_bypass_token(
        &self,
        secret_hash: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<BypassToken>, RepositoryError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(enabled: bool, networks: &[&str]) -> AllowlistSnapshot {
        AllowlistSnapshot {
            enabled,
            networks: networks.iter().map(|n| parse_network(n).unwrap()).collect(),
        }
    }

    #[test]
    fn networks_parse_as_operators_write_them() {
        assert_eq!(parse_network("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(
            parse_network(" 198.51.100.7 ").unwrap().to_string(),
            "198.51.100.7/32"
        );
        assert_eq!(parse_network("::1").unwrap().to_string(), "::1/128");
        assert_eq!(
            parse_network("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            parse_network("::ffff:192.0.2.1").unwrap().to_string(),
            "192.0.2.1/32"
        );
        assert_eq!(
            parse_network("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "999.1.1.1",
            "localhost",
            "10.0.0.0/8\0",
            &"1".repeat(100),
        ] {
            assert!(parse_network(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_enabled_list_allows_only_its_networks() {
        let list = snapshot(true, &["10.0.0.0/8", "2001:db8::/32"]);
        assert!(list.allows(Some("10.9.9.9".parse().unwrap())));
        assert!(list.allows(Some("::ffff:10.0.0.1".parse().unwrap())));
        assert!(list.allows(Some("2001:db8::7".parse().unwrap())));
        assert!(!list.allows(Some("192.0.2.1".parse().unwrap())));
        assert!(!list.allows(None));
        assert!(snapshot(false, &[]).allows(None));
        assert!(!snapshot(true, &[]).allows(Some("127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn changes_are_decided_on_the_list_after_them() {
        let now = Utc::now();
        let entry = |cidr: &str| AllowlistEntry {
            id: Uuid::now_v7(),
            network: parse_network(cidr).unwrap(),
            name: "n".to_owned(),
            description: None,
            created_by: None,
            created_at: now,
            updated_at: now,
        };
        let mine = entry("192.0.2.0/24");
        let other = entry("10.0.0.0/8");
        let entries = vec![mine.clone(), other.clone()];
        let me = Some("192.0.2.1".parse().unwrap());
        assert_eq!(
            decide_change(true, &entries, &AllowlistChange::Delete(mine.id), me, false),
            Err(AllowlistRefusal::WouldLockOut)
        );
        assert_eq!(
            decide_change(true, &entries, &AllowlistChange::Delete(mine.id), me, true),
            Ok(())
        );
        assert_eq!(
            decide_change(true, &entries, &AllowlistChange::Delete(other.id), me, false),
            Ok(())
        );
        assert_eq!(
            decide_change(false, &entries, &AllowlistChange::Delete(mine.id), me, false),
            Ok(())
        );
        assert_eq!(
            decide_change(
                true,
                &entries,
                &AllowlistChange::Delete(Uuid::now_v7()),
                me,
                false
            ),
            Err(AllowlistRefusal::NotFound)
        );
        let mut moved = mine.clone();
        moved.network = parse_network("198.51.100.0/24").unwrap();
        assert_eq!(
            decide_change(true, &entries, &AllowlistChange::Update(moved), me, false),
            Err(AllowlistRefusal::WouldLockOut)
        );
        assert_eq!(
            decide_change(false, &[], &AllowlistChange::SetEnabled(true), me, true),
            Err(AllowlistRefusal::EmptyList)
        );
        assert_eq!(
            decide_change(
                false,
                std::slice::from_ref(&other),
                &AllowlistChange::SetEnabled(true),
                me,
                false
            ),
            Err(AllowlistRefusal::WouldLockOut)
        );
        assert_eq!(
            decide_change(true, &[], &AllowlistChange::SetEnabled(false), me, false),
            Ok(())
        );
        assert_eq!(
            decide_change(
                true,
                &entries,
                &AllowlistChange::Create(entry("203.0.113.0/24")),
                None,
                false
            ),
            Ok(())
        );
    }

    #[test]
    fn a_change_that_refuses_the_caller_is_a_lock_out() {
        let me = Some("192.0.2.1".parse().unwrap());
        assert!(would_lock_out(&snapshot(true, &["10.0.0.0/8"]), me));
        assert!(!would_lock_out(&snapshot(true, &["192.0.2.0/24"]), me));
        assert!(!would_lock_out(&snapshot(false, &[]), me));
    }
}
