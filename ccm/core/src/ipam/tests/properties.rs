//! Property tests: random sequences of assign / release / pool edit / restart over small pools
//! (so that exhaustion, sharing and conflicts happen), compared with the naive [`Model`] after
//! every step, plus the invariants that hold whatever the model says.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::model::Model;
use crate::ipam::{
    Allocator, Existing, Family, IpFamilyPolicy, Pool, PoolSpec, Protocol, ServiceKey,
    ServiceRequest, sharing,
};

const V4_BASE: u32 = 0x0a00_00f0; // 10.0.0.240: the window crosses 10.0.0.255 / 10.0.1.0
const V6_BASE: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0000;
const WINDOW: u32 = 32;
const SERVICES: usize = 6;
const POOL_NAMES: [&str; 3] = ["a", "b", "c"];

fn v4(offset: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(V4_BASE + offset))
}

fn v6(offset: u32) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(V6_BASE + u128::from(offset)))
}

fn universe() -> Vec<IpAddr> {
    (0..WINDOW).map(v4).chain((0..WINDOW).map(v6)).collect()
}

fn service_key(i: usize) -> ServiceKey {
    let namespace = if i < SERVICES / 2 { "ns1" } else { "ns2" };
    ServiceKey::new(namespace, &format!("s{i}"))
}

fn entry() -> impl Strategy<Value = String> {
    prop_oneof![
        (8..24u32, 0..6u32).prop_map(|(s, l)| format!("{}-{}", v4(s), v4(s + l))),
        (0..16u32, 0..6u32).prop_map(|(s, l)| format!("{} - {}", v6(s), v6(s + l))),
        (2..6u32).prop_map(|k| format!("{}/30", v4(4 * k))),
        (0..4u32).prop_map(|k| format!("{}/126", v6(4 * k))),
    ]
}

/// A pool spec without its name: (entries, priority, autoAssign, avoidBuggyIPs, ns1 only).
type PoolParts = (Vec<String>, i32, bool, bool, bool);

fn pool_parts() -> impl Strategy<Value = PoolParts> {
    (
        prop::collection::vec(entry(), 1..4),
        0..3i32,
        prop::bool::weighted(0.8),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
}

fn pool_spec(name: &str, parts: &PoolParts) -> PoolSpec {
    let (entries, priority, auto_assign, avoid_buggy_ips, ns1_only) = parts.clone();
    let mut spec = PoolSpec::new(name, &[]);
    spec.addresses = entries;
    spec.priority = priority;
    spec.auto_assign = auto_assign;
    spec.avoid_buggy_ips = avoid_buggy_ips;
    spec.allow_cross_namespace_sharing = name == "c";
    if ns1_only {
        spec.scope.namespaces = vec!["ns1".into()];
    }
    spec
}

/// What a Service asks, without its identity.
#[derive(Debug, Clone)]
struct Ask {
    families: usize,
    pool: Option<&'static str>,
    requested: Vec<IpAddr>,
    sharing_key: Option<&'static str>,
    ports: u8,
}

fn ask() -> impl Strategy<Value = Ask> {
    let requested = prop_oneof![
        12 => Just(Vec::new()),
        2 => (8..24u32).prop_map(|o| vec![v4(o)]),
        1 => (0..16u32).prop_map(|o| vec![v6(o)]),
        1 => (8..24u32, 0..16u32).prop_map(|(a, b)| vec![v4(a), v6(b)]),
    ];
    let pool = prop_oneof![
        16 => Just(None),
        2 => Just(Some("a")),
        2 => Just(Some("c")),
        1 => Just(Some("zz")),
    ];
    let key = prop_oneof![
        8 => Just(None),
        12 => Just(Some("k1")),
        4 => Just(Some("k2")),
        1 => Just(Some("bad key")),
    ];
    (0..5usize, pool, requested, key, 1..8u8).prop_map(
        |(families, pool, requested, sharing_key, ports)| Ask {
            families,
            pool,
            requested,
            sharing_key,
            ports,
        },
    )
}

fn request(service: usize, ask: &Ask) -> ServiceRequest {
    let mut r = ServiceRequest::new(service_key(service), (service / 2) as i64);
    let (policy, families) = match ask.families {
        0 => (IpFamilyPolicy::SingleStack, vec![Family::V4]),
        1 => (IpFamilyPolicy::SingleStack, vec![Family::V6]),
        2 => (
            IpFamilyPolicy::PreferDualStack,
            vec![Family::V4, Family::V6],
        ),
        3 => (
            IpFamilyPolicy::RequireDualStack,
            vec![Family::V4, Family::V6],
        ),
        _ => (
            IpFamilyPolicy::RequireDualStack,
            vec![Family::V6, Family::V4],
        ),
    };
    r.ip_family_policy = policy;
    r.ip_families = families;
    r.pool = ask.pool.map(Into::into);
    r.requested = ask.requested.clone();
    r.sharing_key = ask.sharing_key.map(Into::into);
    let ports = [
        (Protocol::Tcp, 80),
        (Protocol::Tcp, 443),
        (Protocol::Udp, 53),
    ];
    r.ports = (0..3)
        .filter(|b| ask.ports & (1 << b) != 0)
        .map(|b| ports[b])
        .collect();
    r
}

#[derive(Debug, Clone)]
enum Op {
    Assign(usize, Ask),
    Release(usize),
    SetPool(usize, Option<PoolParts>),
    Restart(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..SERVICES, ask()).prop_map(|(s, a)| Op::Assign(s, a)),
        2 => (0..SERVICES).prop_map(Op::Release),
        2 => (0..POOL_NAMES.len(), prop::option::weighted(0.8, pool_parts())).prop_map(|(p, s)| Op::SetPool(p, s)),
        1 => any::<u64>().prop_map(Op::Restart),
    ]
}

/// Fisher-Yates with xorshift, to list Services in an arbitrary order on restart.
fn shuffle<T>(items: &mut [T], mut seed: u64) {
    for i in (1..items.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        items.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

struct Run {
    ipam: Allocator,
    model: Model,
    specs: BTreeMap<usize, PoolSpec>,
    /// The last request of each Service, as the cluster would show it.
    requests: BTreeMap<ServiceKey, ServiceRequest>,
}

impl Run {
    fn pools(&self) -> (Vec<Pool>, Vec<PoolSpec>) {
        let specs: Vec<PoolSpec> = self.specs.values().cloned().collect();
        (specs.iter().map(|s| Pool::new(s).unwrap()).collect(), specs)
    }

    fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let before = self.ipam.assignments();
        match op {
            Op::Assign(service, ask) => {
                let request = request(*service, ask);
                self.requests.insert(request.key.clone(), request.clone());
                let outcome = self.ipam.assign(&request);
                let mut displaced = self.ipam.take_displaced();
                displaced.sort();
                let (expected, mut expected_displaced) = self.model.assign(&request);
                expected_displaced.sort();
                let got = match &outcome {
                    Ok(a) => Ok((
                        a.addresses.iter().map(|x| x.address).collect::<Vec<_>>(),
                        a.unmet.as_ref().map(|p| p.reason()),
                    )),
                    Err(pending) => Err(pending.reason()),
                };
                prop_assert_eq!(got, expected, "{:?}", request);
                prop_assert_eq!(displaced.clone(), expected_displaced);
                if let Ok(assignment) = &outcome {
                    check_families(&request, assignment)?;
                    for a in &assignment.addresses {
                        prop_assert!(
                            !a.new || a.in_eligible_pool,
                            "{} new outside its pools",
                            a.address
                        );
                    }
                }
                let mut touched = displaced;
                touched.push(request.key.clone());
                check_unmoved(&before, &self.ipam.assignments(), &touched)?;
            }
            Op::Release(service) => {
                let key = service_key(*service);
                self.ipam.release(&key);
                self.model.release(&key);
                check_unmoved(&before, &self.ipam.assignments(), &[key])?;
            }
            Op::SetPool(index, parts) => {
                match parts {
                    Some(parts) => self
                        .specs
                        .insert(*index, pool_spec(POOL_NAMES[*index], parts)),
                    None => self.specs.remove(index),
                };
                let (pools, specs) = self.pools();
                let degraded = self.ipam.set_pools(pools.clone()).unwrap();
                self.model.set_pools(&specs);
                for d in &degraded {
                    prop_assert!(!pools.iter().any(|p| p.contains(d.address)));
                }
                let held: BTreeSet<&IpAddr> = before.values().flatten().collect();
                let outside = held
                    .into_iter()
                    .filter(|a| !pools.iter().any(|p| p.contains(**a)));
                prop_assert_eq!(degraded.len(), outside.count());
                check_unmoved(&before, &self.ipam.assignments(), &[])?;
            }
            Op::Restart(seed) => self.restart(*seed)?,
        }
        prop_assert_eq!(self.ipam.assignments(), self.model.assignments());
        self.check_usage()?;
        self.check_sharing()
    }

    /// A fresh allocator from the pools, rebuilt from the Services' statuses in a shuffled
    /// order, must hold exactly the same assignment; it replaces the old one.
    fn restart(&mut self, seed: u64) -> Result<(), TestCaseError> {
        let (pools, _) = self.pools();
        let mut existing: Vec<Existing> = (self.ipam.assignments().into_iter())
            .map(|(key, addresses)| Existing {
                request: self.requests[&key].clone(),
                addresses,
            })
            .collect();
        shuffle(&mut existing, seed | 1);
        let mut restarted = Allocator::new(pools).unwrap();
        let report = restarted.rebuild(existing);
        prop_assert_eq!(report.conflicts, vec![]);
        prop_assert_eq!(report.ignored, vec![]);
        prop_assert_eq!(restarted.assignments(), self.ipam.assignments());
        self.ipam = restarted;
        Ok(())
    }

    fn check_usage(&self) -> Result<(), TestCaseError> {
        let expected = self.model.usage();
        for usage in self.ipam.usage() {
            for (family, total, used) in &expected[&usage.pool] {
                let got = usage.family(*family);
                prop_assert_eq!(
                    (got.total, got.used, got.free),
                    (*total, *used, total - used),
                    "{}",
                    usage.pool
                );
            }
        }
        Ok(())
    }

    /// No address is held by two Services that may not share.
    fn check_sharing(&self) -> Result<(), TestCaseError> {
        let mut by_address: BTreeMap<IpAddr, Vec<&ServiceKey>> = BTreeMap::new();
        let assignments = self.ipam.assignments();
        for (key, addresses) in &assignments {
            for a in addresses {
                by_address.entry(*a).or_default().push(key);
            }
        }
        for (address, holders) in by_address {
            for (i, a) in holders.iter().enumerate() {
                for b in &holders[i + 1..] {
                    let pa = sharing::Sharing::recorded(&self.requests[*a]);
                    let pb = sharing::Sharing::recorded(&self.requests[*b]);
                    prop_assert_eq!(
                        sharing::clash(pa.as_deref(), pb.as_deref()),
                        None,
                        "{} held by {} and {}",
                        address,
                        a,
                        b
                    );
                }
            }
        }
        Ok(())
    }
}

/// Dual-stack rules: SingleStack one address of the first family; RequireDualStack one per
/// family in order; PreferDualStack the first family, then possibly the second.
fn check_families(
    request: &ServiceRequest,
    assignment: &crate::ipam::Assignment,
) -> Result<(), TestCaseError> {
    let families: Vec<Family> = assignment
        .addresses
        .iter()
        .map(|a| Family::of(a.address))
        .collect();
    let listed = &request.ip_families;
    match request.ip_family_policy {
        IpFamilyPolicy::SingleStack => prop_assert_eq!(families, vec![listed[0]]),
        IpFamilyPolicy::RequireDualStack => prop_assert_eq!(families, listed.clone()),
        IpFamilyPolicy::PreferDualStack => {
            prop_assert_eq!(families[0], listed[0]);
            prop_assert!(families.len() == 2 || assignment.unmet.is_some());
        }
    }
    Ok(())
}

/// Services other than `touched` keep exactly their addresses.
fn check_unmoved(
    before: &BTreeMap<ServiceKey, Vec<IpAddr>>,
    after: &BTreeMap<ServiceKey, Vec<IpAddr>>,
    touched: &[ServiceKey],
) -> Result<(), TestCaseError> {
    for (key, addresses) in before {
        if !touched.contains(key) {
            prop_assert_eq!(after.get(key), Some(addresses), "{} moved", key);
        }
    }
    for key in after.keys() {
        prop_assert!(
            before.contains_key(key) || touched.contains(key),
            "{} appeared",
            key
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_allocator_follows_the_reference_model(
        initial in prop::collection::vec(pool_parts(), 1..=3),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let specs: BTreeMap<usize, PoolSpec> = (initial.iter().enumerate())
            .map(|(i, parts)| (i, pool_spec(POOL_NAMES[i], parts)))
            .collect();
        let spec_list: Vec<PoolSpec> = specs.values().cloned().collect();
        let pools = spec_list.iter().map(|s| Pool::new(s).unwrap()).collect();
        let mut run = Run {
            ipam: Allocator::new(pools).unwrap(),
            model: Model::new(universe(), &spec_list),
            specs,
            requests: BTreeMap::new(),
        };
        for op in &ops {
            run.step(op)?;
        }
    }
}
