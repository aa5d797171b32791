//! What the operator reads about layer 2 (design 0003, "What the operator sees"), decided from
//! what the controller observes as a member of the speakers' membership: the Service condition
//! `baremetal-ccm.io/L2Announced`, the Events on a Service when its address changes owner or
//! is found held by a machine outside the cluster, and the Events on a Node when its speaker
//! reports a host problem.
//!
//! The condition's message has, for each address that has an owner, one clause in a fixed form
//! ([`owner_clause`]); the speakers read it back for one fact: an address with a clause has been
//! announced before, so taking it over needs no probe (a probe on the failover path would cost
//! a second). Clauses about addresses nobody announces never start that way.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt as _;
use serde_json::{Value, json};

use super::election::{
    Address, Candidate, ChangeReason, LocalEndpoints, NoEligibleNode, OwnerChange, Ownership, View,
};
use super::host::Problem;
use super::plan::{Inputs, Plan};
use crate::conditions::{self, Message, WantedCondition};

/// The condition's type.
pub const CONDITION: &str = "baremetal-ccm.io/L2Announced";

/// Every address of the Service has an owner that announces it.
pub const REASON_ANNOUNCED: &str = "Announced";
/// Some address has no eligible node (the message says why, per address).
pub const REASON_NO_ELIGIBLE_NODE: &str = "NoEligibleNode";
/// A speaker found some address held by a machine outside the cluster and does not announce
/// it; it wins over [`REASON_NO_ELIGIBLE_NODE`] when a Service has both.
pub const REASON_ADDRESS_CONFLICT: &str = "AddressConflict";

/// The reason of the Event on a Node whose speaker found a host problem.
pub const EVENT_HOST_PROBLEM: &str = "L2HostProblem";

/// The field manager of the condition's server-side apply: it owns that condition and nothing
/// else of the Service, so the service-lb controller's conditions and `status.loadBalancer`
/// stay its own.
pub const FIELD_MANAGER: &str = "baremetal-ccm-l2-status";

/// The clause naming an address's owner: `<address> by node <node> on <interface> (<mac>)`.
pub fn owner_clause(address: IpAddr, node: &str, interface: &str, mac: [u8; 6]) -> String {
    format!(
        "{address} by node {node} on {interface} ({})",
        mac_text(mac)
    )
}

/// A MAC as `ip link` shows it.
pub fn mac_text(mac: [u8; 6]) -> String {
    let bytes: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    bytes.join(":")
}

/// Whether the Service's condition names an owner of `address`: it was announced before.
pub fn announced_before(service: &Service, address: IpAddr) -> bool {
    let prefix = format!("{address} by node ");
    (service.status.iter())
        .flat_map(|status| status.conditions.iter().flatten())
        .filter(|condition| condition.type_ == CONDITION)
        .any(|condition| (condition.message.split("; ")).any(|clause| clause.starts_with(&prefix)))
}

/// An address a speaker found held by a machine outside the cluster (its probe before the
/// first announcement was answered, or another MAC claimed it on the wire).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Conflict {
    pub address: IpAddr,
    /// The node whose speaker saw it.
    pub node: String,
    pub interface: String,
    /// The outside machine's MAC.
    pub mac: [u8; 6],
}

/// What the observer knows about one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressState {
    /// Its owner, and the interfaces it answers on with their MACs (never empty).
    Owned {
        node: String,
        on: Vec<(String, [u8; 6])>,
    },
    /// Nobody announces it.
    Unowned(NoEligibleNode),
    /// A machine outside the cluster holds it; the speaker that saw it does not announce it.
    Conflict(Conflict),
}

/// The state of every address `plan` elected: a conflict if a speaker reported one (the first
/// by node), else its owner with the MACs the owner gossips for its interfaces, else why
/// nobody owns it.
pub fn address_states(
    plan: &Plan,
    view: &View,
    conflicts: &[Conflict],
) -> BTreeMap<IpAddr, AddressState> {
    let mut conflicts: Vec<&Conflict> = conflicts.iter().collect();
    conflicts.sort();
    let mut states = BTreeMap::new();
    for (address, elected) in &plan.elections {
        let state = if let Some(conflict) = conflicts.iter().find(|c| c.address == *address) {
            AddressState::Conflict((*conflict).clone())
        } else {
            match &elected.ownership {
                Ownership::NoEligibleNode(why) => AddressState::Unowned(*why),
                // Ranked is never empty: its first is the owner.
                Ownership::Ranked(ranked) => match ranked.first() {
                    Some(owner) => owned(owner, view),
                    None => continue,
                },
            }
        };
        states.insert(*address, state);
    }
    states
}

/// The owner and the MACs it gossips for the interfaces it announces on.
fn owned(owner: &Candidate, view: &View) -> AddressState {
    let member = view.members.get(&owner.node);
    let on = (owner.interfaces.iter())
        .map(|name| {
            let mac = (member.into_iter())
                .flat_map(|m| m.interfaces.iter())
                .find(|i| i.name == *name)
                .map_or([0; 6], |i| i.mac);
            (name.clone(), mac)
        })
        .collect();
    AddressState::Owned {
        node: owner.node.clone(),
        on,
    }
}

/// The condition of a Service holding `addresses`, from the states of the layer-2 ones among
/// them; `None` when it holds none (nothing of layer 2 to say).
///
/// `True` (`Announced`) only when every one is announced. A dual-stack Service with one
/// address announced and the other not is `False` with the reason of the one that is not: the
/// Service is not reachable the way it asks to be. Its message still names the announced
/// address's owner, after the clauses saying what is wrong.
pub fn wanted(
    addresses: &[IpAddr],
    states: &BTreeMap<IpAddr, AddressState>,
) -> Option<WantedCondition> {
    let mut mine: Vec<(IpAddr, &AddressState)> = (addresses.iter())
        .filter_map(|a| states.get(a).map(|s| (*a, s)))
        .collect();
    if mine.is_empty() {
        return None;
    }
    mine.sort_by_key(|(address, _)| *address);
    let (mut conflicts, mut unowned, mut owned) = (Vec::new(), Vec::new(), Vec::new());
    for (address, state) in mine {
        match state {
            AddressState::Conflict(c) => conflicts.push(format!(
                "{address} is held by a machine outside the cluster: node {} saw {} answer on {}",
                c.node,
                mac_text(c.mac),
                c.interface
            )),
            AddressState::Unowned(why) => {
                unowned.push(format!("{address} is not announced: {why}"))
            }
            AddressState::Owned { node, on } => owned.extend(
                on.iter()
                    .map(|(interface, mac)| owner_clause(address, node, interface, *mac)),
            ),
        }
    }
    let reason = if !conflicts.is_empty() {
        REASON_ADDRESS_CONFLICT
    } else if !unowned.is_empty() {
        REASON_NO_ELIGIBLE_NODE
    } else {
        REASON_ANNOUNCED
    };
    let status = reason == REASON_ANNOUNCED;
    let clauses: Vec<String> = [conflicts, unowned, owned].concat();
    Some(WantedCondition {
        type_: CONDITION,
        status,
        reason: reason.to_owned(),
        message: clauses.join("; "),
    })
}

/// The server-side apply configuration (field manager [`FIELD_MANAGER`]) that makes the
/// Service's condition `want`, or removes it for `None`; `None` when the Service already
/// says so. `lastTransitionTime` moves only with the status; the generation is not recorded
/// (the condition follows the membership, not the Service's spec).
pub fn apply_config(
    service: &Service,
    want: Option<&WantedCondition>,
    now: Timestamp,
) -> Option<Value> {
    let current = (service.status.iter())
        .flat_map(|s| s.conditions.iter().flatten())
        .find(|c| c.type_ == CONDITION);
    let conditions = match want {
        None => {
            current?;
            Vec::new()
        }
        Some(want) => {
            let merged = conditions::merged(current, want, Message::Wanted, None, now);
            if current == Some(&merged) {
                return None;
            }
            vec![merged]
        }
    };
    Some(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": service.name_any(), "namespace": service.namespace()},
        "status": {"conditions": conditions},
    }))
}

/// The owner of every address `plan` elected (`None`: nobody), kept for the next round.
pub fn owners(plan: &Plan) -> BTreeMap<IpAddr, Option<String>> {
    (plan.elections.iter())
        .map(|(address, e)| (*address, e.ownership.owner().map(|o| o.node.clone())))
        .collect()
}

/// The addresses whose owner changed since `previous` ([`owners`] of the last round), in the
/// round whose `inputs` gave `plan`, and why. An address new since then has not changed owner.
pub fn changes(
    previous: &BTreeMap<IpAddr, Option<String>>,
    inputs: &Inputs<'_>,
    plan: &Plan,
) -> Vec<OwnerChange> {
    let none = LocalEndpoints::default();
    let mut changes = Vec::new();
    for (address, elected) in &plan.elections {
        let Some(from) = previous.get(address) else {
            continue;
        };
        let Some(options) = inputs.pools.get(&elected.pool) else {
            continue;
        };
        let service = (inputs.services.iter())
            .find(|s| (&s.namespace, &s.name) == (&elected.service.0, &elected.service.1));
        let local = (service.is_some_and(|s| s.local_only))
            .then(|| inputs.endpoints.get(&elected.service).unwrap_or(&none));
        let address = Address {
            address: *address,
            options,
            local,
        };
        changes.extend(super::election::owner_change(
            from.as_deref(),
            inputs.view,
            &address,
        ));
    }
    changes
}

/// An Event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub note: String,
}

/// The Event on each Service holding the address of `change`: its reason is the change's; a
/// Warning when the owner failed (its speaker or its link) or nobody announces the address any
/// more.
pub fn owner_change_event(change: &OwnerChange) -> Event {
    let address = change.address;
    let why = match change.reason {
        ChangeReason::NodeFailed => "the previous owner's speaker is down",
        ChangeReason::Handover => "the previous owner's speaker is stopping and handed it over",
        ChangeReason::LinkDown => "the previous owner has no announcing interface up",
        ChangeReason::EndpointsMoved => "the Service's local endpoints moved",
        ChangeReason::NodeIneligible => "the previous owner may no longer announce it",
        ChangeReason::Preference => "a node that ranks first became eligible (rebalanced)",
        ChangeReason::NodeAvailable => "a node became eligible",
    };
    let note = match (&change.from, &change.to) {
        (Some(from), Some(to)) => format!("{address} moved from node {from} to node {to}: {why}"),
        (Some(from), None) => {
            format!("{address} is no longer announced by node {from} and by no other node: {why}")
        }
        (None, Some(to)) => format!("{address} is now announced by node {to}: {why}"),
        (None, None) => format!("{address}: {why}"),
    };
    let failed = matches!(
        change.reason,
        ChangeReason::NodeFailed | ChangeReason::LinkDown
    );
    let warning = change.to.is_none() || failed;
    Event {
        warning,
        reason: change.reason.as_str(),
        note,
    }
}

/// The Warning Event on each Service holding a conflict's address.
pub fn conflict_event(conflict: &Conflict) -> Event {
    Event {
        warning: true,
        reason: REASON_ADDRESS_CONFLICT,
        note: format!(
            "{} is held by a machine outside the cluster: node {} saw {} answer for it on {}; \
             the address is not announced there. Find the machine with that MAC, or give the \
             Service another address",
            conflict.address,
            conflict.node,
            mac_text(conflict.mac),
            conflict.interface
        ),
    }
}

/// The conflicts in `now` that were not in `before`: each is reported once when it appears.
pub fn new_conflicts<'a>(
    before: &'a BTreeSet<Conflict>,
    now: &'a BTreeSet<Conflict>,
) -> Vec<&'a Conflict> {
    now.difference(before).collect()
}

/// The Warning Events on Nodes for the host problems in `now` (labels, by node) that were not
/// in `before`: one per problem when it appears, none while it lasts.
pub fn host_problem_events(
    before: &BTreeMap<String, BTreeSet<String>>,
    now: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<(String, Event)> {
    let empty = BTreeSet::new();
    let mut events = Vec::new();
    for (node, labels) in now {
        let had = before.get(node).unwrap_or(&empty);
        for label in labels.difference(had) {
            let fix = Problem::from_label(label).map_or(
                "a problem this controller does not know (a newer speaker's); see the speaker's log",
                Problem::fix,
            );
            let note = format!("layer 2 host problem {label} on node {node}: {fix}");
            events.push((
                node.clone(),
                Event {
                    warning: true,
                    reason: EVENT_HOST_PROBLEM,
                    note: conditions::bounded(note, conditions::MESSAGE_MAX),
                },
            ));
        }
    }
    events
}
