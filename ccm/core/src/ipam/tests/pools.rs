//! Pool edits never move addresses; usage counts; the pool reported per address.

use super::fixtures::*;
use crate::ipam::{Degraded, DuplicatePool, Family, FamilyUsage};

#[test]
fn shrinking_a_pool_keeps_the_address_and_reports_it() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    let a = service("web", "a").requesting(&["192.0.2.200"]);
    assign_ok(&mut ipam, &a);
    let degraded = ipam
        .set_pools(vec![pool("general", &["192.0.2.0/25"]).build()])
        .unwrap();
    assert_eq!(
        degraded,
        [Degraded {
            address: ip("192.0.2.200"),
            holders: vec![a.key()],
            former_pools: vec!["general".into()],
        }]
    );
    let again = ipam.assign(service("web", "a").request()).unwrap();
    assert_eq!(addresses(&again), ips(&["192.0.2.200"]), "never moved");
    assert_eq!(again.addresses[0].pool, None);
    assert!(!again.addresses[0].in_eligible_pool);
    assert_eq!(ipam.outside_pools().len(), 1);
}

#[test]
fn deleting_a_pool_keeps_its_addresses_until_the_services_go() {
    let mut ipam = allocator([
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["198.51.100.0/24"]),
    ]);
    let svc = service("web", "svc").pool("a");
    assign_ok(&mut ipam, &svc);
    let degraded = ipam
        .set_pools(vec![pool("b", &["198.51.100.0/24"]).build()])
        .unwrap();
    assert_eq!(degraded.len(), 1);
    let kept = ipam.assign(svc.request()).unwrap();
    assert_eq!(addresses(&kept), ips(&["192.0.2.0"]));
    assert!(!kept.addresses[0].in_eligible_pool);
    let newcomer = service("web", "new").requesting(&["192.0.2.0"]);
    assert_eq!(
        ipam.assign(newcomer.request()).unwrap_err().reason(),
        "RequestedAddressOutsidePool"
    );
    ipam.release(&svc.key());
    assert_eq!(ipam.outside_pools(), []);
}

#[test]
fn an_address_already_held_is_not_handed_out_by_a_new_overlapping_pool() {
    let mut ipam = allocator([pool("old", &["192.0.2.0/30"])]);
    let held = service("web", "held");
    assign_ok(&mut ipam, &held);
    ipam.set_pools(vec![pool("new", &["192.0.2.0/24"]).build()])
        .unwrap();
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "next")),
        ips(&["192.0.2.1"])
    );
}

#[test]
fn growing_a_pool_back_clears_the_degradation() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    assign_ok(&mut ipam, &service("web", "a").requesting(&["192.0.2.200"]));
    ipam.set_pools(vec![pool("general", &["192.0.2.0/25"]).build()])
        .unwrap();
    let degraded = ipam
        .set_pools(vec![pool("general", &["192.0.2.0/24"]).build()])
        .unwrap();
    assert_eq!(degraded, []);
}

#[test]
fn a_service_leaving_a_pools_scope_keeps_its_address() {
    let mut ipam =
        allocator([pool("public", &["192.0.2.0/24"]).service_labels(&[("expose", "yes")])]);
    let exposed = service("web", "a").labels(&[("expose", "yes")]);
    assign_ok(&mut ipam, &exposed);
    let relabelled = service("web", "a").labels(&[("expose", "no")]);
    let kept = ipam.assign(relabelled.request()).unwrap();
    assert_eq!(addresses(&kept), ips(&["192.0.2.0"]));
    assert!(!kept.addresses[0].in_eligible_pool);
    assert_eq!(kept.addresses[0].pool.as_deref(), Some("public"));
}

#[test]
fn duplicate_pool_names_are_refused() {
    let result = crate::ipam::Allocator::new(vec![
        pool("same", &["192.0.2.0/24"]).build(),
        pool("same", &["198.51.100.0/24"]).build(),
    ]);
    assert_eq!(result.err(), Some(DuplicatePool("same".into())));
}

#[test]
fn usage_counts_per_family_including_addresses_held_through_overlapping_pools() {
    let mut ipam = allocator([
        pool("wide", &["192.0.2.0/24", "2001:db8::/120"]),
        pool("narrow", &["192.0.2.0/28"]).manual(),
    ]);
    assign_ok(&mut ipam, &service("a", "a").dual_stack());
    assign_ok(&mut ipam, &service("a", "b"));
    assign_ok(&mut ipam, &service("a", "c").requesting(&["192.0.2.100"]));
    let usage = ipam.usage();
    assert_eq!(usage[0].pool, "narrow");
    assert_eq!(
        usage[0].family(Family::V4),
        FamilyUsage {
            total: 16,
            used: 2,
            free: 14
        }
    );
    assert_eq!(usage[0].v6, FamilyUsage::default());
    assert_eq!(usage[1].pool, "wide");
    assert_eq!(
        usage[1].v4,
        FamilyUsage {
            total: 256,
            used: 3,
            free: 253
        }
    );
    assert_eq!(
        usage[1].v6,
        FamilyUsage {
            total: 256,
            used: 1,
            free: 255
        }
    );
}

#[test]
fn the_reported_pool_prefers_the_named_one_in_an_overlap() {
    let mut ipam = allocator([
        pool("first", &["192.0.2.0/24"]),
        pool("second", &["192.0.2.0/24"]).priority(5),
    ]);
    let named = service("web", "named").pool("second");
    assert_eq!(assign_ok(&mut ipam, &named), ips(&["192.0.2.0"]));
    assert_eq!(
        ipam.allocations(named.request())[0].pool.as_deref(),
        Some("second")
    );
    let unnamed = service("web", "unnamed");
    assign_ok(&mut ipam, &unnamed);
    assert_eq!(
        ipam.allocations(unnamed.request())[0].pool.as_deref(),
        Some("first")
    );
}

#[test]
fn avoid_buggy_ips_in_one_of_two_overlapping_pools() {
    let mut ipam = allocator([
        pool("avoiding", &["192.0.2.254-192.0.3.2"]).avoid_buggy_ips(),
        pool("plain", &["192.0.2.254-192.0.3.2"]).manual(),
    ]);
    assign_ok(
        &mut ipam,
        &service("a", "x").requesting(&["192.0.2.255"]).pool("plain"),
    );
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "a")),
        ips(&["192.0.2.254"])
    );
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "b")),
        ips(&["192.0.3.1"])
    );
    let usage = ipam.usage();
    assert_eq!(
        usage[0].v4,
        FamilyUsage {
            total: 3,
            used: 2,
            free: 1
        }
    );
    assert_eq!(
        usage[1].v4,
        FamilyUsage {
            total: 5,
            used: 3,
            free: 2
        }
    );
}
