//! The GoBGP wire adapter: one idempotent [`Daemon::converge`] that makes a gobgpd (v4 API)
//! hold exactly a [`DesiredDaemon`], the [`PeerStatus`] of its sessions, and a signal when the
//! daemon restarted (it keeps nothing across a restart) so the caller converges again.
//!
//! Converge reads the daemon into the core's model (`actual`), plans with the core's pure
//! planner (`baremetal_ccm_core::announce::gobgp::plan`), and applies the plan (`apply`). This
//! module owns the connection, the calls and the protobuf conversions (`convert`, `peer`,
//! `status`); it is the only code that sees `gobgp_api_proto`. See
//! `docs/design/0001-gobgp-converge.md`.

mod actual;
mod apply;
mod connect;
mod convert;
mod peer;
mod sessions;
mod status;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gobgp_api_proto::GoBgpServiceClient;
use tonic::transport::Channel;

use baremetal_ccm_core::announce::gobgp::plan::Op;
use baremetal_ccm_core::announce::gobgp::{PathKey, PeerStatus, PlanError, plan};

pub(crate) use self::connect::{Endpoint, EndpointError};
pub(crate) use self::convert::ConvertError;
pub use self::watch::RestartCause;
use crate::announce::desired::DesiredDaemon;

type Client = GoBgpServiceClient<Channel>;

/// Deadline of every call but the event stream.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

#[derive(Debug, thiserror::Error)]
pub enum GobgpError {
    #[error("invalid gobgpd endpoint")]
    Endpoint(#[from] EndpointError),
    #[error("cannot connect to gobgpd at {endpoint}")]
    Connect {
        endpoint: Endpoint,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("gobgpd failed {call}")]
    Call {
        call: &'static str,
        #[source]
        source: tonic::Status,
    },
    #[error("gobgpd answered {call} with something unreadable")]
    Unreadable {
        call: &'static str,
        #[source]
        source: ConvertError,
    },
    #[error("the desired daemon state is invalid")]
    Desired(#[from] PlanError),
    #[error(
        "gobgpd stopped BGP to change its global settings and cannot start it again; the gobgpd process must be restarted"
    )]
    StoppedForGood {
        #[source]
        source: tonic::Status,
    },
}

impl GobgpError {
    /// Whether trying again later can succeed without another desired state. The announcer
    /// retries a transient error within seconds and any other one slowly
    /// (`SidecarError::retry_after`).
    pub fn is_transient(&self) -> bool {
        !matches!(self, GobgpError::Endpoint(_) | GobgpError::Desired(_))
    }
}

/// What one converge changed. `writes` counts the calls that modified the daemon; a
/// converged daemon gets none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConvergeReport {
    pub bgp_started: bool,
    pub bgp_stopped: bool,
    pub peers_added: usize,
    pub peers_updated: usize,
    pub peers_deleted: usize,
    /// Defined-set, policy and assignment calls.
    pub policy_writes: usize,
    pub paths_added: usize,
    pub paths_deleted: usize,
    pub soft_resets: usize,
    pub writes: usize,
    /// On a starting daemon with sessions without graceful restart, whether they were all
    /// Established before the paths were streamed (`None`: no such wait).
    pub sessions_up_before_paths: Option<bool>,
}

impl ConvergeReport {
    pub fn changed(&self) -> bool {
        self.writes > 0
    }

    /// Adds what `other` (a later part of the same converge) changed.
    fn absorb(&mut self, other: ConvergeReport) {
        self.bgp_started |= other.bgp_started;
        self.bgp_stopped |= other.bgp_stopped;
        self.peers_added += other.peers_added;
        self.peers_updated += other.peers_updated;
        self.peers_deleted += other.peers_deleted;
        self.policy_writes += other.policy_writes;
        self.paths_added += other.paths_added;
        self.paths_deleted += other.paths_deleted;
        self.soft_resets += other.soft_resets;
        self.writes += other.writes;
        self.sessions_up_before_paths =
            (self.sessions_up_before_paths).or(other.sessions_up_before_paths);
    }
}

/// Tunables of a daemon handle.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub connect_timeout: Duration,
    /// How often `GetBgp` checks that the daemon still runs BGP (the event stream notices
    /// a dead process at once; this catches a stopped BGP server).
    pub probe_interval: Duration,
    /// How long a converge may trust the path table it left the daemon with instead of
    /// reading it back (everything else is read every time).
    pub path_resync: Duration,
    /// On a daemon this handle started, how long the path stream waits for the sessions
    /// without graceful restart to come up, counted from when they were added. gobgpd sends
    /// paths added to an Established session several times faster than a table that already
    /// exists when the session comes up; a session that is not up by then gets the table
    /// when it comes up.
    pub session_wait: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            probe_interval: Duration::from_secs(5),
            path_resync: Duration::from_secs(60),
            session_wait: Duration::from_secs(5),
        }
    }
}

/// A connected gobgpd.
#[derive(Debug)]
pub struct Daemon {
    client: Client,
    endpoint: Endpoint,
    shared: Arc<watch::Shared>,
    restarted: tokio::sync::watch::Receiver<Option<RestartCause>>,
    watch_task: tokio::task::JoinHandle<()>,
    /// The path table this handle's last converge left the daemon with, and when the table
    /// was last read back in full. `None` after an error or when never converged.
    known_paths: Option<(BTreeMap<PathKey, IpAddr>, Instant)>,
    resync: Duration,
    /// End-of-RIBs owed to graceful-restart peers after this handle started BGP.
    sweep: sessions::StaleSweep,
    /// The session transitions the last converge had seen (see [`Daemon::settled`]).
    transitions_seen: u64,
    /// When [`Daemon::open`] started BGP and added the plain sessions, until the next
    /// converge.
    opened: Option<Instant>,
    session_wait: Duration,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.watch_task.abort();
    }
}

impl Daemon {
    /// Connects to `unix:///path/gobgpd.sock` or `http://127.0.0.1:PORT` and starts
    /// watching the daemon for a restart.
    pub async fn connect(endpoint: &str) -> Result<Daemon, GobgpError> {
        Self::connect_with(endpoint, DaemonOptions::default()).await
    }

    pub async fn connect_with(
        endpoint: &str,
        options: DaemonOptions,
    ) -> Result<Daemon, GobgpError> {
        let endpoint: Endpoint = endpoint.parse()?;
        let channel = connect::channel(&endpoint, options.connect_timeout)
            .await
            .map_err(|source| GobgpError::Connect {
                endpoint: endpoint.clone(),
                source,
            })?;
        let client = GoBgpServiceClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let shared = Arc::new(watch::Shared::default());
        let (cause, restarted) = tokio::sync::watch::channel(None);
        let span = tracing::info_span!("gobgpd_watch", endpoint = %endpoint);
        let watch_task = tokio::spawn(tracing::Instrument::instrument(
            watch::run(
                client.clone(),
                shared.clone(),
                cause,
                options.probe_interval,
            ),
            span,
        ));
        tracing::debug!(endpoint = %endpoint, "connected to gobgpd");
        Ok(Daemon {
            client,
            endpoint,
            shared,
            restarted,
            watch_task,
            known_paths: None,
            resync: options.path_resync,
            sweep: sessions::StaleSweep::default(),
            transitions_seen: 0,
            opened: None,
            session_wait: options.session_wait,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Makes the daemon hold exactly `desired`; a second call with the same state changes
    /// nothing. Stops at the first failed call (the next converge resumes from there).
    ///
    /// Global settings, peers and policy are read back every time. The path table is read
    /// back on the first converge, after any error and at least every `path_resync`; in
    /// between, the table this handle's previous converge produced stands in for it (a
    /// restarted daemon reports BGP not started, which empties it). So a change of one path
    /// costs one write, not a read of the whole table.
    #[tracing::instrument(skip_all, fields(endpoint = %self.endpoint, peers = desired.peers.len(), paths = desired.paths.len()))]
    pub async fn converge(
        &mut self,
        desired: &DesiredDaemon,
    ) -> Result<ConvergeReport, GobgpError> {
        self.transitions_seen = self.shared.sessions().transitions();
        let trusted =
            (self.known_paths.take()).filter(|(_, read_at)| read_at.elapsed() < self.resync);
        let read_at = trusted.as_ref().map_or_else(Instant::now, |(_, at)| *at);
        let snapshot =
            actual::read(&mut self.client, trusted.as_ref().map(|(paths, _)| paths)).await?;
        if snapshot.actual.global.is_some() {
            self.shared.started.store(true, Ordering::Release);
        }
        // BFD only on Established sessions (see `sessions`).
        let desired = sessions::bfd_while_established(desired, &snapshot.listed_peers);
        let desired = desired.as_ref();
        let opened = (self.opened.take()).filter(|_| snapshot.actual.global.is_some());
        let starting = snapshot.actual.global.is_none() || opened.is_some();
        let ops = match opened {
            Some(_) => plan::plan_after_opening(&snapshot.actual, desired)?,
            None => plan::plan(&snapshot.actual, desired)?,
        };
        tracing::debug!(
            operations = ops.len(),
            read_back = trusted.is_none(),
            "converge planned"
        );
        if starting {
            // A fresh daemon: the routers may hold its predecessor's paths as stale.
            self.sweep.arm(desired);
        }
        let mut report = if starting {
            self.apply_starting(ops, desired, &snapshot.listed_peers, opened)
                .await?
        } else {
            apply::apply(&mut self.client, ops, &snapshot.listed_peers).await?
        };
        let sweeps = (self.sweep)
            .run(&mut self.client, desired, &snapshot.listed_peers)
            .await?;
        report.soft_resets += sweeps;
        report.writes += sweeps;
        // Applied in full: the daemon's local paths are now exactly the desired ones (as
        // the planner keys them; planning succeeded, so this cannot fail).
        let paths = plan::desired_paths(desired)?;
        self.known_paths = Some((paths, read_at));
        if report.bgp_started {
            self.shared.started.store(true, Ordering::Release);
        }
        if report.changed() {
            tracing::debug!(?report, "daemon converged");
        }
        Ok(report)
    }

    /// Opens a fresh daemon's sessions before the rest of `desired` is known (its paths are
    /// ignored): starts BGP, builds the export policy and adds the peers without graceful
    /// restart, so that they come up while the caller reads the cluster. The next converge
    /// then plans from there as for a starting daemon. A daemon that already runs BGP is left
    /// alone (its paths stay until the next converge); whether anything was opened.
    pub async fn open(&mut self, desired: &DesiredDaemon) -> Result<bool, GobgpError> {
        let opening = plan::opening(desired);
        if opening.peers.is_empty() {
            return Ok(false);
        }
        let snapshot = actual::read(&mut self.client, None).await?;
        if snapshot.actual.global.is_some() {
            return Ok(false);
        }
        let opening = sessions::bfd_while_established(&opening, &snapshot.listed_peers);
        let ops = plan::plan(&snapshot.actual, opening.as_ref())?;
        apply::apply(&mut self.client, ops, &snapshot.listed_peers).await?;
        self.shared.started.store(true, Ordering::Release);
        self.known_paths = Some((BTreeMap::new(), Instant::now()));
        self.opened = Some(Instant::now());
        tracing::info!(
            peers = opening.peers.len(),
            "BGP started and sessions opened while the cluster is read"
        );
        Ok(true)
    }

    /// Applies a starting daemon's plan in two parts: up to the paths (BGP, policy, the plain
    /// sessions), then, once those sessions are up or `session_wait` after they were added
    /// (`opened`, or now), the paths and the graceful-restart peers.
    async fn apply_starting(
        &mut self,
        mut ops: Vec<Op>,
        desired: &DesiredDaemon,
        listed_peers: &BTreeMap<IpAddr, gobgp_api_proto::api::Peer>,
        opened: Option<Instant>,
    ) -> Result<ConvergeReport, GobgpError> {
        let split = (ops.iter())
            .position(|op| matches!(op, Op::AddPaths(_)))
            .unwrap_or(ops.len());
        let paths = ops.split_off(split);
        let mut report = apply::apply(&mut self.client, ops, listed_peers).await?;
        if paths.is_empty() {
            return Ok(report);
        }
        let plain: Vec<IpAddr> = (desired.peers.iter())
            .filter(|(_, peer)| peer.graceful_restart.is_none())
            .map(|(address, _)| *address)
            .collect();
        if !plain.is_empty() {
            let from = opened.unwrap_or_else(Instant::now);
            let waited = Instant::now();
            let up = self.sessions_up(&plain, from + self.session_wait).await?;
            tracing::info!(
                sessions = plain.len(),
                all_up = up,
                waited_ms = waited.elapsed().as_millis(),
                "streaming the paths to a starting daemon"
            );
            report.sessions_up_before_paths = Some(up);
        }
        report.absorb(apply::apply(&mut self.client, paths, listed_peers).await?);
        Ok(report)
    }

    /// Waits until every session with `peers` is Established or `deadline` passed; whether
    /// they all are. The watch's events wake it; the daemon's own listing is read as well
    /// every 200 ms, in case an event came before the watch started.
    async fn sessions_up(
        &mut self,
        peers: &[IpAddr],
        deadline: Instant,
    ) -> Result<bool, GobgpError> {
        const POLL: Duration = Duration::from_millis(200);
        loop {
            let shared = self.shared.clone();
            let event = shared.session_event.notified();
            tokio::pin!(event);
            event.as_mut().enable();
            if peers.iter().all(|p| shared.sessions().established(p)) {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let woken = tokio::time::timeout((deadline - now).min(POLL), event).await;
            if woken.is_err() {
                let listed = actual::read_peers(&mut self.client).await?;
                let established = |address: &IpAddr| {
                    (listed.get(address)).is_some_and(|peer| {
                        status::peer_status(peer, *address, None).session
                            == baremetal_ccm_core::announce::gobgp::SessionState::Established
                    })
                };
                if peers.iter().all(established) {
                    return Ok(true);
                }
            }
        }
    }

    /// Whether the last converge is still all there is to do for the same desired state.
    /// What converge configures also depends on session states (BFD only while
    /// Established, the stale-path sweep once Established), so after a session came up or
    /// went down, or while a sweep is owed, the same desired state must be converged again.
    pub fn settled(&self) -> bool {
        self.sweep.is_empty() && self.shared.sessions().transitions() == self.transitions_seen
    }

    /// The state of every session the daemon has.
    pub async fn peer_statuses(&mut self) -> Result<Vec<PeerStatus>, GobgpError> {
        let peers = actual::list_peers(&mut self.client, true).await?;
        let sessions = self.shared.sessions();
        peers
            .iter()
            .map(|peer| {
                let address = convert::parse_addr(
                    "neighbor address",
                    peer.conf
                        .as_ref()
                        .map_or("", |c| c.neighbor_address.as_str()),
                )
                .map_err(|source| GobgpError::Unreadable {
                    call: "ListPeer",
                    source,
                })?;
                Ok(status::peer_status(
                    peer,
                    address,
                    sessions.last_down(&address),
                ))
            })
            .collect()
    }

    /// Completes when the daemon restarted or can no longer be watched: reconnect (a new
    /// [`Daemon`]) and converge again.
    pub fn restarted(&self) -> impl Future<Output = RestartCause> + Send + 'static {
        let mut receiver = self.restarted.clone();
        async move {
            match receiver.wait_for(Option::is_some).await {
                Ok(cause) => cause.clone().unwrap_or(RestartCause::StreamEnded),
                // The sender lives in the watch task; it is gone only when the task was
                // aborted, i.e. this handle was dropped.
                Err(_closed) => RestartCause::StreamEnded,
            }
        }
    }
}
