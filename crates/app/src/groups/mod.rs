//! Groups: creation, membership, roles, invites and transfers.

mod service;

pub use service::{GroupService, GroupUpdate, InviteRequest};
