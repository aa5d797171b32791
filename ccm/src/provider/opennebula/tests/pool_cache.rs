//! Tests of the pool cache's staleness bound and single flight, on tokio's paused clock.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

const TTL: Duration = Duration::from_secs(30);

/// A source that counts its fetches, takes `delay` and answers the fetch number (or fails).
#[derive(Default)]
struct Source {
    fetches: AtomicUsize,
    fail: std::sync::atomic::AtomicBool,
}

#[derive(Debug, PartialEq, Eq)]
struct Failed(usize);

impl Source {
    async fn fetch(&self, delay: Duration) -> Result<usize, Failed> {
        let n = self.fetches.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(delay).await;
        if self.fail.load(Ordering::SeqCst) {
            Err(Failed(n))
        } else {
            Ok(n)
        }
    }

    fn count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn get(
    cache: &PoolCache<usize, Failed>,
    source: &Source,
    max_age: Duration,
) -> Result<usize, Arc<Failed>> {
    cache
        .get(max_age, || source.fetch(Duration::from_secs(1)))
        .await
        .map(|fetched| *fetched.value)
}

#[tokio::test(start_paused = true)]
async fn a_second_lookup_within_the_ttl_uses_the_cached_pool() {
    let (cache, source) = (PoolCache::new(), Source::default());
    assert_eq!(get(&cache, &source, TTL).await, Ok(1));
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(get(&cache, &source, TTL).await, Ok(1));
    assert_eq!(source.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_pool_as_old_as_the_ttl_is_fetched_again() {
    let (cache, source) = (PoolCache::new(), Source::default());
    get(&cache, &source, TTL).await.expect("fetched");
    // The age counts from the start of the fetch (which took 1s).
    tokio::time::sleep(TTL - Duration::from_secs(1)).await;
    assert_eq!(get(&cache, &source, TTL).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn a_tighter_bound_refreshes_a_pool_the_ttl_would_still_allow() {
    let (cache, source) = (PoolCache::new(), Source::default());
    get(&cache, &source, TTL).await.expect("fetched");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(get(&cache, &source, Duration::from_secs(5)).await, Ok(1));
    assert_eq!(get(&cache, &source, Duration::from_secs(1)).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn concurrent_lookups_share_one_fetch() {
    let cache = Arc::new(PoolCache::new());
    let source = Arc::new(Source::default());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { get(&cache, &source, TTL).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("no panic"), Ok(1));
    }
    assert_eq!(source.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn waiters_share_a_failure_and_the_next_lookup_tries_again() {
    let cache = Arc::new(PoolCache::new());
    let source = Arc::new(Source::default());
    source.fail.store(true, Ordering::SeqCst);
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (cache, source) = (cache.clone(), source.clone());
            tokio::spawn(async move { get(&cache, &source, TTL).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("no panic"), Err(Arc::new(Failed(1))));
    }
    assert_eq!(source.count(), 1, "one fetch for all waiters");
    source.fail.store(false, Ordering::SeqCst);
    assert_eq!(
        get(&cache, &source, TTL).await,
        Ok(2),
        "a failure is not cached"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_refresh_never_serves_the_stale_pool() {
    let (cache, source) = (PoolCache::new(), Source::default());
    get(&cache, &source, TTL).await.expect("fetched");
    tokio::time::sleep(TTL).await;
    source.fail.store(true, Ordering::SeqCst);
    assert_eq!(get(&cache, &source, TTL).await, Err(Arc::new(Failed(2))));
    assert_eq!(get(&cache, &source, TTL).await, Err(Arc::new(Failed(3))));
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_fetch_lets_the_next_caller_fetch() {
    let cache = Arc::new(PoolCache::new());
    let source = Arc::new(Source::default());
    let first = {
        let (cache, source) = (cache.clone(), source.clone());
        tokio::spawn(async move { get(&cache, &source, TTL).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.abort();
    assert!(first.await.expect_err("aborted").is_cancelled());
    assert_eq!(get(&cache, &source, TTL).await, Ok(2));
}

#[tokio::test(start_paused = true)]
async fn same_fetch_tells_a_refreshed_pool_from_the_cached_one() {
    let cache: PoolCache<usize, Failed> = PoolCache::new();
    let source = Source::default();
    let fetch = || source.fetch(Duration::ZERO);
    let a = cache.get(TTL, fetch).await.expect("fetched");
    let b = cache
        .get(TTL, || source.fetch(Duration::ZERO))
        .await
        .expect("cached");
    assert!(a.same_fetch(&b));
    let c = cache
        .get(Duration::ZERO, || source.fetch(Duration::ZERO))
        .await
        .expect("refetched");
    assert!(!a.same_fetch(&c));
}
