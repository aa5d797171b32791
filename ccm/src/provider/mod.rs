//! Instance providers: where the cloud controllers learn a node's identity, addresses,
//! topology and whether its machine still exists.
//!
//! A provider answers two questions about a node, both keyed by what the Node object says of
//! itself ([`NodeQuery`]): its metadata (for initialization and address refresh) and its
//! machine's state (for the lifecycle controller). Providers never see a Kubernetes client
//! during those calls; the controllers do all the writing.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;

pub mod opennebula;
pub mod static_file;

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

type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a provider could not answer. The message is what an operator reads in the node's
/// Events; the cause (provider-specific) is kept as the source.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The node's providerID belongs to another provider.
    #[error("providerID {provider_id:?} is not of this provider (expected {expected})")]
    ForeignProviderId {
        provider_id: String,
        expected: String,
    },
    /// No machine matches the node (by providerID, name or system UUID).
    #[error("no instance matches node {node}: {detail}")]
    NotFound { node: String, detail: String },
    /// Several machines match the node and none is preferred.
    #[error("node {node} matches several instances ({candidates}); set its providerID to pick one")]
    Ambiguous { node: String, candidates: String },
    /// The provider refused our credentials.
    #[error("the {provider} API refused the credentials")]
    Unauthorized {
        provider: &'static str,
        #[source]
        source: Cause,
    },
    /// The provider could not be reached or did not answer in time.
    #[error("the {provider} API is unavailable")]
    Unavailable {
        provider: &'static str,
        #[source]
        source: Cause,
    },
    /// The provider answered with something we cannot read.
    #[error("the {provider} API answered with something unreadable")]
    Malformed {
        provider: &'static str,
        #[source]
        source: Cause,
    },
}

impl ProviderError {
    /// Whether retrying soon may help (the provider or network was at fault), as opposed to
    /// an answer that only a change of configuration or of the node fixes.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ProviderError::Unavailable { .. } | ProviderError::Malformed { .. }
        )
    }

    /// Bounded label for metrics.
    pub fn class(&self) -> &'static str {
        match self {
            ProviderError::ForeignProviderId { .. } => "foreign_provider_id",
            ProviderError::NotFound { .. } => "not_found",
            ProviderError::Ambiguous { .. } => "ambiguous",
            ProviderError::Unauthorized { .. } => "unauthorized",
            ProviderError::Unavailable { .. } => "unavailable",
            ProviderError::Malformed { .. } => "malformed",
        }
    }
}

/// The source of node metadata. Implementations are cheap to share (`Arc`) and answer
/// concurrently; they cache and rate-limit their backend themselves.
pub trait InstanceProvider: Send + Sync + 'static {
    /// Short name for logs and metric labels (`static`, `opennebula`).
    fn name(&self) -> &'static str;

    /// The metadata of the node's machine.
    fn metadata(
        &self,
        node: &NodeQuery,
    ) -> impl Future<Output = Result<InstanceMetadata, ProviderError>> + Send;

    /// The state of the node's machine. [`InstanceState::Gone`] only on a definite answer.
    fn state(
        &self,
        node: &NodeQuery,
    ) -> impl Future<Output = Result<InstanceState, ProviderError>> + Send;
}
