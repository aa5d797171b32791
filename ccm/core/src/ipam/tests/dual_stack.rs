//! `ipFamilies` and `ipFamilyPolicy`: one address per family, from one pool when possible.

use super::fixtures::*;
use crate::ipam::{Family, IpFamilyPolicy, Pending, PoolNames};

#[test]
fn require_dual_stack_gets_one_address_per_family_from_one_pool() {
    let mut ipam = allocator([
        pool("v4-only", &["198.51.100.0/24"]),
        pool("dual", &["192.0.2.0/24", "2001:db8::/64"]).priority(1),
    ]);
    let a = service("web", "a").dual_stack();
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["192.0.2.0", "2001:db8::"]));
    let pools: Vec<_> = ipam
        .allocations(a.request())
        .into_iter()
        .map(|x| x.pool)
        .collect();
    assert_eq!(pools, [Some("dual".into()), Some("dual".into())]);
}

#[test]
fn require_dual_stack_combines_pools_when_none_serves_both() {
    let mut ipam = allocator([
        pool("v4", &["192.0.2.0/24"]),
        pool("v6", &["2001:db8::/64"]).priority(1),
    ]);
    let a = service("web", "a").dual_stack();
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["192.0.2.0", "2001:db8::"]));
}

#[test]
fn the_address_order_follows_ip_families() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/64"])]);
    let a =
        service("web", "a").families(IpFamilyPolicy::RequireDualStack, &[Family::V6, Family::V4]);
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["2001:db8::", "192.0.2.0"]));
}

#[test]
fn require_dual_stack_without_an_ipv6_pool_is_impossible() {
    let mut ipam = allocator([pool("v4", &["192.0.2.0/24"])]);
    let pending = ipam
        .assign(service("web", "a").dual_stack().request())
        .unwrap_err();
    assert_eq!(
        pending,
        Pending::ImpossibleFamilyRequest {
            family: Family::V6,
            policy: IpFamilyPolicy::RequireDualStack,
        }
    );
    assert_eq!(
        pending.to_string(),
        "RequireDualStack needs an IPv6 address, but no pool that serves this Service has one"
    );
    assert_eq!(
        ipam.service_count(),
        0,
        "the IPv4 address was not taken either"
    );
}

#[test]
fn prefer_dual_stack_falls_back_to_the_primary_family() {
    let mut ipam = allocator([pool("v4", &["192.0.2.0/24"])]);
    let assignment = ipam
        .assign(service("web", "a").prefer_dual_stack().request())
        .unwrap();
    assert_eq!(addresses(&assignment), ips(&["192.0.2.0"]));
    assert_eq!(
        assignment.unmet.map(|p| p.reason()),
        Some("ImpossibleFamilyRequest")
    );
}

#[test]
fn prefer_dual_stack_gets_both_when_it_can() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/64"])]);
    let assignment = ipam
        .assign(service("web", "a").prefer_dual_stack().request())
        .unwrap();
    assert_eq!(addresses(&assignment), ips(&["192.0.2.0", "2001:db8::"]));
    assert_eq!(assignment.unmet, None);
}

#[test]
fn prefer_dual_stack_adds_the_second_family_once_a_pool_has_room() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/128"])]);
    assign_ok(&mut ipam, &service("web", "first").ipv6());
    let a = service("web", "a").prefer_dual_stack();
    let assignment = ipam.assign(a.request()).unwrap();
    assert_eq!(
        assignment.unmet,
        Some(Pending::PoolExhausted {
            family: Family::V6,
            pools: PoolNames(vec!["dual".into()]),
        })
    );
    ipam.release(&service("web", "first").key());
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["192.0.2.0", "2001:db8::"]));
}

#[test]
fn single_stack_gets_only_the_first_family() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/64"])]);
    let a = service("web", "a").families(IpFamilyPolicy::SingleStack, &[Family::V6, Family::V4]);
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["2001:db8::"]));
}

#[test]
fn upgrading_to_require_dual_stack_adds_the_family_from_the_same_pool() {
    let mut ipam = allocator([
        pool("v6-first", &["2001:db8:1::/64"]),
        pool("dual", &["192.0.2.0/24", "2001:db8::/64"]).priority(1),
    ]);
    let single = service("web", "a").requesting(&["192.0.2.9"]);
    assert_eq!(assign_ok(&mut ipam, &single), ips(&["192.0.2.9"]));
    let dual = service("web", "a").dual_stack();
    assert_eq!(
        assign_ok(&mut ipam, &dual),
        ips(&["192.0.2.9", "2001:db8::"]),
        "the IPv4 address stays; IPv6 comes from its pool, not the higher-priority one"
    );
}

#[test]
fn downgrading_releases_the_family_no_longer_asked_for() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/64"])]);
    let dual = service("web", "a").dual_stack();
    assign_ok(&mut ipam, &dual);
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "a")),
        ips(&["192.0.2.0"])
    );
    assert_eq!(ipam.holders(ip("2001:db8::")), []);
}

#[test]
fn a_refused_dual_stack_upgrade_keeps_what_the_service_had() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/128"])]);
    assign_ok(&mut ipam, &service("web", "other").ipv6());
    assign_ok(&mut ipam, &service("web", "a"));
    let pending = ipam
        .assign(service("web", "a").dual_stack().request())
        .unwrap_err();
    assert_eq!(pending.reason(), "PoolExhausted");
    assert_eq!(
        ipam.addresses(&service("web", "a").key()),
        ips(&["192.0.2.0"])
    );
}

#[test]
fn requested_addresses_of_both_families_are_honoured() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/64"])]);
    let a = service("web", "a")
        .dual_stack()
        .requesting(&["2001:db8::5", "192.0.2.5"]);
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["192.0.2.5", "2001:db8::5"]));
}
