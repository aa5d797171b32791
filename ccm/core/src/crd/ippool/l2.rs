//! The `announce.l2` options of an `IPPool` (design 0003): their schema, their defaults, and
//! their parsing into what the layer-2 speaker uses, with errors naming the field.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Serialize};

use crate::duration;
use crate::l2::election::InterfacePattern;
use crate::selector::Selector;

/// Interface names and glob patterns: the characters of usual Linux names, plus `*` and `?`.
const INTERFACE_PATTERN: &str = "^[A-Za-z0-9_.*?-]+$";
const MAX_INTERFACES: usize = 16;
const MAX_INTERFACE_LEN: usize = 64;
const MAX_COUNT: u32 = 20;

/// A duration's bounds, with their spelling for messages.
struct Bounds {
    min: (Duration, &'static str),
    max: (Duration, &'static str),
}

const INTERVAL: Bounds = Bounds {
    min: (Duration::from_millis(100), "100ms"),
    max: (Duration::from_secs(10), "10s"),
};
const REFRESH: Bounds = Bounds {
    min: (Duration::from_secs(1), "1s"),
    max: (Duration::from_secs(3600), "1h"),
};

/// How a layer-2 pool's addresses are announced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2Announce {
    /// Interfaces to announce on, by name or glob pattern (`*`, `?`): `eth1`, `vlan*`. When
    /// empty, every interface that is up and has an address whose subnet holds the Service
    /// address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(length(min = 1, max = 64), pattern(INTERFACE_PATTERN))
    )]
    pub interfaces: Vec<String>,
    /// The nodes (by label) that may announce the pool's addresses; all nodes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// The gratuitous ARP and unsolicited Neighbor Advertisement rounds.
    #[serde(default)]
    pub announcements: L2Announcements,
}

/// Gratuitous announcements: a burst when a node takes an address, then a refresh.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2Announcements {
    /// Rounds sent when a node takes an address.
    #[serde(default = "default_count")]
    #[schemars(range(min = 1, max = 20))]
    pub count: u32,
    /// Time between those rounds, 100ms to 10s.
    #[serde(default = "default_interval")]
    #[schemars(length(max = 32), pattern(duration::PATTERN))]
    pub interval: String,
    /// One round every this long (±10 %) while the node holds the address; `0s` turns it
    /// off, otherwise 1s to 1h.
    #[serde(default = "default_refresh")]
    #[schemars(length(max = 32), pattern(duration::PATTERN))]
    pub refresh: String,
}

/// 5 rounds 1.1 s apart: just above Linux's 1 s ARP `locktime`, so that kernels older than
/// 2017, which ignore a second update within it, take one of them.
fn default_count() -> u32 {
    5
}

fn default_interval() -> String {
    "1.1s".to_owned()
}

/// Below the 300 s many switches age their tables after.
fn default_refresh() -> String {
    "60s".to_owned()
}

impl Default for L2Announcements {
    fn default() -> Self {
        L2Announcements {
            count: default_count(),
            interval: default_interval(),
            refresh: default_refresh(),
        }
    }
}

/// A pool's layer-2 announcement options, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct L2Announcement {
    /// Where to announce; empty: on the interfaces whose subnet holds the address.
    pub interfaces: Vec<InterfacePattern>,
    /// Which nodes may own the pool's addresses; all when `None`.
    pub node_selector: Option<Selector>,
    /// Gratuitous rounds when a node takes an address.
    pub count: u32,
    /// Between those rounds.
    pub interval: Duration,
    /// The period of the refresh round; `None` when off.
    pub refresh: Option<Duration>,
}

impl Default for L2Announcement {
    /// What a `mode: l2` pool without `announce.l2` gets.
    fn default() -> Self {
        L2Announcement {
            interfaces: Vec::new(),
            node_selector: None,
            count: default_count(),
            interval: Duration::from_millis(1100),
            refresh: Some(Duration::from_secs(60)),
        }
    }
}

impl L2Announce {
    /// The options, checked beyond what the schema can check (and again where it can: a pool
    /// may have been stored before the schema said so).
    pub fn parse(&self) -> Result<L2Announcement, String> {
        if self.interfaces.len() > MAX_INTERFACES {
            return Err(format!(
                "announce.l2.interfaces: {} entries, at most {MAX_INTERFACES}",
                self.interfaces.len()
            ));
        }
        let interfaces = (self.interfaces.iter())
            .map(|name| interface(name))
            .collect::<Result<_, _>>()?;
        let node_selector = match &self.node_selector {
            Some(selector) => Some(
                Selector::new(&crate::crd::selector_spec(selector))
                    .map_err(|errors| format!("announce.l2.nodeSelector: {}", errors[0]))?,
            ),
            None => None,
        };
        let announcements = &self.announcements;
        let count = announcements.count;
        if !(1..=MAX_COUNT).contains(&count) {
            return Err(format!(
                "announce.l2.announcements.count: {count} is outside 1 to {MAX_COUNT}"
            ));
        }
        let interval = bounded("interval", &announcements.interval, &INTERVAL)?;
        let refresh = match duration::parse(&announcements.refresh) {
            Ok(Duration::ZERO) => None,
            _ => Some(bounded("refresh", &announcements.refresh, &REFRESH)?),
        };
        Ok(L2Announcement {
            interfaces,
            node_selector,
            count,
            interval,
            refresh,
        })
    }
}

fn interface(name: &str) -> Result<InterfacePattern, String> {
    let shape_ok = (1..=MAX_INTERFACE_LEN).contains(&name.len())
        && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"_.*?-".contains(&b));
    if !shape_ok {
        return Err(format!(
            "announce.l2.interfaces: {name:?} is not an interface name or pattern (1 to {MAX_INTERFACE_LEN} of letters, digits, '-', '_', '.', '*', '?')"
        ));
    }
    Ok(InterfacePattern::new(name))
}

/// `text` of `announce.l2.announcements.<field>` as a duration within `bounds`.
fn bounded(field: &str, text: &str, bounds: &Bounds) -> Result<Duration, String> {
    let at = format!("announce.l2.announcements.{field}");
    let value = duration::parse(text).map_err(|error| format!("{at}: {error}"))?;
    if value < bounds.min.0 {
        return Err(format!("{at}: {text:?} is below {}", bounds.min.1));
    }
    if value > bounds.max.0 {
        return Err(format!("{at}: {text:?} is above {}", bounds.max.1));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ippool::{AnnounceMode, pool_with_defaults};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn options(interval: &str, refresh: &str) -> L2Announce {
        L2Announce {
            announcements: L2Announcements {
                interval: interval.into(),
                refresh: refresh.into(),
                ..L2Announcements::default()
            },
            ..L2Announce::default()
        }
    }

    #[test]
    fn an_l2_pool_without_options_gets_the_defaults() {
        let pool = pool_with_defaults("lan", &["192.0.2.0/24"], AnnounceMode::L2);
        assert_eq!(pool.l2_announcement(), Some(Ok(L2Announcement::default())));
        // The defaults of the resource and of the parsed form are the same.
        assert_eq!(L2Announce::default().parse(), Ok(L2Announcement::default()));
        let bgp = pool_with_defaults("edge", &["192.0.2.0/24"], AnnounceMode::Bgp);
        assert_eq!(bgp.l2_announcement(), None);
    }

    #[test]
    fn omitted_fields_take_their_defaults_when_read() {
        let read: L2Announce =
            serde_json::from_value(serde_json::json!({"announcements": {"count": 3}})).unwrap();
        assert_eq!(read.announcements.interval, "1.1s");
        assert_eq!(read.announcements.refresh, "60s");
        let parsed = read.parse().unwrap();
        assert_eq!(parsed.count, 3);
        assert_eq!(parsed.interval, Duration::from_millis(1100));
    }

    #[test]
    fn durations_out_of_range_name_the_field_and_the_bound() {
        assert_eq!(
            options("5h", "60s").parse(),
            Err(r#"announce.l2.announcements.interval: "5h" is above 10s"#.to_owned())
        );
        assert_eq!(
            options("50ms", "60s").parse(),
            Err(r#"announce.l2.announcements.interval: "50ms" is below 100ms"#.to_owned())
        );
        assert_eq!(
            options("1s", "500ms").parse(),
            Err(r#"announce.l2.announcements.refresh: "500ms" is below 1s"#.to_owned())
        );
        assert_eq!(
            options("1s", "1h0.5s").parse(),
            Err(r#"announce.l2.announcements.refresh: "1h0.5s" is above 1h"#.to_owned())
        );
        let malformed = options("soon", "60s").parse().unwrap_err();
        assert!(
            malformed
                .starts_with(r#"announce.l2.announcements.interval: "soon" is not a duration"#),
            "{malformed}"
        );
    }

    #[test]
    fn a_refresh_of_zero_turns_it_off_and_the_bounds_are_inclusive() {
        assert_eq!(options("100ms", "0s").parse().unwrap().refresh, None);
        assert_eq!(options("10s", "0").parse().unwrap().refresh, None);
        let edges = options("10s", "1h").parse().unwrap();
        assert_eq!(edges.refresh, Some(Duration::from_secs(3600)));
        assert_eq!(
            options("100ms", "1s").parse().unwrap().refresh,
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn counts_interfaces_and_selectors_are_checked() {
        let mut zero = L2Announce::default();
        zero.announcements.count = 0;
        assert_eq!(
            zero.parse(),
            Err("announce.l2.announcements.count: 0 is outside 1 to 20".to_owned())
        );
        let many = L2Announce {
            interfaces: (0..17).map(|i| format!("eth{i}")).collect(),
            ..L2Announce::default()
        };
        assert!(many.parse().unwrap_err().contains("17 entries, at most 16"));
        for bad in ["", "eth 0", "eth/0", "eth:0", &"e".repeat(65)] {
            let options = L2Announce {
                interfaces: vec![bad.to_owned()],
                ..L2Announce::default()
            };
            let error = options.parse().unwrap_err();
            assert!(error.starts_with("announce.l2.interfaces: "), "{error}");
        }
        let fine = L2Announce {
            interfaces: vec!["eth1".into(), "vlan*".into(), "bond?.10".into()],
            ..L2Announce::default()
        };
        assert_eq!(fine.parse().unwrap().interfaces.len(), 3);
        let selector = L2Announce {
            node_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "rack".into(),
                    operator: "Near".into(),
                    values: None,
                }]),
                ..LabelSelector::default()
            }),
            ..L2Announce::default()
        };
        assert!(
            (selector.parse().unwrap_err()).starts_with("announce.l2.nodeSelector: "),
            "{:?}",
            selector.parse()
        );
    }

    #[test]
    fn options_of_another_mode_are_named_as_ignored() {
        let mut bgp = pool_with_defaults("edge", &["192.0.2.0/24"], AnnounceMode::Bgp);
        assert_eq!(bgp.ignored_announce_options(), None);
        bgp.spec.announce.l2 = Some(L2Announce::default());
        assert_eq!(
            bgp.ignored_announce_options().as_deref(),
            Some("announce.l2 set on a pool of announce.mode bgp: ignored")
        );
        let mut none = pool_with_defaults("quiet", &["192.0.2.0/24"], AnnounceMode::None);
        none.spec.announce.l2 = Some(L2Announce::default());
        none.spec.announce.bgp = Some(crate::crd::ippool::BgpAnnounce::default());
        assert_eq!(
            none.ignored_announce_options().as_deref(),
            Some("announce.bgp and announce.l2 set on a pool of announce.mode none: ignored")
        );
        let mut l2 = pool_with_defaults("lan", &["192.0.2.0/24"], AnnounceMode::L2);
        l2.spec.announce.l2 = Some(L2Announce::default());
        assert_eq!(l2.ignored_announce_options(), None);
    }
}
