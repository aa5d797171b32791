//! Properties of the election over random views: every speaker agrees, a non-owner's
//! departure moves nothing, a new node takes about 1/N, the hold-down and the local endpoints
//! are respected, and the ranking is a naive reference model's.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::fixtures::speaker;
use super::*;
use crate::selector::{Selector, SelectorSpec};

const NODES: usize = 8;

fn name(i: usize) -> String {
    format!("n{i}")
}

fn interface() -> impl Strategy<Value = Interface> {
    let subnets = prop_oneof![
        Just(None),
        Just(Some("192.0.2.0/24")),
        Just(Some("198.51.100.0/24")),
        Just(Some("2001:db8::/64")),
    ];
    (
        prop_oneof![Just("eth0"), Just("eth1"), Just("vlan10")],
        prop::bool::weighted(0.85),
        prop::collection::vec((subnets, 1u8..250), 0..3),
    )
        .prop_map(|(name, up, addresses)| Interface {
            name: name.to_owned(),
            up,
            mac: [2, 0, 0, 0, 0, 1],
            addresses: (addresses.into_iter())
                .filter_map(|(subnet, host)| Some(host_in(subnet?, host)))
                .collect(),
        })
}

/// `subnet` with host part `host`, keeping the prefix length.
fn host_in(subnet: &str, host: u8) -> IpNet {
    let net: IpNet = subnet.parse().unwrap();
    let address = match net.network() {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) + u32::from(host))),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + u128::from(host)).into()),
    };
    IpNet::new(address, net.prefix_len()).unwrap()
}

fn member() -> impl Strategy<Value = Member> {
    let liveness = prop_oneof![
        8 => Just(Liveness::Alive),
        1 => Just(Liveness::Leaving),
        1 => Just(Liveness::Down),
    ];
    (
        liveness,
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.3),
        prop::collection::vec(interface(), 0..3),
    )
        .prop_map(|(liveness, ready, settling, interfaces)| Member {
            liveness,
            ready,
            settling,
            interfaces,
            conflicts: BTreeSet::new(),
        })
}

fn facts() -> impl Strategy<Value = Option<NodeFacts>> {
    let excluded = prop_oneof![
        9 => Just(None),
        1 => Just(Some(Exclusion::ExcludedByLabel)),
    ];
    let facts =
        (prop_oneof![Just("a"), Just("b")], excluded).prop_map(|(rack, excluded)| NodeFacts {
            labels: [("rack".to_owned(), rack.to_owned())].into(),
            excluded,
        });
    prop::option::weighted(0.9, facts)
}

/// Speakers `n0`… in index order, each with its Node's facts when the API knows it.
type Nodes = Vec<(Member, Option<NodeFacts>)>;

fn nodes() -> impl Strategy<Value = Nodes> {
    prop::collection::vec((member(), facts()), 0..NODES)
}

fn view_of(nodes: &Nodes) -> View {
    let mut view = View::default();
    for (i, (member, facts)) in nodes.iter().enumerate() {
        view.members.insert(name(i), member.clone());
        if let Some(facts) = facts {
            view.nodes.insert(name(i), facts.clone());
        }
    }
    view
}

/// A permutation of `items` drawn from `seed` (an LCG driving Fisher–Yates): enough to vary
/// orders, with no dependency.
fn shuffled<T: Clone>(items: &[T], seed: u64) -> Vec<T> {
    let mut items = items.to_vec();
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state =
            (state.wrapping_mul(6_364_136_223_846_793_005)).wrapping_add(1_442_695_040_888_963_407);
        let j = usize::try_from(state >> 33).unwrap() % (i + 1);
        items.swap(i, j);
    }
    items
}

/// The same view as [`view_of`], built the way another speaker might have learnt it: members
/// inserted in another order, interfaces and addresses listed in another order.
fn view_learnt_in_another_order(nodes: &Nodes, seed: u64) -> View {
    let indexed: Vec<(usize, (Member, Option<NodeFacts>))> =
        nodes.iter().cloned().enumerate().collect();
    let mut view = View::default();
    for (i, (mut member, facts)) in shuffled(&indexed, seed) {
        member.interfaces = shuffled(&member.interfaces, seed ^ i as u64);
        for interface in &mut member.interfaces {
            interface.addresses = shuffled(&interface.addresses, seed.rotate_left(7));
        }
        if let Some(facts) = facts {
            view.nodes.insert(name(i), facts);
        }
        view.members.insert(name(i), member);
    }
    view
}

fn options() -> impl Strategy<Value = L2Announcement> {
    let interfaces = prop_oneof![
        3 => Just(vec![]),
        1 => Just(vec!["eth*"]),
        1 => Just(vec!["vlan10"]),
        1 => Just(vec!["eth1", "vlan?0"]),
    ];
    (interfaces, any::<bool>()).prop_map(|(patterns, select)| L2Announcement {
        interfaces: patterns.into_iter().map(InterfacePattern::new).collect(),
        node_selector: select.then(|| {
            let spec = SelectorSpec {
                match_labels: [("rack".to_owned(), "a".to_owned())].into(),
                ..SelectorSpec::default()
            };
            Selector::new(&spec).unwrap()
        }),
        ..L2Announcement::default()
    })
}

fn addresses() -> impl Strategy<Value = Vec<IpAddr>> {
    let address = prop_oneof![
        (1u8..255).prop_map(|h| IpAddr::V4(Ipv4Addr::new(192, 0, 2, h))),
        (1u8..255).prop_map(|h| IpAddr::V4(Ipv4Addr::new(198, 51, 100, h))),
        (1u16..1000).prop_map(|h| IpAddr::V6((0x2001_0db8_u128 << 96 | u128::from(h)).into())),
    ];
    prop::collection::vec(address, 1..16)
}

fn node_set() -> impl Strategy<Value = BTreeSet<String>> {
    prop::collection::btree_set((0..NODES).prop_map(name), 0..4)
}

fn local() -> impl Strategy<Value = Option<LocalEndpoints>> {
    prop::option::of(
        (node_set(), node_set()).prop_map(|(ready, serving_terminating)| LocalEndpoints {
            ready,
            serving_terminating,
        }),
    )
}

// ---- the reference model: the design's words, naively ----

/// Whether `node` passes every check of the design but the local endpoints.
fn passes(view: &View, node: &str, options: &L2Announcement, address: IpAddr) -> bool {
    let Some(member) = view.members.get(node) else {
        return false;
    };
    let Some(facts) = view.nodes.get(node) else {
        return false;
    };
    let interface_ok = |i: &Interface| {
        i.up && if options.interfaces.is_empty() {
            i.addresses.iter().any(|net| net.contains(&address))
        } else {
            options.interfaces.iter().any(|p| p.matches(&i.name))
        }
    };
    member.liveness == Liveness::Alive
        && member.ready
        && facts.excluded.is_none()
        && (options.node_selector.as_ref()).is_none_or(|s| s.matches(&facts.labels))
        && member.interfaces.iter().any(interface_ok)
}

/// The nodes that may own `address`, hold-down left aside.
fn eligible(view: &View, address: &Address<'_>) -> BTreeSet<String> {
    let passing: BTreeSet<String> = (view.members.keys())
        .filter(|n| passes(view, n, address.options, address.address))
        .cloned()
        .collect();
    let Some(local) = address.local else {
        return passing;
    };
    let ready: BTreeSet<String> = passing.intersection(&local.ready).cloned().collect();
    if !ready.is_empty() {
        return ready;
    }
    passing
        .intersection(&local.serving_terminating)
        .cloned()
        .collect()
}

fn settling(view: &View, node: &str) -> bool {
    view.members[node].settling
}

/// How many speakers the view holds alive and ready.
fn alive(view: &View) -> usize {
    (view.members.values())
        .filter(|m| m.liveness == Liveness::Alive && m.ready)
        .count()
}

/// One test case: a view, a pool's options, addresses, maybe local endpoints.
fn case() -> impl Strategy<Value = (Nodes, L2Announcement, Vec<IpAddr>, Option<LocalEndpoints>)> {
    (nodes(), options(), addresses(), local())
}

fn at<'a>(
    address: IpAddr,
    options: &'a L2Announcement,
    local: Option<&'a LocalEndpoints>,
) -> Address<'a> {
    Address {
        address,
        options,
        local,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_speaker_elects_the_same_from_the_same_view_in_any_order(
        (nodes, options, addresses, local) in case(),
        seed in any::<u64>(),
    ) {
        let one = view_of(&nodes);
        let other = view_learnt_in_another_order(&nodes, seed);
        for ip in addresses {
            let address = at(ip, &options, local.as_ref());
            prop_assert_eq!(elect(&one, &address), elect(&other, &address));
        }
    }

    #[test]
    fn removing_a_non_owner_never_moves_an_address((nodes, options, addresses, local) in case()) {
        let view = view_of(&nodes);
        for ip in addresses {
            let address = at(ip, &options, local.as_ref());
            let Some(owner) = elect(&view, &address).owner().map(|c| c.node.clone()) else {
                continue;
            };
            for gone in view.members.keys().filter(|n| **n != owner) {
                let mut smaller = view.clone();
                smaller.members.remove(gone);
                let now = elect(&smaller, &address).owner().map(|c| c.node.clone());
                if settling(&smaller, &owner) && alive(&smaller) < 2 {
                    // Left alone while settling, the owner waits out its hold-down instead.
                    prop_assert_eq!(now, None, "{} removed", gone);
                    continue;
                }
                prop_assert_eq!(now.as_deref(), Some(owner.as_str()), "{} removed", gone);
            }
        }
    }

    #[test]
    fn settling_nodes_never_own_while_a_settled_one_can(
        (nodes, options, addresses, local) in case()
    ) {
        let view = view_of(&nodes);
        for ip in addresses {
            let address = at(ip, &options, local.as_ref());
            let Some(owner) = elect(&view, &address).owner().map(|c| c.node.clone()) else {
                continue;
            };
            if settling(&view, &owner) {
                let settled: Vec<String> = (eligible(&view, &address).into_iter())
                    .filter(|n| !settling(&view, n))
                    .collect();
                prop_assert!(settled.is_empty(), "{} owns {} over {:?}", owner, ip, settled);
            }
        }
    }

    #[test]
    fn local_owners_have_a_ready_or_else_a_terminating_endpoint(
        (nodes, options, addresses, local) in case()
    ) {
        let Some(local) = local else { return Ok(()) };
        let view = view_of(&nodes);
        for ip in addresses {
            let address = at(ip, &options, Some(&local));
            let Some(owner) = elect(&view, &address).owner().map(|c| c.node.clone()) else {
                continue;
            };
            let any_ready = (local.ready.iter()).any(|n| passes(&view, n, &options, ip));
            prop_assert!(
                local.ready.contains(&owner)
                    || (!any_ready && local.serving_terminating.contains(&owner)),
                "{} owns {} with {:?}", owner, ip, local
            );
        }
    }

    #[test]
    fn the_ranking_is_the_reference_model_s((nodes, options, addresses, local) in case()) {
        let view = view_of(&nodes);
        for ip in addresses {
            let address = at(ip, &options, local.as_ref());
            let eligible = eligible(&view, &address);
            let settled: Vec<&String> = eligible.iter().filter(|n| !settling(&view, n)).collect();
            let alive = alive(&view);
            let mut expected: Vec<&String> = if !settled.is_empty() {
                settled
            } else if alive < 2 {
                Vec::new()
            } else {
                eligible.iter().collect()
            };
            expected.sort_by_key(|n| std::cmp::Reverse(weight(n, ip)));
            let ranked: Vec<String> = match elect(&view, &address) {
                Ownership::Ranked(candidates) => {
                    prop_assert!(candidates.iter().all(|c| !c.interfaces.is_empty()));
                    candidates.into_iter().map(|c| c.node).collect()
                }
                Ownership::NoEligibleNode(_) => Vec::new(),
            };
            prop_assert_eq!(ranked.iter().collect::<Vec<_>>(), expected);
        }
    }
}

/// Addresses a node takes when it joins `n` others: every move goes to it, and it takes
/// about 1/(n+1) of them.
fn moved_when_a_node_joins(prefix: &str, n: usize, first: u32, count: u32) -> (u32, bool) {
    let on_lan = || speaker().on("eth0", &["10.0.0.1/8"]);
    let mut view = View::default();
    for i in 0..n {
        view = view.node(&format!("{prefix}{i}"), on_lan());
    }
    let joined = view.clone().node(&format!("{prefix}new"), on_lan());
    let options = L2Announcement::default();
    let mut moved = 0;
    let mut all_to_the_new_node = true;
    for offset in 0..count {
        let ip = IpAddr::V4(Ipv4Addr::from(first + offset));
        let address = at(ip, &options, None);
        let before = elect(&view, &address).owner().map(|c| c.node.clone());
        let after = elect(&joined, &address).owner().map(|c| c.node.clone());
        if before != after {
            moved += 1;
            all_to_the_new_node &= after == Some(format!("{prefix}new"));
        }
    }
    (moved, all_to_the_new_node)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// With a uniform hash, the number the new node takes out of A addresses is binomial
    /// (A, p = 1/(n+1)). The bound is 5 standard deviations: a correct election fails it with
    /// probability below 10^-6 per case, while a modulo-N placement (which moves about
    /// n/(n+1)) or a biased weight misses it by far.
    #[test]
    fn adding_a_node_moves_about_one_in_n_addresses(
        prefix in "[a-z]{1,8}-",
        n in 2usize..=20,
        first in (10u32 << 24)..(10u32 << 24 | 0x00ff_0000),
    ) {
        const ADDRESSES: u32 = 2_000;
        let (moved, all_to_the_new_node) = moved_when_a_node_joins(&prefix, n, first, ADDRESSES);
        prop_assert!(all_to_the_new_node, "an address moved between old nodes");
        let p = 1.0 / (n as f64 + 1.0);
        let mean = f64::from(ADDRESSES) * p;
        let sigma = (mean * (1.0 - p)).sqrt();
        prop_assert!(
            (f64::from(moved) - mean).abs() <= 5.0 * sigma,
            "{} of {} moved with {} nodes; expected {:.0} ± {:.0}",
            moved, ADDRESSES, n, mean, 5.0 * sigma
        );
    }
}
