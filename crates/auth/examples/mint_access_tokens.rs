//! Access tokens for many sessions of one account, for `just bench` (/auth/me with 200,000 live
//! sessions): signing 200,000 tokens through sign-in would take hours of Argon2.
//! `mint_access_tokens <signing key PEM> <issuer> <audience> <user id> <count>` prints
//! `<session id> <token>` lines; the bench inserts the sessions into the database itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use steward_auth::{KeyRing, SigningKeyPem};
use uuid::Uuid;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() == 6,
        "usage: mint_access_tokens PEM ISSUER AUDIENCE USER_ID COUNT"
    );
    let pem =
        SigningKeyPem::parse(std::fs::read_to_string(&args[1]).expect("the key file")).expect("an RSA key");
    let user: Uuid = args[4].parse().expect("a user id");
    let count: usize = args[5].parse().expect("a count");
    let ring = std::sync::Arc::new(KeyRing::new(&[pem], &args[2], &args[3]).expect("a key ring"));
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let per_thread = count.div_ceil(threads);
    let workers: Vec<_> = (0..threads)
        .map(|index| {
            let ring = ring.clone();
            let n = per_thread.min(count.saturating_sub(index * per_thread));
            std::thread::spawn(move || {
                let mut lines = String::with_capacity(n * 700);
                for _ in 0..n {
                    let session = Uuid::now_v7();
                    let (token, _) = ring.issue(user, session, 86_400).expect("signing");
                    lines.push_str(&format!("{session} {token}\n"));
                }
                lines
            })
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for worker in workers {
        out.write_all(worker.join().expect("a signer").as_bytes())
            .expect("stdout");
    }
}
