//! A second factor as a user's authenticator app sees it: codes computed with `totp-rs` from
//! the secret the server hands out, never with Steward's own TOTP code.

use reqwest::{Method, StatusCode};
use serde_json::json;
use totp_rs::{Algorithm, Builder, Secret};

use crate::{TestApp, TestUser, expect_data, send};

/// The authenticator app's side: the code of the step `offset` steps from now.
pub fn code(secret: &str, offset: i64) -> String {
    let bytes = Secret::try_from_base32(secret).unwrap();
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(bytes.as_ref().to_vec())
        .build()
        .unwrap();
    let now = chrono::Utc::now().timestamp() + offset * 30;
    totp.generate(u64::try_from(now).unwrap()).to_string()
}

/// Enrols `user`'s second factor; returns the secret and the recovery codes.
pub async fn enrol(app: &TestApp, user: &TestUser) -> (String, Vec<String>) {
    let setup = expect_data(
        send(app, Method::POST, "/api/v1/auth/mfa/totp", user, None).await,
        StatusCode::OK,
    )
    .await;
    let secret = setup["secret"].as_str().unwrap().to_owned();
    let verified = expect_data(
        send(
            app,
            Method::POST,
            "/api/v1/auth/mfa/totp/verify",
            user,
            Some(json!({"code": code(&secret, 0)})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let codes = verified["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (secret, codes)
}
