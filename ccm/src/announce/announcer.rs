//! Keeping one sidecar daemon converged: connect lazily, converge when the desired state
//! changed or the daemon lost its state (a restart), reconnect after errors, and how long to
//! wait before retrying a failure (short for a transient one, long for one only a new desired
//! state fixes). The daemon side is behind [`Sidecar`] so that this bookkeeping is tested on
//! its own; the GoBGP adapter implements it.

use std::future::Future;
use std::time::Duration;

use baremetal_ccm_core::announce::gobgp::PeerStatus;

use super::desired::DesiredDaemon;
use crate::retry::Backoff;

/// The longest wait before retrying a transient failure: a daemon that restarts or a socket
/// that comes back is used within seconds.
const TRANSIENT_RETRY_CAP: Duration = Duration::from_secs(5);

/// An error of a sidecar's calls, classified.
pub(crate) trait DaemonError: std::error::Error + Send + Sync + 'static {
    /// Whether trying again later can succeed without another desired state.
    fn is_transient(&self) -> bool;
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum SidecarError<E: DaemonError> {
    #[error("cannot reach the BGP daemon")]
    Connect(#[source] E),
    #[error("the BGP daemon refused or failed a call")]
    Call(#[source] E),
}

impl<E: DaemonError> SidecarError<E> {
    pub(crate) fn cause(&self) -> &E {
        match self {
            SidecarError::Connect(cause) | SidecarError::Call(cause) => cause,
        }
    }

    /// Whether trying again later can succeed without another desired state.
    pub(crate) fn is_transient(&self) -> bool {
        self.cause().is_transient()
    }

    /// How long to wait after the `attempt`-th failure in a row (1-based): a transient
    /// failure is retried quickly, one only a new desired state fixes slowly (a change of the
    /// desired state is tried at once anyway).
    pub(crate) fn retry_after(&self, attempt: u32) -> Duration {
        if self.is_transient() {
            Backoff::TRANSIENT.delay(attempt).min(TRANSIENT_RETRY_CAP)
        } else {
            Backoff::PERSISTENT.delay(attempt)
        }
    }
}

/// A daemon that can be made to hold a desired state.
pub(crate) trait Sidecar: Send {
    type Error: DaemonError;

    /// Makes the daemon hold exactly `desired`; whether anything had to change.
    fn converge(
        &mut self,
        desired: &DesiredDaemon,
    ) -> impl Future<Output = Result<bool, SidecarError<Self::Error>>> + Send;

    /// Opens the sessions of `desired` on a daemon that holds nothing yet, before the rest of
    /// the desired state is known (its paths are ignored); whether anything was opened. A
    /// daemon that holds state is left alone.
    fn open(
        &mut self,
        _desired: &DesiredDaemon,
    ) -> impl Future<Output = Result<bool, SidecarError<Self::Error>>> + Send {
        std::future::ready(Ok(false))
    }

    /// Whether converging the same desired state again would change nothing (a daemon whose
    /// configuration depends on its sessions' states says no after they changed).
    fn settled(&self) -> bool {
        true
    }

    /// Whether the daemon restarted since this handle connected (gobgpd keeps nothing across
    /// a restart): the announcer then connects a new handle and converges in full.
    fn restarted(&mut self)
    -> impl Future<Output = Result<bool, SidecarError<Self::Error>>> + Send;

    /// The sessions the daemon reports.
    fn sessions(
        &mut self,
    ) -> impl Future<Output = Result<Vec<PeerStatus>, SidecarError<Self::Error>>> + Send;
}

/// The error of `C`'s sidecar.
pub(crate) type ErrorOf<C> = SidecarError<<<C as Connect>::Sidecar as Sidecar>::Error>;

/// How to reach a daemon.
pub(crate) trait Connect: Send + Sync {
    type Sidecar: Sidecar;
    fn connect(&self) -> impl Future<Output = Result<Self::Sidecar, ErrorOf<Self>>> + Send;
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing to announce and nothing announced before: no daemon needed.
    Idle,
    /// The daemon already held the desired state.
    Unchanged,
    /// The daemon was converged; `restarted` when it had lost its state.
    Converged { restarted: bool, changed: bool },
}

/// The bookkeeping around one sidecar.
#[derive(Debug)]
pub(crate) struct Announcer<C: Connect> {
    connect: C,
    sidecar: Option<C::Sidecar>,
    /// What the daemon was last converged to; `None` after a restart or an error.
    applied: Option<DesiredDaemon>,
    /// Whether anything was ever applied (an emptied desired state must still be applied).
    ever_applied: bool,
}

impl<C: Connect> Announcer<C> {
    pub(crate) fn new(connect: C) -> Self {
        Self {
            connect,
            sidecar: None,
            applied: None,
            ever_applied: false,
        }
    }

    /// Brings the daemon to `desired` if needed. After an error the connection is dropped and
    /// the next step reconnects and converges in full.
    pub(crate) async fn step(&mut self, desired: &DesiredDaemon) -> Result<Step, ErrorOf<C>> {
        let nothing = desired.peers.is_empty() && desired.paths.is_empty();
        if nothing && !self.ever_applied {
            return Ok(Step::Idle);
        }
        let result = self.converge(desired).await;
        if result.is_err() {
            self.sidecar = None;
            self.applied = None;
        }
        result
    }

    async fn converge(&mut self, desired: &DesiredDaemon) -> Result<Step, ErrorOf<C>> {
        // A restarted daemon holds nothing: drop the handle, connect to the new one and
        // converge in full.
        let mut restarted = false;
        if let Some(sidecar) = &mut self.sidecar
            && sidecar.restarted().await?
        {
            self.sidecar = None;
            restarted = true;
        }
        let sidecar = match &mut self.sidecar {
            Some(sidecar) => sidecar,
            None => {
                self.applied = None;
                self.sidecar.insert(self.connect.connect().await?)
            }
        };
        if self.applied.as_ref() == Some(desired) && sidecar.settled() {
            return Ok(Step::Unchanged);
        }
        let changed = sidecar.converge(desired).await?;
        self.applied = Some(desired.clone());
        self.ever_applied = true;
        Ok(Step::Converged { restarted, changed })
    }

    /// Opens the sessions of `desired` early on a daemon that holds nothing (see
    /// [`Sidecar::open`]); whether anything was opened. After an error the connection is
    /// dropped, and the next step starts over.
    pub(crate) async fn open(&mut self, desired: &DesiredDaemon) -> Result<bool, ErrorOf<C>> {
        if desired.peers.is_empty() {
            return Ok(false);
        }
        let sidecar = match &mut self.sidecar {
            Some(sidecar) => sidecar,
            None => self.sidecar.insert(self.connect.connect().await?),
        };
        let result = sidecar.open(desired).await;
        match &result {
            Ok(opened) => self.ever_applied |= *opened,
            Err(_) => {
                self.sidecar = None;
                self.applied = None;
            }
        }
        result
    }

    /// The daemon's sessions, when connected.
    pub(crate) async fn sessions(&mut self) -> Result<Vec<PeerStatus>, ErrorOf<C>> {
        match &mut self.sidecar {
            Some(sidecar) => {
                let result = sidecar.sessions().await;
                if result.is_err() {
                    self.sidecar = None;
                    self.applied = None;
                }
                result
            }
            None => Ok(Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::desired::{DesiredPath, DesiredPeer};
    use std::sync::{Arc, Mutex};

    /// Records the calls a fake daemon receives and lets the test restart or break it.
    #[derive(Debug, Default)]
    struct Log {
        calls: Vec<&'static str>,
        lost_state: bool,
        broken: bool,
        connect_fails: bool,
        /// Converge refuses the desired state (an error no retry fixes).
        refuses: bool,
    }

    /// The fake's failures: `transient` as the daemon would classify them.
    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct FakeError {
        what: &'static str,
        transient: bool,
    }

    impl FakeError {
        fn transient(what: &'static str) -> Self {
            Self {
                what,
                transient: true,
            }
        }
    }

    impl DaemonError for FakeError {
        fn is_transient(&self) -> bool {
            self.transient
        }
    }

    #[derive(Debug, Clone, Default)]
    struct Fake(Arc<Mutex<Log>>);

    impl Fake {
        fn log(&self) -> std::sync::MutexGuard<'_, Log> {
            self.0.lock().expect("the test's lock is never poisoned")
        }

        fn calls(&self) -> Vec<&'static str> {
            std::mem::take(&mut self.log().calls)
        }

        fn fail(&self, what: &'static str) -> Result<(), SidecarError<FakeError>> {
            let mut log = self.log();
            log.calls.push(what);
            if log.broken {
                return Err(SidecarError::Call(FakeError::transient("connection reset")));
            }
            Ok(())
        }
    }

    impl Sidecar for Fake {
        type Error = FakeError;

        async fn converge(&mut self, _: &DesiredDaemon) -> Result<bool, SidecarError<FakeError>> {
            self.fail("converge")?;
            if self.log().refuses {
                return Err(SidecarError::Call(FakeError {
                    what: "the desired daemon state is invalid",
                    transient: false,
                }));
            }
            self.log().lost_state = false;
            Ok(true)
        }

        async fn open(&mut self, _: &DesiredDaemon) -> Result<bool, SidecarError<FakeError>> {
            self.fail("open")?;
            Ok(true)
        }

        async fn restarted(&mut self) -> Result<bool, SidecarError<FakeError>> {
            self.fail("restarted")?;
            Ok(self.log().lost_state)
        }

        async fn sessions(&mut self) -> Result<Vec<PeerStatus>, SidecarError<FakeError>> {
            self.fail("sessions")?;
            Ok(Vec::new())
        }
    }

    impl Connect for Fake {
        type Sidecar = Fake;

        async fn connect(&self) -> Result<Fake, SidecarError<FakeError>> {
            let mut log = self.log();
            log.calls.push("connect");
            if log.connect_fails {
                return Err(SidecarError::Connect(FakeError::transient(
                    "no such socket",
                )));
            }
            Ok(self.clone())
        }
    }

    fn desired(paths: u8) -> DesiredDaemon {
        let mut daemon = DesiredDaemon::default();
        let address = "198.51.100.1".parse().expect("fixture address");
        daemon.peers.insert(
            address,
            DesiredPeer {
                hold_time: std::time::Duration::from_secs(90),
                keepalive: std::time::Duration::from_secs(30),
                connect_retry: std::time::Duration::from_secs(5),
                idle_hold_after_reset: std::time::Duration::from_secs(5),
                families: Default::default(),
                ..baremetal_ccm_core::fixtures::desired_peer(address)
            },
        );
        for i in 0..paths {
            daemon.paths.insert(DesiredPath {
                prefix: format!("192.0.2.{i}/32").parse().expect("fixture prefix"),
                next_hop: "0.0.0.0".parse().expect("fixture next hop"),
                path_id: 0,
            });
        }
        daemon
    }

    #[tokio::test]
    async fn nothing_to_announce_needs_no_daemon() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        assert_eq!(
            announcer.step(&DesiredDaemon::default()).await.unwrap(),
            Step::Idle
        );
        assert!(fake.calls().is_empty());
    }

    #[tokio::test]
    async fn an_unchanged_state_is_converged_once() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        let step = announcer.step(&desired(2)).await.unwrap();
        assert_eq!(
            step,
            Step::Converged {
                restarted: false,
                changed: true
            }
        );
        assert_eq!(fake.calls(), ["connect", "converge"]);
        assert_eq!(announcer.step(&desired(2)).await.unwrap(), Step::Unchanged);
        assert_eq!(fake.calls(), ["restarted"]);
        announcer.step(&desired(3)).await.unwrap();
        assert_eq!(fake.calls(), ["restarted", "converge"]);
    }

    #[tokio::test]
    async fn a_restarted_daemon_is_converged_again_in_full() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        announcer.step(&desired(2)).await.unwrap();
        fake.calls();
        fake.log().lost_state = true;
        let step = announcer.step(&desired(2)).await.unwrap();
        assert_eq!(
            step,
            Step::Converged {
                restarted: true,
                changed: true
            }
        );
        assert_eq!(fake.calls(), ["restarted", "connect", "converge"]);
    }

    #[tokio::test]
    async fn after_an_error_the_next_step_reconnects_and_converges() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        announcer.step(&desired(2)).await.unwrap();
        fake.log().broken = true;
        assert!(announcer.step(&desired(3)).await.is_err());
        fake.log().broken = false;
        fake.calls();
        announcer.step(&desired(3)).await.unwrap();
        assert_eq!(fake.calls(), ["connect", "converge"]);
        // An unreachable daemon is an error, and is tried again.
        fake.log().broken = true;
        assert!(announcer.sessions().await.is_err());
        fake.log().broken = false;
        fake.log().connect_fails = true;
        assert!(matches!(
            announcer.step(&desired(3)).await,
            Err(SidecarError::Connect(_))
        ));
    }

    #[tokio::test]
    async fn withdrawing_everything_is_still_applied() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        announcer.step(&desired(2)).await.unwrap();
        fake.calls();
        let step = announcer.step(&DesiredDaemon::default()).await.unwrap();
        assert_eq!(
            step,
            Step::Converged {
                restarted: false,
                changed: true
            }
        );
    }

    #[tokio::test]
    async fn a_refused_desired_state_backs_off_long_and_an_unreachable_daemon_briefly() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        fake.log().connect_fails = true;
        let unreachable = announcer.step(&desired(2)).await.unwrap_err();
        assert!(unreachable.is_transient());
        assert_eq!(unreachable.retry_after(1), Duration::from_millis(100));
        assert_eq!(
            unreachable.retry_after(10),
            Duration::from_secs(5),
            "a transient failure is retried within seconds however often it failed"
        );
        fake.log().connect_fails = false;
        fake.log().refuses = true;
        let refused = announcer.step(&desired(2)).await.unwrap_err();
        assert!(!refused.is_transient());
        assert_eq!(refused.retry_after(1), Backoff::PERSISTENT.delay(1));
        assert_eq!(
            refused.retry_after(10),
            Duration::from_secs(300),
            "the same desired state is refused again: retried rarely"
        );
        assert!(refused.retry_after(1) > unreachable.retry_after(1));
    }

    #[tokio::test]
    async fn opening_early_uses_the_connection_the_first_step_converges_on() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        assert!(!announcer.open(&DesiredDaemon::default()).await.unwrap());
        assert!(
            fake.calls().is_empty(),
            "no peers: nothing to open, no daemon needed"
        );
        assert!(announcer.open(&desired(0)).await.unwrap());
        assert_eq!(fake.calls(), ["connect", "open"]);
        announcer.step(&desired(2)).await.unwrap();
        assert_eq!(fake.calls(), ["restarted", "converge"]);
        // Withdrawn before anything was announced: the opened sessions are still removed.
        let step = announcer.step(&DesiredDaemon::default()).await.unwrap();
        assert_ne!(step, Step::Idle);
    }

    #[tokio::test]
    async fn a_failed_opening_leaves_the_first_step_to_connect_again() {
        let fake = Fake::default();
        let mut announcer = Announcer::new(fake.clone());
        fake.log().broken = true;
        assert!(announcer.open(&desired(0)).await.is_err());
        fake.log().broken = false;
        fake.calls();
        announcer.step(&desired(2)).await.unwrap();
        assert_eq!(fake.calls(), ["connect", "converge"]);
    }
}
