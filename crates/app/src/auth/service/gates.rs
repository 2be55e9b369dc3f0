//! Fair waiting for password checks: a first-come, first-served gate in front of the hashing
//! threads (as many hashes at once as the machine has cores, so each finishes in one hash's
//! time instead of all slowing down together), and one per account for the checks allowed in
//! flight, so parallel sign-ins of one account are served in arrival order instead of whoever
//! polls the throttle at the right moment. Both are `tokio::sync::Semaphore`s, which queue
//! their waiters in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Hashes running at once: the machine's cores.
pub(super) fn hash_gate() -> Arc<Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    Arc::new(Semaphore::new(cores))
}

/// Per-account queues, each with `permits` places; an account's queue exists only while
/// someone holds or waits for a place.
pub(super) struct AccountGates {
    gates: Mutex<HashMap<String, Arc<Semaphore>>>,
    permits: usize,
}

/// A place in an account's queue, given back when dropped.
pub(super) struct AccountTurn<'a> {
    permit: Option<OwnedSemaphorePermit>,
    gate: Option<Arc<Semaphore>>,
    key: String,
    gates: &'a AccountGates,
}

impl AccountGates {
    pub(super) fn new(permits: usize) -> Self {
        Self {
            gates: Mutex::new(HashMap::new()),
            permits: permits.max(1),
        }
    }

    /// Waits (in arrival order) at most `patience` for a place in `key`'s queue; `None` when
    /// none came.
    pub(super) async fn enter(&self, key: &str, patience: Duration) -> Option<AccountTurn<'_>> {
        let gate = {
            let mut gates = self
                .gates
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(
                gates
                    .entry(key.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.permits))),
            )
        };
        let mut turn = AccountTurn {
            permit: None,
            gate: Some(Arc::clone(&gate)),
            key: key.to_owned(),
            gates: self,
        };
        // A timeout drops the turn, which tidies the map like a finished one.
        turn.permit = tokio::time::timeout(patience, gate.acquire_owned())
            .await
            .ok()?
            .ok();
        turn.permit.is_some().then_some(turn)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.gates.lock().map(|gates| gates.len()).unwrap_or(0)
    }
}

impl Drop for AccountTurn<'_> {
    fn drop(&mut self) {
        self.permit.take();
        let mut gates = self
            .gates
            .gates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Clones are made and dropped under this lock only: once ours is gone, the map's being
        // the last reference means nobody else holds or waits for this account.
        if let Some(gate) = self.gate.take() {
            drop(gate);
            if gates
                .get(&self.key)
                .is_some_and(|gate| Arc::strong_count(gate) == 1)
            {
                gates.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_account_queue_serves_in_arrival_order_and_goes_away_when_idle() {
        let gates = Arc::new(AccountGates::new(1));
        let first = gates.enter("ann", Duration::from_secs(1)).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for index in 0..5 {
            let (gates, order) = (Arc::clone(&gates), Arc::clone(&order));
            waiters.push(tokio::spawn(async move {
                let _turn = gates.enter("ann", Duration::from_secs(5)).await.unwrap();
                order.lock().unwrap().push(index);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }));
            // Each waiter queues before the next starts.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Another account is not held up.
        assert!(gates.enter("bob", Duration::from_millis(50)).await.is_some());
        // Impatient: no place within the time.
        assert!(gates.enter("ann", Duration::from_millis(20)).await.is_none());
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4]);
        assert_eq!(gates.len(), 0);
    }
}
