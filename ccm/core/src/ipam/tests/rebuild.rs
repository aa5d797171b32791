//! Rebuilding from the cluster at start-up: order-independent, earlier claimant first, nothing
//! lost.

use super::fixtures::*;
use crate::ipam::{Allocator, Clash, Conflict, Existing, Protocol, ServiceKey};

fn existing(service: &ServiceBuilder, held: &[&str]) -> Existing {
    Existing {
        request: service.request().clone(),
        addresses: ips(held),
    }
}

fn fresh() -> Allocator {
    allocator([pool("general", &["192.0.2.0/24", "2001:db8::/64"])])
}

/// Every permutation of `items` (Heap's algorithm).
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    fn heap<T: Clone>(k: usize, items: &mut Vec<T>, out: &mut Vec<Vec<T>>) {
        if k <= 1 {
            out.push(items.clone());
            return;
        }
        for i in 0..k {
            heap(k - 1, items, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            items.swap(j, k - 1);
        }
    }
    let mut out = Vec::new();
    heap(items.len(), &mut items.to_vec(), &mut out);
    out
}

#[test]
fn rebuilding_in_any_order_gives_the_same_state() {
    let services = vec![
        existing(&service("a", "first").created(1), &["192.0.2.1"]),
        existing(&service("b", "second").created(2), &["192.0.2.1"]),
        existing(
            &service("a", "dual").created(2).dual_stack(),
            &["192.0.2.2", "2001:db8::2"],
        ),
        existing(
            &service("a", "dns-udp")
                .created(3)
                .sharing_key("dns")
                .udp(53),
            &["192.0.2.3"],
        ),
        existing(
            &service("a", "dns-tcp")
                .created(3)
                .sharing_key("dns")
                .tcp(53),
            &["192.0.2.3"],
        ),
    ];
    let mut reference = fresh();
    let expected_report = reference.rebuild(services.clone());
    let expected = reference.assignments();
    for order in permutations(&services) {
        let mut ipam = fresh();
        let report = ipam.rebuild(order);
        assert_eq!(ipam.assignments(), expected);
        assert_eq!(report, expected_report);
    }
    assert_eq!(expected.len(), 4);
    assert_eq!(
        expected_report.conflicts,
        [Conflict {
            service: ServiceKey::new("b", "second"),
            address: ip("192.0.2.1"),
            holder: ServiceKey::new("a", "first"),
            clash: Clash::NotShareable,
        }]
    );
}

#[test]
fn a_conflict_is_reported_on_the_later_claimant_which_keeps_nothing() {
    let early = service("web", "early").created(10).sharing_key("k").tcp(80);
    let late = service("web", "late").created(20).sharing_key("k").tcp(80);
    let mut ipam = fresh();
    let report = ipam.rebuild(vec![
        existing(&late, &["192.0.2.7"]),
        existing(&early, &["192.0.2.7"]),
    ]);
    assert_eq!(report.conflicts.len(), 1);
    assert_eq!(report.conflicts[0].service, late.key());
    assert_eq!(report.conflicts[0].clash, Clash::Port(Protocol::Tcp, 80));
    assert_eq!(ipam.addresses(&early.key()), ips(&["192.0.2.7"]));
    assert!(ipam.addresses(&late.key()).is_empty());
    assert_eq!(
        assign_ok(&mut ipam, &late),
        ips(&["192.0.2.0"]),
        "reconciled, the later claimant gets an address of its own"
    );
}

#[test]
fn addresses_outside_every_pool_are_recorded_and_reported() {
    let mut ipam = fresh();
    let stray = service("web", "stray");
    let report = ipam.rebuild(vec![existing(&stray, &["203.0.113.9"])]);
    assert_eq!(ipam.addresses(&stray.key()), ips(&["203.0.113.9"]));
    assert_eq!(report.outside_pools.len(), 1);
    assert_eq!(report.outside_pools[0].holders, [stray.key()]);
    assert_eq!(
        assign_ok(&mut ipam, &stray),
        ips(&["203.0.113.9"]),
        "never moved"
    );
}

#[test]
fn a_restart_reproduces_the_assignment() {
    let mut ipam = fresh();
    let services = [
        service("web", "a"),
        service("web", "b").dual_stack(),
        service("web", "c").sharing_key("k").tcp(1),
        service("web", "d").sharing_key("k").tcp(2),
        service("web", "e").requesting(&["192.0.2.77"]),
    ];
    for s in &services {
        assign_ok(&mut ipam, s);
    }
    ipam.release(&services[0].key());
    let before = ipam.assignments();
    let listed: Vec<Existing> = services[1..]
        .iter()
        .rev()
        .map(|s| Existing {
            request: s.request().clone(),
            addresses: ipam.addresses(&s.key()),
        })
        .collect();
    let mut restarted = fresh();
    let report = restarted.rebuild(listed);
    assert_eq!(report, Default::default());
    assert_eq!(restarted.assignments(), before);
    for s in &services[1..] {
        let again = restarted.assign(s.request()).unwrap();
        assert!(
            again.addresses.iter().all(|a| !a.new),
            "zero changes after a restart"
        );
    }
    assert_eq!(restarted.usage(), ipam.usage());
    assert_eq!(
        assign_ok(&mut restarted, &service("web", "new")),
        assign_ok(&mut ipam, &service("web", "new"))
    );
}

#[test]
fn a_second_address_of_one_family_is_ignored() {
    let mut ipam = fresh();
    let odd = service("web", "odd");
    let report = ipam.rebuild(vec![existing(&odd, &["192.0.2.1", "192.0.2.2"])]);
    assert_eq!(report.ignored, [(odd.key(), ip("192.0.2.2"))]);
    assert_eq!(ipam.addresses(&odd.key()), ips(&["192.0.2.1"]));
}
