//! Metrics of the BGP announcer (`baremetal_ccm_bgp_*`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use baremetal_ccm_core::announce::gobgp::PeerStatus;

use super::announcer::Step;
use super::plan::Plan;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Outcome {
    /// `converged`, `restarted`, `error`.
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct State {
    /// A BGP session state.
    pub state: String,
}

/// Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    pub converges: Family<Outcome, Counter>,
    pub plans: Counter,
    pub converge_seconds: Histogram,
    pub paths: Gauge,
    pub peers: Gauge,
    pub sessions: Family<State, Gauge>,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            converges: Family::default(),
            plans: Counter::default(),
            converge_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            paths: Gauge::default(),
            peers: Gauge::default(),
            sessions: Family::default(),
        };
        let bgp = registry.sub_registry_with_prefix("bgp");
        bgp.register(
            "converges",
            "Converges of the BGP daemon that changed something, or failed",
            metrics.converges.clone(),
        );
        bgp.register(
            "plans",
            "Plans of the desired BGP state: one per change of what planning reads, not per tick",
            metrics.plans.clone(),
        );
        bgp.register(
            "converge_duration_seconds",
            "Time to bring the BGP daemon to the desired state",
            metrics.converge_seconds.clone(),
        );
        bgp.register(
            "paths",
            "Paths this speaker announces",
            metrics.paths.clone(),
        );
        bgp.register(
            "peers",
            "Peers this speaker is configured with",
            metrics.peers.clone(),
        );
        bgp.register(
            "sessions",
            "BGP sessions by state",
            metrics.sessions.clone(),
        );
        metrics
    }

    pub(super) fn record<E>(&self, plan: &Plan, outcome: &Result<Step, E>, took: Duration) {
        self.paths
            .set(i64::try_from(plan.daemon.paths.len()).unwrap_or(i64::MAX));
        self.peers
            .set(i64::try_from(plan.daemon.peers.len()).unwrap_or(i64::MAX));
        let label = match outcome {
            Ok(Step::Converged {
                restarted: true, ..
            }) => "restarted",
            Ok(Step::Converged { changed: true, .. }) => "converged",
            Ok(_) => return,
            Err(_) => "error",
        };
        self.converge_seconds.observe(took.as_secs_f64());
        let labels = Outcome {
            outcome: label.to_owned(),
        };
        self.converges.get_or_create(&labels).inc();
    }

    pub(super) fn sessions(&self, sessions: &[PeerStatus]) {
        self.sessions.clear();
        for session in sessions {
            let labels = State {
                state: session.state_name().to_owned(),
            };
            self.sessions.get_or_create(&labels).inc();
        }
    }
}
