//! RS256 signing keys as PEM files.
//!
//! Keys are generated in-process with aws-lc-rs (PKCS#8, RSA-2048) so a fresh installation can
//! sign tokens without OpenSSL on the machine; operators who bring their own keys hand Steward
//! PEM files, which are checked at start so a bad file fails there rather than at first sign-in.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("RSA key generation failed")]
    Generation,
    #[error("not a usable RSA private key: {0}")]
    Invalid(String),
}

/// An RSA private key in PKCS#8 PEM form (`-----BEGIN PRIVATE KEY-----`).
#[derive(Clone)]
pub struct SigningKeyPem(String);

impl std::fmt::Debug for SigningKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeyPem(<redacted>)")
    }
}

impl SigningKeyPem {
    /// Generates a new RSA-2048 key.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
        let der = pair.as_der().map_err(|_| KeyError::Generation)?;
        Ok(Self(pem_encode("PRIVATE KEY", der.as_ref())))
    }

    /// Accepts a PEM only if it holds an RSA private key that can sign RS256 tokens.
    pub fn parse(pem: impl Into<String>) -> Result<Self, KeyError> {
        let pem = pem.into();
        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|error| KeyError::Invalid(error.to_string()))?;
        Ok(Self(pem))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_signs_and_verifies_rs256() {
        let key = SigningKeyPem::generate().unwrap();
        assert!(key.as_str().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let reparsed = SigningKeyPem::parse(key.as_str()).unwrap();

        let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(reparsed.as_str().as_bytes()).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64});
        let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();

        let pair = KeyPair::from_pkcs8(&pem_body(reparsed.as_str())).unwrap();
        use aws_lc_rs::signature::KeyPair as _;
        let public = pair.public_key();
        let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(public.modulus().big_endian_without_leading_zero());
        let e = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(public.exponent().big_endian_without_leading_zero());
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(&n, &e).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.required_spec_claims.clear();
        let decoded = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        assert_eq!(decoded.claims["sub"], "x");
    }

    #[test]
    fn anything_but_an_rsa_private_key_is_refused() {
        assert!(matches!(
            SigningKeyPem::parse("not a key"),
            Err(KeyError::Invalid(_))
        ));
        let truncated = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";
        assert!(matches!(
            SigningKeyPem::parse(truncated),
            Err(KeyError::Invalid(_))
        ));
    }

    fn pem_body(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    }
}
