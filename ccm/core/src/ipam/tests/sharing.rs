//! Address sharing by key: same namespace (or a pool that allows more), disjoint ports.

use super::fixtures::*;
use crate::ipam::{Pending, Protocol, ServiceKey};

#[test]
fn services_with_the_same_key_share_when_their_ports_differ() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    let dns_udp = service("dns", "udp").sharing_key("dns").udp(53);
    let dns_tcp = service("dns", "tcp").sharing_key("dns").tcp(53);
    assert_eq!(assign_ok(&mut ipam, &dns_udp), ips(&["192.0.2.0"]));
    assert_eq!(assign_ok(&mut ipam, &dns_tcp), ips(&["192.0.2.0"]));
    assert_eq!(
        ipam.holders(ip("192.0.2.0")),
        [dns_tcp.key(), dns_udp.key()]
    );
    let usage = &ipam.usage()[0];
    assert_eq!(usage.v4.used, 1, "a shared address counts once");
}

#[test]
fn sharing_with_clashing_ports_is_refused() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    assign_ok(
        &mut ipam,
        &service("web", "a").sharing_key("web").tcp(80).tcp(443),
    );
    let clash = service("web", "b")
        .sharing_key("web")
        .tcp(443)
        .requesting(&["192.0.2.0"]);
    let pending = ipam.assign(clash.request()).unwrap_err();
    assert_eq!(
        pending,
        Pending::SharingPortClash {
            address: ip("192.0.2.0"),
            holder: ServiceKey::new("web", "a"),
            protocol: Protocol::Tcp,
            port: 443,
        }
    );
    assert_eq!(
        pending.to_string(),
        "address 192.0.2.0 cannot be shared with web/a: both use TCP/443"
    );
}

#[test]
fn a_key_with_nothing_compatible_to_share_gets_a_fresh_address() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    assign_ok(&mut ipam, &service("web", "a").sharing_key("web").tcp(443));
    let b = service("web", "b").sharing_key("web").tcp(443);
    assert_eq!(assign_ok(&mut ipam, &b), ips(&["192.0.2.1"]));
    let c = service("web", "c").sharing_key("web").tcp(80);
    assert_eq!(
        assign_ok(&mut ipam, &c),
        ips(&["192.0.2.0"]),
        "shares the lowest"
    );
}

#[test]
fn without_a_key_an_address_is_never_shared() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    assign_ok(&mut ipam, &service("web", "a").tcp(80));
    let b = service("web", "b")
        .sharing_key("web")
        .tcp(443)
        .requesting(&["192.0.2.0"]);
    assert_eq!(
        ipam.assign(b.request()).unwrap_err().reason(),
        "AddressInUse"
    );
    let c = service("web", "c").tcp(443);
    assert_eq!(assign_ok(&mut ipam, &c), ips(&["192.0.2.1"]));
}

#[test]
fn different_keys_do_not_share() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    assign_ok(&mut ipam, &service("web", "a").sharing_key("one").tcp(80));
    let b = service("web", "b")
        .sharing_key("two")
        .tcp(443)
        .requesting(&["192.0.2.0"]);
    assert_eq!(
        ipam.assign(b.request()).unwrap_err().reason(),
        "AddressInUse"
    );
}

#[test]
fn cross_namespace_key_is_refused_unless_the_pool_allows_it() {
    let mut ipam = allocator([
        pool("strict", &["192.0.2.0/24"]),
        pool("open", &["198.51.100.0/24"])
            .manual()
            .cross_namespace_sharing(),
    ]);
    assign_ok(
        &mut ipam,
        &service("team-a", "web").sharing_key("shared").tcp(80),
    );
    let intruder = service("team-b", "web").sharing_key("shared").tcp(443);
    assert_eq!(
        assign_ok(&mut ipam, &intruder),
        ips(&["192.0.2.1"]),
        "the key alone does not let another namespace in"
    );
    let explicit = service("team-b", "other")
        .sharing_key("shared")
        .tcp(8443)
        .requesting(&["192.0.2.0"]);
    let pending = ipam.assign(explicit.request()).unwrap_err();
    assert_eq!(pending.reason(), "CrossNamespaceSharingNotAllowed");
    assert_eq!(
        pending.to_string(),
        "address 192.0.2.0 is held by team-a/web in another namespace and pool strict does not allow cross-namespace sharing"
    );

    let owner = service("team-a", "api")
        .sharing_key("open")
        .tcp(80)
        .pool("open");
    assert_eq!(assign_ok(&mut ipam, &owner), ips(&["198.51.100.0"]));
    let guest = service("team-b", "api")
        .sharing_key("open")
        .tcp(443)
        .pool("open");
    assert_eq!(assign_ok(&mut ipam, &guest), ips(&["198.51.100.0"]));
}

#[test]
fn an_address_is_free_only_when_its_last_holder_leaves() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/31"])]);
    let a = service("web", "a").sharing_key("k").tcp(80);
    let b = service("web", "b").sharing_key("k").tcp(81);
    assign_ok(&mut ipam, &a);
    assign_ok(&mut ipam, &b);
    ipam.release(&a.key());
    assert_eq!(ipam.holders(ip("192.0.2.0")), [b.key()]);
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "c")),
        ips(&["192.0.2.1"])
    );
    ipam.release(&b.key());
    assert_eq!(
        assign_ok(&mut ipam, &service("web", "d")),
        ips(&["192.0.2.0"])
    );
}

#[test]
fn dual_stack_services_share_both_families() {
    let mut ipam = allocator([pool("dual", &["192.0.2.0/24", "2001:db8::/64"])]);
    let a = service("web", "a").dual_stack().sharing_key("k").tcp(80);
    let b = service("web", "b").dual_stack().sharing_key("k").tcp(443);
    let first = assign_ok(&mut ipam, &a);
    assert_eq!(assign_ok(&mut ipam, &b), first);
}

#[test]
fn a_port_change_that_clashes_moves_the_later_claimant() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    let early = service("web", "early").created(1).sharing_key("k").tcp(80);
    let late = service("web", "late").created(2).sharing_key("k").tcp(443);
    assign_ok(&mut ipam, &early);
    assign_ok(&mut ipam, &late);

    // The later Service changes to clash: it loses the shared address and gets another.
    let late_clashing = late.clone().tcp(80);
    assert_eq!(assign_ok(&mut ipam, &late_clashing), ips(&["192.0.2.1"]));
    assert_eq!(ipam.take_displaced(), []);
    assign_ok(&mut ipam, &late);
    assert_eq!(
        ipam.holders(ip("192.0.2.1")),
        [late.key()],
        "no move back by itself"
    );

    // The earlier Service changes to clash with a later co-holder: the later one is displaced.
    let other = service("web", "other")
        .created(3)
        .sharing_key("k")
        .tcp(8080);
    assert_eq!(assign_ok(&mut ipam, &other), ips(&["192.0.2.0"]));
    let early_clashing = early.clone().tcp(8080);
    assert_eq!(assign_ok(&mut ipam, &early_clashing), ips(&["192.0.2.0"]));
    assert_eq!(ipam.take_displaced(), [other.key()]);
    assert!(ipam.addresses(&other.key()).is_empty());
    assert_eq!(
        assign_ok(&mut ipam, &other),
        ips(&["192.0.2.1"]),
        "reconciled, it shares the address of the compatible Service with its key"
    );
}

#[test]
fn dropping_the_sharing_key_ends_the_sharing_for_the_later_claimant() {
    let mut ipam = allocator([pool("general", &["192.0.2.0/24"])]);
    let early = service("web", "early").created(1).sharing_key("k").tcp(80);
    let late = service("web", "late").created(2).sharing_key("k").tcp(443);
    assign_ok(&mut ipam, &early);
    assign_ok(&mut ipam, &late);
    let mut late_unkeyed = late.clone();
    late_unkeyed.0.sharing_key = None;
    assert_eq!(assign_ok(&mut ipam, &late_unkeyed), ips(&["192.0.2.1"]));
    assert_eq!(ipam.holders(ip("192.0.2.0")), [early.key()]);
}
