//! A model of how gobgpd applies each planned operation, with its refusals as panics (a set
//! in use cannot be deleted, an assigned policy cannot be deleted, a policy is added once,
//! statements need their sets, nothing but `StartBgp` works before start), and of what each
//! peer was last sent, so tests can check plans by running them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::*;
use crate::announce::gobgp::policy::IMPORT_POLICY_NAME;
use crate::announce::gobgp::state::{ActualExport, Assignment, Disposition, ImportPolicy};

/// How gobgpd applies an operation, with its refusals as panics: a set in use cannot be
/// deleted, a policy must not exist before it is added, an assigned policy cannot be
/// deleted, statements need their sets, nothing but StartBgp works before start.
pub(super) fn apply(actual: &mut Actual, op: &Op) {
    if !matches!(op, Op::StartBgp(_) | Op::StopBgp) {
        assert!(actual.global.is_some(), "{op:?} before StartBgp");
    }
    match op {
        Op::StopBgp => *actual = Actual::default(),
        Op::StartBgp(global) => {
            assert!(actual.global.is_none(), "StartBgp on a started daemon");
            *actual = Actual {
                global: Some(normalized_global(global)),
                ..Actual::default()
            };
        }
        Op::DeletePeer(address) => {
            assert!(actual.peers.remove(address).is_some(), "no peer {address}");
        }
        Op::AddPaths(paths) => actual.paths.extend(paths.iter().copied()),
        Op::DeletePaths(paths) => {
            for (key, _) in paths {
                assert!(actual.paths.remove(key).is_some(), "no path {key:?}");
            }
        }
        Op::SoftResetOut => {}
        Op::UpdatePeer { address, spec } => {
            let current = actual.peers.get_mut(address).expect("peer exists");
            *current = spec.clone();
        }
        Op::AddPeer { address, spec, .. } => {
            let old = actual.peers.insert(*address, spec.clone());
            assert!(old.is_none(), "peer {address} added twice");
        }
        op => apply_export(&mut actual.export, op),
    }
}

/// Defined-set operations, as gobgpd's `RoutingPolicy` applies them.
fn apply_export(export: &mut ActualExport, op: &Op) {
    match op {
        Op::AddToSet(SetEntries::Prefixes { name, entries }) => {
            export
                .prefix_sets
                .entry(name.clone())
                .or_default()
                .extend(entries);
        }
        Op::AddToSet(SetEntries::Neighbors { name, entries }) => {
            export
                .neighbor_sets
                .entry(name.clone())
                .or_default()
                .extend(entries);
        }
        Op::RemoveFromSet(SetEntries::Prefixes { name, entries }) => {
            let set = export.prefix_sets.get_mut(name).expect("set exists");
            set.retain(|e| !entries.contains(e));
        }
        Op::RemoveFromSet(SetEntries::Neighbors { name, entries }) => {
            let set = export.neighbor_sets.get_mut(name).expect("set exists");
            set.retain(|e| !entries.contains(e));
        }
        Op::DeleteSet(set) => {
            let name = match set {
                SetName::Prefix(name) | SetName::Neighbor(name) => name,
            };
            let in_use = export
                .policies
                .values()
                .flatten()
                .flatten()
                .any(|s| s.prefix_set == *name || s.unless_neighbor_in.as_ref() == Some(name));
            assert!(!in_use, "set {name} deleted while in use");
            match set {
                SetName::Prefix(n) => assert!(export.prefix_sets.remove(n).is_some()),
                SetName::Neighbor(n) => assert!(export.neighbor_sets.remove(n).is_some()),
            }
        }
        op => apply_policy(export, op),
    }
}

/// Policies and assignments, as gobgpd's `RoutingPolicy` applies them.
fn apply_policy(export: &mut ActualExport, op: &Op) {
    match op {
        Op::AddPolicy { name, statements } => {
            for s in statements {
                assert!(export.prefix_sets.contains_key(&s.prefix_set), "{s:?}");
                if let Some(n) = &s.unless_neighbor_in {
                    assert!(export.neighbor_sets.contains_key(n), "{s:?}");
                }
            }
            let old = export
                .policies
                .insert((*name).to_owned(), Some(statements.clone()));
            assert!(old.is_none(), "policy {name} added twice");
        }
        Op::DeletePolicy(name) if name == IMPORT_POLICY_NAME => {
            assert!(!export.import.policies.contains(name), "{name} is assigned");
            assert_ne!(
                export.import_policy,
                ImportPolicy::Missing,
                "no policy {name}"
            );
            export.import_policy = ImportPolicy::Missing;
        }
        Op::DeletePolicy(name) => {
            assert!(!export.export.policies.contains(name), "{name} is assigned");
            assert!(export.policies.remove(name).is_some(), "no policy {name}");
        }
        Op::AssignExport(names) => {
            for name in names {
                assert!(export.policies.contains_key(*name), "no policy {name}");
            }
            export.export = Assignment {
                policies: names.iter().map(|n| (*n).to_owned()).collect(),
                default: Disposition::Accept,
            };
        }
        Op::AddImportPolicy => {
            assert_eq!(
                export.import_policy,
                ImportPolicy::Missing,
                "import policy added twice"
            );
            export.import_policy = ImportPolicy::AcceptsLocal;
        }
        Op::AssignImport(names) => {
            for name in names {
                assert_eq!(*name, IMPORT_POLICY_NAME);
                assert_ne!(
                    export.import_policy,
                    ImportPolicy::Missing,
                    "no policy {name}"
                );
            }
            export.import = Assignment {
                policies: names.iter().map(|n| (*n).to_owned()).collect(),
                default: Disposition::Reject,
            };
        }
        op => unreachable!("apply handles {op:?}"),
    }
}

/// Plans from `actual` to `desired` and applies the plan to `actual`.
pub(super) fn converge(actual: &mut Actual, desired: &DesiredDaemon) -> Vec<Op> {
    let ops = plan(actual, desired).expect("valid desired state");
    for op in &ops {
        apply(actual, op);
    }
    ops
}

pub(super) fn converged(desired: &DesiredDaemon) -> Actual {
    let mut actual = Actual::default();
    converge(&mut actual, desired);
    actual
}

/// What a peer received for a route: rejected (`None`) or these attributes.
type Verdict = Option<crate::announce::gobgp::policy::Attributes>;

/// The export verdict of the assigned policy for `prefix` towards `peer`, evaluated the way
/// gobgpd does (statements in order, first accept/reject wins, default accept; an empty
/// neighbor set matches every neighbor).
fn verdict(export: &ActualExport, prefix: &IpNet, peer: IpAddr) -> Verdict {
    use crate::announce::gobgp::policy::{Action, Attributes};
    let statements = (export.export.policies.first())
        .and_then(|name| export.policies.get(name))
        .and_then(Option::as_ref);
    for s in statements.into_iter().flatten() {
        let in_set = (export.prefix_sets.get(&s.prefix_set))
            .is_some_and(|set| set.iter().any(|e| e.matches(prefix)));
        let neighbor = match &s.unless_neighbor_in {
            None => true,
            Some(name) => export.neighbor_sets.get(name).is_some_and(|set| {
                set.is_empty() || !set.iter().any(|n| n.contains(&IpNet::from(peer)))
            }),
        };
        if in_set && neighbor {
            return match &s.action {
                Action::Reject => None,
                Action::Accept(attributes) => Some(attributes.clone()),
            };
        }
    }
    Some(Attributes::default())
}

/// Routes as sent: per path and peer, the verdict when the path was last (re)sent.
pub(super) type Sent = BTreeMap<PathKey, BTreeMap<IpAddr, Verdict>>;

pub(super) fn converge_tracking(actual: &mut Actual, sent: &mut Sent, desired: &DesiredDaemon) {
    let peers = ["192.0.2.254", "192.0.2.253", "2001:db8::fe"]
        .map(|a| a.parse::<IpAddr>().expect("address"));
    let record = |actual: &Actual, key: &PathKey| -> BTreeMap<IpAddr, Verdict> {
        peers
            .iter()
            .map(|p| (*p, verdict(&actual.export, &key.prefix, *p)))
            .collect()
    };
    let before: BTreeSet<IpAddr> = actual.peers.keys().copied().collect();
    for op in plan(actual, desired).expect("valid desired state") {
        apply(actual, &op);
        match &op {
            Op::StopBgp | Op::StartBgp(_) => sent.clear(),
            Op::AddPaths(paths) => {
                for (key, _) in paths {
                    sent.insert(*key, record(actual, key));
                }
            }
            Op::DeletePaths(paths) => {
                for (key, _) in paths {
                    sent.remove(key);
                }
            }
            Op::SoftResetOut => {
                for (key, verdicts) in sent.iter_mut() {
                    *verdicts = record(actual, key);
                }
            }
            _ => {}
        }
    }
    // New peers get the table afresh when their session starts: what they hold is what the
    // final policy says, whatever was recorded for their address while they were absent.
    for peer in (actual.peers.keys()).filter(|p| !before.contains(p)) {
        for (key, verdicts) in sent.iter_mut() {
            verdicts.insert(*peer, verdict(&actual.export, &key.prefix, *peer));
        }
    }
    // A peer that was there before and still is holds what the final policy says.
    for key in actual.paths.keys() {
        for peer in before.iter().filter(|p| actual.peers.contains_key(p)) {
            assert_eq!(
                sent[key][peer],
                verdict(&actual.export, &key.prefix, *peer),
                "{key:?} at {peer} is stale"
            );
        }
    }
}
