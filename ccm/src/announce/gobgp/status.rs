//! Sessions on the wire: what `ListPeer` and the peer events report, read once into the
//! core's [`PeerStatus`] (the one shape of a session everything else uses).
//!
//! Where gobgp v4.8.0 exposes these: `ListPeer` with `enable_advertised` fills each family's
//! `state.advertised` by running the export filter over the table
//! (`BgpServer.ListPeer` in `pkg/server/server.go`); gobgpd keeps no Adj-RIB-Out, so this is
//! what it would send now (`ListPath` on `ADJ_OUT` is computed the same way). The router's
//! OPEN capabilities are `state.remote_cap`; BFD is `state.bfd_state`. The disconnect reason
//! and message (fields 21/22 of `PeerState`) are never filled over gRPC in v4.8.0 — neither
//! `ListPeer` (`NewPeerFromConfigStruct`) nor the `WatchEvent` peer events (`watchEvent` in
//! `pkg/server/grpc_server.go`) copy them — so they are read when a daemon fills them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use baremetal_ccm_core::announce::gobgp::{BfdState, LastDown, PeerStatus, SessionState};
use gobgp_api_proto::api::{self, add_path_capability_tuple::Mode, capability::Cap, peer_state};

use super::convert::unicast_afi;
use crate::announce::desired::Afi;

/// A session state as gobgpd numbers it.
pub(crate) fn session_state(state: i32) -> SessionState {
    use peer_state::SessionState as S;
    match S::try_from(state) {
        Ok(S::Idle) => SessionState::Idle,
        Ok(S::Connect) => SessionState::Connect,
        Ok(S::Active) => SessionState::Active,
        Ok(S::Opensent) => SessionState::OpenSent,
        Ok(S::Openconfirm) => SessionState::OpenConfirm,
        Ok(S::Established) => SessionState::Established,
        _ => SessionState::Unknown,
    }
}

fn bfd_state(state: i32) -> BfdState {
    match api::BfdSessionState::try_from(state) {
        Ok(api::BfdSessionState::Up) => BfdState::Up,
        Ok(api::BfdSessionState::Down) => BfdState::Down,
        Ok(api::BfdSessionState::AdminDown) => BfdState::AdminDown,
        Ok(api::BfdSessionState::Init) => BfdState::Init,
        _ => BfdState::Unknown,
    }
}

fn timestamp(ts: &prost_types::Timestamp) -> Option<SystemTime> {
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

fn router_add_path_receive(state: &api::PeerState) -> BTreeSet<Afi> {
    state
        .remote_cap
        .iter()
        .filter_map(|cap| match &cap.cap {
            Some(Cap::AddPath(add_path)) => Some(&add_path.tuples),
            _ => None,
        })
        .flatten()
        .filter(|tuple| matches!(Mode::try_from(tuple.mode), Ok(Mode::Receive | Mode::Both)))
        .filter_map(|tuple| tuple.family.as_ref().and_then(unicast_afi))
        .collect()
}

/// The status of a listed peer; `last_down` comes from the event watch.
pub(crate) fn peer_status(
    peer: &api::Peer,
    address: IpAddr,
    last_down: Option<LastDown>,
) -> PeerStatus {
    let state = peer.state.clone().unwrap_or_default();
    let session = session_state(state.session_state);
    let established_since = (session == SessionState::Established)
        .then(|| {
            peer.timers
                .as_ref()?
                .state
                .as_ref()?
                .uptime
                .as_ref()
                .and_then(timestamp)
        })
        .flatten();
    let mut advertised = BTreeMap::new();
    let mut offered_send = BTreeSet::new();
    for afi_safi in &peer.afi_safis {
        let Some(config) = afi_safi.config.as_ref().filter(|c| c.enabled) else {
            continue;
        };
        let Some(afi) = config.family.as_ref().and_then(unicast_afi) else {
            continue;
        };
        let count = afi_safi.state.map_or(0, |s| s.advertised);
        advertised.insert(afi, count);
        if afi_safi
            .add_paths
            .as_ref()
            .and_then(|a| a.config)
            .is_some_and(|c| c.send_max > 0)
        {
            offered_send.insert(afi);
        }
    }
    let router_receives_add_path = router_add_path_receive(&state);
    let add_path_send = if session == SessionState::Established {
        offered_send
            .intersection(&router_receives_add_path)
            .copied()
            .collect()
    } else {
        BTreeSet::new()
    };
    let bfd = peer
        .bfd
        .filter(|b| b.enabled)
        .map(|_| bfd_state(state.bfd_state.map_or(0, |b| b.session_state)));
    PeerStatus {
        address,
        source: peer
            .conf
            .as_ref()
            .map(|c| c.description.clone())
            .unwrap_or_default(),
        session,
        admin_down: state.admin_state == peer_state::AdminState::Down as i32,
        established_since,
        advertised,
        router_receives_add_path,
        add_path_send,
        bfd,
        flaps: state.flops,
        last_down,
    }
}

/// The reason a peer event gives, if it gives one.
pub(crate) fn disconnect(state: &api::PeerState) -> (Option<&'static str>, Option<String>) {
    let reason = peer_state::DisconnectReason::try_from(state.disconnect_reason)
        .ok()
        .filter(|r| *r != peer_state::DisconnectReason::Unspecified)
        .map(|r| r.as_str_name());
    let message = (!state.disconnect_message.is_empty()).then(|| state.disconnect_message.clone());
    (reason, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::gobgp::convert::family;

    fn established_peer() -> api::Peer {
        api::Peer {
            conf: Some(api::PeerConf {
                neighbor_address: "192.0.2.254".into(),
                description: "tor-a".into(),
                ..api::PeerConf::default()
            }),
            state: Some(api::PeerState {
                session_state: peer_state::SessionState::Established as i32,
                flops: 2,
                remote_cap: vec![api::Capability {
                    cap: Some(Cap::AddPath(api::AddPathCapability {
                        tuples: vec![api::AddPathCapabilityTuple {
                            family: Some(family(Afi::Ipv4)),
                            mode: Mode::Receive as i32,
                        }],
                    })),
                }],
                ..api::PeerState::default()
            }),
            timers: Some(api::Timers {
                config: None,
                state: Some(api::TimersState {
                    uptime: Some(prost_types::Timestamp {
                        seconds: 1_700_000_000,
                        nanos: 0,
                    }),
                    ..api::TimersState::default()
                }),
            }),
            afi_safis: vec![api::AfiSafi {
                config: Some(api::AfiSafiConfig {
                    family: Some(family(Afi::Ipv4)),
                    enabled: true,
                }),
                state: Some(api::AfiSafiState {
                    advertised: 3,
                    ..api::AfiSafiState::default()
                }),
                add_paths: Some(api::AddPaths {
                    config: Some(api::AddPathsConfig {
                        receive: false,
                        send_max: 8,
                    }),
                    state: None,
                }),
                ..api::AfiSafi::default()
            }],
            ..api::Peer::default()
        }
    }

    #[test]
    fn an_established_peer_reports_its_routes_and_add_path() {
        let address = "192.0.2.254".parse().expect("address");
        let status = peer_status(&established_peer(), address, None);
        assert_eq!(status.session, SessionState::Established);
        assert_eq!(status.source, "tor-a");
        assert_eq!(status.advertised, BTreeMap::from([(Afi::Ipv4, 3)]));
        assert_eq!(status.router_receives_add_path, BTreeSet::from([Afi::Ipv4]));
        assert_eq!(status.add_path_send, BTreeSet::from([Afi::Ipv4]));
        assert_eq!(
            status.established_since,
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(status.bfd, None, "no BFD configured");
        assert_eq!(status.flaps, 2);
    }

    #[test]
    fn a_router_without_add_path_receive_gets_no_add_path() {
        let mut peer = established_peer();
        peer.state.as_mut().expect("state").remote_cap.clear();
        let status = peer_status(&peer, "192.0.2.254".parse().expect("address"), None);
        assert!(status.router_receives_add_path.is_empty());
        assert!(status.add_path_send.is_empty());
    }

    #[test]
    fn an_unspecified_disconnect_reason_is_no_reason() {
        assert_eq!(disconnect(&api::PeerState::default()), (None, None));
        let state = api::PeerState {
            disconnect_reason: peer_state::DisconnectReason::HoldTimerExpired as i32,
            disconnect_message: "hold timer expired".into(),
            ..api::PeerState::default()
        };
        assert_eq!(
            disconnect(&state),
            (
                Some("DISCONNECT_REASON_HOLD_TIMER_EXPIRED"),
                Some("hold timer expired".into())
            )
        );
    }
}
