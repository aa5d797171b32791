//! Per-object exponential backoff for reconcile errors (kube-runtime has none built in).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

/// A backoff curve: `base` doubling per failed attempt, never above `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// For transient failures (API conflicts, a provider that did not answer).
    pub(crate) const TRANSIENT: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(60),
    };
    /// For failures only a change of configuration or of the object fixes: retried, but slowly.
    pub(crate) const PERSISTENT: Backoff = Backoff {
        base: Duration::from_secs(5),
        cap: Duration::from_secs(300),
    };

    /// The delay before retrying after the `attempt`-th consecutive failure (1-based).
    pub(crate) fn delay(self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.cap)
    }
}

/// Consecutive failures per object.
#[derive(Debug)]
pub(crate) struct Attempts<K> {
    failures: Mutex<HashMap<K, u32>>,
}

impl<K> Default for Attempts<K> {
    fn default() -> Self {
        Self {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq> Attempts<K> {
    /// Records a failure; returns how many in a row this object has had.
    pub(crate) fn failed(&self, key: K) -> u32 {
        let mut failures = self.lock();
        let n = failures.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the object's failures after a success.
    pub(crate) fn succeeded(&self, key: &K) {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, u32>> {
        self.failures
            .lock()
            .expect("the attempts lock is never poisoned: holders do not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff::TRANSIENT;
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(5), Duration::from_millis(1600));
        assert_eq!(b.delay(30), Duration::from_secs(60));
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
        assert_eq!(Backoff::PERSISTENT.delay(1), Duration::from_secs(5));
        assert_eq!(Backoff::PERSISTENT.delay(7), Duration::from_secs(300));
    }

    #[test]
    fn attempts_count_consecutive_failures_until_a_success() {
        let attempts = Attempts::default();
        assert_eq!(attempts.failed("a"), 1);
        assert_eq!(attempts.failed("a"), 2);
        assert_eq!(attempts.failed("b"), 1);
        attempts.succeeded(&"a");
        assert_eq!(attempts.failed("a"), 1);
    }
}
