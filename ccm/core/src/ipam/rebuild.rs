//! Rebuilding the allocator at start-up from the addresses Services already hold: the truth
//! lives in the cluster, so the state is recomputed from it, in creation order, the same way
//! whatever order the Services are listed in.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::alloc::{Allocator, Degraded};
use super::range;
use super::request::{ServiceKey, ServiceRequest};
use super::services::Profile;
use super::sharing::{self, Clash};

/// A Service found holding addresses: its current request and the addresses of its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    pub request: ServiceRequest,
    pub addresses: Vec<IpAddr>,
}

/// An address held by an earlier claimant that a later one may not share. The later claimant
/// does not get it recorded; report it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub service: ServiceKey,
    pub address: IpAddr,
    pub holder: ServiceKey,
    pub clash: Clash,
}

/// What rebuilding found besides the recorded allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    pub conflicts: Vec<Conflict>,
    /// Recorded addresses outside every pool (kept, never lost; flag them).
    pub outside_pools: Vec<Degraded>,
    /// Addresses not recorded because the Service already had one of that family, or was
    /// listed twice.
    pub ignored: Vec<(ServiceKey, IpAddr)>,
}

impl Allocator {
    /// Replaces every allocation with those of `existing`, taken in creation order (then key):
    /// an address is recorded for a Service unless an earlier holder may not share it with the
    /// Service (different or no sharing key, or a common port), which is reported as a
    /// conflict. Cross-namespace sharing found in the cluster is kept as it is: only this
    /// controller writes Service status, so it was allowed when it was made.
    pub fn rebuild(&mut self, mut existing: Vec<Existing>) -> RebuildReport {
        self.clear_allocations();
        existing.sort_by(|a, b| {
            (a.request.order(), &a.addresses).cmp(&(b.request.order(), &b.addresses))
        });
        let mut report = RebuildReport::default();
        let mut seen = BTreeSet::new();
        for service in &existing {
            if seen.insert(&service.request.key) {
                self.record(service, &mut report);
            } else {
                let key = &service.request.key;
                (report.ignored).extend(service.addresses.iter().map(|ip| (key.clone(), *ip)));
            }
        }
        report.outside_pools = self.outside_pools();
        report
    }

    /// Records what one Service holds, as [`Allocator::rebuild`] would, beside the current
    /// allocations: the addresses nobody else holds (or that it may share) are recorded, the
    /// others are returned as conflicts and left to their holders. For a Service adopted as
    /// another implementation left it, once its conflict may have been resolved.
    pub fn adopt(&mut self, service: &Existing) -> Vec<Conflict> {
        let mut report = RebuildReport::default();
        self.record(service, &mut report);
        report.conflicts
    }

    fn record(&mut self, service: &Existing, report: &mut RebuildReport) {
        let profile = Profile::of(&service.request);
        let key = &service.request.key;
        for &address in &service.addresses {
            let (family, value) = range::to_number(address);
            if (self.services.find(key)).is_some_and(|(_, e)| e.get(family).is_some()) {
                report.ignored.push((key.clone(), address));
                continue;
            }
            let holders = self.holders_of(family, value).unwrap_or_default();
            let conflict = holders.iter().find_map(|&holder| {
                let theirs = self.services.get(holder)?.profile.sharing.as_deref();
                let clash = sharing::clash(profile.sharing.as_deref(), theirs)?;
                Some((self.services.key(holder), clash))
            });
            match conflict {
                Some((holder, clash)) => report.conflicts.push(Conflict {
                    service: key.clone(),
                    address,
                    holder,
                    clash,
                }),
                None => self.attach(key, &profile, family, value),
            }
        }
    }
}
