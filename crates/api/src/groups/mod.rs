//! Groups: the service behind `/api/v1/groups` and the extractor that checks a caller's role in
//! the group named by the path against the domain's permission table.

mod access;
mod service;

pub use access::{GroupAccess, GroupAction, actions};
pub use service::{GroupService, GroupUpdate, InviteRequest};
