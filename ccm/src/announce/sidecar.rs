//! The GoBGP daemon as the announcer's [`Sidecar`]: the adapter's converge, its restart
//! signal, and its sessions, with [`GobgpError`] kept as the cause so that its
//! classification ([`GobgpError::is_transient`]) decides how the announcer backs off.

use std::future::Future;
use std::pin::Pin;

use baremetal_ccm_core::announce::gobgp::PeerStatus;
use futures::FutureExt as _;

use super::announcer::{Connect, DaemonError, Sidecar, SidecarError};
use super::desired::DesiredDaemon;
use super::gobgp::{Daemon, GobgpError, RestartCause};

impl DaemonError for GobgpError {
    fn is_transient(&self) -> bool {
        GobgpError::is_transient(self)
    }
}

/// Connects to the gobgpd sidecar at an endpoint.
#[derive(Debug, Clone)]
pub(crate) struct GobgpConnect {
    pub endpoint: String,
}

/// A connected gobgpd and the signal of its restart.
pub(crate) struct GobgpSidecar {
    daemon: Daemon,
    restarted: Pin<Box<dyn Future<Output = RestartCause> + Send>>,
}

impl std::fmt::Debug for GobgpSidecar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GobgpSidecar")
            .field("daemon", &self.daemon)
            .finish_non_exhaustive()
    }
}

impl Connect for GobgpConnect {
    type Sidecar = GobgpSidecar;

    async fn connect(&self) -> Result<GobgpSidecar, SidecarError<GobgpError>> {
        let daemon = (Daemon::connect(&self.endpoint).await).map_err(SidecarError::Connect)?;
        let restarted = Box::pin(daemon.restarted());
        Ok(GobgpSidecar { daemon, restarted })
    }
}

impl Sidecar for GobgpSidecar {
    type Error = GobgpError;

    async fn converge(
        &mut self,
        desired: &DesiredDaemon,
    ) -> Result<bool, SidecarError<GobgpError>> {
        let report = (self.daemon.converge(desired).await).map_err(SidecarError::Call)?;
        if report.changed() {
            tracing::debug!(?report, "converged the BGP daemon");
        }
        Ok(report.changed())
    }

    async fn open(&mut self, desired: &DesiredDaemon) -> Result<bool, SidecarError<GobgpError>> {
        (self.daemon.open(desired).await).map_err(SidecarError::Call)
    }

    fn settled(&self) -> bool {
        self.daemon.settled()
    }

    async fn restarted(&mut self) -> Result<bool, SidecarError<GobgpError>> {
        match (&mut self.restarted).now_or_never() {
            Some(cause) => {
                tracing::info!(?cause, "the BGP daemon restarted or its watch broke");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn sessions(&mut self) -> Result<Vec<PeerStatus>, SidecarError<GobgpError>> {
        (self.daemon.peer_statuses().await).map_err(SidecarError::Call)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use baremetal_ccm_core::announce::gobgp::PlanError;

    use super::*;
    use crate::retry::Backoff;

    #[test]
    fn an_invalid_desired_state_backs_off_slowly_and_a_failed_call_quickly() {
        let invalid = SidecarError::Call(GobgpError::Desired(PlanError::NoAsn));
        assert!(!invalid.is_transient());
        assert_eq!(invalid.retry_after(1), Backoff::PERSISTENT.delay(1));
        let failed = SidecarError::Call(GobgpError::Call {
            call: "AddPeer",
            source: tonic::Status::unavailable("connection reset"),
        });
        assert!(failed.is_transient());
        assert_eq!(failed.retry_after(1), Duration::from_millis(100));
        let endpoint = "tcp://somewhere".parse::<crate::announce::gobgp::Endpoint>();
        let bad_endpoint = SidecarError::Connect(GobgpError::Endpoint(
            endpoint.expect_err("only unix:// and http:// endpoints are accepted"),
        ));
        assert!(!bad_endpoint.is_transient());
    }
}
