//! The pure half of converge: what the daemon holds ([`Actual`]) against what it should hold
//! ([`DesiredDaemon`]) becomes an ordered list of [`Op`]s. No I/O; a converged daemon yields
//! no operations.
//!
//! Order, and why:
//! 1. `StopBgp` (only when the global settings differ) and `StartBgp`: nothing else can be
//!    configured before, and `StartBgp` resets the routing policy (`s.policy.Initialize()`).
//! 2. Peers that must go are deleted first, so nothing more is announced to them.
//! 3. The import policy (it applies when a path enters the table), then the export policy:
//!    set entries added, a changed statement list built beside the assigned policy and
//!    swapped in, the old policy deleted, set entries removed, stale sets deleted (a set can
//!    only go once no policy uses it).
//! 4. Paths: additions (a replaced next hop is an addition with the same identifier), then
//!    removals, so a prefix moving between next hops is never without a path.
//! 5. A soft reset out when the policy changed under paths that stayed (gobgpd applies a
//!    changed policy only to routes it sends afterwards).
//! 6. Peers updated and added last, so a new session starts with the final table — except,
//!    on a fresh daemon, new sessions without graceful restart, which are opened before the
//!    paths are streamed (after the policy), so that the adapter can let them come up
//!    first: gobgpd sends a table that exists when a session comes up several times slower
//!    than paths added to an Established session.
//!
//! Opening: a fresh daemon's plain sessions can be opened even earlier, before the cluster
//! is read in full, with [`opening`]'s state (no paths, no graceful-restart peers); the
//! daemon is then planned on with [`plan_after_opening`], which treats it as still starting.

mod export;
#[cfg(test)]
mod model;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::normalized_global;
use super::peer::PeerSpec;
use super::policy::{ExportModel, ExportRuleError, Statement};
use super::state::{Actual, PathKey, PrefixEntry};
use crate::announce::desired::{Afi, DesiredDaemon, Global};

/// Entries added to or removed from one defined set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetEntries {
    Prefixes {
        name: String,
        entries: BTreeSet<PrefixEntry>,
    },
    Neighbors {
        name: String,
        entries: BTreeSet<IpNet>,
    },
}

/// A defined set by kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetName {
    Prefix(String),
    Neighbor(String),
}

/// One daemon write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Stop BGP, keeping graceful-restart peers' routes (no NOTIFICATION to them).
    StopBgp,
    StartBgp(Global),
    DeletePeer(IpAddr),
    /// Creates the set when missing (also empty), else appends to it in place.
    AddToSet(SetEntries),
    /// Removes entries in place.
    RemoveFromSet(SetEntries),
    DeleteSet(SetName),
    AddPolicy {
        name: &'static str,
        statements: Vec<Statement>,
    },
    DeletePolicy(String),
    /// The global export assignment becomes exactly these policies, default accept.
    AssignExport(Vec<&'static str>),
    /// Adds the import policy that accepts locally originated routes.
    AddImportPolicy,
    /// The global import assignment becomes exactly these policies, default reject.
    AssignImport(Vec<&'static str>),
    AddPaths(Vec<(PathKey, IpAddr)>),
    DeletePaths(Vec<(PathKey, IpAddr)>),
    /// Re-evaluate the export policy for every established peer.
    SoftResetOut,
    UpdatePeer {
        address: IpAddr,
        spec: PeerSpec,
    },
    AddPeer {
        address: IpAddr,
        spec: PeerSpec,
        /// Greet the router as a restarting speaker (the daemon was just started and the
        /// peer has graceful restart).
        restarting: bool,
    },
}

/// The desired state cannot be what a daemon holds.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the global ASN is 0 (gobgpd treats that as not started)")]
    NoAsn,
    #[error("peer {key} is filed under another address ({address})")]
    PeerKey { key: IpAddr, address: IpAddr },
    #[error("{prefix} has two paths with identifier {path_id} ({first} and {second})")]
    DuplicatePath {
        prefix: IpNet,
        path_id: u32,
        first: IpAddr,
        second: IpAddr,
    },
    #[error("{prefix} cannot have next hop {next_hop} (another address family)")]
    NextHopFamily { prefix: IpNet, next_hop: IpAddr },
    #[error("invalid export rules")]
    Export(#[from] ExportRuleError),
}

/// The operations that make a daemon holding `actual` hold `desired`, in order.
pub fn plan(actual: &Actual, desired: &DesiredDaemon) -> Result<Vec<Op>, PlanError> {
    plan_from(actual, desired, false)
}

/// The state that opens a fresh daemon's sessions while the rest of `desired` is not known
/// yet: its global settings, export rules and peers without graceful restart, and no paths.
/// A graceful-restart peer is left out: it must start with the final table, because its
/// first End-of-RIB makes the router drop the routes it kept for us.
pub fn opening(desired: &DesiredDaemon) -> DesiredDaemon {
    DesiredDaemon {
        global: desired.global.clone(),
        peers: (desired.peers.iter())
            .filter(|(_, peer)| peer.graceful_restart.is_none())
            .map(|(address, peer)| (*address, peer.clone()))
            .collect(),
        paths: BTreeSet::new(),
        export: desired.export.clone(),
    }
}

/// Plans from a daemon that this handle started with an [`opening`] state (and nothing
/// since) to `desired`, as for a daemon still starting: graceful-restart peers are greeted
/// as restarting and added after the paths.
pub fn plan_after_opening(actual: &Actual, desired: &DesiredDaemon) -> Result<Vec<Op>, PlanError> {
    plan_from(actual, desired, true)
}

fn plan_from(actual: &Actual, desired: &DesiredDaemon, opened: bool) -> Result<Vec<Op>, PlanError> {
    if desired.global.asn == 0 {
        return Err(PlanError::NoAsn);
    }
    let paths = desired_paths(desired)?;
    let model = ExportModel::from_rules(&desired.export)?;
    let want_global = normalized_global(&desired.global);

    let mut ops = Vec::new();
    let empty = Actual::default();
    let (base, starting) = match &actual.global {
        Some(global) if *global == want_global => (actual, opened),
        Some(_) => {
            ops.push(Op::StopBgp);
            ops.push(Op::StartBgp(desired.global.clone()));
            (&empty, true)
        }
        None => {
            ops.push(Op::StartBgp(desired.global.clone()));
            (&empty, true)
        }
    };

    let peers = desired_peers(desired)?;
    ops.extend(
        base.peers
            .keys()
            .filter(|address| !peers.contains_key(address))
            .map(|address| Op::DeletePeer(*address)),
    );
    let kept = Kept {
        actual: &base.paths,
        desired: &paths,
    };
    let export = export::plan(&base.export, &model, &kept);
    ops.extend(export.ops);
    let peers_remain = base.peers.keys().any(|a| peers.contains_key(a));
    // On a fresh daemon, sessions without graceful restart are opened before the paths are
    // streamed: connecting takes seconds (gobgpd connects out, the router cannot connect to
    // us), and a new session has nothing stale at the router that an early End-of-RIB could
    // flush. The export policy is in place by then (above), so nothing goes out unfiltered.
    // Graceful-restart sessions still start with the final table.
    let (early, late): (BTreeMap<_, _>, BTreeMap<_, _>) = if starting {
        peers
            .into_iter()
            .partition(|(_, spec)| spec.graceful_restart.is_none())
    } else {
        (BTreeMap::new(), peers)
    };
    plan_peers(base, early, starting, &mut ops);
    plan_paths(&base.paths, &paths, &mut ops);
    if export.reevaluate && peers_remain {
        ops.push(Op::SoftResetOut);
    }
    plan_peers(base, late, starting, &mut ops);
    Ok(ops)
}

pub fn desired_paths(desired: &DesiredDaemon) -> Result<BTreeMap<PathKey, IpAddr>, PlanError> {
    let mut paths = BTreeMap::new();
    for path in &desired.paths {
        if Afi::of(&path.next_hop) != Afi::of_net(&path.prefix) {
            return Err(PlanError::NextHopFamily {
                prefix: path.prefix,
                next_hop: path.next_hop,
            });
        }
        let key = PathKey {
            prefix: path.prefix.trunc(),
            path_id: path.path_id,
        };
        if let Some(first) = paths.insert(key, path.next_hop) {
            return Err(PlanError::DuplicatePath {
                prefix: key.prefix,
                path_id: key.path_id,
                first,
                second: path.next_hop,
            });
        }
    }
    Ok(paths)
}

fn desired_peers(desired: &DesiredDaemon) -> Result<BTreeMap<IpAddr, PeerSpec>, PlanError> {
    desired
        .peers
        .iter()
        .map(|(key, peer)| {
            if *key != peer.address {
                return Err(PlanError::PeerKey {
                    key: *key,
                    address: peer.address,
                });
            }
            Ok((*key, PeerSpec::from_desired(peer, desired.global.asn)))
        })
        .collect()
}

/// The paths this plan neither adds nor removes: the routes a policy change reaches only
/// through a soft reset. Answered from both path tables, without building a third.
pub(super) struct Kept<'a> {
    actual: &'a BTreeMap<PathKey, IpAddr>,
    desired: &'a BTreeMap<PathKey, IpAddr>,
}

impl Kept<'_> {
    fn stays(&self, key: &PathKey, hop: &IpAddr) -> bool {
        self.desired.get(key) == Some(hop)
    }

    /// Whether any path stays.
    pub(super) fn any(&self) -> bool {
        self.actual.iter().any(|(key, hop)| self.stays(key, hop))
    }

    /// Whether a path that stays has a prefix for which `affected` holds.
    pub(super) fn any_route(&self, affected: impl Fn(&IpNet) -> bool) -> bool {
        (self.actual.iter()).any(|(key, hop)| self.stays(key, hop) && affected(&key.prefix))
    }
}

fn plan_paths(
    actual: &BTreeMap<PathKey, IpAddr>,
    desired: &BTreeMap<PathKey, IpAddr>,
    ops: &mut Vec<Op>,
) {
    let added: Vec<_> = desired
        .iter()
        .filter(|(key, hop)| actual.get(key) != Some(hop))
        .map(|(key, hop)| (*key, *hop))
        .collect();
    let deleted: Vec<_> = actual
        .iter()
        .filter(|(key, _)| !desired.contains_key(key))
        .map(|(key, hop)| (*key, *hop))
        .collect();
    if !added.is_empty() {
        ops.push(Op::AddPaths(added));
    }
    if !deleted.is_empty() {
        ops.push(Op::DeletePaths(deleted));
    }
}

fn plan_peers(
    base: &Actual,
    desired: BTreeMap<IpAddr, PeerSpec>,
    starting: bool,
    ops: &mut Vec<Op>,
) {
    let mut added = Vec::new();
    for (address, spec) in desired {
        match base.peers.get(&address) {
            Some(current) if *current == spec => {}
            Some(_) => ops.push(Op::UpdatePeer { address, spec }),
            None => {
                let restarting = starting && spec.graceful_restart.is_some();
                added.push(Op::AddPeer {
                    address,
                    spec,
                    restarting,
                });
            }
        }
    }
    ops.extend(added);
}
