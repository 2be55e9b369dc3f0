//! Federated identity: mapping identity-provider groups to system roles, and operator overrides
//! of that mapping (seed 002 "Mapping configuration" and "Override storage").

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// `group=role` pairs: groups compared case-insensitively, several roles per group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRoleMap {
    roles_by_group: BTreeMap<String, BTreeSet<String>>,
}

/// An entry of the mapping that is not `group=role`.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("malformed group-role mapping entry `{0}`: expected group=role")]
pub struct MalformedMapping(pub String);

fn normalise(value: &str) -> String {
    value.trim().to_lowercase()
}

fn entries(text: &str) -> impl Iterator<Item = &str> {
    // Newlines may arrive escaped (`\n` in an environment variable) or real.
    text.split([',', '\n'])
        .flat_map(|part| part.split("\\n"))
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
}

fn is_name(value: &str) -> bool {
    !value.is_empty() && value.chars().all(|c| !c.is_control() && c != '=' && c != ',')
}

impl GroupRoleMap {
    /// Parses `admins=admin, ops=publisher\nops=auditor`. Empty input is an empty map.
    pub fn parse(text: &str) -> Result<Self, MalformedMapping> {
        let mut map = GroupRoleMap::default();
        for entry in entries(text) {
            let Some((group, role)) = entry.split_once('=') else {
                return Err(MalformedMapping(entry.to_owned()));
            };
            let (group, role) = (normalise(group), normalise(role));
            if !is_name(&group) || !is_name(&role) {
                return Err(MalformedMapping(entry.to_owned()));
            }
            map.roles_by_group.entry(group).or_default().insert(role);
        }
        Ok(map)
    }

    /// Every role the mapping can grant.
    pub fn roles(&self) -> BTreeSet<String> {
        self.roles_by_group.values().flatten().cloned().collect()
    }
}

/// Parses `OIDC_GROUP_ROLE_DEFAULTS`: roles separated by commas or newlines.
pub fn parse_role_list(text: &str) -> Result<BTreeSet<String>, MalformedMapping> {
    entries(text)
        .map(|entry| {
            let role = normalise(entry);
            if is_name(&role) && !role.contains(' ') {
                Ok(role)
            } else {
                Err(MalformedMapping(entry.to_owned()))
            }
        })
        .collect()
}

/// The roles an identity's groups grant: the defaults, then every mapped group's roles.
pub fn resolve_roles_for_groups<S: AsRef<str>>(
    groups: &[S],
    map: &GroupRoleMap,
    defaults: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut roles = defaults.clone();
    for group in groups {
        if let Some(mapped) = map.roles_by_group.get(&normalise(group.as_ref())) {
            roles.extend(mapped.iter().cloned());
        }
    }
    roles
}

/// An operator's adjustments to automatic role synchronisation for one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleOverrides {
    /// `false` pauses automatic revocation (grants still happen).
    pub enabled: bool,
    /// Never revoked by synchronisation.
    pub preserved: BTreeSet<String>,
    /// Never granted from the identity provider.
    pub suppressed: BTreeSet<String>,
}

impl Default for RoleOverrides {
    fn default() -> Self {
        Self {
            enabled: true,
            preserved: BTreeSet::new(),
            suppressed: BTreeSet::new(),
        }
    }
}

impl RoleOverrides {
    /// Trims, lower-cases and de-duplicates the role lists.
    pub fn normalised(enabled: bool, preserved: &[String], suppressed: &[String]) -> Self {
        Self {
            enabled,
            preserved: preserved
                .iter()
                .map(|r| normalise(r))
                .filter(|r| !r.is_empty())
                .collect(),
            suppressed: suppressed
                .iter()
                .map(|r| normalise(r))
                .filter(|r| !r.is_empty())
                .collect(),
        }
    }
}

/// What synchronisation changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleSync {
    pub grant: BTreeSet<String>,
    pub revoke: BTreeSet<String>,
}

/// Reconciles a user's roles with what the identity provider grants now.
///
/// Only roles the mapping manages (`managed`: every role the map or defaults can grant) are
/// revoked, so roles granted by hand (`steward admin create`, admin API) survive sign-ins.
pub fn sync_roles(
    current: &BTreeSet<String>,
    from_identity: &BTreeSet<String>,
    managed: &BTreeSet<String>,
    overrides: &RoleOverrides,
) -> RoleSync {
    let wanted: BTreeSet<String> = from_identity.difference(&overrides.suppressed).cloned().collect();
    let grant = wanted.difference(current).cloned().collect();
    let revoke = if overrides.enabled {
        current
            .iter()
            // Only roles the mapping manages: a role granted by hand is never revoked by a
            // sign-in, whatever an override says.
            .filter(|role| managed.contains(*role))
            .filter(|role| !wanted.contains(*role) && !overrides.preserved.contains(*role))
            .cloned()
            .collect()
    } else {
        BTreeSet::new()
    };
    RoleSync { grant, revoke }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_seed_example_resolves_as_documented() {
        // seed 002: OIDC_GROUP_ROLE_MAP="admins=admin\nops=publisher\nops=auditor", defaults "reader"
        let map = GroupRoleMap::parse("admins=admin\\nops=publisher\\nops=auditor").unwrap();
        let defaults = parse_role_list("reader").unwrap();
        assert_eq!(
            resolve_roles_for_groups(&["admins"], &map, &defaults),
            set(&["admin", "reader"])
        );
        assert_eq!(
            resolve_roles_for_groups(&["ops"], &map, &defaults),
            set(&["publisher", "auditor", "reader"])
        );
        assert_eq!(
            resolve_roles_for_groups(&["marketing"], &map, &defaults),
            set(&["reader"])
        );
        let none: [&str; 0] = [];
        assert_eq!(resolve_roles_for_groups(&none, &map, &defaults), set(&["reader"]));
    }

    #[test]
    fn the_parser_table() {
        type Expected = Result<&'static [(&'static str, &'static [&'static str])], &'static str>;
        let cases: &[(&str, Expected)] = &[
            ("", Ok(&[])),
            ("Admins=Super_Admin", Ok(&[("admins", &["super_admin"])])),
            (" a = x , a=y\nb=x ", Ok(&[("a", &["x", "y"]), ("b", &["x"])])),
            ("a=x,,\n\n", Ok(&[("a", &["x"])])),
            ("a=x,=y", Err("=y")),
            ("a=x,b=", Err("b=")),
            ("justagroup", Err("justagroup")),
            ("a=b=c", Err("a=b=c")),
        ];
        for (text, expected) in cases {
            let parsed = GroupRoleMap::parse(text);
            match expected {
                Ok(pairs) => {
                    let map = parsed.unwrap_or_else(|e| panic!("{text:?}: {e}"));
                    for (group, roles) in *pairs {
                        assert_eq!(
                            resolve_roles_for_groups(&[*group], &map, &BTreeSet::new()),
                            set(roles),
                            "{text:?}"
                        );
                    }
                }
                Err(entry) => assert_eq!(parsed, Err(MalformedMapping((*entry).to_owned())), "{text:?}"),
            }
        }
    }

    #[test]
    fn groups_match_case_insensitively() {
        let map = GroupRoleMap::parse("admins=admin").unwrap();
        for group in ["Admins", "ADMINS", " admins "] {
            assert_eq!(
                resolve_roles_for_groups(&[group], &map, &BTreeSet::new()),
                set(&["admin"])
            );
        }
    }

    #[test]
    fn sync_grants_revokes_and_honours_overrides() {
        let managed = set(&["admin", "auditor", "reader"]);
        let current = set(&["admin", "auditor", "support"]);
        let from_identity = set(&["reader", "admin"]);

        let plain = sync_roles(&current, &from_identity, &managed, &RoleOverrides::default());
        assert_eq!(plain.grant, set(&["reader"]));
        assert_eq!(
            plain.revoke,
            set(&["auditor"]),
            "hand-granted `support` is not managed"
        );

        let preserved = RoleOverrides::normalised(true, &["Auditor".into()], &[]);
        assert_eq!(
            sync_roles(&current, &from_identity, &managed, &preserved).revoke,
            set(&[])
        );

        let suppressed = RoleOverrides::normalised(true, &[], &["admin".into()]);
        let sync = sync_roles(&current, &from_identity, &managed, &suppressed);
        assert_eq!(sync.grant, set(&["reader"]));
        assert_eq!(sync.revoke, set(&["admin", "auditor"]));
        let hand_granted = RoleOverrides::normalised(true, &[], &["support".into()]);
        assert_eq!(
            sync_roles(&current, &from_identity, &managed, &hand_granted).revoke,
            set(&["auditor"]),
            "suppressing a hand-granted role never revokes it"
        );

        let paused = RoleOverrides::normalised(false, &[], &["admin".into()]);
        let sync = sync_roles(&current, &from_identity, &managed, &paused);
        assert_eq!(sync.revoke, set(&[]), "disabled overrides pause every revocation");
        assert_eq!(sync.grant, set(&["reader"]));
    }
}
