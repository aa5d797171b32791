//! The membership task: one UDP socket, foca (sans-IO SWIM), the fast path and the timers,
//! all driven from one tokio task. Datagrams come in, foca and the fast path say what to send
//! and when to wake them, and the view goes out on every change.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use foca::{Foca, Notification, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::fast::{Event, FastPath};
use super::identity::Speaker;
use super::metrics::Metrics;
use super::returns::Returns;
use super::state::{Announcement, Handler, MemberState, SharedBook};
use super::timers::Timers;
use super::view::{Sources, View};
use super::wire::{self, GossipKeys, Kind, Probe, Rejected};
use super::{Inputs, MembershipError};

type Swim = Foca<Speaker, PostcardCodec, SmallRng, Handler>;

/// The largest own state gossiped: with the SWIM header (two identities) it must fit foca's
/// 1,400-byte packets. About 15 interfaces with two addresses each.
const MAX_STATE_BYTES: usize = 1_000;

/// Enough for any UDP datagram, so none is cut short unnoticed.
const RECEIVE_BUFFER: usize = 65_536;

#[derive(Debug)]
pub(super) enum Command {
    Leave(oneshot::Sender<Result<(), MembershipError>>),
}

/// What foca asked for during the calls since the last flush.
#[derive(Debug, Default)]
struct Out {
    sends: Vec<(SocketAddr, Kind, Vec<u8>)>,
    timers: Vec<(Duration, Timer<Speaker>)>,
    notes: Vec<OwnedNotification<Speaker>>,
}

impl foca::Runtime<Speaker> for Out {
    fn notify(&mut self, notification: Notification<'_, Speaker>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: Speaker, data: &[u8]) {
        self.sends.push((to.addr, Kind::Swim, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<Speaker>, after: Duration) {
        self.timers.push((after, event));
    }
}

/// The task's own periods, and foca's configuration (changed for leaving).
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) rebroadcast: Duration,
    pub(super) announce: Duration,
    pub(super) swim: foca::Config,
}

/// The caller's inputs; `None` once the sender is gone (the last value stays).
struct Receivers {
    state: Option<watch::Receiver<MemberState>>,
    seeds: Option<watch::Receiver<Vec<SocketAddr>>>,
    watched: Option<watch::Receiver<BTreeSet<String>>>,
}

pub(super) struct Driver {
    swim: Swim,
    socket: UdpSocket,
    /// Re-read when the key files change: signs with the first, accepts either.
    keys: watch::Receiver<GossipKeys>,
    book: SharedBook,
    fast: FastPath,
    timers: Timers,
    out: Out,
    metrics: Metrics,
    view: watch::Sender<View>,
    settings: Settings,
    own_state: MemberState,
    version: u64,
    seeds: Vec<SocketAddr>,
    watched: BTreeSet<String>,
    inputs: Receivers,
    commands: mpsc::Receiver<Command>,
    /// Whether a rejoin is this speaker's return (see [`Returns`]).
    returns: Returns,
}

/// What [`Driver::new`] needs besides foca's parts.
pub(super) struct Parts {
    pub(super) identity: Speaker,
    pub(super) socket: UdpSocket,
    pub(super) keys: watch::Receiver<GossipKeys>,
    pub(super) settings: Settings,
    pub(super) fast: FastPath,
    pub(super) rng: SmallRng,
    pub(super) inputs: Inputs,
    pub(super) metrics: Metrics,
    pub(super) commands: mpsc::Receiver<Command>,
}

impl Driver {
    /// The driver, and the view (already holding this speaker).
    pub(super) fn new(parts: Parts) -> (Self, watch::Receiver<View>) {
        let Inputs {
            mut state,
            mut seeds,
            mut watched,
        } = parts.inputs;
        let book = SharedBook::new(parts.identity.node.clone());
        let handler = Handler { book: book.clone() };
        let swim = Foca::with_custom_broadcast(
            parts.identity,
            parts.settings.swim.clone(),
            parts.rng,
            PostcardCodec,
            handler,
        );
        let (view, view_rx) = watch::channel(View::default());
        let own_state = state.borrow_and_update().clone();
        let seeds_now = seeds.borrow_and_update().clone();
        let watched_now = watched.borrow_and_update().clone();
        let mut driver = Self {
            swim,
            socket: parts.socket,
            keys: parts.keys,
            book,
            fast: parts.fast,
            timers: Timers::default(),
            out: Out::default(),
            metrics: parts.metrics,
            view,
            settings: parts.settings,
            own_state,
            version: 0,
            seeds: seeds_now,
            watched: watched_now,
            inputs: Receivers {
                state: Some(state),
                seeds: Some(seeds),
                watched: Some(watched),
            },
            commands: parts.commands,
            returns: Returns::default(),
        };
        driver.publish();
        (driver, view_rx)
    }

    /// Runs until asked to leave, or until the handle is dropped.
    pub(super) async fn run(mut self) {
        self.publish_own(true);
        self.announce_to_seeds(false);
        self.flush().await;
        // Both were just done: their first ticks are one period away.
        let mut rebroadcast = periodic(self.settings.rebroadcast);
        let mut announce = periodic(self.settings.announce);
        let mut buf = vec![0_u8; RECEIVE_BUFFER];
        loop {
            let wake = self.next_wakeup();
            tokio::select! {
                command = self.commands.recv() => {
                    if let Some(Command::Leave(reply)) = command {
                        let result = self.leave().await;
                        // The caller may have stopped waiting: nothing left to tell.
                        drop(reply.send(result));
                    }
                    return;
                }
                received = self.socket.recv_from(&mut buf) => self.received(received, &buf),
                () = sleep_until(wake) => self.wake(),
                _ = rebroadcast.tick() => self.publish_own(false),
                _ = announce.tick() => self.announce_to_seeds(true),
                open = changed(&mut self.inputs.state) => self.state_changed(open),
                open = changed(&mut self.inputs.seeds) => self.seeds_changed(open),
                open = changed(&mut self.inputs.watched) => self.watched_changed(open),
            }
            // A wake-up later than the others need to declare us down is a stall (a stopped
            // process, a frozen machine), whichever event woke the loop.
            if let Some(due) = wake {
                let stall = self.settings.swim.suspect_to_down_after;
                self.returns.woke(Instant::now(), due, stall);
            }
            self.flush().await;
            self.publish();
        }
    }

    fn next_wakeup(&self) -> Option<Instant> {
        match (self.timers.next_at(), self.fast.next_wakeup()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn received(&mut self, received: io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        let (len, from) = match received {
            Ok(received) => received,
            Err(error) => {
                warn!(error = %error, "Cannot read the gossip socket.");
                return;
            }
        };
        let opened = wire::open(&self.keys.borrow(), &buf[..len]);
        match opened {
            Err(why) => {
                self.metrics.rejected(why);
                debug!(%from, len, reason = why.label(), "Dropped a gossip datagram.");
            }
            Ok((Kind::Swim, payload)) => {
                if let Err(error) = self.swim.handle_data(payload, &mut self.out) {
                    if is_malformed(&error) {
                        self.metrics.rejected(Rejected::Malformed);
                    }
                    debug!(%from, error = %error, "SWIM refused a message.");
                }
            }
            Ok((Kind::Probe, payload)) => match Probe::decode(payload) {
                Ok(probe) => self.probe(from, probe),
                Err(error) => self.malformed(from, &error),
            },
            Ok((Kind::State, payload)) => match wire::decode_exactly::<Announcement>(payload) {
                Ok(announcement) => {
                    self.book.with(|book| book.accept(announcement, false));
                }
                Err(error) => self.malformed(from, &error),
            },
        }
    }

    fn malformed(&self, from: SocketAddr, error: &wire::DecodeError) {
        self.metrics.rejected(Rejected::Malformed);
        debug!(%from, error = %error, "Dropped a gossip datagram.");
    }

    /// Answers the fast path's messages (others' probes through us) and takes its answers.
    fn probe(&mut self, from: SocketAddr, probe: Probe) {
        let reply = match probe {
            Probe::Ping { nonce } => (from, Probe::Ack { nonce }),
            Probe::PingReq { nonce, target } => (
                target,
                Probe::IndirectPing {
                    nonce,
                    origin: from,
                },
            ),
            Probe::IndirectPing { nonce, origin } => (from, Probe::IndirectAck { nonce, origin }),
            Probe::IndirectAck { nonce, origin } => (origin, Probe::ForwardedAck { nonce }),
            Probe::Ack { nonce } | Probe::ForwardedAck { nonce } => {
                if let Some(event) = self.fast.acknowledged(nonce) {
                    self.fast_event(event);
                }
                return;
            }
        };
        self.fast_event(Event::Send {
            to: reply.0,
            probe: reply.1,
        });
    }

    /// Hands foca its due timers and lets the fast path probe.
    fn wake(&mut self) {
        let now = Instant::now();
        while let Some(timer) = self.timers.pop_due(now) {
            let forgotten = match &timer {
                Timer::RemoveDown(id) => Some(id.node.clone()),
                _ => None,
            };
            if let Err(error) = self.swim.handle_timer(timer, &mut self.out) {
                debug!(error = %error, "SWIM failed a timer.");
            }
            if let Some(node) = forgotten {
                let known = (self.swim.iter_membership_state()).any(|m| m.id().node == node);
                if !known {
                    self.book.with(|book| book.forget(&node));
                }
            }
        }
        let suspected: BTreeSet<&str> = self.fast.suspected().collect();
        let helpers: Vec<SocketAddr> = (self.swim.iter_members())
            .filter(|m| !suspected.contains(m.id().node.as_str()))
            .map(|m| m.id().addr)
            .collect();
        for event in self.fast.poll(now, &helpers) {
            self.fast_event(event);
        }
    }

    fn fast_event(&mut self, event: Event) {
        match event {
            Event::Send { to, probe } => self.out.sends.push((to, Kind::Probe, probe.encode())),
            Event::Missed { node } => {
                self.metrics.probe_failures.inc();
                debug!(%node, "A watched node missed a probe.");
            }
            Event::Suspected { node, detection } => {
                self.metrics.detected(detection);
                let detection_ms = u64::try_from(detection.as_millis()).unwrap_or(u64::MAX);
                info!(%node, detection_ms, "A watched node stopped answering: suspected.");
                self.suspect_in_swim(&node);
            }
            Event::Cleared { node } => info!(%node, "A suspected node answers again."),
        }
    }

    /// Tells SWIM: it gossips the suspicion, the node refutes it if it is alive, and the
    /// others' own probes declare it down if it is not (foca starts the countdown to down
    /// only for its own probes' suspects).
    fn suspect_in_swim(&mut self, node: &str) {
        let Some(member) = self.swim.iter_members().find(|m| m.id().node == node) else {
            return;
        };
        let suspect = foca::Member::new(
            member.id().clone(),
            member.incarnation(),
            foca::State::Suspect,
        );
        if let Err(error) = (self.swim).apply_many(std::iter::once(suspect), true, &mut self.out) {
            debug!(%node, error = %error, "SWIM refused the suspicion.");
        }
    }

    fn state_changed(&mut self, open: bool) {
        match (open, &mut self.inputs.state) {
            (true, Some(state)) => {
                self.own_state = state.borrow_and_update().clone();
                self.publish_own(true);
            }
            _ => self.inputs.state = None,
        }
    }

    fn seeds_changed(&mut self, open: bool) {
        match (open, &mut self.inputs.seeds) {
            (true, Some(seeds)) => {
                self.seeds = seeds.borrow_and_update().clone();
                self.announce_to_seeds(false);
            }
            _ => self.inputs.seeds = None,
        }
    }

    fn watched_changed(&mut self, open: bool) {
        match (open, &mut self.inputs.watched) {
            (true, Some(watched)) => self.watched = watched.borrow_and_update().clone(),
            _ => self.inputs.watched = None,
        }
    }

    fn announcement(&self) -> Announcement {
        Announcement {
            node: self.swim.identity().node.clone(),
            generation: self.swim.identity().generation,
            version: self.version,
            state: self.own_state.clone(),
        }
    }

    /// Gossips our state: a change (`changed`) at once to a few members, and periodically
    /// again with the rest of the traffic so that members that joined since learn it.
    fn publish_own(&mut self, changed: bool) {
        if changed {
            self.version += 1;
        }
        let data = self.announcement().encode();
        if data.len() > MAX_STATE_BYTES {
            warn!(
                len = data.len(),
                max = MAX_STATE_BYTES,
                "This speaker's state is too large to gossip; the others keep the previous one."
            );
            return;
        }
        if let Err(error) = self.swim.add_broadcast(&data) {
            warn!(error = %error, "SWIM refused this speaker's state.");
            return;
        }
        if changed && let Err(error) = self.swim.broadcast(&mut self.out) {
            debug!(error = %error, "SWIM failed to broadcast this speaker's state.");
        }
    }

    fn send_own_state(&mut self, to: SocketAddr) {
        let data = self.announcement().encode();
        self.out.sends.push((to, Kind::State, data));
    }

    /// Announces to the seeds that are not members yet (with `only_if_alone`: only while no
    /// other member is known).
    fn announce_to_seeds(&mut self, only_if_alone: bool) {
        if only_if_alone && self.swim.num_members() > 0 {
            return;
        }
        let own = self.swim.identity().addr;
        let known: BTreeSet<SocketAddr> = self.swim.iter_members().map(|m| m.id().addr).collect();
        let seeds: Vec<SocketAddr> = (self.seeds.iter().copied())
            .filter(|seed| *seed != own && !known.contains(seed))
            .collect();
        for seed in seeds {
            if let Err(error) = self.swim.announce(Speaker::seed(seed), &mut self.out) {
                debug!(%seed, error = %error, "SWIM failed to announce to a seed.");
            }
        }
    }

    fn notified(&mut self, note: OwnedNotification<Speaker>) {
        match note {
            OwnedNotification::MemberUp(id) => {
                info!(node = %id.node, addr = %id.addr, "A speaker joined.");
                self.send_own_state(id.addr);
            }
            OwnedNotification::MemberDown(id) => {
                info!(node = %id.node, addr = %id.addr, "A speaker is down.");
            }
            OwnedNotification::Rename(old, new) => {
                debug!(
                    node = %new.node,
                    addr = %new.addr,
                    old_generation = old.generation,
                    generation = new.generation,
                    "A speaker restarted."
                );
                self.send_own_state(new.addr);
            }
            OwnedNotification::Active => info!("Joined the speakers' membership."),
            OwnedNotification::Idle => info!("No other speaker is alive."),
            OwnedNotification::Defunct => warn!("This speaker is out of the membership."),
            OwnedNotification::Rejoin(id) => {
                match self.returns.rejoined(Instant::now()) {
                    Some(why) => {
                        info!(
                            generation = id.generation,
                            why = why.label(),
                            "Declared down by the others: rejoined as a new generation, returning: settles before taking addresses back."
                        );
                        // The first state of the new generation already says so, before
                        // the caller hears of the return: no member sees it settled meanwhile.
                        self.own_state.settling = true;
                    }
                    None => info!(
                        generation = id.generation,
                        "Declared down by the others: rejoined as a new generation; the others were the ones cut off."
                    ),
                }
                self.publish_own(true);
            }
        }
    }

    /// Schedules foca's timers, reacts to its notifications, then sends everything.
    async fn flush(&mut self) {
        loop {
            let now = Instant::now();
            for (after, timer) in std::mem::take(&mut self.out.timers) {
                self.timers.push(now + after, timer);
            }
            let notes = std::mem::take(&mut self.out.notes);
            if notes.is_empty() {
                break;
            }
            for note in notes {
                self.notified(note);
            }
        }
        for (to, kind, payload) in std::mem::take(&mut self.out.sends) {
            let datagram = wire::seal(&self.keys.borrow(), kind, &payload);
            if let Err(error) = self.socket.send_to(&datagram, to).await {
                debug!(%to, error = %error, "Cannot send a gossip datagram.");
            }
        }
    }

    /// Points the fast path at the watched nodes' current addresses and publishes the view
    /// if it changed.
    fn publish(&mut self) {
        // A node this speaker suspects stays watched while SWIM still counts it active, even
        // when the caller no longer asks: taking over its addresses made this speaker their
        // owner, which ends its watch, and clearing the suspicion then would hand them back to
        // a dead node until SWIM declares it down (a second of flapping).
        let suspected: BTreeSet<String> = self.fast.suspected().map(str::to_owned).collect();
        let mut wanted: BTreeMap<String, (u64, SocketAddr)> = BTreeMap::new();
        for member in self.swim.iter_members() {
            let id = member.id();
            if self.watched.contains(&id.node) || suspected.contains(&id.node) {
                let newest = wanted.get(&id.node).is_none_or(|(g, _)| id.generation > *g);
                if newest {
                    wanted.insert(id.node.clone(), (id.generation, id.addr));
                }
            }
        }
        let wanted = wanted.into_iter().map(|(n, (_, a))| (n, a)).collect();
        for event in self.fast.set_targets(&wanted, Instant::now()) {
            self.fast_event(event);
        }
        self.observe_isolation();
        let mut view = self.book.with(|book| {
            Sources {
                own: self.swim.identity(),
                own_state: &self.own_state,
                members: self.swim.iter_membership_state(),
                book,
                suspected: self.fast.suspected().collect(),
            }
            .view()
        });
        view.returns = self.returns.count();
        self.metrics.view(&view);
        self.view.send_if_modified(|current| {
            let modified = *current != view;
            if modified {
                *current = view;
            }
            modified
        });
    }

    /// Counts the other speakers SWIM knows of (or the seeds name, if more) and those of them
    /// not down, for [`Returns`].
    fn observe_isolation(&mut self) {
        let own = self.swim.identity();
        let mut known = BTreeSet::new();
        let mut active = BTreeSet::new();
        for member in self.swim.iter_membership_state() {
            let node = member.id().node.as_str();
            if node == own.node || node.is_empty() {
                continue;
            }
            known.insert(node);
            if member.state() != foca::State::Down {
                active.insert(node);
            }
        }
        let seeds = (self.seeds.iter()).filter(|s| **s != own.addr).count();
        let expected = known.len().max(seeds);
        self.returns.observe(Instant::now(), expected, active.len());
    }

    /// Leaves: tells every member (not only the usual few) that we are leaving, then that we
    /// are down.
    async fn leave(&mut self) -> Result<(), MembershipError> {
        let everyone = NonZeroUsize::new(self.swim.num_members()).unwrap_or(NonZeroUsize::MIN);
        let mut swim = self.settings.swim.clone();
        swim.num_indirect_probes = everyone;
        self.swim.set_config(swim).map_err(MembershipError::Leave)?;
        self.own_state.leaving = true;
        self.publish_own(true);
        self.swim
            .leave_cluster(&mut self.out)
            .map_err(MembershipError::Leave)?;
        self.flush().await;
        info!(members = everyone.get(), "Left the speakers' membership.");
        Ok(())
    }
}

/// Errors that say the datagram, not the membership, was wrong.
fn is_malformed(error: &foca::Error) -> bool {
    matches!(
        error,
        foca::Error::MalformedPacket
            | foca::Error::Decode(_)
            | foca::Error::DataTooBig
            | foca::Error::CustomBroadcast(_)
    )
}

fn periodic(period: Duration) -> tokio::time::Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether the input changed (`false`: its sender is gone); never resolves once it is gone.
async fn changed<T>(input: &mut Option<watch::Receiver<T>>) -> bool {
    match input {
        Some(input) => input.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
