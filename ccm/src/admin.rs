//! The admin servers. The admin server proper (`--admin-bind-address`, loopback by default)
//! serves `/healthz`, `/readyz` and `/metrics` (OpenMetrics text) in plain HTTP without
//! authentication, for the kubelet's probes and local tools. The metrics listener
//! (`--metrics-bind-address`, every address by default) serves only `/metrics`, over HTTPS, to
//! callers the API server authenticates and authorizes ([`auth`]).
//!
//! A slow or idle client cannot hold either: a TLS handshake and then a request's head must
//! each arrive within [`HEADER_READ_TIMEOUT`], and each listener serves at most
//! [`MAX_CONNECTIONS`] connections at once (a connection beyond that is closed at once), so a
//! slow-client flood costs a few file descriptors for a few seconds, never the liveness probe
//! for good.

pub(crate) mod auth;
pub(crate) mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use crate::cli::AdminArgs;
use auth::{AuthMetrics, Authorizer, Decision};
use tls::TlsError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("an admin listener cannot accept connections")]
    Serve(#[source] std::io::Error),
    #[error("the metrics listener's TLS settings are unusable")]
    Tls(#[from] TlsError),
}

/// How long a client may take to complete a TLS handshake, and to send a request's head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once, per listener.
pub const MAX_CONNECTIONS: usize = 64;

/// The process's own part of readiness (the components' parts are named after them).
const PROCESS: &str = "process";

/// Readiness as shown on `/readyz`: ready, or not ready with the reason an operator reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(String),
}

/// What the admin endpoints serve; cheap to clone and shared with the components that report.
/// Readiness is the conjunction of parts: the process's own (`set_readiness`) and one per
/// component that reports it ([`AdminState::readiness_part`]).
#[derive(Debug, Clone)]
pub struct AdminState {
    registry: Arc<Registry>,
    readiness: Arc<RwLock<BTreeMap<&'static str, Readiness>>>,
    auth_metrics: AuthMetrics,
}

/// One component's share of readiness; the process is ready when every part is.
#[derive(Debug, Clone)]
pub(crate) struct ReadinessPart {
    name: &'static str,
    state: AdminState,
}

impl ReadinessPart {
    pub(crate) fn set(&self, readiness: Readiness) {
        self.state.set_part(self.name, readiness);
    }
}

/// The bound listeners of the admin server and, unless it is off, the metrics listener with
/// its TLS settings.
#[derive(Debug)]
pub struct Listeners {
    admin: TcpListener,
    metrics: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
}

impl Listeners {
    /// Binds what `args` asks for, each on its default port unless the flag names one; reads
    /// or generates the certificate. Fails before anything is served.
    pub async fn bind(
        args: &AdminArgs,
        admin_port: u16,
        metrics_port: u16,
    ) -> Result<Self, AdminError> {
        let address = args.address(admin_port);
        let admin = bind(address).await?;
        tracing::info!(%address, "admin server (probes, plain HTTP) listening");
        let metrics = match args.metrics_address(metrics_port) {
            Some(address) => {
                let files = args
                    .tls_cert_file
                    .as_deref()
                    .zip(args.tls_private_key_file.as_deref());
                let tls = tls::server_config(files)?;
                let listener = bind(address).await?;
                tracing::info!(
                    %address,
                    certificate = if files.is_some() { "from file" } else { "self-signed" },
                    "metrics listener (HTTPS, authorized by the API server) listening"
                );
                Some((listener, tls))
            }
            None => {
                tracing::info!("metrics listener off (--metrics-bind-address=off)");
                None
            }
        };
        Ok(Self { admin, metrics })
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, AdminError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| AdminError::Bind { address, source })
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
        let auth_metrics = AuthMetrics::default();
        let admin = registry.sub_registry_with_prefix("admin");
        admin.register(
            "metrics_requests",
            "Requests to the metrics listener, by result (allowed, unauthenticated, forbidden, unavailable)",
            auth_metrics.clone(),
        );
        register(&mut registry);
        Self {
            registry: Arc::new(registry),
            readiness: Arc::new(RwLock::new(BTreeMap::from([(
                PROCESS,
                Readiness::NotReady("starting".to_owned()),
            )]))),
            auth_metrics,
        }
    }

    /// The metrics as OpenMetrics text.
    pub fn encode_metrics(&self) -> Result<String, std::fmt::Error> {
        let mut body = String::new();
        encode(&mut body, &self.registry)?;
        Ok(body)
    }

    /// The process's own part of readiness.
    pub fn set_readiness(&self, readiness: Readiness) {
        self.set_part(PROCESS, readiness);
    }

    /// A part of readiness for one component, not ready (`starting`) until it says otherwise.
    pub(crate) fn readiness_part(&self, name: &'static str) -> ReadinessPart {
        self.set_part(name, Readiness::NotReady(format!("{name}: starting")));
        ReadinessPart {
            name,
            state: self.clone(),
        }
    }

    fn set_part(&self, name: &'static str, readiness: Readiness) {
        self.readiness
            .write()
            .expect("readiness lock is never poisoned: writers do not panic")
            .insert(name, readiness);
    }

    /// Ready when every part is; otherwise the reasons of the parts that are not.
    fn readiness(&self) -> Readiness {
        let parts = self
            .readiness
            .read()
            .expect("readiness lock is never poisoned: writers do not panic");
        let reasons: Vec<&str> = (parts.values())
            .filter_map(|part| match part {
                Readiness::Ready => None,
                Readiness::NotReady(reason) => Some(reason.as_str()),
            })
            .collect();
        if reasons.is_empty() {
            Readiness::Ready
        } else {
            Readiness::NotReady(reasons.join("; "))
        }
    }

    /// The admin router; exposed for tests that drive it without a socket.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }

    /// The metrics listener's router: `/metrics` for callers `authorizer` allows, nothing else
    /// (other paths are 404, probes included: they belong on the admin server).
    pub fn metrics_router(&self, authorizer: Arc<Authorizer>) -> Router {
        Router::new()
            .route("/metrics", get(authorized_metrics))
            .with_state(Authorized {
                state: self.clone(),
                authorizer,
            })
    }

    /// An [`Authorizer`] that counts its decisions in this state's metrics.
    pub fn authorizer(&self, client: kube::Client) -> Arc<Authorizer> {
        Arc::new(Authorizer::new(client, self.auth_metrics.clone()))
    }

    /// Binds both listeners (a taken port fails the start) and serves them on a task of their
    /// own. Metrics callers are reviewed with a client of their own: a flood of bad tokens
    /// spends its rate-limit budget, never the controllers'.
    pub async fn start(
        &self,
        args: &AdminArgs,
        kube: &crate::cli::KubeArgs,
        admin_port: u16,
        metrics_port: u16,
    ) -> anyhow::Result<tokio::task::JoinHandle<Result<(), AdminError>>> {
        let listeners = Listeners::bind(args, admin_port, metrics_port).await?;
        let review_client = crate::apiserver::client(kube).await?;
        let server = self.clone();
        Ok(tokio::spawn(async move {
            server.serve(listeners, review_client).await
        }))
    }

    /// Serves both listeners until one fails; `review_client` asks the API server about
    /// metrics callers.
    pub async fn serve(
        &self,
        listeners: Listeners,
        review_client: kube::Client,
    ) -> Result<(), AdminError> {
        let admin = self.serve_on(listeners.admin);
        match listeners.metrics {
            Some((listener, tls)) => {
                let metrics = self.serve_metrics_on(listener, tls, self.authorizer(review_client));
                tokio::try_join!(admin, metrics).map(drop)
            }
            None => admin.await,
        }
    }

    /// Serves the admin endpoints on an already bound listener (tests bind port 0).
    pub async fn serve_on(&self, listener: TcpListener) -> Result<(), AdminError> {
        accept_loop(listener, self.router(), None).await
    }

    /// Serves the metrics listener on an already bound listener.
    pub async fn serve_metrics_on(
        &self,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        authorizer: Arc<Authorizer>,
    ) -> Result<(), AdminError> {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        accept_loop(listener, self.metrics_router(authorizer), Some(acceptor)).await
    }
}

type Service = hyper_util::service::TowerToHyperService<Router>;

/// Accepts connections until the listener fails, each served on its own task while a permit
/// is free.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<(), AdminError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let service = Service::new(router);
    loop {
        let (stream, _) = listener.accept().await.map_err(AdminError::Serve)?;
        // Over the cap the connection is closed at once (dropped with its stream).
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let (service, tls) = (service.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, service).await,
                Some(acceptor) => {
                    // The handshake is bounded like a request head: a client that connects
                    // and says nothing must not keep its permit.
                    let handshake =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        serve_connection(stream, service).await;
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn serve_connection<S>(stream: S, service: Service)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let io = hyper_util::rt::TokioIo::new(stream);
    // A client that goes away, is too slow or fails the handshake ends its connection;
    // nothing to do.
    let _ = http.serve_connection(io, service).await;
}

#[derive(Debug, Clone)]
struct Authorized {
    state: AdminState,
    authorizer: Arc<Authorizer>,
}

async fn authorized_metrics(State(authorized): State<Authorized>, headers: HeaderMap) -> Response {
    let text = |status, body: &'static str| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match authorized
        .authorizer
        .decide(headers.get(header::AUTHORIZATION))
        .await
    {
        Decision::Allowed => metrics(State(authorized.state)).await.into_response(),
        Decision::Unauthenticated => {
            let mut response = text(
                StatusCode::UNAUTHORIZED,
                "unauthorized: send a bearer token the API server accepts\n",
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
        Decision::Forbidden => text(
            StatusCode::FORBIDDEN,
            "forbidden: the token's user may not get the non-resource URL /metrics\n",
        ),
        Decision::Unavailable => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot authorize the request: the API server did not review it in time (see the log)\n",
        ),
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

    #[tokio::test]
    async fn every_part_must_be_ready() {
        let state = AdminState::new("controller", |_| {});
        state.set_readiness(Readiness::Ready);
        let bgp = state.readiness_part("bgp");
        let (status, body) = get_path(&state, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("bgp: starting"), "{body}");
        bgp.set(Readiness::NotReady(
            "BGP sessions not established: 192.0.2.254 (Active)".into(),
        ));
        let (_, body) = get_path(&state, "/readyz").await;
        assert!(body.contains("192.0.2.254 (Active)"), "{body}");
        bgp.set(Readiness::Ready);
        assert_eq!(get_path(&state, "/readyz").await.0, StatusCode::OK);
        state.set_readiness(Readiness::NotReady("stopping".into()));
        assert_eq!(
            get_path(&state, "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
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
