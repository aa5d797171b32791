//! Metrics of the service-lb controller (`baremetal_ccm_service_lb_*`, `baremetal_ccm_pool_*`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PoolFamily {
    pub pool: String,
    pub family: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    /// A bounded set: the machine reasons of pending decisions and error classes.
    pub reason: String,
}

/// The controller's metrics; cheap to clone (handles share their values).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    /// Addresses held by Services, per pool and family.
    pub allocated: Family<PoolFamily, Gauge>,
    /// Addresses a pool has in total, per family (saturating at i64::MAX for huge IPv6 pools).
    pub pool_size: Family<PoolFamily, Gauge>,
    /// Services holding an address that is outside every pool after a pool edit.
    pub outside_pool: Gauge,
    /// Services kept, as found at takeover, on an address another Service holds too.
    pub conflicting: Gauge,
    /// Services we stopped writing because another writer keeps replacing their addresses.
    pub contested: Gauge,
    /// Services waiting for an address, by reason.
    pub pending: Family<Reason, Gauge>,
    /// Reconcile failures (API errors), by error class.
    pub sync_errors: Family<Reason, Counter>,
    /// Reconcile duration in seconds.
    pub sync_seconds: Histogram,
    /// Pool status writes that failed.
    pub pool_status_errors: Counter,
    /// The writers' latency and errors (registered once, shared by every controller).
    pub writes: crate::writer::Metrics,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry, writes: crate::writer::Metrics) -> Self {
        let metrics = Self {
            writes,
            allocated: Family::default(),
            pool_size: Family::default(),
            outside_pool: Gauge::default(),
            conflicting: Gauge::default(),
            contested: Gauge::default(),
            pending: Family::default(),
            sync_errors: Family::default(),
            sync_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            pool_status_errors: Counter::default(),
        };
        let sub = registry.sub_registry_with_prefix("service_lb");
        sub.register(
            "allocated_addresses",
            "Addresses held by Services",
            metrics.allocated.clone(),
        );
        sub.register(
            "pool_addresses",
            "Addresses in each pool",
            metrics.pool_size.clone(),
        );
        sub.register(
            "outside_pool_services",
            "Services holding an address outside every pool",
            metrics.outside_pool.clone(),
        );
        sub.register(
            "conflicting_services",
            "Services kept on an address that another Service they may not share it with holds",
            metrics.conflicting.clone(),
        );
        sub.register(
            "contested_services",
            "Services not written because another writer keeps replacing their addresses",
            metrics.contested.clone(),
        );
        sub.register(
            "pending_services",
            "Services waiting for an address",
            metrics.pending.clone(),
        );
        sub.register(
            "sync_errors",
            "Failed Service reconciles",
            metrics.sync_errors.clone(),
        );
        sub.register(
            "sync_duration_seconds",
            "Service reconcile duration",
            metrics.sync_seconds.clone(),
        );
        sub.register(
            "pool_status_errors",
            "Failed IPPool status writes",
            metrics.pool_status_errors.clone(),
        );
        metrics
    }
}
