//! What a gobgpd holds, as plain data: `actual` reads it from the daemon, `plan` compares it
//! with the desired state. Only what converge owns is kept (our defined sets and policies,
//! locally originated paths, the settings of peers we configure).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::peer::PeerSpec;
use super::policy::Statement;
use crate::announce::desired::Global;

/// A locally originated path is identified by its prefix and path identifier: gobgpd
/// replaces a path when one with the same pair is added again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PathKey {
    pub prefix: IpNet,
    pub path_id: u32,
}

/// One entry of a prefix set: `prefix` with a mask-length range. Ours are exact
/// (`min_len == max_len == prefix length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PrefixEntry {
    pub prefix: IpNet,
    pub min_len: u32,
    pub max_len: u32,
}

impl PrefixEntry {
    pub(crate) fn exact(prefix: IpNet) -> Self {
        let len = prefix.prefix_len().into();
        PrefixEntry {
            prefix,
            min_len: len,
            max_len: len,
        }
    }
}

/// The default disposition of a policy assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Disposition {
    #[default]
    Unspecified,
    Accept,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Assignment {
    pub policies: Vec<String>,
    pub default: Disposition,
}

/// Our import policy as the daemon holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum ImportPolicy {
    #[default]
    Missing,
    /// Exactly our one statement accepting local routes.
    AcceptsLocal,
    /// Something else under our name.
    Other,
}

/// Our part of the daemon's routing policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ActualExport {
    /// Our prefix sets (by name) and their entries.
    pub prefix_sets: BTreeMap<String, BTreeSet<PrefixEntry>>,
    /// Our neighbor sets and their entries (prefixes; ours are single addresses).
    pub neighbor_sets: BTreeMap<String, BTreeSet<IpNet>>,
    /// Our policies and their statements; `None` where a statement has something our model
    /// cannot express (it then never matches what we want).
    pub policies: BTreeMap<String, Option<Vec<Statement>>>,
    /// The global export assignment (all of it, not only our policies).
    pub export: Assignment,
    /// Our import policy.
    pub import_policy: ImportPolicy,
    /// The global import assignment.
    pub import: Assignment,
}

/// Everything converge compares.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Actual {
    /// `None`: BGP is not started (`GetBgp` reports asn 0); then nothing else exists.
    pub global: Option<Global>,
    pub peers: BTreeMap<IpAddr, PeerSpec>,
    pub export: ActualExport,
    /// Locally originated paths and their next hops.
    pub paths: BTreeMap<PathKey, IpAddr>,
}
