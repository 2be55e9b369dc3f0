//! The port of a store every instance counts its limits in (rate limits, requests per
//! minute). `steward-persistence` implements it with Redis; `steward_app::limits` wraps it
//! with a circuit breaker and the in-memory fallback.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What the store answers, or why it could not.
pub type LimitFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, SharedLimitError>> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
#[error("the shared limit store did not answer: {0}")]
pub struct SharedLimitError(pub String);

/// A refusal: how long until the next request would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub retry_after: Duration,
}

/// The answer of a counted window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    /// Whether this request was admitted (and counted).
    pub admitted: bool,
    /// The requests counted in the window, this one included when admitted.
    pub used: u64,
}

/// A store every instance reaches (a port; `steward-persistence` implements it with Redis).
/// Keys are `<limit>:<subject>`; the store adds its own prefix.
pub trait SharedLimitStore: Send + Sync {
    /// One request of `key` against a GCRA of `burst` requests per `period` (the same quota
    /// as the in-memory limits: `burst` at once, then one per `period / burst`), on the
    /// store's clock.
    fn take<'a>(&'a self, key: &'a str, burst: u32, period: Duration)
    -> LimitFuture<'a, Result<(), Refused>>;

    /// One request of `key` in the fixed window `window` (an id the caller derives from its
    /// clock, such as the minute), refused at `limit`; the window is forgotten after `ttl`.
    fn count<'a>(
        &'a self,
        key: &'a str,
        window: i64,
        limit: u64,
        ttl: Duration,
    ) -> LimitFuture<'a, WindowCount>;

    /// The requests counted for `key` in `window`.
    fn used<'a>(&'a self, key: &'a str, window: i64) -> LimitFuture<'a, u64>;

    /// Whether the store answers (for the health report).
    fn ping(&self) -> LimitFuture<'_, ()>;
}
