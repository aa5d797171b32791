//! A neighbor on the wire: the core's [`PeerSpec`] read back from what `ListPeer` reports,
//! and the `AddPeer` / `UpdatePeer` messages built from it (an update keeps every field we do
//! not own).
//!
//! gobgp v4.8.0 facts used here:
//! - `ListPeer` reports the *connected* local address once a session is up, so the local
//!   address is always sent empty (the kernel chooses; see the core's `peer`);
//! - `graceful_restart.local_restarting` on `AddPeer` becomes the peer's
//!   `GracefulRestart.State.LocalRestarting` (`newNeighborFromAPIStruct`), which is what
//!   gobgpd's own `--graceful-restart` flag sets for configured peers (`pkg/config/config.go`
//!   `InitialConfig`): the OPEN then carries the Restart State bit and the Forwarding State
//!   bit per family (`capabilitiesFromConfig` in `pkg/server/fsm.go`), and updates wait for
//!   the peers' End-of-RIB or the deferral timer.

use std::collections::BTreeMap;
use std::net::IpAddr;

use baremetal_ccm_core::announce::gobgp::BGP_PORT;
use baremetal_ccm_core::announce::gobgp::peer::{
    BfdSpec, FamilySpec, GracefulRestartSpec, PeerSpec, SessionFamily, Timers,
};
use gobgp_api_proto::api;

use super::convert::{ConvertError, family, parse_addr, unicast_afi};
use crate::announce::desired::Password;

/// The neighbor `ListPeer` reported, with its address.
pub(crate) fn peer_spec(peer: &api::Peer) -> Result<(IpAddr, PeerSpec), ConvertError> {
    let conf = peer.conf.clone().unwrap_or_default();
    let address = parse_addr("neighbor address", &conf.neighbor_address)?;
    let transport = peer.transport.clone().unwrap_or_default();
    let port = u16::try_from(transport.remote_port).map_err(|source| ConvertError::OutOfRange {
        field: "remote port",
        value: transport.remote_port.into(),
        source,
    })?;
    let timers = peer
        .timers
        .as_ref()
        .and_then(|t| t.config)
        .unwrap_or_default();
    let multihop = peer.ebgp_multihop.unwrap_or_default();
    let multihop_ttl = if multihop.enabled {
        let ttl =
            u8::try_from(multihop.multihop_ttl).map_err(|source| ConvertError::OutOfRange {
                field: "multihop TTL",
                value: multihop.multihop_ttl.into(),
                source,
            })?;
        Some(ttl)
    } else {
        None
    };
    let gr = peer.graceful_restart.clone().unwrap_or_default();
    let bfd = peer.bfd.unwrap_or_default();
    let spec = PeerSpec {
        port: if port == 0 { BGP_PORT } else { port },
        peer_asn: conf.peer_asn,
        local_asn: conf.local_asn,
        description: conf.description,
        password: (!conf.auth_password.is_empty()).then_some(Password(conf.auth_password)),
        multihop_ttl,
        timers: Timers {
            connect_retry: timers.connect_retry,
            hold_time: timers.hold_time,
            keepalive: timers.keepalive_interval,
            idle_hold_after_reset: timers.idle_hold_time_after_reset,
        },
        graceful_restart: gr.enabled.then_some(GracefulRestartSpec {
            restart_time: gr.restart_time,
            deferral_time: gr.deferral_time,
        }),
        bfd: bfd.enabled.then_some(BfdSpec {
            min_tx_us: bfd.desired_minimum_tx_interval,
            min_rx_us: bfd.required_minimum_receive,
            multiplier: bfd.detection_multiplier,
        }),
        families: families_from_api(&peer.afi_safis),
        passive: transport.passive_mode,
    };
    Ok((address, spec))
}

fn families_from_api(afi_safis: &[api::AfiSafi]) -> BTreeMap<SessionFamily, FamilySpec> {
    afi_safis
        .iter()
        .filter_map(|afi_safi| {
            let config = afi_safi.config.as_ref().filter(|c| c.enabled)?;
            let f = config.family.unwrap_or_default();
            let key = match unicast_afi(&f) {
                Some(afi) => SessionFamily::Unicast(afi),
                None => SessionFamily::Other {
                    afi: f.afi,
                    safi: f.safi,
                },
            };
            let add_paths = afi_safi
                .add_paths
                .as_ref()
                .and_then(|a| a.config)
                .unwrap_or_default();
            let spec = FamilySpec {
                graceful_restart: afi_safi
                    .mp_graceful_restart
                    .as_ref()
                    .and_then(|m| m.config)
                    .is_some_and(|c| c.enabled),
                add_path_send_max: add_paths.send_max,
                add_path_receive: add_paths.receive,
            };
            Some((key, spec))
        })
        .collect()
}

/// The per-family entries for `spec`, reusing what `current` holds for a family (so
/// settings we do not own, such as a prefix limit, survive an update).
fn afi_safis(spec: &PeerSpec, current: &[api::AfiSafi]) -> Vec<api::AfiSafi> {
    spec.families
        .iter()
        .filter_map(|(key, family_spec)| {
            let SessionFamily::Unicast(afi) = key else {
                return None;
            };
            let wanted = family(*afi);
            let mut entry = current
                .iter()
                .find(|a| a.config.as_ref().and_then(|c| c.family) == Some(wanted))
                .cloned()
                .unwrap_or_default();
            entry.state = None;
            entry.config = Some(api::AfiSafiConfig {
                family: Some(wanted),
                enabled: true,
            });
            entry.mp_graceful_restart = Some(api::MpGracefulRestart {
                config: Some(api::MpGracefulRestartConfig {
                    enabled: family_spec.graceful_restart,
                }),
                state: None,
            });
            entry.add_paths = Some(api::AddPaths {
                config: Some(api::AddPathsConfig {
                    receive: family_spec.add_path_receive,
                    send_max: family_spec.add_path_send_max,
                }),
                state: None,
            });
            Some(entry)
        })
        .collect()
}

/// Writes the fields we own into `peer`, leaving every other field as it is.
fn write_owned(peer: &mut api::Peer, address: IpAddr, spec: &PeerSpec, restarting: bool) {
    let conf = peer.conf.get_or_insert_with(api::PeerConf::default);
    conf.neighbor_address = address.to_string();
    conf.peer_asn = spec.peer_asn;
    conf.local_asn = spec.local_asn;
    conf.description = spec.description.clone();
    conf.auth_password = spec.password.clone().map(|p| p.0).unwrap_or_default();

    let transport = peer.transport.get_or_insert_with(api::Transport::default);
    transport.remote_port = spec.port.into();
    transport.passive_mode = spec.passive;
    transport.local_address = String::new();
    transport.remote_address = String::new();

    let timers = peer.timers.get_or_insert_with(api::Timers::default);
    timers.state = None;
    let config = timers.config.get_or_insert_with(api::TimersConfig::default);
    config.connect_retry = spec.timers.connect_retry;
    config.hold_time = spec.timers.hold_time;
    config.keepalive_interval = spec.timers.keepalive;
    config.idle_hold_time_after_reset = spec.timers.idle_hold_after_reset;

    peer.ebgp_multihop = Some(api::EbgpMultihop {
        enabled: spec.multihop_ttl.is_some(),
        multihop_ttl: spec.multihop_ttl.map(u32::from).unwrap_or_default(),
    });
    peer.graceful_restart = Some(match spec.graceful_restart {
        Some(gr) => api::GracefulRestart {
            enabled: true,
            restart_time: gr.restart_time,
            deferral_time: gr.deferral_time,
            local_restarting: restarting,
            ..api::GracefulRestart::default()
        },
        None => api::GracefulRestart::default(),
    });
    peer.bfd = Some(match spec.bfd {
        Some(bfd) => api::BfdPeerConfig {
            enabled: true,
            port: 0,
            desired_minimum_tx_interval: bfd.min_tx_us,
            required_minimum_receive: bfd.min_rx_us,
            detection_multiplier: bfd.multiplier,
        },
        None => api::BfdPeerConfig::default(),
    });
    peer.afi_safis = afi_safis(spec, &peer.afi_safis);
}

/// The `AddPeer` message for a new neighbor. `restarting` makes it greet the router as a
/// restarting speaker (graceful restart only).
pub(crate) fn new_peer(address: IpAddr, spec: &PeerSpec, restarting: bool) -> api::Peer {
    let mut peer = api::Peer::default();
    write_owned(&mut peer, address, spec, restarting);
    peer
}

/// The `UpdatePeer` message: what `ListPeer` reported (`current`), read-only state removed,
/// with the fields we own replaced.
pub(crate) fn updated_peer(current: &api::Peer, address: IpAddr, spec: &PeerSpec) -> api::Peer {
    let mut peer = current.clone();
    peer.state = None;
    write_owned(&mut peer, address, spec, false);
    peer
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::announce::desired::Afi;
    use baremetal_ccm_core::fixtures::desired_peer_with_every_option as desired;

    #[test]
    fn an_added_peer_reads_back_as_its_spec() {
        let spec = PeerSpec::from_desired(&desired(), 64512);
        let address = desired().address;
        let message = new_peer(address, &spec, true);
        assert!(
            message
                .graceful_restart
                .as_ref()
                .is_some_and(|g| g.local_restarting)
        );
        assert_eq!(peer_spec(&message).expect("readable"), (address, spec));
    }

    #[test]
    fn an_update_keeps_settings_we_do_not_own_and_drops_the_connected_address() {
        let spec = PeerSpec::from_desired(&desired(), 64512);
        let address = desired().address;
        let mut listed = new_peer(address, &spec, false);
        listed.route_reflector = Some(api::RouteReflector {
            route_reflector_client: true,
            route_reflector_cluster_id: "192.0.2.1".into(),
        });
        listed.transport.as_mut().expect("transport").local_address = "192.0.2.1".into();
        listed.afi_safis[0].prefix_limits = Some(api::PrefixLimit {
            family: Some(family(Afi::Ipv4)),
            max_prefixes: 10,
            shutdown_threshold_pct: 0,
        });
        listed.state = Some(api::PeerState::default());

        let mut changed = spec.clone();
        changed.timers.hold_time = 30;
        let update = updated_peer(&listed, address, &changed);
        assert_eq!(update.route_reflector, listed.route_reflector);
        assert_eq!(
            update.afi_safis[0].prefix_limits,
            listed.afi_safis[0].prefix_limits
        );
        assert_eq!(
            update.transport.as_ref().map(|t| t.local_address.as_str()),
            Some("")
        );
        assert_eq!(update.state, None);
        assert_eq!(peer_spec(&update).expect("readable").1, changed);
    }
}
