//! Authentication: accounts, sign-in, sessions and refresh rotation, password and email
//! flows, personal access tokens and identity-provider federation.

mod error;
mod federation;
mod personal_tokens;
mod service;

pub use error::AuthError;
pub use federation::{FederatedSignIn, Federation};
pub use personal_tokens::PAT_PREFIX;
pub use service::{
    AdminNewAccount, AdminProfileUpdate, AuthService, AuthSettings, IssuedTokens, MfaProof, MfaSettings,
    NewAccount, ProfileUpdate, RESET_MAILS_PER_HOUR, SignIn, SignInOutcome, TotpSetup, png_data_url,
};
