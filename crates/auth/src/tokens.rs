//! RS256 access tokens with a key ring.
//!
//! The newest key signs; every key in the ring verifies, so rotating means adding a key and
//! removing the oldest once its last token (1 h) has expired. Verification pins RS256 and
//! requires a known `kid`, so `alg: none`, HS256 signed with the public key, unknown keys,
//! wrong issuer or audience and expired tokens are all refused.

use aws_lc_rs::rsa::KeyPair;
use aws_lc_rs::{digest, signature::KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::keys::{KeyError, SigningKeyPem};

/// The claims of a Steward access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The user id.
    pub sub: Uuid,
    /// The session id; revoking the session invalidates the token.
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is not valid")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    #[error("signing failed: {0}")]
    Signing(String),
}

/// One public key in JWKS form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

struct RingKey {
    jwk: Jwk,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// The signing and verifying keys, oldest first.
pub struct KeyRing {
    keys: Vec<RingKey>,
    issuer: String,
    audience: String,
    /// Secret for deriving refresh-token successors, derived from the signing keys so every
    /// instance that shares the keys derives the same successors.
    derivation_secret: Vec<u8>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field(
                "kids",
                &self.keys.iter().map(|k| k.jwk.kid.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KeyRing {
    pub fn new(pems: &[SigningKeyPem], issuer: &str, audience: &str) -> Result<Self, KeyError> {
        if pems.is_empty() {
            return Err(KeyError::Invalid("no signing key".to_owned()));
        }
        let mut keys = Vec::with_capacity(pems.len());
        let mut derivation = Vec::new();
        for pem in pems {
            let der = pem_body(pem.as_str())?;
            // PKCS#8 (`PRIVATE KEY`, what `steward keys generate` writes) or PKCS#1 (`RSA PRIVATE KEY`).
            let pair = KeyPair::from_pkcs8(&der)
                .or_else(|_| KeyPair::from_der(&der))
                .map_err(|error| KeyError::Invalid(error.to_string()))?;
            let public = pair.public_key();
            let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
            let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
            let kid = thumbprint(&n, &e);
            let encoding = EncodingKey::from_rsa_pem(pem.as_str().as_bytes())
                .map_err(|error| KeyError::Invalid(error.to_string()))?;
            let decoding = DecodingKey::from_rsa_components(&n, &e)
                .map_err(|error| KeyError::Invalid(error.to_string()))?;
            derivation = digest::digest(
                &digest::SHA256,
                &[b"steward-token-derivation:".as_slice(), &der].concat(),
            )
            .as_ref()
            .to_vec();
            keys.push(RingKey {
                jwk: Jwk {
                    kty: "RSA".to_owned(),
                    use_: "sig".to_owned(),
                    alg: "RS256".to_owned(),
                    kid,
                    n,
                    e,
                },
                encoding,
                decoding,
            });
        }
        // Derivation uses the oldest key: it changes least often, so successors computed just
        // before and after a rotation agree.
        if let Some(first) = pems.first() {
            let der = pem_body(first.as_str())?;
            derivation = digest::digest(
                &digest::SHA256,
                &[b"steward-token-derivation:".as_slice(), &der].concat(),
            )
            .as_ref()
            .to_vec();
        }
        Ok(Self {
            keys,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            derivation_secret: derivation,
        })
    }

    pub fn derivation_secret(&self) -> &[u8] {
        &self.derivation_secret
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The `kid` of the key that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        self.keys.last().map(|k| k.jwk.kid.as_str()).unwrap_or_default()
    }

    /// Signs an access token for `user` in `session`, valid for `lifetime_seconds`.
    pub fn issue(
        &self,
        user: Uuid,
        session: Uuid,
        lifetime_seconds: i64,
    ) -> Result<(String, AccessClaims), TokenError> {
        let key = self
            .keys
            .last()
            .ok_or_else(|| TokenError::Signing("empty key ring".to_owned()))?;
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user,
            sid: session,
            jti: Uuid::now_v7(),
            iat: now,
            exp: now + lifetime_seconds,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.jwk.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|error| TokenError::Signing(error.to_string()))?;
        Ok((token, claims))
    }

    /// Verifies signature, algorithm, `kid`, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::RS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.jwk.kid == kid)
            .ok_or(TokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Instances sign and verify for each other; 5 s covers clock skew between them.
        validation.leeway = 5;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.keys.iter().rev().map(|k| k.jwk.clone()).collect(),
        }
    }
}

/// RFC 7638 JWK thumbprint: a `kid` that any party can recompute from the public key.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

fn pem_body(pem: &str) -> Result<Vec<u8>, KeyError> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD
        .decode(body)
        .map_err(|error| KeyError::Invalid(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ring(keys: usize) -> (KeyRing, Vec<SigningKeyPem>) {
        let pems: Vec<SigningKeyPem> = (0..keys).map(|_| SigningKeyPem::generate().unwrap()).collect();
        (KeyRing::new(&pems, "steward", "steward-api").unwrap(), pems)
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    #[test]
    fn an_issued_token_verifies_and_names_user_and_session() {
        let (ring, _) = ring(1);
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, claims) = ring.issue(user, session, 3600).unwrap();
        let verified = ring.verify(&token).unwrap();
        assert_eq!(verified, claims);
        assert_eq!((verified.sub, verified.sid), (user, session));
        assert_eq!(verified.exp - verified.iat, 3600);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(ring.signing_kid()));
    }

    #[test]
    fn the_newest_key_signs_and_older_keys_still_verify() {
        let (old_ring, mut pems) = ring(1);
        let (old_token, _) = old_ring.issue(Uuid::now_v7(), Uuid::now_v7(), 3600).unwrap();
        pems.push(SigningKeyPem::generate().unwrap());
        let rotated = KeyRing::new(&pems, "steward", "steward-api").unwrap();
        assert_ne!(rotated.signing_kid(), old_ring.signing_kid());
        assert!(
            rotated.verify(&old_token).is_ok(),
            "tokens of the previous key stay valid"
        );
        let (new_token, _) = rotated.issue(Uuid::now_v7(), Uuid::now_v7(), 3600).unwrap();
        assert!(
            old_ring.verify(&new_token).is_err(),
            "an instance without the new key refuses it"
        );
        let kids: Vec<String> = rotated.jwks().keys.into_iter().map(|k| k.kid).collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0], rotated.signing_kid(), "the signing key is listed first");
        assert_eq!(
            rotated.derivation_secret(),
            old_ring.derivation_secret(),
            "successors survive a rotation"
        );
    }

    #[test]
    fn every_tampering_is_refused() {
        let (ring, pems) = ring(1);
        let (other, _) = self::ring(1);
        let (user, session) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, claims) = ring.issue(user, session, 3600).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let kid = ring.signing_kid().to_owned();
        let now = chrono::Utc::now().timestamp();

        let sign_with = |claims: &AccessClaims, kid: Option<String>, pem: &SigningKeyPem| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = kid;
            jsonwebtoken::encode(
                &header,
                claims,
                &EncodingKey::from_rsa_pem(pem.as_str().as_bytes()).unwrap(),
            )
            .unwrap()
        };
        let mut wrong_issuer = claims.clone();
        wrong_issuer.iss = "someone-else".into();
        let mut wrong_audience = claims.clone();
        wrong_audience.aud = "another-api".into();
        let mut expired = claims.clone();
        expired.iat = now - 7200;
        expired.exp = now - 3600;

        // HS256 "signed" with the public key's JWK text, the classic algorithm confusion.
        let public_jwk = serde_json::to_string(&ring.jwks().keys[0]).unwrap();
        let hs256 = {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(kid.clone());
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(public_jwk.as_bytes())).unwrap()
        };
        let alg_none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": kid})),
            parts[1]
        );
        let mut forged_payload = serde_json::to_value(&claims).unwrap();
        forged_payload["sub"] = json!(Uuid::now_v7());
        let swapped_payload = format!("{}.{}.{}", parts[0], b64(&forged_payload), parts[2]);
        let truncated_signature = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..parts[2].len() - 4]);

        let cases: Vec<(&str, String, TokenError)> = vec![
            ("alg none", alg_none, TokenError::Invalid),
            ("HS256 with the public key", hs256, TokenError::Invalid),
            (
                "wrong issuer",
                sign_with(&wrong_issuer, Some(kid.clone()), &pems[0]),
                TokenError::Invalid,
            ),
            (
                "wrong audience",
                sign_with(&wrong_audience, Some(kid.clone()), &pems[0]),
                TokenError::Invalid,
            ),
            (
                "unknown kid",
                sign_with(&claims, Some("not-a-kid".into()), &pems[0]),
                TokenError::Invalid,
            ),
            ("no kid", sign_with(&claims, None, &pems[0]), TokenError::Invalid),
            (
                "another key under our kid",
                sign_with(&claims, Some(kid.clone()), &other_pem(&other)),
                TokenError::Invalid,
            ),
            (
                "expired",
                sign_with(&expired, Some(kid.clone()), &pems[0]),
                TokenError::Expired,
            ),
            ("payload swapped", swapped_payload, TokenError::Invalid),
            ("signature truncated", truncated_signature, TokenError::Invalid),
            ("not a JWT", "garbage".to_owned(), TokenError::Invalid),
            ("empty", String::new(), TokenError::Invalid),
        ];
        for (name, token, expected) in cases {
            assert_eq!(ring.verify(&token), Err(expected), "{name}");
        }
        assert!(ring.verify(&token).is_ok(), "the untampered token still verifies");
    }

    fn other_pem(_: &KeyRing) -> SigningKeyPem {
        SigningKeyPem::generate().unwrap()
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 7638 section 3.1's example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}

#[cfg(test)]
mod expiry_tests {
    use super::*;

    #[test]
    fn a_token_is_refused_once_its_lifetime_and_the_skew_allowance_have_passed() {
        let ring = KeyRing::new(&[SigningKeyPem::generate().unwrap()], "steward", "steward").unwrap();
        let (token, claims) = ring.issue(Uuid::now_v7(), Uuid::now_v7(), 1).unwrap();
        assert_eq!(claims.exp - claims.iat, 1);
        // Timestamps are whole seconds: 1 s lifetime + 5 s allowance + 1 s of rounding.
        std::thread::sleep(std::time::Duration::from_millis(7200));
        assert_eq!(ring.verify(&token), Err(TokenError::Expired));
    }
}
