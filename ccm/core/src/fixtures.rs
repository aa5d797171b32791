//! Example values of the core's types for tests — this crate's, the binary's and the
//! integration tests' (feature `fixtures`, enabled for them as a dev-dependency) — so that
//! each fixture exists once.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use crate::announce::desired::{Afi, BfdSettings, DesiredPeer, Password};

/// A plain session to `address` (ASN 64500 from local 64512, source `tor`) with short timers
/// (hold 9 s, keepalive 3 s, connect-retry 1 s), in the address's family; no password,
/// graceful restart, BFD or ADD-PATH. Change fields with struct update syntax.
pub fn desired_peer(address: IpAddr) -> DesiredPeer {
    DesiredPeer {
        address,
        port: 179,
        peer_asn: 64500,
        local_asn: 64512,
        source: "tor".into(),
        password: None,
        multihop_ttl: None,
        hold_time: Duration::from_secs(9),
        keepalive: Duration::from_secs(3),
        connect_retry: Duration::from_secs(1),
        idle_hold_after_reset: Duration::from_secs(1),
        graceful_restart: None,
        bfd: None,
        families: BTreeSet::from([Afi::of(&address)]),
        add_path_send_max: 0,
    }
}

/// A peer with every option set (password, graceful restart, BFD, ADD-PATH) and the values
/// gobgpd fills in left at zero (local ASN, keepalive, multihop TTL): what converting it to
/// gobgpd's form and back must keep.
pub fn desired_peer_with_every_option() -> DesiredPeer {
    DesiredPeer {
        local_asn: 0,
        source: "tor-a".into(),
        password: Some(Password("secret".into())),
        multihop_ttl: Some(0),
        keepalive: Duration::ZERO,
        connect_retry: Duration::from_millis(1500),
        idle_hold_after_reset: Duration::from_secs(3),
        graceful_restart: Some(Duration::from_secs(60)),
        bfd: Some(BfdSettings {
            min_rx: Duration::from_millis(100),
            min_tx: Duration::from_millis(100),
            multiplier: 3,
        }),
        add_path_send_max: 8,
        ..desired_peer("192.0.2.254".parse().expect("a literal address"))
    }
}
