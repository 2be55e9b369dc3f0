//! Groups: creation, membership, roles, invites and transfers.

mod admin;
mod service;

pub use admin::GroupAdminService;

pub use service::{GroupService, GroupUpdate, InviteRequest};
