//! Taking over Services that another implementation addressed: a Service we never addressed
//! (no `allocated-from` annotation of ours) whose status already holds an address keeps it as
//! it is. When two such Services hold one address that they may not share (MetalLB's own
//! sharing annotation, which we do not read, or simply a conflict it left behind), neither is
//! moved: the later one is flagged — a condition, a Warning event, a metric — and both keep
//! being served by kube-proxy on their disjoint ports, while the address is announced once.
//! Renumbering is only ever explicit (issue 10, item 6).
//!
//! A Service we addressed whose status someone else edited is not "foreign": it is restored,
//! which protects the holder of the address.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt as _;

use super::status::{ALLOCATED_FROM, COND_ALLOCATED, Desired, WantedCondition};
use crate::ipam::Conflict;

/// Condition: `True` when the Service holds an address that another Service also holds and
/// that the two may not share; both were kept as found.
pub const COND_CONFLICT: &str = "baremetal-ccm.io/AddressConflict";
/// Event reason of the Warning that says so.
pub const CONFLICT_EVENT: &str = "AddressConflict";

/// Whether we never addressed `service`: it carries no `allocated-from` annotation (which we
/// write with every allocation). The load-balancer finalizer is upstream's and proves nothing.
pub fn never_addressed_by_us(service: &Service) -> bool {
    !service.annotations().contains_key(ALLOCATED_FROM)
}

/// A foreign Service kept on addresses that conflict with earlier holders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub desired: Desired,
    /// The note of the Warning event (also the condition's message).
    pub note: String,
}

/// The state of a foreign Service that keeps `held` (its status, in order) although
/// `conflicts` name addresses other Services hold.
pub fn keep_as_found(held: &[IpAddr], conflicts: &[Conflict]) -> Adopted {
    let details = conflicts
        .iter()
        .map(|c| format!("{} is also held by {} ({})", c.address, c.holder, c.clash))
        .collect::<Vec<_>>()
        .join("; ");
    let note = format!(
        "{details}: both Services keep the address as they had it when baremetal-ccm took \
         over (addresses never move without being asked) and it is announced once; to resolve, \
         delete one of them or request another address for one (baremetal-ccm.io/ips)"
    );
    let listed = held
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    Adopted {
        desired: Desired {
            ingress: held.to_vec(),
            // Left unset: the Service stays one we never addressed, across restarts too.
            allocated_from: None,
            conditions: vec![
                WantedCondition {
                    type_: COND_ALLOCATED,
                    status: true,
                    reason: "KeptAsFound".to_owned(),
                    message: format!("{listed} kept as found at takeover"),
                },
                WantedCondition {
                    type_: COND_CONFLICT,
                    status: true,
                    reason: "AddressConflict".to_owned(),
                    message: note.clone(),
                },
            ],
        },
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{Clash, ServiceKey};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn only_our_annotation_makes_a_service_ours() {
        let mut service = Service {
            metadata: ObjectMeta {
                finalizers: Some(vec![super::super::status::FINALIZER.into()]),
                ..ObjectMeta::default()
            },
            ..Service::default()
        };
        assert!(never_addressed_by_us(&service));
        service
            .annotations_mut()
            .insert(ALLOCATED_FROM.into(), "pool-a".into());
        assert!(!never_addressed_by_us(&service));
    }

    #[test]
    fn a_conflicting_foreign_service_keeps_its_addresses_and_is_flagged() {
        let held: Vec<IpAddr> = vec!["192.0.2.5".parse().unwrap()];
        let conflict = Conflict {
            service: ServiceKey::new("default", "b"),
            address: held[0],
            holder: ServiceKey::new("default", "a"),
            clash: Clash::NotShareable,
        };
        let adopted = keep_as_found(&held, &[conflict]);
        assert_eq!(adopted.desired.ingress, held);
        assert_eq!(adopted.desired.allocated_from, None);
        let flagged = &adopted.desired.conditions[1];
        assert_eq!((flagged.type_, flagged.status), (COND_CONFLICT, true));
        assert!(adopted.note.contains("192.0.2.5 is also held by default/a"));
    }
}
