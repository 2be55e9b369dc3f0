//! The time the report scheduler reads. In production it is the system clock; a test sets it
//! (`Clock::manual`) to make a schedule due without waiting, and moves it forward. Only the
//! scheduler and report windows read it: leases, tokens and the audit trail keep real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// The system clock, or a settable one shared by everything cloned from it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Milliseconds since the epoch, when set by hand.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// A clock that reads `at` until it is set again.
    pub fn manual(at: DateTime<Utc>) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(at.timestamp_millis()))),
        }
    }

    /// Sets a manual clock (the system clock ignores it).
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(manual) = &self.manual {
            manual.store(at.timestamp_millis(), Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(manual) => {
                DateTime::from_timestamp_millis(manual.load(Ordering::SeqCst)).unwrap_or_else(Utc::now)
            }
        }
    }
}

/// Clocks are configuration that is never compared: two configurations differ by their values.
impl PartialEq for Clock {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_reads_what_it_was_set_to_in_every_clone() {
        let start = DateTime::parse_from_rfc3339("2030-01-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = Clock::manual(start);
        let shared = clock.clone();
        assert_eq!(shared.now(), start);
        clock.set(start + chrono::Duration::hours(3));
        assert_eq!(shared.now(), start + chrono::Duration::hours(3));
        let system = Clock::default();
        system.set(start);
        assert_ne!(system.now(), start);
    }
}
