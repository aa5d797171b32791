//! The mapping rules, one behaviour per test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use serde_json::{Value, json};

use super::*;
use crate::crd::bgppeer::Placement;
use crate::crd::ippool::AnnounceMode;

fn object(kind: &str, name: &str, spec: Value) -> Value {
    let version = if kind == "BGPPeer" {
        "metallb.io/v1beta2"
    } else {
        "metallb.io/v1beta1"
    };
    json!({"apiVersion": version, "kind": kind, "metadata": {"name": name, "namespace": "metallb-system"}, "spec": spec})
}

fn pool(name: &str, addresses: &[&str]) -> Value {
    object("IPAddressPool", name, json!({ "addresses": addresses }))
}

fn peer(name: &str, address: &str) -> Value {
    object(
        "BGPPeer",
        name,
        json!({"myASN": 64512, "peerASN": 64500, "peerAddress": address}),
    )
}

fn run(objects: &[Value]) -> Converted {
    convert(objects, &Options::default())
}

/// The most severe finding on `field` of `object`.
fn finding<'c>(converted: &'c Converted, object: &str, field: &str) -> &'c Finding {
    (converted.report.findings.iter())
        .filter(|f| f.object == object && f.field == field)
        .max_by_key(|f| f.fit)
        .unwrap_or_else(|| {
            panic!(
                "no finding {object} {field}:\n{}",
                render_report(&converted.report)
            )
        })
}

#[test]
fn l2_advertisements_allowing_different_nodes_cannot_merge() {
    let selector = |zone: &str| json!([{"matchLabels": {"zone": zone}}]);
    let converted = run(&[
        pool("lan", &["192.0.2.0/24"]),
        object(
            "L2Advertisement",
            "a",
            json!({"nodeSelectors": selector("a")}),
        ),
        object(
            "L2Advertisement",
            "b",
            json!({"nodeSelectors": selector("b")}),
        ),
    ]);
    assert!(converted.report.blocking());
    let f = finding(
        &converted,
        "IPAddressPool metallb-system/lan",
        "(announce.l2)",
    );
    assert_eq!(f.fit, Fit::NoEquivalent);
    assert_eq!(
        converted.pools[0]
            .spec
            .announce
            .l2
            .as_ref()
            .unwrap()
            .node_selector,
        None
    );
}

#[test]
fn an_l2_advertisement_allowing_everything_absorbs_the_narrower_ones() {
    let converted = run(&[
        pool("lan", &["192.0.2.0/24"]),
        object("L2Advertisement", "all", json!({})),
        object(
            "L2Advertisement",
            "some",
            json!({"nodeSelectors": [{"matchLabels": {"zone": "a"}}], "interfaces": ["eth1"]}),
        ),
    ]);
    assert!(
        !converted.report.blocking(),
        "{}",
        render_report(&converted.report)
    );
    let l2 = converted.pools[0].spec.announce.l2.clone().unwrap();
    assert_eq!((l2.node_selector, l2.interfaces), (None, vec![]));
}

#[test]
fn bgp_advertisements_with_the_same_attributes_merge_and_add_their_peers_up() {
    let converted = run(&[
        pool("edge", &["198.51.100.0/24"]),
        peer("tor-a", "192.0.2.1"),
        peer("tor-b", "192.0.2.2"),
        object(
            "BGPAdvertisement",
            "a",
            json!({"communities": ["64500:1"], "peers": ["tor-a"]}),
        ),
        object(
            "BGPAdvertisement",
            "b",
            json!({"communities": ["64500:1"], "peers": ["tor-b"]}),
        ),
    ]);
    assert!(
        !converted.report.blocking(),
        "{}",
        render_report(&converted.report)
    );
    let bgp = converted.pools[0].spec.announce.bgp.clone().unwrap();
    let values = bgp.peer_selector.unwrap().match_expressions.unwrap()[0]
        .values
        .clone();
    assert_eq!(values, Some(vec!["tor-a".to_owned(), "tor-b".to_owned()]));
    assert!(
        converted.peers.iter().all(|p| p
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key(PEER_LABEL))
    );
}

#[test]
fn bgp_advertisements_with_different_aggregation_have_no_equivalent() {
    let converted = run(&[
        pool("edge", &["198.51.100.0/24"]),
        object(
            "BGPAdvertisement",
            "aggregated",
            json!({"aggregationLength": 24}),
        ),
        object(
            "BGPAdvertisement",
            "hosts",
            json!({"communities": ["64500:1"]}),
        ),
    ]);
    let f = finding(
        &converted,
        "IPAddressPool metallb-system/edge",
        "(announce.bgp)",
    );
    assert_eq!(f.fit, Fit::NoEquivalent);
}

#[test]
fn unset_priority_of_a_scoped_pool_comes_after_set_ones_and_unscoped_pools_come_last() {
    let scoped = |name: &str, addresses: &str, allocation: Value| {
        object(
            "IPAddressPool",
            name,
            json!({"addresses": [addresses], "serviceAllocation": allocation}),
        )
    };
    let converted = run(&[
        scoped(
            "first",
            "192.0.2.0/28",
            json!({"priority": 7, "namespaces": ["a"]}),
        ),
        scoped("second", "192.0.2.16/28", json!({"namespaces": ["a"]})),
        pool("rest", &["192.0.2.32/28"]),
        scoped("nobody", "192.0.2.48/28", json!({"priority": 3})),
    ]);
    let priority = |name: &str| {
        let p = converted
            .pools
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .unwrap();
        (p.spec.priority, p.spec.auto_assign)
    };
    assert_eq!(priority("first"), (7, true));
    assert_eq!(priority("second"), (8, true));
    assert_eq!(priority("rest"), (9, true));
    assert!(
        !priority("nobody").1,
        "a serviceAllocation selecting nothing never auto-assigns in MetalLB"
    );
}

#[test]
fn several_service_selectors_are_an_or_ours_cannot_hold() {
    let converted = run(&[object(
        "IPAddressPool",
        "p",
        json!({"addresses": ["192.0.2.0/28"], "serviceAllocation": {"serviceSelectors": [{"matchLabels": {"a": "1"}}, {"matchLabels": {"b": "1"}}]}}),
    )]);
    let f = finding(
        &converted,
        "IPAddressPool metallb-system/p",
        "spec.serviceAllocation.serviceSelectors",
    );
    assert_eq!(f.fit, Fit::NoEquivalent);
}

#[test]
fn a_keepalive_alone_sets_the_hold_time_to_three_times_it_as_metallb_does() {
    let mut p = peer("r", "192.0.2.1");
    p["spec"]["keepaliveTime"] = json!("20s");
    let converted = run(&[p]);
    let spec = &converted.peers[0].spec;
    assert_eq!(
        (spec.hold_time_seconds, spec.keepalive_seconds),
        (Some(60), Some(20))
    );
    assert_eq!(spec.placement, Placement::NodeLocal);
}

#[test]
fn a_password_becomes_a_secret_reference_and_is_printed_nowhere() {
    let mut p = peer("r", "192.0.2.1");
    p["spec"]["password"] = json!("s3cret-value");
    let converted = run(&[p]);
    let reference = converted.peers[0].spec.password_secret_ref.clone().unwrap();
    assert_eq!(
        (reference.name.as_str(), reference.key.as_str()),
        ("metallb-bgp-r", PASSWORD_KEY)
    );
    assert_eq!(converted.secrets_to_copy.len(), 1);
    assert_eq!(converted.secrets_to_copy[0].namespace, "baremetal-ccm-bgp");
    let everything = format!(
        "{}{}{:?}",
        render_objects(&converted),
        render_report(&converted.report),
        converted
    );
    assert!(!everything.contains("s3cret-value"));
}

#[test]
fn dynamic_asn_and_vrf_change_routing_and_leave_the_peer_out() {
    let mut dynamic = object(
        "BGPPeer",
        "d",
        json!({"myASN": 64512, "dynamicASN": "external", "peerAddress": "192.0.2.1"}),
    );
    let mut vrf = peer("v", "192.0.2.2");
    vrf["spec"]["vrf"] = json!("red");
    dynamic["metadata"]["labels"] = json!({"x": "y"});
    let converted = run(&[dynamic, vrf]);
    assert!(converted.peers.is_empty());
    assert_eq!(
        finding(&converted, "BGPPeer metallb-system/d", "spec.dynamicASN").fit,
        Fit::NoEquivalent
    );
    assert_eq!(
        finding(&converted, "BGPPeer metallb-system/v", "spec.vrf").fit,
        Fit::NoEquivalent
    );
}

#[test]
fn a_v1beta1_peer_reads_like_a_v1beta2_one() {
    let mut p = peer("old", "192.0.2.1");
    p["apiVersion"] = json!("metallb.io/v1beta1");
    let converted = run(&[p]);
    assert_eq!(converted.peers.len(), 1);
    assert!(
        !converted.report.blocking(),
        "{}",
        render_report(&converted.report)
    );
}

#[test]
fn overlapping_and_invalid_pools_are_left_out_and_reported() {
    let converted = run(&[
        pool("a", &["192.0.2.0/24"]),
        pool("b", &["192.0.2.128/25"]),
        pool("c", &["192.0.2.300/24"]),
    ]);
    let names: Vec<_> = converted
        .pools
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
    assert_eq!(
        finding(
            &converted,
            "IPAddressPool metallb-system/b",
            "spec.addresses"
        )
        .fit,
        Fit::NoEquivalent
    );
    assert_eq!(
        finding(
            &converted,
            "IPAddressPool metallb-system/c",
            "spec.addresses"
        )
        .fit,
        Fit::NoEquivalent
    );
}

#[test]
fn a_community_name_nothing_defines_is_reported() {
    let converted = run(&[
        pool("edge", &["198.51.100.0/24"]),
        object("BGPAdvertisement", "a", json!({"communities": ["NO_SUCH"]})),
    ]);
    assert_eq!(
        finding(
            &converted,
            "BGPAdvertisement metallb-system/a",
            "spec.communities[0]"
        )
        .fit,
        Fit::NoEquivalent
    );
    assert!(
        converted.pools[0]
            .spec
            .announce
            .bgp
            .as_ref()
            .unwrap()
            .communities
            .is_empty()
    );
}

#[test]
fn a_legacy_pool_of_unknown_protocol_is_not_announced_and_blocks() {
    let configmap = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config", "namespace": "metallb-system"},
        "data": {"config": "address-pools:\n- name: x\n  protocol: vxlan\n  addresses: [192.0.2.0/24]\n"}});
    let converted = run(&[configmap]);
    assert!(converted.report.blocking());
    assert_eq!(converted.pools[0].spec.announce.mode, AnnounceMode::None);
}

#[test]
fn the_report_has_one_line_per_finding_and_aligned_fits() {
    let converted = run(&[pool("lan", &["192.0.2.0/24"])]);
    let text = render_report(&converted.report);
    assert_eq!(text.lines().count(), converted.report.findings.len());
    assert!(
        text.lines().all(|l| l.chars().nth(13) == Some(' ')),
        "{text}"
    );
}
