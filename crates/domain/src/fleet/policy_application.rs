//! Applying a policy to devices or fleet groups: which targets it changes, decided once for the
//! store (under its claim on the targets) and for dry runs alike.

use std::collections::BTreeSet;

use uuid::Uuid;

/// Where a policy is applied or unapplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTargets {
    Devices(Vec<Uuid>),
    Groups(Vec<Uuid>),
}

impl PolicyTargets {
    /// The same targets, each once, in id order.
    pub fn deduplicated(self) -> Self {
        let unique = |ids: Vec<Uuid>| ids.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        match self {
            Self::Devices(ids) => Self::Devices(unique(ids)),
            Self::Groups(ids) => Self::Groups(unique(ids)),
        }
    }

    pub fn ids(&self) -> &[Uuid] {
        match self {
            Self::Devices(ids) | Self::Groups(ids) => ids,
        }
    }
}

/// Whether applying (`apply`) or unapplying `policy` changes a target whose layer carries
/// `current`: applying changes every target without it, unapplying only those that carry it
/// (another policy stays where it is).
pub fn policy_changes(policy: Uuid, apply: bool, current: Option<Uuid>) -> bool {
    if apply {
        current != Some(policy)
    } else {
        current == Some(policy)
    }
}

/// The targets among `carried` (target, its current policy) that applying or unapplying
/// `policy` changes, in the order given.
pub fn targets_that_change(
    policy: Uuid,
    apply: bool,
    carried: impl IntoIterator<Item = (Uuid, Option<Uuid>)>,
) -> Vec<Uuid> {
    carried
        .into_iter()
        .filter(|(_, current)| policy_changes(policy, apply, *current))
        .map(|(target, _)| target)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applying_changes_targets_without_the_policy_and_unapplying_only_those_with_it() {
        let (policy, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let carried = [(a, None), (b, Some(policy)), (c, Some(other))];
        assert_eq!(targets_that_change(policy, true, carried), vec![a, c]);
        assert_eq!(targets_that_change(policy, false, carried), vec![b]);
        assert!(targets_that_change(policy, false, [(a, None), (c, Some(other))]).is_empty());
    }

    #[test]
    fn targets_are_deduplicated() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(
            PolicyTargets::Devices(vec![b, a, b]).deduplicated(),
            PolicyTargets::Devices(vec![a, b])
        );
        assert_eq!(PolicyTargets::Groups(vec![a, a]).deduplicated().ids(), &[a]);
    }
}
