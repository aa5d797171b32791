//! The speakers' membership: SWIM (foca) over authenticated UDP on each node's address, each
//! speaker's gossiped state, and the successor fast path; its output is the [`View`] the
//! layer-2 election reads.

mod driver;
mod fast;
mod identity;
mod metrics;
mod returns;
mod state;
mod timers;
mod view;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use ring::rand::SecureRandom as _;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::Instrument as _;

pub(crate) use fast::FastPathConfig;
pub(crate) use metrics::Metrics;
pub(crate) use state::{Conflict, MemberState};
pub(crate) use view::Peer;
pub(crate) use view::View;
pub(crate) use wire::{GossipKey, GossipKeys, MIN_KEY_LEN};

use driver::{Command, Driver, Parts, Settings};
use fast::FastPath;
use identity::Speaker;

/// The gossip port (`--l2-gossip-port`): not MetalLB's 7946, so both can run during a
/// migration.
pub(crate) const DEFAULT_PORT: u16 = 7947;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MembershipError {
    #[error("the gossip key has {len} bytes; it needs at least {MIN_KEY_LEN}")]
    KeyTooShort { len: usize },
    #[error("invalid membership configuration: {reason}")]
    Config { reason: &'static str },
    #[error("the gossip address {addr} is unspecified: it must be the node's address")]
    UnspecifiedAddress { addr: SocketAddr },
    #[error("cannot bind the gossip socket to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the gossip socket's address")]
    LocalAddr(#[source] std::io::Error),
    #[error("the system clock is before 1970")]
    Clock(#[source] std::time::SystemTimeError),
    #[error("cannot seed the random number generator")]
    Random(#[source] ring::error::Unspecified),
    #[error("SWIM refused to leave")]
    Leave(#[source] foca::Error),
    /// The task ended (it left already, or panicked); the channel's error says no more.
    #[error("the membership task is gone")]
    Stopped,
}

/// How the membership runs. [`Config::new`] sets the defaults for a LAN, which tests shrink.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) node: String,
    /// The node's address and the gossip port: the socket binds it and the others reach this
    /// speaker at it (port 0 picks one, for tests).
    pub(crate) addr: SocketAddr,
    /// The gossip keys, followed as they change.
    pub(crate) keys: watch::Receiver<GossipKeys>,
    /// SWIM probes one member per period…
    pub(crate) probe_period: Duration,
    /// …waits this long for its answer before asking others…
    pub(crate) probe_rtt: Duration,
    /// …this many of them…
    pub(crate) indirect_probes: NonZeroUsize,
    /// …and declares a suspect down after this long without a refutation.
    pub(crate) suspect_to_down: Duration,
    /// SWIM gossips its news to a few members this often besides the probes.
    pub(crate) gossip_interval: Duration,
    /// This speaker's state is gossiped again this often, for members that joined since.
    pub(crate) state_rebroadcast: Duration,
    /// While no other member is known, the seeds are announced to this often.
    pub(crate) announce_interval: Duration,
    pub(crate) fast_path: FastPathConfig,
    /// Of this life of the speaker; `None`: the milliseconds since the Unix epoch at start,
    /// so that a restarted speaker's identity wins over its previous one.
    pub(crate) generation: Option<u64>,
}

impl Config {
    /// One key, fixed (the tests' case).
    #[cfg(test)]
    pub(crate) fn new(node: String, addr: SocketAddr, key: GossipKey) -> Self {
        Self::following(node, addr, watch::channel(GossipKeys::from(key)).1)
    }

    /// The keys `keys` holds, as they change.
    pub(crate) fn following(
        node: String,
        addr: SocketAddr,
        keys: watch::Receiver<GossipKeys>,
    ) -> Self {
        Self {
            node,
            addr,
            keys,
            probe_period: Duration::from_millis(500),
            probe_rtt: Duration::from_millis(150),
            indirect_probes: NonZeroUsize::new(3).expect("3 is not zero"),
            suspect_to_down: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(200),
            state_rebroadcast: Duration::from_secs(2),
            announce_interval: Duration::from_secs(1),
            fast_path: FastPathConfig::default(),
            generation: None,
        }
    }

    fn validate(&self) -> Result<(), MembershipError> {
        let reason = if self.node.is_empty() {
            "the node name is empty"
        } else if self.addr.ip().is_unspecified() {
            return Err(MembershipError::UnspecifiedAddress { addr: self.addr });
        } else if self.probe_rtt.is_zero() || self.probe_rtt >= self.probe_period {
            "the probe round trip must be above zero and below the probe period"
        } else if [
            self.suspect_to_down,
            self.gossip_interval,
            self.state_rebroadcast,
            self.announce_interval,
            self.fast_path.interval,
            self.fast_path.indirect_timeout,
        ]
        .iter()
        .any(Duration::is_zero)
        {
            "a period is zero"
        } else if self.fast_path.misses == 0 {
            "the fast path needs at least one miss before asking others"
        } else {
            return Ok(());
        };
        Err(MembershipError::Config { reason })
    }

    /// foca's configuration: ours, plus what makes recovery quick on a LAN.
    fn swim(&self) -> foca::Config {
        let mut swim = foca::Config::simple();
        swim.probe_period = self.probe_period;
        swim.probe_rtt = self.probe_rtt;
        swim.num_indirect_probes = self.indirect_probes;
        swim.suspect_to_down_after = self.suspect_to_down;
        swim.max_transmissions = NonZeroU8::new(10).expect("10 is not zero");
        // Renewed identities rejoin at once, so a down identity is remembered only to refuse
        // its stale news; the view shows a departed node as down this long.
        swim.remove_down_after = Some(Duration::from_secs(15 * 60));
        swim.max_packet_size = NonZeroUsize::new(1_400).expect("1400 is not zero");
        // A speaker wrongly declared down learns it and rejoins as a new generation.
        swim.notify_down_members = true;
        let one = NonZeroUsize::MIN;
        swim.periodic_announce = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(10),
            num_members: one,
        });
        swim.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: one,
        });
        swim.periodic_gossip = Some(foca::PeriodicParams {
            frequency: self.gossip_interval,
            num_members: self.indirect_probes,
        });
        swim
    }
}

/// What the caller keeps feeding the membership.
#[derive(Debug)]
pub(crate) struct Inputs {
    /// This speaker's own state; each change is gossiped at once.
    pub(crate) state: watch::Receiver<MemberState>,
    /// Where other speakers may be (the Nodes' InternalIPs at the gossip port).
    pub(crate) seeds: watch::Receiver<Vec<SocketAddr>>,
    /// The nodes this speaker must watch (the owners of the addresses it succeeds).
    pub(crate) watched: watch::Receiver<BTreeSet<String>>,
}

/// A running membership. Dropping it stops the task at once, silently (as a crash would);
/// [`Membership::leave`] stops it gracefully.
#[derive(Debug)]
pub(crate) struct Membership {
    addr: SocketAddr,
    view: watch::Receiver<View>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

impl Membership {
    /// Binds the gossip socket and starts the task (in the current tokio runtime).
    pub(crate) async fn start(
        config: Config,
        inputs: Inputs,
        metrics: Metrics,
    ) -> Result<Self, MembershipError> {
        config.validate()?;
        let socket =
            UdpSocket::bind(config.addr)
                .await
                .map_err(|source| MembershipError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = socket.local_addr().map_err(MembershipError::LocalAddr)?;
        let generation = match config.generation {
            Some(generation) => generation,
            None => generation_now()?,
        };
        let identity = Speaker {
            node: config.node.clone(),
            addr,
            generation,
        };
        let (commands, commands_rx) = mpsc::channel(1);
        let span = tracing::info_span!("l2_membership", node = %config.node, %addr, generation);
        let (driver, view) = Driver::new(Parts {
            identity,
            socket,
            settings: Settings {
                rebroadcast: config.state_rebroadcast,
                announce: config.announce_interval,
                swim: config.swim(),
            },
            fast: FastPath::new(config.fast_path.clone(), seeded_rng()?),
            rng: seeded_rng()?,
            keys: config.keys,
            inputs,
            metrics,
            commands: commands_rx,
        });
        let task = tokio::spawn(driver.run().instrument(span));
        Ok(Self {
            addr,
            view,
            commands,
            task,
        })
    }

    /// The gossip address the socket is bound to.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The view, updated on every change.
    pub(crate) fn view(&self) -> watch::Receiver<View> {
        self.view.clone()
    }

    /// Gossips that this speaker is leaving, tells every member it is down, and stops (on
    /// SIGTERM).
    pub(crate) async fn leave(self) -> Result<(), MembershipError> {
        let (reply, answer) = oneshot::channel();
        if self.commands.send(Command::Leave(reply)).await.is_err() {
            return Err(MembershipError::Stopped);
        }
        match answer.await {
            Ok(result) => result,
            Err(_closed) => Err(MembershipError::Stopped),
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn generation_now() -> Result<u64, MembershipError> {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(MembershipError::Clock)?;
    // Saturates in half a billion years.
    Ok(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

fn seeded_rng() -> Result<SmallRng, MembershipError> {
    let mut seed = [0_u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(MembershipError::Random)?;
    Ok(SmallRng::from_seed(seed))
}
