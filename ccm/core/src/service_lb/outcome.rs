//! What deciding a Service produces: its desired state (addresses, `allocated-from`,
//! conditions) and the notes for its Events, built from the allocator's answer.

use std::net::IpAddr;

use super::status::{COND_ALLOCATED, COND_OUTSIDE_POOL, Desired, WantedCondition};
use crate::ipam::{AssignedAddress, Pending};

/// Why a Service is pending, for its Warning event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNote {
    pub reason: &'static str,
    pub message: String,
}

/// What the controller should make of one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub desired: Desired,
    /// Set when the Service does not get (all of) what it asks for.
    pub pending: Option<PendingNote>,
    /// Set when a held address lies outside every pool that serves the Service.
    pub outside_pool: Option<String>,
    /// One line naming the addresses and their pools, for the Ensured event.
    pub summary: String,
    /// Whether the request came from the deprecated `spec.loadBalancerIP`.
    pub deprecated_field: bool,
    /// Set for a Service kept, as another implementation left it, on an address another
    /// Service holds: the note of its Warning event.
    pub conflict: Option<String>,
    /// Set when MetalLB's annotations stood in for ours: the note of a Normal event naming them.
    pub metallb: Option<String>,
}

/// Why a Service does not have everything it asks for.
#[derive(Debug, Clone)]
pub(super) enum Problem {
    /// It stays pending: required families or the requested addresses are not served.
    Pending(Pending),
    /// PreferDualStack's second family is not served; the Service is allocated nonetheless.
    Partial(Pending),
}

pub(super) fn outcome(
    addresses: &[AssignedAddress],
    previous_pools: &[String],
    problem: Option<Problem>,
    outside: &[IpAddr],
    deprecated_field: bool,
) -> Outcome {
    // An address outside every pool keeps the pool it was reported from, so that the pool's
    // Degraded condition survives restarts.
    let pools: Vec<Option<String>> = addresses
        .iter()
        .enumerate()
        .map(|(i, a)| a.pool.clone().or_else(|| previous_pools.get(i).cloned()))
        .collect();
    let summary = summary(addresses, &pools);
    let allocated_from = (!pools.is_empty() && pools.iter().all(Option::is_some)).then(|| {
        pools
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    });
    let (allocated, pending) = allocated_condition(problem.as_ref(), &summary);
    let mut conditions = vec![allocated];
    let outside_pool = outside_note(outside);
    if let Some(message) = &outside_pool {
        conditions.push(WantedCondition {
            type_: COND_OUTSIDE_POOL,
            status: true,
            reason: "AddressOutsidePool".to_owned(),
            message: message.clone(),
        });
    }
    Outcome {
        desired: Desired {
            ingress: addresses.iter().map(|a| a.address).collect(),
            allocated_from,
            conditions,
        },
        pending,
        outside_pool,
        summary,
        deprecated_field,
        conflict: None,
        metallb: None,
    }
}

/// One line naming each address and its pool.
fn summary(addresses: &[AssignedAddress], pools: &[Option<String>]) -> String {
    addresses
        .iter()
        .zip(pools)
        .map(|(a, pool)| match pool {
            Some(pool) => format!("{} from pool {pool}", a.address),
            None => format!("{} (outside every pool)", a.address),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `AddressAllocated` condition, and the pending note when the Service is pending.
fn allocated_condition(
    problem: Option<&Problem>,
    summary: &str,
) -> (WantedCondition, Option<PendingNote>) {
    let (status, reason, message, pending) = match problem {
        Some(Problem::Pending(pending)) => {
            let note = PendingNote {
                reason: pending.reason(),
                message: pending.to_string(),
            };
            (
                false,
                note.reason.to_owned(),
                note.message.clone(),
                Some(note),
            )
        }
        Some(Problem::Partial(unmet)) => (
            true,
            "PartiallyAllocated".to_owned(),
            format!("{summary}; the second family is not allocated: {unmet}"),
            None,
        ),
        None => (true, "Allocated".to_owned(), summary.to_owned(), None),
    };
    let condition = WantedCondition {
        type_: COND_ALLOCATED,
        status,
        reason,
        message,
    };
    (condition, pending)
}

/// The note on held addresses outside every pool that serves the Service, if any.
fn outside_note(outside: &[IpAddr]) -> Option<String> {
    if outside.is_empty() {
        return None;
    }
    let list = outside
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "{list} no longer in a pool that serves this Service (the pool was edited or deleted, \
         or the Service left its scope); kept, because allocated addresses never move; \
         request another address or recreate the Service to move it"
    ))
}
