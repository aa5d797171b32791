//! Single-family allocation: pool choice, requested addresses, scopes, `avoidBuggyIPs`,
//! idempotence and refusals.

use super::fixtures::*;
use crate::ipam::{Family, Ineligibility, Pending, PoolNames, RequestError, Searched, ServiceKey};

#[test]
fn first_service_gets_the_lowest_address_of_the_pool() {
    let mut ipam = allocator([pool("default", &["192.0.2.10-192.0.2.20"])]);
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "a")),
        ips(&["192.0.2.10"])
    );
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "b")),
        ips(&["192.0.2.11"])
    );
}

#[test]
fn assigning_again_keeps_the_same_address() {
    let mut ipam = allocator([pool("default", &["192.0.2.0/28"])]);
    let a = service("web", "a");
    let first = ipam.assign(a.request()).unwrap();
    assert!(first.addresses[0].new);
    let again = ipam.assign(a.request()).unwrap();
    assert_eq!(addresses(&again), addresses(&first));
    assert!(!again.addresses[0].new, "nothing was taken the second time");
    assert_eq!(ipam.service_count(), 1);
}

#[test]
fn second_service_cannot_take_the_first_ones_address() {
    let mut ipam = allocator([pool("default", &["192.0.2.0/28"])]);
    assign_ok(&mut ipam, &service("web", "a").requesting(&["192.0.2.5"]));
    let b = service("web", "b").requesting(&["192.0.2.5"]);
    assert_eq!(
        ipam.assign(b.request()),
        Err(Pending::AddressInUse {
            address: ip("192.0.2.5"),
            holder: ServiceKey::new("web", "a"),
        })
    );
    assert!(ipam.addresses(&b.key()).is_empty());
}

#[test]
fn a_released_address_is_handed_out_again() {
    let mut ipam = allocator([pool("default", &["192.0.2.0/30"])]);
    let a = service("web", "a");
    assign_ok(&mut ipam, &a);
    assign_ok(&mut ipam, &service("web", "b"));
    assert_eq!(ipam.release(&a.key()), ips(&["192.0.2.0"]));
    assert!(
        ipam.release(&a.key()).is_empty(),
        "releasing twice is harmless"
    );
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "c")),
        ips(&["192.0.2.0"])
    );
}

#[test]
fn lower_priority_number_is_preferred_and_ties_go_by_name() {
    let mut ipam = allocator([
        pool("zeta", &["198.51.100.0/24"]).priority(5),
        pool("beta", &["203.0.113.0/24"]).priority(10),
        pool("alpha", &["192.0.2.0/24"]).priority(10),
    ]);
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "a")),
        ips(&["198.51.100.0"])
    );
    ipam.set_pools(vec![
        pool("beta", &["203.0.113.0/24"]).priority(10).build(),
        pool("alpha", &["192.0.2.0/24"]).priority(10).build(),
    ])
    .unwrap();
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "b")),
        ips(&["192.0.2.0"])
    );
}

#[test]
fn a_full_pool_spills_into_the_next_one() {
    let mut ipam = allocator([
        pool("small", &["192.0.2.1/32"]),
        pool("large", &["198.51.100.0/24"]).priority(1),
    ]);
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "a")),
        ips(&["192.0.2.1"])
    );
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "b")),
        ips(&["198.51.100.0"])
    );
}

#[test]
fn exhaustion_names_the_family_and_the_pools_searched() {
    let mut ipam = allocator([
        pool("one", &["192.0.2.1/32", "2001:db8::/64"]),
        pool("two", &["192.0.2.2/32"]),
        pool("v6-only", &["2001:db8:1::/64"]),
    ]);
    assign_ok(&mut ipam, &service("a", "a"));
    assign_ok(&mut ipam, &service("a", "b"));
    let pending = ipam.assign(service("a", "c").request()).unwrap_err();
    assert_eq!(
        pending,
        Pending::PoolExhausted {
            family: Family::V4,
            pools: PoolNames(vec!["one".into(), "two".into()]),
        }
    );
    assert_eq!(pending.to_string(), "no free IPv4 address in pool one, two");
    assert_eq!(pending.reason(), "PoolExhausted");
}

#[test]
fn a_named_pool_is_used_even_without_auto_assign() {
    let mut ipam = allocator([
        pool("general", &["192.0.2.0/24"]),
        pool("reserved", &["198.51.100.0/24"]).manual(),
    ]);
    let a = service("web", "a").pool("reserved");
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["198.51.100.0"]));
    let assigned = ipam.allocations(a.request());
    assert_eq!(assigned[0].pool.as_deref(), Some("reserved"));
    assert!(assigned[0].in_eligible_pool);
}

#[test]
fn pools_without_auto_assign_are_not_used_automatically() {
    let mut ipam = allocator([pool("reserved", &["198.51.100.0/24"]).manual()]);
    let pending = ipam.assign(service("web", "a").request()).unwrap_err();
    assert_eq!(pending, Pending::NoEligiblePool);
    assert_eq!(pending.reason(), "NoEligiblePool");
}

#[test]
fn an_unknown_named_pool_is_reported() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    let pending = ipam
        .assign(service("web", "a").pool("typo").request())
        .unwrap_err();
    assert_eq!(pending.to_string(), "pool typo does not exist");
    assert_eq!(pending.reason(), "UnknownPool");
}

#[test]
fn a_named_pool_out_of_scope_is_refused_with_the_reason() {
    let mut ipam = allocator([pool("team", &["192.0.2.0/24"]).namespaces(&["team-a"])]);
    let pending = ipam
        .assign(service("team-b", "a").pool("team").request())
        .unwrap_err();
    assert_eq!(
        pending,
        Pending::PoolNotEligible {
            pool: "team".into(),
            why: Ineligibility::NamespaceNotListed("team-b".into()),
        }
    );
    assert_eq!(
        pending.to_string(),
        "pool team does not serve this Service: namespace team-b is not in its scope"
    );
}

#[test]
fn scopes_choose_pools_by_namespace_name_and_labels() {
    let mut ipam = allocator([
        pool("team-a", &["192.0.2.0/24"]).namespaces(&["team-a"]),
        pool("prod", &["198.51.100.0/24"])
            .namespace_labels(&[("env", "prod")])
            .priority(1),
        pool("public", &["203.0.113.0/24"])
            .service_labels(&[("expose", "internet")])
            .priority(2),
    ]);
    let in_team_a = service("team-a", "x");
    let in_prod = service("shop", "x").namespace_labels(&[("env", "prod")]);
    let public = service("blog", "x").labels(&[("expose", "internet")]);
    assert_eq!(assign_ok(&mut ipam, &in_team_a), ips(&["192.0.2.0"]));
    assert_eq!(assign_ok(&mut ipam, &in_prod), ips(&["198.51.100.0"]));
    assert_eq!(assign_ok(&mut ipam, &public), ips(&["203.0.113.0"]));
    assert_eq!(
        ipam.assign(service("blog", "y").request()),
        Err(Pending::NoEligiblePool)
    );
}

#[test]
fn requested_address_in_a_non_auto_pool_is_honoured() {
    let mut ipam = allocator([
        pool("general", &["192.0.2.0/24"]),
        pool("reserved", &["198.51.100.0/24"]).manual(),
    ]);
    let a = service("web", "a").requesting(&["198.51.100.7"]);
    assert_eq!(assign_ok(&mut ipam, &a), ips(&["198.51.100.7"]));
    assert_eq!(
        ipam.allocations(a.request())[0].pool.as_deref(),
        Some("reserved")
    );
}

#[test]
fn requested_address_outside_every_eligible_pool_is_refused() {
    let mut ipam = allocator([
        pool("general", &["192.0.2.0/24"]),
        pool("team", &["198.51.100.0/24"]).namespaces(&["team"]),
    ]);
    let pending = ipam
        .assign(service("web", "a").requesting(&["198.51.100.7"]).request())
        .unwrap_err();
    assert_eq!(
        pending,
        Pending::RequestedOutsidePools {
            address: ip("198.51.100.7"),
            searched: Searched::InScope,
        }
    );
    assert_eq!(
        pending.to_string(),
        "requested address 198.51.100.7 is not in any pool that serves this Service"
    );
    assert_eq!(pending.reason(), "RequestedAddressOutsidePool");
}

#[test]
fn requested_address_outside_the_named_pool_is_refused() {
    let mut ipam = allocator([
        pool("general", &["192.0.2.0/24"]),
        pool("b", &["198.51.100.0/24"]),
    ]);
    let pending = ipam
        .assign(
            service("web", "a")
                .pool("b")
                .requesting(&["192.0.2.7"])
                .request(),
        )
        .unwrap_err();
    assert_eq!(
        pending.to_string(),
        "requested address 192.0.2.7 is not in pool b"
    );
}

#[test]
fn changing_the_requested_address_moves_the_service_only_when_the_new_one_is_free() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    assign_ok(&mut ipam, &service("web", "a").requesting(&["192.0.2.10"]));
    assign_ok(&mut ipam, &service("web", "b").requesting(&["192.0.2.30"]));
    let moved = service("web", "a").requesting(&["192.0.2.20"]);
    assert_eq!(assign_ok(&mut ipam, &moved), ips(&["192.0.2.20"]));
    assert_eq!(
        ipam.holders(ip("192.0.2.10")),
        [],
        "the old address is free"
    );
    let blocked = service("web", "a").requesting(&["192.0.2.30"]);
    assert!(matches!(
        ipam.assign(blocked.request()),
        Err(Pending::AddressInUse { .. })
    ));
    assert_eq!(
        ipam.addresses(&moved.key()),
        ips(&["192.0.2.20"]),
        "kept meanwhile"
    );
}

#[test]
fn dropping_the_requested_address_keeps_the_address() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    assign_ok(&mut ipam, &service("web", "a").requesting(&["192.0.2.10"]));
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "a")),
        ips(&["192.0.2.10"])
    );
}

#[test]
fn avoid_buggy_ips_skips_dot_0_and_dot_255() {
    let mut ipam = allocator([pool("edge", &["192.0.2.254-192.0.3.1"]).avoid_buggy_ips()]);
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "a")),
        ips(&["192.0.2.254"])
    );
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "b")),
        ips(&["192.0.3.1"])
    );
    assert!(matches!(
        ipam.assign(service("a", "c").request()),
        Err(Pending::PoolExhausted { .. })
    ));
    let pending = ipam
        .assign(service("a", "d").requesting(&["192.0.2.255"]).request())
        .unwrap_err();
    assert_eq!(pending.reason(), "RequestedAddressOutsidePool");
    let usage = &ipam.usage()[0];
    assert_eq!((usage.v4.total, usage.v4.used, usage.v4.free), (2, 2, 0));
}

#[test]
fn without_avoid_buggy_ips_dot_0_and_dot_255_are_ordinary() {
    let mut ipam = allocator([pool("plain", &["192.0.2.255-192.0.3.0"])]);
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "a")),
        ips(&["192.0.2.255"])
    );
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "b")),
        ips(&["192.0.3.0"])
    );
}

#[test]
fn a_slash_64_pool_allocates_without_iterating() {
    let mut ipam = allocator([pool("v6", &["2001:db8::/64"]), pool("v4", &["10.0.0.0/8"])]);
    let top = service("a", "top")
        .ipv6()
        .requesting(&["2001:db8::ffff:ffff:ffff:ffff"]);
    assign_ok(&mut ipam, &top);
    for i in 0..2_000 {
        assign_ok(&mut ipam, &service("a", &format!("v6-{i}")).ipv6());
        assign_ok(&mut ipam, &service("a", &format!("v4-{i}")));
    }
    assert_eq!(
        assign_ok(&mut ipam, &service("a", "next").ipv6()),
        ips(&["2001:db8::7d0"])
    );
    let usage = ipam.usage();
    let v6 = usage[1].v6;
    assert_eq!((v6.total, v6.used), (1u128 << 64, 2_002));
    assert_eq!(v6.free, (1u128 << 64) - 2_002);
    assert_eq!(usage[0].v4.total, 1 << 24);
}

#[test]
fn malformed_requests_are_refused_before_anything_changes() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24", "2001:db8::/64"])]);
    let mut two_v4 = service("a", "a");
    two_v4.0.requested = ips(&["192.0.2.1", "192.0.2.2"]);
    assert!(matches!(
        ipam.assign(two_v4.request()),
        Err(Pending::InvalidRequest {
            error: RequestError::SecondAddressOfFamily { .. }
        })
    ));
    let bad_key = service("a", "a").sharing_key("not ok");
    let pending = ipam.assign(bad_key.request()).unwrap_err();
    assert_eq!(pending.reason(), "InvalidRequest");
    let wrong_family = service("a", "a").requesting(&["2001:db8::1"]);
    let pending = ipam.assign(wrong_family.request()).unwrap_err();
    assert_eq!(
        pending.to_string(),
        "requested address 2001:db8::1 is IPv6, but the Service asks for IPv4 only"
    );
    assert_eq!(ipam.service_count(), 0);
}

#[test]
fn annotation_parse_failures_become_a_pending_reason() {
    let error = crate::ipam::parse_requested_ips("192.0.2.1,,").unwrap_err();
    let pending = Pending::malformed("baremetal-ccm.io/ips", error);
    assert_eq!(pending.reason(), "MalformedAnnotation");
    assert_eq!(
        pending.to_string(),
        "annotation baremetal-ccm.io/ips is malformed: item 2 of the address list is empty"
    );
}
