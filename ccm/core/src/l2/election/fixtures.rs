//! Builders for the election's tests: speakers with interfaces, views of them, addresses.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Address, Interface, Liveness, LocalEndpoints, Member, NodeFacts, View};
use crate::contract::Exclusion;
use crate::crd::ippool::L2Announcement;
use crate::selector::{Selector, SelectorSpec};

/// An alive, ready, settled speaker without interfaces.
pub(crate) fn speaker() -> Member {
    Member {
        liveness: Liveness::Alive,
        ready: true,
        settling: false,
        interfaces: Vec::new(),
        conflicts: BTreeSet::new(),
    }
}

/// A MAC derived from the interface name, so that two interfaces rarely share one.
fn mac_of(name: &str) -> [u8; 6] {
    let mut mac = [0x02, 0, 0, 0, 0, 0];
    for (i, b) in name.bytes().enumerate() {
        mac[1 + i % 5] ^= b;
    }
    mac
}

impl Member {
    /// Adds the interface `name`, up, with `addresses` (CIDRs with the host part, as
    /// `ip address` shows them: `192.0.2.11/24`).
    pub(super) fn on(mut self, name: &str, addresses: &[&str]) -> Member {
        self.interfaces.push(Interface {
            name: name.to_owned(),
            up: true,
            mac: mac_of(name),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        });
        self
    }

    pub(super) fn link_down(mut self, name: &str) -> Member {
        for interface in self.interfaces.iter_mut().filter(|i| i.name == name) {
            interface.up = false;
        }
        self
    }

    pub(super) fn settling(mut self) -> Member {
        self.settling = true;
        self
    }

    pub(super) fn not_ready(mut self) -> Member {
        self.ready = false;
        self
    }

    /// Reports `address` held by a machine outside the cluster.
    pub(super) fn conflict(mut self, address: &str) -> Member {
        self.conflicts.insert(ip(address));
        self
    }

    pub(super) fn liveness(mut self, liveness: Liveness) -> Member {
        self.liveness = liveness;
        self
    }
}

impl View {
    /// Adds a speaker and its Node (no labels, not excluded).
    pub(super) fn node(mut self, name: &str, member: Member) -> View {
        self.members.insert(name.to_owned(), member);
        self.nodes.insert(name.to_owned(), NodeFacts::default());
        self
    }

    /// Adds a speaker whose Node the API does not know (yet).
    pub(super) fn member_only(mut self, name: &str, member: Member) -> View {
        self.members.insert(name.to_owned(), member);
        self
    }

    pub(super) fn label(mut self, node: &str, key: &str, value: &str) -> View {
        let facts = self.nodes.entry(node.to_owned()).or_default();
        facts.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    pub(super) fn exclude(mut self, node: &str, exclusion: Exclusion) -> View {
        self.nodes.entry(node.to_owned()).or_default().excluded = Some(exclusion);
        self
    }

    /// Replaces the speaker `name` (after an event), keeping its Node.
    pub(super) fn with(mut self, name: &str, member: Member) -> View {
        self.members.insert(name.to_owned(), member);
        self
    }

    pub(super) fn without(mut self, name: &str) -> View {
        self.members.remove(name);
        self
    }
}

/// Three settled speakers `a`, `b`, `c` with `eth0` on 192.0.2.0/24 and 2001:db8::/64.
pub(super) fn three() -> View {
    ["a", "b", "c"]
        .into_iter()
        .enumerate()
        .fold(View::default(), |view, (i, name)| {
            let v4 = format!("192.0.2.{}/24", 11 + i);
            let v6 = format!("2001:db8::{}/64", 11 + i);
            view.node(name, speaker().on("eth0", &[&v4, &v6]))
        })
}

/// The options of a pool without `announce.l2`.
pub(super) fn defaults() -> L2Announcement {
    L2Announcement::default()
}

/// Options announcing on the interfaces matching `patterns`.
pub(super) fn on_interfaces(patterns: &[&str]) -> L2Announcement {
    L2Announcement {
        interfaces: (patterns.iter())
            .map(|p| super::InterfacePattern::new(p))
            .collect(),
        ..L2Announcement::default()
    }
}

/// Options for the nodes labelled `key=value`.
pub(super) fn selecting(key: &str, value: &str) -> L2Announcement {
    let spec = SelectorSpec {
        match_labels: [(key.to_owned(), value.to_owned())].into(),
        ..SelectorSpec::default()
    };
    L2Announcement {
        node_selector: Some(Selector::new(&spec).unwrap()),
        ..L2Announcement::default()
    }
}

pub(super) fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// `address` of a pool with `options`, traffic policy Cluster.
pub(super) fn at<'a>(address: &str, options: &'a L2Announcement) -> Address<'a> {
    Address {
        address: ip(address),
        options,
        local: None,
    }
}

/// Local endpoints: ready on `ready`, serving and terminating on `terminating`.
pub(super) fn endpoints(ready: &[&str], terminating: &[&str]) -> LocalEndpoints {
    let set = |nodes: &[&str]| {
        nodes
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    LocalEndpoints {
        ready: set(ready),
        serving_terminating: set(terminating),
    }
}
