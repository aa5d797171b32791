//! Planning the export and import policy: defined sets edited in place, a changed statement
//! list built under the other policy name and swapped in by one assignment.

use std::collections::BTreeSet;

use ipnet::IpNet;

use super::{Kept, Op, SetEntries, SetName};
use crate::announce::gobgp::policy::{
    EXPORT_POLICY_NAMES, ExportModel, IMPORT_POLICY_NAME, other_policy,
};
use crate::announce::gobgp::state::{
    ActualExport, Assignment, Disposition, ImportPolicy, PrefixEntry, set_matches,
};

pub(super) struct ExportPlan {
    pub ops: Vec<Op>,
    /// Routes already sent may now be exported differently.
    pub reevaluate: bool,
}

/// Entries to add and to remove so that `actual` holds `desired`.
fn set_diff<T: Ord + Clone>(
    actual: Option<&BTreeSet<T>>,
    desired: &BTreeSet<T>,
) -> (BTreeSet<T>, BTreeSet<T>) {
    let empty = BTreeSet::new();
    let actual = actual.unwrap_or(&empty);
    (
        desired.difference(actual).cloned().collect(),
        actual.difference(desired).cloned().collect(),
    )
}

/// A prefix set whose entries change, for telling which routes change membership.
struct ChangedSet<'a> {
    before: Option<&'a BTreeSet<PrefixEntry>>,
    /// Entries of `before` that are not of our form (someone else's), matched by a scan.
    before_others: Vec<PrefixEntry>,
    after: &'a BTreeSet<PrefixEntry>,
    /// Added and removed entries: only routes they match can change membership.
    changed: Vec<PrefixEntry>,
}

impl ChangedSet<'_> {
    /// Whether `route` is in the set before and not after, or the other way round.
    fn moves(&self, route: &IpNet) -> bool {
        if !self.changed.iter().any(|e| e.matches(route)) {
            return false;
        }
        let before = self
            .before
            .is_some_and(|set| set_matches(set, &self.before_others, route));
        before != set_matches(self.after, &[], route)
    }
}

struct SetPlan<'a> {
    add: Vec<Op>,
    remove: Vec<Op>,
    delete: Vec<Op>,
    changed: Vec<ChangedSet<'a>>,
    neighbors_changed: bool,
}

fn plan_sets<'a>(actual: &'a ActualExport, model: &'a ExportModel) -> SetPlan<'a> {
    let mut plan = SetPlan {
        add: Vec::new(),
        remove: Vec::new(),
        delete: Vec::new(),
        changed: Vec::new(),
        neighbors_changed: false,
    };
    for (name, desired) in &model.prefix_sets {
        let current = actual.prefix_sets.get(name);
        let (add, remove) = set_diff(current, desired);
        if !add.is_empty() || !remove.is_empty() {
            plan.changed.push(ChangedSet {
                before: current,
                before_others: (current.into_iter().flatten())
                    .filter(|e| e.min_len != e.max_len)
                    .copied()
                    .collect(),
                after: desired,
                changed: add.iter().chain(&remove).copied().collect(),
            });
        }
        if current.is_none() || !add.is_empty() {
            plan.add.push(Op::AddToSet(SetEntries::Prefixes {
                name: name.clone(),
                entries: add,
            }));
        }
        if !remove.is_empty() {
            plan.remove.push(Op::RemoveFromSet(SetEntries::Prefixes {
                name: name.clone(),
                entries: remove,
            }));
        }
    }
    for (name, addresses) in &model.neighbor_sets {
        let desired: BTreeSet<_> = addresses.iter().copied().map(IpNet::from).collect();
        let current = actual.neighbor_sets.get(name);
        let (add, remove) = set_diff(current, &desired);
        plan.neighbors_changed |= !add.is_empty() || !remove.is_empty();
        if current.is_none() || !add.is_empty() {
            plan.add.push(Op::AddToSet(SetEntries::Neighbors {
                name: name.clone(),
                entries: add,
            }));
        }
        if !remove.is_empty() {
            plan.remove.push(Op::RemoveFromSet(SetEntries::Neighbors {
                name: name.clone(),
                entries: remove,
            }));
        }
    }
    plan.delete.extend(
        (actual.prefix_sets.keys())
            .filter(|name| !model.prefix_sets.contains_key(*name))
            .map(|name| Op::DeleteSet(SetName::Prefix(name.clone()))),
    );
    plan.delete.extend(
        (actual.neighbor_sets.keys())
            .filter(|name| !model.neighbor_sets.contains_key(*name))
            .map(|name| Op::DeleteSet(SetName::Neighbor(name.clone()))),
    );
    plan
}

/// The policy ops when the assigned policy does not hold the desired statements: build the
/// statements under a name of ours that is not assigned, assign it alone, delete the rest.
fn rebuild_policy(actual: &ActualExport, model: &ExportModel) -> Vec<Op> {
    let assigned = &actual.export.policies;
    let mut ops = Vec::new();
    let target = match assigned.as_slice() {
        [only] if actual.policies.contains_key(only) => other_policy(only),
        _ => {
            let free = EXPORT_POLICY_NAMES
                .into_iter()
                .find(|name| !assigned.iter().any(|a| a == name));
            match free {
                Some(name) => name,
                None => {
                    // Both of our names are assigned (someone edited the assignment):
                    // release them before one is rebuilt.
                    ops.push(Op::AssignExport(Vec::new()));
                    EXPORT_POLICY_NAMES[0]
                }
            }
        }
    };
    if actual.policies.contains_key(target) {
        ops.push(Op::DeletePolicy(target.to_owned()));
    }
    ops.push(Op::AddPolicy {
        name: target,
        statements: model.statements.clone(),
    });
    ops.push(Op::AssignExport(vec![target]));
    ops.extend(
        (actual.policies.keys())
            .filter(|name| name.as_str() != target)
            .map(|name| Op::DeletePolicy(name.clone())),
    );
    ops
}

/// Which of our policies, if any, is assigned alone and holds exactly the desired statements.
fn current_policy(actual: &ActualExport, model: &ExportModel) -> Option<&'static str> {
    let [only] = actual.export.policies.as_slice() else {
        return None;
    };
    let name = EXPORT_POLICY_NAMES.into_iter().find(|n| n == only)?;
    let statements = actual.policies.get(name)?.as_ref()?;
    (*statements == model.statements).then_some(name)
}

/// The import side: our policy accepting local routes, assigned alone with default reject.
fn plan_import(actual: &ActualExport) -> Vec<Op> {
    let mut ops = Vec::new();
    let assigned = actual
        .import
        .policies
        .iter()
        .any(|p| p == IMPORT_POLICY_NAME);
    let mut reassign = false;
    match actual.import_policy {
        ImportPolicy::AcceptsLocal => {}
        ImportPolicy::Missing => {
            ops.push(Op::AddImportPolicy);
            reassign = true;
        }
        ImportPolicy::Other => {
            if assigned {
                ops.push(Op::AssignImport(Vec::new()));
            }
            ops.push(Op::DeletePolicy(IMPORT_POLICY_NAME.to_owned()));
            ops.push(Op::AddImportPolicy);
            reassign = true;
        }
    }
    let want = Assignment {
        policies: vec![IMPORT_POLICY_NAME.to_owned()],
        default: Disposition::Reject,
    };
    if reassign || actual.import != want {
        ops.push(Op::AssignImport(vec![IMPORT_POLICY_NAME]));
    }
    ops
}

pub(super) fn plan(actual: &ActualExport, model: &ExportModel, kept: &Kept<'_>) -> ExportPlan {
    let sets = plan_sets(actual, model);
    // Import first: it applies when a path enters the table, so it must be in place before
    // any path is added; export only matters once routes are sent.
    let mut ops = plan_import(actual);
    ops.extend(sets.add);
    let mut switched = false;
    match current_policy(actual, model) {
        Some(name) => {
            let leftover: Vec<_> = (actual.policies.keys())
                .filter(|other| other.as_str() != name)
                .map(|other| Op::DeletePolicy(other.clone()))
                .collect();
            if actual.export.default != Disposition::Accept {
                ops.push(Op::AssignExport(vec![name]));
                switched = true;
            }
            ops.extend(leftover);
        }
        None => {
            ops.extend(rebuild_policy(actual, model));
            switched = true;
        }
    }
    ops.extend(sets.remove);
    ops.extend(sets.delete);
    let touched_kept = !sets.changed.is_empty()
        && kept.any_route(|route| sets.changed.iter().any(|set| set.moves(route)));
    let reevaluate = (switched || sets.neighbors_changed) && kept.any() || touched_kept;
    ExportPlan { ops, reevaluate }
}
