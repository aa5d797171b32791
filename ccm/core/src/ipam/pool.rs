//! Address pools: the plain spec mirroring the `IPPool` resource, its validation into a [`Pool`],
//! scope checks (which Services a pool serves), counting, and overlap detection between pools.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use thiserror::Error;

use super::range::{self, AddressRange, Family, RangeError, Span};
use crate::selector::{Selector, SelectorError, SelectorSpec};

/// A pool as written in the cluster, not yet validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: String,
    pub addresses: Vec<String>,
    pub avoid_buggy_ips: bool,
    pub auto_assign: bool,
    /// Lower is preferred; ties are broken by name.
    pub priority: i32,
    pub scope: ScopeSpec,
    pub allow_cross_namespace_sharing: bool,
}

impl PoolSpec {
    /// A pool with the resource's defaults: auto-assigned, priority 0, serving every Service.
    pub fn new(name: &str, addresses: &[&str]) -> PoolSpec {
        PoolSpec {
            name: name.to_owned(),
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            avoid_buggy_ips: false,
            auto_assign: true,
            priority: 0,
            scope: ScopeSpec::default(),
            allow_cross_namespace_sharing: false,
        }
    }
}

/// Which Services a pool serves, as written. Every given criterion must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSpec {
    /// Namespaces by name; any namespace when empty.
    pub namespaces: Vec<String>,
    pub namespace_selector: Option<SelectorSpec>,
    pub service_selector: Option<SelectorSpec>,
}

/// One problem of a pool spec, naming the offending field (`addresses[2]`,
/// `scope.serviceSelector.matchExpressions[0]`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolProblem {
    #[error("name: must not be empty")]
    EmptyName,
    #[error("addresses: at least one entry is required")]
    NoAddresses,
    #[error("addresses[{index}]: {source}")]
    Address {
        index: usize,
        #[source]
        source: RangeError,
    },
    #[error("scope.namespaces[{index}]: {name:?} is not a namespace name")]
    Namespace { index: usize, name: String },
    #[error("scope.{field}.{source}")]
    Selector {
        field: &'static str,
        #[source]
        source: SelectorError,
    },
}

/// A pool spec that failed validation, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct InvalidPool {
    pub pool: String,
    pub problems: Vec<PoolProblem>,
}

/// `pool NAME is invalid: PROBLEM; PROBLEM`.
impl fmt::Display for InvalidPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pool {} is invalid: ", self.pool)?;
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Why a pool does not serve a Service.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Ineligibility {
    #[error("namespace {0} is not in its scope")]
    NamespaceNotListed(String),
    #[error("the namespace's labels do not match its namespace selector")]
    NamespaceSelector,
    #[error("the Service's labels do not match its service selector")]
    ServiceSelector,
}

/// A validated scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    namespaces: Vec<String>,
    namespace_selector: Selector,
    service_selector: Selector,
}

impl Scope {
    /// Whether the scope admits a Service of `namespace` with these labels, and if not, why.
    pub fn admits(
        &self,
        namespace: &str,
        namespace_labels: &BTreeMap<String, String>,
        service_labels: &BTreeMap<String, String>,
    ) -> Result<(), Ineligibility> {
        if !self.namespaces.is_empty() && !self.namespaces.iter().any(|n| n == namespace) {
            return Err(Ineligibility::NamespaceNotListed(namespace.to_owned()));
        }
        if !self.namespace_selector.matches(namespace_labels) {
            return Err(Ineligibility::NamespaceSelector);
        }
        if !self.service_selector.matches(service_labels) {
            return Err(Ineligibility::ServiceSelector);
        }
        Ok(())
    }
}

/// A validated pool. Its ranges are kept per family, sorted and merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    name: Arc<str>,
    entries: Vec<AddressRange>,
    spans: [Vec<Span>; 2],
    avoid_buggy_ips: bool,
    auto_assign: bool,
    priority: i32,
    scope: Scope,
    allow_cross_namespace_sharing: bool,
}

impl Pool {
    /// Validates `spec`, reporting every problem. Overlapping entries within one pool are
    /// merged (harmless); overlaps between pools are reported by [`overlaps`].
    pub fn new(spec: &PoolSpec) -> Result<Pool, InvalidPool> {
        let mut problems = Vec::new();
        if spec.name.is_empty() {
            problems.push(PoolProblem::EmptyName);
        }
        if spec.addresses.is_empty() {
            problems.push(PoolProblem::NoAddresses);
        }
        let mut entries = Vec::with_capacity(spec.addresses.len());
        for (index, text) in spec.addresses.iter().enumerate() {
            match text.parse::<AddressRange>() {
                Ok(r) => entries.push(r),
                Err(source) => problems.push(PoolProblem::Address { index, source }),
            }
        }
        for (index, name) in spec.scope.namespaces.iter().enumerate() {
            if !is_dns_label(name) {
                problems.push(PoolProblem::Namespace {
                    index,
                    name: name.clone(),
                });
            }
        }
        let mut selector = |field, spec: &Option<SelectorSpec>| match spec {
            None => Selector::default(),
            Some(spec) => Selector::new(spec).unwrap_or_else(|errors| {
                problems.extend(
                    errors
                        .into_iter()
                        .map(|source| PoolProblem::Selector { field, source }),
                );
                Selector::default()
            }),
        };
        let namespace_selector = selector("namespaceSelector", &spec.scope.namespace_selector);
        let service_selector = selector("serviceSelector", &spec.scope.service_selector);
        if !problems.is_empty() {
            return Err(InvalidPool {
                pool: spec.name.clone(),
                problems,
            });
        }
        let spans = Family::ALL.map(|family| {
            range::merge_spans(
                entries
                    .iter()
                    .filter(|r| r.family() == family)
                    .map(AddressRange::span)
                    .collect(),
            )
        });
        Ok(Pool {
            name: spec.name.as_str().into(),
            entries,
            spans,
            avoid_buggy_ips: spec.avoid_buggy_ips,
            auto_assign: spec.auto_assign,
            priority: spec.priority,
            scope: Scope {
                namespaces: spec.scope.namespaces.clone(),
                namespace_selector,
                service_selector,
            },
            allow_cross_namespace_sharing: spec.allow_cross_namespace_sharing,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entries as parsed, in spec order.
    pub fn entries(&self) -> &[AddressRange] {
        &self.entries
    }

    pub fn avoid_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips
    }

    pub fn auto_assign(&self) -> bool {
        self.auto_assign
    }

    pub fn priority(&self) -> i32 {
        self.priority
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn allow_cross_namespace_sharing(&self) -> bool {
        self.allow_cross_namespace_sharing
    }

    /// The sorted, merged spans of one family.
    pub fn spans(&self, family: Family) -> &[Span] {
        &self.spans[family.index()]
    }

    /// Whether the pool has any address of `family` at all.
    pub fn serves(&self, family: Family) -> bool {
        self.total(family) > 0
    }

    /// Whether `.0`/`.255` addresses of `family` are skipped (`avoidBuggyIPs`, IPv4 only).
    pub fn avoids_buggy(&self, family: Family) -> bool {
        self.avoid_buggy_ips && family == Family::V4
    }

    /// Whether `value` is skipped in `family` because of `avoidBuggyIPs`.
    pub fn skips(&self, family: Family, value: u128) -> bool {
        self.avoids_buggy(family) && range::is_buggy_v4(value)
    }

    /// Whether the address numbered `value` belongs to the pool.
    pub fn contains_value(&self, family: Family, value: u128) -> bool {
        let spans = self.spans(family);
        let i = spans.partition_point(|s| s.end < value);
        spans.get(i).is_some_and(|s| s.contains(value)) && !self.skips(family, value)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (family, value) = range::to_number(ip);
        self.contains_value(family, value)
    }

    /// Number of addresses of `family` in the pool (saturating at `u128::MAX`).
    pub fn total(&self, family: Family) -> u128 {
        self.spans(family)
            .iter()
            .map(|s| self.count_span(family, *s))
            .fold(0, u128::saturating_add)
    }

    fn count_span(&self, family: Family, span: Span) -> u128 {
        range::count(family, span.start, span.end, self.avoid_buggy_ips)
    }

    /// Number of addresses of `family` that belong to both pools.
    fn common(&self, other: &Pool, family: Family) -> u128 {
        let avoid = self.avoid_buggy_ips || other.avoid_buggy_ips;
        let (mut a, mut b) = (self.spans(family).iter(), other.spans(family).iter());
        let (mut x, mut y) = (a.next(), b.next());
        let mut total = 0u128;
        while let (Some(s), Some(t)) = (x, y) {
            if let Some(both) = s.intersect(*t) {
                total = total.saturating_add(range::count(family, both.start, both.end, avoid));
            }
            if s.end < t.end {
                x = a.next();
            } else {
                y = b.next();
            }
        }
        total
    }

    /// Whether the pools have an address in common.
    pub fn overlaps(&self, other: &Pool) -> bool {
        Family::ALL.into_iter().any(|f| self.common(other, f) > 0)
    }
}

fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A pool that shares addresses with pools created before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    pub pool: String,
    pub earlier: Vec<String>,
}

/// For each pool of `pools` (in creation order) that shares addresses with earlier ones, the
/// names of those earlier pools. The condition belongs on the later pool.
pub fn overlaps(pools: &[Pool]) -> Vec<Overlap> {
    pools
        .iter()
        .enumerate()
        .filter_map(|(i, pool)| {
            let earlier: Vec<String> = pools[..i]
                .iter()
                .filter(|e| e.overlaps(pool))
                .map(|e| e.name().to_owned())
                .collect();
            (!earlier.is_empty()).then(|| Overlap {
                pool: pool.name().to_owned(),
                earlier,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selector::RequirementSpec;

    fn pool(spec: PoolSpec) -> Pool {
        Pool::new(&spec).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_pool_mixes_families_and_merges_its_entries() {
        let p = pool(PoolSpec::new(
            "mixed",
            &["192.0.2.0/25", "192.0.2.100-192.0.2.200", "2001:db8::/120"],
        ));
        assert_eq!(p.total(Family::V4), 201);
        assert_eq!(p.total(Family::V6), 256);
        assert!(p.contains("192.0.2.200".parse().unwrap()));
        assert!(!p.contains("192.0.2.201".parse().unwrap()));
        assert!(p.contains("2001:db8::ff".parse().unwrap()));
        assert_eq!(p.entries().len(), 3);
    }

    #[test]
    fn avoid_buggy_ips_skips_dot_zero_and_dot_255_in_membership_and_counts() {
        let mut spec = PoolSpec::new("edge", &["192.0.2.0/23", "2001:db8::/126"]);
        spec.avoid_buggy_ips = true;
        let p = pool(spec);
        assert_eq!(p.total(Family::V4), 508);
        assert_eq!(p.total(Family::V6), 4, "IPv6 is unaffected");
        for skipped in ["192.0.2.0", "192.0.2.255", "192.0.3.0", "192.0.3.255"] {
            assert!(!p.contains(skipped.parse().unwrap()), "{skipped}");
        }
        assert!(p.contains("192.0.2.1".parse().unwrap()));
        assert!(p.contains("2001:db8::".parse().unwrap()));
    }

    #[test]
    fn validation_names_every_offending_entry() {
        let mut spec = PoolSpec::new(
            "broken",
            &[
                "192.0.2.0/24",
                "10.0.0.0/8",
                "192.0.2.1/24",
                "2001:db8::2-2001:db8::1",
            ],
        );
        spec.scope.namespaces = vec!["ok".into(), "Not_OK".into()];
        spec.scope.service_selector = Some(SelectorSpec {
            match_expressions: vec![RequirementSpec {
                key: "app".into(),
                operator: "Like".into(),
                values: vec![],
            }],
            ..SelectorSpec::default()
        });
        let err = Pool::new(&spec).unwrap_err();
        assert_eq!(err.problems.len(), 4);
        let text = err.to_string();
        assert!(text.starts_with("pool broken is invalid: addresses[2]: 192.0.2.1/24 has host bits set; the network is 192.0.2.0/24; addresses[3]: range"), "{text}");
        assert!(text.contains("scope.namespaces[1]: \"Not_OK\" is not a namespace name"));
        assert!(
            text.contains("scope.serviceSelector.matchExpressions[0]: unknown operator \"Like\"")
        );
        assert_eq!(
            Pool::new(&PoolSpec::new("", &[])).unwrap_err().problems,
            [PoolProblem::EmptyName, PoolProblem::NoAddresses]
        );
    }

    #[test]
    fn scope_checks_namespace_names_then_labels() {
        let mut spec = PoolSpec::new("team", &["192.0.2.0/24"]);
        spec.scope.namespaces = vec!["web".into()];
        spec.scope.namespace_selector = Some(SelectorSpec {
            match_labels: labels(&[("env", "prod")]),
            ..SelectorSpec::default()
        });
        spec.scope.service_selector = Some(SelectorSpec {
            match_labels: labels(&[("expose", "true")]),
            ..SelectorSpec::default()
        });
        let scope = pool(spec).scope().clone();
        let prod = labels(&[("env", "prod")]);
        let exposed = labels(&[("expose", "true")]);
        assert_eq!(scope.admits("web", &prod, &exposed), Ok(()));
        assert_eq!(
            scope.admits("db", &prod, &exposed),
            Err(Ineligibility::NamespaceNotListed("db".into()))
        );
        assert_eq!(
            scope.admits("web", &labels(&[]), &exposed),
            Err(Ineligibility::NamespaceSelector)
        );
        assert_eq!(
            scope.admits("web", &prod, &labels(&[])),
            Err(Ineligibility::ServiceSelector)
        );
    }

    #[test]
    fn overlaps_are_reported_on_the_later_pool() {
        let pools = [
            pool(PoolSpec::new("a", &["192.0.2.0/24"])),
            pool(PoolSpec::new("b", &["198.51.100.0/24", "2001:db8::/64"])),
            pool(PoolSpec::new(
                "c",
                &["192.0.2.128/25", "2001:db8::ff-2001:db8::1:0"],
            )),
            pool(PoolSpec::new("d", &["192.0.3.0/24"])),
        ];
        assert_eq!(
            overlaps(&pools),
            [Overlap {
                pool: "c".into(),
                earlier: vec!["a".into(), "b".into()]
            }]
        );
    }

    #[test]
    fn pools_meeting_only_on_skipped_addresses_do_not_overlap() {
        let mut a = PoolSpec::new("a", &["192.0.2.0/24"]);
        a.avoid_buggy_ips = true;
        let b = PoolSpec::new("b", &["192.0.2.255-192.0.3.10"]);
        assert!(!pool(a).overlaps(&pool(b)));
        let whole = pool(PoolSpec::new("whole", &["::/0"]));
        assert!(whole.overlaps(&pool(PoolSpec::new("x", &["2001:db8::/64"]))));
    }
}
