//! Whether a speaker does its part on the BGP side, for `/readyz`: every session its plan
//! configures is established. A rolling update waits for a replacement to be ready before it
//! takes the next replica down; a replacement that announces nothing yet must therefore not
//! say ready, or for a moment no replica announces at all (the lab's `upgrade` scenario lost
//! the route for 1.6–3.1 s that way).

use std::net::IpAddr;

use super::desired::DesiredDaemon;
use super::gobgp::{PeerStatus, SessionState};

/// `Ok` when every peer of `daemon` has an established session in `sessions`; otherwise why
/// not, naming the peers. `unknown` is why the sessions could not be read, when they could not.
/// A speaker configured with no peer has nothing to wait for.
pub fn readiness(
    daemon: &DesiredDaemon,
    sessions: &[PeerStatus],
    unknown: Option<&str>,
) -> Result<(), String> {
    if daemon.peers.is_empty() {
        return Ok(());
    }
    if let Some(note) = unknown {
        return Err(format!("the BGP sessions are not known: {note}"));
    }
    let state = |address: &IpAddr| {
        (sessions.iter().find(|s| s.address == *address))
            .map_or(SessionState::Unknown, |s| s.session)
    };
    let waiting: Vec<String> = (daemon.peers.keys())
        .filter(|address| state(address) != SessionState::Established)
        .map(|address| format!("{address} ({:?})", state(address)))
        .collect();
    if waiting.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "BGP sessions not established: {}",
            waiting.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::desired::Global;
    use crate::announce::gobgp::plan::tests::peer;
    use std::collections::BTreeSet;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn daemon(peers: &[&str]) -> DesiredDaemon {
        DesiredDaemon {
            global: Global {
                asn: 64512,
                router_id: "192.0.2.1".parse().unwrap(),
                listen_port: -1,
            },
            peers: (peers.iter()).map(|p| (ip(p), peer(p))).collect(),
            export: Vec::new(),
            paths: BTreeSet::new(),
        }
    }

    fn session(address: &str, state: SessionState) -> PeerStatus {
        PeerStatus::new(ip(address), state)
    }

    #[test]
    fn a_speaker_without_peers_is_ready_whatever_its_daemon_says() {
        assert_eq!(
            readiness(&daemon(&[]), &[], Some("daemon unreachable")),
            Ok(())
        );
    }

    #[test]
    fn every_configured_session_must_be_established() {
        let daemon = daemon(&["192.0.2.254", "2001:db8::fe"]);
        let up = session("192.0.2.254", SessionState::Established);
        let connecting = session("2001:db8::fe", SessionState::Active);
        assert_eq!(
            readiness(&daemon, &[up.clone(), connecting], None),
            Err("BGP sessions not established: 2001:db8::fe (Active)".to_owned())
        );
        assert_eq!(
            readiness(&daemon, std::slice::from_ref(&up), None),
            Err("BGP sessions not established: 2001:db8::fe (Unknown)".to_owned()),
            "a configured peer the daemon does not report is not established"
        );
        let both = [up, session("2001:db8::fe", SessionState::Established)];
        assert_eq!(readiness(&daemon, &both, None), Ok(()));
    }

    #[test]
    fn unreadable_sessions_are_not_ready_with_the_cause() {
        let daemon = daemon(&["192.0.2.254"]);
        let result = readiness(&daemon, &[], Some("connection refused"));
        assert_eq!(
            result,
            Err("the BGP sessions are not known: connection refused".to_owned())
        );
    }
}
