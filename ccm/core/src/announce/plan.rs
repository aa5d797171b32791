//! The announcer's decision: from the cluster's pools, peers, Services, endpoints and nodes
//! to the exact state one speaker's GoBGP daemon should hold. Every controller replica (and,
//! in node-local placement, every node's speaker) computes it alone from the same inputs, so
//! no coordination is needed and routers see the same paths from every replica.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::desired::{Afi, DesiredDaemon, DesiredPath, ExportRule, Global, Password};
use super::inputs::{LocalEndpoints, NodeInput, PeerInput, PoolInput, ServiceInput};
use crate::crd::bgppeer::{Placement, SecretKeyRef};
use crate::rendezvous;

/// Who runs the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Speaker {
    /// A controller replica: central peers; the eligible nodes are next hops, at most the
    /// pool's `maxNextHops` of them a prefix, the highest in rank for it.
    Central { asn: u32, router_id: Ipv4Addr },
    /// A node's speaker: the node-local peers selecting this node; next hop self.
    NodeLocal {
        node: String,
        asn: u32,
        router_id: Ipv4Addr,
    },
}

/// Everything the plan is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub pools: &'a [PoolInput],
    pub peers: &'a [PeerInput],
    pub services: &'a [ServiceInput],
    pub endpoints: &'a LocalEndpoints,
    pub nodes: &'a [NodeInput],
}

/// The plan: the daemon state, and the peers that could not be configured and why (for
/// their status).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub daemon: DesiredDaemon,
    pub skipped_peers: BTreeMap<String, String>,
    /// Names of the BGPPeers configured in this daemon, by address.
    pub peer_names: BTreeMap<IpAddr, String>,
    /// Central placement: the largest `maxNextHops` of the pools with a prefix announced
    /// (`None` in node-local placement, or with nothing announced).
    pub max_next_hops: Option<usize>,
}

/// What central placement remembers from one plan to the next: each family's next-hop
/// rankings ([`rendezvous::Rankings`]), so that a node becoming eligible or not re-ranks only
/// the prefixes it touches instead of weighing every node for every prefix again (1,000 nodes
/// and 10,000 prefixes are ten million hashes). Plans are the same with or without it.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    v4: rendezvous::Rankings,
    v6: rendezvous::Rankings,
}

/// Computes the plan. `password` resolves a peer's Secret reference (an error skips the peer
/// with that message).
pub fn plan(
    speaker: &Speaker,
    inputs: Inputs<'_>,
    password: &dyn Fn(&SecretKeyRef) -> Result<String, String>,
) -> Plan {
    plan_with(speaker, inputs, password, &mut Memory::default())
}

/// [`plan`], ranking next hops with what `memory` kept from the previous plan (and keeping
/// this plan's rankings in it).
pub fn plan_with(
    speaker: &Speaker,
    inputs: Inputs<'_>,
    password: &dyn Fn(&SecretKeyRef) -> Result<String, String>,
    memory: &mut Memory,
) -> Plan {
    let mut plan = Plan::default();
    let (asn, router_id) = match speaker {
        Speaker::Central { asn, router_id } | Speaker::NodeLocal { asn, router_id, .. } => {
            (*asn, *router_id)
        }
    };
    plan.daemon.global = Global {
        asn,
        router_id,
        listen_port: -1,
    };
    let this_node = match speaker {
        Speaker::Central { .. } => None,
        Speaker::NodeLocal { node, .. } => {
            let Some(node) = inputs.nodes.iter().find(|n| &n.name == node) else {
                // The speaker's node is not (yet) known: it announces nothing.
                return plan;
            };
            Some(node)
        }
    };
    select_peers(&mut plan, inputs.peers, this_node, password);
    let by_pool: BTreeMap<&str, &PoolInput> =
        inputs.pools.iter().map(|p| (p.name.as_str(), p)).collect();
    let ids = path_ids(inputs.nodes);
    let mut central = (this_node.is_none()).then(|| Central::new(inputs.nodes, &ids, memory));
    let mut prefixes_of_pool: BTreeMap<&str, BTreeSet<IpNet>> = BTreeMap::new();
    for service in inputs.services {
        let local = (service.local_only).then(|| {
            inputs
                .endpoints
                .get(&(service.namespace.clone(), service.name.clone()))
        });
        let carries = |node: &NodeInput| {
            node.ineligible.is_none()
                && local.is_none_or(|nodes| nodes.is_some_and(|n| n.contains(&node.name)))
        };
        for (address, pool_name) in &service.addresses {
            let Some(pool) = by_pool.get(pool_name.as_str()) else {
                continue;
            };
            let prefix = aggregate(*address, pool);
            let afi = Afi::of(address);
            let k = pool.announcement.max_next_hops;
            let next_hops: Vec<(IpAddr, u32)> = match (this_node, &mut central) {
                (None, Some(central)) if local.is_none() => central.next_hops(prefix, k),
                (None, _) => {
                    let mut carriers: Vec<(&str, IpAddr)> = (inputs.nodes.iter())
                        .filter(|n| carries(n))
                        .filter_map(|n| Some((n.name.as_str(), n.address(afi)?)))
                        .collect();
                    rendezvous::keep_highest(&mut carriers, k, &ranking_key(prefix), |c| c.0);
                    (carriers.into_iter())
                        .map(|(name, address)| (address, ids[name]))
                        .collect()
                }
                (Some(node), _) if carries(node) && node.address(afi).is_some() => {
                    vec![(unspecified(afi), 0)]
                }
                (Some(_), _) => Vec::new(),
            };
            if next_hops.is_empty() {
                continue;
            }
            for (next_hop, path_id) in next_hops {
                plan.daemon.paths.insert(DesiredPath {
                    prefix,
                    next_hop,
                    path_id,
                });
            }
            prefixes_of_pool
                .entry(pool.name.as_str())
                .or_default()
                .insert(prefix);
        }
    }
    plan.daemon.export = export_rules(inputs, &plan, &prefixes_of_pool);
    if let Some(central) = central {
        central.forget_unused();
        plan.max_next_hops = (prefixes_of_pool.keys())
            .filter_map(|name| by_pool.get(name))
            .map(|pool| pool.announcement.max_next_hops)
            .max();
    }
    plan
}

/// Central placement's candidates: every eligible node with an address of the family is a
/// candidate next hop of every prefix (but those of `externalTrafficPolicy: Local`
/// Services, ranked apart among the nodes with endpoints).
struct Central<'a> {
    memory: &'a mut Memory,
    v4: HashMap<&'a str, IpAddr>,
    v6: HashMap<&'a str, IpAddr>,
    ids: &'a BTreeMap<&'a str, u32>,
}

impl<'a> Central<'a> {
    fn new(
        nodes: &'a [NodeInput],
        ids: &'a BTreeMap<&'a str, u32>,
        memory: &'a mut Memory,
    ) -> Self {
        let eligible = |afi| -> HashMap<&str, IpAddr> {
            (nodes.iter())
                .filter(|n| n.ineligible.is_none())
                .filter_map(|n| Some((n.name.as_str(), n.address(afi)?)))
                .collect()
        };
        let (v4, v6) = (eligible(Afi::Ipv4), eligible(Afi::Ipv6));
        memory.v4.set_candidates(v4.keys().copied());
        memory.v6.set_candidates(v6.keys().copied());
        Self {
            memory,
            v4,
            v6,
            ids,
        }
    }

    /// The next hops of `prefix` (at most `k`, the highest in rank) and their path IDs.
    fn next_hops(&mut self, prefix: IpNet, k: usize) -> Vec<(IpAddr, u32)> {
        let (rankings, addresses) = match Afi::of_net(&prefix) {
            Afi::Ipv4 => (&mut self.memory.v4, &self.v4),
            Afi::Ipv6 => (&mut self.memory.v6, &self.v6),
        };
        (rankings.top(&ranking_key(prefix), k).iter())
            .map(|(_, name)| (addresses[&**name], self.ids[&**name]))
            .collect()
    }

    /// Forgets the rankings of prefixes this plan did not announce.
    fn forget_unused(self) {
        self.memory.v4.forget_unused();
        self.memory.v6.forget_unused();
    }
}

fn select_peers(
    plan: &mut Plan,
    peers: &[PeerInput],
    this_node: Option<&NodeInput>,
    password: &dyn Fn(&SecretKeyRef) -> Result<String, String>,
) {
    let mut sorted: Vec<&PeerInput> = peers.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for peer in sorted {
        let selected = match (this_node, peer.placement) {
            (None, Placement::Central) => true,
            (Some(node), Placement::NodeLocal) => {
                (peer.node_selector.as_ref()).is_none_or(|s| s.matches(&node.labels))
            }
            _ => false,
        };
        if !selected {
            continue;
        }
        let address = peer.session.address;
        if let Some(first) = plan.peer_names.get(&address) {
            let note = format!("peer address {address} is already configured by BGPPeer {first}");
            plan.skipped_peers.insert(peer.name.clone(), note);
            continue;
        }
        let mut session = peer.session.clone();
        if let Some(reference) = &peer.password {
            match password(reference) {
                Ok(secret) => session.password = Some(Password(secret)),
                Err(note) => {
                    plan.skipped_peers.insert(peer.name.clone(), note);
                    continue;
                }
            }
        }
        plan.peer_names.insert(address, peer.name.clone());
        plan.daemon.peers.insert(address, session);
    }
}

fn export_rules(
    inputs: Inputs<'_>,
    plan: &Plan,
    prefixes_of_pool: &BTreeMap<&str, BTreeSet<IpNet>>,
) -> Vec<ExportRule> {
    let mut pools: Vec<&PoolInput> = inputs
        .pools
        .iter()
        .filter(|p| p.announcement.has_rule())
        .collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    let mut rules = Vec::new();
    for pool in pools {
        let Some(prefixes) = prefixes_of_pool.get(pool.name.as_str()) else {
            continue;
        };
        let peers = pool.announcement.peer_selector.as_ref().map(|selector| {
            (inputs.peers.iter())
                .filter(|p| selector.matches(&p.labels))
                .filter(|p| plan.peer_names.get(&p.session.address) == Some(&p.name))
                .map(|p| p.session.address)
                .collect()
        });
        rules.push(ExportRule {
            name: pool.name.clone(),
            prefixes: prefixes.clone(),
            peers,
            communities: pool.announcement.communities.clone(),
            large_communities: pool.announcement.large_communities.clone(),
            local_preference: pool.announcement.local_preference,
        });
    }
    rules
}

/// The prefix announced for `address` from `pool`: the host route, or the covering prefix of
/// the pool's aggregation length.
/// What a prefix's next hops are ranked by: the address alone for a host route (as layer 2
/// ranks an address's owners), the prefix for an aggregate.
fn ranking_key(prefix: IpNet) -> String {
    if prefix.prefix_len() == prefix.max_prefix_len() {
        prefix.addr().to_string()
    } else {
        prefix.to_string()
    }
}

fn aggregate(address: IpAddr, pool: &PoolInput) -> IpNet {
    let length = match address {
        IpAddr::V4(_) => pool.announcement.aggregation_v4,
        IpAddr::V6(_) => pool.announcement.aggregation_v6,
    };
    IpNet::new(address, length)
        .expect("aggregation lengths are clamped to the family's width")
        .trunc()
}

fn unspecified(afi: Afi) -> IpAddr {
    match afi {
        Afi::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Afi::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// A stable, non-zero ADD-PATH identifier per node: a hash of its name, collisions moved to
/// the next free value in name order. It does not depend on which nodes are eligible, so a
/// node's paths keep their identifier while others come and go.
pub fn path_ids(nodes: &[NodeInput]) -> BTreeMap<&str, u32> {
    let mut names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    let mut taken = BTreeSet::new();
    let mut ids = BTreeMap::new();
    for name in names {
        let mut id = fnv1a(name.as_bytes()).max(1);
        while !taken.insert(id) {
            id = id.checked_add(1).unwrap_or(1);
        }
        ids.insert(name, id);
    }
    ids
}

/// FNV-1a, 32 bits: a stable hash of a name (path identifiers, derived router IDs).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}
