//! Metrics of the speaker's layer 2 (`baremetal_ccm_l2_*`): the responders' frames,
//! announcements and conflicts, the addresses this node owns and those held back by conflicts, the host problems found, and
//! the membership's own.

use std::net::IpAddr;

use baremetal_ccm_core::l2::host::Problem;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::responder::Counters;
use super::socket::Protocol;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FrameLabels {
    /// `arp`, `ndp`.
    pub(crate) protocol: String,
    /// `replied`, `replied_in_kernel`, `conflict`, `probing`, or why it was ignored (`not_ours`, `malformed`, ...).
    pub(crate) outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FamilyLabels {
    /// `ipv4`, `ipv6`.
    pub(crate) family: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProblemLabels {
    /// `ipvs_without_strict_arp`, `proxy_arp`, `proxy_ndp`, `no_net_raw`.
    pub(crate) problem: String,
}

impl ProblemLabels {
    pub(crate) fn of(problem: Problem) -> Self {
        ProblemLabels {
            problem: problem.label().to_owned(),
        }
    }
}

/// Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    pub(crate) frames: Family<FrameLabels, Counter>,
    pub(crate) announcements: Family<FamilyLabels, Counter>,
    pub(crate) conflicts: Counter,
    pub(crate) owned: Gauge,
    pub(crate) conflicted: Gauge,
    pub(crate) host_problems: Family<ProblemLabels, Gauge>,
    pub(crate) membership: super::membership::Metrics,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let membership = super::membership::Metrics::new(registry);
        let metrics = Self {
            frames: Family::default(),
            announcements: Family::default(),
            conflicts: Counter::default(),
            owned: Gauge::default(),
            conflicted: Gauge::default(),
            host_problems: Family::default(),
            membership,
        };
        let l2 = registry.sub_registry_with_prefix("l2");
        l2.register(
            "frames",
            "ARP and NDP frames the responders read, by protocol and what was done with them",
            metrics.frames.clone(),
        );
        l2.register(
            "announcements",
            "Gratuitous rounds sent (an ARP request and reply, or an unsolicited NA), by family",
            metrics.announcements.clone(),
        );
        l2.register(
            "conflicts",
            "Frames in which another MAC claimed an address this node owns or probes",
            metrics.conflicts.clone(),
        );
        l2.register(
            "owned_addresses",
            "Addresses this node answers for",
            metrics.owned.clone(),
        );
        l2.register(
            "conflicted_addresses",
            "Addresses no node announces because a speaker found a machine outside the cluster holding them",
            metrics.conflicted.clone(),
        );
        l2.register(
            "host_problems",
            "Host settings that break layer 2 on this node, 1 while present: ipvs_without_strict_arp, proxy_arp, proxy_ndp, no_net_raw",
            metrics.host_problems.clone(),
        );
        metrics
    }
}

impl Counters for Metrics {
    fn frame(&self, protocol: Protocol, outcome: &'static str) {
        self.frames(protocol, outcome, 1);
    }

    fn frames(&self, protocol: Protocol, outcome: &'static str, count: u64) {
        if count == 0 {
            return;
        }
        let labels = FrameLabels {
            protocol: match protocol {
                Protocol::Arp => "arp",
                Protocol::Ndp => "ndp",
            }
            .to_owned(),
            outcome: outcome.to_owned(),
        };
        self.frames.get_or_create(&labels).inc_by(count);
    }

    fn announcement(&self, address: IpAddr) {
        let family = if address.is_ipv4() { "ipv4" } else { "ipv6" };
        let labels = FamilyLabels {
            family: family.to_owned(),
        };
        self.announcements.get_or_create(&labels).inc();
    }
}
