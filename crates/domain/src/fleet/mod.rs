//! Fleets of organization-managed devices: the enrollment tokens devices redeem, the device
//! tokens they receive, the status a fleet admin gives them (suspend, resume, retire), the
//! commands (wipe) they take at their next sync, policy application and bulk import. Pure
//! rules, one module per sub-domain; the stores are in [`store`].

mod commands;
mod devices;
mod enrollment;
mod import;
mod policy_application;
pub mod store;

pub use crate::rules::{RuleError as FleetRuleError, RuleStoreError as FleetStoreError};
pub use commands::*;
pub use devices::*;
pub use enrollment::*;
pub use import::*;
pub use policy_application::*;
pub use store::*;
