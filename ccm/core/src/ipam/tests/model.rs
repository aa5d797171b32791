//! A naive reference allocator for the property tests: every address of a small universe is
//! scanned linearly, holders are a plain map, nothing is indexed. It states the rules of
//! `assign` as directly as possible so that the real allocator can be compared with it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::ipam::{
    Family, Pool, PoolSpec, Protocol, ServiceKey, ServiceRequest, validate_sharing_key,
};

type Profile = Option<(String, BTreeSet<(Protocol, u16)>)>;

#[derive(Debug, Clone)]
struct Holding {
    created: i64,
    profile: Profile,
    addresses: BTreeMap<Family, IpAddr>,
}

/// The outcome the model expects from `assign`: addresses in family order and the unmet
/// reason, or the refusal reason; plus the displaced Services.
pub(super) type Outcome = (
    Result<(Vec<IpAddr>, Option<&'static str>), &'static str>,
    Vec<ServiceKey>,
);

#[derive(Debug, Clone)]
pub(super) struct Model {
    /// By (priority, name).
    pools: Vec<Pool>,
    /// Every address the pools may contain, ascending (IPv4 first).
    universe: Vec<IpAddr>,
    holders: BTreeMap<IpAddr, BTreeSet<ServiceKey>>,
    services: BTreeMap<ServiceKey, Holding>,
}

fn profile(request: &ServiceRequest) -> Profile {
    let key = request.sharing_key.as_ref()?;
    validate_sharing_key(key).ok()?;
    Some((key.clone(), request.ports.iter().copied().collect()))
}

/// Why two profiles may not share: `None` when they may.
fn clash(a: &Profile, b: &Profile) -> Option<&'static str> {
    match (a, b) {
        (Some((ka, pa)), Some((kb, pb))) if ka == kb => {
            (!pa.is_disjoint(pb)).then_some("SharingPortClash")
        }
        _ => Some("AddressInUse"),
    }
}

impl Model {
    pub(super) fn new(universe: Vec<IpAddr>, specs: &[PoolSpec]) -> Model {
        let mut model = Model {
            pools: Vec::new(),
            universe,
            holders: BTreeMap::new(),
            services: BTreeMap::new(),
        };
        model.set_pools(specs);
        model
    }

    pub(super) fn set_pools(&mut self, specs: &[PoolSpec]) {
        self.pools = specs.iter().map(|s| Pool::new(s).unwrap()).collect();
        self.pools
            .sort_by(|a, b| (a.priority(), a.name()).cmp(&(b.priority(), b.name())));
    }

    pub(super) fn assignments(&self) -> BTreeMap<ServiceKey, Vec<IpAddr>> {
        (self.services.iter())
            .map(|(k, h)| (k.clone(), h.addresses.values().copied().collect()))
            .collect()
    }

    /// Per pool name: (family, total, used).
    pub(super) fn usage(&self) -> BTreeMap<String, Vec<(Family, u128, u128)>> {
        (self.pools.iter())
            .map(|p| {
                let counts = Family::ALL
                    .into_iter()
                    .map(|f| {
                        let members = self.universe.iter().filter(|a| Family::of(**a) == f);
                        let members: Vec<&IpAddr> = members.filter(|a| p.contains(**a)).collect();
                        let used = members
                            .iter()
                            .filter(|a| self.holders.contains_key(**a))
                            .count();
                        (f, members.len() as u128, used as u128)
                    })
                    .collect();
                (p.name().to_owned(), counts)
            })
            .collect()
    }

    pub(super) fn release(&mut self, key: &ServiceKey) {
        if let Some(holding) = self.services.remove(key) {
            for address in holding.addresses.values() {
                self.unhold(key, *address);
            }
        }
    }

    fn unhold(&mut self, key: &ServiceKey, address: IpAddr) {
        if let Some(set) = self.holders.get_mut(&address) {
            set.remove(key);
            if set.is_empty() {
                self.holders.remove(&address);
            }
        }
        if let Some(holding) = self.services.get_mut(key) {
            holding.addresses.remove(&Family::of(address));
            if holding.addresses.is_empty() {
                self.services.remove(key);
            }
        }
    }

    fn hold(&mut self, request: &ServiceRequest, address: IpAddr) {
        let holding = self.services.entry(request.key.clone()).or_insert(Holding {
            created: request.created,
            profile: profile(request),
            addresses: BTreeMap::new(),
        });
        holding.addresses.insert(Family::of(address), address);
        self.holders
            .entry(address)
            .or_default()
            .insert(request.key.clone());
    }

    /// Applies the request's sharing profile; of two holders that may not share, the later
    /// claimant loses the address.
    fn settle(&mut self, request: &ServiceRequest) -> Vec<ServiceKey> {
        let me = &request.key;
        let mine = profile(request);
        let Some(holding) = self.services.get_mut(me) else {
            return Vec::new();
        };
        holding.created = request.created;
        holding.profile = mine.clone();
        let mut displaced = Vec::new();
        for address in holding.addresses.clone().into_values() {
            let others: Vec<ServiceKey> = self.holders[&address]
                .iter()
                .filter(|k| *k != me)
                .cloned()
                .collect();
            for other in others {
                let theirs = &self.services[&other];
                if clash(&mine, &theirs.profile).is_none() {
                    continue;
                }
                if (theirs.created, &other) < (request.created, me) {
                    self.unhold(me, address);
                    break;
                }
                self.unhold(&other, address);
                displaced.push(other);
            }
        }
        displaced
    }

    fn admits(request: &ServiceRequest, pool: &Pool) -> bool {
        (pool.scope())
            .admits(
                &request.key.namespace,
                &request.namespace_labels,
                &request.service_labels,
            )
            .is_ok()
    }

    /// Pools for requested addresses, or the refusal.
    fn request_pools(&self, request: &ServiceRequest) -> Result<Vec<&Pool>, &'static str> {
        match &request.pool {
            Some(name) => {
                let pool = self
                    .pools
                    .iter()
                    .find(|p| p.name() == name)
                    .ok_or("UnknownPool")?;
                if Self::admits(request, pool) {
                    Ok(vec![pool])
                } else {
                    Err("PoolNotEligible")
                }
            }
            None => {
                let pools: Vec<&Pool> = self
                    .pools
                    .iter()
                    .filter(|p| Self::admits(request, p))
                    .collect();
                if pools.is_empty() {
                    Err("NoEligiblePool")
                } else {
                    Ok(pools)
                }
            }
        }
    }

    fn auto_pools(&self, request: &ServiceRequest) -> Result<Vec<&Pool>, &'static str> {
        let pools = self.request_pools(request)?;
        if request.pool.is_some() {
            return Ok(pools);
        }
        let auto: Vec<&Pool> = pools.into_iter().filter(|p| p.auto_assign()).collect();
        if auto.is_empty() {
            Err("NoEligiblePool")
        } else {
            Ok(auto)
        }
    }

    fn may_join(
        &self,
        request: &ServiceRequest,
        pool: &Pool,
        address: IpAddr,
    ) -> Result<(), &'static str> {
        let mine = profile(request);
        for holder in self.holders.get(&address).into_iter().flatten() {
            if *holder == request.key {
                continue;
            }
            let theirs = &self.services[holder].profile;
            let why = clash(&mine, theirs);
            if why == Some("AddressInUse") {
                return Err("AddressInUse");
            }
            if holder.namespace != request.key.namespace && !pool.allow_cross_namespace_sharing() {
                return Err("CrossNamespaceSharingNotAllowed");
            }
            if let Some(why) = why {
                return Err(why);
            }
        }
        Ok(())
    }

    fn first_free(&self, pool: &Pool, family: Family) -> Option<IpAddr> {
        (self.universe.iter().copied()).find(|a| {
            Family::of(*a) == family && pool.contains(*a) && !self.holders.contains_key(a)
        })
    }

    fn claim(&self, request: &ServiceRequest, address: IpAddr) -> Result<(), &'static str> {
        let pools = self.request_pools(request)?;
        let pool = pools
            .into_iter()
            .find(|p| p.contains(address))
            .ok_or("RequestedAddressOutsidePool")?;
        self.may_join(request, pool, address)
    }

    fn share(&self, request: &ServiceRequest, pools: &[&Pool], family: Family) -> Option<IpAddr> {
        let (key, _) = profile(request)?;
        (self.holders.keys().copied()).find(|a| {
            Family::of(*a) == family
                && self.holders[a].iter().any(|h| {
                    self.services[h]
                        .profile
                        .as_ref()
                        .is_some_and(|(k, _)| *k == key)
                })
                && pools
                    .iter()
                    .find(|p| p.contains(*a))
                    .is_some_and(|p| self.may_join(request, p, *a).is_ok())
        })
    }

    /// What `assign` should do, applied to the model.
    pub(super) fn assign(&mut self, request: &ServiceRequest) -> Outcome {
        let displaced = self.settle(request);
        let result = self.plan(request).map(|(steps, releases, unmet)| {
            for (family, address) in releases {
                let _ = family;
                self.unhold(&request.key, address);
            }
            for (_, address, _) in &steps {
                self.hold(request, *address);
            }
            (steps.iter().map(|(_, a, _)| *a).collect(), unmet)
        });
        (result, displaced)
    }

    #[allow(clippy::type_complexity, reason = "test model; a tuple keeps it short")]
    fn plan(
        &self,
        request: &ServiceRequest,
    ) -> Result<
        (
            Vec<(usize, IpAddr, bool)>,
            Vec<(Family, IpAddr)>,
            Option<&'static str>,
        ),
        &'static str,
    > {
        if request
            .sharing_key
            .as_deref()
            .is_some_and(|k| validate_sharing_key(k).is_err())
        {
            return Err("InvalidRequest");
        }
        let ask = request.families().map_err(|_invalid| "InvalidRequest")?;
        let requested = request
            .requested_by_family()
            .map_err(|_invalid| "InvalidRequest")?;
        if requested
            .iter()
            .flatten()
            .any(|a| !ask.families.contains(&Family::of(*a)))
        {
            return Err("RequestedFamilyNotAsked");
        }
        let held: BTreeMap<Family, IpAddr> = self
            .services
            .get(&request.key)
            .map(|h| h.addresses.clone())
            .unwrap_or_default();
        let required = |f: Family| ask.families[..ask.required].contains(&f);
        let position = |f: Family| ask.families.iter().position(|x| *x == f).unwrap();
        let mut releases: Vec<(Family, IpAddr)> = held
            .iter()
            .filter(|(f, _)| !ask.families.contains(f))
            .map(|(f, a)| (*f, *a))
            .collect();
        // (position in ask, address, taken)
        let mut steps: Vec<(usize, IpAddr, bool)> = Vec::new();
        let mut unmet = None;
        let mut missing = Vec::new();
        for &family in &ask.families {
            let want = requested[family.index()];
            match (held.get(&family).copied(), want) {
                (Some(h), None) => steps.push((position(family), h, false)),
                (Some(h), Some(w)) if h == w => steps.push((position(family), h, false)),
                (current, Some(w)) => match self.claim(request, w) {
                    Ok(()) => {
                        steps.push((position(family), w, true));
                        releases.extend(current.map(|h| (family, h)));
                    }
                    Err(why) if required(family) => return Err(why),
                    Err(why) => {
                        unmet.get_or_insert(why);
                        steps.extend(current.map(|h| (position(family), h, false)));
                    }
                },
                (None, None) => missing.push(family),
            }
        }
        if !missing.is_empty() {
            let families = Needs {
                required: &required,
                position: &position,
            };
            self.plan_missing(request, missing, &families, &mut steps, &mut unmet)?;
        }
        steps.sort_by_key(|s| s.0);
        Ok((steps, releases, unmet))
    }

    /// Addresses for the families the Service neither holds nor requests: shared, both
    /// families from one pool, or each from the first pool with a free one.
    fn plan_missing(
        &self,
        request: &ServiceRequest,
        missing: Vec<Family>,
        needs: &Needs<'_>,
        steps: &mut Vec<(usize, IpAddr, bool)>,
        unmet: &mut Option<&'static str>,
    ) -> Result<(), &'static str> {
        let pools = match self.auto_pools(request) {
            Ok(pools) => pools,
            Err(why) => {
                for family in missing {
                    if (needs.required)(family) {
                        return Err(why);
                    }
                    unmet.get_or_insert(why);
                }
                return Ok(());
            }
        };
        let mut fresh = Vec::new();
        for family in missing {
            match self.share(request, &pools, family) {
                Some(a) => steps.push(((needs.position)(family), a, true)),
                None => fresh.push(family),
            }
        }
        let joint = match fresh[..] {
            [f1, f2] => pools
                .iter()
                .find_map(|p| Some((self.first_free(p, f1)?, self.first_free(p, f2)?))),
            _ => None,
        };
        if let Some((a, b)) = joint {
            steps.push(((needs.position)(fresh[0]), a, true));
            steps.push(((needs.position)(fresh[1]), b, true));
            fresh.clear();
        }
        for family in fresh {
            let anchor = steps.first().map(|s| s.1);
            let preferred = anchor.and_then(|a| pools.iter().find(|p| p.contains(a)));
            let found = preferred
                .into_iter()
                .chain(pools.iter())
                .find_map(|p| self.first_free(p, family));
            match found {
                Some(a) => steps.push(((needs.position)(family), a, true)),
                None => {
                    let why = self.why_none_free(&pools, family);
                    if (needs.required)(family) {
                        return Err(why);
                    }
                    unmet.get_or_insert(why);
                }
            }
        }
        Ok(())
    }

    fn why_none_free(&self, pools: &[&Pool], family: Family) -> &'static str {
        let serves = pools.iter().any(|p| {
            self.universe
                .iter()
                .any(|a| Family::of(*a) == family && p.contains(*a))
        });
        if serves {
            "PoolExhausted"
        } else {
            "ImpossibleFamilyRequest"
        }
    }
}

/// Which asked families are required, and where each goes in the answer.
struct Needs<'a> {
    required: &'a dyn Fn(Family) -> bool,
    position: &'a dyn Fn(Family) -> usize,
}
