//! Limits shared by every instance. Each instance counts its rate limits and the
//! organizations' requests per minute in memory; with a shared store (Redis, configured by
//! `STEWARD_REDIS_URL`) every instance counts in the same place, so N instances allow the
//! documented limit once instead of N times.
//!
//! While the store does not answer, each instance counts alone again (the in-memory limits,
//! as without a store): neither every request refused nor every limit lifted. The first failure
//! marks the store down for [`RETRY_AFTER`]; meanwhile nobody waits for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use steward_domain::limits::{LimitFuture, Refused, SharedLimitError, SharedLimitStore, WindowCount};

/// How long the store is left alone after it failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The shared store with its circuit breaker: `None` from a method means "count in memory".
pub struct SharedLimits {
    store: Arc<dyn SharedLimitStore>,
    /// The monotonic clock's origin for `down_until` (a stepped wall clock changes nothing).
    origin: Instant,
    /// Until when (milliseconds after `origin`) the store is not asked.
    down_until: AtomicI64,
    /// Whether the last call failed: the first failure of an outage warns, the first success
    /// after it says so.
    down: AtomicBool,
    failures: AtomicU64,
}

impl std::fmt::Debug for SharedLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedLimits")
            .field("down_until", &self.down_until)
            .field("failures", &self.failures)
            .finish_non_exhaustive()
    }
}

impl SharedLimits {
    pub fn new(store: Arc<dyn SharedLimitStore>) -> Self {
        Self {
            store,
            origin: Instant::now(),
            down_until: AtomicI64::new(0),
            down: AtomicBool::new(false),
            failures: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> i64 {
        i64::try_from(self.origin.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether the store is being asked (not marked down after a failure).
    pub fn available(&self) -> bool {
        self.down_until.load(Ordering::Relaxed) <= self.now_ms()
    }

    /// Calls that failed since start (each marks the store down for [`RETRY_AFTER`]).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Awaits `call` (made only while the store is available).
    async fn ask<T>(&self, call: LimitFuture<'_, T>) -> Option<T> {
        match call.await {
            Ok(answer) => {
                self.answered();
                Some(answer)
            }
            Err(error) => {
                let retry_ms = i64::try_from(RETRY_AFTER.as_millis()).unwrap_or(5_000);
                self.down_until
                    .store(self.now_ms().saturating_add(retry_ms), Ordering::Relaxed);
                self.failures.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("steward_shared_limits_unavailable_total").increment(1);
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        "shared limits unavailable: this instance counts its own limits, asking again every {} s",
                        RETRY_AFTER.as_secs()
                    );
                }
                None
            }
        }
    }

    fn answered(&self) {
        if self.down.swap(false, Ordering::Relaxed) {
            tracing::info!("shared limits answer again: every instance counts in one place");
        }
    }

    /// See [`SharedLimitStore::take`]; `None` while the store is down.
    pub async fn take(&self, key: &str, burst: u32, period: Duration) -> Option<Result<(), Refused>> {
        if !self.available() {
            return None;
        }
        self.ask(self.store.take(key, burst, period)).await
    }

    /// See [`SharedLimitStore::count`]; `None` while the store is down.
    pub async fn count(&self, key: &str, window: i64, limit: u64, ttl: Duration) -> Option<WindowCount> {
        if !self.available() {
            return None;
        }
        self.ask(self.store.count(key, window, limit, ttl)).await
    }

    /// See [`SharedLimitStore::used`]; `None` while the store is down.
    pub async fn used(&self, key: &str, window: i64) -> Option<u64> {
        if !self.available() {
            return None;
        }
        self.ask(self.store.used(key, window)).await
    }

    /// Asks the store even while it is marked down (the health report); a success clears the
    /// mark.
    pub async fn ping(&self) -> Result<(), SharedLimitError> {
        self.store.ping().await?;
        self.down_until.store(0, Ordering::Relaxed);
        self.answered();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that fails while `broken`.
    struct Flaky {
        broken: AtomicBool,
        calls: AtomicU64,
    }

    impl SharedLimitStore for Flaky {
        fn take<'a>(&'a self, _: &'a str, _: u32, _: Duration) -> LimitFuture<'a, Result<(), Refused>> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let broken = self.broken.load(Ordering::Relaxed);
            Box::pin(async move {
                if broken {
                    Err(SharedLimitError("connection refused".to_owned()))
                } else {
                    Ok(Ok(()))
                }
            })
        }
        fn count<'a>(&'a self, _: &'a str, _: i64, _: u64, _: Duration) -> LimitFuture<'a, WindowCount> {
            unreachable!()
        }
        fn used<'a>(&'a self, _: &'a str, _: i64) -> LimitFuture<'a, u64> {
            unreachable!()
        }
        fn ping(&self) -> LimitFuture<'_, ()> {
            let broken = self.broken.load(Ordering::Relaxed);
            Box::pin(async move {
                if broken {
                    Err(SharedLimitError("connection refused".to_owned()))
                } else {
                    Ok(())
                }
            })
        }
    }

    #[tokio::test]
    async fn a_failure_leaves_the_store_alone_until_it_answers_again() {
        let store = Arc::new(Flaky {
            broken: AtomicBool::new(true),
            calls: AtomicU64::new(0),
        });
        let limits = SharedLimits::new(store.clone());
        assert_eq!(limits.take("login:1", 5, Duration::from_secs(60)).await, None);
        assert!(!limits.available());
        // Marked down: the next calls count in memory without asking.
        assert_eq!(limits.take("login:1", 5, Duration::from_secs(60)).await, None);
        assert_eq!(store.calls.load(Ordering::Relaxed), 1);
        assert_eq!(limits.failures(), 1);
        // A ping that fails keeps the mark; one that succeeds clears it.
        assert!(limits.ping().await.is_err());
        assert!(!limits.available());
        store.broken.store(false, Ordering::Relaxed);
        assert!(limits.ping().await.is_ok());
        assert_eq!(
            limits.take("login:1", 5, Duration::from_secs(60)).await,
            Some(Ok(()))
        );
    }
}
