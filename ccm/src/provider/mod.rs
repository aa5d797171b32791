//! Instance providers: where the cloud controllers learn a node's identity, addresses,
//! topology and whether its machine still exists.
//!
//! A provider answers two questions about a node, both keyed by what the Node object says of
//! itself ([`NodeQuery`]): its metadata (for initialization and address refresh) and its
//! machine's state (for the lifecycle controller). Providers never see a Kubernetes client
//! during those calls; the controllers do all the writing.

use std::future::Future;

pub(crate) mod opennebula;
pub(crate) mod static_file;

pub(crate) use crate::instance::{
    AddressType, InstanceMetadata, InstanceState, NodeAddress, NodeQuery,
};

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
