//! The GoBGP daemon as the announcer's [`Sidecar`]: the adapter's converge, its restart
//! signal, and its peer statuses in the form the `BGPPeer` status reports them.

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use futures::FutureExt as _;

use super::announcer::{Connect, Sidecar, SidecarError};
use super::desired::Afi;
use super::gobgp::{Daemon, PeerStatus, RestartCause, SessionState};
use super::status::SessionView;

/// Connects to the gobgpd sidecar at an endpoint.
#[derive(Debug, Clone)]
pub struct GobgpConnect {
    pub endpoint: String,
}

/// A connected gobgpd and the signal of its restart.
pub struct GobgpSidecar {
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

    async fn connect(&self) -> Result<GobgpSidecar, SidecarError> {
        let daemon = (Daemon::connect(&self.endpoint).await)
            .map_err(|error| SidecarError::Connect(Box::new(error)))?;
        let restarted = Box::pin(daemon.restarted());
        Ok(GobgpSidecar { daemon, restarted })
    }
}

impl Sidecar for GobgpSidecar {
    async fn converge(
        &mut self,
        desired: &super::desired::DesiredDaemon,
    ) -> Result<bool, SidecarError> {
        let report = (self.daemon.converge(desired).await)
            .map_err(|error| SidecarError::Call(Box::new(error)))?;
        if report.changed() {
            tracing::debug!(?report, "converged the BGP daemon");
        }
        Ok(report.changed())
    }

    fn settled(&self) -> bool {
        self.daemon.settled()
    }

    async fn restarted(&mut self) -> Result<bool, SidecarError> {
        match (&mut self.restarted).now_or_never() {
            Some(cause) => {
                tracing::info!(?cause, "the BGP daemon restarted or its watch broke");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn sessions(&mut self) -> Result<Vec<SessionView>, SidecarError> {
        let statuses = (self.daemon.peer_statuses().await)
            .map_err(|error| SidecarError::Call(Box::new(error)))?;
        Ok(statuses.iter().map(view).collect())
    }
}

fn rfc3339(time: SystemTime) -> Option<String> {
    k8s_openapi::jiff::Timestamp::try_from(time)
        .ok()
        .map(|t| t.to_string())
}

fn view(status: &PeerStatus) -> SessionView {
    let established = status.session == SessionState::Established;
    let state = match status.session {
        SessionState::Idle if status.admin_down => "AdminDown",
        SessionState::Idle => "Idle",
        SessionState::Connect => "Connect",
        SessionState::Active => "Active",
        SessionState::OpenSent => "OpenSent",
        SessionState::OpenConfirm => "OpenConfirm",
        SessionState::Established => "Established",
        SessionState::Unknown => "Unknown",
    };
    let last_error = status.last_down.as_ref().map(|down| {
        let reason = down.reason.unwrap_or("session down");
        match &down.message {
            Some(message) if !message.is_empty() => format!("{reason}: {message}"),
            _ => reason.to_owned(),
        }
    });
    SessionView {
        address: status.address,
        state: state.to_owned(),
        established_since: status.established_since.and_then(rfc3339),
        ipv4_sent: established.then(|| status.advertised.get(&Afi::Ipv4).copied().unwrap_or(0)),
        ipv6_sent: established.then(|| status.advertised.get(&Afi::Ipv6).copied().unwrap_or(0)),
        add_path_negotiated: established.then_some(!status.router_receives_add_path.is_empty()),
        bfd_state: status.bfd.map(|bfd| format!("{bfd:?}")),
        last_error,
    }
}
