//! Applying a policy to devices or fleet groups.

use uuid::Uuid;

/// Where a policy is applied or unapplied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyTargets {
    Devices(Vec<Uuid>),
    Groups(Vec<Uuid>),
}
