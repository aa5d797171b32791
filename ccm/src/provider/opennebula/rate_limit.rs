//! The client-side rate limit of the OpenNebula API: a minimum interval between the starts of
//! two calls, whatever their method; callers queue in arrival order.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct MinInterval {
    interval: Duration,
    /// When the next call may start; held while waiting, so waiters queue (the mutex is fair).
    next: Mutex<Option<Instant>>,
}

impl MinInterval {
    /// `interval` zero lets every call through at once.
    pub(crate) fn new(interval: Duration) -> Self {
        MinInterval {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Returns when a call may start, and books the slot.
    pub(crate) async fn wait(&self) {
        if self.interval.is_zero() {
            return;
        }
        let mut next = self.next.lock().await;
        if let Some(at) = *next {
            tokio::time::sleep_until(at).await;
        }
        *next = Some(Instant::now() + self.interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_call_goes_at_once_and_the_next_waits_out_the_interval() {
        let limit = MinInterval::new(Duration::from_secs(1));
        let start = Instant::now();
        limit.wait().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        limit.wait().await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_are_spaced_one_interval_apart() {
        let limit = std::sync::Arc::new(MinInterval::new(Duration::from_millis(500)));
        let start = Instant::now();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                tokio::spawn(async move {
                    limit.wait().await;
                    start.elapsed()
                })
            })
            .collect();
        let mut starts = Vec::new();
        for handle in handles {
            starts.push(handle.await.expect("the task does not panic"));
        }
        starts.sort();
        let expected: Vec<_> = (0..4).map(|i| Duration::from_millis(500 * i)).collect();
        assert_eq!(starts, expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_after_a_quiet_period_does_not_wait() {
        let limit = MinInterval::new(Duration::from_secs(1));
        limit.wait().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = Instant::now();
        limit.wait().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_interval_never_waits() {
        let limit = MinInterval::new(Duration::ZERO);
        let start = Instant::now();
        for _ in 0..3 {
            limit.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
