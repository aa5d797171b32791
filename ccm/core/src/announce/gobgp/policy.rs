//! The export policy as gobgpd holds it, in plain data: the defined sets and ordered
//! statements that the desired export rules become, and the names that mark them as ours.
//!
//! Facts this shape rests on (gobgp v4.8.0, `internal/pkg/table/policy.go`):
//! - a prefix set holds one address family (`NewPrefixSetFromApiStruct`: "multiple
//!   families"), so every rule has an IPv4 and an IPv6 set; an empty set matches nothing
//!   (`PrefixCondition.Evaluate` compares the set's AFI first);
//! - on export the neighbor condition is evaluated against the *destination* peer
//!   (`NeighborCondition.Evaluate` prefers `options.Info.Address`, which `prePolicyFilterpath`
//!   in `pkg/server/server.go` fills with the receiving peer's `peerInfo`); an empty neighbor
//!   set matches every neighbor, with or without INVERT, so "not to peers in {}" rejects for
//!   all, which is what `peers: Some({})` means;
//! - statements keep a pointer to the set object they were validated against
//!   (`validateCondition`), so replacing a set (`AddDefinedSet` with `replace`) does not
//!   reach an existing policy; sets are therefore edited in place (append / remove entries),
//!   and a changed statement list is built as a new policy that the global assignment
//!   switches to atomically;
//! - the global import policy is applied to locally originated paths as well
//!   (`propagateUpdate` in `pkg/server/server.go` runs `POLICY_DIRECTION_IMPORT` also when
//!   the path has no source peer), so "import nothing" is an import policy that accepts
//!   local routes (`route_type LOCAL`, `RouteTypeCondition.Evaluate`: `path.IsLocal()`) with
//!   default reject, not a bare default reject (which turns every added path into a
//!   withdrawal).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use super::state::PrefixEntry;
use crate::announce::desired::{Afi, ExportRule, LargeCommunity};

/// The two names the export policy alternates between, so a changed statement list can be
/// built beside the assigned one and swapped in with one `SetPolicyAssignment`.
pub const EXPORT_POLICY_NAMES: [&str; 2] = ["baremetal-ccm-export", "baremetal-ccm-export-b"];

/// The global import policy: accept our own routes, nothing learned.
pub const IMPORT_POLICY_NAME: &str = "baremetal-ccm-import";
/// Its one statement.
pub const IMPORT_STATEMENT_NAME: &str = "baremetal-ccm-import/local";

/// Every defined set we own starts with this.
pub const SET_PREFIX: &str = "baremetal-ccm/";

/// Whether a defined-set name is one of ours.
pub fn is_our_set(name: &str) -> bool {
    name.starts_with(SET_PREFIX)
}

/// Whether a policy name is one of ours.
pub fn is_our_policy(name: &str) -> bool {
    EXPORT_POLICY_NAMES.contains(&name)
}

/// The export policy name not equal to `name`.
pub fn other_policy(name: &str) -> &'static str {
    if name == EXPORT_POLICY_NAMES[0] {
        EXPORT_POLICY_NAMES[1]
    } else {
        EXPORT_POLICY_NAMES[0]
    }
}

pub fn family_tag(afi: Afi) -> &'static str {
    match afi {
        Afi::Ipv4 => "v4",
        Afi::Ipv6 => "v6",
    }
}

pub fn prefix_set_name(rule: &str, afi: Afi) -> String {
    format!("{SET_PREFIX}{rule}/{}", family_tag(afi))
}

pub fn neighbor_set_name(rule: &str) -> String {
    format!("{SET_PREFIX}{rule}/peers")
}

/// What a matching statement does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reject,
    /// Add these attributes and accept.
    Accept(Attributes),
}

/// Attributes an accept statement adds. Communities are kept sorted and without duplicates:
/// their order in the attribute carries no meaning.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    pub communities: BTreeSet<u32>,
    pub large_communities: BTreeSet<LargeCommunity>,
    pub local_preference: Option<u32>,
}

/// One statement, named relative to its policy (`<policy>/<key>` in gobgpd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub key: String,
    pub prefix_set: String,
    /// Matches only routes exported to neighbors *not* in this set.
    pub unless_neighbor_in: Option<String>,
    pub action: Action,
}

impl Statement {
    pub fn full_name(&self, policy: &str) -> String {
        format!("{policy}/{}", self.key)
    }

    /// The key of a statement named `name` inside `policy`, if it follows our naming.
    pub fn key_of<'a>(policy: &str, name: &'a str) -> Option<&'a str> {
        name.strip_prefix(policy)?.strip_prefix('/')
    }
}

/// The export policy as the daemon should hold it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportModel {
    /// Entries matching exactly the rule's prefixes ([`PrefixEntry::exact_set`]).
    pub prefix_sets: BTreeMap<String, BTreeSet<PrefixEntry>>,
    pub neighbor_sets: BTreeMap<String, BTreeSet<IpAddr>>,
    pub statements: Vec<Statement>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExportRuleError {
    #[error("two export rules are named {0:?}")]
    DuplicateName(String),
    #[error("export rule name {0:?} is empty")]
    EmptyName(String),
}

impl ExportModel {
    /// The sets and statements `rules` become, in rule order. Each rule gets both family
    /// sets and both family statements even when a family has no prefixes, so that prefixes
    /// coming and going only edit set contents and never rebuild the policy.
    pub fn from_rules(rules: &[ExportRule]) -> Result<Self, ExportRuleError> {
        let mut model = ExportModel::default();
        let mut names = BTreeSet::new();
        for rule in rules {
            if rule.name.trim().is_empty() {
                return Err(ExportRuleError::EmptyName(rule.name.clone()));
            }
            if !names.insert(rule.name.as_str()) {
                return Err(ExportRuleError::DuplicateName(rule.name.clone()));
            }
            model.add_rule(rule);
        }
        Ok(model)
    }

    fn add_rule(&mut self, rule: &ExportRule) {
        let neighbors = rule.peers.as_ref().map(|peers| {
            let name = neighbor_set_name(&rule.name);
            self.neighbor_sets.insert(name.clone(), peers.clone());
            name
        });
        let attributes = Attributes {
            communities: rule.communities.iter().copied().collect(),
            large_communities: rule.large_communities.iter().copied().collect(),
            local_preference: rule.local_preference,
        };
        let (v4, v6): (Vec<IpNet>, Vec<IpNet>) = rule
            .prefixes
            .iter()
            .partition(|p| Afi::of_net(p) == Afi::Ipv4);
        let v4 = PrefixEntry::exact_set(&v4);
        let v6 = PrefixEntry::exact_set(&v6);
        for (afi, entries) in [(Afi::Ipv4, v4), (Afi::Ipv6, v6)] {
            let set = prefix_set_name(&rule.name, afi);
            self.prefix_sets.insert(set.clone(), entries);
            let tag = family_tag(afi);
            if let Some(neighbors) = &neighbors {
                self.statements.push(Statement {
                    key: format!("{}/{tag}/reject", rule.name),
                    prefix_set: set.clone(),
                    unless_neighbor_in: Some(neighbors.clone()),
                    action: Action::Reject,
                });
            }
            self.statements.push(Statement {
                key: format!("{}/{tag}/accept", rule.name),
                prefix_set: set,
                unless_neighbor_in: None,
                action: Action::Accept(attributes.clone()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> ExportRule {
        ExportRule {
            name: name.into(),
            prefixes: ["198.51.100.10/32", "2001:db8:100::10/128"]
                .iter()
                .map(|p| p.parse().expect("prefix"))
                .collect(),
            peers: None,
            communities: vec![65000 << 16 | 200, 65000 << 16 | 100, 65000 << 16 | 100],
            large_communities: vec![(65000, 1, 2)],
            local_preference: Some(200),
        }
    }

    #[test]
    fn a_rule_becomes_one_set_and_one_accept_statement_per_family() {
        let model = ExportModel::from_rules(&[rule("pool-a")]).expect("valid");
        assert_eq!(
            model.prefix_sets.keys().collect::<Vec<_>>(),
            ["baremetal-ccm/pool-a/v4", "baremetal-ccm/pool-a/v6"]
        );
        assert!(model.neighbor_sets.is_empty());
        let keys: Vec<_> = model.statements.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(keys, ["pool-a/v4/accept", "pool-a/v6/accept"]);
        let Action::Accept(attributes) = &model.statements[0].action else {
            panic!("accept statement");
        };
        assert_eq!(
            attributes.communities,
            BTreeSet::from([65000 << 16 | 100, 65000 << 16 | 200]),
            "communities are sorted and deduplicated"
        );
    }

    #[test]
    fn a_peer_selector_puts_a_reject_statement_before_the_attributes() {
        let mut limited = rule("pool-a");
        limited.peers = Some(BTreeSet::from(["192.0.2.254".parse().expect("address")]));
        let model = ExportModel::from_rules(&[limited]).expect("valid");
        let keys: Vec<_> = model.statements.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "pool-a/v4/reject",
                "pool-a/v4/accept",
                "pool-a/v6/reject",
                "pool-a/v6/accept"
            ]
        );
        assert_eq!(
            model.statements[0].unless_neighbor_in.as_deref(),
            Some("baremetal-ccm/pool-a/peers")
        );
        assert_eq!(model.neighbor_sets.len(), 1);
    }

    #[test]
    fn a_family_without_prefixes_still_has_its_empty_set() {
        let mut only_v4 = rule("pool-a");
        only_v4.prefixes.retain(|p| p.addr().is_ipv4());
        let model = ExportModel::from_rules(&[only_v4]).expect("valid");
        assert!(model.prefix_sets["baremetal-ccm/pool-a/v6"].is_empty());
        assert_eq!(model.statements.len(), 2);
    }

    #[test]
    fn two_rules_with_one_name_are_refused() {
        assert_eq!(
            ExportModel::from_rules(&[rule("a"), rule("a")]),
            Err(ExportRuleError::DuplicateName("a".into()))
        );
        assert_eq!(
            ExportModel::from_rules(&[rule(" ")]),
            Err(ExportRuleError::EmptyName(" ".into()))
        );
    }

    #[test]
    fn statement_keys_are_found_only_under_their_policy() {
        assert_eq!(
            Statement::key_of("baremetal-ccm-export", "baremetal-ccm-export/a/v4/accept"),
            Some("a/v4/accept")
        );
        assert_eq!(
            Statement::key_of("baremetal-ccm-export", "baremetal-ccm-export-b/a/v4/accept"),
            None
        );
        assert_eq!(other_policy(EXPORT_POLICY_NAMES[0]), EXPORT_POLICY_NAMES[1]);
        assert_eq!(other_policy(EXPORT_POLICY_NAMES[1]), EXPORT_POLICY_NAMES[0]);
    }
}
