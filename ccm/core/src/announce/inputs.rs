//! What the announcer reads from the cluster, as plain data: which nodes may carry traffic
//! and at which address, which Service addresses are ours to announce and from which pool,
//! where Services have ready local endpoints, and the BGP pools and peers as validated specs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt as _;

use super::desired::{Afi, BfdSettings, DesiredPeer};
use crate::crd::bgppeer::{BGPPeer, Family, Placement, SecretKeyRef};
use crate::crd::ippool::{BgpAnnouncement, IPPool};
use crate::selector::Selector;

/// `BGPPeer.spec.idleHoldAfterResetSeconds` when absent: long enough to damp a flapping
/// session, short enough that a router restart or a BFD failure costs seconds, not gobgpd's
/// 30.
pub const DEFAULT_IDLE_HOLD_AFTER_RESET_SECONDS: u32 = 5;

use crate::contract::{ALLOCATED_FROM, Exclusion, FINALIZER, UNINITIALIZED_TAINT};
pub use crate::contract::{AUTOSCALER_TAINT, EXCLUDE_LABEL};

/// A node as the announcer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Why the node may not carry load-balancer traffic, if it may not.
    pub ineligible: Option<&'static str>,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

impl NodeInput {
    pub fn address(&self, afi: Afi) -> Option<IpAddr> {
        match afi {
            Afi::Ipv4 => self.ipv4.map(IpAddr::V4),
            Afi::Ipv6 => self.ipv6.map(IpAddr::V6),
        }
    }
}

/// Reads a Node: eligibility (not being deleted, not marked for deletion by the cluster
/// autoscaler, not excluded by label, initialized and Ready) and its first InternalIP (else
/// ExternalIP) of each family.
pub fn node_input(node: &Node) -> NodeInput {
    let labels = node.labels().clone();
    let taints = (node.spec.as_ref().and_then(|s| s.taints.as_deref())).unwrap_or_default();
    let ready = (node.status.as_ref().and_then(|s| s.conditions.as_deref()))
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let ineligible = if let Some(exclusion) = Exclusion::of(node) {
        Some(exclusion.reason())
    } else if (taints.iter()).any(|t| t.key == UNINITIALIZED_TAINT) {
        Some("not initialized")
    } else if !ready {
        Some("not Ready")
    } else {
        None
    };
    let addresses = (node.status.as_ref().and_then(|s| s.addresses.as_deref())).unwrap_or_default();
    let first = |kind: &str, v4: bool| {
        (addresses.iter())
            .filter(|a| a.type_ == kind)
            .filter_map(|a| a.address.parse::<IpAddr>().ok())
            .find(|ip| ip.is_ipv4() == v4)
    };
    let pick = |v4| first("InternalIP", v4).or_else(|| first("ExternalIP", v4));
    NodeInput {
        name: node.name_any(),
        labels,
        ineligible,
        ipv4: pick(true).and_then(|ip| match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(_) => None,
        }),
        ipv6: pick(false).and_then(|ip| match ip {
            IpAddr::V6(v6) => Some(v6),
            IpAddr::V4(_) => None,
        }),
    }
}

/// A Service address to announce and the pool it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInput {
    pub namespace: String,
    pub name: String,
    pub addresses: Vec<(IpAddr, String)>,
    /// `externalTrafficPolicy: Local`: only nodes with a ready local endpoint carry it.
    pub local_only: bool,
}

/// Reads a Service whose addresses the service-lb controller allocated (our finalizer and
/// `allocated-from` annotation, one pool per address in order); `None` for any other.
pub fn service_input(service: &Service) -> Option<ServiceInput> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer")
        || service.metadata.deletion_timestamp.is_some()
    {
        return None;
    }
    if !service.finalizers().iter().any(|f| f == FINALIZER) {
        return None;
    }
    let pools: Vec<String> = (service.annotations().get(ALLOCATED_FROM)?)
        .split(',')
        .map(|p| p.trim().to_owned())
        .collect();
    let held = crate::contract::held_addresses(service);
    let addresses: Vec<(IpAddr, String)> = held.into_iter().zip(pools).collect();
    (!addresses.is_empty()).then(|| ServiceInput {
        namespace: service.namespace().unwrap_or_default(),
        name: service.name_any(),
        addresses,
        local_only: spec.external_traffic_policy.as_deref() == Some("Local"),
    })
}

/// Where each Service (namespace, name) has ready endpoints, by node name.
pub type LocalEndpoints = BTreeMap<(String, String), BTreeSet<String>>;

/// Collects the nodes with ready endpoints of each Service from its EndpointSlices (read as
/// layer 2 reads them: [`crate::l2::plan::local_endpoints`]; BGP announces ready ones only).
pub fn local_endpoints<'a>(slices: impl IntoIterator<Item = &'a EndpointSlice>) -> LocalEndpoints {
    (crate::l2::plan::local_endpoints(slices).into_iter())
        .map(|(service, nodes)| (service, nodes.ready))
        .collect()
}

/// A BGP pool by name, with its announcement options parsed.
#[derive(Debug, Clone)]
pub struct PoolInput {
    pub name: String,
    pub announcement: BgpAnnouncement,
}

/// Reads a pool with `mode: bgp`; `None` for other modes, an error naming the field when an
/// option cannot be used (admission rules catch most of these first).
pub fn pool_input(pool: &IPPool) -> Option<Result<PoolInput, String>> {
    let announcement = pool.bgp_announcement()?;
    Some(announcement.map(|announcement| PoolInput {
        name: pool.name_any(),
        announcement,
    }))
}

/// A BGP peer, validated: where its session runs, and the session itself (without its
/// password, which the plan resolves from the Secret reference).
#[derive(Debug, Clone)]
pub struct PeerInput {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub placement: Placement,
    pub node_selector: Option<Selector>,
    pub password: Option<SecretKeyRef>,
    pub session: DesiredPeer,
}

/// Reads a BGPPeer; an error (for its status) names what cannot be configured.
pub fn peer_input(peer: &BGPPeer) -> Result<PeerInput, String> {
    let spec = &peer.spec;
    let address: IpAddr = (spec.peer_address.parse())
        .map_err(|_not_ip| format!("peerAddress {:?} is not an IP address", spec.peer_address))?;
    let hold = spec.hold_time_seconds.unwrap_or(90);
    if hold != 0 && hold < 3 {
        return Err(format!("holdTimeSeconds {hold}: must be 0 or at least 3"));
    }
    let keepalive = spec.keepalive_seconds.unwrap_or(hold / 3);
    if hold != 0 && keepalive >= hold {
        return Err(format!(
            "keepaliveSeconds {keepalive} must be below holdTimeSeconds {hold}"
        ));
    }
    let node_selector = match (&spec.node_selector, spec.placement) {
        (Some(_), Placement::Central) => {
            return Err("nodeSelector applies only to placement nodeLocal".into());
        }
        (Some(selector), Placement::NodeLocal) => Some(
            Selector::new(&crate::crd::selector_spec(selector))
                .map_err(|errors| format!("nodeSelector: {}", errors[0]))?,
        ),
        (None, _) => None,
    };
    let families: BTreeSet<Afi> = if spec.families.is_empty() {
        [Afi::of(&address)].into()
    } else {
        (spec.families.iter())
            .map(|f| match f {
                Family::IPv4 => Afi::Ipv4,
                Family::IPv6 => Afi::Ipv6,
            })
            .collect()
    };
    let ms =
        |value: Option<u32>, default: u64| Duration::from_millis(value.map_or(default, u64::from));
    let session = DesiredPeer {
        address,
        port: spec.port.unwrap_or(179),
        peer_asn: spec.peer_asn,
        local_asn: spec.local_asn,
        source: peer.name_any(),
        password: None,
        multihop_ttl: spec.ebgp_multihop_ttl,
        hold_time: Duration::from_secs(u64::from(hold)),
        keepalive: Duration::from_secs(u64::from(keepalive)),
        connect_retry: Duration::from_secs(u64::from(spec.connect_retry_seconds.unwrap_or(5))),
        idle_hold_after_reset: Duration::from_secs(u64::from(
            spec.idle_hold_after_reset_seconds
                .unwrap_or(DEFAULT_IDLE_HOLD_AFTER_RESET_SECONDS),
        )),
        graceful_restart: (spec.graceful_restart.as_ref())
            .map(|gr| Duration::from_secs(u64::from(gr.restart_time_seconds.unwrap_or(120)))),
        bfd: spec.bfd.as_ref().map(|bfd| BfdSettings {
            min_rx: ms(bfd.min_rx_ms, 300),
            min_tx: ms(bfd.min_tx_ms, 300),
            multiplier: bfd.multiplier.unwrap_or(3),
        }),
        families,
        add_path_send_max: match spec.placement {
            Placement::Central => spec.add_path_send_max.unwrap_or(16),
            Placement::NodeLocal => 0,
        },
    };
    Ok(PeerInput {
        name: peer.name_any(),
        labels: peer.labels().clone(),
        placement: spec.placement,
        node_selector,
        password: spec.password_secret_ref.clone(),
        session,
    })
}
