//! ID-token verification for Google, Apple and any OpenID Connect provider.
//!
//! The provider's JWKS is fetched over HTTPS and cached for as long as its `Cache-Control:
//! max-age` allows (at least a minute); a token with an unknown `kid` triggers one refetch, but
//! never more than one per minute, so a flood of forged tokens cannot make Steward hammer the
//! provider. Accepted algorithms are pinned (RS256, ES256) and must match the key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};
use tokio::sync::Mutex;

/// Seconds of clock skew tolerated on `exp`, `iat` and `nbf`.
const LEEWAY_SECONDS: u64 = 60;
/// The shortest cache lifetime honoured, whatever `max-age` says.
const MIN_CACHE: Duration = Duration::from_secs(60);
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);

/// One configured identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// `google`, `apple` or `oidc`.
    pub name: String,
    /// Accepted `iss` values (Google uses two spellings).
    pub issuers: Vec<String>,
    pub jwks_url: String,
    /// Accepted `aud` values: the client IDs of your apps.
    pub client_ids: Vec<String>,
    /// Least time between two fetches of the JWKS (one minute in production).
    pub min_refetch: Duration,
}

/// The identity an ID token asserts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct IdentityClaims {
    pub iss: String,
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Google sends a boolean, Apple the string `"true"`.
    #[serde(default, deserialize_with = "bool_or_string")]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub nonce: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Issued at (seconds since the epoch); required, and not in the future beyond the skew.
    #[serde(default, deserialize_with = "seconds")]
    pub iat: Option<i64>,
    /// Not before (seconds since the epoch), when present.
    #[serde(default, deserialize_with = "seconds")]
    pub nbf: Option<i64>,
}

/// A NumericDate (RFC 7519 §2): seconds, possibly fractional; clamped into `i64`.
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.map(|value| {
        if value.is_nan() {
            i64::MAX
        } else {
            value.clamp(i64::MIN as f64, i64::MAX as f64) as i64
        }
    }))
}

fn bool_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Flexible {
        Bool(bool),
        Text(String),
    }
    Ok(match Option::<Flexible>::deserialize(deserializer)? {
        Some(Flexible::Bool(value)) => Some(value),
        Some(Flexible::Text(text)) => Some(text.eq_ignore_ascii_case("true")),
        None => None,
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdTokenError {
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token's algorithm is not accepted")]
    Algorithm,
    #[error("the ID token was signed with an unknown key")]
    UnknownKey,
    #[error("the ID token is invalid: {0}")]
    Invalid(String),
    #[error("the ID token has expired")]
    Expired,
    #[error("the nonce does not match")]
    Nonce,
    #[error("the provider's keys could not be fetched: {0}")]
    Jwks(String),
    #[error("the provider's UserInfo endpoint refused the access token or failed: {0}")]
    UserInfo(String),
    #[error("the UserInfo response names a different subject than the ID token")]
    UserInfoSubject,
}

struct CachedKeys {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    fresh_until: Instant,
    fetched_at: Option<Instant>,
}

/// A provider's verifier with its cached keys.
pub struct IdTokenVerifier {
    settings: ProviderSettings,
    client: reqwest::Client,
    cache: Mutex<CachedKeys>,
}

impl std::fmt::Debug for IdTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenVerifier")
            .field("settings", &self.settings)
            .finish()
    }
}

fn max_age(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .split(',')
                .filter_map(|directive| directive.trim().strip_prefix("max-age="))
                .find_map(|seconds| seconds.parse::<u64>().ok())
        })
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_MAX_AGE)
        .max(MIN_CACHE)
}

fn algorithm_of(parameters: &AlgorithmParameters) -> Option<Algorithm> {
    match parameters {
        AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == jsonwebtoken::jwk::EllipticCurve::P256 => {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

impl IdTokenVerifier {
    pub fn new(settings: ProviderSettings, client: reqwest::Client) -> Self {
        Self {
            settings,
            client,
            cache: Mutex::new(CachedKeys {
                keys: HashMap::new(),
                fresh_until: Instant::now(),
                fetched_at: None,
            }),
        }
    }

    pub fn settings(&self) -> &ProviderSettings {
        &self.settings
    }

    async fn fetch(&self, cache: &mut CachedKeys) -> Result<(), IdTokenError> {
        cache.fetched_at = Some(Instant::now());
        let response = self
            .client
            .get(&self.settings.jwks_url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| IdTokenError::Jwks(error.to_string()))?;
        let fresh_for = max_age(response.headers());
        let set: JwkSet = response
            .json()
            .await
            .map_err(|error| IdTokenError::Jwks(error.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(algorithm)) = (jwk.common.key_id.clone(), algorithm_of(&jwk.algorithm))
            else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, algorithm));
            }
        }
        cache.keys = keys;
        cache.fresh_until = Instant::now() + fresh_for;
        Ok(())
    }

    /// The key for `kid`: from the cache while fresh; refetched when stale, or once (at most
    /// every minute) when the `kid` is unknown.
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), IdTokenError> {
        let mut cache = self.cache.lock().await;
        let stale = Instant::now() >= cache.fresh_until;
        let unknown = !cache.keys.contains_key(kid);
        let may_refetch = cache
            .fetched_at
            .is_none_or(|at| at.elapsed() >= self.settings.min_refetch);
        // A failed refetch keeps serving the keys already known.
        if (stale || (unknown && may_refetch))
            && let Err(error) = self.fetch(&mut cache).await
            && cache.keys.is_empty()
        {
            return Err(error);
        }
        cache.keys.get(kid).cloned().ok_or(IdTokenError::UnknownKey)
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and — when the client sent one —
    /// the nonce (equal to it, or to its SHA-256 hex as Apple's flow produces).
    pub async fn verify(&self, token: &str, nonce: Option<&str>) -> Result<IdentityClaims, IdTokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| IdTokenError::Malformed)?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(IdTokenError::Algorithm);
        }
        let kid = header.kid.ok_or(IdTokenError::UnknownKey)?;
        let (key, algorithm) = self.key(&kid).await?;
        if algorithm != header.alg {
            return Err(IdTokenError::Algorithm);
        }
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.set_issuer(&self.settings.issuers);
        validation.set_audience(&self.settings.client_ids);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        let claims = jsonwebtoken::decode::<IdentityClaims>(token, &key, &validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => IdTokenError::Expired,
                _ => IdTokenError::Invalid(error.to_string()),
            })?
            .claims;
        check_issued_in_the_past(&claims, now_seconds())?;
        if let Some(expected) = nonce {
            let hashed = crate::opaque::hash_token(expected);
            match claims.nonce.as_deref() {
                Some(actual) if actual == expected || actual == hashed => {}
                _ => return Err(IdTokenError::Nonce),
            }
        }
        Ok(claims)
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `iat` must be present and neither `iat` nor `nbf` later than now plus the skew: a token
/// "issued" an hour from now was not issued by a provider with a sane clock.
fn check_issued_in_the_past(claims: &IdentityClaims, now: i64) -> Result<(), IdTokenError> {
    let latest = now.saturating_add(LEEWAY_SECONDS as i64);
    let iat = claims
        .iat
        .ok_or_else(|| IdTokenError::Invalid("the `iat` claim is missing".to_owned()))?;
    if iat > latest {
        return Err(IdTokenError::Invalid(
            "the token is issued in the future (`iat`)".to_owned(),
        ));
    }
    if claims.nbf.is_some_and(|nbf| nbf > latest) {
        return Err(IdTokenError::Invalid(
            "the token is not valid yet (`nbf`)".to_owned(),
        ));
    }
    Ok(())
}

/// What a UserInfo endpoint answers (OpenID Connect Core §5.3).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserInfo {
    pub sub: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default, deserialize_with = "bool_or_string")]
    pub email_verified: Option<bool>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

impl IdentityClaims {
    /// Whether the ID token lacks something UserInfo could supply.
    pub fn lacks_profile(&self) -> bool {
        self.email.is_none() || self.name.is_none() || self.groups.is_empty()
    }

    /// Fills what the ID token lacks from UserInfo; never overrides what the signed token says.
    /// The subject must match (§5.3.2), or the response may be for someone else.
    pub fn enrich(&mut self, info: UserInfo) -> Result<(), IdTokenError> {
        if info.sub != self.sub {
            return Err(IdTokenError::UserInfoSubject);
        }
        if self.email.is_none() {
            self.email = info.email;
            self.email_verified = info.email_verified;
        }
        if self.name.is_none() {
            self.name = info.name;
        }
        if self.groups.is_empty() {
            self.groups = info.groups.unwrap_or_default();
        }
        Ok(())
    }
}

/// Calls a provider's UserInfo endpoint with the access token the client obtained alongside
/// the ID token.
#[derive(Debug, Clone)]
pub struct UserInfoClient {
    url: String,
    client: reqwest::Client,
}

impl UserInfoClient {
    pub fn new(url: String, client: reqwest::Client) -> Self {
        Self { url, client }
    }

    pub async fn fetch(&self, access_token: &str) -> Result<UserInfo, IdTokenError> {
        self.client
            .get(&self.url)
            .bearer_auth(access_token)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| IdTokenError::UserInfo(error.to_string()))?
            .json()
            .await
            .map_err(|error| IdTokenError::UserInfo(error.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> IdentityClaims {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn userinfo_fills_only_what_the_token_lacks() {
        let mut sparse = claims(r#"{"iss":"i","sub":"s"}"#);
        assert!(sparse.lacks_profile());
        sparse
            .enrich(UserInfo {
                sub: "s".into(),
                email: Some("a@example.com".into()),
                email_verified: Some(true),
                name: Some("Ann".into()),
                groups: Some(vec!["ops".into()]),
            })
            .unwrap();
        assert_eq!(sparse.email.as_deref(), Some("a@example.com"));
        assert_eq!(sparse.email_verified, Some(true));
        assert_eq!(sparse.name.as_deref(), Some("Ann"));
        assert_eq!(sparse.groups, vec!["ops".to_owned()]);
        assert!(!sparse.lacks_profile());

        let mut full = claims(
            r#"{"iss":"i","sub":"s","email":"t@example.com","email_verified":false,"name":"T","groups":["g"]}"#,
        );
        let before = full.clone();
        full.enrich(UserInfo {
            sub: "s".into(),
            email: Some("other@example.com".into()),
            email_verified: Some(true),
            name: Some("Other".into()),
            groups: Some(vec!["admins".into()]),
        })
        .unwrap();
        assert_eq!(full, before, "the signed token wins over UserInfo");

        let mut foreign = claims(r#"{"iss":"i","sub":"s"}"#);
        assert!(matches!(
            foreign.enrich(UserInfo {
                sub: "someone-else".into(),
                ..UserInfo::default()
            }),
            Err(IdTokenError::UserInfoSubject)
        ));
        assert_eq!(foreign.email, None);
    }

    #[test]
    fn cache_lifetime_follows_max_age_with_a_floor() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(max_age(&headers), DEFAULT_MAX_AGE);
        headers.insert(
            reqwest::header::CACHE_CONTROL,
            "public, max-age=21600, must-revalidate".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), Duration::from_secs(21600));
        headers.insert(reqwest::header::CACHE_CONTROL, "max-age=5".parse().unwrap());
        assert_eq!(max_age(&headers), MIN_CACHE);
    }

    #[test]
    fn email_verified_accepts_apples_strings() {
        let google: IdentityClaims =
            serde_json::from_str(r#"{"iss":"i","sub":"s","email_verified":true}"#).unwrap();
        let apple: IdentityClaims =
            serde_json::from_str(r#"{"iss":"i","sub":"s","email_verified":"true"}"#).unwrap();
        let apple_no: IdentityClaims =
            serde_json::from_str(r#"{"iss":"i","sub":"s","email_verified":"false"}"#).unwrap();
        assert_eq!(google.email_verified, Some(true));
        assert_eq!(apple.email_verified, Some(true));
        assert_eq!(apple_no.email_verified, Some(false));
    }
}
