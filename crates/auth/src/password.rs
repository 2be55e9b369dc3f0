//! Argon2id password hashing.
//!
//! Hashes are PHC strings carrying their own parameters, so raising the configured cost later
//! is noticed at the next successful sign-in ([`Verification::needs_rehash`]) and the hash is
//! upgraded then. Hashing is CPU-bound (≈ 0.2 s at the defaults): callers run it on a blocking
//! thread, never on the async executor.

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};

/// Argon2id cost parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashingCost {
    /// m = 64 MiB, t = 3, p = 1 (PRODUCT.md).
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HashingError {
    #[error("invalid Argon2 parameters: {0}")]
    Parameters(String),
    #[error("hashing failed: {0}")]
    Hashing(String),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The hash was made with other parameters than the configured ones.
    pub needs_rehash: bool,
}

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    cost: HashingCost,
    /// A hash in the configured parameters with a random salt and output, verified when the
    /// account does not exist so that an unknown email costs the same time as a wrong password.
    /// Made without hashing (no password hashes to it), so start-up does not spend an Argon2
    /// computation on it.
    dummy_hash: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.cost)
            .finish()
    }
}

impl PasswordHasher {
    pub fn new(cost: HashingCost) -> Result<Self, HashingError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|error| HashingError::Parameters(error.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        use base64::Engine as _;
        let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes);
        let dummy_hash = format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            cost.memory_kib,
            cost.iterations,
            cost.parallelism,
            b64(crate::opaque::random_bytes(16)),
            b64(crate::opaque::random_bytes(32)),
        );
        Ok(Self {
            argon2,
            cost,
            dummy_hash,
        })
    }

    pub fn cost(&self) -> HashingCost {
        self.cost
    }

    pub fn hash(&self, password: &str) -> Result<String, HashingError> {
        self.argon2
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|error| HashingError::Hashing(error.to_string()))
    }

    /// Checks `password` against `stored`. A malformed stored hash never matches.
    pub fn verify(&self, password: &str, stored: &str) -> Verification {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Verification {
                matches: false,
                needs_rehash: true,
            };
        };
        let matches = self.argon2.verify_password(password.as_bytes(), &parsed).is_ok();
        Verification {
            matches,
            needs_rehash: !self.has_current_parameters(&parsed),
        }
    }

    /// Spends the time of one verification without an account to verify against.
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, &self.dummy_hash);
    }

    fn has_current_parameters(&self, hash: &PasswordHash) -> bool {
        let decimal = |name: &str| hash.params.get_decimal(name);
        hash.algorithm.as_str() == "argon2id"
            && decimal("m") == Some(self.cost.memory_kib)
            && decimal("t") == Some(self.cost.iterations)
            && decimal("p") == Some(self.cost.parallelism)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The unknown-account check costs one verification in the configured parameters: the
    /// dummy parses as such a hash (so verifying against it runs Argon2 with them) and nothing
    /// matches it.
    #[test]
    fn the_dummy_hash_is_a_hash_in_the_current_parameters_that_nothing_matches() {
        let hasher = PasswordHasher::new(HashingCost::default()).unwrap();
        let parsed = PasswordHash::new(&hasher.dummy_hash).unwrap();
        assert!(hasher.has_current_parameters(&parsed), "{}", hasher.dummy_hash);
        assert_eq!(
            hasher.verify("anything at all", &hasher.dummy_hash),
            Verification {
                matches: false,
                needs_rehash: false
            }
        );
        let other = PasswordHasher::new(HashingCost::default()).unwrap();
        assert_ne!(
            hasher.dummy_hash, other.dummy_hash,
            "a random salt and output each time"
        );
    }

    #[test]
    fn the_real_cost_hashes_and_verifies_with_its_parameters_in_the_hash() {
        let hasher = PasswordHasher::new(HashingCost::default()).unwrap();
        let hash = hasher.hash("correct horse battery staple").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=65536,t=3,p=1$"), "{hash}");
        assert_eq!(
            hasher.verify("correct horse battery staple", &hash),
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!hasher.verify("correct horse battery stable", &hash).matches);
    }

    #[test]
    fn a_hash_with_older_parameters_still_verifies_and_asks_for_a_rehash() {
        let light = PasswordHasher::new(HashingCost {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        let old = light.hash("correct horse battery staple").unwrap();
        let current = PasswordHasher::new(HashingCost {
            memory_kib: 16 * 1024,
            iterations: 2,
            parallelism: 1,
        })
        .unwrap();
        assert_eq!(
            current.verify("correct horse battery staple", &old),
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[test]
    fn garbage_never_matches() {
        let hasher = PasswordHasher::new(HashingCost {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap();
        assert!(!hasher.verify("x", "not a hash").matches);
        assert!(!hasher.verify("x", "").matches);
    }
}
