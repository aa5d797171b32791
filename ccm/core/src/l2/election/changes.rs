//! Which addresses changed owner between two views, and why: what the speaker tells in the
//! Service's Events (design 0003, "What the operator sees").

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{Address, Ineligible, Liveness, Ownership, View, check, elect};

/// A view and the addresses elected in it.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    pub view: &'a View,
    pub addresses: &'a [Address<'a>],
}

/// Why an address changed owner; named as the Event's reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    /// The previous owner is down, or gone from the membership.
    NodeFailed,
    /// The previous owner is leaving (shutting down) and handed the address over.
    Handover,
    /// The previous owner has no announcing interface up any more (a link went down, its
    /// address went away, or the pool's `interfaces` changed).
    LinkDown,
    /// `externalTrafficPolicy: Local`: the Service's endpoints left the previous owner, or
    /// came to nodes that rank before it.
    EndpointsMoved,
    /// The previous owner is no longer allowed to own it: its speaker is not ready, its Node
    /// is excluded, unknown or no longer matches the pool's `nodeSelector`.
    NodeIneligible,
    /// The previous owner could still own it, but another node ranks first (it joined, or it
    /// finished its hold-down).
    Preference,
    /// Nobody owned the address before.
    NodeAvailable,
}

impl ChangeReason {
    /// The reason as an Event writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeReason::NodeFailed => "NodeFailed",
            ChangeReason::Handover => "Handover",
            ChangeReason::LinkDown => "LinkDown",
            ChangeReason::EndpointsMoved => "EndpointsMoved",
            ChangeReason::NodeIneligible => "NodeIneligible",
            ChangeReason::Preference => "Preference",
            ChangeReason::NodeAvailable => "NodeAvailable",
        }
    }
}

/// One address whose owner differs between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerChange {
    pub address: IpAddr,
    /// `None`: nobody owned it.
    pub from: Option<String>,
    /// `None`: nobody owns it now.
    pub to: Option<String>,
    pub reason: ChangeReason,
}

/// The addresses of both snapshots whose owner changed, by address. Addresses in only one of
/// them (a Service that came or went) are not changes of owner.
pub fn owner_changes(before: Snapshot<'_>, after: Snapshot<'_>) -> Vec<OwnerChange> {
    let earlier: BTreeMap<IpAddr, &Address<'_>> =
        (before.addresses.iter()).map(|a| (a.address, a)).collect();
    let later: BTreeMap<IpAddr, &Address<'_>> =
        (after.addresses.iter()).map(|a| (a.address, a)).collect();
    let mut changes = Vec::new();
    for (ip, was) in &earlier {
        let Some(now) = later.get(ip) else { continue };
        let from = elect(before.view, was).owner().map(|c| c.node.clone());
        changes.extend(owner_change(from.as_deref(), after.view, now));
    }
    changes
}

/// The change of `address`'s owner from `from` (`None`: nobody) to the one `view` elects, and
/// why; `None` when the owner is the same. For an observer that keeps the previous owners,
/// not the previous views.
pub fn owner_change(from: Option<&str>, view: &View, address: &Address<'_>) -> Option<OwnerChange> {
    let won = elect(view, address);
    let to = won.owner().map(|c| c.node.clone());
    if from == to.as_deref() {
        return None;
    }
    let reason = match from {
        None => ChangeReason::NodeAvailable,
        Some(old) => why_lost(view, address, old, &won),
    };
    Some(OwnerChange {
        address: address.address,
        from: from.map(str::to_owned),
        to,
        reason,
    })
}

/// Why `old` no longer owns `address` in `view`, whose election gave `won`.
fn why_lost(view: &View, address: &Address<'_>, old: &str, won: &Ownership) -> ChangeReason {
    let liveness = view.members.get(old).map(|m| m.liveness);
    match liveness {
        None | Some(Liveness::Down) => return ChangeReason::NodeFailed,
        Some(Liveness::Leaving) => return ChangeReason::Handover,
        Some(Liveness::Alive) => {}
    }
    match check(view, old, address) {
        Err(Ineligible::NoAnnouncingInterface) => ChangeReason::LinkDown,
        Err(Ineligible::NoLocalEndpoint) => ChangeReason::EndpointsMoved,
        Err(_) => ChangeReason::NodeIneligible,
        // It passes every check of its own: the endpoints or the ranking decided.
        Ok(_) => {
            let endpoints_kept = address.local.is_none_or(|local| {
                let fallback = won.owner().is_some_and(|o| !local.ready.contains(&o.node));
                local.ready.contains(old) || (fallback && local.serving_terminating.contains(old))
            });
            if endpoints_kept {
                ChangeReason::Preference
            } else {
                ChangeReason::EndpointsMoved
            }
        }
    }
}
