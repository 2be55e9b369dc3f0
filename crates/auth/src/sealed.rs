//! Files sealed with a passphrase: the key is derived with Argon2id (a random 16-byte salt per
//! file, the cost written beside it) and the content encrypted with AES-256-GCM (`aws-lc-rs`, a
//! random 96-bit nonce). The header (format, cost, salt, nonce) is the associated data, so a
//! file whose cost, salt or cipher text was changed does not open, and neither does a wrong
//! passphrase; the two are not told apart.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::opaque::random_bytes;

/// The `format` of a sealed file.
pub const SEALED_FORMAT: &str = "steward-sealed";
/// The cipher named in the header.
pub const CIPHER: &str = "AES-256-GCM";
/// The key derivation named in the header.
pub const KDF: &str = "argon2id";
const SALT_BYTES: usize = 16;
/// The strongest cost a file may ask for (128 MiB, 4 passes, 4 lanes; Steward writes 64 MiB, 3
/// passes, 1 lane): a file is not trusted to make the reader spend without bounds.
const MAX_MEMORY_KIB: u32 = 128 * 1024;
const MAX_ITERATIONS: u32 = 4;
const MAX_PARALLELISM: u32 = 4;
/// The weakest cost accepted when opening, so a forged header cannot make the key cheap to guess.
const MIN_MEMORY_KIB: u32 = 8 * 1024;

/// Why a sealed file could not be made or opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// The passphrase is shorter than the minimum.
    #[error("the passphrase must have at least {0} characters")]
    WeakPassphrase(usize),
    /// Not a sealed file, or a header Steward does not read.
    #[error("not a sealed file: {0}")]
    Malformed(String),
    /// A wrong passphrase or a changed file: the two are not told apart.
    #[error("the file does not open with this passphrase (a wrong passphrase, or the file was changed)")]
    DoesNotOpen,
}

/// The shortest passphrase accepted when sealing.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Argon2id cost of a sealed file's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KdfCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfCost {
    /// 64 MiB, 3 passes, one lane (about 0.2 s here).
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// A sealed file as written: JSON, every binary field base64.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SealedFile {
    pub format: String,
    /// What the content is (`steward-config`), readable without the passphrase.
    pub content: String,
    pub kdf: String,
    pub cost: KdfCost,
    pub salt: String,
    pub cipher: String,
    pub nonce: String,
    pub ciphertext: String,
}

impl SealedFile {
    /// The bytes bound to the cipher text: everything but the cipher text itself.
    fn associated_data(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}|m={},t={},p={}|{}|{}|{}",
            self.format,
            self.content,
            self.kdf,
            self.cost.memory_kib,
            self.cost.iterations,
            self.cost.parallelism,
            self.salt,
            self.cipher,
            self.nonce
        )
        .into_bytes()
    }
}

fn derive_key(passphrase: &str, salt: &[u8], cost: KdfCost) -> Result<LessSafeKey, SealError> {
    let params = argon2::Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(32))
        .map_err(|error| SealError::Malformed(format!("cost: {error}")))?;
    let argon2 = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = [0u8; 32];
    argon2
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|error| SealError::Malformed(format!("key derivation: {error}")))?;
    let key = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| SealError::DoesNotOpen)?;
    Ok(LessSafeKey::new(key))
}

/// Seals `plaintext` (a `content` file) with `passphrase`. CPU-bound (the key derivation):
/// run it on a blocking thread.
pub fn seal(
    content: &str,
    plaintext: &[u8],
    passphrase: &str,
    cost: KdfCost,
) -> Result<SealedFile, SealError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(SealError::WeakPassphrase(MIN_PASSPHRASE_CHARS));
    }
    let salt = random_bytes(SALT_BYTES);
    let nonce = random_bytes(NONCE_LEN);
    let mut file = SealedFile {
        format: SEALED_FORMAT.to_owned(),
        content: content.to_owned(),
        kdf: KDF.to_owned(),
        cost,
        salt: STANDARD.encode(&salt),
        cipher: CIPHER.to_owned(),
        nonce: STANDARD.encode(&nonce),
        ciphertext: String::new(),
    };
    let key = derive_key(passphrase, &salt, cost)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| SealError::DoesNotOpen)?;
    let mut sealed = plaintext.to_vec();
    key.seal_in_place_append_tag(nonce, Aad::from(file.associated_data()), &mut sealed)
        .map_err(|_| SealError::DoesNotOpen)?;
    file.ciphertext = STANDARD.encode(sealed);
    Ok(file)
}

/// Opens a sealed file holding `content`. CPU-bound: run it on a blocking thread.
pub fn open(file: &SealedFile, content: &str, passphrase: &str) -> Result<Vec<u8>, SealError> {
    if file.format != SEALED_FORMAT || file.kdf != KDF || file.cipher != CIPHER {
        return Err(SealError::Malformed(format!(
            "expected format {SEALED_FORMAT}, kdf {KDF}, cipher {CIPHER}"
        )));
    }
    if file.content != content {
        return Err(SealError::Malformed(format!(
            "it holds {}, not {content}",
            file.content
        )));
    }
    let cost = file.cost;
    if !(MIN_MEMORY_KIB..=MAX_MEMORY_KIB).contains(&cost.memory_kib)
        || !(1..=MAX_ITERATIONS).contains(&cost.iterations)
        || !(1..=MAX_PARALLELISM).contains(&cost.parallelism)
    {
        return Err(SealError::Malformed(format!(
            "the key derivation cost must be {MIN_MEMORY_KIB}–{MAX_MEMORY_KIB} KiB, 1–{MAX_ITERATIONS} \
             passes and 1–{MAX_PARALLELISM} lanes"
        )));
    }
    let decode = |field: &str, text: &str| {
        STANDARD
            .decode(text)
            .map_err(|_| SealError::Malformed(format!("{field} is not base64")))
    };
    let salt = decode("salt", &file.salt)?;
    let nonce = decode("nonce", &file.nonce)?;
    let mut sealed = decode("ciphertext", &file.ciphertext)?;
    if salt.len() < 8 || nonce.len() != NONCE_LEN {
        return Err(SealError::Malformed(
            "salt or nonce has the wrong length".to_owned(),
        ));
    }
    let key = derive_key(passphrase, &salt, cost)?;
    let nonce = Nonce::try_assume_unique_for_key(&nonce).map_err(|_| SealError::DoesNotOpen)?;
    let plain = key
        .open_in_place(nonce, Aad::from(file.associated_data()), &mut sealed)
        .map_err(|_| SealError::DoesNotOpen)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIGHT: KdfCost = KdfCost {
        memory_kib: MIN_MEMORY_KIB,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn opens_with_the_passphrase_only() {
        let file = seal("steward-config", b"{\"a\":1}", "correct horse battery", LIGHT).unwrap();
        assert_eq!(
            open(&file, "steward-config", "correct horse battery").unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(
            open(&file, "steward-config", "correct horse batterY"),
            Err(SealError::DoesNotOpen)
        );
        assert!(matches!(
            open(&file, "other", "correct horse battery"),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn a_changed_header_or_body_does_not_open() {
        let file = seal("steward-config", b"secret things", "correct horse battery", LIGHT).unwrap();
        let mut cheaper = file.clone();
        cheaper.cost.iterations = 2;
        assert_eq!(
            open(&cheaper, "steward-config", "correct horse battery"),
            Err(SealError::DoesNotOpen)
        );
        let mut flipped = file.clone();
        let mut bytes = STANDARD.decode(&flipped.ciphertext).unwrap();
        bytes[0] ^= 1;
        flipped.ciphertext = STANDARD.encode(bytes);
        assert_eq!(
            open(&flipped, "steward-config", "correct horse battery"),
            Err(SealError::DoesNotOpen)
        );
        let mut greedy = file;
        greedy.cost.memory_kib = u32::MAX;
        assert!(matches!(
            open(&greedy, "steward-config", "correct horse battery"),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn short_passphrases_are_refused() {
        assert_eq!(
            seal("steward-config", b"x", "short", LIGHT),
            Err(SealError::WeakPassphrase(MIN_PASSPHRASE_CHARS))
        );
    }
}
