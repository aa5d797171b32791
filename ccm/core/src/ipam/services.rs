//! The Services holding addresses: one entry each, in a table addressed by small ids so that the
//! per-address holder index refers to a Service in four bytes rather than by its key.
//!
//! Memory grows with the number of holders: an entry, one map slot from key to id, and the
//! Service's name, shared with the caller's key rather than copied.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::range::Family;
use super::request::{ServiceKey, ServiceRequest};
use super::sharing::Sharing;

/// A Service's place in [`Services`]. Valid while the Service holds an address: the id is
/// reused once it holds none, so it is never kept across a change that may drop the entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServiceId(u32);

/// An interned namespace. Namespaces are few, so they are never forgotten while allocations
/// last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NamespaceId(u32);

/// A key as stored: the namespace interned, the name shared with the caller's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StoredKey {
    namespace: NamespaceId,
    name: Arc<str>,
}

/// What settles conflicts between holders: creation time (the earlier claimant wins) and the
/// sharing profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub(crate) created: i64,
    pub(crate) sharing: Option<Box<Sharing>>,
}

impl Profile {
    /// The profile recorded for `request`, valid or not (see [`Sharing::recorded`]).
    pub(crate) fn of(request: &ServiceRequest) -> Profile {
        Profile {
            created: request.created,
            sharing: Sharing::recorded(request),
        }
    }
}

/// What the allocator keeps per Service holding addresses. Addresses are stored in their
/// compact std forms (5 and 17 bytes, byte-aligned) so that an entry fits 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    name: Arc<str>,
    namespace: NamespaceId,
    pub(crate) profile: Profile,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
}

impl Entry {
    pub(crate) fn get(&self, family: Family) -> Option<u128> {
        match family {
            Family::V4 => self.v4.map(|a| u128::from(u32::from(a))),
            Family::V6 => self.v6.map(u128::from),
        }
    }

    pub(crate) fn set(&mut self, family: Family, value: Option<u128>) {
        match family {
            Family::V4 => {
                self.v4 = value.map(|v| {
                    Ipv4Addr::from(u32::try_from(v).expect("IPv4 numbers are bounded by u32::MAX"))
                });
            }
            Family::V6 => self.v6 = value.map(Ipv6Addr::from),
        }
    }

    /// Held addresses, IPv4 first. Owns its items, so the table may change while it is used.
    pub(crate) fn held(&self) -> impl Iterator<Item = (Family, u128)> + use<> {
        Family::ALL
            .map(|f| self.get(f).map(|v| (f, v)))
            .into_iter()
            .flatten()
    }

    fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }
}

/// Entries per chunk of the table: growing adds one chunk rather than doubling, which would
/// leave up to half of a large table reserved but unused.
const CHUNK: usize = 1024;

/// The Services holding addresses, by id and by key. The table keeps its peak size: a vacant id
/// is reused by the next Service rather than the table shrinking.
#[derive(Debug, Clone, Default)]
pub(crate) struct Services {
    /// Entries by id: id `i` is `chunks[i / CHUNK][i % CHUNK]`; `None` when vacant.
    chunks: Vec<Vec<Option<Entry>>>,
    /// Vacant ids, reused first.
    vacant: Vec<ServiceId>,
    /// Hashed rather than ordered: a B-tree look-up compares names at every level, each in
    /// another string, which made `release` about 1.7 times slower at 100,000 Services.
    ids: HashMap<StoredKey, ServiceId>,
    namespaces: Vec<Arc<str>>,
    namespace_ids: HashMap<Arc<str>, NamespaceId>,
}

fn place(id: ServiceId) -> (usize, usize) {
    let i = usize::try_from(id.0).expect("ids are indexes of the table, which fit usize");
    (i / CHUNK, i % CHUNK)
}

impl Services {
    /// Number of Services holding at least one address (what tests observe).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn id(&self, key: &ServiceKey) -> Option<ServiceId> {
        let namespace = *self.namespace_ids.get(&*key.namespace)?;
        let stored = StoredKey {
            namespace,
            name: key.name.clone(),
        };
        self.ids.get(&stored).copied()
    }

    /// The entry of `key`, if it holds addresses.
    pub(crate) fn find(&self, key: &ServiceKey) -> Option<(ServiceId, &Entry)> {
        let id = self.id(key)?;
        Some((id, self.entry(id)))
    }

    pub(crate) fn get(&self, id: ServiceId) -> Option<&Entry> {
        let (chunk, slot) = place(id);
        self.chunks.get(chunk)?.get(slot)?.as_ref()
    }

    /// The entry of a live id.
    pub(crate) fn entry(&self, id: ServiceId) -> &Entry {
        self.get(id)
            .expect("ids in use refer to entries: they are dropped with the entry")
    }

    pub(crate) fn entry_mut(&mut self, id: ServiceId) -> &mut Entry {
        let (chunk, slot) = place(id);
        (self.chunks.get_mut(chunk))
            .and_then(|c| c.get_mut(slot))
            .and_then(Option::as_mut)
            .expect("ids in use refer to entries: they are dropped with the entry")
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ServiceId, &Entry)> {
        (self.chunks.iter().flatten().enumerate()).filter_map(|(i, e)| {
            let id = ServiceId(u32::try_from(i).expect("ids fit u32 (checked on insertion)"));
            e.as_ref().map(|e| (id, e))
        })
    }

    /// The id of `key`, creating its entry (with `profile`, holding nothing yet) if it has none.
    pub(crate) fn ensure(&mut self, key: &ServiceKey, profile: &Profile) -> ServiceId {
        if let Some(id) = self.id(key) {
            return id;
        }
        let namespace = self.intern(&key.namespace);
        let entry = Entry {
            name: key.name.clone(),
            namespace,
            profile: profile.clone(),
            v4: None,
            v6: None,
        };
        let id = match self.vacant.pop() {
            Some(id) => {
                let (chunk, slot) = place(id);
                self.chunks[chunk][slot] = Some(entry);
                id
            }
            None => self.push(entry),
        };
        let stored = StoredKey {
            namespace,
            name: key.name.clone(),
        };
        self.ids.insert(stored, id);
        id
    }

    fn push(&mut self, entry: Entry) -> ServiceId {
        // Every chunk but the last is full.
        let count =
            (self.chunks.last()).map_or(0, |last| (self.chunks.len() - 1) * CHUNK + last.len());
        let id = ServiceId(u32::try_from(count).expect("fewer than 2^32 Services hold addresses"));
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => last.push(Some(entry)),
            _ => {
                // The first chunk grows as a `Vec` does, so small tables stay small.
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() { 0 } else { CHUNK });
                chunk.push(Some(entry));
                self.chunks.push(chunk);
            }
        }
        id
    }

    fn intern(&mut self, namespace: &Arc<str>) -> NamespaceId {
        if let Some(id) = self.namespace_ids.get(&**namespace) {
            return *id;
        }
        let id = NamespaceId(
            u32::try_from(self.namespaces.len()).expect("fewer than 2^32 namespaces exist"),
        );
        self.namespaces.push(namespace.clone());
        self.namespace_ids.insert(namespace.clone(), id);
        id
    }

    /// Drops the entry of `id` if it holds nothing any more; the id becomes vacant.
    pub(crate) fn remove_if_empty(&mut self, id: ServiceId) {
        if !self.entry(id).is_empty() {
            return;
        }
        let (chunk, slot) = place(id);
        let entry = self.chunks[chunk][slot]
            .take()
            .expect("ids in use refer to entries: they are dropped with the entry");
        self.ids.remove(&StoredKey {
            namespace: entry.namespace,
            name: entry.name,
        });
        self.vacant.push(id);
    }

    fn namespace_of(&self, entry: &Entry) -> &Arc<str> {
        let i = usize::try_from(entry.namespace.0).expect("namespace ids fit usize");
        &self.namespaces[i]
    }

    /// The namespace of the Service `id`.
    pub(crate) fn namespace(&self, id: ServiceId) -> &str {
        self.namespace_of(self.entry(id))
    }

    /// The key of the Service `id`.
    pub(crate) fn key(&self, id: ServiceId) -> ServiceKey {
        let entry = self.entry(id);
        ServiceKey {
            namespace: self.namespace_of(entry).clone(),
            name: entry.name.clone(),
        }
    }

    /// Orders the Service `id` against `key` as their [`ServiceKey`]s order.
    pub(crate) fn cmp_key(&self, id: ServiceId, key: &ServiceKey) -> Ordering {
        let entry = self.entry(id);
        (&**self.namespace_of(entry), &*entry.name).cmp(&(&*key.namespace, &*key.name))
    }

    /// Orders two Services as their [`ServiceKey`]s order.
    pub(crate) fn cmp_ids(&self, a: ServiceId, b: ServiceId) -> Ordering {
        let (ea, eb) = (self.entry(a), self.entry(b));
        (&**self.namespace_of(ea), &*ea.name).cmp(&(&**self.namespace_of(eb), &*eb.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> ServiceKey {
        ServiceKey::new(["web", "db"][i % 2], &format!("svc-{i}"))
    }

    fn profile() -> Profile {
        Profile {
            created: 0,
            sharing: None,
        }
    }

    /// Adds `key` holding one IPv4 address, as `Allocator::attach` does.
    fn hold(services: &mut Services, key: &ServiceKey) -> ServiceId {
        let id = services.ensure(key, &profile());
        services.entry_mut(id).set(Family::V4, Some(1));
        id
    }

    fn release(services: &mut Services, id: ServiceId) {
        services.entry_mut(id).set(Family::V4, None);
        services.remove_if_empty(id);
    }

    #[test]
    fn an_entry_fits_in_64_bytes() {
        assert!(size_of::<Option<Entry>>() <= 64);
    }

    #[test]
    fn ids_survive_growth_past_a_chunk_and_vacant_ones_are_reused() {
        let mut services = Services::default();
        let count = 2 * CHUNK + 10;
        let ids: Vec<ServiceId> = (0..count).map(|i| hold(&mut services, &key(i))).collect();
        assert_eq!(services.len(), count);
        assert_eq!(services.chunks.len(), 3);
        assert!(services.chunks.iter().all(|c| c.capacity() <= CHUNK));
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(services.id(&key(i)), Some(*id));
            assert_eq!(services.key(*id), key(i));
        }

        release(&mut services, ids[CHUNK + 3]);
        assert_eq!(services.id(&key(CHUNK + 3)), None);
        assert_eq!(services.get(ids[CHUNK + 3]), None);
        let newcomer = ServiceKey::new("web", "newcomer");
        assert_eq!(hold(&mut services, &newcomer), ids[CHUNK + 3]);
        assert_eq!(services.key(ids[CHUNK + 3]), newcomer);
        assert_eq!(services.iter().count(), count);
        assert_eq!(
            services.chunks.len(),
            3,
            "no chunk added while an id was vacant"
        );
    }

    #[test]
    fn an_entry_that_still_holds_an_address_stays() {
        let mut services = Services::default();
        let id = services.ensure(&key(0), &profile());
        services.entry_mut(id).set(Family::V4, Some(1));
        services.entry_mut(id).set(Family::V6, Some(2));
        release(&mut services, id);
        assert_eq!(services.id(&key(0)), Some(id));
        services.entry_mut(id).set(Family::V6, None);
        services.remove_if_empty(id);
        assert_eq!(services.len(), 0);
    }

    #[test]
    fn services_order_by_namespace_then_name() {
        let mut services = Services::default();
        let b = hold(&mut services, &ServiceKey::new("b", "a"));
        let a = hold(&mut services, &ServiceKey::new("a", "z"));
        assert_eq!(services.cmp_ids(a, b), Ordering::Less);
        assert_eq!(
            services.cmp_key(b, &ServiceKey::new("a", "zz")),
            Ordering::Greater
        );
        assert_eq!(
            services.cmp_key(b, &ServiceKey::new("b", "a")),
            Ordering::Equal
        );
    }
}
