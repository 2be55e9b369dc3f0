//! Raw Argon2id verification throughput at Steward's default cost, one thread per core: the
//! ceiling the login benchmark is compared with (`just bench`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use steward_auth::{HashingCost, PasswordHasher};

fn main() {
    let seconds: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(5);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let hasher = Arc::new(PasswordHasher::new(HashingCost::default()).unwrap());
    let hash = Arc::new(hasher.hash("correct horse battery staple").unwrap());
    let done = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(threads + 1));
    let deadline = Duration::from_secs(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (hasher, hash, done, start) = (hasher.clone(), hash.clone(), done.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                while began.elapsed() < deadline {
                    assert!(hasher.verify("correct horse battery staple", &hash).matches);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    for worker in workers {
        worker.join().unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64();
    println!("argon2id (m=64MiB,t=3,p=1) verifications/s on {threads} threads: {rate:.2}");
}
