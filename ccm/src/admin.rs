//! The admin HTTP server: `/healthz`, `/readyz` and `/metrics` (OpenMetrics text).
//!
//! A slow or idle client cannot hold it: a request's head must arrive within
//! [`HEADER_READ_TIMEOUT`], and at most [`MAX_CONNECTIONS`] connections are served at once (a
//! connection beyond that is closed at once), so a slow-client flood costs a few file
//! descriptors for a few seconds, never the liveness probe for good.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admin server failed")]
    Serve(#[source] std::io::Error),
}

/// How long a client may take to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 64;

/// Readiness as shown on `/readyz`: ready, or not ready with the reason an operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

/// What the admin endpoints serve; cheap to clone and shared with the components that report.
#[derive(Debug, Clone)]
pub struct AdminState {
    registry: Arc<Registry>,
    readiness: Arc<RwLock<Readiness>>,
}

impl AdminState {
    /// Creates the state with a registry whose metrics are prefixed `baremetal_ccm_`.
    pub fn new(component: &str, register: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::with_prefix("baremetal_ccm");
        registry.register(
            "build",
            "Build information of the running binary",
            Info::new(vec![
                ("version", env!("CARGO_PKG_VERSION").to_owned()),
                ("component", component.to_owned()),
            ]),
        );
        register(&mut registry);
        Self {
            registry: Arc::new(registry),
            readiness: Arc::new(RwLock::new(Readiness::NotReady("starting".to_owned()))),
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode_metrics(&self) -> Result<String, std::fmt::Error> {
        let mut body = String::new();
        encode(&mut body, &self.registry)?;
        Ok(body)
    }

    pub fn set_readiness(&self, readiness: Readiness) {
        *self
            .readiness
            .write()
            .expect("readiness lock is never poisoned: writers do not panic") = readiness;
    }

    fn readiness(&self) -> Readiness {
        self.readiness
            .read()
            .expect("readiness lock is never poisoned: writers do not panic")
            .clone()
    }

    /// The admin router; exposed for tests that drive it without a socket.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// Serves the admin endpoints until the listener fails.
    pub async fn serve(&self, address: SocketAddr) -> Result<(), AdminError> {
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| AdminError::Bind { address, source })?;
        tracing::info!(%address, "admin server listening");
        self.serve_on(listener).await
    }

    /// Serves on an already bound listener (tests bind port 0).
    pub async fn serve_on(&self, listener: tokio::net::TcpListener) -> Result<(), AdminError> {
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let service = hyper_util::service::TowerToHyperService::new(self.router());
        loop {
            let (stream, _) = listener.accept().await.map_err(AdminError::Serve)?;
            // Over the cap the connection is closed at once (dropped with its stream).
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                continue;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let mut http = hyper::server::conn::http1::Builder::new();
                http.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                let io = hyper_util::rt::TokioIo::new(stream);
                // A client that goes away or is too slow ends its connection; nothing to do.
                let _ = http.serve_connection(io, service).await;
                drop(permit);
            });
        }
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.readiness() {
        Readiness::Ready => (StatusCode::OK, "ok\n".to_owned()),
        Readiness::NotReady(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    match state.encode_metrics() {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "encoding metrics failed\n".to_owned(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    async fn get_path(state: &AdminState, path: &str) -> (StatusCode, String) {
        let response = state
            .router()
            .oneshot(
                Request::get(path)
                    .body(Body::empty())
                    .expect("static request is valid"),
            )
            .await
            .expect("router is infallible");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body fits");
        (
            status,
            String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        )
    }

    #[tokio::test]
    async fn readyz_reports_the_reason_until_ready() {
        let state = AdminState::new("controller", |_| {});
        state.set_readiness(Readiness::NotReady("waiting for the initial lists".into()));
        let (status, body) = get_path(&state, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("waiting for the initial lists"), "{body}");

        state.set_readiness(Readiness::Ready);
        assert_eq!(get_path(&state, "/readyz").await.0, StatusCode::OK);
        assert_eq!(get_path(&state, "/healthz").await.0, StatusCode::OK);
    }

    /// A real socket: a client that sends half a request head is cut off after the header
    /// timeout, connections beyond the cap are closed at once, and probes work again as soon
    /// as the slow clients are gone.
    #[tokio::test]
    async fn slow_clients_are_cut_off_and_bounded() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let state = AdminState::new("controller", |_| {});
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("loopback bind");
        let address = listener.local_addr().expect("bound");
        let server = tokio::spawn(async move { state.serve_on(listener).await });
        let started = tokio::time::Instant::now();
        let mut slow = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut stream = tokio::net::TcpStream::connect(address)
                .await
                .expect("connect");
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("write");
            slow.push(stream);
        }
        // The cap is reached: one more is closed without an answer.
        let mut extra = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let _ = extra
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut answer)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "over the cap: closed, no answer ({read:?}, {answer:?})"
        );
        // The half-sent heads are cut off after the timeout.
        for mut stream in slow {
            let mut rest = Vec::new();
            let closed = tokio::time::timeout(
                HEADER_READ_TIMEOUT + Duration::from_secs(3),
                stream.read_to_end(&mut rest),
            )
            .await;
            assert!(closed.is_ok(), "a slow client was cut off");
        }
        let elapsed = started.elapsed();
        assert!(
            elapsed >= HEADER_READ_TIMEOUT - Duration::from_millis(500),
            "{elapsed:?}"
        );
        // And the probe works again.
        let mut probe = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        probe
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut response = String::new();
        probe.read_to_string(&mut response).await.expect("read");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        server.abort();
    }

    #[tokio::test]
    async fn metrics_carry_the_project_prefix() {
        let state = AdminState::new("speaker", |_| {});
        let (status, body) = get_path(&state, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("baremetal_ccm_build_info{"), "{body}");
        assert!(body.contains("component=\"speaker\""), "{body}");
        assert!(body.trim_end().ends_with("# EOF"), "{body}");
    }
}
