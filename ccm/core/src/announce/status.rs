//! What one speaker reports in each `BGPPeer`'s status: its own entry, decided from the plan
//! it configured and the sessions its daemon reports.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::plan::Plan;
use crate::crd::bgppeer::SpeakerSession;

/// A session as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub address: IpAddr,
    /// `Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`.
    pub state: String,
    /// RFC 3339.
    pub established_since: Option<String>,
    pub ipv4_sent: Option<u64>,
    pub ipv6_sent: Option<u64>,
    pub add_path_negotiated: Option<bool>,
    pub bfd_state: Option<String>,
    pub last_error: Option<String>,
}

impl SessionView {
    /// A session in `state` with nothing else known yet.
    pub fn new(address: IpAddr, state: &str) -> Self {
        Self {
            address,
            state: state.to_owned(),
            established_since: None,
            ipv4_sent: None,
            ipv6_sent: None,
            add_path_negotiated: None,
            bfd_state: None,
            last_error: None,
        }
    }
}

/// State reported for a peer this speaker cannot configure.
pub const NOT_CONFIGURED: &str = "NotConfigured";
/// The state of a configured peer whose session cannot be known (the daemon cannot be read).
pub const UNKNOWN: &str = "Unknown";

/// This speaker's entries by BGPPeer name: every peer it configured (with its session, or
/// `Idle` until the daemon lists it), every peer it skipped, and the invalid peers when
/// `report_invalid` (controller replicas report those, so that each shows once per replica
/// rather than once per node). `updated` is left empty: the writer stamps it.
pub fn entries(
    speaker: &str,
    plan: &Plan,
    sessions: &[SessionView],
    invalid: &BTreeMap<String, String>,
    report_invalid: bool,
) -> BTreeMap<String, SpeakerSession> {
    let by_address: BTreeMap<IpAddr, &SessionView> =
        sessions.iter().map(|s| (s.address, s)).collect();
    let mut entries = BTreeMap::new();
    for (address, name) in &plan.peer_names {
        let entry = match by_address.get(address) {
            Some(session) => SpeakerSession {
                speaker: speaker.to_owned(),
                state: session.state.clone(),
                established_since: session.established_since.clone(),
                ipv4_prefixes_sent: session.ipv4_sent,
                ipv6_prefixes_sent: session.ipv6_sent,
                add_path_negotiated: session.add_path_negotiated,
                bfd_state: session.bfd_state.clone(),
                last_error: session.last_error.clone(),
                updated: String::new(),
            },
            None => SpeakerSession {
                speaker: speaker.to_owned(),
                state: "Idle".to_owned(),
                ..SpeakerSession::default()
            },
        };
        entries.insert(name.clone(), entry);
    }
    let skipped = plan.skipped_peers.iter();
    let invalid = invalid.iter().filter(|_| report_invalid);
    for (name, reason) in skipped.chain(invalid) {
        entries.insert(
            name.clone(),
            SpeakerSession {
                speaker: speaker.to_owned(),
                state: NOT_CONFIGURED.to_owned(),
                last_error: Some(reason.clone()),
                ..SpeakerSession::default()
            },
        );
    }
    entries
}

/// Marks every configured peer's entry `Unknown` with `cause` (the daemon's sessions cannot be
/// known); entries that say why a peer is not configured keep saying it.
pub fn mark_unknown(entries: &mut BTreeMap<String, SpeakerSession>, cause: &str) {
    for entry in (entries.values_mut()).filter(|e| e.state != NOT_CONFIGURED) {
        entry.state = UNKNOWN.to_owned();
        entry.last_error = Some(cause.to_owned());
    }
}

/// Whether two entries differ in anything but the time they were written.
pub fn differs(a: &SpeakerSession, b: &SpeakerSession) -> bool {
    let strip = |s: &SpeakerSession| SpeakerSession {
        updated: String::new(),
        ..s.clone()
    };
    strip(a) != strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("fixture IPs are valid")
    }

    #[test]
    fn each_configured_peer_gets_its_session_skipped_and_invalid_ones_say_why() {
        let mut plan = Plan::default();
        plan.peer_names.insert(ip("198.51.100.1"), "tor-a".into());
        plan.peer_names.insert(ip("198.51.100.2"), "tor-b".into());
        plan.skipped_peers.insert(
            "tor-md5".into(),
            "password Secret kube-system/bgp does not exist".into(),
        );
        let sessions = [SessionView {
            ipv4_sent: Some(3),
            add_path_negotiated: Some(true),
            ..SessionView::new(ip("198.51.100.1"), "Established")
        }];
        let invalid = BTreeMap::from([(
            "broken".to_owned(),
            "holdTimeSeconds 2: must be 0 or at least 3".to_owned(),
        )]);
        let entries = entries("ccm-a", &plan, &sessions, &invalid, true);
        assert_eq!(entries["tor-a"].state, "Established");
        assert_eq!(entries["tor-a"].ipv4_prefixes_sent, Some(3));
        assert_eq!(entries["tor-b"].state, "Idle");
        assert_eq!(entries["tor-md5"].state, NOT_CONFIGURED);
        assert!(
            entries["tor-md5"]
                .last_error
                .as_deref()
                .unwrap()
                .contains("does not exist")
        );
        assert!(entries.contains_key("broken"));
        assert!(entries.values().all(|e| e.speaker == "ccm-a"));
        let node_speaker = super::entries("node-1", &plan, &sessions, &invalid, false);
        assert!(!node_speaker.contains_key("broken"));
    }

    #[test]
    fn only_the_write_time_does_not_count_as_a_change() {
        let a = SpeakerSession {
            speaker: "s".into(),
            state: "Established".into(),
            updated: "2026-12-01T00:00:00Z".into(),
            ..SpeakerSession::default()
        };
        let later = SpeakerSession {
            updated: "2026-12-01T00:05:00Z".into(),
            ..a.clone()
        };
        assert!(!differs(&a, &later));
        let down = SpeakerSession {
            state: "Active".into(),
            ..a.clone()
        };
        assert!(differs(&a, &down));
    }
}
