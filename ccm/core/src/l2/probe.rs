//! Which addresses a speaker probes (RFC 5227 ARP probe, DAD Neighbor Solicitation) before it
//! first announces them (design 0003, "First announcement of a new address"): only those no
//! speaker has announced before. A takeover never probes: the previous owner (alive and
//! handing over, or just dead) answered for the address a moment ago, and a probe would put
//! a second on the failover path, or be answered by the previous owner itself.
//!
//! "Announced before" is known from two sources, either one enough:
//! - the Service's condition `baremetal-ccm.io/L2Announced` names an owner of the address
//!   (`l2::status`), which survives restarts of every speaker;
//! - this speaker's own memory ([`Announced`]): an address another speaker owned in an
//!   earlier plan (announced by it, or being probed by it: a conflict it finds is gossiped and
//!   makes this speaker forget the address), or one this speaker announced itself. This
//!   covers a failover before the controller wrote the condition.
//!
//! A speaker that restarts knows neither for an address whose condition is not written yet,
//! and probes it: an unanswered probe costs its window (about a second), a takeover without
//! a probe over a machine outside the cluster would cost the Service. Two speakers probing
//! at once (their views differ) do not answer each other's probes, both announce, and the
//! rule for two speakers answering settles it.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use super::election::{NoEligibleNode, Ownership};
use super::plan::Plan;
use super::status;
use crate::announce::inputs::service_input;

/// The addresses this speaker knows have been announced by some speaker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Announced {
    addresses: BTreeSet<IpAddr>,
}

impl Announced {
    /// Learns from a plan: an address another node owns has been announced (or is being
    /// probed by it); one held back by a conflict has not, nor has one no Service holds any
    /// longer (a Service that gets it later gets a new address).
    pub fn learn(&mut self, plan: &Plan, node: &str) {
        self.addresses
            .retain(|address| plan.elections.contains_key(address));
        for (address, elected) in &plan.elections {
            match &elected.ownership {
                Ownership::Ranked(candidates) if candidates[0].node != node => {
                    self.addresses.insert(*address);
                }
                Ownership::NoEligibleNode(NoEligibleNode::AddressConflict) => {
                    self.addresses.remove(address);
                }
                Ownership::Ranked(_) | Ownership::NoEligibleNode(_) => {}
            }
        }
    }

    /// This speaker announced `address` (or found another speaker answering for it).
    pub fn insert(&mut self, address: IpAddr) {
        self.addresses.insert(address);
    }

    /// Which of `plan`'s duties to probe: those neither announced `before` (by the Services'
    /// conditions, [`announced_before`]) nor known here.
    pub fn to_probe(&self, plan: &Plan, before: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
        (plan.duties.values())
            .flat_map(|duty| duty.keys())
            .filter(|a| !before.contains(a) && !self.addresses.contains(a))
            .copied()
            .collect()
    }
}

/// The addresses of the addressed Services whose condition names an owner.
pub fn announced_before<'a>(services: impl IntoIterator<Item = &'a Service>) -> BTreeSet<IpAddr> {
    let mut before = BTreeSet::new();
    for service in services {
        let Some(input) = service_input(service) else {
            continue;
        };
        for (address, _pool) in input.addresses {
            if status::announced_before(service, address) {
                before.insert(address);
            }
        }
    }
    before
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::l2::election::Candidate;
    use crate::l2::plan::Elected;
    use crate::l2::schedule::Cadence;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn candidate(node: &str) -> Candidate {
        Candidate {
            node: node.to_owned(),
            interfaces: vec!["eth0".to_owned()],
        }
    }

    /// The plan of `me` when `owners` own the addresses (`None`: held back by a conflict).
    fn plan(me: &str, owners: &[(&str, Option<&str>)]) -> Plan {
        let cadence = Cadence {
            count: 1,
            interval: std::time::Duration::from_secs(1),
            refresh: None,
        };
        let mut plan = Plan::default();
        for (address, owner) in owners {
            let ownership = match owner {
                Some(node) => Ownership::Ranked(vec![candidate(node)]),
                None => Ownership::NoEligibleNode(NoEligibleNode::AddressConflict),
            };
            if *owner == Some(me) {
                let duty = plan.duties.entry("eth0".to_owned()).or_default();
                duty.insert(ip(address), cadence);
            }
            let elected = Elected {
                service: ("default".to_owned(), "web".to_owned()),
                pool: "l2".to_owned(),
                ownership,
            };
            plan.elections.insert(ip(address), elected);
        }
        plan
    }

    fn set(addresses: &[&str]) -> BTreeSet<IpAddr> {
        addresses.iter().map(|a| ip(a)).collect()
    }

    #[test]
    fn a_new_address_is_probed_and_one_the_condition_names_is_not() {
        let known = Announced::default();
        let plan = plan(
            "n1",
            &[("192.0.2.100", Some("n1")), ("192.0.2.101", Some("n1"))],
        );
        assert_eq!(
            known.to_probe(&plan, &set(&["192.0.2.101"])),
            set(&["192.0.2.100"])
        );
    }

    #[test]
    fn a_takeover_from_a_speaker_seen_owning_the_address_is_not_probed() {
        let mut known = Announced::default();
        known.learn(&plan("n2", &[("192.0.2.100", Some("n1"))]), "n2");
        // n1 died before the controller wrote the condition: n2 takes over at once.
        let after = plan("n2", &[("192.0.2.100", Some("n2"))]);
        assert!(known.to_probe(&after, &BTreeSet::new()).is_empty());
        // Its own duty does not teach a speaker that it announced: only the responder does.
        let mut fresh = Announced::default();
        fresh.learn(&after, "n2");
        assert_eq!(
            fresh.to_probe(&after, &BTreeSet::new()),
            set(&["192.0.2.100"])
        );
        fresh.insert(ip("192.0.2.100"));
        assert!(fresh.to_probe(&after, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn an_address_held_back_by_a_conflict_or_released_is_probed_again() {
        let mut known = Announced::default();
        known.learn(
            &plan(
                "n2",
                &[("192.0.2.100", Some("n1")), ("192.0.2.101", Some("n1"))],
            ),
            "n2",
        );
        // n1 found an outside machine on .100 while probing; .101 went back to the pool.
        known.learn(&plan("n2", &[("192.0.2.100", None)]), "n2");
        let later = plan(
            "n2",
            &[("192.0.2.100", Some("n2")), ("192.0.2.101", Some("n2"))],
        );
        assert_eq!(
            known.to_probe(&later, &BTreeSet::new()),
            set(&["192.0.2.100", "192.0.2.101"])
        );
    }

    #[test]
    fn the_condition_is_read_per_address_of_an_addressed_service() {
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let owner = status::owner_clause(ip("192.0.2.100"), "n1", "eth0", [2, 0, 0, 0, 0, 1]);
        let mut service = Service::default();
        service.metadata.name = Some("web".to_owned());
        service.metadata.namespace = Some("default".to_owned());
        service.metadata.annotations = Some(BTreeMap::from([(
            crate::contract::ALLOCATED_FROM.to_owned(),
            "l2,l2".to_owned(),
        )]));
        service.metadata.finalizers = Some(vec![crate::contract::FINALIZER.to_owned()]);
        service.spec = Some(k8s_openapi::api::core::v1::ServiceSpec {
            type_: Some("LoadBalancer".to_owned()),
            ..Default::default()
        });
        let ingress = |ip: &str| LoadBalancerIngress {
            ip: Some(ip.to_owned()),
            ..LoadBalancerIngress::default()
        };
        service.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![ingress("192.0.2.100"), ingress("2001:db8::100")]),
            }),
            conditions: Some(vec![Condition {
                type_: status::CONDITION.to_owned(),
                status: "True".to_owned(),
                reason: "Announced".to_owned(),
                message: owner,
                observed_generation: None,
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            }]),
        });
        assert_eq!(announced_before([&service]), set(&["192.0.2.100"]));
    }
}
