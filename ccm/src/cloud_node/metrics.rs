//! Metrics of the cloud-node and cloud-node-lifecycle controllers
//! (`baremetal_ccm_cloud_node_*`, `baremetal_ccm_node_lifecycle_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    /// A bounded set of error classes.
    pub reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TaintChange {
    /// `added` or `removed`.
    pub change: String,
}

/// Cheap to clone (handles share their values).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    /// Nodes initialized (taint lifted).
    pub initialized: Counter,
    /// Failed initializations, by error class.
    pub initialization_errors: Family<Reason, Counter>,
    /// Seconds from a Node's creation to its initialization.
    pub initialization_delay: Histogram,
    /// `status.addresses` rewrites of initialized nodes (the provider's addresses changed).
    pub address_updates: Counter,
    /// Failed refreshes of initialized nodes, by error class.
    pub refresh_errors: Family<Reason, Counter>,
    /// Shutdown taints added or removed.
    pub shutdown_taints: Family<TaintChange, Counter>,
    /// Nodes deleted because their machine is gone.
    pub deleted: Counter,
    /// Failed lifecycle checks (provider or API), by error class.
    pub lifecycle_errors: Family<Reason, Counter>,
    /// The writers' latency and errors (registered once, shared by every controller).
    pub writes: crate::writer::Metrics,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry, writes: crate::writer::Metrics) -> Self {
        let metrics = Self {
            writes,
            initialized: Counter::default(),
            initialization_errors: Family::default(),
            initialization_delay: Histogram::new(exponential_buckets(0.05, 2.0, 16)),
            address_updates: Counter::default(),
            refresh_errors: Family::default(),
            shutdown_taints: Family::default(),
            deleted: Counter::default(),
            lifecycle_errors: Family::default(),
        };
        let node = registry.sub_registry_with_prefix("cloud_node");
        node.register(
            "initialized_nodes",
            "Nodes initialized",
            metrics.initialized.clone(),
        );
        node.register(
            "initialization_errors",
            "Failed node initializations",
            metrics.initialization_errors.clone(),
        );
        node.register(
            "initialization_delay_seconds",
            "Time from a Node's creation to its initialization",
            metrics.initialization_delay.clone(),
        );
        node.register(
            "address_updates",
            "Address rewrites of initialized nodes",
            metrics.address_updates.clone(),
        );
        node.register(
            "refresh_errors",
            "Failed refreshes of initialized nodes",
            metrics.refresh_errors.clone(),
        );
        let lifecycle = registry.sub_registry_with_prefix("node_lifecycle");
        lifecycle.register(
            "shutdown_taints",
            "Shutdown taints added or removed",
            metrics.shutdown_taints.clone(),
        );
        lifecycle.register(
            "deleted_nodes",
            "Nodes deleted because their machine is gone",
            metrics.deleted.clone(),
        );
        lifecycle.register(
            "errors",
            "Failed lifecycle checks",
            metrics.lifecycle_errors.clone(),
        );
        metrics
    }
}
