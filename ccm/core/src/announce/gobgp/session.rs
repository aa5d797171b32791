//! The state of each BGP session as plain data ([`PeerStatus`]): session state and since when,
//! what is advertised per family, whether the router can receive ADD-PATH, BFD, and the last
//! time the session went down. The one shape of a session: the wire adapter fills it from
//! gobgpd's `ListPeer` and peer events, converge reads it (BFD only while Established, the
//! stale-path sweep), and `announce::status` turns it into the `BGPPeer` status entry.
//!
//! The disconnect reason and message (fields 21/22 of gobgpd's `PeerState`) are never filled
//! over gRPC in v4.8.0, so [`LastDown`] carries them only when a daemon does, and otherwise
//! records just when the session left Established.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::SystemTime;

use crate::announce::desired::Afi;

/// The BGP finite state machine state (RFC 4271 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BfdState {
    Up,
    Down,
    AdminDown,
    Init,
    Unknown,
}

/// When and (if the daemon says) why a session last left Established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastDown {
    pub at: SystemTime,
    /// gobgpd's disconnect reason (e.g. `DISCONNECT_REASON_HOLD_TIMER_EXPIRED`).
    pub reason: Option<&'static str>,
    pub message: Option<String>,
}

/// One session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub address: IpAddr,
    /// The `BGPPeer` the session comes from (the neighbor's description).
    pub source: String,
    pub session: SessionState,
    pub admin_down: bool,
    pub established_since: Option<SystemTime>,
    /// Paths advertised per family (with ADD-PATH, one per next hop of a prefix).
    pub advertised: BTreeMap<Afi, u64>,
    /// Families for which the router's OPEN offered to receive ADD-PATH.
    pub router_receives_add_path: BTreeSet<Afi>,
    /// Families in which we send several paths per prefix (we offered, the router takes).
    pub add_path_send: BTreeSet<Afi>,
    /// `None` when BFD is not configured for the peer.
    pub bfd: Option<BfdState>,
    /// How often the session went down since the peer was added.
    pub flaps: u32,
    pub last_down: Option<LastDown>,
}

impl PeerStatus {
    /// A session in `session` with nothing else known yet.
    pub fn new(address: IpAddr, session: SessionState) -> Self {
        Self {
            address,
            source: String::new(),
            session,
            admin_down: false,
            established_since: None,
            advertised: BTreeMap::new(),
            router_receives_add_path: BTreeSet::new(),
            add_path_send: BTreeSet::new(),
            bfd: None,
            flaps: 0,
            last_down: None,
        }
    }

    pub fn is_established(&self) -> bool {
        self.session == SessionState::Established
    }

    /// The state as the `BGPPeer` status and the session metric name it: the FSM state, or
    /// `AdminDown` for a session held idle by its administrator.
    pub fn state_name(&self) -> &'static str {
        match self.session {
            SessionState::Idle if self.admin_down => "AdminDown",
            SessionState::Idle => "Idle",
            SessionState::Connect => "Connect",
            SessionState::Active => "Active",
            SessionState::OpenSent => "OpenSent",
            SessionState::OpenConfirm => "OpenConfirm",
            SessionState::Established => "Established",
            SessionState::Unknown => "Unknown",
        }
    }

    /// Why the session last went down, as the status shows it.
    pub fn last_error(&self) -> Option<String> {
        self.last_down.as_ref().map(|down| {
            let reason = down.reason.unwrap_or("session down");
            match &down.message {
                Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                _ => reason.to_owned(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("fixture IPs are valid")
    }

    #[test]
    fn an_idle_session_held_by_its_administrator_is_admin_down() {
        let mut status = PeerStatus::new(ip("192.0.2.254"), SessionState::Idle);
        assert_eq!(status.state_name(), "Idle");
        status.admin_down = true;
        assert_eq!(status.state_name(), "AdminDown");
    }

    #[test]
    fn the_last_error_names_the_reason_and_the_message_when_the_daemon_gives_them() {
        let mut status = PeerStatus::new(ip("192.0.2.254"), SessionState::Active);
        assert_eq!(status.last_error(), None);
        let at = SystemTime::UNIX_EPOCH;
        status.last_down = Some(LastDown {
            at,
            reason: None,
            message: None,
        });
        assert_eq!(status.last_error().as_deref(), Some("session down"));
        status.last_down = Some(LastDown {
            at,
            reason: Some("DISCONNECT_REASON_HOLD_TIMER_EXPIRED"),
            message: Some("hold timer expired".into()),
        });
        assert_eq!(
            status.last_error().as_deref(),
            Some("DISCONNECT_REASON_HOLD_TIMER_EXPIRED: hold timer expired")
        );
    }
}
