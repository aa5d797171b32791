//! The write fence: leader-only writes may start only while this replica's lease is certainly
//! its own, and may not outlive that certainty.
//!
//! Every replica that could take the lease over waits `leaseDuration` (15 s) after it last
//! saw the record change, and the record changes only after our renewal was sent. So from the
//! moment a successful renewal was *sent*, the lease is ours for at least `leaseDuration`. The
//! fence opens writes until that moment plus `renewDeadline` (10 s), which leaves the rest
//! (5 s) as a margin for writes in flight and for clocks that run at slightly different rates.
//! A renewal that hangs never extends the fence, so a stale leader stops by itself — it does
//! not depend on a call returning an error (issue 10, item 1).
//!
//! The fence is applied to the leader's API client as a tower layer: every mutating request
//! (anything but GET/HEAD/OPTIONS) is refused once the fence is closed, and one that starts
//! while it is open is abandoned (its connection dropped) when the fence closes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// Why a leader-only write was not sent or not completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FenceError {
    #[error(
        "leadership is not certain (the lease was not renewed in time); the write was not sent"
    )]
    NotLeader,
    #[error("leadership stopped being certain while the write was in flight; it was abandoned")]
    ExpiredInFlight,
}

impl FenceError {
    /// Whether `error` (anywhere in its source chain) is a fence refusal.
    pub(crate) fn is_in(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(error) = current {
            if error.downcast_ref::<FenceError>().is_some() {
                return true;
            }
            current = error.source();
        }
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Validity {
    /// Leader election is off: this replica is the only writer by configuration.
    Always,
    Until(Instant),
    /// Leadership was lost or never held.
    Closed,
}

/// Whether this replica may write now; shared by the elector (which extends it) and the
/// leader's API clients (which consult it).
#[derive(Debug, Clone)]
pub(crate) struct Fence {
    validity: Arc<Mutex<Validity>>,
}

impl Fence {
    /// A fence that never closes (no leader election).
    pub(crate) fn open() -> Self {
        Self::with(Validity::Always)
    }

    /// A fence that is closed until a successful lease write extends it.
    pub(crate) fn closed() -> Self {
        Self::with(Validity::Closed)
    }

    fn with(validity: Validity) -> Self {
        Self {
            validity: Arc::new(Mutex::new(validity)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Validity> {
        self.validity
            .lock()
            .expect("the fence lock is never poisoned: nothing panics while holding it")
    }

    /// Opens writes until `until`; never shortens an open fence.
    pub(crate) fn extend(&self, until: Instant) {
        let mut validity = self.lock();
        *validity = match *validity {
            Validity::Always => Validity::Always,
            Validity::Until(current) => Validity::Until(current.max(until)),
            Validity::Closed => Validity::Until(until),
        };
    }

    /// Closes writes for good (leadership lost).
    pub(crate) fn revoke(&self) {
        let mut validity = self.lock();
        if *validity != Validity::Always {
            *validity = Validity::Closed;
        }
    }

    /// How long writes stay allowed from `now`: `Some(None)` without limit, `Some(Some(d))`
    /// for `d` more, `None` when closed.
    pub(crate) fn remaining(&self, now: Instant) -> Option<Option<Duration>> {
        match *self.lock() {
            Validity::Always => Some(None),
            Validity::Until(until) if until > now => Some(Some(until - now)),
            Validity::Until(_) | Validity::Closed => None,
        }
    }
}

/// The tower layer that fences an API client's mutating requests.
#[derive(Debug, Clone)]
pub(crate) struct FenceLayer {
    fence: Fence,
}

impl FenceLayer {
    pub(crate) fn new(fence: Fence) -> Self {
        Self { fence }
    }
}

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.fence.clone(),
        }
    }
}

/// A service behind a [`FenceLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn reads_only(method: &http::Method) -> bool {
    matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
where
    S: tower::Service<http::Request<B>>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if reads_only(request.method()) {
            let call = self.inner.call(request);
            return Box::pin(async move { call.await.map_err(Into::into) });
        }
        // Decided when the request is handed to the connection (after any rate-limit wait).
        match self.fence.remaining(Instant::now()) {
            None => Box::pin(std::future::ready(Err(FenceError::NotLeader.into()))),
            Some(None) => {
                let call = self.inner.call(request);
                Box::pin(async move { call.await.map_err(Into::into) })
            }
            Some(Some(left)) => {
                let call = self.inner.call(request);
                Box::pin(async move {
                    match tokio::time::timeout(left, call).await {
                        Ok(result) => result.map_err(Into::into),
                        Err(_elapsed) => Err(FenceError::ExpiredInFlight.into()),
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::{Layer as _, Service as _, ServiceExt as _};

    /// An API stand-in that counts the requests that reach it and answers after `delay`.
    fn counting(
        delay: Duration,
    ) -> (
        Arc<AtomicUsize>,
        impl tower::Service<
            http::Request<()>,
            Response = &'static str,
            Error = std::convert::Infallible,
            Future = impl Send + 'static,
        > + Clone,
    ) {
        let reached = Arc::new(AtomicUsize::new(0));
        let seen = reached.clone();
        let service = tower::service_fn(move |_request: http::Request<()>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(delay).await;
                Ok::<_, std::convert::Infallible>("written")
            }
        });
        (reached, service)
    }

    fn request(method: http::Method) -> http::Request<()> {
        http::Request::builder()
            .method(method)
            .uri("/api/v1/namespaces/default/services/web/status")
            .body(())
            .expect("a fixed request is well-formed")
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_fence_refuses_writes_before_they_are_sent_but_lets_reads_through() {
        let (reached, inner) = counting(Duration::ZERO);
        let mut fenced = FenceLayer::new(Fence::closed()).layer(inner);
        let refused = fenced
            .ready()
            .await
            .unwrap()
            .call(request(http::Method::PATCH))
            .await
            .unwrap_err();
        assert!(FenceError::is_in(refused.as_ref()), "{refused}");
        assert_eq!(reached.load(Ordering::SeqCst), 0);
        let read = fenced
            .ready()
            .await
            .unwrap()
            .call(request(http::Method::GET));
        assert_eq!(read.await.unwrap(), "written");
        assert_eq!(reached.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_in_flight_when_the_fence_closes_is_abandoned() {
        let (reached, inner) = counting(Duration::from_secs(30));
        let fence = Fence::closed();
        fence.extend(Instant::now() + Duration::from_secs(10));
        let mut fenced = FenceLayer::new(fence).layer(inner);
        let started = Instant::now();
        let error = fenced
            .ready()
            .await
            .unwrap()
            .call(request(http::Method::PUT))
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(10));
        assert_eq!(
            error.downcast_ref::<FenceError>(),
            Some(&FenceError::ExpiredInFlight)
        );
        assert_eq!(reached.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_fence_expires_by_itself_when_no_renewal_extends_it() {
        let fence = Fence::closed();
        let start = Instant::now();
        fence.extend(start + Duration::from_secs(10));
        assert_eq!(
            fence.remaining(start + Duration::from_secs(4)),
            Some(Some(Duration::from_secs(6)))
        );
        assert_eq!(fence.remaining(start + Duration::from_secs(10)), None);
        // A later renewal extends it; an earlier one never shortens it.
        fence.extend(start + Duration::from_secs(12));
        fence.extend(start + Duration::from_secs(5));
        assert_eq!(fence.remaining(start), Some(Some(Duration::from_secs(12))));
        fence.revoke();
        assert_eq!(fence.remaining(start), None);
    }

    #[tokio::test(start_paused = true)]
    async fn without_leader_election_the_fence_never_closes() {
        let fence = Fence::open();
        fence.revoke();
        assert_eq!(fence.remaining(Instant::now()), Some(None));
        let (reached, inner) = counting(Duration::from_secs(100));
        let mut fenced = FenceLayer::new(fence).layer(inner);
        let written = fenced
            .ready()
            .await
            .unwrap()
            .call(request(http::Method::POST));
        assert_eq!(written.await.unwrap(), "written");
        assert_eq!(reached.load(Ordering::SeqCst), 1);
    }
}
