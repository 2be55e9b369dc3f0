//! Credentials and tokens: Argon2id password hashing, RS256 access tokens with a key ring and
//! JWKS, opaque tokens stored as hashes, and refresh-successor derivation.

pub mod keys;
pub mod mfa;
pub mod oidc;
pub mod opaque;
pub mod password;
pub mod sealed;
pub mod service_account;
pub mod tokens;

pub use keys::{KeyError, SigningKeyPem};
pub use opaque::{Secret, TokenDeriver, hash_token, random_bytes, random_token};
pub use password::{HashingCost, HashingError, PasswordHasher, Verification};
pub use tokens::{AccessClaims, Jwk, Jwks, KeyRing, TokenError};
