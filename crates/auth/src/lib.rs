//! Credentials and tokens: RSA signing keys for RS256 access tokens, and (as the
//! authentication features land) Argon2id hashing, refresh-token families and ID-token
//! verification.

pub mod keys;

pub use keys::{KeyError, SigningKeyPem};
