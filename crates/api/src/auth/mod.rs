//! Authentication: the service behind `/api/v1/auth`, the bearer-token extractors and the
//! short-lived cache of session validity.

mod error;
mod extractor;
mod federation;
mod service;
mod session_cache;

pub use error::AuthError;
pub use extractor::{AdminIdentity, Authenticated, Permission, RequirePermission, permissions};
pub use federation::{FederatedSignIn, Federation};
pub use service::{AuthService, AuthSettings, IssuedTokens, NewAccount, ProfileUpdate, SignIn};
pub use session_cache::SessionCache;
