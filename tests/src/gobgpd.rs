//! A real `gobgpd` inside a lab namespace, its gRPC API on a unix socket the test can reach.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gobgp_api_proto::GoBgpServiceClient;
use gobgp_api_proto::api::{GetBgpRequest, ListPeerRequest, PeerState};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::netns::Host;
use crate::process::{Process, ProcessError, run, wait_for};
use crate::tools::{Tool, ToolError};

#[derive(Debug, thiserror::Error)]
pub enum GobgpdError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot create a directory for gobgpd")]
    TempDir(#[source] std::io::Error),
    #[error("connecting to gobgpd at {socket} failed")]
    Connect {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("gobgpd refused {call}")]
    Call {
        call: &'static str,
        #[source]
        source: tonic::Status,
    },
    #[error("gobgpd did not answer GetBgp within {seconds}s; log tail:\n{log}")]
    NotReady { seconds: u64, log: String },
    #[error("cannot remove the stale API socket {socket}")]
    StaleSocket {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A running `gobgpd` with pprof and metrics off and no configuration file.
#[derive(Debug)]
pub struct Gobgpd {
    process: Process,
    host: Host,
    socket: PathBuf,
    dir: tempfile::TempDir,
    /// How many times the process was started (each run logs to its own file).
    runs: u32,
}

fn spawn(host: &Host, socket: &Path, log: &Path) -> Result<Process, GobgpdError> {
    let mut cmd = host.command(Tool::Gobgpd.path()?);
    cmd.arg(format!("--api-hosts=unix://{}", socket.display()))
        .arg("--pprof-disable")
        .arg("--metrics-path=")
        .arg("--log-plain")
        .arg("--log-level=debug");
    Ok(Process::spawn("gobgpd", cmd, log)?)
}

impl Gobgpd {
    /// Starts gobgpd in `host`; returns once its API answers.
    pub async fn start(host: &Host) -> Result<Self, GobgpdError> {
        let dir = tempfile::Builder::new()
            .prefix("bmccm-gobgpd-")
            .tempdir()
            .map_err(GobgpdError::TempDir)?;
        let socket = dir.path().join("gobgpd.sock");
        let process = spawn(host, &socket, &dir.path().join("gobgpd.log"))?;
        let mut daemon = Self {
            process,
            host: host.clone(),
            socket,
            dir,
            runs: 1,
        };
        daemon.wait_ready().await?;
        Ok(daemon)
    }

    /// Kills the daemon (SIGKILL, as a crash) and starts a fresh one on the same socket, as a
    /// container restart would; returns once the new one answers. The socket file a killed
    /// gobgpd leaves behind is removed first (gobgpd cannot listen on an existing one).
    pub async fn restart(&mut self) -> Result<(), GobgpdError> {
        self.process.kill();
        match std::fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(GobgpdError::StaleSocket {
                    socket: self.socket.clone(),
                    source,
                });
            }
        }
        self.runs += 1;
        let log = self.dir.path().join(format!("gobgpd-{}.log", self.runs));
        self.process = spawn(&self.host, &self.socket, &log)?;
        self.wait_ready().await
    }

    /// The API endpoint as a URL (`unix:///…/gobgpd.sock`).
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    async fn wait_ready(&mut self) -> Result<(), GobgpdError> {
        const TIMEOUT: Duration = Duration::from_secs(20);
        let socket = self.socket.clone();
        let ready = wait_for(TIMEOUT, || {
            let socket = socket.clone();
            async move {
                let mut client = connect(&socket).await.ok()?;
                client.get_bgp(GetBgpRequest {}).await.ok().map(drop)
            }
        })
        .await;
        ready.ok_or_else(|| GobgpdError::NotReady {
            seconds: TIMEOUT.as_secs(),
            log: self.process.log_tail(4000),
        })
    }

    /// A fresh gRPC client of this daemon.
    pub async fn client(&self) -> Result<GoBgpServiceClient<Channel>, GobgpdError> {
        connect(&self.socket).await
    }

    /// The daemon's process ID (`ip netns exec` execs gobgpd in place: the same process).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The API socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// gobgpd's state of its session with `neighbor` (FSM state, message counters), if it
    /// has that neighbor.
    pub async fn peer_state(
        &self,
        neighbor: std::net::IpAddr,
    ) -> Result<Option<PeerState>, GobgpdError> {
        let mut client = self.client().await?;
        let request = ListPeerRequest {
            address: neighbor.to_string(),
            enable_advertised: false,
        };
        let call = |source| GobgpdError::Call {
            call: "ListPeer",
            source,
        };
        let mut stream = client.list_peer(request).await.map_err(call)?.into_inner();
        let mut found = None;
        while let Some(reply) = stream.message().await.map_err(call)? {
            found = found.or(reply.peer.and_then(|p| p.state));
        }
        Ok(found)
    }

    /// Runs the `gobgp` CLI against this daemon (e.g. `["global", "rib", "-a", "ipv4", "-j"]`).
    pub fn cli(&self, args: &[&str]) -> Result<String, GobgpdError> {
        let mut cmd = std::process::Command::new(Tool::Gobgp.path()?);
        cmd.arg(format!("--target=unix://{}", self.socket.display()))
            .args(args);
        Ok(run(cmd)?)
    }

    /// gobgpd's log so far.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        self.process.log_tail(max_bytes)
    }

    /// Kills the daemon (SIGKILL), as a crash would; everything it held is gone.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// The directory holding the socket and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Connects a tonic channel to a gobgpd API unix socket.
pub async fn connect(socket: &Path) -> Result<GoBgpServiceClient<Channel>, GobgpdError> {
    let path = socket.to_owned();
    // The URI is required by tonic but unused: the connector always dials the socket.
    let channel = Endpoint::from_static("http://gobgpd.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|source| GobgpdError::Connect {
            socket: socket.to_owned(),
            source,
        })?;
    Ok(GoBgpServiceClient::new(channel))
}
