//! From a VM to what Kubernetes sees: providerID, node addresses from the NICs, topology labels
//! from literal values or VM attributes, and the machine state.

use std::net::IpAddr;

use super::config::{Addresses, AttributePath, Config, LabelSource, check_label_value};
use super::vm::{Nic, Vm, VmState};
use crate::provider::{AddressType, InstanceMetadata, InstanceState, NodeAddress};

/// The scheme of this provider's providerIDs (`one://<VMID>`, as Cluster API's OpenNebula
/// provider writes them).
pub(crate) const PROVIDER_ID_PREFIX: &str = "one://";

/// The providerID of VM `id`.
pub(crate) fn provider_id(id: u32) -> String {
    format!("{PROVIDER_ID_PREFIX}{id}")
}

/// How VMs map to node metadata, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub zone: Option<LabelSource>,
    pub region: Option<LabelSource>,
    pub instance_type: Option<LabelSource>,
    pub addresses: Addresses,
}

/// Why a VM's data cannot become node metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("VM {vm} {nic}: {field} holds {value:?}, not an IP address")]
    Address {
        vm: u32,
        nic: String,
        field: &'static str,
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("VM {vm}: {label} from {path}: {reason}")]
    Label {
        vm: u32,
        label: &'static str,
        path: AttributePath,
        reason: String,
    },
}

impl Mapping {
    pub(crate) fn from_config(config: &Config) -> Mapping {
        Mapping {
            zone: config.zone.clone(),
            region: config.region.clone(),
            instance_type: config.instance_type.clone(),
            addresses: config.addresses.clone(),
        }
    }

    /// The VM attributes the labels read; the VM parser extracts exactly these.
    pub(crate) fn attribute_paths(&self) -> Vec<AttributePath> {
        let mut paths: Vec<AttributePath> = [&self.zone, &self.region, &self.instance_type]
            .into_iter()
            .filter_map(|source| match source {
                Some(LabelSource::Attribute(path)) => Some(path.clone()),
                _ => None,
            })
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// The node metadata of `vm`.
    pub(crate) fn metadata(&self, vm: &Vm) -> Result<InstanceMetadata, MappingError> {
        Ok(InstanceMetadata {
            provider_id: provider_id(vm.id),
            instance_type: label(vm, "instanceType", self.instance_type.as_ref())?,
            zone: label(vm, "zone", self.zone.as_ref())?,
            region: label(vm, "region", self.region.as_ref())?,
            addresses: self.addresses(vm)?,
            labels: Default::default(),
        })
    }

    /// The node addresses of `vm`: every IPv4 address first, then every IPv6 address, each in
    /// NIC order (within a NIC: `IP`, `IP6_GLOBAL`, `IP6`, `IP6_ULA`), without duplicates and
    /// without link-local addresses.
    pub(crate) fn addresses(&self, vm: &Vm) -> Result<Vec<NodeAddress>, MappingError> {
        let config = &self.addresses;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let wanted = vm
            .nics
            .iter()
            .filter(|nic| config.aliases || !nic.alias)
            .filter(|nic| !on_any(nic, &config.ignored_networks));
        for nic in wanted {
            let kind = if on_any(nic, &config.external_networks) {
                AddressType::ExternalIP
            } else {
                AddressType::InternalIP
            };
            let fields = [
                ("IP", &nic.ip),
                ("IP6_GLOBAL", &nic.ip6_global),
                ("IP6", &nic.ip6),
                ("IP6_ULA", &nic.ip6_ula),
            ];
            for (field, value) in fields {
                let Some(text) = value else { continue };
                let ip: IpAddr = text.parse().map_err(|source| MappingError::Address {
                    vm: vm.id,
                    nic: nic_label(nic),
                    field,
                    value: text.clone(),
                    source,
                })?;
                if is_link_local(ip) || (ip.is_ipv6() && !config.ipv6) {
                    continue;
                }
                let address = NodeAddress::new(kind, ip.to_string());
                let family = if ip.is_ipv4() { &mut v4 } else { &mut v6 };
                if !family.contains(&address) {
                    family.push(address);
                }
            }
        }
        v4.append(&mut v6);
        Ok(v4)
    }
}

/// The machine state of `vm`: POWEROFF and UNDEPLOYED are shut down, DONE is gone, every other
/// state (pending, running, stopped, suspended, failing…) is a machine that still exists.
pub(crate) fn instance_state(vm: &Vm) -> InstanceState {
    match vm.state {
        VmState::Done => InstanceState::Gone,
        VmState::Poweroff | VmState::Undeployed => InstanceState::ShutDown,
        _ => InstanceState::Running,
    }
}

fn label(
    vm: &Vm,
    name: &'static str,
    source: Option<&LabelSource>,
) -> Result<Option<String>, MappingError> {
    match source {
        None => Ok(None),
        // An empty value is a valid label value that sets no label (as with the static
        // provider).
        Some(LabelSource::Value(value)) => Ok((!value.is_empty()).then(|| value.clone())),
        Some(LabelSource::Attribute(path)) => {
            let Some(value) = vm.attributes.get(path) else {
                return Ok(None);
            };
            check_label_value(value).map_err(|reason| MappingError::Label {
                vm: vm.id,
                label: name,
                path: path.clone(),
                reason,
            })?;
            Ok((!value.is_empty()).then(|| value.clone()))
        }
    }
}

/// Whether the NIC's network is one of `networks` (by name or by numeric ID).
fn on_any(nic: &Nic, networks: &[String]) -> bool {
    networks.iter().any(|n| {
        nic.network.as_deref() == Some(n.as_str()) || nic.network_id.as_deref() == Some(n.as_str())
    })
}

fn nic_label(nic: &Nic) -> String {
    let kind = if nic.alias { "NIC_ALIAS" } else { "NIC" };
    match &nic.nic_id {
        Some(id) => format!("{kind} {id}"),
        None => kind.to_owned(),
    }
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
#[path = "tests/mapping.rs"]
mod tests;
