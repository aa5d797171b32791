//! What one speaker reports in each `BGPPeer`'s status: its own entry, decided from the plan
//! it configured and the sessions its daemon reports ([`PeerStatus`], converted here, once,
//! into the CRD's `SpeakerSession`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use super::desired::Afi;
use super::gobgp::PeerStatus;
use super::plan::Plan;
use crate::crd::bgppeer::SpeakerSession;

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
    sessions: &[PeerStatus],
    invalid: &BTreeMap<String, String>,
    report_invalid: bool,
) -> BTreeMap<String, SpeakerSession> {
    let by_address: BTreeMap<IpAddr, &PeerStatus> =
        sessions.iter().map(|s| (s.address, s)).collect();
    let mut entries = BTreeMap::new();
    for (address, name) in &plan.peer_names {
        let mut entry = match by_address.get(address) {
            Some(session) => speaker_session(speaker, session),
            None => SpeakerSession {
                speaker: speaker.to_owned(),
                state: "Idle".to_owned(),
                ..SpeakerSession::default()
            },
        };
        entry.max_next_hops = max_next_hops(plan, address);
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

/// The most next hops a prefix gets on the session with `peer`: the plan's largest
/// `maxNextHops`, at most what the session may send per prefix (one without ADD-PATH).
fn max_next_hops(plan: &Plan, peer: &IpAddr) -> Option<u32> {
    let k = plan.max_next_hops?;
    let send_max =
        (plan.daemon.peers.get(peer)).map_or(1, |p| usize::from(p.add_path_send_max.max(1)));
    u32::try_from(k.min(send_max)).ok()
}

/// A session as the status shows it: counts and ADD-PATH only while Established (before,
/// they say nothing), times in RFC 3339.
fn speaker_session(speaker: &str, status: &PeerStatus) -> SpeakerSession {
    let established = status.is_established();
    let sent = |afi| established.then(|| status.advertised.get(&afi).copied().unwrap_or(0));
    SpeakerSession {
        speaker: speaker.to_owned(),
        state: status.state_name().to_owned(),
        established_since: status.established_since.and_then(rfc3339),
        ipv4_prefixes_sent: sent(Afi::Ipv4),
        ipv6_prefixes_sent: sent(Afi::Ipv6),
        add_path_negotiated: established.then_some(!status.router_receives_add_path.is_empty()),
        max_next_hops: None,
        bfd_state: status.bfd.map(|bfd| format!("{bfd:?}")),
        last_error: status.last_error(),
        updated: String::new(),
    }
}

/// A time the API can hold; `None` for one before 1970 or beyond what RFC 3339 can say.
fn rfc3339(time: SystemTime) -> Option<String> {
    k8s_openapi::jiff::Timestamp::try_from(time)
        .ok()
        .map(|t| t.to_string())
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
    use crate::announce::gobgp::{BfdState, LastDown, SessionState};

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
        let sessions = [PeerStatus {
            advertised: BTreeMap::from([(Afi::Ipv4, 3)]),
            router_receives_add_path: [Afi::Ipv4].into(),
            ..PeerStatus::new(ip("198.51.100.1"), SessionState::Established)
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
    fn a_session_shows_counts_and_add_path_only_while_established() {
        let mut plan = Plan::default();
        plan.peer_names.insert(ip("198.51.100.1"), "tor-a".into());
        plan.peer_names.insert(ip("2001:db8::1"), "tor-b".into());
        let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let up = PeerStatus {
            established_since: Some(since),
            advertised: BTreeMap::from([(Afi::Ipv4, 3)]),
            bfd: Some(BfdState::Up),
            ..PeerStatus::new(ip("198.51.100.1"), SessionState::Established)
        };
        let down = PeerStatus {
            admin_down: true,
            advertised: BTreeMap::from([(Afi::Ipv6, 7)]),
            router_receives_add_path: [Afi::Ipv6].into(),
            last_down: Some(LastDown {
                at: since,
                reason: Some("DISCONNECT_REASON_ADMIN_DOWN"),
                message: None,
            }),
            ..PeerStatus::new(ip("2001:db8::1"), SessionState::Idle)
        };
        let entries = entries("ccm-a", &plan, &[up, down], &BTreeMap::new(), false);
        assert_eq!(
            serde_json::to_value(&entries["tor-a"]).expect("serializable"),
            serde_json::json!({
                "speaker": "ccm-a",
                "state": "Established",
                "establishedSince": "2023-11-14T22:13:20Z",
                "ipv4PrefixesSent": 3,
                "ipv6PrefixesSent": 0,
                "addPathNegotiated": false,
                "bfdState": "Up",
                "updated": "",
            })
        );
        assert_eq!(
            serde_json::to_value(&entries["tor-b"]).expect("serializable"),
            serde_json::json!({
                "speaker": "ccm-a",
                "state": "AdminDown",
                "lastError": "DISCONNECT_REASON_ADMIN_DOWN",
                "updated": "",
            })
        );
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
