//! The reply fast path of one interface: a thread of its own that waits on the interface's
//! ARP and NDP packet sockets and answers a request for an answerable address at once, with a
//! plain send, without going through the async runtime (its wake-ups and task switches cost
//! more than the reply itself). Everything else a frame may call for (a conflict, a request
//! for an address being probed, a reply that must wait for room) goes to the async responder
//! as it came; the decisions stay the core's (`l2::respond`).

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use baremetal_ccm_core::l2::frame::{Frame, NdpMessage, Payload};
use baremetal_ccm_core::l2::respond::{self, Decision, Interface};
use tokio::sync::mpsc;

use super::responder::Counters;
use super::socket::{self, PacketSocket, Protocol, SocketError};

/// How long the thread keeps looking for the next frame after one before it blocks again
/// (zero: it blocks at once). See docs/benchmarks.md, "Layer-2 reply latency".
const SPIN: Duration = Duration::ZERO;

/// Frames handed to the async responder and not yet taken: the thread waits beyond that
/// (the socket's receive buffer then holds the rest, as it did before).
const HANDED_OVER: usize = 256;

/// The addresses the thread may act on, as the async responder last published them.
#[derive(Debug, Default)]
struct View {
    /// Owned or being probed (not conflicted): what a claim by another MAC is a conflict for.
    ours: HashSet<IpAddr>,
    /// Owned, probe over: what a request is answered for.
    answerable: HashSet<IpAddr>,
}

/// What the thread hands to the async responder.
#[derive(Debug)]
pub(crate) enum Handed {
    /// A frame that needs more than a plain reply, as it was received.
    Frame { protocol: Protocol, bytes: Vec<u8> },
    /// A socket failed: the thread has ended.
    Failed(SocketError),
}

/// Why the fast path could not start or ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FastPathError {
    #[error("creating the reply thread's wake-up pair")]
    WakeUp(#[source] std::io::Error),
    #[error("starting the reply thread")]
    Spawn(#[source] std::io::Error),
    #[error("the reply thread ended without saying why")]
    Ended,
}

/// The reply thread of one interface. Dropping it stops the thread and waits for it.
#[derive(Debug)]
pub(crate) struct FastPath {
    view: Arc<RwLock<View>>,
    handed: Option<mpsc::Receiver<Handed>>,
    /// Dropped to wake the thread and stop it.
    stop: Option<UnixStream>,
    thread: Option<JoinHandle<()>>,
}

impl FastPath {
    /// Starts the thread `l2-reply-<interface>` on the two sockets. It answers nothing
    /// until the first [`publish`](Self::publish).
    pub(crate) fn start(
        interface: Interface,
        arp: Arc<PacketSocket>,
        ndp: Arc<PacketSocket>,
        counters: Arc<dyn Counters>,
        realtime: bool,
    ) -> Result<Self, FastPathError> {
        let (stop, stopped) = UnixStream::pair().map_err(FastPathError::WakeUp)?;
        let (hand, handed) = mpsc::channel(HANDED_OVER);
        let view = Arc::new(RwLock::new(View::default()));
        let worker = Worker {
            name: format!("l2-reply-{}", interface.name),
            interface,
            arp,
            ndp,
            stopped,
            view: view.clone(),
            hand,
            counters,
            realtime,
        };
        let thread = (std::thread::Builder::new().name(worker.name.clone()))
            .spawn(move || worker.run())
            .map_err(FastPathError::Spawn)?;
        Ok(FastPath {
            view,
            handed: Some(handed),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Replaces what the thread may act on. Once this returns, the thread sends no reply for
    /// an address left out of `answerable`: a reply is decided and sent under the read lock
    /// that this write waits for.
    pub(crate) fn publish(&self, ours: HashSet<IpAddr>, answerable: HashSet<IpAddr>) {
        let mut view = self.view.write().unwrap_or_else(PoisonError::into_inner);
        *view = View { ours, answerable };
    }

    /// The next frame or failure the thread hands over.
    pub(crate) async fn handed(&mut self) -> Result<Handed, FastPathError> {
        let handed = (self.handed.as_mut()).expect("the receiver is only taken when dropped");
        handed.recv().await.ok_or(FastPathError::Ended)
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        // The receiver first: a thread waiting for room in the channel is released.
        drop(self.handed.take());
        drop(self.stop.take());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the reply thread panicked");
        }
    }
}

/// What runs on the thread.
struct Worker {
    name: String,
    interface: Interface,
    arp: Arc<PacketSocket>,
    ndp: Arc<PacketSocket>,
    stopped: UnixStream,
    view: Arc<RwLock<View>>,
    hand: mpsc::Sender<Handed>,
    counters: Arc<dyn Counters>,
    /// Ask for real-time priority (`--l2-reply-realtime`).
    realtime: bool,
}

/// The thread's real-time priority with `--l2-reply-realtime`: the lowest of `SCHED_FIFO`, above
/// every ordinary thread and below every other real-time one.
const REALTIME_PRIORITY: i32 = 1;

/// Why the thread's loop ends.
enum End {
    /// The fast path was dropped.
    Stopped,
    Failed(SocketError),
}

impl Worker {
    fn run(self) {
        let span = tracing::debug_span!("reply thread", thread = %self.name);
        let _entered = span.enter();
        if self.realtime {
            match socket::set_realtime_priority(REALTIME_PRIORITY) {
                Ok(()) => tracing::info!(
                    priority = REALTIME_PRIORITY,
                    "reply thread at real-time priority (SCHED_FIFO)"
                ),
                Err(error) => {
                    tracing::warn!(%error, "the reply thread stays at normal priority: real-time priority needs CAP_SYS_NICE")
                }
            }
        }
        tracing::debug!("answering");
        match self.serve() {
            End::Stopped => tracing::debug!("stopped"),
            // Dropped with the fast path: the responder is ending anyway.
            End::Failed(error) => drop(self.hand.blocking_send(Handed::Failed(error))),
        }
    }

    fn serve(&self) -> End {
        let mut buf = vec![0u8; 2048];
        let mut timeout = None;
        let mut spinning_since = Instant::now();
        loop {
            let ready = socket::poll_readable(
                [self.stopped.as_fd(), self.arp.as_fd(), self.ndp.as_fd()],
                timeout,
            );
            let [stop, arp, ndp] = match ready {
                Ok(ready) => ready,
                Err(source) => return End::Failed(SocketError::Receive(source)),
            };
            if stop {
                return End::Stopped;
            }
            for (ready, protocol, socket) in [
                (arp, Protocol::Arp, &self.arp),
                (ndp, Protocol::Ndp, &self.ndp),
            ] {
                if !ready {
                    continue;
                }
                if let Err(end) = self.drain(protocol, socket, &mut buf) {
                    return end;
                }
                spinning_since = Instant::now();
            }
            // After a frame, look again without blocking for a while (another may follow
            // soon, and the CPU is still ours); block once that is over.
            timeout = (spinning_since.elapsed() < SPIN).then_some(Duration::ZERO);
        }
    }

    /// Handles every frame queued on `socket`.
    fn drain(&self, protocol: Protocol, socket: &PacketSocket, buf: &mut [u8]) -> Result<(), End> {
        while let Some(len) = socket.try_recv(buf).map_err(End::Failed)? {
            self.handle(protocol, socket, &buf[..len])?;
        }
        Ok(())
    }

    /// Answers a request for an answerable address, counts what needs nothing, and hands the
    /// rest over.
    fn handle(&self, protocol: Protocol, socket: &PacketSocket, bytes: &[u8]) -> Result<(), End> {
        let frame = match Frame::parse(bytes) {
            Ok(frame) => frame,
            Err(error) => {
                let ignored = if error.is_unsupported() {
                    respond::Ignored::Unsupported(error)
                } else {
                    respond::Ignored::Malformed(error)
                };
                self.counters.frame(protocol, ignored.label());
                return Ok(());
            }
        };
        let view = self.view.read().unwrap_or_else(PoisonError::into_inner);
        let ours = |a: IpAddr| view.ours.contains(&a);
        match respond::decide(&frame, &self.interface, &ours) {
            Decision::Reply(reply)
                if target(&frame).is_some_and(|t| view.answerable.contains(&t)) =>
            {
                // Sent under the read lock: see `FastPath::publish`.
                if socket.try_send(&reply).map_err(End::Failed)? {
                    drop(view);
                    self.counters.frame(protocol, "replied");
                    return Ok(());
                }
                // No room: the async responder waits for it and decides again.
            }
            Decision::Ignore(reason) => {
                drop(view);
                self.counters.frame(protocol, reason.label());
                return Ok(());
            }
            Decision::Reply(_) | Decision::Conflict { .. } => {}
        }
        drop(view);
        let handed = Handed::Frame {
            protocol,
            bytes: bytes.to_vec(),
        };
        // Never waits: a flood of claims or probes (a hostile host) must not hold up the plain
        // replies. A frame that finds the channel full is dropped and counted (`overflow`);
        // what it carried comes again (a claim is repeated, a request retried). Closed only
        // when the fast path is being dropped, which stops the thread next.
        match self.hand.try_send(handed) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.frame(protocol, "overflow");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End::Stopped),
        }
    }
}

/// The address a request asks about.
pub(crate) fn target(frame: &Frame) -> Option<IpAddr> {
    match &frame.payload {
        Payload::Arp(packet) => Some(IpAddr::V4(packet.target_ip)),
        Payload::Ndp(packet) => match &packet.message {
            NdpMessage::Solicitation(s) => Some(IpAddr::V6(s.target)),
            NdpMessage::Advertisement(a) => Some(IpAddr::V6(a.target)),
        },
    }
}
