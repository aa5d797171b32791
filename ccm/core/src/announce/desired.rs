//! The state a GoBGP daemon should hold, as plain data: global settings, peers, the export
//! policy carrying per-pool attributes, and the locally originated paths. Computed by the
//! planner from the cluster, applied by the GoBGP adapter's single `converge` call.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;

/// Everything the daemon holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DesiredDaemon {
    pub global: Global,
    /// Peers by address.
    pub peers: BTreeMap<IpAddr, DesiredPeer>,
    /// The export policy: one rule per pool that has attributes or a peer selector, in order.
    /// Prefixes no rule matches are exported unchanged; nothing is ever imported.
    pub export: Vec<ExportRule>,
    /// Locally originated paths.
    pub paths: BTreeSet<DesiredPath>,
}

/// `StartBgp` settings. A change of any of them restarts the daemon's BGP instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// The TCP port the daemon listens on; -1: it listens on none (it only connects out),
    /// so a daemon in the host network never takes port 179 from the host.
    pub listen_port: i32,
}

impl Default for Global {
    fn default() -> Self {
        Self {
            asn: 0,
            router_id: Ipv4Addr::UNSPECIFIED,
            listen_port: -1,
        }
    }
}

/// An address family of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Afi {
    Ipv4,
    Ipv6,
}

impl Afi {
    pub fn of(address: &IpAddr) -> Afi {
        match address {
            IpAddr::V4(_) => Afi::Ipv4,
            IpAddr::V6(_) => Afi::Ipv6,
        }
    }

    pub fn of_net(net: &IpNet) -> Afi {
        Afi::of(&net.addr())
    }
}

/// A BGP password; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdSettings {
    pub min_rx: Duration,
    pub min_tx: Duration,
    pub multiplier: u8,
}

/// One neighbour, as `AddPeer` configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredPeer {
    pub address: IpAddr,
    /// 179 unless the BGPPeer says otherwise.
    pub port: u16,
    pub peer_asn: u32,
    pub local_asn: u32,
    /// The `BGPPeer` this session comes from (its name), for status and logs.
    pub source: String,
    pub password: Option<Password>,
    /// eBGP multihop TTL; `None` is single hop.
    pub multihop_ttl: Option<u8>,
    pub hold_time: Duration,
    pub keepalive: Duration,
    pub connect_retry: Duration,
    /// How long the session stays idle after a reset (a BFD failure): gobgpd's
    /// `idle-hold-time-after-reset`.
    pub idle_hold_after_reset: Duration,
    /// Graceful restart with this restart time; `None` is off.
    pub graceful_restart: Option<Duration>,
    pub bfd: Option<BfdSettings>,
    /// Families negotiated (and announced) on the session.
    pub families: BTreeSet<Afi>,
    /// ADD-PATH: how many paths per prefix may be sent; 0 is off.
    pub add_path_send_max: u8,
}

/// A large community `global:local1:local2`.
pub use crate::crd::community::LargeCommunity;

/// Attributes and reach of one pool's prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRule {
    /// Stable name (the pool's), used for the daemon's prefix and neighbor sets.
    pub name: String,
    /// The exact prefixes announced from the pool.
    pub prefixes: BTreeSet<IpNet>,
    /// The peers allowed to receive them; `None` is every peer.
    pub peers: Option<BTreeSet<IpAddr>>,
    /// Standard communities (RFC 1997) as 32-bit values (`asn << 16 | value`).
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF (iBGP sessions only; eBGP routers never see it).
    pub local_preference: Option<u32>,
}

/// One locally originated path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DesiredPath {
    pub prefix: IpNet,
    /// The next hop: a node's address in central placement, or unspecified (`0.0.0.0`,
    /// `::`) for next-hop-self in node-local placement.
    pub next_hop: IpAddr,
    /// The ADD-PATH path identifier, distinct per next hop of one prefix (0 in node-local
    /// placement, where each speaker has one path per prefix).
    pub path_id: u32,
}
