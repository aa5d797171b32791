//! The election told as stories: who owns an address, who does not, and why.

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::fixtures::*;
use super::*;
use crate::contract::{AUTOSCALER_TAINT, EXCLUDE_LABEL};

fn owner(view: &View, address: &Address<'_>) -> Option<String> {
    elect(view, address).owner().map(|c| c.node.clone())
}

fn ranked_nodes(view: &View, address: &Address<'_>) -> Vec<String> {
    match elect(view, address) {
        Ownership::Ranked(candidates) => candidates.into_iter().map(|c| c.node).collect(),
        Ownership::NoEligibleNode(why) => panic!("no owner: {why}"),
    }
}

fn why_not(view: &View, address: &Address<'_>) -> NoEligibleNode {
    match elect(view, address) {
        Ownership::NoEligibleNode(why) => why,
        Ownership::Ranked(candidates) => panic!("owned: {candidates:?}"),
    }
}

#[test]
fn the_weight_is_the_first_eight_bytes_of_sha256_of_node_hash_address() {
    // Expected values from coreutils: `printf %s 'node-a#192.0.2.10' | sha256sum`.
    assert_eq!(weight("node-a", ip("192.0.2.10")), 0xd4b8_4135_501a_6622);
    assert_eq!(weight("node-b", ip("192.0.2.10")), 0x6e9f_b809_c116_d8f2);
    // IPv6 in its canonical text (RFC 5952), however it was written.
    assert_eq!(
        weight("node-a", ip("2001:0db8:0::1")),
        0x3c9f_88a7_e2ef_52a1
    );
}

#[test]
fn nodes_rank_by_weight_the_owner_first_and_its_successor_next() {
    let view = three();
    let options = defaults();
    for address in ["192.0.2.100", "192.0.2.101", "2001:db8::100"] {
        let address = at(address, &options);
        let mut expected = vec!["a", "b", "c"];
        expected.sort_by_key(|n| std::cmp::Reverse(weight(n, address.address)));
        assert_eq!(ranked_nodes(&view, &address), expected);
        let ownership = elect(&view, &address);
        assert_eq!(ownership.owner().unwrap().node, expected[0]);
        assert_eq!(ownership.successor().unwrap().node, expected[1]);
        assert_eq!(ownership.owner().unwrap().interfaces, ["eth0"]);
    }
}

#[test]
fn by_default_only_interfaces_that_are_up_on_the_address_subnet_announce() {
    let options = defaults();
    let view = View::default()
        .node(
            "a",
            speaker()
                .on("eth0", &["10.0.0.5/24"])
                .on("eth1", &["192.0.2.11/24"]),
        )
        .node(
            "b",
            speaker().on("eth0", &["192.0.2.12/24"]).link_down("eth0"),
        )
        .node("c", speaker().on("eth0", &["198.51.100.13/24"]));
    let election = elect(&view, &at("192.0.2.100", &options));
    assert_eq!(
        election,
        Ownership::Ranked(vec![Candidate {
            node: "a".into(),
            interfaces: vec!["eth1".into()]
        }])
    );
    // The family counts: an IPv6 address is not on an IPv4 subnet.
    assert_eq!(
        why_not(&view, &at("2001:db8::100", &options)),
        NoEligibleNode::NoAnnouncingInterface { by_subnet: true }
    );
}

#[test]
fn named_interfaces_announce_even_without_an_address_but_never_when_down() {
    let options = on_interfaces(&["vlan*", "bond0"]);
    let view = View::default()
        .node(
            "a",
            speaker()
                .on("vlan20", &[])
                .on("vlan10", &[])
                .on("eth0", &["192.0.2.11/24"]),
        )
        .node("b", speaker().on("vlan10", &[]).link_down("vlan10"))
        .node("c", speaker().on("eth0", &["192.0.2.13/24"]));
    let election = elect(&view, &at("192.0.2.100", &options));
    assert_eq!(
        election,
        Ownership::Ranked(vec![Candidate {
            node: "a".into(),
            interfaces: vec!["vlan10".into(), "vlan20".into()]
        }])
    );
    let only_c = View::default().node("c", speaker().on("eth0", &["192.0.2.13/24"]));
    assert_eq!(
        why_not(&only_c, &at("192.0.2.100", &options)),
        NoEligibleNode::NoAnnouncingInterface { by_subnet: false }
    );
}

#[test]
fn a_settling_speaker_that_hears_no_other_owns_nothing_until_it_settles() {
    // Found in the lab (`hack/lab l2-owner-crash`): a speaker back from isolation, or just
    // restarted, took its addresses at once from a view holding only itself; their settled
    // owner gave way to its higher rank on the wire, and once the settling one heard the
    // others it no longer owned them either: nobody answered for the rest of its hold-down.
    let options = defaults();
    let address = at("192.0.2.100", &options);
    let b = || speaker().on("eth0", &["192.0.2.12/24"]);
    // Just started: its view holds only itself, then others whose state has not arrived yet
    // (not ready, no interfaces).
    let started = View::default().node("b", b().settling());
    assert_eq!(why_not(&started, &address), NoEligibleNode::SettlingAlone);
    let joining = started.node("a", speaker().not_ready());
    assert_eq!(why_not(&joining, &address), NoEligibleNode::SettlingAlone);
    // Its link back after the others were declared down while it was cut off.
    let back = (three().with("a", speaker().liveness(Liveness::Down)))
        .with("c", speaker().liveness(Liveness::Down))
        .with("b", b().settling());
    assert_eq!(why_not(&back, &address), NoEligibleNode::SettlingAlone);
    // Settled, it owns alone.
    assert_eq!(owner(&back.with("b", b()), &address).as_deref(), Some("b"));
    // A cluster starting (every speaker settling, hearing each other) has owners at once.
    let starting = (three().with("a", speaker().on("eth0", &["192.0.2.11/24"]).settling()))
        .with("b", b().settling())
        .with("c", speaker().on("eth0", &["192.0.2.13/24"]).settling());
    assert!(owner(&starting, &address).is_some());
}

#[test]
fn a_settling_node_owns_only_when_no_settled_node_can() {
    let options = defaults();
    // An address `b` would win on weight alone.
    let address = (1..=254)
        .map(|i| format!("192.0.2.{i}"))
        .find(|a| {
            let ip = ip(a);
            weight("b", ip) > weight("a", ip) && weight("b", ip) > weight("c", ip)
        })
        .unwrap();
    let address = at(&address, &options);
    let view = three().with("b", speaker().on("eth0", &["192.0.2.12/24"]).settling());
    let ranked = ranked_nodes(&view, &address);
    assert!(!ranked.contains(&"b".to_owned()), "{ranked:?}");
    // Once the settled ones cannot, the settling one does.
    let alone = view.with("a", speaker().liveness(Liveness::Down)).with(
        "c",
        speaker().on("eth0", &["192.0.2.13/24"]).link_down("eth0"),
    );
    assert_eq!(ranked_nodes(&alone, &address), ["b"]);
}

#[test]
fn down_leaving_unready_unknown_excluded_and_unselected_nodes_never_own() {
    let options = selecting("l2", "yes");
    let subnet = |i: u8| format!("192.0.2.{i}/24");
    let on = |i: u8| speaker().on("eth0", &[&subnet(i)]);
    let view = View::default()
        .node("down", on(1).liveness(Liveness::Down))
        .node("leaving", on(2).liveness(Liveness::Leaving))
        .node("unready", on(3).not_ready())
        .member_only("unknown", on(4))
        .node("deleting", on(5))
        .exclude("deleting", Exclusion::BeingDeleted)
        .node("unlabelled", on(6))
        .node("good", on(7));
    let view = ["down", "leaving", "unready", "deleting", "good"]
        .into_iter()
        .fold(view, |view, node| view.label(node, "l2", "yes"));
    let address = at("192.0.2.100", &options);
    assert_eq!(ranked_nodes(&view, &address), ["good"]);
    let expected = [
        ("down", Ineligible::NotAlive),
        ("absent", Ineligible::NotAlive),
        ("leaving", Ineligible::Leaving),
        ("unready", Ineligible::NotReady),
        ("unknown", Ineligible::UnknownNode),
        ("deleting", Ineligible::Excluded(Exclusion::BeingDeleted)),
        ("unlabelled", Ineligible::NotSelected),
    ];
    for (node, why) in expected {
        assert_eq!(check(&view, node, &address), Err(why), "{node}");
    }
}

#[test]
fn local_traffic_goes_to_nodes_with_ready_endpoints_then_to_terminating_ones() {
    let options = defaults();
    let view = three();
    let both = endpoints(&["b"], &["c"]);
    let address = Address {
        local: Some(&both),
        ..at("192.0.2.100", &options)
    };
    assert_eq!(ranked_nodes(&view, &address), ["b"]);
    // `b`'s speaker fails: its ready endpoint no longer counts, the terminating one on `c`
    // takes the traffic, as kube-proxy would send it there.
    let failed = view.clone().with("b", speaker().liveness(Liveness::Down));
    assert_eq!(ranked_nodes(&failed, &address), ["c"]);
    let none = endpoints(&[], &[]);
    let nowhere = Address {
        local: Some(&none),
        ..address
    };
    assert_eq!(
        why_not(&view, &nowhere),
        NoEligibleNode::NoReadyLocalEndpoint
    );
    // An endpoint on a node that cannot announce does not help either.
    let elsewhere = endpoints(&["z"], &[]);
    let far = Address {
        local: Some(&elsewhere),
        ..address
    };
    assert_eq!(why_not(&view, &far), NoEligibleNode::NoReadyLocalEndpoint);
}

#[test]
fn no_eligible_node_names_the_check_that_even_the_closest_node_failed() {
    let options = selecting("l2", "yes");
    let address = at("192.0.2.100", &options);
    let cases = [
        (View::default(), NoEligibleNode::NoMemberAlive),
        (
            three()
                .with("a", speaker().liveness(Liveness::Down))
                .without("b")
                .without("c"),
            NoEligibleNode::NoMemberAlive,
        ),
        (
            three()
                .with("a", speaker().not_ready())
                .without("b")
                .without("c"),
            NoEligibleNode::NoSpeakerReady,
        ),
        (
            View::default().member_only("x", speaker().on("eth0", &["192.0.2.9/24"])),
            NoEligibleNode::NoNodeIncluded,
        ),
        (three(), NoEligibleNode::NoneMatchesSelector),
        (
            // `a` is selected but on another subnet; `b` is not selected: `a` came closer.
            three()
                .label("a", "l2", "yes")
                .with("a", speaker().on("eth0", &["10.0.0.1/8"])),
            NoEligibleNode::NoAnnouncingInterface { by_subnet: true },
        ),
    ];
    for (view, expected) in cases {
        assert_eq!(why_not(&view, &address), expected, "{view:?}");
    }
    assert_eq!(
        NoEligibleNode::NoneMatchesSelector.to_string(),
        "no node matches the pool's nodeSelector"
    );
}

#[test]
fn node_facts_follow_the_one_exclusion_rule() {
    let node = |labels: &[(&str, &str)], taint: Option<&str>, deleting: bool| {
        let mut node = Node::default();
        node.metadata.name = Some("n".into());
        node.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        );
        node.spec = taint.map(|key| NodeSpec {
            taints: Some(vec![Taint {
                key: key.into(),
                effect: "NoSchedule".into(),
                ..Taint::default()
            }]),
            ..NodeSpec::default()
        });
        if deleting {
            node.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        NodeFacts::of(&node)
    };
    let plain = node(&[("rack", "r1")], None, false);
    assert_eq!(plain.excluded, None);
    assert_eq!(plain.labels["rack"], "r1");
    let cases = [
        (
            node(&[(EXCLUDE_LABEL, "")], None, false),
            Some(Exclusion::ExcludedByLabel),
        ),
        (
            node(&[(EXCLUDE_LABEL, "true")], None, false),
            Some(Exclusion::ExcludedByLabel),
        ),
        (node(&[(EXCLUDE_LABEL, "false")], None, false), None),
        (
            node(&[], Some(AUTOSCALER_TAINT), false),
            Some(Exclusion::MarkedByAutoscaler),
        ),
        (node(&[], None, true), Some(Exclusion::BeingDeleted)),
    ];
    for (facts, expected) in cases {
        assert_eq!(facts.excluded, expected, "{facts:?}");
    }
}

// ---- owner changes ----

/// The owner of `address` in `view`, and `view` with that owner changed by `event`.
fn change(
    view: &View,
    address: &Address<'_>,
    event: impl FnOnce(View, &str) -> View,
) -> Vec<OwnerChange> {
    let owner = owner(view, address).unwrap();
    let after = event(view.clone(), &owner);
    let addresses = [*address];
    owner_changes(
        Snapshot {
            view,
            addresses: &addresses,
        },
        Snapshot {
            view: &after,
            addresses: &addresses,
        },
    )
}

#[test]
fn each_change_of_owner_says_why() {
    let options = defaults();
    let view = three();
    let address = at("192.0.2.100", &options);
    let old = owner(&view, &address).unwrap();
    let successor = elect(&view, &address).successor().unwrap().node.clone();
    let reason = |event: fn(View, &str) -> View| {
        let changes = change(&view, &address, event);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].from.as_deref(), Some(old.as_str()));
        changes[0].reason
    };
    assert_eq!(
        reason(|v, o| v.with(o, speaker().liveness(Liveness::Down))),
        ChangeReason::NodeFailed
    );
    assert_eq!(reason(|v, o| v.without(o)), ChangeReason::NodeFailed);
    assert_eq!(
        reason(|v, o| v.with(o, speaker().liveness(Liveness::Leaving))),
        ChangeReason::Handover
    );
    assert_eq!(
        reason(|v, o| {
            let member = v.members[o].clone().link_down("eth0");
            v.with(o, member)
        }),
        ChangeReason::LinkDown
    );
    assert_eq!(
        reason(|v, o| v.exclude(o, Exclusion::ExcludedByLabel)),
        ChangeReason::NodeIneligible
    );
    let failed = change(&view, &address, |v, o| {
        v.with(o, speaker().liveness(Liveness::Down))
    });
    assert_eq!(failed[0].to.as_deref(), Some(successor.as_str()));
}

#[test]
fn a_joining_node_that_ranks_first_takes_over_by_preference_once_settled() {
    let options = defaults();
    let view = three();
    let address = (1..=254)
        .map(|i| at(&format!("192.0.2.{i}"), &options))
        .find(|a| {
            weight("d", a.address)
                > ["a", "b", "c"]
                    .map(|n| weight(n, a.address))
                    .into_iter()
                    .max()
                    .unwrap()
        })
        .unwrap();
    let joined = view
        .clone()
        .node("d", speaker().on("eth0", &["192.0.2.14/24"]));
    let addresses = [address];
    let snapshot = |view| Snapshot {
        view,
        addresses: &addresses,
    };
    let changes = owner_changes(snapshot(&view), snapshot(&joined));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].to.as_deref(), Some("d"));
    assert_eq!(changes[0].reason, ChangeReason::Preference);
    // While it settles, nothing moves.
    let settling = view
        .clone()
        .node("d", speaker().on("eth0", &["192.0.2.14/24"]).settling());
    assert_eq!(
        owner_changes(snapshot(&settling), snapshot(&joined)).len(),
        1
    );
    assert_eq!(owner_changes(snapshot(&three()), snapshot(&settling)), []);
}

#[test]
fn endpoints_moving_and_a_first_owner_are_changes_too() {
    let options = defaults();
    let view = three();
    let (on_a, on_b) = (endpoints(&["a"], &[]), endpoints(&["b"], &[]));
    let nowhere = endpoints(&[], &[]);
    let local = |endpoints| Address {
        local: Some(endpoints),
        ..at("192.0.2.100", &options)
    };
    let moved = owner_changes(
        Snapshot {
            view: &view,
            addresses: &[local(&on_a)],
        },
        Snapshot {
            view: &view,
            addresses: &[local(&on_b)],
        },
    );
    assert_eq!(
        moved,
        [OwnerChange {
            address: ip("192.0.2.100"),
            from: Some("a".into()),
            to: Some("b".into()),
            reason: ChangeReason::EndpointsMoved,
        }]
    );
    let first = owner_changes(
        Snapshot {
            view: &view,
            addresses: &[local(&nowhere)],
        },
        Snapshot {
            view: &view,
            addresses: &[local(&on_b)],
        },
    );
    assert_eq!(first[0].reason, ChangeReason::NodeAvailable);
    assert_eq!(first[0].from, None);
    // An address of only one snapshot (a Service that came) is no change of owner.
    let came = owner_changes(
        Snapshot {
            view: &view,
            addresses: &[],
        },
        Snapshot {
            view: &view,
            addresses: &[local(&on_b)],
        },
    );
    assert_eq!(came, []);
    assert_eq!(ChangeReason::EndpointsMoved.as_str(), "EndpointsMoved");
}

#[test]
fn of_two_speakers_answering_for_one_address_exactly_one_yields_the_lower_ranked() {
    for i in 0..200u32 {
        let address: IpAddr = format!("192.0.2.{}", i % 250).parse().unwrap();
        let (a, b) = (format!("node-{i}"), format!("node-{}", i + 1));
        assert_ne!(
            yields_to(&a, &b, address),
            yields_to(&b, &a, address),
            "{a} {b} {address}"
        );
        let lower = if weight(&a, address) < weight(&b, address) {
            &a
        } else {
            &b
        };
        let higher = if lower == &a { &b } else { &a };
        assert!(yields_to(lower, higher, address));
    }
    assert!(
        !yields_to("n1", "n1", "192.0.2.1".parse().unwrap()),
        "never to itself"
    );
}

#[test]
fn an_address_one_live_speaker_finds_held_outside_the_cluster_is_announced_by_nobody() {
    let options = defaults();
    let address = at("192.0.2.100", &options);
    let owner_before = owner(&three(), &address).unwrap();
    // Whoever found it, the owner and the next in rank stay off it as well.
    for finder in ["a", "b", "c"] {
        let reporter = speaker()
            .on("eth0", &["192.0.2.50/24"])
            .conflict("192.0.2.100");
        let view = three().with(finder, reporter.clone());
        assert_eq!(why_not(&view, &address), NoEligibleNode::AddressConflict);
        // A leaving speaker still knows what it found; a down one no longer speaks for it.
        let leaving = three().with(finder, reporter.clone().liveness(Liveness::Leaving));
        assert_eq!(why_not(&leaving, &address), NoEligibleNode::AddressConflict);
        let down = three().with(finder, reporter.liveness(Liveness::Down));
        assert!(owner(&down, &address).is_some());
    }
    // Other addresses are not affected.
    let view = three().with(
        "a",
        speaker()
            .on("eth0", &["192.0.2.11/24"])
            .conflict("192.0.2.101"),
    );
    assert_eq!(owner(&view, &address).unwrap(), owner_before);
}
