//! Which VM a node is: the providerID's VM ID, else the VM named like the node, else the VM
//! whose system UUID the kubelet reported. Pure: works on one fetched pool.

use std::collections::HashMap;

use super::mapping::PROVIDER_ID_PREFIX;
use super::vm::{Vm, VmState};
use crate::provider::{NodeQuery, ProviderError};

/// The VM ID in a `one://<VMID>` providerID; any other providerID is foreign.
pub(crate) fn parse_provider_id(provider_id: &str) -> Result<u32, ProviderError> {
    let foreign = |expected: &str| ProviderError::ForeignProviderId {
        provider_id: provider_id.to_owned(),
        expected: expected.to_owned(),
    };
    let Some(id) = provider_id.strip_prefix(PROVIDER_ID_PREFIX) else {
        return Err(foreign("one://<VMID>"));
    };
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(foreign("one://<VMID> with a numeric VM ID"));
    }
    id.parse()
        .map_err(|e: std::num::ParseIntError| foreign(&format!("one://<VMID> with a VM ID ({e})")))
}

/// How a node without providerID was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum By {
    Name,
    /// Several VMs carry the node's name; the system UUID picked one of them.
    NameAndUuid,
    Uuid,
}

/// The outcome of matching a node against a pool.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Match<'a> {
    One(&'a Vm, By),
    /// Several VMs match and nothing tells them apart.
    Several(Vec<&'a Vm>),
    None,
}

/// One fetched VM pool, indexed for lookups. DONE VMs (which OpenNebula leaves out of the
/// pool unless asked) are never matched by name or UUID.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    vms: Vec<Vm>,
    by_id: HashMap<u32, usize>,
    by_name: HashMap<String, Vec<usize>>,
    by_uuid: HashMap<String, Vec<usize>>,
}

impl Pool {
    pub(crate) fn new(vms: Vec<Vm>) -> Pool {
        let mut pool = Pool {
            vms,
            ..Pool::default()
        };
        for (index, vm) in pool.vms.iter().enumerate() {
            pool.by_id.insert(vm.id, index);
            if vm.state == VmState::Done {
                continue;
            }
            pool.by_name.entry(vm.name.clone()).or_default().push(index);
            if let Some(uuid) = &vm.uuid {
                pool.by_uuid
                    .entry(uuid.to_ascii_lowercase())
                    .or_default()
                    .push(index);
            }
        }
        pool
    }

    pub(crate) fn len(&self) -> usize {
        self.vms.len()
    }

    pub(crate) fn by_id(&self, id: u32) -> Option<&Vm> {
        self.by_id.get(&id).map(|&i| &self.vms[i])
    }

    /// The VM of a node that has no providerID: by name first; several VMs of that name are
    /// told apart by the system UUID if exactly one carries it; no VM of that name falls
    /// back to the system UUID (compared case-insensitively).
    pub(crate) fn find(&self, node: &NodeQuery) -> Match<'_> {
        let uuid = node
            .system_uuid
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_ascii_lowercase);
        let with_uuid =
            |vm: &Vm| uuid.is_some() && vm.uuid.as_ref().map(|u| u.to_ascii_lowercase()) == uuid;
        let named = self.indexed(self.by_name.get(&node.name));
        match named.as_slice() {
            [vm] => return Match::One(vm, By::Name),
            [] => {}
            several => {
                let mut by_uuid = several.iter().filter(|vm| with_uuid(vm));
                return match (by_uuid.next(), by_uuid.next()) {
                    (Some(vm), None) => Match::One(vm, By::NameAndUuid),
                    _ => Match::Several(named),
                };
            }
        }
        let Some(uuid) = &uuid else {
            return Match::None;
        };
        let by_uuid = self.indexed(self.by_uuid.get(uuid));
        match by_uuid.as_slice() {
            [] => Match::None,
            [vm] => Match::One(vm, By::Uuid),
            _ => Match::Several(by_uuid),
        }
    }

    fn indexed(&self, indices: Option<&Vec<usize>>) -> Vec<&Vm> {
        indices
            .into_iter()
            .flatten()
            .map(|&i| &self.vms[i])
            .collect()
    }
}

/// `VM 3 (worker-1), VM 7 (worker-1)`, for [`ProviderError::Ambiguous`].
pub(crate) fn describe(vms: &[&Vm]) -> String {
    vms.iter()
        .map(|vm| format!("VM {} ({})", vm.id, vm.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
#[path = "tests/lookup.rs"]
mod tests;
