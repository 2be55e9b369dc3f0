//! Whether a session is still live, cached for a moment.
//!
//! Every authenticated request must notice a revoked session within seconds on every instance,
//! without a database round trip per request: a session's state is remembered for a short TTL
//! (default 2 s), and revocations on this instance drop the entry at once.

use std::hash::Hash;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// Entries a cache of small values holds before it evicts (the least useful first, by
/// quick_cache's CLOCK-Pro-style policy): room for 500,000 live sessions or devices per
/// instance. Caches of larger values choose a smaller bound ([`TtlCache::with_capacity`]).
pub const DEFAULT_CAPACITY: usize = 500_000;

/// Every this many inserts, expired entries are dropped (an amortised scan), so a cache holds
/// about what is live rather than staying at its high-water mark.
const PURGE_EVERY: u64 = 4096;

/// Remembers values per key (an id by default) for a short TTL; local changes drop their entry
/// at once. Size-bounded and concurrent (quick_cache): a full cache evicts a few cold entries
/// per insert instead of dropping everything, so hot entries stay.
pub struct TtlCache<V, K = Uuid> {
    ttl: Duration,
    /// Spread expiries over `ttl / 2 ..= ttl`, so entries filled together (a fleet of devices
    /// polling) are not all refetched in the same instant.
    jitter: bool,
    entries: quick_cache::sync::Cache<K, (V, Instant)>,
    inserts: std::sync::atomic::AtomicU64,
}

impl<V, K> std::fmt::Debug for TtlCache<V, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TtlCache")
            .field("ttl", &self.ttl)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

/// Each session's user while the session is live (`None`: revoked, expired or unknown).
pub type SessionCache = TtlCache<Option<Uuid>>;

impl<V: Clone, K: Hash + Eq + Clone> TtlCache<V, K> {
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, DEFAULT_CAPACITY)
    }

    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            jitter: false,
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
            inserts: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn with_jitter(mut self) -> Self {
        self.jitter = true;
        self
    }

    fn lifetime(&self) -> Duration {
        if !self.jitter {
            return self.ttl;
        }
        // The clock's low bits are random enough to spread expiries; no RNG needed.
        let noise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let half = self.ttl / 2;
        half + half.mul_f64(f64::from(noise % 1000) / 1000.0)
    }

    /// The cached answer for `key`, if fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        let (value, expires) = self.entries.get(key)?;
        (Instant::now() < expires).then_some(value)
    }

    pub fn put(&self, key: K, value: V) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        self.entries.insert(key, (value, now + self.lifetime()));
        let inserts = self.inserts.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if inserts.is_multiple_of(PURGE_EVERY) {
            self.entries.retain(|_, (_, expires)| now < *expires);
        }
    }

    pub fn forget(&self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops the entries whose value fails `keep`.
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        self.entries.retain(|_, entry| keep(&entry.0));
    }

    /// How many entries it holds (fresh or not yet evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_can_be_dropped() {
        let cache = SessionCache::new(Duration::from_millis(50));
        let session = Uuid::now_v7();
        assert_eq!(cache.get(&session), None);
        let user = Uuid::now_v7();
        cache.put(session, Some(user));
        assert_eq!(cache.get(&session), Some(Some(user)));
        cache.forget(&session);
        assert_eq!(cache.get(&session), None);
        cache.put(session, None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&session), None);
    }

    #[test]
    fn jittered_entries_live_between_half_and_the_whole_ttl() {
        let cache = TtlCache::<u8>::new(Duration::from_millis(100)).with_jitter();
        for _ in 0..20 {
            let lifetime = cache.lifetime();
            assert!(lifetime >= Duration::from_millis(50) && lifetime <= Duration::from_millis(100));
        }
    }

    #[test]
    fn a_full_cache_evicts_some_entries_and_keeps_the_rest() {
        let cache = TtlCache::<u32, u32>::with_capacity(Duration::from_secs(60), 1000);
        for key in 0..1000 {
            cache.put(key, key);
        }
        // Reads make the first half hot.
        for _ in 0..3 {
            for key in 0..500 {
                assert_eq!(cache.get(&key), Some(key));
            }
        }
        for key in 1000..1500 {
            cache.put(key, key);
        }
        assert!(cache.len() <= 1000, "bounded: {}", cache.len());
        let hot_kept = (0..500).filter(|key| cache.get(key).is_some()).count();
        assert!(hot_kept >= 400, "no cliff: {hot_kept} of 500 hot entries kept");
    }

    #[test]
    fn expired_entries_are_purged_as_inserts_go_on() {
        let cache = TtlCache::<u64, u64>::with_capacity(Duration::from_millis(20), 100_000);
        for key in 0..5000 {
            cache.put(key, key);
        }
        std::thread::sleep(Duration::from_millis(30));
        for key in 5000..(5000 + PURGE_EVERY) {
            cache.put(key, key);
        }
        assert!(
            cache.len() < 5000,
            "expired entries dropped: {} left",
            cache.len()
        );
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = SessionCache::new(Duration::ZERO);
        let session = Uuid::now_v7();
        cache.put(session, Some(Uuid::now_v7()));
        assert_eq!(cache.get(&session), None);
    }
}
