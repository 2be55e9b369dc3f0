//! Second factor: RFC 6238 time-based one-time passwords (SHA-1, 6 digits, 30 s steps, one
//! step of skew either way, through `totp-rs`), the authenticated encryption that keeps TOTP
//! secrets unreadable at rest (AES-256-GCM from `aws-lc-rs`), and single-use recovery codes.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use totp_rs::{Algorithm, Builder, Secret as TotpSecret, Totp};

use crate::opaque::random_bytes;

/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// Seconds per TOTP step.
pub const STEP_SECONDS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u8 = 6;
/// Recovery codes issued at once.
pub const RECOVERY_CODES: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("the TOTP parameters are invalid: {0}")]
    Totp(String),
    #[error("the MFA encryption key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a stored TOTP secret could not be decrypted (wrong STEWARD_MFA_ENCRYPTION_KEY?)")]
    Undecryptable,
}

/// A TOTP generator and checker for one secret.
pub struct TotpCode {
    totp: Totp,
}

impl TotpCode {
    /// `issuer` and `account` name the entry in the authenticator app (neither may hold `:`).
    pub fn new(secret: &[u8], issuer: &str, account: &str) -> Result<Self, MfaError> {
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(1)
            .with_step_duration(STEP_SECONDS)
            .with_secret(secret.to_vec())
            .with_issuer(Some(issuer.replace(':', "")))
            .with_account_name(account.replace(':', ""))
            .build()
            .map_err(|error| MfaError::Totp(error.to_string()))?;
        Ok(Self { totp })
    }

    /// The code for the step holding `unix_seconds`.
    pub fn code_at(&self, unix_seconds: u64) -> String {
        self.totp.generate(unix_seconds).to_string()
    }

    /// The step `code` belongs to, when it is the code of the step holding `unix_seconds` or of
    /// the step before or after it. The caller accepts each step at most once.
    pub fn matching_step(&self, code: &str, unix_seconds: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp.check(code, unix_seconds)
    }

    /// The `otpauth://totp/…` URI authenticator apps read from the QR code.
    pub fn otpauth_uri(&self) -> Result<String, MfaError> {
        self.totp
            .to_url()
            .map_err(|error| MfaError::Totp(error.to_string()))
    }

    /// The secret in base32, for typing into an app by hand.
    pub fn secret_base32(&self) -> String {
        TotpSecret::from(self.totp.secret().as_ref()).to_base32()
    }
}

/// A fresh random TOTP secret.
pub fn new_totp_secret() -> Vec<u8> {
    random_bytes(SECRET_BYTES)
}

/// Seals and opens TOTP secrets with AES-256-GCM: a random 96-bit nonce per secret, stored
/// before the ciphertext, base64 as a whole. The account id is the associated data, so a
/// sealed secret copied onto another account does not open.
pub struct SecretBox {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box from a 32-byte key.
    pub fn new(key: &[u8]) -> Result<Self, MfaError> {
        let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| MfaError::BadKey)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// A box from the base64 of a 32-byte key (`STEWARD_MFA_ENCRYPTION_KEY`).
    pub fn from_base64(key: &str) -> Result<Self, MfaError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| MfaError::BadKey)?;
        if bytes.len() != 32 {
            return Err(MfaError::BadKey);
        }
        Self::new(&bytes)
    }

    /// A new random key, base64-encoded.
    pub fn generate_key() -> String {
        STANDARD.encode(random_bytes(32))
    }

    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<String, MfaError> {
        let nonce_bytes = random_bytes(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(|_| MfaError::BadKey)?;
        let mut sealed = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(context), &mut sealed)
            .map_err(|_| MfaError::BadKey)?;
        let mut stored = nonce_bytes;
        stored.extend_from_slice(&sealed);
        Ok(STANDARD.encode(stored))
    }

    pub fn open(&self, stored: &str, context: &[u8]) -> Result<Vec<u8>, MfaError> {
        let bytes = STANDARD.decode(stored).map_err(|_| MfaError::Undecryptable)?;
        if bytes.len() < NONCE_LEN {
            return Err(MfaError::Undecryptable);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| MfaError::Undecryptable)?;
        let mut buffer = sealed.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut buffer)
            .map_err(|_| MfaError::Undecryptable)?;
        Ok(plaintext.to_vec())
    }
}

/// Ten new recovery codes, `xxxx-xxxx-xxxx` of lower-case letters and digits without look-alikes
/// (about 59 bits each).
pub fn new_recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let bytes = random_bytes(12);
            let mut code = String::with_capacity(14);
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 && i % 4 == 0 {
                    code.push('-');
                }
                code.push(char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]));
            }
            code
        })
        .collect()
}

/// A recovery code as typed, reduced to what is compared: lower case, without spaces or dashes.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows, truncated to six digits (the RFC prints eight).
    #[test]
    fn rfc_6238_sha1_test_vectors() {
        let totp = TotpCode::new(b"12345678901234567890", "Steward", "rfc@example.com").unwrap();
        for (time, eight_digits) in [
            (59_u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.code_at(time), eight_digits[2..], "T = {time}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_one_step_either_side_only() {
        let totp = TotpCode::new(&new_totp_secret(), "Steward", "a@example.com").unwrap();
        let now = 1_800_000_015;
        let code = totp.code_at(now);
        let step = now / STEP_SECONDS;
        assert_eq!(totp.matching_step(&code, now), Some(step));
        assert_eq!(totp.matching_step(&code, now + 30), Some(step));
        assert_eq!(totp.matching_step(&code, now - 30), Some(step));
        assert_eq!(totp.matching_step(&code, now + 60), None);
        assert_eq!(totp.matching_step("12345", now), None);
        assert_eq!(totp.matching_step("１２３４５６", now), None);
        assert_eq!(totp.matching_step("", now), None);
    }

    #[test]
    fn the_otpauth_uri_names_issuer_and_account() {
        let totp = TotpCode::new(b"12345678901234567890", "steward.example", "ana@example.com").unwrap();
        let uri = totp.otpauth_uri().unwrap();
        assert!(
            uri.starts_with("otpauth://totp/steward.example:ana%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert_eq!(totp.secret_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_account() {
        let key = SecretBox::generate_key();
        let sealed_box = SecretBox::from_base64(&key).unwrap();
        let sealed = sealed_box.seal(b"secret bytes", b"account-1").unwrap();
        assert!(!sealed.contains("secret"));
        assert_eq!(sealed_box.open(&sealed, b"account-1").unwrap(), b"secret bytes");
        assert!(sealed_box.open(&sealed, b"account-2").is_err());
        let other = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        assert!(other.open(&sealed, b"account-1").is_err());
        assert!(SecretBox::from_base64("c2hvcnQ=").is_err());
        // Two seals of one secret differ (fresh nonce each time).
        assert_ne!(
            sealed_box.seal(b"x", b"a").unwrap(),
            sealed_box.seal(b"x", b"a").unwrap()
        );
    }

    #[test]
    fn recovery_codes_are_distinct_and_normalize() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert!(codes.iter().all(|c| c.len() == 14));
        assert_eq!(normalize_recovery_code(" ABCD-efgh jkmn "), "abcdefghjkmn");
    }
}
