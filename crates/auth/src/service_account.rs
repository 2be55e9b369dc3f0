//! Signing for outgoing calls: Google service-account assertions (the OAuth 2.0 JWT bearer
//! grant FCM HTTP v1 needs) and HMAC signatures of webhook bodies.

use aws_lc_rs::hmac;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum AssertionError {
    #[error("the service account's private key is not an RSA PEM key: {0}")]
    Key(String),
    #[error("cannot sign the assertion: {0}")]
    Sign(String),
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

/// A one-hour RS256 assertion for `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`.
pub fn service_account_assertion(
    private_key_pem: &str,
    client_email: &str,
    scope: &str,
    token_uri: &str,
    now: i64,
) -> Result<String, AssertionError> {
    let key = EncodingKey::from_rsa_pem(private_key_pem.as_bytes())
        .map_err(|error| AssertionError::Key(error.to_string()))?;
    let claims = AssertionClaims {
        iss: client_email,
        scope,
        aud: token_uri,
        iat: now,
        exp: now + 3600,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key)
        .map_err(|error| AssertionError::Sign(error.to_string()))
}

/// `sha256=<hex HMAC-SHA256 of body>`, as webhook receivers verify it.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_match_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            webhook_signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn assertions_need_an_rsa_key() {
        assert!(service_account_assertion("not a key", "a@b", "s", "https://t", 0).is_err());
        let pem = crate::SigningKeyPem::generate().unwrap();
        let jwt = service_account_assertion(
            pem.as_str(),
            "svc@p.iam.gserviceaccount.com",
            "scope",
            "https://t",
            1000,
        )
        .unwrap();
        assert_eq!(jwt.split('.').count(), 3);
    }
}
