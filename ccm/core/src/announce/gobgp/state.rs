//! What a gobgpd holds, as plain data ([`Actual`]): the wire adapter reads it from the daemon,
//! `plan` compares it with the desired state. Only what converge owns is kept (our defined
//! sets and policies, locally originated paths, the settings of peers we configure).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::peer::PeerSpec;
use super::policy::Statement;
use crate::announce::desired::Global;

/// A locally originated path is identified by its prefix and path identifier: gobgpd
/// replaces a path when one with the same pair is added again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathKey {
    pub prefix: IpNet,
    pub path_id: u32,
}

/// One entry of a prefix set: a block `prefix` with a mask-length range; it matches a route
/// whose length lies in the range and which the block contains (gobgpd's
/// `PrefixCondition.Evaluate`). Ours have `min_len == max_len`: they match exactly the
/// prefixes of that length inside the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefixEntry {
    pub prefix: IpNet,
    pub min_len: u32,
    pub max_len: u32,
}

impl PrefixEntry {
    /// The entries matching exactly `prefixes` and nothing else: per prefix length `L`,
    /// the prefixes of that length aggregated into the blocks they cover completely, each
    /// as `block` with range `L..L`. A pool's contiguous addresses become a few entries
    /// instead of one each, which gobgpd builds and lists far faster.
    pub fn exact_set<'a>(prefixes: impl IntoIterator<Item = &'a IpNet>) -> BTreeSet<Self> {
        let mut by_length: BTreeMap<u8, Vec<IpNet>> = BTreeMap::new();
        for prefix in prefixes {
            by_length
                .entry(prefix.prefix_len())
                .or_default()
                .push(prefix.trunc());
        }
        by_length
            .into_iter()
            .flat_map(|(len, nets)| {
                IpNet::aggregate(&nets)
                    .into_iter()
                    .map(move |block| PrefixEntry {
                        prefix: block,
                        min_len: len.into(),
                        max_len: len.into(),
                    })
            })
            .collect()
    }

    pub fn matches(&self, route: &IpNet) -> bool {
        let len = u32::from(route.prefix_len());
        self.min_len <= len && len <= self.max_len && self.prefix.contains(route)
    }
}

/// Whether any entry of `set` matches `route`: our entries are found by their block (one
/// lookup per shorter length), any others by a scan of `others`.
pub fn set_matches(set: &BTreeSet<PrefixEntry>, others: &[PrefixEntry], route: &IpNet) -> bool {
    let len = route.prefix_len();
    let ours = (0..=len).any(|k| {
        IpNet::new(route.addr(), k).is_ok_and(|block| {
            set.contains(&PrefixEntry {
                prefix: block.trunc(),
                min_len: len.into(),
                max_len: len.into(),
            })
        })
    });
    ours || others.iter().any(|e| e.matches(route))
}

/// The default disposition of a policy assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Disposition {
    #[default]
    Unspecified,
    Accept,
    Reject,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub policies: Vec<String>,
    pub default: Disposition,
}

/// Our import policy as the daemon holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportPolicy {
    #[default]
    Missing,
    /// Exactly our one statement accepting local routes.
    AcceptsLocal,
    /// Something else under our name.
    Other,
}

/// Our part of the daemon's routing policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActualExport {
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
pub struct Actual {
    /// `None`: BGP is not started (`GetBgp` reports asn 0); then nothing else exists.
    pub global: Option<Global>,
    pub peers: BTreeMap<IpAddr, PeerSpec>,
    pub export: ActualExport,
    /// Locally originated paths and their next hops.
    pub paths: BTreeMap<PathKey, IpAddr>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(texts: &[&str]) -> Vec<IpNet> {
        texts.iter().map(|t| t.parse().expect("prefix")).collect()
    }

    #[test]
    fn contiguous_addresses_become_few_entries_matching_exactly_them() {
        let prefixes: Vec<IpNet> = (0..=255u8)
            .map(|i| format!("198.51.100.{i}/32").parse().expect("prefix"))
            .chain(nets(&[
                "198.51.101.0/32",
                "2001:db8::/127",
                "2001:db8::2/127",
            ]))
            .collect();
        let entries = PrefixEntry::exact_set(&prefixes);
        let shown: Vec<String> = entries
            .iter()
            .map(|e| format!("{} {}..{}", e.prefix, e.min_len, e.max_len))
            .collect();
        assert_eq!(
            shown,
            [
                "198.51.100.0/24 32..32",
                "198.51.101.0/32 32..32",
                "2001:db8::/126 127..127"
            ]
        );
        for prefix in &prefixes {
            assert!(set_matches(&entries, &[], prefix), "{prefix} is in the set");
        }
        for outside in nets(&[
            "198.51.100.0/24",
            "198.51.101.1/32",
            "2001:db8::/128",
            "2001:db8::4/127",
        ]) {
            assert!(
                !set_matches(&entries, &[], &outside),
                "{outside} is not in the set"
            );
        }
    }

    #[test]
    fn an_entry_of_another_form_is_matched_by_its_range() {
        let other = PrefixEntry {
            prefix: "198.51.100.0/24".parse().expect("prefix"),
            min_len: 24,
            max_len: 32,
        };
        let route: IpNet = "198.51.100.7/32".parse().expect("prefix");
        assert!(other.matches(&route));
        assert!(set_matches(&BTreeSet::from([other]), &[other], &route));
        assert!(
            !set_matches(&BTreeSet::from([other]), &[], &route),
            "found only by the scan"
        );
    }
}
