//! A fake identity provider over real HTTP on loopback: it serves a JWKS (RSA and EC keys) with
//! cache headers, counts how often it is fetched, and mints provider-shaped ID tokens.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use steward_auth::{KeyRing, SigningKeyPem};

/// A signing key the provider may publish.
#[derive(Clone)]
pub struct ProviderKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub jwk: Value,
    encoding: Arc<EncodingKey>,
}

impl ProviderKey {
    pub fn rsa(kid: &str) -> Self {
        let pem = SigningKeyPem::generate().unwrap();
        let ring = KeyRing::new(std::slice::from_ref(&pem), "x", "x").unwrap();
        let public = &ring.jwks().keys[0];
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::RS256,
            jwk: json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": public.n, "e": public.e}),
            encoding: Arc::new(EncodingKey::from_rsa_pem(pem.as_str().as_bytes()).unwrap()),
        }
    }

    pub fn ec(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (&point[1..33], &point[33..65]);
        Self {
            kid: kid.to_owned(),
            algorithm: Algorithm::ES256,
            jwk: json!({"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
                        "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y)}),
            encoding: Arc::new(EncodingKey::from_ec_der(pkcs8.as_ref())),
        }
    }

    /// Signs `claims` with this key under `kid`.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

#[derive(Clone)]
pub struct FakeProvider {
    pub url: String,
    keys: Arc<Mutex<Vec<ProviderKey>>>,
    fetches: Arc<AtomicUsize>,
    userinfo: Arc<Mutex<Value>>,
}

impl FakeProvider {
    pub async fn start(keys: Vec<ProviderKey>) -> Self {
        let keys = Arc::new(Mutex::new(keys));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (keys.clone(), fetches.clone());
        let userinfo = Arc::new(Mutex::new(Value::Null));
        let profile = userinfo.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            let (served, counted) = (served.clone(), counted.clone());
            let profile = profile.clone();
            App::new()
                .route(
                    "/userinfo",
                    web::get().to(move |request: actix_web::HttpRequest| {
                        let profile = profile.clone();
                        async move {
                            let authorized = request
                                .headers()
                                .get("authorization")
                                .is_some_and(|value| value == "Bearer provider-access-token");
                            if authorized {
                                HttpResponse::Ok().json(profile.lock().unwrap().clone())
                            } else {
                                HttpResponse::Unauthorized().finish()
                            }
                        }
                    }),
                )
                .route(
                    "/jwks",
                    web::get().to(move || {
                        let (served, counted) = (served.clone(), counted.clone());
                        async move {
                            counted.fetch_add(1, Ordering::SeqCst);
                            let keys: Vec<Value> =
                                served.lock().unwrap().iter().map(|k| k.jwk.clone()).collect();
                            HttpResponse::Ok()
                                .insert_header(("cache-control", "public, max-age=3600"))
                                .json(json!({"keys": keys}))
                        }
                    }),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/jwks"),
            keys,
            fetches,
            userinfo,
        }
    }

    /// The UserInfo endpoint: answers `profile` to the access token `provider-access-token`.
    pub fn userinfo_url(&self, profile: Value) -> String {
        *self.userinfo.lock().unwrap() = profile;
        self.url.replace("/jwks", "/userinfo")
    }

    /// Publishes another key (a rotation at the provider).
    pub fn publish(&self, key: ProviderKey) {
        self.keys.lock().unwrap().push(key);
    }

    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Claims of a Google ID token for `sub`, valid now.
pub fn google_claims(sub: &str, email: &str) -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "iss": "https://accounts.google.com",
        "aud": "steward-test-client",
        "sub": sub,
        "email": email,
        "email_verified": true,
        "name": "Ann Example",
        "iat": now,
        "exp": now + 3600,
    })
}
