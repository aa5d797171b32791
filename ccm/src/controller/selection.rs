//! `--controllers`: the controllers this program knows, as a type, and the upstream selection
//! syntax (`*` for all, `name` adds, `-name` removes).

use std::collections::BTreeSet;
use std::fmt;

/// A controller the `controller` subcommand can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Controller {
    /// Central BGP placement; runs on every replica, leader or not.
    BgpAnnouncer,
    CloudNode,
    CloudNodeLifecycle,
    /// Layer 2's Service condition and Events, as an observer of the speakers' membership.
    L2Status,
    ServiceLb,
}

impl Controller {
    pub(crate) const ALL: [Controller; 5] = [
        Controller::BgpAnnouncer,
        Controller::CloudNode,
        Controller::CloudNodeLifecycle,
        Controller::L2Status,
        Controller::ServiceLb,
    ];

    /// The name `--controllers` uses (upstream's where upstream has one).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Controller::BgpAnnouncer => "bgp-announcer",
            Controller::CloudNode => "cloud-node",
            Controller::CloudNodeLifecycle => "cloud-node-lifecycle",
            Controller::L2Status => "l2-status",
            Controller::ServiceLb => "service-lb",
        }
    }

    fn named(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether it writes shared cluster state, and so runs on the lease holder only.
    pub(crate) fn needs_lease(self) -> bool {
        match self {
            Controller::BgpAnnouncer => false,
            Controller::CloudNode
            | Controller::CloudNodeLifecycle
            | Controller::L2Status
            | Controller::ServiceLb => true,
        }
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SelectionError {
    #[error("unknown controller {given:?} in --controllers (known: {known})")]
    Unknown { given: String, known: String },
}

/// Resolves `--controllers` the upstream way: `*` for all, `name` adds, `-name` removes.
pub(crate) fn select(items: &[String]) -> Result<BTreeSet<Controller>, SelectionError> {
    let mut selected = BTreeSet::new();
    for item in items.iter().map(|i| i.trim()).filter(|i| !i.is_empty()) {
        if item == "*" {
            selected.extend(Controller::ALL);
            continue;
        }
        let (remove, name) = item.strip_prefix('-').map_or((false, item), |n| (true, n));
        let controller = Controller::named(name).ok_or_else(|| SelectionError::Unknown {
            given: item.to_owned(),
            known: Controller::ALL.map(Controller::name).join(", "),
        })?;
        if remove {
            selected.remove(&controller);
        } else {
            selected.insert(controller);
        }
    }
    Ok(selected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(items: &[&str]) -> Result<Vec<&'static str>, SelectionError> {
        let items: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
        select(&items).map(|s| s.into_iter().map(Controller::name).collect())
    }

    #[test]
    fn star_selects_all_and_minus_removes() {
        assert_eq!(
            sel(&["*"]).unwrap(),
            [
                "bgp-announcer",
                "cloud-node",
                "cloud-node-lifecycle",
                "l2-status",
                "service-lb"
            ]
        );
        assert_eq!(
            sel(&["*", "-cloud-node-lifecycle", "-bgp-announcer"]).unwrap(),
            ["cloud-node", "l2-status", "service-lb"]
        );
        assert_eq!(sel(&["service-lb"]).unwrap(), ["service-lb"]);
    }

    #[test]
    fn unknown_names_are_rejected_with_the_known_ones() {
        let known =
            "bgp-announcer, cloud-node, cloud-node-lifecycle, l2-status, service-lb".to_owned();
        assert_eq!(
            sel(&["route"]),
            Err(SelectionError::Unknown {
                given: "route".into(),
                known: known.clone()
            })
        );
        assert_eq!(
            sel(&["*", "-routes"]),
            Err(SelectionError::Unknown {
                given: "-routes".into(),
                known
            })
        );
    }

    #[test]
    fn only_the_announcer_runs_without_the_lease() {
        let without: Vec<_> = (Controller::ALL.into_iter())
            .filter(|c| !c.needs_lease())
            .collect();
        assert_eq!(without, [Controller::BgpAnnouncer]);
    }
}
