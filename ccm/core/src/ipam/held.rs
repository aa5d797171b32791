//! Who holds each held address of one family. IPv4 addresses are keyed as `u32`: a B-tree node
//! of `u32` keys and `u32` ids is a quarter the size of one keyed by `u128`, which matters at
//! hundreds of thousands of addresses.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry as Slot;

use super::range::Family;
use super::services::ServiceId;

/// Holders by address, addresses as `K`. An address is usually held by one Service; the few
/// shared ones keep their full holder list aside, so that the common case costs four bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Holdings<K> {
    /// The first holder (by key) of every held address.
    first: BTreeMap<K, ServiceId>,
    /// Every holder, sorted by key, of the addresses held by more than one Service.
    shared: BTreeMap<K, Vec<ServiceId>>,
}

impl<K> Default for Holdings<K> {
    fn default() -> Self {
        Holdings {
            first: BTreeMap::new(),
            shared: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Copy> Holdings<K> {
    /// The holders of `at`, sorted by key; `None` when it is free.
    fn get(&self, at: K) -> Option<&[ServiceId]> {
        if let Some(all) = self.shared.get(&at) {
            return Some(all);
        }
        self.first.get(&at).map(std::slice::from_ref)
    }

    /// Makes `id` a holder of `at`; `order` orders holders by key. Returns whether `at` was
    /// free.
    fn add(
        &mut self,
        at: K,
        id: ServiceId,
        order: impl Fn(ServiceId, ServiceId) -> Ordering,
    ) -> bool {
        let first = match self.first.entry(at) {
            Slot::Vacant(slot) => {
                slot.insert(id);
                return true;
            }
            Slot::Occupied(slot) => slot.into_mut(),
        };
        if *first == id {
            return false;
        }
        let all = self.shared.entry(at).or_insert_with(|| vec![*first]);
        if let Err(position) = all.binary_search_by(|held| order(*held, id)) {
            all.insert(position, id);
        }
        *first = all[0];
        false
    }

    /// Removes `id` as a holder of `at`; returns whether nobody holds it any more.
    fn remove(&mut self, at: K, id: ServiceId) -> bool {
        let Some(first) = self.first.get_mut(&at) else {
            return false;
        };
        let Some(all) = self.shared.get_mut(&at) else {
            if *first == id {
                self.first.remove(&at);
                return true;
            }
            return false;
        };
        all.retain(|held| *held != id);
        // A shared address has at least two holders, so one is left.
        *first = all[0];
        if all.len() == 1 {
            self.shared.remove(&at);
        }
        false
    }

    /// Every held address, ascending, with its holders.
    fn iter(&self) -> impl Iterator<Item = (K, &[ServiceId])> {
        self.first
            .iter()
            .map(|(&at, first)| match self.shared.get(&at) {
                Some(all) => (at, all.as_slice()),
                None => (at, std::slice::from_ref(first)),
            })
    }
}

/// Holders of the held addresses of one family, addresses as numbers (see `range`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Held {
    V4(Holdings<u32>),
    V6(Holdings<u128>),
}

/// An IPv4 address number as stored.
fn v4(value: u128) -> u32 {
    u32::try_from(value).expect("IPv4 numbers are bounded by u32::MAX")
}

impl Held {
    pub(crate) fn new(family: Family) -> Held {
        match family {
            Family::V4 => Held::V4(Holdings::default()),
            Family::V6 => Held::V6(Holdings::default()),
        }
    }

    /// The holders of `value`, sorted by key; `None` when it is free.
    pub(crate) fn get(&self, value: u128) -> Option<&[ServiceId]> {
        match self {
            Held::V4(h) => h.get(v4(value)),
            Held::V6(h) => h.get(value),
        }
    }

    /// Makes `id` a holder of `value`; `order` orders holders by key. Returns whether `value`
    /// was free.
    pub(crate) fn add(
        &mut self,
        value: u128,
        id: ServiceId,
        order: impl Fn(ServiceId, ServiceId) -> Ordering,
    ) -> bool {
        match self {
            Held::V4(h) => h.add(v4(value), id, order),
            Held::V6(h) => h.add(value, id, order),
        }
    }

    /// Removes `id` as a holder of `value`; returns whether nobody holds it any more.
    pub(crate) fn remove(&mut self, value: u128, id: ServiceId) -> bool {
        match self {
            Held::V4(h) => h.remove(v4(value), id),
            Held::V6(h) => h.remove(value, id),
        }
    }

    /// Every held address, ascending, with its holders.
    pub(crate) fn iter(&self) -> Box<dyn Iterator<Item = (u128, &[ServiceId])> + '_> {
        match self {
            Held::V4(h) => Box::new(h.iter().map(|(at, ids)| (u128::from(at), ids))),
            Held::V6(h) => Box::new(h.iter()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::request::ServiceKey;
    use crate::ipam::services::{Profile, Services};

    /// A table of Services named `names` (in one namespace), and their ids in that order.
    fn services(names: &[&str]) -> (Services, Vec<ServiceId>) {
        let mut services = Services::default();
        let profile = Profile {
            created: 0,
            sharing: None,
        };
        let ids = (names.iter())
            .map(|n| services.ensure(&ServiceKey::new("ns", n), &profile))
            .collect();
        (services, ids)
    }

    #[test]
    fn a_shared_address_lists_its_holders_in_key_order_until_the_last_leaves() {
        let (services, ids) = services(&["c", "a", "b"]);
        let (c, a, b) = (ids[0], ids[1], ids[2]);
        let order = |x, y| services.cmp_ids(x, y);
        let mut held = Held::new(Family::V4);
        assert!(held.add(7, c, order));
        assert!(!held.add(7, a, order));
        assert!(!held.add(7, b, order));
        assert!(!held.add(7, b, order), "adding twice changes nothing");
        assert_eq!(held.get(7), Some(&[a, b, c][..]));
        assert_eq!(held.iter().collect::<Vec<_>>(), vec![(7, &[a, b, c][..])]);

        assert!(!held.remove(7, a));
        assert_eq!(held.get(7), Some(&[b, c][..]));
        assert!(!held.remove(8, b), "not held");
        assert!(!held.remove(7, c));
        assert_eq!(held.get(7), Some(&[b][..]));
        assert!(!held.remove(7, c), "not a holder any more");
        assert!(held.remove(7, b));
        assert_eq!(held.get(7), None);
        assert_eq!(held, Held::new(Family::V4), "nothing is left behind");
    }

    #[test]
    fn an_ipv6_address_keeps_all_its_bits() {
        let (services, ids) = services(&["a"]);
        let order = |x, y| services.cmp_ids(x, y);
        let mut held = Held::new(Family::V6);
        assert!(held.add(u128::MAX, ids[0], order));
        assert_eq!(held.get(u128::MAX), Some(&ids[..]));
        assert_eq!(held.get(u128::from(u32::MAX)), None);
        assert!(held.remove(u128::MAX, ids[0]));
    }
}
