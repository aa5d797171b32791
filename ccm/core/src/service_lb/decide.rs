//! The bridge between Kubernetes objects and the IPAM core: `IPPool`s become pools, Services
//! become requests, and the allocator's answers become the desired Service state (addresses,
//! `allocated-from` annotation, conditions). Pure apart from the allocator it owns; the
//! controller applies what it decides.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt as _;

use super::adopt;
use super::class::{ClassPolicy, is_ours};
pub use super::outcome::{Outcome, PendingNote};
use super::outcome::{Problem, outcome};
use super::request::{self as asks, Reading, read};
use super::status::ALLOCATED_FROM;
use crate::crd::ippool::IPPool;
use crate::ipam::{
    Allocator, AssignedAddress, Conflict, Existing, Family, InvalidPool, Overlap, Pending, Pool,
    PoolSpec, PoolUsage, RequestError, ScopeSpec, ServiceKey, ServiceRequest, overlaps,
};

pub use super::request::NamespaceLabels;

/// What rebuilding found, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebuildSummary {
    pub services: usize,
    pub conflicts: usize,
    pub outside_pools: usize,
}

/// The state of one `IPPool` as the controller sees it, for its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolReport {
    /// `Err` when the pool is invalid (it then serves nothing).
    pub validity: Result<PoolUsage, InvalidPool>,
    /// Earlier pools this one shares addresses with.
    pub overlaps_with: Vec<String>,
    /// Services holding an address reported from this pool that the pool no longer contains.
    pub degraded_services: Vec<ServiceKey>,
}

/// Decides addresses for Services. Holds the allocator and what the pool status and the
/// metrics need (pending reasons, Services outside their pools).
#[derive(Debug, Default)]
pub struct Decider {
    allocator: Allocator,
    /// (name, resourceVersion) of the pools the allocator was last given.
    fingerprint: Vec<(String, Option<String>)>,
    invalid: BTreeMap<String, InvalidPool>,
    overlaps: Vec<Overlap>,
    /// Pending Services and their reason.
    pending: HashMap<ServiceKey, &'static str>,
    /// Services holding addresses outside the pools that serve them: each such address with
    /// the pool it is reported from (the `allocated-from` annotation once no pool has it).
    outside: HashMap<ServiceKey, Vec<(IpAddr, Option<String>)>>,
    /// Services we never addressed, kept on addresses that earlier holders hold too (see
    /// [`adopt`]), with those conflicts.
    adopted: HashMap<ServiceKey, Vec<Conflict>>,
    /// Services that a freed address may serve, with what they wait for, in the order they
    /// began waiting (see [`Decider::to_wake`]).
    waiting: HashMap<ServiceKey, Waiting>,
    /// The next [`Waiting::since`].
    next_waiting: u64,
    /// How Services' annotations are read (MetalLB's or not).
    reading: Reading,
}

/// What the rebuild reads of a Service holding addresses.
struct Holding {
    existing: Existing,
    /// Its `allocated-from` pools (see [`previous_pools`]).
    previous_pools: Vec<String>,
    /// Whether we never addressed it (see [`adopt::never_addressed_by_us`]).
    foreign: bool,
}

/// A Service waiting for an address that a release may free.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting {
    /// Its place in the queue: kept while it goes on waiting, so the Service waiting longest is
    /// woken first.
    since: u64,
    on: WaitsOn,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum WaitsOn {
    /// Room of `family` in any of `pools` (exhausted pools, or a dual-stack Service's second
    /// family).
    Room { family: Family, pools: Vec<String> },
    /// A particular address another Service holds (requested, or shared on a clashing port).
    Address(IpAddr),
}

impl WaitsOn {
    fn of(pending: &Pending) -> Option<WaitsOn> {
        match pending {
            Pending::PoolExhausted { family, pools } => Some(WaitsOn::Room {
                family: *family,
                pools: pools.0.clone(),
            }),
            Pending::AddressInUse { address, .. }
            | Pending::SharingPortClash { address, .. }
            | Pending::CrossNamespaceSharing { address, .. } => Some(WaitsOn::Address(*address)),
            // A release frees nothing these wait for: pool and namespace changes (which
            // reconcile every Service) and the periodic retry cover them.
            _ => None,
        }
    }
}

/// How many more Services waiting for room in a pool are woken than addresses were freed
/// there: a woken Service may lose the address to a new one, or fail its write and retry.
const WAKE_SLACK: usize = 4;

impl Decider {
    /// A decider reading annotations as `reading` says.
    pub fn new(reading: Reading) -> Self {
        Decider {
            reading,
            ..Decider::default()
        }
    }

    /// Replaces the pool set when any pool changed. Invalid pools serve nothing and are kept
    /// for their status.
    pub fn refresh_pools(&mut self, pools: &[Arc<IPPool>]) {
        let mut fingerprint: Vec<(String, Option<String>)> = pools
            .iter()
            .map(|p| (p.name_any(), p.resource_version()))
            .collect();
        fingerprint.sort();
        if fingerprint == self.fingerprint {
            return;
        }
        self.fingerprint = fingerprint;
        let mut ordered: Vec<&Arc<IPPool>> = pools.iter().collect();
        // Creation order, so that the Overlapping condition lands on the later pool.
        ordered.sort_by_key(|p| (p.creation_timestamp().map(|t| t.0), p.name_any()));
        let mut valid = Vec::with_capacity(ordered.len());
        self.invalid.clear();
        for pool in ordered {
            match Pool::new(&pool_spec(pool)) {
                Ok(pool) => valid.push(pool),
                Err(invalid) => {
                    self.invalid.insert(invalid.pool.clone(), invalid);
                }
            }
        }
        self.overlaps = overlaps(&valid);
        let outside = match self.allocator.set_pools(valid) {
            Ok(outside) => outside,
            Err(duplicate) => {
                // Cluster-scoped names are unique; a duplicate means a bug upstream of us.
                tracing::error!(%duplicate, "pool list holds a name twice; pools not updated");
                Vec::new()
            }
        };
        for degraded in outside {
            tracing::warn!(
                address = %degraded.address,
                holders = degraded.holders.len(),
                "a held address is outside every pool after a pool change; it is kept"
            );
        }
    }

    /// Forgets every allocation and records those the Services hold, in creation order.
    /// Deleted Services that still carry our finalizer are included: their addresses are not
    /// free until they are released.
    pub fn rebuild<S: AsRef<Service>>(
        &mut self,
        pools: &[Arc<IPPool>],
        namespaces: NamespaceLabels<'_>,
        services: impl IntoIterator<Item = S>,
        policy: ClassPolicy,
    ) -> RebuildSummary {
        self.fingerprint.clear();
        self.refresh_pools(pools);
        let reading = self.reading;
        // What the rest of the rebuild reads of each Service is taken now, so that a Service
        // need not outlive this pass (the controller decodes each from its cache in turn).
        let holding: Vec<Holding> = (services.into_iter())
            .filter_map(|service| {
                let service = service.as_ref();
                if !(is_ours(service, policy) || service.metadata.deletion_timestamp.is_some()) {
                    return None;
                }
                let addresses = asks::held_addresses(service);
                let existing = Existing {
                    request: read(service, namespaces, reading).request,
                    addresses,
                };
                (!existing.addresses.is_empty()).then(|| Holding {
                    existing,
                    previous_pools: previous_pools(service),
                    foreign: adopt::never_addressed_by_us(service),
                })
            })
            .collect();
        let services = holding.len();
        let report = (self.allocator).rebuild(
            holding
                .iter()
                .map(|holding| holding.existing.clone())
                .collect(),
        );
        self.pending.clear();
        self.waiting.clear();
        self.outside.clear();
        self.adopted.clear();
        // Restore which Services are outside their pools now, so that pool status computed
        // before every Service is reconciled again is already right (an idle restart writes
        // nothing).
        for holding in &holding {
            let addresses = self.allocator.allocations(&holding.existing.request);
            let key = holding.existing.request.key.clone();
            self.note_outside(key, &addresses, &holding.previous_pools);
        }
        for conflict in &report.conflicts {
            let foreign = (holding.iter())
                .find(|h| h.existing.request.key == conflict.service)
                .is_some_and(|h| h.foreign);
            // One we never addressed keeps the address as found; one we addressed whose
            // status was edited by hand is given another.
            let outcome = if foreign {
                "both keep it"
            } else {
                "the later one will get another"
            };
            tracing::warn!(
                service = %conflict.service,
                address = %conflict.address,
                holder = %conflict.holder,
                clash = %conflict.clash,
                outcome,
                "two Services hold one address they may not share"
            );
            if foreign {
                (self.adopted.entry(conflict.service.clone()).or_default()).push(conflict.clone());
            }
        }
        RebuildSummary {
            services,
            conflicts: report.conflicts.len(),
            outside_pools: report.outside_pools.len(),
        }
    }

    /// Decides the state of a Service that is ours and not being deleted.
    pub fn decide(&mut self, service: &Service, namespaces: NamespaceLabels<'_>) -> Outcome {
        let read = read(service, namespaces, self.reading);
        if let Some(adopted) = self.keep_adopted(service, &read.request) {
            return adopted;
        }
        let key = read.request.key.clone();
        let (addresses, problem) = match read.problem {
            Some(problem) => (
                self.allocator.allocations(&read.request),
                Some(Problem::Pending(problem)),
            ),
            None => match self.allocator.assign(&read.request) {
                Ok(assignment) => (assignment.addresses, assignment.unmet.map(Problem::Partial)),
                Err(pending) => (
                    self.allocator.allocations(&read.request),
                    Some(Problem::Pending(as_annotation_problem(pending))),
                ),
            },
        };
        match &problem {
            Some(Problem::Pending(pending)) => {
                self.pending.insert(key.clone(), pending.reason());
            }
            _ => {
                self.pending.remove(&key);
            }
        }
        let waits = match &problem {
            Some(Problem::Pending(pending) | Problem::Partial(pending)) => WaitsOn::of(pending),
            None => None,
        };
        self.note_waiting(&key, waits);
        let previous_pools = previous_pools(service);
        let outside = self.note_outside(key, &addresses, &previous_pools);
        let mut outcome = outcome(
            &addresses,
            &previous_pools,
            problem,
            &outside,
            read.deprecated_field,
        );
        outcome.metallb = metallb_note(&read.metallb);
        outcome
    }

    /// The outcome of a Service adopted with conflicting addresses, while its conflicts last
    /// and it asks for nothing else; `None` sends it down the ordinary path (its addresses are
    /// then recorded, or it asked for others).
    fn keep_adopted(&mut self, service: &Service, request: &ServiceRequest) -> Option<Outcome> {
        if !self.adopted.contains_key(&request.key) {
            return None;
        }
        let held = asks::held_addresses(service);
        let asked_other = !request.requested.is_empty() && request.requested != held;
        if asked_other || held.is_empty() {
            self.adopted.remove(&request.key);
            return None;
        }
        let existing = Existing {
            request: request.clone(),
            addresses: held.clone(),
        };
        let remaining = self.allocator.adopt(&existing);
        if remaining.is_empty() {
            self.adopted.remove(&request.key);
            return None;
        }
        self.pending.remove(&request.key);
        let kept = adopt::keep_as_found(&held, &remaining);
        self.adopted.insert(request.key.clone(), remaining);
        Some(Outcome {
            desired: kept.desired,
            pending: None,
            outside_pool: None,
            summary: String::new(),
            deprecated_field: false,
            conflict: Some(kept.note),
            metallb: None,
        })
    }

    /// Records which of `addresses` lie outside the pools that serve the Service, with the pool
    /// each was reported from; returns those addresses.
    fn note_outside(
        &mut self,
        key: ServiceKey,
        addresses: &[AssignedAddress],
        previous_pools: &[String],
    ) -> Vec<IpAddr> {
        let outside: Vec<(IpAddr, Option<String>)> = (addresses.iter().enumerate())
            .filter(|(_, a)| !a.in_eligible_pool)
            .map(|(i, a)| {
                (
                    a.address,
                    a.pool.clone().or_else(|| previous_pools.get(i).cloned()),
                )
            })
            .collect();
        let ips = outside.iter().map(|(ip, _)| *ip).collect();
        if outside.is_empty() {
            self.outside.remove(&key);
        } else {
            self.outside.insert(key, outside);
        }
        ips
    }

    /// Frees what a Service holds (deleted, or no longer ours): the addresses it held.
    pub fn release(&mut self, service: &Service) -> Vec<IpAddr> {
        self.release_key(&asks::key(service))
    }

    /// [`Decider::release`] by key.
    pub fn release_key(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        self.pending.remove(key);
        self.waiting.remove(key);
        self.outside.remove(key);
        self.adopted.remove(key);
        self.allocator.release(key)
    }

    /// Keeps `key`'s place in the queue while it waits for the same kind of thing.
    fn note_waiting(&mut self, key: &ServiceKey, waits: Option<WaitsOn>) {
        let Some(on) = waits else {
            self.waiting.remove(key);
            return;
        };
        if let Some(waiting) = self.waiting.get_mut(key) {
            waiting.on = on;
            return;
        }
        let since = self.next_waiting;
        self.next_waiting += 1;
        self.waiting.insert(key.clone(), Waiting { since, on });
    }

    /// The addresses recorded for a Service (what we decided for it), in family order.
    pub fn recorded(&self, key: &ServiceKey) -> Vec<IpAddr> {
        self.allocator.addresses(key)
    }

    /// Every Service holding an address.
    pub fn holders(&self) -> Vec<ServiceKey> {
        self.allocator.assignments().into_keys().collect()
    }

    /// Services the allocator took an address from (a later claimant of a conflict another
    /// Service's change created); they need reconciling.
    pub fn take_displaced(&mut self) -> Vec<ServiceKey> {
        self.allocator.take_displaced()
    }

    /// The state of every pool in `pools`, for their status.
    pub fn pool_reports(&self) -> BTreeMap<String, PoolReport> {
        // A pool is degraded by a Service reported from it that holds an address it no longer
        // contains (a Service that merely left the pool's scope does not degrade the pool).
        let mut degraded: BTreeMap<&str, BTreeSet<ServiceKey>> = BTreeMap::new();
        for (service, addresses) in &self.outside {
            for (address, pool) in addresses {
                let Some(pool) = pool else { continue };
                let contained = self
                    .allocator
                    .pool(pool)
                    .is_some_and(|p| p.contains(*address));
                if !contained {
                    degraded.entry(pool).or_default().insert(service.clone());
                }
            }
        }
        let mut services = |pool: &str| -> Vec<ServiceKey> {
            degraded
                .remove(pool)
                .unwrap_or_default()
                .into_iter()
                .collect()
        };
        let mut reports = BTreeMap::new();
        for pool in self.allocator.pools() {
            let overlaps_with = (self.overlaps.iter())
                .find(|o| o.pool == pool.name())
                .map(|o| o.earlier.clone())
                .unwrap_or_default();
            reports.insert(
                pool.name().to_owned(),
                PoolReport {
                    validity: Ok(self.allocator.pool_usage(pool)),
                    overlaps_with,
                    degraded_services: services(pool.name()),
                },
            );
        }
        for (name, invalid) in &self.invalid {
            reports.insert(
                name.clone(),
                PoolReport {
                    validity: Err(invalid.clone()),
                    overlaps_with: Vec::new(),
                    degraded_services: services(name),
                },
            );
        }
        reports
    }

    /// The Services to retry once `freed` is free: those waiting for one of these addresses,
    /// those kept on conflicting addresses (their conflict may be over), and of those waiting
    /// for room in a pool that got some, the longest waiting — as many as addresses were
    /// freed there, and [`WAKE_SLACK`] more. Not every pending Service: 100,000 Services waiting
    /// on an exhausted pool would be reconciled again on every release. The others keep their
    /// place for the next release (and the periodic retry).
    pub fn to_wake(&self, freed: &[IpAddr]) -> Vec<ServiceKey> {
        let mut wake: BTreeSet<ServiceKey> = self.adopted.keys().cloned().collect();
        let mut room: BTreeMap<(&str, Family), usize> = BTreeMap::new();
        for address in freed {
            for pool in self
                .allocator
                .pools()
                .iter()
                .filter(|p| p.contains(*address))
            {
                *room.entry((pool.name(), Family::of(*address))).or_default() += 1;
            }
        }
        let mut queues: BTreeMap<(&str, Family), Vec<(u64, &ServiceKey)>> = BTreeMap::new();
        for (key, waiting) in &self.waiting {
            match &waiting.on {
                WaitsOn::Address(address) if freed.contains(address) => {
                    wake.insert(key.clone());
                }
                WaitsOn::Address(_) => {}
                WaitsOn::Room { family, pools } => {
                    for pool in pools {
                        if room.contains_key(&(pool.as_str(), *family)) {
                            let queue = queues.entry((pool.as_str(), *family)).or_default();
                            queue.push((waiting.since, key));
                        }
                    }
                }
            }
        }
        for (place, mut queue) in queues {
            queue.sort_unstable();
            let count = room[&place] + WAKE_SLACK;
            wake.extend(queue.into_iter().take(count).map(|(_, key)| key.clone()));
        }
        wake.into_iter().collect()
    }

    /// Number of Services kept on addresses that another Service holds too.
    pub fn conflict_count(&self) -> usize {
        self.adopted.len()
    }

    /// Number of pending Services per reason.
    pub fn pending_by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for reason in self.pending.values() {
            *counts.entry(*reason).or_default() += 1;
        }
        counts
    }

    /// Number of Services holding an address outside the pools that serve them.
    pub fn outside_count(&self) -> usize {
        self.outside.len()
    }
}

/// The note of the Normal Event saying which of MetalLB's annotations were read as ours.
fn metallb_note(honoured: &[String]) -> Option<String> {
    (!honoured.is_empty()).then(|| {
        format!(
            "MetalLB's annotations read as baremetal-ccm's: {}",
            honoured.join(", ")
        )
    })
}

/// The IPAM core reports a bad sharing key as an invalid request; name the annotation.
fn as_annotation_problem(pending: Pending) -> Pending {
    match pending {
        Pending::InvalidRequest {
            error:
                error @ (RequestError::EmptySharingKey
                | RequestError::SharingKeyTooLong(_)
                | RequestError::SharingKeyCharacter { .. }),
        } => Pending::malformed(asks::SHARING_KEY, error),
        other => other,
    }
}

/// The pools the `allocated-from` annotation names, one per held address in order.
fn previous_pools(service: &Service) -> Vec<String> {
    service
        .annotations()
        .get(ALLOCATED_FROM)
        .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect())
        .unwrap_or_default()
}

/// The IPAM view of an `IPPool`.
pub fn pool_spec(pool: &IPPool) -> PoolSpec {
    let scope = pool.spec.allocation_scope.clone().unwrap_or_default();
    PoolSpec {
        name: pool.name_any(),
        addresses: pool.spec.addresses.clone(),
        avoid_buggy_ips: pool.spec.avoids_buggy_ips(),
        auto_assign: pool.spec.auto_assign,
        priority: pool.spec.priority,
        scope: ScopeSpec {
            namespaces: scope.namespaces,
            namespace_selector: scope
                .namespace_selector
                .as_ref()
                .map(crate::crd::selector_spec),
            service_selector: scope
                .service_selector
                .as_ref()
                .map(crate::crd::selector_spec),
        },
        allow_cross_namespace_sharing: pool.spec.allow_cross_namespace_sharing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ippool::{AnnounceMode, pool_with_defaults};
    use crate::service_lb::status::COND_OUTSIDE_POOL;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pool(name: &str, addresses: &[&str]) -> Arc<IPPool> {
        let mut pool = pool_with_defaults(name, addresses, AnnounceMode::None);
        pool.metadata.resource_version = Some(format!("{addresses:?}"));
        Arc::new(pool)
    }

    fn service(name: &str, annotations: &[(&str, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                annotations: Some(
                    (annotations.iter())
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ports: Some(vec![ServicePort {
                    port: 80,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn holding(mut service: Service, ips: &[&str], from: &str) -> Service {
        service.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(
                    (ips.iter())
                        .map(|ip| LoadBalancerIngress {
                            ip: Some((*ip).into()),
                            ..LoadBalancerIngress::default()
                        })
                        .collect(),
                ),
            }),
            ..ServiceStatus::default()
        });
        (service.metadata.annotations.get_or_insert_default())
            .insert(ALLOCATED_FROM.into(), from.into());
        service
    }

    fn no_labels(_: &str) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_service_gets_the_first_free_address_with_its_pool() {
        let mut decider = Decider::default();
        decider.refresh_pools(&[pool("a", &["192.0.2.10-192.0.2.11"])]);
        let outcome = decider.decide(&service("web", &[]), &no_labels);
        assert_eq!(outcome.desired.ingress, [ip("192.0.2.10")]);
        assert_eq!(outcome.desired.allocated_from.as_deref(), Some("a"));
        assert_eq!(outcome.pending, None);
        assert_eq!(outcome.summary, "192.0.2.10 from pool a");
        assert!(outcome.desired.conditions[0].status);
    }

    #[test]
    fn a_malformed_ips_annotation_is_pending_and_keeps_what_is_held() {
        let mut decider = Decider::default();
        let pools = [pool("a", &["192.0.2.0/24"])];
        let held = holding(
            service("web", &[(asks::IPS, "not-an-ip")]),
            &["192.0.2.7"],
            "a",
        );
        decider.rebuild(
            &pools,
            &no_labels,
            &[Arc::new(held.clone())],
            ClassPolicy::DefaultAndExplicit,
        );
        let outcome = decider.decide(&held, &no_labels);
        assert_eq!(outcome.desired.ingress, [ip("192.0.2.7")]);
        let pending = outcome.pending.unwrap();
        assert_eq!(pending.reason, "MalformedAnnotation");
        assert!(pending.message.contains(asks::IPS), "{}", pending.message);
        assert_eq!(
            decider.pending_by_reason().get("MalformedAnnotation"),
            Some(&1)
        );
    }

    /// Two Services as MetalLB leaves them: one address, disjoint ports, MetalLB's sharing
    /// key, no annotation of ours.
    fn metallb_pair() -> Vec<Arc<Service>> {
        [("pair-a", 80), ("pair-b", 443)]
            .into_iter()
            .map(|(name, port)| {
                let mut svc = service(name, &[("metallb.io/allow-shared-ip", "pair")]);
                svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0].port = port;
                let mut held = holding(svc, &["192.0.2.5"], "a");
                held.annotations_mut().remove(ALLOCATED_FROM);
                Arc::new(held)
            })
            .collect()
    }

    #[test]
    fn a_pair_metallb_shares_is_taken_over_shared_when_its_annotations_are_read() {
        let pools = [pool("a", &["192.0.2.0/24"])];
        let pair = metallb_pair();
        let mut decider = Decider::new(Reading { metallb: true });
        let summary = decider.rebuild(&pools, &no_labels, &pair, ClassPolicy::DefaultAndExplicit);
        assert_eq!(summary.conflicts, 0);
        for service in &pair {
            let outcome = decider.decide(service, &no_labels);
            assert_eq!(
                outcome.desired.ingress,
                [ip("192.0.2.5")],
                "{}",
                service.name_any()
            );
            assert_eq!(outcome.pending, None);
            assert_eq!(outcome.conflict, None);
            let note = outcome.metallb.expect("the Event names what was read");
            assert!(note.contains("metallb.io/allow-shared-ip=pair"), "{note}");
        }
        // Without: the second holder is a conflict, kept as found (nothing moves either way).
        let mut blind = Decider::new(Reading { metallb: false });
        let summary = blind.rebuild(&pools, &no_labels, &pair, ClassPolicy::DefaultAndExplicit);
        assert_eq!(summary.conflicts, 1);
        let outcome = blind.decide(&pair[1], &no_labels);
        assert_eq!(outcome.desired.ingress, [ip("192.0.2.5")]);
        assert!(outcome.conflict.is_some());
        assert_eq!(outcome.metallb, None);
    }

    #[test]
    fn a_malformed_sharing_key_names_the_annotation() {
        let mut decider = Decider::default();
        decider.refresh_pools(&[pool("a", &["192.0.2.0/24"])]);
        let outcome = decider.decide(
            &service("web", &[(asks::SHARING_KEY, "bad key!")]),
            &no_labels,
        );
        let pending = outcome.pending.unwrap();
        assert_eq!(pending.reason, "MalformedAnnotation");
        assert!(
            pending.message.contains(asks::SHARING_KEY),
            "{}",
            pending.message
        );
        assert!(outcome.desired.ingress.is_empty());
    }

    #[test]
    fn a_deleted_pool_leaves_the_address_flagged_and_the_pool_named() {
        let mut decider = Decider::default();
        let held = holding(service("web", &[]), &["192.0.2.7"], "a");
        decider.rebuild(
            &[],
            &no_labels,
            &[Arc::new(held.clone())],
            ClassPolicy::DefaultAndExplicit,
        );
        let outcome = decider.decide(&held, &no_labels);
        assert_eq!(outcome.desired.ingress, [ip("192.0.2.7")]);
        assert_eq!(outcome.desired.allocated_from.as_deref(), Some("a"));
        assert!(outcome.outside_pool.is_some());
        assert!(
            outcome
                .desired
                .conditions
                .iter()
                .any(|c| c.type_ == COND_OUTSIDE_POOL && c.status)
        );
        assert_eq!(decider.outside_count(), 1);
        // The pool comes back: its report names the Service until it is reconciled again.
        decider.refresh_pools(&[pool("a", &["192.0.2.8/29"])]);
        let reports = decider.pool_reports();
        assert_eq!(
            reports["a"].degraded_services,
            [ServiceKey::new("default", "web")]
        );
    }

    #[test]
    fn invalid_and_overlapping_pools_are_reported() {
        let mut decider = Decider::default();
        let mut first = (*pool("first", &["192.0.2.0/24"])).clone();
        first.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1).unwrap(),
            ));
        let mut second = (*pool("second", &["192.0.2.128/25"])).clone();
        second.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(2).unwrap(),
            ));
        decider.refresh_pools(&[
            Arc::new(second),
            Arc::new(first),
            pool("broken", &["2001:db8::9-2001:db8::1"]),
        ]);
        let reports = decider.pool_reports();
        assert_eq!(reports["second"].overlaps_with, ["first"]);
        assert!(reports["first"].overlaps_with.is_empty());
        let invalid = reports["broken"].validity.clone().unwrap_err();
        assert_eq!(invalid.pool, "broken");
        assert_eq!(reports["first"].validity.clone().unwrap().v4.total, 256);
    }

    #[test]
    fn release_frees_the_address_for_the_next_service() {
        let mut decider = Decider::default();
        decider.refresh_pools(&[pool("a", &["192.0.2.10/32"])]);
        let first = service("first", &[]);
        assert_eq!(
            decider.decide(&first, &no_labels).desired.ingress,
            [ip("192.0.2.10")]
        );
        let second = decider.decide(&service("second", &[]), &no_labels);
        assert_eq!(second.pending.unwrap().reason, "PoolExhausted");
        assert_eq!(decider.release(&first), [ip("192.0.2.10")]);
        assert!(decider.release(&first).is_empty());
        let second = decider.decide(&service("second", &[]), &no_labels);
        assert_eq!(second.desired.ingress, [ip("192.0.2.10")]);
        assert!(decider.pending_by_reason().is_empty());
    }

    #[test]
    fn the_deprecated_field_is_reported() {
        let mut decider = Decider::default();
        decider.refresh_pools(&[pool("a", &["192.0.2.0/24"])]);
        let mut svc = service("web", &[]);
        svc.spec.get_or_insert_default().load_balancer_ip = Some("192.0.2.99".into());
        let outcome = decider.decide(&svc, &no_labels);
        assert!(outcome.deprecated_field);
        assert_eq!(outcome.desired.ingress, [ip("192.0.2.99")]);
    }

    fn key(name: &str) -> ServiceKey {
        asks::key(&service(name, &[]))
    }

    /// Many Services waiting on an exhausted pool: a release wakes the longest waiting, as many
    /// as addresses were freed and a few more, not all of them; a Service waiting for the
    /// freed address itself is woken; one waiting for another pool, or for something a release
    /// cannot give (a malformed annotation), is not.
    #[test]
    fn a_release_wakes_the_longest_waiting_for_that_room_and_not_every_pending_service() {
        let mut decider = Decider::default();
        decider.refresh_pools(&[
            pool("small", &["192.0.2.10/32", "192.0.2.11/32"]),
            pool("other", &["198.51.100.1/32"]),
        ]);
        let holder = service("holder", &[("baremetal-ccm.io/ips", "192.0.2.10")]);
        assert_eq!(
            decider.decide(&holder, &no_labels).desired.ingress,
            [ip("192.0.2.10")]
        );
        let neighbour = service("neighbour", &[("baremetal-ccm.io/pool", "small")]);
        assert_eq!(
            decider.decide(&neighbour, &no_labels).desired.ingress,
            [ip("192.0.2.11")]
        );
        let other_holder = service("other-holder", &[("baremetal-ccm.io/pool", "other")]);
        assert!(decider.decide(&other_holder, &no_labels).pending.is_none());
        // 100 waiting for room in `small`, in this order; one for `other`; one asking for the
        // holder's address; one with a malformed annotation.
        let waiting: Vec<String> = (0..100).map(|i| format!("wait-{i:03}")).collect();
        for name in &waiting {
            let outcome = decider.decide(
                &service(name, &[("baremetal-ccm.io/pool", "small")]),
                &no_labels,
            );
            assert_eq!(outcome.pending.unwrap().reason, "PoolExhausted");
        }
        let elsewhere = service("elsewhere", &[("baremetal-ccm.io/pool", "other")]);
        assert!(decider.decide(&elsewhere, &no_labels).pending.is_some());
        let asking = service("asking", &[("baremetal-ccm.io/ips", "192.0.2.10")]);
        assert_eq!(
            decider.decide(&asking, &no_labels).pending.unwrap().reason,
            "AddressInUse"
        );
        let malformed = service("malformed", &[("baremetal-ccm.io/ips", "not-an-address")]);
        assert!(decider.decide(&malformed, &no_labels).pending.is_some());
        // Deciding again keeps a Service's place in the queue.
        for name in waiting.iter().rev() {
            decider.decide(
                &service(name, &[("baremetal-ccm.io/pool", "small")]),
                &no_labels,
            );
        }

        let freed = decider.release(&holder);
        assert_eq!(freed, [ip("192.0.2.10")]);
        let wake = decider.to_wake(&freed);
        let mut expected: Vec<ServiceKey> = (waiting.iter().take(1 + WAKE_SLACK))
            .map(|name| key(name))
            .collect();
        expected.push(key("asking"));
        expected.sort();
        assert_eq!(wake, expected);

        // The first woken takes the address; the next release wakes the next in line.
        let first = service(&waiting[0], &[("baremetal-ccm.io/pool", "small")]);
        assert_eq!(
            decider.decide(&first, &no_labels).desired.ingress,
            [ip("192.0.2.10")]
        );
        let freed = decider.release(&neighbour);
        let wake = decider.to_wake(&freed);
        let expected: Vec<ServiceKey> = (waiting[1..].iter().take(1 + WAKE_SLACK))
            .map(|name| key(name))
            .collect();
        assert_eq!(wake, expected);
        // Nothing freed in `other` woke `elsewhere`; a release there does.
        let freed = decider.release(&other_holder);
        assert_eq!(decider.to_wake(&freed), [key("elsewhere")]);
    }
}
