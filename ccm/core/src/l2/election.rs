//! Which node owns each layer-2 address (design 0003): eligibility, the rendezvous ranking and
//! the hold-down, as a function of the membership view, the Nodes' API facts, the pool's
//! options and the Service's local endpoints. Every speaker computes the same answer from the
//! same inputs, so owning needs no lock and no API call.

mod changes;
#[cfg(test)]
pub(crate) mod fixtures;
mod interfaces;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt as _;

pub use changes::{ChangeReason, OwnerChange, Snapshot, owner_change, owner_changes};
pub use interfaces::InterfacePattern;

use crate::contract::Exclusion;
use crate::crd::ippool::L2Announcement;

/// One network interface of a member, as its speaker gossips it (the membership carries this
/// very type). Speakers leave out what can never announce (loopback, ports enslaved to a bond
/// or a bridge): the election takes every interface it is given as a possible one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Interface {
    pub name: String,
    /// Operationally up: a down interface announces nothing.
    pub up: bool,
    pub mac: [u8; 6],
    /// Its addresses with their prefix lengths (what tells which subnets it is on).
    pub addresses: Vec<IpNet>,
}

/// Where a member is in the membership's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Liveness {
    Alive,
    /// Shutting down (it gossiped that it leaves): still answers probes, owns nothing.
    Leaving,
    /// Declared failed by the membership.
    Down,
}

/// A speaker as the membership sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub liveness: Liveness,
    /// The speaker says it can answer (its sockets are open).
    pub ready: bool,
    /// Joined or rejoined within the hold-down: owns only when no settled node can.
    pub settling: bool,
    pub interfaces: Vec<Interface>,
    /// Addresses it found held by a machine outside the cluster (it gossips them): while it
    /// is alive, nobody announces them ([`elect`]).
    pub conflicts: BTreeSet<IpAddr>,
}

/// What the API says about a Node, as far as the election cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub labels: BTreeMap<String, String>,
    pub excluded: Option<Exclusion>,
}

impl NodeFacts {
    /// The facts of `node`: its labels and whether it is excluded ([`Exclusion::of`]).
    pub fn of(node: &Node) -> NodeFacts {
        NodeFacts {
            labels: node.labels().clone(),
            excluded: Exclusion::of(node),
        }
    }
}

/// The membership and the Nodes, by node name. Maps, not lists: the answer must not depend on
/// the order in which a speaker learnt about its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub members: BTreeMap<String, Member>,
    pub nodes: BTreeMap<String, NodeFacts>,
}

/// Nodes with endpoints of an `externalTrafficPolicy: Local` Service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalEndpoints {
    /// Nodes with a ready endpoint.
    pub ready: BTreeSet<String>,
    /// Nodes with an endpoint that is serving and terminating (kube-proxy's fallback when a
    /// node has no ready one).
    pub serving_terminating: BTreeSet<String>,
}

/// One address to elect an owner for.
#[derive(Debug, Clone, Copy)]
pub struct Address<'a> {
    pub address: IpAddr,
    /// The options of the pool the address came from.
    pub options: &'a L2Announcement,
    /// `None` for `externalTrafficPolicy: Cluster`.
    pub local: Option<&'a LocalEndpoints>,
}

/// A node that may own an address, and where it would announce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub node: String,
    /// Interface names, sorted; never empty.
    pub interfaces: Vec<String>,
}

/// The outcome of the election of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// Candidates best first: the owner, then its successor, and so on; never empty.
    Ranked(Vec<Candidate>),
    /// Nobody announces the address.
    NoEligibleNode(NoEligibleNode),
}

impl Ownership {
    pub fn owner(&self) -> Option<&Candidate> {
        match self {
            Ownership::Ranked(candidates) => candidates.first(),
            Ownership::NoEligibleNode(_) => None,
        }
    }

    /// The node that takes over when the owner fails (and watches it meanwhile).
    pub fn successor(&self) -> Option<&Candidate> {
        match self {
            Ownership::Ranked(candidates) => candidates.get(1),
            Ownership::NoEligibleNode(_) => None,
        }
    }
}

/// Why one node cannot own one address, in the order the checks run: the later a node
/// fails, the closer it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ineligible {
    /// Not in the membership, or declared failed.
    NotAlive,
    Leaving,
    /// Its speaker is not ready.
    NotReady,
    /// No Node of that name is known.
    UnknownNode,
    Excluded(Exclusion),
    /// Its labels do not match the pool's `nodeSelector`.
    NotSelected,
    /// No interface that is up on the address's subnet (or matching the pool's `interfaces`).
    NoAnnouncingInterface,
    /// `externalTrafficPolicy: Local` and no endpoint of the Service on it (ready or, when no
    /// eligible node has a ready one, serving and terminating).
    NoLocalEndpoint,
}

/// Why no node owns an address: the check that even the closest node failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoEligibleNode {
    NoMemberAlive,
    NoSpeakerReady,
    /// Every ready speaker's Node is excluded from load balancers or unknown.
    NoNodeIncluded,
    NoneMatchesSelector,
    /// No candidate has an interface that is up on the address's subnet (`by_subnet`), or
    /// matching the pool's `interfaces`.
    NoAnnouncingInterface {
        by_subnet: bool,
    },
    NoReadyLocalEndpoint,
    /// A speaker found a machine outside the cluster holding the address: the whole cluster
    /// leaves it alone until that speaker finds it free again (or is gone).
    AddressConflict,
    /// Every eligible speaker is settling and the view holds no other alive and ready speaker:
    /// the one alive cannot tell a dead cluster from its own isolation (just started, or its link just
    /// came back after the others were declared down), so it waits out its hold-down.
    SettlingAlone,
}

impl fmt::Display for NoEligibleNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoEligibleNode::NoMemberAlive => "no speaker is alive",
            NoEligibleNode::NoSpeakerReady => "no alive speaker is ready",
            NoEligibleNode::NoNodeIncluded => {
                "every node with a ready speaker is excluded from load balancers or unknown"
            }
            NoEligibleNode::NoneMatchesSelector => "no node matches the pool's nodeSelector",
            NoEligibleNode::NoAnnouncingInterface { by_subnet: true } => {
                "no eligible node has an interface that is up on the address's subnet"
            }
            NoEligibleNode::NoAnnouncingInterface { by_subnet: false } => {
                "no eligible node has an interface that is up and matches the pool's interfaces"
            }
            NoEligibleNode::NoReadyLocalEndpoint => {
                "no eligible node has a ready (or terminating) endpoint of the Service"
            }
            NoEligibleNode::AddressConflict => {
                "a machine outside the cluster holds the address (a speaker found it answering)"
            }
            NoEligibleNode::SettlingAlone => {
                "the only alive speaker is settling and hears from no other speaker yet"
            }
        })
    }
}

/// The rendezvous weight of `node` for `address`: the first 8 bytes, big-endian, of
/// SHA-256(`node` `#` `address`), the address in its canonical text (RFC 5952 for IPv6).
/// Each address ranks every node independently, which is why removing a non-owner moves
/// nothing and adding a node moves about 1/N of the addresses.
pub fn weight(node: &str, address: IpAddr) -> u64 {
    crate::rendezvous::weight(node, &address.to_string())
}

/// Whether `node` gives way to `other` when both answer for `address` (their views differ:
/// one suspects the other wrongly, or the membership is split): the one the ranking puts
/// lower yields, whatever either view says, so two speakers settle the same way without
/// talking. Ties (never seen) go by name.
pub fn yields_to(node: &str, other: &str, address: IpAddr) -> bool {
    (weight(other, address), other) > (weight(node, address), node)
}

/// Where `node` would announce `address`, or why it cannot own it, leaving out the local
/// endpoints (which depend on the other nodes: see [`elect`]).
pub fn check(view: &View, node: &str, address: &Address<'_>) -> Result<Vec<String>, Ineligible> {
    let member = view.members.get(node).ok_or(Ineligible::NotAlive)?;
    match member.liveness {
        Liveness::Alive => {}
        Liveness::Leaving => return Err(Ineligible::Leaving),
        Liveness::Down => return Err(Ineligible::NotAlive),
    }
    if !member.ready {
        return Err(Ineligible::NotReady);
    }
    let facts = view.nodes.get(node).ok_or(Ineligible::UnknownNode)?;
    if let Some(exclusion) = facts.excluded {
        return Err(Ineligible::Excluded(exclusion));
    }
    let selector = address.options.node_selector.as_ref();
    if selector.is_some_and(|s| !s.matches(&facts.labels)) {
        return Err(Ineligible::NotSelected);
    }
    let interfaces = interfaces::announcing(member, address.address, &address.options.interfaces);
    if interfaces.is_empty() {
        return Err(Ineligible::NoAnnouncingInterface);
    }
    Ok(interfaces)
}

/// Whether a speaker that is not down reports `address` held by a machine outside the
/// cluster. Every speaker then stays off it, not just the one that found it: the next in rank
/// announcing it instead would fight the outside machine just the same.
pub fn in_conflict(view: &View, address: IpAddr) -> bool {
    (view.members.values()).any(|m| m.liveness != Liveness::Down && m.conflicts.contains(&address))
}

/// Elects the owner of `address` in `view`: the eligible nodes ranked by [`weight`]; nobody
/// while a speaker reports it [`in_conflict`].
pub fn elect(view: &View, address: &Address<'_>) -> Ownership {
    if in_conflict(view, address.address) {
        return Ownership::NoEligibleNode(NoEligibleNode::AddressConflict);
    }
    let mut closest: Option<Ineligible> = None;
    let mut passed: Vec<Candidate> = Vec::new();
    for node in view.members.keys() {
        match check(view, node, address) {
            Ok(interfaces) => passed.push(Candidate {
                node: node.clone(),
                interfaces,
            }),
            Err(why) => closest = closest.max(Some(why)),
        }
    }
    if passed.is_empty() {
        return Ownership::NoEligibleNode(no_eligible_node(closest, address.options));
    }
    let mut eligible = match address.local {
        None => passed,
        Some(local) => with_local_endpoints(passed, local),
    };
    if eligible.is_empty() {
        return Ownership::NoEligibleNode(NoEligibleNode::NoReadyLocalEndpoint);
    }
    let settled = |c: &Candidate| view.members.get(&c.node).is_some_and(|m| !m.settling);
    if eligible.iter().any(settled) {
        eligible.retain(settled);
    } else if alone(view) {
        return Ownership::NoEligibleNode(NoEligibleNode::SettlingAlone);
    }
    eligible.sort_by_cached_key(|c| {
        (
            std::cmp::Reverse(weight(&c.node, address.address)),
            c.node.clone(),
        )
    });
    Ownership::Ranked(eligible)
}

/// Whether the view holds at most one alive and ready speaker. A settling speaker that hears
/// no other cannot know whether the others are gone or it was cut off from them: right after
/// it started, its view holds only itself until it joins, and a member it has just heard of
/// is not ready until its first state arrives (microseconds later; an election in between
/// took the addresses in the lab); after its link comes back, the others it declared down
/// while isolated are still down in its view for the half second it takes to rejoin. Owning then would drag addresses from their settled owners, which give way to
/// the higher rank on the wire (`yields_to`) and are then held off while the settling one, once
/// it hears them, no longer owns: nobody would answer until it settled.
fn alone(view: &View) -> bool {
    (view.members.values())
        .filter(|m| m.liveness == Liveness::Alive && m.ready)
        .nth(1)
        .is_none()
}

/// The candidates of an `externalTrafficPolicy: Local` Service: those with a ready endpoint;
/// when none has one, those with a serving and terminating one (as kube-proxy falls back).
fn with_local_endpoints(passed: Vec<Candidate>, local: &LocalEndpoints) -> Vec<Candidate> {
    let (ready, rest): (Vec<Candidate>, Vec<Candidate>) = passed
        .into_iter()
        .partition(|c| local.ready.contains(&c.node));
    if !ready.is_empty() {
        return ready;
    }
    (rest.into_iter())
        .filter(|c| local.serving_terminating.contains(&c.node))
        .collect()
}

fn no_eligible_node(closest: Option<Ineligible>, options: &L2Announcement) -> NoEligibleNode {
    match closest {
        None | Some(Ineligible::NotAlive | Ineligible::Leaving) => NoEligibleNode::NoMemberAlive,
        Some(Ineligible::NotReady) => NoEligibleNode::NoSpeakerReady,
        Some(Ineligible::UnknownNode | Ineligible::Excluded(_)) => NoEligibleNode::NoNodeIncluded,
        Some(Ineligible::NotSelected) => NoEligibleNode::NoneMatchesSelector,
        Some(Ineligible::NoAnnouncingInterface) => NoEligibleNode::NoAnnouncingInterface {
            by_subnet: options.interfaces.is_empty(),
        },
        // `check` never says so: the local endpoints are weighed in `elect`.
        Some(Ineligible::NoLocalEndpoint) => NoEligibleNode::NoReadyLocalEndpoint,
    }
}
