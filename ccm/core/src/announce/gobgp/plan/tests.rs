//! Planner tests: named scenarios, and property tests that run plans against the model of
//! gobgpd in `model`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use proptest::prelude::*;

use super::model::{Sent, converge, converge_tracking, converged};
use super::*;
use crate::announce::desired::{DesiredPath, DesiredPeer, ExportRule};
use crate::announce::gobgp::policy::EXPORT_POLICY_NAMES;
use crate::announce::gobgp::state::{Disposition, ImportPolicy};

fn ip(text: &str) -> IpAddr {
    text.parse().expect("address")
}

fn net(text: &str) -> IpNet {
    text.parse().expect("prefix")
}

/// A peer as the plan tests (and the readiness tests) configure one.
pub(crate) fn peer(address: &str) -> DesiredPeer {
    crate::fixtures::desired_peer(ip(address))
}

fn path(prefix: &str, next_hop: &str, path_id: u32) -> DesiredPath {
    DesiredPath {
        prefix: net(prefix),
        next_hop: ip(next_hop),
        path_id,
    }
}

fn rule(name: &str, prefixes: &[&str]) -> ExportRule {
    ExportRule {
        name: name.into(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        peers: None,
        communities: vec![65000 << 16 | 100],
        large_communities: Vec::new(),
        local_preference: None,
    }
}

/// A daemon holding one IPv4 and one IPv6 peer, a pool rule and two paths.
fn desired() -> DesiredDaemon {
    DesiredDaemon {
        global: Global {
            asn: 64512,
            router_id: "192.0.2.1".parse().expect("id"),
            listen_port: -1,
        },
        peers: [peer("192.0.2.254"), peer("2001:db8::fe")]
            .into_iter()
            .map(|p| (p.address, p))
            .collect(),
        export: vec![rule("pool", &["198.51.100.10/32", "2001:db8:100::10/128"])],
        paths: BTreeSet::from([
            path("198.51.100.10/32", "192.0.2.2", 1),
            path("2001:db8:100::10/128", "::", 0),
        ]),
    }
}

/// A short name for each operation, to compare shapes of plans.
fn kinds(ops: &[Op]) -> Vec<&'static str> {
    ops.iter()
        .map(|op| match op {
            Op::StopBgp => "StopBgp",
            Op::StartBgp(_) => "StartBgp",
            Op::DeletePeer(_) => "DeletePeer",
            Op::AddToSet(_) => "AddToSet",
            Op::RemoveFromSet(_) => "RemoveFromSet",
            Op::DeleteSet(_) => "DeleteSet",
            Op::AddPolicy { .. } => "AddPolicy",
            Op::DeletePolicy(_) => "DeletePolicy",
            Op::AssignExport(_) => "AssignExport",
            Op::AddImportPolicy => "AddImportPolicy",
            Op::AssignImport(_) => "AssignImport",
            Op::AddPaths(_) => "AddPaths",
            Op::DeletePaths(_) => "DeletePaths",
            Op::SoftResetOut => "SoftResetOut",
            Op::UpdatePeer { .. } => "UpdatePeer",
            Op::AddPeer { .. } => "AddPeer",
        })
        .collect()
}

#[test]
fn an_empty_daemon_is_started_then_given_policy_then_its_plain_peers_then_paths() {
    // Sessions without graceful restart open while the paths stream (connecting takes
    // seconds); the export policy is in place before either.
    let ops = plan(&Actual::default(), &desired()).expect("valid");
    assert_eq!(
        kinds(&ops),
        [
            "StartBgp",
            "AddImportPolicy",
            "AssignImport",
            "AddToSet",
            "AddToSet",
            "AddPolicy",
            "AssignExport",
            "AddPeer",
            "AddPeer",
            "AddPaths"
        ]
    );
    let Op::AddPolicy { name, .. } = &ops[5] else {
        unreachable!("checked above")
    };
    assert_eq!(*name, EXPORT_POLICY_NAMES[0]);
}

#[test]
fn a_converged_daemon_yields_no_operations() {
    let desired = desired();
    let actual = converged(&desired);
    assert_eq!(plan(&actual, &desired).expect("valid"), []);
    assert_eq!(actual.paths.len(), 2);
    assert_eq!(actual.peers.len(), 2);
}

#[test]
fn removing_a_path_deletes_only_that_path() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    desired.paths.remove(&path("2001:db8:100::10/128", "::", 0));
    let ops = converge(&mut actual, &desired);
    let gone = PathKey {
        prefix: net("2001:db8:100::10/128"),
        path_id: 0,
    };
    assert_eq!(ops, [Op::DeletePaths(vec![(gone, ip("::"))])]);
}

#[test]
fn a_new_next_hop_for_the_same_identifier_replaces_the_path_without_a_delete() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    desired
        .paths
        .remove(&path("198.51.100.10/32", "192.0.2.2", 1));
    desired
        .paths
        .insert(path("198.51.100.10/32", "192.0.2.3", 1));
    assert_eq!(kinds(&converge(&mut actual, &desired)), ["AddPaths"]);
}

#[test]
fn three_next_hops_of_one_prefix_are_three_paths() {
    let mut desired = desired();
    for (hop, id) in [("192.0.2.3", 2), ("192.0.2.4", 3)] {
        desired.paths.insert(path("198.51.100.10/32", hop, id));
    }
    let actual = converged(&desired);
    let ids: Vec<u32> = (actual.paths.keys())
        .filter(|k| k.prefix == net("198.51.100.10/32"))
        .map(|k| k.path_id)
        .collect();
    assert_eq!(ids, [1, 2, 3]);
}

#[test]
fn two_next_hops_under_one_identifier_are_refused() {
    let mut desired = desired();
    desired
        .paths
        .insert(path("198.51.100.10/32", "192.0.2.3", 1));
    assert!(matches!(
        plan(&Actual::default(), &desired),
        Err(PlanError::DuplicatePath { path_id: 1, .. })
    ));
}

#[test]
fn an_ipv6_prefix_with_an_ipv4_next_hop_is_refused() {
    let mut desired = desired();
    desired
        .paths
        .insert(path("2001:db8:100::20/128", "192.0.2.2", 0));
    assert!(matches!(
        plan(&Actual::default(), &desired),
        Err(PlanError::NextHopFamily { .. })
    ));
    desired.global.asn = 0;
    assert_eq!(plan(&Actual::default(), &desired), Err(PlanError::NoAsn));
}

#[test]
fn a_changed_timer_updates_only_that_peer() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    let address = ip("192.0.2.254");
    let tor = desired.peers.get_mut(&address).expect("peer");
    tor.connect_retry = Duration::from_secs(5);
    let ops = converge(&mut actual, &desired);
    assert!(
        matches!(ops.as_slice(), [Op::UpdatePeer { address: a, spec }]
            if *a == address && spec.timers.connect_retry == 5),
        "{ops:?}"
    );
}

#[test]
fn a_peer_no_longer_desired_is_deleted_before_anything_else() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    desired.peers.remove(&ip("2001:db8::fe"));
    desired
        .paths
        .insert(path("198.51.100.20/32", "192.0.2.2", 0));
    desired.export[0].prefixes.insert(net("198.51.100.20/32"));
    assert_eq!(
        kinds(&converge(&mut actual, &desired)),
        ["DeletePeer", "AddToSet", "AddPaths"]
    );
}

#[test]
fn graceful_restart_peers_of_a_fresh_daemon_are_added_as_restarting() {
    let mut desired = desired();
    let v4 = ip("192.0.2.254");
    desired.peers.get_mut(&v4).expect("peer").graceful_restart = Some(Duration::from_secs(60));
    let restarting = |ops: &[Op]| -> Vec<(IpAddr, bool)> {
        ops.iter()
            .filter_map(|op| match op {
                Op::AddPeer {
                    address,
                    restarting,
                    ..
                } => Some((*address, *restarting)),
                _ => None,
            })
            .collect()
    };
    let fresh = plan(&Actual::default(), &desired).expect("valid");
    // The plain session opens before the paths; the restarting one after them, so that it
    // starts with the final table.
    assert_eq!(
        restarting(&fresh),
        [(ip("2001:db8::fe"), false), (v4, true)]
    );
    let add_paths = fresh.iter().position(|op| matches!(op, Op::AddPaths(_)));
    let restarting_peer = fresh.iter().position(|op| {
        matches!(
            op,
            Op::AddPeer {
                restarting: true,
                ..
            }
        )
    });
    assert!(add_paths < restarting_peer, "{:?}", kinds(&fresh));

    let mut running = desired.clone();
    running.peers.remove(&v4);
    let mut actual = converged(&running);
    let later = converge(&mut actual, &desired);
    assert_eq!(
        restarting(&later),
        [(v4, false)],
        "a running daemon has not restarted"
    );
}

#[test]
fn another_router_id_stops_and_restarts_bgp_and_rebuilds_everything() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    desired.global.router_id = "192.0.2.9".parse().expect("id");
    let ops = converge(&mut actual, &desired);
    assert_eq!(&kinds(&ops)[..2], ["StopBgp", "StartBgp"]);
    assert_eq!(
        ops.len(),
        2 + plan(&Actual::default(), &desired).expect("ok").len() - 1
    );
    assert_eq!(plan(&actual, &desired).expect("valid"), []);
}

#[test]
fn a_new_address_in_a_pool_extends_the_set_without_rebuilding_the_policy() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    desired.export[0].prefixes.insert(net("198.51.100.11/32"));
    desired
        .paths
        .insert(path("198.51.100.11/32", "192.0.2.2", 0));
    let ops = converge(&mut actual, &desired);
    // .10 and .11 are one block now: its entry replaces .10's, but .10's route stays in the
    // set, so nothing is re-exported; the new path goes out with the new policy.
    assert_eq!(kinds(&ops), ["AddToSet", "RemoveFromSet", "AddPaths"]);
    let Op::AddToSet(SetEntries::Prefixes { entries, .. }) = &ops[0] else {
        panic!("a prefix set grows: {ops:?}");
    };
    assert_eq!(
        entries.iter().map(|e| e.prefix).collect::<Vec<_>>(),
        [net("198.51.100.10/31")]
    );
}

#[test]
fn a_block_split_by_a_removal_re_exports_only_when_a_staying_route_leaves_the_set() {
    let mut desired = desired();
    desired.export[0].prefixes.insert(net("198.51.100.11/32"));
    desired
        .paths
        .insert(path("198.51.100.11/32", "192.0.2.2", 0));
    let mut actual = converged(&desired);
    // .11 leaves the pool and its path goes: .10 stays in the set (as its own entry again).
    desired.export[0].prefixes.remove(&net("198.51.100.11/32"));
    desired
        .paths
        .remove(&path("198.51.100.11/32", "192.0.2.2", 0));
    assert_eq!(
        kinds(&converge(&mut actual, &desired)),
        ["AddToSet", "RemoveFromSet", "DeletePaths"]
    );
    // .10 leaves the pool while its path stays: that route must be re-exported.
    desired.export[0].prefixes.remove(&net("198.51.100.10/32"));
    assert_eq!(
        kinds(&converge(&mut actual, &desired)),
        ["RemoveFromSet", "SoftResetOut"]
    );
}

#[test]
fn a_prefix_leaving_a_pool_while_its_path_stays_is_re_exported() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    desired.export[0].prefixes.remove(&net("198.51.100.10/32"));
    assert_eq!(
        kinds(&converge(&mut actual, &desired)),
        ["RemoveFromSet", "SoftResetOut"]
    );
}

#[test]
fn changed_communities_swap_in_a_rebuilt_policy_and_re_export() {
    let mut desired = desired();
    let mut actual = converged(&desired);
    desired.export[0].communities.push(65000 << 16 | 300);
    let ops = converge(&mut actual, &desired);
    assert_eq!(
        kinds(&ops),
        ["AddPolicy", "AssignExport", "DeletePolicy", "SoftResetOut"]
    );
    assert_eq!(ops[2], Op::DeletePolicy(EXPORT_POLICY_NAMES[0].into()));
    assert_eq!(actual.export.export.policies, [EXPORT_POLICY_NAMES[1]]);
    // And back: the names alternate.
    desired.export[0].communities.pop();
    converge(&mut actual, &desired);
    assert_eq!(actual.export.export.policies, [EXPORT_POLICY_NAMES[0]]);
}

#[test]
fn another_peer_selection_edits_the_neighbor_set_and_re_exports() {
    let mut desired = desired();
    desired.export[0].peers = Some(BTreeSet::from([ip("192.0.2.254")]));
    let mut actual = converged(&desired);
    desired.export[0].peers = Some(BTreeSet::from([ip("2001:db8::fe")]));
    assert_eq!(
        kinds(&converge(&mut actual, &desired)),
        ["AddToSet", "RemoveFromSet", "SoftResetOut"]
    );
}

#[test]
fn a_removed_rule_loses_its_statements_before_its_sets() {
    let mut desired = desired();
    desired.export.push(rule("other", &["203.0.113.0/32"]));
    desired.export[1].peers = Some(BTreeSet::new());
    let mut actual = converged(&desired);
    desired.export.pop();
    let ops = converge(&mut actual, &desired);
    assert_eq!(
        kinds(&ops),
        [
            "AddPolicy",
            "AssignExport",
            "DeletePolicy",
            "DeleteSet",
            "DeleteSet",
            "DeleteSet",
            "SoftResetOut"
        ]
    );
}

#[test]
fn a_policy_someone_edited_is_rebuilt() {
    let desired = desired();
    let mut actual = converged(&desired);
    actual
        .export
        .policies
        .insert(EXPORT_POLICY_NAMES[0].into(), None);
    let ops = converge(&mut actual, &desired);
    assert_eq!(kinds(&ops)[..2], ["AddPolicy", "AssignExport"]);
    actual.export.import.default = Disposition::Accept;
    assert_eq!(kinds(&converge(&mut actual, &desired)), ["AssignImport"]);
    actual.export.import_policy = ImportPolicy::Other;
    assert_eq!(
        kinds(&converge(&mut actual, &desired)),
        [
            "AssignImport",
            "DeletePolicy",
            "AddImportPolicy",
            "AssignImport"
        ]
    );
}

#[test]
fn a_peer_filed_under_another_address_is_refused() {
    let mut desired = desired();
    let stray = peer("192.0.2.200");
    desired.peers.insert(ip("192.0.2.201"), stray);
    assert!(matches!(
        plan(&Actual::default(), &desired),
        Err(PlanError::PeerKey { .. })
    ));
}

/// Desired states over a small universe, so successive states overlap.
fn arb_desired() -> impl Strategy<Value = DesiredDaemon> {
    // .2 and .3 aggregate into one set entry, .1 does not.
    let prefixes = [
        "198.51.100.1/32",
        "198.51.100.2/32",
        "198.51.100.3/32",
        "2001:db8:100::1/128",
    ];
    let hops = [("192.0.2.2", "2001:db8::2"), ("192.0.2.3", "2001:db8::3")];
    let paths = proptest::collection::btree_set((0..4usize, 0..2usize, 0..3u32), 0..8);
    // Pools keep their name and attributes between states (only their prefixes and, for
    // the last, their peer selection vary), so membership-only changes are common.
    let rules = proptest::collection::vec((proptest::bits::u8::between(0, 4), any::<bool>()), 3);
    let used = proptest::collection::btree_set(0..3usize, 0..=3);
    let peers = proptest::collection::btree_set(0..3usize, 0..3);
    (paths, rules, used, peers, 0..2u32).prop_map(move |(paths, rules, used, peers, timer)| {
        let mut desired = desired();
        desired.paths = (paths.into_iter())
            .map(|(p, h, id)| {
                let prefix = net(prefixes[p]);
                let hop = if prefix.addr().is_ipv4() {
                    hops[h].0
                } else {
                    hops[h].1
                };
                DesiredPath {
                    prefix,
                    next_hop: ip(hop),
                    path_id: id,
                }
            })
            // One next hop per (prefix, id); which one varies between states.
            .fold(BTreeMap::new(), |mut by_key, p| {
                by_key.entry((p.prefix, p.path_id)).or_insert(p);
                by_key
            })
            .into_values()
            .collect();
        desired.export = (used.into_iter())
            .map(|t| {
                let (members, limited) = rules[t];
                ExportRule {
                    name: format!("pool-{t}"),
                    prefixes: (0..4)
                        .filter(|b| members & (1 << b) != 0)
                        .map(|b| net(prefixes[b]))
                        .collect(),
                    peers: match t {
                        0 => None,
                        1 => Some(BTreeSet::from([ip("192.0.2.254")])),
                        _ => limited.then(|| BTreeSet::from([ip("2001:db8::fe")])),
                    },
                    communities: vec![65000 << 16 | t as u32],
                    large_communities: if t == 2 {
                        vec![(65000, 1, 2)]
                    } else {
                        Vec::new()
                    },
                    local_preference: (t == 1).then_some(200),
                }
            })
            .collect();
        let addresses = ["192.0.2.254", "192.0.2.253", "2001:db8::fe"];
        desired.peers = (peers.into_iter())
            .map(|i| {
                let mut p = peer(addresses[i]);
                p.hold_time = Duration::from_secs(9 + u64::from(timer));
                (p.address, p)
            })
            .collect();
        desired
    })
}

proptest! {
    #[test]
    fn any_sequence_of_desired_states_converges_and_then_plans_nothing(
        states in proptest::collection::vec(arb_desired(), 1..5)
    ) {
        let mut actual = Actual::default();
        for desired in &states {
            converge(&mut actual, desired);
            prop_assert_eq!(plan(&actual, desired).expect("valid"), Vec::<Op>::new());
            let want: BTreeMap<PathKey, IpAddr> = desired
                .paths
                .iter()
                .map(|p| (PathKey { prefix: p.prefix, path_id: p.path_id }, p.next_hop))
                .collect();
            prop_assert_eq!(&actual.paths, &want);
            prop_assert_eq!(
                actual.peers.keys().collect::<Vec<_>>(),
                desired.peers.keys().collect::<Vec<_>>()
            );
            let model = ExportModel::from_rules(&desired.export).expect("valid rules");
            prop_assert_eq!(actual.export.prefix_sets.len(), model.prefix_sets.len());
            prop_assert_eq!(actual.export.policies.len(), 1);
        }
    }
}

proptest! {
    #[test]
    fn routes_already_sent_are_re_exported_whenever_the_policy_changed_for_them(
        states in proptest::collection::vec(arb_desired(), 1..6)
    ) {
        let mut actual = Actual::default();
        let mut sent = Sent::new();
        for desired in &states {
            converge_tracking(&mut actual, &mut sent, desired);
        }
    }
}

/// Applies `ops` to the model.
fn apply_all(actual: &mut Actual, ops: &[Op]) {
    for op in ops {
        model::apply(actual, op);
    }
}

/// Where each kind of operation sits in `ops`: the first `AddPaths`, and the peers added
/// with their `restarting` flag and position.
fn added_peers(ops: &[Op]) -> Vec<(usize, IpAddr, bool)> {
    (ops.iter().enumerate())
        .filter_map(|(i, op)| match op {
            Op::AddPeer {
                address,
                restarting,
                ..
            } => Some((i, *address, *restarting)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_daemon_opened_early_gets_its_paths_then_its_graceful_restart_peers_as_restarting() {
    let mut desired = desired();
    let v4 = ip("192.0.2.254");
    let v6 = ip("2001:db8::fe");
    desired.peers.get_mut(&v4).expect("peer").graceful_restart = Some(Duration::from_secs(60));

    let opening = opening(&desired);
    assert!(opening.paths.is_empty());
    assert_eq!(opening.peers.keys().copied().collect::<Vec<_>>(), [v6]);
    assert_eq!(opening.global, desired.global);
    let mut actual = converged(&opening);
    assert!(actual.paths.is_empty() && actual.peers.contains_key(&v6));

    let ops = plan_after_opening(&actual, &desired).expect("valid");
    assert_eq!(kinds(&ops), ["AddPaths", "AddPeer"], "{ops:?}");
    assert!(
        matches!(&ops[1], Op::AddPeer { address, restarting: true, .. } if *address == v4),
        "the restarting peer starts with the final table: {ops:?}"
    );
    // Planned as an ordinary running daemon, the router would not be told we restarted.
    assert!(matches!(
        plan(&actual, &desired).expect("valid").as_slice(),
        [
            _,
            Op::AddPeer {
                restarting: false,
                ..
            }
        ]
    ));
    apply_all(&mut actual, &ops);
    assert_eq!(actual, converged(&desired));
}

proptest! {
    #[test]
    fn opening_early_then_planning_reaches_the_desired_state_with_nothing_resent(
        early in arb_desired(),
        mut desired in arb_desired(),
        graceful in proptest::collection::vec(any::<bool>(), 3),
    ) {
        for (peer, graceful) in desired.peers.values_mut().zip(graceful) {
            peer.graceful_restart = graceful.then(|| Duration::from_secs(60));
        }
        let mut actual = converged(&opening(&early));
        prop_assert!(actual.paths.is_empty());
        let ops = plan_after_opening(&actual, &desired).expect("valid");
        // Nothing was exported yet, so nothing is sent twice.
        prop_assert!(!ops.iter().any(|op| matches!(op, Op::SoftResetOut | Op::StopBgp)), "{:?}", kinds(&ops));
        let first_paths = ops.iter().position(|op| matches!(op, Op::AddPaths(_)));
        for (at, address, restarting) in added_peers(&ops) {
            let graceful = desired.peers[&address].graceful_restart.is_some();
            prop_assert_eq!(restarting, graceful, "{}", address);
            if let Some(first_paths) = first_paths {
                prop_assert_eq!(at > first_paths, graceful, "{}: {:?}", address, kinds(&ops));
            }
        }
        apply_all(&mut actual, &ops);
        prop_assert_eq!(plan(&actual, &desired).expect("valid"), Vec::<Op>::new());
    }
}
