//! Groups at the HTTP edge: the extractor that checks a caller's role in the group named by the
//! path against the domain's permission table. The service lives in `steward_app::groups`.

mod access;

pub use access::{GroupAccess, GroupAction, actions};
pub use steward_app::groups::{GroupService, GroupUpdate, InviteRequest};
