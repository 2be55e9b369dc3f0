//! Groups: creation, membership, roles, invites and transfers.

mod admin;
pub mod export;
mod service;

pub use admin::{ExportPage, GroupAdminService};

pub use service::{GroupService, GroupUpdate, InviteRequest};
