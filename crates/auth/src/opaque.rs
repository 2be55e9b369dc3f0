//! Opaque tokens (refresh, verification, reset, device, API keys): random, shown once, stored
//! only as a SHA-256 hash.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `count` bytes from the system's secure random number generator.
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut buffer = vec![0u8; count];
    // The system RNG failing is unrecoverable for a security service; an all-zero token would be
    // worse than a crash, so refuse to continue.
    #[allow(clippy::expect_used)]
    SystemRandom::new()
        .fill(&mut buffer)
        .expect("the system random number generator failed");
    buffer
}

/// A URL-safe random token of `bytes` random bytes (32 bytes = 256 bits for secrets).
pub fn random_token(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

/// The hash a token is stored and looked up by (hex SHA-256). Tokens carry 256 bits of entropy,
/// so a fast hash is enough; no salt is needed for lookups.
pub fn hash_token(token: &str) -> String {
    let digest = digest::digest(&digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Characters of the random part shown after a secret's type prefix (`stw_pat_AbCd…`), enough
/// to tell secrets apart in listings and logs, far too few to guess the rest.
pub const DISPLAY_CHARS: usize = 4;

/// A secret shown once, kept only as its hash and a display prefix: personal access tokens,
/// API keys, device tokens and enrollment tokens all take this shape.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// `<type prefix><random>`: shown to its owner once.
    pub secret: String,
    /// What is stored and looked up ([`hash_token`]).
    pub hash: String,
    /// The type prefix and the first [`DISPLAY_CHARS`] characters after it.
    pub prefix: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Secret {
    /// A new random secret (256 bits) after `type_prefix` (`stw_pat_`, `stw_key_`, …).
    pub fn generate(type_prefix: &str) -> Self {
        Self::from_parts(type_prefix, &random_token(32))
    }

    /// A secret whose random part is derived elsewhere (an enrollment token's, from its id).
    pub fn from_parts(type_prefix: &str, random: &str) -> Self {
        let secret = format!("{type_prefix}{random}");
        Self {
            hash: hash_token(&secret),
            prefix: secret
                .chars()
                .take(type_prefix.chars().count() + DISPLAY_CHARS)
                .collect(),
            secret,
        }
    }
}

/// Derives tokens from other tokens with a server secret, so a successor can be recomputed
/// from its parent without ever storing either in plain text.
#[derive(Clone)]
pub struct TokenDeriver {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenDeriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDeriver(<secret>)")
    }
}

impl TokenDeriver {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    /// An enrollment token's secret: HMAC-SHA256(secret, "enrollment:" ‖ id). Derived rather
    /// than stored, so the QR code can show it again while only its hash is kept.
    pub fn enrollment_secret(&self, id: &str) -> String {
        let tag = hmac::sign(&self.key, format!("enrollment:{id}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// A report recipient's unsubscribe token: the recipient's id and
    /// HMAC-SHA256(secret, "report-unsubscribe:" ‖ id), so the link works without signing in
    /// and cannot be made for another recipient.
    /// `recipient` is 32 hexadecimal digits (a UUID without hyphens); the token is those and
    /// the tag in base64url, one URL-safe word.
    pub fn report_unsubscribe_token(&self, recipient: &str) -> String {
        let tag = hmac::sign(&self.key, format!("report-unsubscribe:{recipient}").as_bytes());
        format!("{recipient}{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }

    /// The recipient an unsubscribe token names (its first 32 characters), if its tag is right
    /// (compared in constant time).
    pub fn open_report_unsubscribe_token<'a>(&self, token: &'a str) -> Option<&'a str> {
        if !token.is_ascii() || token.len() <= 32 {
            return None;
        }
        let (recipient, tag) = token.split_at(32);
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        hmac::verify(
            &self.key,
            format!("report-unsubscribe:{recipient}").as_bytes(),
            &tag,
        )
        .ok()?;
        Some(recipient)
    }

    /// The successor of a refresh token: HMAC-SHA256(secret, "refresh-successor:" ‖ parent).
    pub fn refresh_successor(&self, parent: &str) -> String {
        let tag = hmac::sign(&self.key, format!("refresh-successor:{parent}").as_bytes());
        URL_SAFE_NO_PAD.encode(tag.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_keeps_its_type_and_shows_only_a_short_prefix() {
        let secret = Secret::generate("stw_pat_");
        assert!(secret.secret.starts_with("stw_pat_"));
        assert_eq!(secret.secret.len(), "stw_pat_".len() + 43);
        assert_eq!(secret.prefix, secret.secret[.."stw_pat_".len() + DISPLAY_CHARS]);
        assert_eq!(secret.hash, hash_token(&secret.secret));
        assert_ne!(Secret::generate("stw_pat_").secret, secret.secret);
        assert!(!format!("{secret:?}").contains(&secret.secret));
        assert_eq!(Secret::from_parts("stw_enr_", "abcdef").prefix, "stw_enr_abcd");
    }

    #[test]
    fn unsubscribe_tokens_open_only_with_their_tag() {
        let deriver = TokenDeriver::new(b"a secret of enough length for tests");
        let id = "0123456789abcdef0123456789abcdef";
        let token = deriver.report_unsubscribe_token(id);
        assert_eq!(deriver.open_report_unsubscribe_token(&token), Some(id));
        assert!(
            token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        let forged = token.replacen("0123", "0124", 1);
        assert_eq!(deriver.open_report_unsubscribe_token(&forged), None);
        assert_eq!(deriver.open_report_unsubscribe_token(id), None);
        assert_eq!(deriver.open_report_unsubscribe_token(&format!("{id}%%%")), None);
        assert_eq!(
            deriver.open_report_unsubscribe_token("é".repeat(40).as_str()),
            None
        );
        let other = TokenDeriver::new(b"another secret of enough length");
        assert_eq!(other.open_report_unsubscribe_token(&token), None);
    }

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn hashes_are_stable_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn successors_are_deterministic_per_secret() {
        let one = TokenDeriver::new(b"secret one");
        let two = TokenDeriver::new(b"secret two");
        assert_eq!(one.refresh_successor("p"), one.refresh_successor("p"));
        assert_ne!(one.refresh_successor("p"), one.refresh_successor("q"));
        assert_ne!(one.refresh_successor("p"), two.refresh_successor("p"));
        assert_eq!(one.refresh_successor("p").len(), 43);
    }
}
