//! Whether a session is still live, cached for a moment.
//!
//! Every authenticated request must notice a revoked session within seconds on every instance,
//! without a database round trip per request: a session's state is remembered for a short TTL
//! (default 2 s), and revocations on this instance drop the entry at once.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

const MAX_ENTRIES: usize = 100_000;

/// Remembers values per key (an id by default) for a short TTL; local changes drop their entry
/// at once.
#[derive(Debug)]
pub struct TtlCache<V, K = Uuid> {
    ttl: Duration,
    /// Spread expiries over `ttl / 2 ..= ttl`, so entries filled together (a fleet of devices
    /// polling) are not all refetched in the same instant.
    jitter: bool,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

/// Each session's user while the session is live (`None`: revoked, expired or unknown).
pub type SessionCache = TtlCache<Option<Uuid>>;

impl<V: Clone, K: Hash + Eq> TtlCache<V, K> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            jitter: false,
            entries: Mutex::new(HashMap::new()),
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

    /// The cached answer for `session`, if fresh.
    pub fn get(&self, session: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        let now = Instant::now();
        entries
            .get(session)
            .filter(|(_, expires)| now < *expires)
            .map(|(value, _)| value.clone())
    }

    pub fn put(&self, session: K, active: V) {
        if self.ttl.is_zero() {
            return;
        }
        let expires = Instant::now() + self.lifetime();
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                let now = Instant::now();
                entries.retain(|_, (_, expires)| now < *expires);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(session, (active, expires));
        }
    }

    pub fn forget(&self, session: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(session);
        }
    }

    /// Drops the entries whose value fails `keep`.
    pub fn retain(&self, keep: impl Fn(&V) -> bool) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|_, entry| keep(&entry.0));
        }
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
    fn a_zero_ttl_caches_nothing() {
        let cache = SessionCache::new(Duration::ZERO);
        let session = Uuid::now_v7();
        cache.put(session, Some(Uuid::now_v7()));
        assert_eq!(cache.get(&session), None);
    }
}
