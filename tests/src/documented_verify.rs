//! The Rust receiver code of docs/events.md, verbatim (a test compares the two), used to check
//! real deliveries.
#![allow(clippy::unwrap_used)]

use hmac::{Hmac, KeyInit, Mac};

fn verify(secret: &str, timestamp: &str, signature_header: &str, raw_body: &[u8], now: i64) -> bool {
    let Ok(sent) = timestamp.parse::<i64>() else { return false };
    if (now - sent).abs() > 300 {
        return false;
    }
    signature_header.split(',').any(|value| {
        let Some(hex_tag) = value.trim().strip_prefix("sha256=") else { return false };
        let Ok(tag) = hex::decode(hex_tag) else { return false };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(raw_body);
        mac.verify_slice(&tag).is_ok() // constant time
    })
}

/// [`verify`] on a received delivery, at the current time.
pub fn verify_delivery(hook: &crate::receiver::Hook, secret: &str) -> bool {
    let (Some(timestamp), Some(signature)) = (&hook.timestamp, &hook.signature) else {
        return false;
    };
    verify(secret, timestamp, signature, hook.raw.as_bytes(), chrono::Utc::now().timestamp())
}
