//! The connection to the Kubernetes API server: kubeconfig or in-cluster configuration.
//!
//! Never depends on cluster DNS or node addresses: in-cluster configuration uses the
//! `KUBERNETES_SERVICE_HOST` address, and a kubeconfig names the server explicitly.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::time::{Instant, Sleep};

use crate::cli::KubeArgs;
use crate::fence::{Fence, FenceLayer};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiserverError {
    #[error("cannot read kubeconfig {path}")]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig given and no in-cluster configuration")]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client")]
    Client(#[source] kube::Error),
}

/// Builds the client from `--kubeconfig`, else from the in-cluster environment.
pub(crate) async fn client(args: &KubeArgs) -> Result<Client, ApiserverError> {
    let limit = RateLimit::new(args.kube_api_qps, args.kube_api_burst);
    Ok(ClientBuilder::try_from(config(args).await?)
        .map_err(ApiserverError::Client)?
        .with_layer(&limit)
        .build())
}

/// [`client`] whose mutating requests pass `fence` (the leader-only writers' client). The
/// fence is consulted after the rate-limit wait, when the request is actually sent.
pub(crate) async fn fenced_client(args: &KubeArgs, fence: Fence) -> Result<Client, ApiserverError> {
    let limit = RateLimit::new(args.kube_api_qps, args.kube_api_burst);
    fenced_client_limited(args, fence, limit).await
}

/// [`fenced_client`] with its own rate limit (the Events' client: `--event-qps`).
pub(crate) async fn fenced_client_limited(
    args: &KubeArgs,
    fence: Fence,
    limit: RateLimit,
) -> Result<Client, ApiserverError> {
    Ok(ClientBuilder::try_from(config(args).await?)
        .map_err(ApiserverError::Client)?
        .with_layer(&FenceLayer::new(fence))
        .with_layer(&limit)
        .build())
}

async fn config(args: &KubeArgs) -> Result<Config, ApiserverError> {
    Ok(match &args.kubeconfig {
        Some(path) => {
            let error = |source| ApiserverError::Kubeconfig {
                path: path.clone(),
                source,
            };
            let kubeconfig = Kubeconfig::read_from(path).map_err(error)?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(error)?
        }
        None => Config::infer().await.map_err(ApiserverError::Infer)?,
    })
}

/// Client-side rate limit of requests to the API server, the way client-go does it: a token
/// bucket refilled at `qps` tokens per second holding at most `burst`. Every request (watches
/// included) takes one token before it is sent. A non-positive `qps` disables the limit.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    qps: f64,
    burst: f64,
}

impl RateLimit {
    pub fn new(qps: f32, burst: u32) -> RateLimit {
        RateLimit {
            qps: f64::from(qps),
            burst: f64::from(burst.max(1)),
        }
    }
}

impl<S> tower::Layer<S> for RateLimit {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> RateLimited<S> {
        RateLimited {
            inner,
            limit: *self,
            tokens: self.burst,
            refilled: Instant::now(),
            reserved: false,
            sleep: None,
        }
    }
}

/// A service behind a [`RateLimit`]. Readiness waits for a token, so a caller that polls for
/// readiness before calling (as kube's request buffer does) is held back without spinning.
#[derive(Debug)]
pub struct RateLimited<S> {
    inner: S,
    limit: RateLimit,
    tokens: f64,
    refilled: Instant,
    /// A token is taken for the next call.
    reserved: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> RateLimited<S> {
    /// Takes a token, or says how long until one is available.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.limit.qps).min(self.limit.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - self.tokens) / self.limit.qps,
            ))
        }
    }
}

impl<S, R> tower::Service<R> for RateLimited<S>
where
    S: tower::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        while !self.reserved && self.limit.qps > 0.0 {
            if let Some(sleep) = self.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
            }
            match self.take(Instant::now()) {
                Ok(()) => self.reserved = true,
                Err(wait) => self.sleep = Some(Box::pin(tokio::time::sleep(wait))),
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.reserved = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer as _, Service as _, ServiceExt as _};

    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_burst_wait_for_tokens() {
        let mut service = RateLimit::new(10.0, 3).layer(tower::service_fn(|()| async {
            Ok::<_, std::convert::Infallible>(Instant::now())
        }));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..5 {
            times.push(service.ready().await.unwrap().call(()).await.unwrap() - start);
        }
        // Three at once (the burst), then one every 100 ms.
        assert_eq!(times[..3], [Duration::ZERO; 3]);
        assert!(
            times[3] >= Duration::from_millis(99) && times[3] <= Duration::from_millis(101),
            "{times:?}"
        );
        assert!(
            times[4] >= Duration::from_millis(199) && times[4] <= Duration::from_millis(201),
            "{times:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_qps_means_no_limit() {
        let mut service = RateLimit::new(0.0, 1).layer(tower::service_fn(|()| async {
            Ok::<_, std::convert::Infallible>(Instant::now())
        }));
        let start = Instant::now();
        for _ in 0..100 {
            let at = service.ready().await.unwrap().call(()).await.unwrap();
            assert_eq!(at, start);
        }
    }
}
