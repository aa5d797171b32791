//! The allocator's state: which Service holds which address, the free-address index per family
//! and the pool set; releasing, replacing pools and the status queries. Assigning lives in
//! `assign`, rebuilding after a restart in `rebuild`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use thiserror::Error;

use super::held::Held;
use super::index::FreeIndex;
use super::pool::Pool;
use super::range::{self, Family};
use super::request::ServiceKey;
use super::services::{Profile, ServiceId, Services};

/// Held addresses of one family.
#[derive(Debug, Clone)]
pub(crate) struct Space {
    pub(crate) held: Held,
    pub(crate) index: FreeIndex,
}

/// Two pools with the same name were given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("pool {0} is given twice")]
pub struct DuplicatePool(pub String);

/// A held address outside every pool (its pool was shrunk or deleted). It stays allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    pub address: IpAddr,
    pub holders: Vec<ServiceKey>,
    /// The pools that contained the address before the change that left it outside (empty when
    /// it was already outside, and after a restart).
    pub former_pools: Vec<String>,
}

/// Counts of one family of one pool. `used` counts the pool's addresses held by anyone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FamilyUsage {
    pub total: u128,
    pub used: u128,
    pub free: u128,
}

/// Counts of one pool, per family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    pub pool: String,
    pub v4: FamilyUsage,
    pub v6: FamilyUsage,
}

impl PoolUsage {
    pub fn family(&self, family: Family) -> FamilyUsage {
        match family {
            Family::V4 => self.v4,
            Family::V6 => self.v6,
        }
    }
}

/// One address of a Service, with the pool it is reported as allocated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedAddress {
    pub address: IpAddr,
    /// The pool for `baremetal-ccm.io/allocated-from`: the named pool if it contains the
    /// address, else the first pool in scope that does, else the first pool that does.
    pub pool: Option<String>,
    /// Whether the address lies in a pool that serves the Service now. `false` means it is
    /// kept only because allocated addresses never move (the pool was edited, deleted or
    /// the Service left its scope): flag the Service as degraded.
    pub in_eligible_pool: bool,
    /// Whether the address was taken by this call.
    pub new: bool,
}

/// The address allocator. Plain data in, decisions out; memory grows with allocations, not
/// with pool sizes.
#[derive(Debug, Clone)]
pub struct Allocator {
    /// Sorted by (priority, name).
    pub(crate) pools: Vec<Pool>,
    pub(crate) spaces: [Space; 2],
    pub(crate) services: Services,
    /// For each sharing key, the addresses with a holder using it.
    pub(crate) by_sharing_key: BTreeMap<Arc<str>, BTreeSet<(Family, u128)>>,
    pub(crate) displaced: Vec<ServiceKey>,
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator {
            pools: Vec::new(),
            spaces: Family::ALL.map(|f| Space {
                held: Held::new(f),
                index: FreeIndex::new(f),
            }),
            services: Services::default(),
            by_sharing_key: BTreeMap::new(),
            displaced: Vec::new(),
        }
    }
}

impl Allocator {
    /// An allocator over `pools` with nothing allocated.
    pub fn new(pools: Vec<Pool>) -> Result<Allocator, DuplicatePool> {
        let mut allocator = Allocator::default();
        allocator.set_pools(pools)?;
        Ok(allocator)
    }

    /// Replaces the pool set. Allocations stay where they are; the returned list names every
    /// held address now outside every pool, for flagging.
    pub fn set_pools(&mut self, mut pools: Vec<Pool>) -> Result<Vec<Degraded>, DuplicatePool> {
        pools.sort_by(|a, b| a.name().cmp(b.name()));
        if let Some(twice) = pools.windows(2).find(|w| w[0].name() == w[1].name()) {
            return Err(DuplicatePool(twice[0].name().to_owned()));
        }
        pools.sort_by(|a, b| (a.priority(), a.name()).cmp(&(b.priority(), b.name())));
        let former = std::mem::replace(&mut self.pools, pools);
        let mut degraded = self.outside_pools();
        for d in &mut degraded {
            d.former_pools = former
                .iter()
                .filter(|p| p.contains(d.address))
                .map(|p| p.name().to_owned())
                .collect();
        }
        Ok(degraded)
    }

    /// The pools, by (priority, name).
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name() == name)
    }

    /// Frees every address `key` holds (an address is free once its last holder leaves).
    /// Returns the addresses it held.
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        let Some((id, entry)) = self.services.find(key) else {
            return Vec::new();
        };
        let held: Vec<IpAddr> = entry.held().map(|(f, v)| range::to_ip(f, v)).collect();
        for &address in &held {
            let (family, value) = range::to_number(address);
            self.detach(id, family, value);
        }
        held
    }

    /// Services that lost an address as the later claimant of a conflict created by another
    /// Service's change (see `assign`). The caller should reconcile them again.
    pub fn take_displaced(&mut self) -> Vec<ServiceKey> {
        std::mem::take(&mut self.displaced)
    }

    /// Number of Services holding at least one address (what tests observe).
    #[cfg(test)]
    pub(crate) fn service_count(&self) -> usize {
        self.services.len()
    }

    /// The addresses `key` holds, IPv4 first.
    pub fn addresses(&self, key: &ServiceKey) -> Vec<IpAddr> {
        self.services.find(key).map_or_else(Vec::new, |(_, e)| {
            e.held().map(|(f, v)| range::to_ip(f, v)).collect()
        })
    }

    /// The Services holding `address`, sorted.
    pub fn holders(&self, address: IpAddr) -> Vec<ServiceKey> {
        let (family, value) = range::to_number(address);
        self.holders_of(family, value)
            .map_or_else(Vec::new, |h| self.keys(h))
    }

    /// Every Service's addresses, IPv4 first.
    pub fn assignments(&self) -> BTreeMap<ServiceKey, Vec<IpAddr>> {
        self.services
            .iter()
            .map(|(id, e)| {
                (
                    self.services.key(id),
                    e.held().map(|(f, v)| range::to_ip(f, v)).collect(),
                )
            })
            .collect()
    }

    /// Usage of every pool, by pool name.
    pub fn usage(&self) -> Vec<PoolUsage> {
        let mut usage: Vec<PoolUsage> = self.pools.iter().map(|p| self.pool_usage(p)).collect();
        usage.sort_by(|a, b| a.pool.cmp(&b.pool));
        usage
    }

    /// Usage of one pool: total, used and free per family.
    pub fn pool_usage(&self, pool: &Pool) -> PoolUsage {
        let family = |f: Family| {
            let total = pool.total(f);
            let used = pool
                .spans(f)
                .iter()
                .map(|s| self.space(f).index.held_in(f, *s, pool.avoids_buggy(f)))
                .fold(0, u128::saturating_add);
            FamilyUsage {
                total,
                used,
                free: total.saturating_sub(used),
            }
        };
        PoolUsage {
            pool: pool.name().to_owned(),
            v4: family(Family::V4),
            v6: family(Family::V6),
        }
    }

    /// Every held address outside every pool.
    pub fn outside_pools(&self) -> Vec<Degraded> {
        let mut outside = Vec::new();
        for family in Family::ALL {
            for (value, holders) in self.space(family).held.iter() {
                if !self.pools.iter().any(|p| p.contains_value(family, value)) {
                    outside.push(Degraded {
                        address: range::to_ip(family, value),
                        holders: self.keys(holders),
                        former_pools: Vec::new(),
                    });
                }
            }
        }
        outside
    }

    pub(crate) fn space(&self, family: Family) -> &Space {
        &self.spaces[family.index()]
    }

    /// The holders of `value`, sorted by key; `None` when it is free.
    pub(crate) fn holders_of(&self, family: Family, value: u128) -> Option<&[ServiceId]> {
        self.space(family).held.get(value)
    }

    /// The keys of `ids`, in the same order.
    pub(crate) fn keys(&self, ids: &[ServiceId]) -> Vec<ServiceKey> {
        ids.iter().map(|&id| self.services.key(id)).collect()
    }

    /// Makes `key` a holder of `value`, creating its entry from `profile` if needed.
    pub(crate) fn attach(
        &mut self,
        key: &ServiceKey,
        profile: &Profile,
        family: Family,
        value: u128,
    ) {
        let id = self.services.ensure(key, profile);
        let entry = self.services.entry_mut(id);
        entry.set(family, Some(value));
        if let Some(sharing) = &entry.profile.sharing {
            self.by_sharing_key
                .entry(sharing.key.clone())
                .or_default()
                .insert((family, value));
        }
        let services = &self.services;
        let space = &mut self.spaces[family.index()];
        if space.held.add(value, id, |a, b| services.cmp_ids(a, b)) {
            space.index.hold(value);
        }
    }

    /// Removes `id` as a holder of `value`, freeing the address when it was the last holder
    /// and dropping the entry (so that `id` becomes vacant) when it holds nothing more.
    pub(crate) fn detach(&mut self, id: ServiceId, family: Family, value: u128) {
        self.unindex_sharing(id, family, value);
        self.services.entry_mut(id).set(family, None);
        self.services.remove_if_empty(id);
        let space = &mut self.spaces[family.index()];
        if space.held.remove(value, id) {
            space.index.free(value);
        }
    }

    /// Drops `(family, value)` from the sharing-key index under `id`'s sharing key, unless
    /// another holder uses the same key.
    pub(crate) fn unindex_sharing(&mut self, id: ServiceId, family: Family, value: u128) {
        let Some(sharing_key) =
            (self.services.entry(id).profile.sharing.as_ref()).map(|s| s.key.clone())
        else {
            return;
        };
        let others_use_it = self.holders_of(family, value).is_some_and(|h| {
            h.iter().any(|&other| {
                other != id
                    && (self.services.get(other))
                        .and_then(|e| e.profile.sharing.as_ref())
                        .is_some_and(|s| s.key == sharing_key)
            })
        });
        if others_use_it {
            return;
        }
        if let Some(addresses) = self.by_sharing_key.get_mut(&sharing_key) {
            addresses.remove(&(family, value));
            if addresses.is_empty() {
                self.by_sharing_key.remove(&sharing_key);
            }
        }
    }

    /// Forgets every allocation (pools stay).
    pub(crate) fn clear_allocations(&mut self) {
        let pools = std::mem::take(&mut self.pools);
        *self = Allocator {
            pools,
            ..Allocator::default()
        };
    }
}
