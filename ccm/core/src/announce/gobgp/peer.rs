//! A neighbor as far as we configure it ([`PeerSpec`]: the fields we own, normalized so that
//! what gobgpd reports back compares equal to what we asked for), and gobgpd's defaults applied
//! to a desired peer. The wire adapter builds the `AddPeer` / `UpdatePeer` messages from it and
//! reads listed neighbors back into it.
//!
//! gobgp v4.8.0 facts used here:
//! - `SetDefaultNeighborConfigValues` (`pkg/config/oc/default.go`) fills connect-retry 120 s,
//!   hold 90 s, keepalive hold/3, graceful-restart time = hold and deferral 360 s when
//!   enabled, BFD port 3784 / multiplier 3 / 1 s intervals, multihop TTL 255, and the
//!   transport local address `0.0.0.0` / `::`;
//! - `ListPeer` reports the *connected* local address once a session is up
//!   (`NewPeerFromConfigStruct` in `pkg/config/oc/util.go`), so the local address cannot be
//!   read back as configuration: we own it and always send it empty (the kernel chooses);
//! - `PeerConf.auth_password` is read back as set, so a password change is seen.

use std::collections::BTreeMap;
use std::time::Duration;

use super::BGP_PORT;
use crate::announce::desired::{Afi, DesiredPeer, Password};

const DEFAULT_CONNECT_RETRY: u64 = 120;
/// gobgpd's `idle-hold-time-after-reset` when 0 is configured.
const DEFAULT_IDLE_HOLD_AFTER_RESET: u64 = 30;
const DEFAULT_HOLD_TIME: u64 = 90;
const DEFAULT_MULTIHOP_TTL: u8 = 255;
/// The Restart Time field of the graceful-restart capability has 12 bits (RFC 4724).
const MAX_RESTART_TIME: u32 = 4095;
/// Upper bound of the selection deferral after a restart. We learn no routes, so waiting
/// for the routers' End-of-RIB buys nothing; it only matters while a router is down during
/// our restart, and then it delays the other routers' updates by up to this long.
const MAX_DEFERRAL: u32 = 10;

/// An address family of a session as gobgpd holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionFamily {
    Unicast(Afi),
    /// A family we never configure (found on a peer someone else changed).
    Other {
        afi: i32,
        safi: i32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilySpec {
    pub graceful_restart: bool,
    pub add_path_send_max: u32,
    pub add_path_receive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub connect_retry: u64,
    pub hold_time: u64,
    pub keepalive: u64,
    pub idle_hold_after_reset: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartSpec {
    pub restart_time: u32,
    pub deferral_time: u32,
}

/// Intervals in microseconds, as gobgpd and the BFD wire carry them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdSpec {
    pub min_tx_us: u32,
    pub min_rx_us: u32,
    pub multiplier: u32,
}

/// The settings of one neighbor that converge owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub port: u16,
    pub peer_asn: u32,
    pub local_asn: u32,
    /// The `BGPPeer` the session comes from, shown by `gobgp neighbor <address>`.
    pub description: String,
    pub password: Option<Password>,
    pub multihop_ttl: Option<u8>,
    pub timers: Timers,
    pub graceful_restart: Option<GracefulRestartSpec>,
    pub bfd: Option<BfdSpec>,
    pub families: BTreeMap<SessionFamily, FamilySpec>,
    pub passive: bool,
}

fn seconds_up(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

impl PeerSpec {
    /// What gobgpd holds once `peer` is configured on a daemon whose global ASN is
    /// `global_asn` (its defaults applied the way `SetDefaultNeighborConfigValues` does).
    pub fn from_desired(peer: &DesiredPeer, global_asn: u32) -> PeerSpec {
        let hold_time = match seconds_up(peer.hold_time) {
            0 => DEFAULT_HOLD_TIME,
            secs => secs,
        };
        let timers = Timers {
            connect_retry: match seconds_up(peer.connect_retry) {
                0 => DEFAULT_CONNECT_RETRY,
                secs => secs,
            },
            hold_time,
            keepalive: match seconds_up(peer.keepalive) {
                0 => hold_time / 3,
                secs => secs,
            },
            idle_hold_after_reset: match seconds_up(peer.idle_hold_after_reset) {
                0 => DEFAULT_IDLE_HOLD_AFTER_RESET,
                secs => secs,
            },
        };
        let graceful_restart = peer.graceful_restart.map(|time| {
            let restart_time = match seconds_up(time) {
                0 => hold_time,
                secs => secs,
            };
            let restart_time = u32::try_from(restart_time)
                .unwrap_or(MAX_RESTART_TIME)
                .min(MAX_RESTART_TIME);
            GracefulRestartSpec {
                restart_time,
                deferral_time: (restart_time / 2).clamp(1, MAX_DEFERRAL),
            }
        });
        let families = peer
            .families
            .iter()
            .map(|afi| {
                let spec = FamilySpec {
                    graceful_restart: graceful_restart.is_some(),
                    add_path_send_max: peer.add_path_send_max.into(),
                    add_path_receive: false,
                };
                (SessionFamily::Unicast(*afi), spec)
            })
            .collect();
        PeerSpec {
            port: if peer.port == 0 { BGP_PORT } else { peer.port },
            peer_asn: peer.peer_asn,
            local_asn: if peer.local_asn == 0 {
                global_asn
            } else {
                peer.local_asn
            },
            description: peer.source.clone(),
            password: peer.password.clone().filter(|p| !p.0.is_empty()),
            multihop_ttl: peer.multihop_ttl.map(|ttl| match ttl {
                0 => DEFAULT_MULTIHOP_TTL,
                ttl => ttl,
            }),
            timers,
            graceful_restart,
            bfd: peer.bfd.map(|bfd| BfdSpec {
                min_tx_us: micros(bfd.min_tx),
                min_rx_us: micros(bfd.min_rx),
                multiplier: bfd.multiplier.into(),
            }),
            families,
            passive: false,
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::fixtures::desired_peer_with_every_option as desired;

    #[test]
    fn gobgpd_defaults_are_applied_to_the_desired_peer() {
        let spec = PeerSpec::from_desired(&desired(), 64512);
        assert_eq!(spec.local_asn, 64512, "local ASN 0 is the global ASN");
        assert_eq!(
            spec.timers.keepalive, 3,
            "keepalive 0 is a third of the hold time"
        );
        assert_eq!(spec.timers.connect_retry, 2, "sub-second parts round up");
        assert_eq!(spec.multihop_ttl, Some(255));
        assert_eq!(
            spec.graceful_restart,
            Some(GracefulRestartSpec {
                restart_time: 60,
                deferral_time: 10
            })
        );
        assert_eq!(spec.bfd.map(|b| b.min_tx_us), Some(100_000));
    }

    #[test]
    fn an_empty_password_is_no_password() {
        let mut peer = desired();
        peer.password = Some(Password(String::new()));
        assert_eq!(PeerSpec::from_desired(&peer, 1).password, None);
    }
}
