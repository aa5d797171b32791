//! The responder of one interface: answers ARP and Neighbor Solicitations for the addresses
//! this node owns on it, sends their gratuitous announcements on schedule, probes an address
//! before its first announcement, and reports other MACs claiming them. What to answer for
//! comes in as a [`Duty`]; every decision about a frame is the core's (`l2::respond`). The
//! frames are read by the interface's reply thread (`l2::fastpath`), which answers plain
//! requests itself from the addresses this responder publishes to it and hands the rest here.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use baremetal_ccm_core::l2::frame::{Frame, Mac};
use baremetal_ccm_core::l2::respond::{self, ClaimKind, Decision, Interface};
use baremetal_ccm_core::l2::schedule::{Cadence, Schedule};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::fastpath::{FastPath, FastPathError, Handed, target};
use super::inkernel::{self, InKernel, InKernelError};
use super::socket::{PacketSocket, Protocol, SocketError, SolicitedNodeGroups};

/// How the replies are sent: by the reply thread, at real-time priority or not, and in the
/// kernel where it can.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplyOptions {
    /// The reply thread asks for real-time priority (`--l2-reply-realtime`).
    pub(crate) realtime: bool,
    /// Plain requests are answered by an eBPF program on the interface's tc ingress
    /// (`--l2-reply-in-kernel`); the reply thread answers whatever it leaves.
    pub(crate) in_kernel: bool,
}

/// What the responder of an interface answers for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Duty {
    pub(crate) addresses: BTreeMap<IpAddr, Task>,
}

/// One address on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Task {
    pub(crate) cadence: Cadence,
    /// Probe before the first announcement (an address no speaker has announced yet).
    pub(crate) probe: bool,
}

/// How long a probed address waits for an answer before it is announced, and how many
/// probes go out meanwhile. RFC 5227's host timings (three probes 1–2 s apart, then 2 s)
/// would keep a new Service dark for 5 s or more; a bridged LAN answers within milliseconds.
const PROBES: u32 = 3;
const PROBE_INTERVAL: Duration = Duration::from_millis(200);
const PROBE_WAIT: Duration = Duration::from_millis(1000);
/// Another MAC claiming an owned address is answered with one more burst, at most once per
/// this long per address (RFC 5227's DEFEND_INTERVAL): enough to win the caches back, never
/// a storm against a machine that keeps claiming it.
const DEFEND_INTERVAL: Duration = Duration::from_secs(10);

/// What the responder tells its supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Another MAC claims an address we own or probe.
    Conflict {
        interface: String,
        address: IpAddr,
        mac: Mac,
        kind: ClaimKind,
        /// We were probing it: it has not been announced.
        while_probing: bool,
    },
    /// The first round for `address` went out on `interface`.
    Announced { interface: String, address: IpAddr },
}

/// Counters the responder keeps (the supervisor exports them).
pub(crate) trait Counters: Send + Sync {
    fn frame(&self, protocol: Protocol, outcome: &'static str);
    /// `count` frames at once (what the in-kernel reply answered since the last count).
    fn frames(&self, protocol: Protocol, outcome: &'static str, count: u64);
    fn announcement(&self, address: IpAddr);
}

/// Errors that end a responder (the supervisor restarts it when the interface is still
/// there).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResponderError {
    #[error("interface {interface}")]
    Socket {
        interface: String,
        #[source]
        source: SocketError,
    },
    #[error("interface {interface}")]
    FastPath {
        interface: String,
        #[source]
        source: FastPathError,
    },
}

impl ResponderError {
    /// Whether the kernel refused a socket for want of `CAP_NET_RAW`.
    pub(crate) fn needs_net_raw(&self) -> bool {
        match self {
            ResponderError::Socket { source, .. } => source.needs_net_raw(),
            ResponderError::FastPath { .. } => false,
        }
    }
}

/// The state of one address on this interface.
#[derive(Debug)]
enum Phase {
    Probing {
        sent: u32,
        next: Instant,
        until: Instant,
    },
    Owned(Schedule),
    /// A machine answered our probe: never answered for nor announced, until the duty drops
    /// the address and gives it again, or keeps it without a probe (the claimant was a
    /// speaker).
    Conflicted,
}

/// The responder of one interface.
pub(crate) struct Responder {
    interface: Interface,
    arp: Arc<PacketSocket>,
    ndp: Arc<PacketSocket>,
    fast: FastPath,
    /// The in-kernel reply, when asked for and available.
    in_kernel: Option<InKernel>,
    /// Why the in-kernel reply was asked for and is not available.
    in_kernel_refused: Option<String>,
    groups: SolicitedNodeGroups,
    phases: BTreeMap<IpAddr, (Task, Phase)>,
    origin: Instant,
    defended: BTreeMap<IpAddr, Instant>,
    reports: mpsc::UnboundedSender<Report>,
    counters: Arc<dyn Counters>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (f.debug_struct("Responder"))
            .field("interface", &self.interface.name)
            .field("addresses", &self.phases.len())
            .finish_non_exhaustive()
    }
}

impl Responder {
    /// Opens the sockets of `interface` (index `ifindex`) and starts its reply thread, which
    /// answers nothing until [`run`](Self::run) publishes the duty.
    pub(crate) fn open(
        interface: Interface,
        ifindex: u32,
        reports: mpsc::UnboundedSender<Report>,
        counters: Arc<dyn Counters>,
        options: ReplyOptions,
    ) -> Result<Self, ResponderError> {
        let wrap = |source| ResponderError::Socket {
            interface: interface.name.clone(),
            source,
        };
        let arp = Arc::new(PacketSocket::open(ifindex, Protocol::Arp).map_err(wrap)?);
        let ndp = Arc::new(PacketSocket::open(ifindex, Protocol::Ndp).map_err(wrap)?);
        let groups = SolicitedNodeGroups::new(ifindex).map_err(wrap)?;
        let fast = FastPath::start(
            interface.clone(),
            arp.clone(),
            ndp.clone(),
            counters.clone(),
            options.realtime,
        )
        .map_err(|source| ResponderError::FastPath {
            interface: interface.name.clone(),
            source,
        })?;
        let (in_kernel, in_kernel_refused) = if options.in_kernel {
            match InKernel::attach(interface.mac, ifindex) {
                Ok(attached) => {
                    tracing::info!(interface = %interface.name, "answering plain ARP and NDP requests in the kernel (tc ingress)");
                    (Some(attached), None)
                }
                Err(error) => {
                    let message = crate::error_chain(&error);
                    tracing::warn!(interface = %interface.name, error = %message, "the reply thread answers everything: no in-kernel reply");
                    (None, Some(message))
                }
            }
        } else {
            (None, None)
        };
        Ok(Responder {
            interface,
            arp,
            ndp,
            fast,
            in_kernel,
            in_kernel_refused,
            groups,
            phases: BTreeMap::new(),
            origin: Instant::now(),
            defended: BTreeMap::new(),
            reports,
            counters,
        })
    }

    /// Why the in-kernel reply, asked for, is not available on this interface.
    pub(crate) fn in_kernel_refused(&self) -> Option<&str> {
        self.in_kernel_refused.as_deref()
    }

    /// Serves `duty` until it ends (the sender is dropped) or a socket fails. The reply
    /// thread stops when the responder is dropped (also when this future is).
    pub(crate) async fn run(
        mut self,
        mut duty: watch::Receiver<Duty>,
    ) -> Result<(), ResponderError> {
        let current = duty.borrow_and_update().clone();
        self.apply(&current)?;
        let mut refresh = tokio::time::interval(inkernel::REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                _ = refresh.tick(), if self.in_kernel.is_some() => self.keep_in_kernel(),
                changed = duty.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let current = duty.borrow_and_update().clone();
                    self.apply(&current)?;
                }
                handed = self.fast.handed() => match handed {
                    Ok(Handed::Frame { protocol, bytes }) => self.handle(protocol, &bytes).await?,
                    Ok(Handed::Failed(source)) => return Err(self.error(source)),
                    Err(source) => {
                        return Err(ResponderError::FastPath {
                            interface: self.interface.name.clone(),
                            source,
                        });
                    }
                },
                () = sleep_until(deadline) => self.on_time().await?,
            }
        }
    }

    fn error(&self, source: SocketError) -> ResponderError {
        ResponderError::Socket {
            interface: self.interface.name.clone(),
            source,
        }
    }

    /// Takes on the addresses of `duty` and drops the others.
    fn apply(&mut self, duty: &Duty) -> Result<(), ResponderError> {
        let now = Instant::now();
        let gone: Vec<IpAddr> = (self.phases.keys())
            .filter(|a| !duty.addresses.contains_key(a))
            .copied()
            .collect();
        for address in &gone {
            self.phases.remove(address);
        }
        // The reply thread lets go of them before anything else happens.
        self.publish();
        for address in gone {
            if let IpAddr::V6(v6) = address {
                let group = baremetal_ccm_core::l2::frame::ndp::solicited_node(v6);
                self.groups
                    .leave(group)
                    .map_err(|source| self.error(source))?;
            }
        }
        for (address, task) in &duty.addresses {
            if let Some((current, phase)) = self.phases.get_mut(address) {
                current.cadence = task.cadence;
                // The claimant of a probed address turned out to be a speaker: the address
                // was announced before, no probe is due, it is ours.
                if matches!(phase, Phase::Conflicted) && !task.probe {
                    *phase = Phase::Owned(Schedule::taken(
                        task.cadence,
                        now - self.origin,
                        seed_of(*address),
                    ));
                }
                continue;
            }
            if let IpAddr::V6(v6) = address {
                let group = baremetal_ccm_core::l2::frame::ndp::solicited_node(*v6);
                self.groups
                    .join(group)
                    .map_err(|source| self.error(source))?;
            }
            let phase = if task.probe {
                tracing::info!(interface = %self.interface.name, %address, "probing the address before its first announcement");
                Phase::Probing {
                    sent: 0,
                    next: now,
                    until: now + PROBE_WAIT,
                }
            } else {
                Phase::Owned(self.schedule(*address, task.cadence, now))
            };
            self.phases.insert(*address, (*task, phase));
        }
        self.publish();
        Ok(())
    }

    /// Keeps the in-kernel reply's deadline ahead and counts what it answered; on a failure,
    /// detaches it and leaves everything to the reply thread.
    fn keep_in_kernel(&mut self) {
        let Some(in_kernel) = self.in_kernel.as_mut() else {
            return;
        };
        let kept = in_kernel.refresh().and_then(|()| in_kernel.answered());
        match kept {
            Ok((arp, ndp)) => {
                self.counters
                    .frames(Protocol::Arp, "replied_in_kernel", arp);
                self.counters
                    .frames(Protocol::Ndp, "replied_in_kernel", ndp);
            }
            Err(error) => self.give_up_in_kernel(&error),
        }
    }

    fn give_up_in_kernel(&mut self, error: &InKernelError) {
        let message = crate::error_chain(error);
        tracing::error!(interface = %self.interface.name, error = %message, "the in-kernel reply failed: detached, the reply thread answers everything");
        self.in_kernel = None;
        self.in_kernel_refused = Some(message);
    }

    /// Tells the reply thread and the in-kernel reply what they may act on: the addresses not
    /// conflicted, and of those the owned ones (probe over) to answer for.
    fn publish(&mut self) {
        let mut ours = HashSet::new();
        let mut answerable = HashSet::new();
        for (address, (_, phase)) in &self.phases {
            match phase {
                Phase::Owned(_) => {
                    ours.insert(*address);
                    answerable.insert(*address);
                }
                Phase::Probing { .. } => {
                    ours.insert(*address);
                }
                Phase::Conflicted => {}
            }
        }
        if let Some(in_kernel) = self.in_kernel.as_mut()
            && let Err(error) = in_kernel.publish(&answerable)
        {
            self.give_up_in_kernel(&error);
        }
        self.fast.publish(ours, answerable);
    }

    fn schedule(&self, address: IpAddr, cadence: Cadence, now: Instant) -> Schedule {
        Schedule::taken(cadence, now - self.origin, seed_of(address))
    }

    fn next_deadline(&self) -> Option<Instant> {
        (self.phases.values())
            .filter_map(|(_, phase)| match phase {
                Phase::Probing { sent, next, until } => {
                    Some(if *sent < PROBES { *next } else { *until })
                }
                Phase::Owned(schedule) => schedule.next().map(|at| self.origin + at),
                Phase::Conflicted => None,
            })
            .min()
    }

    /// Sends what is due: probes, the end of a probe (the address is then owned), rounds.
    async fn on_time(&mut self) -> Result<(), ResponderError> {
        let now = Instant::now();
        let mut sends: Vec<(IpAddr, Vec<Vec<u8>>, bool)> = Vec::new();
        let mut probed = Vec::new();
        for (address, (task, phase)) in &mut self.phases {
            match phase {
                Phase::Probing { sent, next, until } => {
                    if *sent < PROBES && *next <= now {
                        *sent += 1;
                        *next = now + PROBE_INTERVAL;
                        let probe = respond::first_probe(*address, &self.interface);
                        sends.push((*address, vec![probe], false));
                    } else if *sent >= PROBES && *until <= now {
                        probed.push((*address, task.cadence));
                    }
                }
                Phase::Conflicted => {}
                Phase::Owned(schedule) => {
                    if schedule.due(now - self.origin) {
                        let rounds = respond::announcement_round(
                            *address,
                            std::slice::from_ref(&self.interface),
                        );
                        let frames = rounds.into_iter().flat_map(|a| a.frames).collect();
                        sends.push((*address, frames, true));
                    }
                }
            }
        }
        if !probed.is_empty() {
            for (address, cadence) in &probed {
                let schedule = self.schedule(*address, *cadence, now);
                if let Some((_, phase)) = self.phases.get_mut(address) {
                    *phase = Phase::Owned(schedule);
                }
            }
            self.publish();
        }
        for (address, _) in probed {
            // Announce at once rather than at the next wake-up.
            let rounds =
                respond::announcement_round(address, std::slice::from_ref(&self.interface));
            let frames = rounds.into_iter().flat_map(|a| a.frames).collect();
            sends.push((address, frames, true));
            if let Some((_, Phase::Owned(schedule))) = self.phases.get_mut(&address) {
                schedule.due(now - self.origin);
            }
        }
        for (address, frames, announcement) in sends {
            self.send(address, &frames, announcement).await?;
        }
        Ok(())
    }

    async fn send(
        &mut self,
        address: IpAddr,
        frames: &[Vec<u8>],
        announcement: bool,
    ) -> Result<(), ResponderError> {
        // Ownership re-checked before every send: the duty may have changed while we waited,
        // or a probe answered.
        if matches!(
            self.phases.get(&address),
            None | Some((_, Phase::Conflicted))
        ) {
            return Ok(());
        }
        let socket = match address {
            IpAddr::V4(_) => &self.arp,
            IpAddr::V6(_) => &self.ndp,
        };
        for frame in frames {
            socket
                .send(frame)
                .await
                .map_err(|source| self.error(source))?;
        }
        if announcement {
            self.counters.announcement(address);
            let first = matches!(self.phases.get(&address),
                Some((_, Phase::Owned(s))) if s.rounds_sent() == 1);
            if first {
                tracing::info!(interface = %self.interface.name, %address, "announced");
                // The supervisor may be gone at shutdown: nothing to tell then.
                let _closed = self.reports.send(Report::Announced {
                    interface: self.interface.name.clone(),
                    address,
                });
            }
        }
        Ok(())
    }

    /// Answers or reports one frame the reply thread handed over.
    async fn handle(&mut self, protocol: Protocol, bytes: &[u8]) -> Result<(), ResponderError> {
        let frame = match Frame::parse(bytes) {
            Ok(frame) => frame,
            Err(error) => {
                let decision = if error.is_unsupported() {
                    respond::Ignored::Unsupported(error)
                } else {
                    respond::Ignored::Malformed(error)
                };
                self.counters.frame(protocol, decision.label());
                return Ok(());
            }
        };
        let phases = &self.phases;
        let ours = |a: IpAddr| matches!(phases.get(&a), Some((_, phase)) if !matches!(phase, Phase::Conflicted));
        let decision = respond::decide(&frame, &self.interface, &ours);
        match decision {
            Decision::Reply(reply) => {
                if target(&frame).is_some_and(|t| self.probing(t)) {
                    // Not ours until the probe is over.
                    self.counters.frame(protocol, "probing");
                    return Ok(());
                }
                let socket = match protocol {
                    Protocol::Arp => &self.arp,
                    Protocol::Ndp => &self.ndp,
                };
                socket
                    .send(&reply)
                    .await
                    .map_err(|source| self.error(source))?;
                self.counters.frame(protocol, "replied");
            }
            Decision::Conflict { address, mac, kind } => {
                self.counters.frame(protocol, "conflict");
                let while_probing = self.probing(address);
                if while_probing && let Some((_, phase)) = self.phases.get_mut(&address) {
                    *phase = Phase::Conflicted;
                    self.publish();
                }
                self.defend(address);
                tracing::warn!(interface = %self.interface.name, %address, %mac, kind = kind.label(), while_probing, "another MAC claims an address of ours");
                let _closed = self.reports.send(Report::Conflict {
                    interface: self.interface.name.clone(),
                    address,
                    mac,
                    kind,
                    while_probing,
                });
            }
            Decision::Ignore(reason) => self.counters.frame(protocol, reason.label()),
        }
        Ok(())
    }

    /// Sends the burst for `address` again (if owned, and not within the defend interval).
    fn defend(&mut self, address: IpAddr) {
        let now = Instant::now();
        if (self.defended.get(&address)).is_some_and(|at| now < *at + DEFEND_INTERVAL) {
            return;
        }
        if let Some((_, Phase::Owned(schedule))) = self.phases.get_mut(&address) {
            schedule.restart(now - self.origin);
            self.defended.insert(address, now);
        }
    }

    fn probing(&self, address: IpAddr) -> bool {
        matches!(self.phases.get(&address), Some((_, Phase::Probing { .. })))
    }
}

/// Spreads the refresh rounds of different addresses.
fn seed_of(address: IpAddr) -> u64 {
    match address {
        IpAddr::V4(a) => u64::from(a.to_bits()),
        IpAddr::V6(a) => a.to_bits() as u64,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
