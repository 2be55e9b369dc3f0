//! Authentication: the service behind `/api/v1/auth`, the bearer-token extractors and the
//! short-lived cache of session validity.

mod error;
mod extractor;
mod federation;
mod personal_tokens;
mod service;
mod session_cache;

pub use error::AuthError;

/// The pieces of bearer authentication other extractors build on.
pub(crate) mod extractor_support {
    pub(crate) use super::extractor::{bearer_token, identify, scope_error, state};
}
pub use extractor::{
    AdminIdentity, Authenticated, Caller, Permission, RequirePermission, Scope, permissions, scopes,
};
pub use federation::{FederatedSignIn, Federation};
pub use personal_tokens::PAT_PREFIX;
pub use service::{AuthService, AuthSettings, IssuedTokens, NewAccount, ProfileUpdate, SignIn};
pub use session_cache::{SessionCache, TtlCache};
