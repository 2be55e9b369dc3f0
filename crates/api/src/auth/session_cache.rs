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
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

/// Whether each session is live.
pub type SessionCache = TtlCache<bool>;

impl<V: Clone, K: Hash + Eq> TtlCache<V, K> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached answer for `session`, if fresh.
    pub fn get(&self, session: &K) -> Option<V> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(session)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(value, _)| value.clone())
    }

    pub fn put(&self, session: K, active: V) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                let ttl = self.ttl;
                entries.retain(|_, (_, at)| at.elapsed() < ttl);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(session, (active, Instant::now()));
        }
    }

    pub fn forget(&self, session: &K) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(session);
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
        cache.put(session, true);
        assert_eq!(cache.get(&session), Some(true));
        cache.forget(&session);
        assert_eq!(cache.get(&session), None);
        cache.put(session, false);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&session), None);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = SessionCache::new(Duration::ZERO);
        let session = Uuid::now_v7();
        cache.put(session, true);
        assert_eq!(cache.get(&session), None);
    }
}
