//! Assigning addresses to a Service: keep what it holds, honour requested addresses, share by
//! key, else take the lowest free address of the first eligible pool. Planned first and applied
//! only when every required family can be served, so a refusal changes nothing but conflicts.

use std::net::IpAddr;

use super::alloc::{Allocator, AssignedAddress};
use super::pending::{Pending, PoolNames, Searched};
use super::pool::Pool;
use super::range::{self, Family};
use super::request::{FamilyAsk, ServiceKey, ServiceRequest};
use super::services::{Profile, ServiceId};
use super::sharing::{self, Clash, Sharing};

/// The addresses a Service holds after a successful `assign`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// One per served family, in the request's family order.
    pub addresses: Vec<AssignedAddress>,
    /// Why PreferDualStack's second family, or a changed requested address of it, is not
    /// served.
    pub unmet: Option<Pending>,
}

/// Where a request may take addresses from.
struct Eligible {
    /// The pool the Service names: its index, or why it cannot be used.
    named: Option<Result<usize, Pending>>,
    /// Pools whose scope admits the Service, by (priority, name).
    in_scope: Vec<usize>,
}

impl Eligible {
    /// Pools for automatic assignment: the named one, else those in scope with autoAssign.
    fn automatic(&self, pools: &[Pool]) -> Result<Vec<usize>, Pending> {
        match &self.named {
            Some(named) => named.clone().map(|i| vec![i]),
            None => {
                let auto: Vec<usize> = (self.in_scope.iter().copied())
                    .filter(|&i| pools[i].auto_assign())
                    .collect();
                if auto.is_empty() {
                    Err(Pending::NoEligiblePool)
                } else {
                    Ok(auto)
                }
            }
        }
    }

    /// Pools a requested address may come from: the named one, else every pool in scope
    /// (autoAssign or not).
    fn for_requested(&self, pools: &[Pool]) -> Result<(Vec<usize>, Searched), Pending> {
        match &self.named {
            Some(named) => {
                let i = named.clone()?;
                Ok((vec![i], Searched::Named(pools[i].name().to_owned())))
            }
            None if self.in_scope.is_empty() => Err(Pending::NoEligiblePool),
            None => Ok((self.in_scope.clone(), Searched::InScope)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Keep(u128),
    Take(u128),
}

impl Step {
    fn value(self) -> u128 {
        match self {
            Step::Keep(v) | Step::Take(v) => v,
        }
    }
}

#[derive(Debug, Default)]
struct Plan {
    steps: Vec<(Family, Step)>,
    releases: Vec<(Family, u128)>,
    unmet: Option<Pending>,
}

impl Plan {
    /// Records a family that cannot be served: fatal when required, else noted.
    fn refuse(&mut self, pending: Pending, required: bool) -> Result<(), Pending> {
        if required {
            return Err(pending);
        }
        self.unmet.get_or_insert(pending);
        Ok(())
    }
}

/// One assignment in progress: the Service and what it asks.
struct Asking<'a> {
    request: &'a ServiceRequest,
    /// The Service's entry, when it holds addresses. Valid while planning, which changes
    /// nothing.
    id: Option<ServiceId>,
    profile: Profile,
    ask: FamilyAsk,
    requested: [Option<IpAddr>; 2],
    eligible: Eligible,
}

impl Asking<'_> {
    fn is_required(&self, family: Family) -> bool {
        self.ask.families[..self.ask.required].contains(&family)
    }
}

impl Allocator {
    /// Gives `request`'s Service its addresses, idempotently.
    ///
    /// Held addresses are kept, even outside every pool, unless the Service no longer asks for
    /// their family, requests a different address of that family, or has become unable to share
    /// with an earlier co-holder (its sharing key or ports changed). Requested addresses must
    /// lie in an eligible pool. Missing families come from a compatible address with the same
    /// sharing key, else the lowest free address of the first eligible pool with one, preferring
    /// a pool that serves every missing family. On refusal nothing changes except conflict
    /// resolution: when this Service's change makes it unable to share with a co-holder, the
    /// later claimant loses the address (see [`Allocator::take_displaced`]).
    pub fn assign(&mut self, request: &ServiceRequest) -> Result<Assignment, Pending> {
        let invalid = |error| Pending::InvalidRequest { error };
        // Conflicts are settled first, with the profile `rebuild` would record, so that a
        // restart reproduces the state even after a refused request.
        let profile = Profile::of(request);
        self.settle(&request.key, &profile);
        Sharing::of(request).map_err(invalid)?;
        let ask = request.families().map_err(invalid)?;
        let requested = request.requested_by_family().map_err(invalid)?;
        if let Some(ip) = requested
            .iter()
            .flatten()
            .find(|ip| !ask.families.contains(&Family::of(**ip)))
        {
            return Err(Pending::RequestedFamilyNotAsked {
                address: *ip,
                family: Family::of(*ip),
                asked: ask.families[0],
            });
        }
        let asking = Asking {
            request,
            id: self.services.id(&request.key),
            profile,
            ask,
            requested,
            eligible: self.eligible(request),
        };
        let plan = self.plan(&asking)?;
        for &(family, value) in &plan.releases {
            // Looked up each time: detaching the last address drops the entry and its id.
            if let Some(id) = self.services.id(&request.key) {
                self.detach(id, family, value);
            }
        }
        for (family, step) in &plan.steps {
            if let Step::Take(value) = step {
                self.attach(&request.key, &asking.profile, *family, *value);
            }
        }
        let addresses = (plan.steps.iter())
            .map(|(f, step)| {
                let new = matches!(step, Step::Take(_));
                self.describe(&asking.eligible, *f, step.value(), new)
            })
            .collect();
        Ok(Assignment {
            addresses,
            unmet: plan.unmet,
        })
    }

    /// The addresses `request`'s Service holds, in its family order (others last), each with
    /// the pool it is reported from. Changes nothing.
    pub fn allocations(&self, request: &ServiceRequest) -> Vec<AssignedAddress> {
        let Some((_, entry)) = self.services.find(&request.key) else {
            return Vec::new();
        };
        let eligible = self.eligible(request);
        let mut order: Vec<Family> = Vec::with_capacity(2);
        for family in request.ip_families.iter().chain(&Family::ALL) {
            if !order.contains(family) {
                order.push(*family);
            }
        }
        order
            .into_iter()
            .filter_map(|f| entry.get(f).map(|v| self.describe(&eligible, f, v, false)))
            .collect()
    }

    /// Applies a change of the Service's sharing profile and resolves sharing conflicts on its
    /// addresses: of two holders that may not share, the later claimant loses the address.
    fn settle(&mut self, key: &ServiceKey, profile: &Profile) {
        let Some((id, entry)) = self.services.find(key) else {
            return;
        };
        let held: Vec<(Family, u128)> = entry.held().collect();
        if entry.profile != *profile {
            for &(family, value) in &held {
                self.unindex_sharing(id, family, value);
            }
            self.services.entry_mut(id).profile.clone_from(profile);
            if let Some(sharing) = &profile.sharing {
                let addresses = self.by_sharing_key.entry(sharing.key.clone()).or_default();
                addresses.extend(held.iter().copied());
            }
        }
        // The entry, and so `id`, lasts until its last address is detached, which ends both
        // loops.
        for (family, value) in held {
            let others: Vec<ServiceId> =
                self.holders_of(family, value).map_or_else(Vec::new, |h| {
                    h.iter().copied().filter(|&o| o != id).collect()
                });
            for other in others {
                let Some(theirs) = self.services.get(other) else {
                    continue;
                };
                let theirs = &theirs.profile;
                if sharing::clash(profile.sharing.as_deref(), theirs.sharing.as_deref()).is_none() {
                    continue;
                }
                let they_are_earlier = (theirs.created.cmp(&profile.created))
                    .then_with(|| self.services.cmp_key(other, key))
                    .is_lt();
                if they_are_earlier {
                    self.detach(id, family, value);
                    break;
                }
                let displaced = self.services.key(other);
                self.detach(other, family, value);
                self.displaced.push(displaced);
            }
        }
    }

    fn eligible(&self, request: &ServiceRequest) -> Eligible {
        let admits = |pool: &Pool| {
            pool.scope().admits(
                &request.key.namespace,
                &request.namespace_labels,
                &request.service_labels,
            )
        };
        let named = request.pool.as_ref().map(|name| {
            let i = (self.pools.iter().position(|p| p.name() == name))
                .ok_or_else(|| Pending::UnknownPool { pool: name.clone() })?;
            admits(&self.pools[i])
                .map(|()| i)
                .map_err(|why| Pending::PoolNotEligible {
                    pool: name.clone(),
                    why,
                })
        });
        let in_scope = (0..self.pools.len())
            .filter(|&i| admits(&self.pools[i]).is_ok())
            .collect();
        Eligible { named, in_scope }
    }

    fn plan(&self, asking: &Asking<'_>) -> Result<Plan, Pending> {
        let ask = &asking.ask;
        let entry = asking.id.map(|id| self.services.entry(id));
        let held = |family: Family| entry.and_then(|e| e.get(family));
        let mut plan = Plan::default();
        for family in Family::ALL {
            if let Some(value) = held(family).filter(|_| !ask.families.contains(&family)) {
                plan.releases.push((family, value));
            }
        }
        let mut missing = Vec::new();
        for &family in &ask.families {
            let wanted = asking.requested[family.index()].map(|ip| range::to_number(ip).1);
            match (held(family), wanted) {
                (Some(h), None) => plan.steps.push((family, Step::Keep(h))),
                (Some(h), Some(w)) if h == w => plan.steps.push((family, Step::Keep(h))),
                (current, Some(w)) => match self.claim(asking, family, w) {
                    Ok(()) => {
                        plan.steps.push((family, Step::Take(w)));
                        plan.releases.extend(current.map(|h| (family, h)));
                    }
                    Err(pending) => {
                        plan.refuse(pending, asking.is_required(family))?;
                        plan.steps.extend(current.map(|h| (family, Step::Keep(h))));
                    }
                },
                (None, None) => missing.push(family),
            }
        }
        if !missing.is_empty() {
            self.plan_missing(asking, missing, &mut plan)?;
        }
        plan.steps
            .sort_by_key(|(f, _)| ask.families.iter().position(|a| a == f));
        Ok(plan)
    }

    /// Plans the families with neither a held nor a requested address.
    fn plan_missing(
        &self,
        asking: &Asking<'_>,
        missing: Vec<Family>,
        plan: &mut Plan,
    ) -> Result<(), Pending> {
        let pools = match asking.eligible.automatic(&self.pools) {
            Ok(pools) => pools,
            Err(pending) => {
                for family in missing {
                    plan.refuse(pending.clone(), asking.is_required(family))?;
                }
                return Ok(());
            }
        };
        let mut fresh = Vec::new();
        for family in missing {
            match self.share_candidate(asking, &pools, family) {
                Some(value) => plan.steps.push((family, Step::Take(value))),
                None => fresh.push(family),
            }
        }
        if let [first, second] = fresh[..] {
            let both = pools.iter().find_map(|&i| {
                let pool = &self.pools[i];
                Some((
                    self.first_free(pool, first)?,
                    self.first_free(pool, second)?,
                ))
            });
            if let Some((a, b)) = both {
                plan.steps.push((first, Step::Take(a)));
                plan.steps.push((second, Step::Take(b)));
                return Ok(());
            }
        }
        for family in fresh {
            let anchor = plan.steps.first().map(|(f, step)| (*f, step.value()));
            let preferred = anchor.and_then(|(f, v)| {
                (pools.iter().copied()).find(|&i| self.pools[i].contains_value(f, v))
            });
            let found = (preferred.into_iter().chain(pools.iter().copied()))
                .find_map(|i| self.first_free(&self.pools[i], family));
            match found {
                Some(value) => plan.steps.push((family, Step::Take(value))),
                None => {
                    let pending = self.exhausted(&pools, family, asking.request);
                    plan.refuse(pending, asking.is_required(family))?;
                }
            }
        }
        Ok(())
    }

    /// Why no pool of `pools` gives an address of `family`.
    fn exhausted(&self, pools: &[usize], family: Family, request: &ServiceRequest) -> Pending {
        let serving: Vec<String> = (pools.iter().map(|&i| &self.pools[i]))
            .filter(|p| p.serves(family))
            .map(|p| p.name().to_owned())
            .collect();
        if serving.is_empty() {
            Pending::ImpossibleFamilyRequest {
                family,
                policy: request.ip_family_policy,
            }
        } else {
            Pending::PoolExhausted {
                family,
                pools: PoolNames(serving),
            }
        }
    }

    /// Checks that the requested address `value` may be taken.
    fn claim(&self, asking: &Asking<'_>, family: Family, value: u128) -> Result<(), Pending> {
        let (pools, searched) = asking.eligible.for_requested(&self.pools)?;
        let address = range::to_ip(family, value);
        let pool = (pools.iter().map(|&i| &self.pools[i]))
            .find(|p| p.contains_value(family, value))
            .ok_or(Pending::RequestedOutsidePools { address, searched })?;
        match self.holders_of(family, value) {
            None => Ok(()),
            Some(holders) => self.may_join(asking, pool, holders, address),
        }
    }

    /// Whether the Service may become a holder of `address` (taken through `pool`) next to
    /// `holders`.
    fn may_join(
        &self,
        asking: &Asking<'_>,
        pool: &Pool,
        holders: &[ServiceId],
        address: IpAddr,
    ) -> Result<(), Pending> {
        let namespace = &*asking.request.key.namespace;
        for &holder in holders.iter().filter(|&&h| Some(h) != asking.id) {
            let theirs = self.services.entry(holder).profile.sharing.as_deref();
            let clash = sharing::clash(asking.profile.sharing.as_deref(), theirs);
            if clash == Some(Clash::NotShareable) {
                return Err(Pending::AddressInUse {
                    address,
                    holder: self.services.key(holder),
                });
            }
            if self.services.namespace(holder) != namespace && !pool.allow_cross_namespace_sharing()
            {
                return Err(Pending::CrossNamespaceSharing {
                    address,
                    holder: self.services.key(holder),
                    pool: pool.name().to_owned(),
                });
            }
            if let Some(Clash::Port(protocol, port)) = clash {
                return Err(Pending::SharingPortClash {
                    address,
                    holder: self.services.key(holder),
                    protocol,
                    port,
                });
            }
        }
        Ok(())
    }

    /// The lowest address of `family` held under the Service's sharing key, in one of `pools`,
    /// that it may join.
    fn share_candidate(
        &self,
        asking: &Asking<'_>,
        pools: &[usize],
        family: Family,
    ) -> Option<u128> {
        let sharing = asking.profile.sharing.as_ref()?;
        let addresses = self.by_sharing_key.get(&sharing.key)?;
        addresses
            .range((family, 0)..=(family, u128::MAX))
            .find_map(|&(_, value)| {
                let pool = (pools.iter().map(|&i| &self.pools[i]))
                    .find(|p| p.contains_value(family, value))?;
                let holders = self.holders_of(family, value)?;
                let address = range::to_ip(family, value);
                self.may_join(asking, pool, holders, address)
                    .is_ok()
                    .then_some(value)
            })
    }

    /// The lowest free address of `family` in `pool`.
    pub(crate) fn first_free(&self, pool: &Pool, family: Family) -> Option<u128> {
        let index = &self.space(family).index;
        (pool.spans(family).iter()).find_map(|s| index.first_free(*s, pool.avoids_buggy(family)))
    }

    fn describe(
        &self,
        eligible: &Eligible,
        family: Family,
        value: u128,
        new: bool,
    ) -> AssignedAddress {
        let contains = |i: &usize| self.pools[*i].contains_value(family, value);
        let named = match &eligible.named {
            Some(Ok(i)) => Some(*i),
            _ => None,
        };
        let in_eligible_pool = match &eligible.named {
            Some(_) => named.as_ref().is_some_and(contains),
            None => eligible.in_scope.iter().any(contains),
        };
        let pool = (named.filter(contains))
            .or_else(|| eligible.in_scope.iter().copied().find(contains))
            .or_else(|| (0..self.pools.len()).find(contains))
            .map(|i| self.pools[i].name().to_owned());
        AssignedAddress {
            address: range::to_ip(family, value),
            pool,
            in_eligible_pool,
            new,
        }
    }
}
