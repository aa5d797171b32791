//! What the cloud controllers ask a provider about a node and what it answers, as plain data:
//! the query a Node makes of itself, its machine's metadata and state. The providers (which
//! do the talking) live in `baremetal-ccm`; the planning here only reads these.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// What a Node says about itself, as read by the controllers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeQuery {
    /// `metadata.name`.
    pub name: String,
    /// `spec.providerID`, when set (by the kubelet's `--provider-id` or by us).
    pub provider_id: Option<String>,
    /// `status.nodeInfo.systemUUID` as the kubelet reported it (SMBIOS product UUID).
    pub system_uuid: Option<String>,
    /// The IPs of the `alpha.kubernetes.io/provided-node-ip` annotation (kubelet `--node-ip`),
    /// already parsed; empty without the annotation.
    pub node_ips: Vec<IpAddr>,
}

/// The type of a node address, with the Kubernetes spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddressType {
    InternalIP,
    ExternalIP,
    Hostname,
    InternalDNS,
    ExternalDNS,
}

impl AddressType {
    pub const ALL: [AddressType; 5] = [
        AddressType::InternalIP,
        AddressType::ExternalIP,
        AddressType::Hostname,
        AddressType::InternalDNS,
        AddressType::ExternalDNS,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::InternalIP => "InternalIP",
            AddressType::ExternalIP => "ExternalIP",
            AddressType::Hostname => "Hostname",
            AddressType::InternalDNS => "InternalDNS",
            AddressType::ExternalDNS => "ExternalDNS",
        }
    }

    /// Parses the Kubernetes spelling; `None` for anything else.
    pub fn parse(text: &str) -> Option<AddressType> {
        AddressType::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for AddressType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a Node's `status.addresses`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeAddress {
    pub kind: AddressType,
    pub address: String,
}

impl NodeAddress {
    pub fn new(kind: AddressType, address: impl Into<String>) -> Self {
        Self {
            kind,
            address: address.into(),
        }
    }
}

/// What a provider knows about a node's machine.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InstanceMetadata {
    /// The providerID the node should carry (`baremetal://<node>`, `one://<VMID>`).
    pub provider_id: String,
    /// `node.kubernetes.io/instance-type`; not set when `None`.
    pub instance_type: Option<String>,
    /// `topology.kubernetes.io/zone`; not set when `None`.
    pub zone: Option<String>,
    /// `topology.kubernetes.io/region`; not set when `None`.
    pub region: Option<String>,
    /// The machine's addresses, in the provider's order of preference.
    pub addresses: Vec<NodeAddress>,
    /// Further labels the provider puts on the node (none today; kept for providers that map
    /// more topology).
    pub labels: BTreeMap<String, String>,
}

/// The state of a node's machine, as the lifecycle controller needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// The machine exists and is not shut down.
    Running,
    /// The machine exists but is powered off (or undeployed): the node gets the shutdown taint.
    ShutDown,
    /// The provider is certain the machine no longer exists: the Node may be deleted.
    /// A provider returns this only on a definite answer, never on an error.
    Gone,
}
