//! The cached VM pool: used while younger than the caller's bound, refreshed by one caller at
//! a time (callers that queued behind a refresh share its outcome, success or failure), and
//! never served past its bound, not even when a refresh fails.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// A fetched value and when its fetch started (the conservative age).
#[derive(Debug)]
pub(crate) struct Fetched<T> {
    pub value: Arc<T>,
    pub fetched_at: Instant,
}

impl<T> Clone for Fetched<T> {
    fn clone(&self) -> Self {
        Fetched {
            value: self.value.clone(),
            fetched_at: self.fetched_at,
        }
    }
}

impl<T> Fetched<T> {
    /// Whether both come from the same fetch.
    pub(crate) fn same_fetch(&self, other: &Fetched<T>) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
    }
}

#[derive(Debug)]
pub(crate) struct PoolCache<T, E> {
    current: Mutex<Current<T, E>>,
    /// Held by the one caller that is fetching.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
struct Current<T, E> {
    latest: Option<Fetched<T>>,
    /// Fetches finished so far; a waiter that saw fewer knows one finished while it queued.
    finished: u64,
    /// The error of the last fetch, when it failed.
    failure: Option<Arc<E>>,
}

impl<T, E> Default for PoolCache<T, E> {
    fn default() -> Self {
        PoolCache {
            current: Mutex::new(Current {
                latest: None,
                finished: 0,
                failure: None,
            }),
            flight: tokio::sync::Mutex::new(()),
        }
    }
}

impl<T, E> PoolCache<T, E> {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A value younger than `max_age`: the cached one, or what `fetch` returns. When another
    /// caller is already fetching, waits for it and takes its outcome.
    pub(crate) async fn get<F, Fut>(
        &self,
        max_age: Duration,
        fetch: F,
    ) -> Result<Fetched<T>, Arc<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let seen = {
            let current = self.lock();
            if let Some(fresh) = current.younger_than(max_age) {
                return Ok(fresh);
            }
            current.finished
        };
        let _flight = self.flight.lock().await;
        {
            let current = self.lock();
            if current.finished > seen {
                return current.last_outcome();
            }
        }
        let started = Instant::now();
        let result = fetch().await;
        let mut current = self.lock();
        current.finished += 1;
        match result {
            Ok(value) => {
                let fetched = Fetched {
                    value: Arc::new(value),
                    fetched_at: started,
                };
                current.latest = Some(fetched.clone());
                current.failure = None;
                Ok(fetched)
            }
            Err(error) => {
                let error = Arc::new(error);
                current.failure = Some(error.clone());
                Err(error)
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Current<T, E>> {
        // Nothing panics while holding the lock; a poisoned one still holds consistent data.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<T, E> Current<T, E> {
    fn younger_than(&self, max_age: Duration) -> Option<Fetched<T>> {
        self.latest
            .as_ref()
            .filter(|f| f.fetched_at.elapsed() < max_age)
            .cloned()
    }

    fn last_outcome(&self) -> Result<Fetched<T>, Arc<E>> {
        match (&self.failure, &self.latest) {
            (Some(error), _) => Err(error.clone()),
            (None, Some(latest)) => Ok(latest.clone()),
            (None, None) => unreachable!("a finished fetch leaves either a value or a failure"),
        }
    }
}

#[cfg(test)]
#[path = "tests/pool_cache.rs"]
mod tests;
