//! Authentication at the HTTP edge: the bearer-token extractors. The service behind
//! `/api/v1/auth` lives in `steward_app::auth`.

mod extractor;

pub use steward_app::auth::{
    AuthError, AuthService, AuthSettings, FederatedSignIn, Federation, IssuedTokens, NewAccount, PAT_PREFIX,
    ProfileUpdate, SignIn,
};

/// The pieces of bearer authentication other extractors build on.
pub(crate) mod extractor_support {
    pub(crate) use super::extractor::{bearer_token, identify, known_principal, scope_error, state};
}
pub use extractor::{
    AdminIdentity, Authenticated, Caller, DeviceScope, Permission, RequirePermission, Scope, permissions,
    scopes,
};
