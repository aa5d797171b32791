//! Metrics of the speakers' membership (`baremetal_ccm_l2_*`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::view::View;
use super::wire::Rejected;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct Reason {
    /// `short`, `bad_tag`, `malformed`.
    pub(crate) reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct State {
    /// `alive`, `suspect`, `down`.
    pub(crate) state: String,
}

/// Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    pub(crate) rejected: Family<Reason, Counter>,
    pub(crate) members: Family<State, Gauge>,
    pub(crate) probe_failures: Counter,
    pub(crate) detection_seconds: Histogram,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            rejected: Family::default(),
            members: Family::default(),
            probe_failures: Counter::default(),
            // 50 ms to about 4.3 s.
            detection_seconds: Histogram::new(exponential_buckets(0.05, 1.5, 12)),
        };
        let l2 = registry.sub_registry_with_prefix("l2");
        l2.register(
            "gossip_rejected",
            "Gossip datagrams dropped, by reason",
            metrics.rejected.clone(),
        );
        l2.register(
            "members",
            "Members of this membership view (the speakers and the controller's observer), itself included, by state",
            metrics.members.clone(),
        );
        l2.register(
            "probe_failures",
            "Fast-path probes of a watched node that went unanswered",
            metrics.probe_failures.clone(),
        );
        l2.register(
            "failure_detection_seconds",
            "Time from a watched node's first unanswered probe to suspecting it",
            metrics.detection_seconds.clone(),
        );
        // All three from the start, at zero.
        for state in ["alive", "suspect", "down"] {
            let labels = State {
                state: state.to_owned(),
            };
            metrics.members.get_or_create(&labels).set(0);
        }
        metrics
    }

    pub(super) fn rejected(&self, why: Rejected) {
        let labels = Reason {
            reason: why.label().to_owned(),
        };
        self.rejected.get_or_create(&labels).inc();
    }

    pub(super) fn detected(&self, detection: Duration) {
        self.detection_seconds.observe(detection.as_secs_f64());
    }

    pub(super) fn view(&self, view: &View) {
        let (mut alive, mut suspect, mut down) = (0_i64, 0_i64, 0_i64);
        for peer in view.members.values() {
            match (peer.alive, peer.suspect) {
                (false, _) => down += 1,
                (true, true) => suspect += 1,
                (true, false) => alive += 1,
            }
        }
        for (state, count) in [("alive", alive), ("suspect", suspect), ("down", down)] {
            let labels = State {
                state: state.to_owned(),
            };
            self.members.get_or_create(&labels).set(count);
        }
    }
}
