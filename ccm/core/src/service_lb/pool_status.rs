//! The status of `IPPool`s: usage per family and the `Valid`, `Overlapping` and `Degraded`
//! conditions, computed from the allocator and written only when it differs from what is
//! stored (so an idle controller, and an idle restart, write nothing).

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::conditions::{self, WantedCondition};
use crate::write::Patch;

use super::decide::PoolReport;
use crate::crd::ippool::{AnnounceMode, FamilyUsage, IPPool, IPPoolStatus};
use crate::ipam::{Family, FamilyUsage as Usage};

pub const COND_VALID: &str = "Valid";
pub const COND_OVERLAPPING: &str = "Overlapping";
pub const COND_DEGRADED: &str = "Degraded";
/// Whether the pool's `announce.bgp` or `announce.l2` options can be used (BGP and layer-2
/// pools, and pools with options of another mode).
pub const COND_ANNOUNCE: &str = "AnnounceValid";

/// How many Service names a Degraded message lists before summarising.
const LISTED: usize = 5;

/// A condition the status should carry: type, status, reason, message.
type Wanted = (&'static str, bool, &'static str, String);

/// The status `pool` should have given `report`, keeping each condition's transition time
/// while its status is unchanged.
pub fn desired(pool: &IPPool, report: &PoolReport, now: Timestamp) -> IPPoolStatus {
    let current = pool.status.clone().unwrap_or_default();
    let generation = pool.metadata.generation;
    let mut status = IPPoolStatus {
        observed_generation: generation,
        ..IPPoolStatus::default()
    };
    let mut wanted = vec![validity(&mut status, report)];
    wanted.push(overlap(report));
    wanted.push(degraded(report));
    wanted.extend(announce(pool));
    status.conditions = (wanted.into_iter())
        .map(|(type_, is_true, reason, message)| {
            let want = WantedCondition {
                type_,
                status: is_true,
                reason: reason.to_owned(),
                message,
            };
            let previous = current.conditions.iter().find(|c| c.type_ == type_);
            conditions::merged(
                previous,
                &want,
                conditions::Message::Wanted,
                generation,
                now,
            )
        })
        .collect();
    status
}

/// Fills the counts of a valid pool into `status`; the `Valid` condition.
fn validity(status: &mut IPPoolStatus, report: &PoolReport) -> Wanted {
    let usage = match &report.validity {
        Ok(usage) => usage,
        Err(invalid) => {
            status.free = "0".to_owned();
            return (COND_VALID, false, "InvalidPool", invalid.to_string());
        }
    };
    let mut used: u128 = 0;
    let mut free: u128 = 0;
    for family in Family::ALL {
        let Usage {
            total,
            used: u,
            free: f,
        } = usage.family(family);
        if total == 0 {
            continue;
        }
        used = used.saturating_add(u);
        free = free.saturating_add(f);
        status.families.insert(
            family.to_string(),
            FamilyUsage {
                total: total.to_string(),
                used: u.to_string(),
                free: f.to_string(),
            },
        );
    }
    status.used = u64::try_from(used).unwrap_or(u64::MAX);
    status.free = free.to_string();
    let sizes: Vec<String> = (status.families.iter())
        .map(|(family, usage)| format!("{} {family}", usage.total))
        .collect();
    (
        COND_VALID,
        true,
        "Valid",
        format!("{} addresses", sizes.join(" and ")),
    )
}

fn overlap(report: &PoolReport) -> Wanted {
    if report.overlaps_with.is_empty() {
        return (
            COND_OVERLAPPING,
            false,
            "NoOverlap",
            "no other pool shares addresses with this pool".to_owned(),
        );
    }
    (
        COND_OVERLAPPING,
        true,
        "Overlapping",
        format!(
            "shares addresses with pool {}; an address is never handed out twice, but which pool reports it depends on the Service",
            report.overlaps_with.join(", ")
        ),
    )
}

fn degraded(report: &PoolReport) -> Wanted {
    if report.degraded_services.is_empty() {
        return (
            COND_DEGRADED,
            false,
            "AllAddressesInside",
            "every address reported from this pool is inside it".to_owned(),
        );
    }
    let count = report.degraded_services.len();
    let mut names: Vec<String> = (report.degraded_services.iter().take(LISTED))
        .map(ToString::to_string)
        .collect();
    if count > LISTED {
        names.push(format!("and {} more", count - LISTED));
    }
    (
        COND_DEGRADED,
        true,
        "AddressesOutsidePool",
        format!(
            "{count} Service(s) hold addresses this pool no longer contains, kept because allocated addresses never move: {}",
            names.join(", ")
        ),
    )
}

/// The `AnnounceValid` condition: of every pool announced over BGP or layer 2 (whether its
/// options can be used), and of any pool with options its mode ignores.
fn announce(pool: &IPPool) -> Option<Wanted> {
    let (mode, parsed) = match pool.spec.announce.mode {
        AnnounceMode::Bgp => ("BGP", pool.bgp_announcement().map(|r| r.map(drop))),
        AnnounceMode::L2 => ("layer-2", pool.l2_announcement().map(|r| r.map(drop))),
        AnnounceMode::None => ("", None),
    };
    if let Some(Err(reason)) = parsed {
        return Some((
            COND_ANNOUNCE,
            false,
            "InvalidAnnounceOptions",
            format!("{reason}; the pool's addresses are not announced"),
        ));
    }
    if let Some(ignored) = pool.ignored_announce_options() {
        return Some((COND_ANNOUNCE, false, "IgnoredAnnounceOptions", ignored));
    }
    parsed.map(|_valid| {
        (
            COND_ANNOUNCE,
            true,
            "Valid",
            format!("the {mode} announcement options are valid"),
        )
    })
}

/// The merge patch taking `pool`'s status to `desired`, or `None` when they are equal. Family
/// entries that disappear are deleted explicitly (a merge patch keeps absent keys).
pub fn patch(pool: &IPPool, desired: &IPPoolStatus) -> Option<Patch> {
    let current = pool.status.clone().unwrap_or_default();
    if current == *desired {
        return None;
    }
    let mut families: BTreeMap<String, Value> = (desired.families.iter())
        .map(|(family, usage)| (family.clone(), json!(usage)))
        .collect();
    for family in current.families.keys() {
        families.entry(family.clone()).or_insert(Value::Null);
    }
    Some(Patch::Status(json!({
        "metadata": {"resourceVersion": pool.metadata.resource_version},
        "status": {
            "used": desired.used,
            "free": desired.free,
            "families": families,
            "conditions": desired.conditions,
            "observedGeneration": desired.observed_generation,
        },
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ippool::{AnnounceMode, pool_with_defaults};
    use crate::ipam::{InvalidPool, PoolProblem, PoolUsage, ServiceKey};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn pool() -> IPPool {
        let mut pool = pool_with_defaults("edge", &["192.0.2.0/24"], AnnounceMode::Bgp);
        pool.metadata.generation = Some(3);
        pool.metadata.resource_version = Some("42".into());
        pool
    }

    fn report(used: u128) -> PoolReport {
        PoolReport {
            validity: Ok(PoolUsage {
                pool: "edge".into(),
                v4: Usage {
                    total: 256,
                    used,
                    free: 256 - used,
                },
                v6: Usage::default(),
            }),
            overlaps_with: Vec::new(),
            degraded_services: Vec::new(),
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn usage_and_conditions_are_computed() {
        let status = desired(&pool(), &report(3), at(10));
        assert_eq!(status.used, 3);
        assert_eq!(status.free, "253");
        assert_eq!(status.families["IPv4"].total, "256");
        assert!(!status.families.contains_key("IPv6"));
        assert_eq!(status.observed_generation, Some(3));
        let valid = &status.conditions[0];
        assert_eq!(
            (valid.type_.as_str(), valid.status.as_str()),
            (COND_VALID, "True")
        );
        assert_eq!(valid.message, "256 IPv4 addresses");
    }

    #[test]
    fn unusable_bgp_options_are_a_condition_of_their_own() {
        let fine = desired(&pool(), &report(0), at(10));
        let announce = fine
            .conditions
            .iter()
            .find(|c| c.type_ == COND_ANNOUNCE)
            .unwrap();
        assert_eq!(announce.status, "True");
        let mut bad = pool();
        bad.spec.announce.bgp = Some(crate::crd::ippool::BgpAnnounce {
            peer_selector: Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_expressions: Some(vec![
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                            key: "tier".into(),
                            operator: "Near".into(),
                            values: None,
                        },
                    ]),
                    ..Default::default()
                },
            ),
            ..Default::default()
        });
        let status = desired(&bad, &report(0), at(10));
        let announce = status
            .conditions
            .iter()
            .find(|c| c.type_ == COND_ANNOUNCE)
            .unwrap();
        assert_eq!(
            (announce.status.as_str(), announce.reason.as_str()),
            ("False", "InvalidAnnounceOptions")
        );
        assert!(
            announce.message.starts_with("announce.bgp.peerSelector"),
            "{}",
            announce.message
        );
        // The addresses are still valid and allocated.
        assert_eq!(status.conditions[0].status, "True");
        let quiet = pool_with_defaults("quiet", &["192.0.2.0/24"], AnnounceMode::None);
        assert!(
            desired(&quiet, &report(0), at(10))
                .conditions
                .iter()
                .all(|c| c.type_ != COND_ANNOUNCE)
        );
    }

    fn announce_condition(pool: &IPPool) -> Condition {
        let status = desired(pool, &report(0), at(10));
        (status.conditions.into_iter())
            .find(|c| c.type_ == COND_ANNOUNCE)
            .unwrap()
    }

    #[test]
    fn unusable_l2_options_name_the_field_and_leave_the_pool_valid() {
        let mut lan = pool_with_defaults("lan", &["192.0.2.0/24"], AnnounceMode::L2);
        let fine = announce_condition(&lan);
        assert_eq!(
            (fine.status.as_str(), fine.message.as_str()),
            ("True", "the layer-2 announcement options are valid")
        );
        let mut options = crate::crd::ippool::L2Announce::default();
        options.announcements.interval = "5h".into();
        lan.spec.announce.l2 = Some(options);
        let bad = announce_condition(&lan);
        assert_eq!(
            (
                bad.status.as_str(),
                bad.reason.as_str(),
                bad.message.as_str()
            ),
            (
                "False",
                "InvalidAnnounceOptions",
                r#"announce.l2.announcements.interval: "5h" is above 10s; the pool's addresses are not announced"#
            )
        );
        let status = desired(&lan, &report(0), at(10));
        assert_eq!(status.conditions[0].status, "True", "{status:?}");
    }

    #[test]
    fn options_of_another_mode_are_reported_as_ignored() {
        let mut edge = pool();
        edge.spec.announce.l2 = Some(crate::crd::ippool::L2Announce::default());
        let ignored = announce_condition(&edge);
        assert_eq!(
            (ignored.status.as_str(), ignored.reason.as_str()),
            ("False", "IgnoredAnnounceOptions")
        );
        assert!(
            ignored.message.starts_with("announce.l2 set"),
            "{}",
            ignored.message
        );
        let mut quiet = pool_with_defaults("quiet", &["192.0.2.0/24"], AnnounceMode::None);
        quiet.spec.announce.bgp = Some(crate::crd::ippool::BgpAnnounce::default());
        assert_eq!(announce_condition(&quiet).reason, "IgnoredAnnounceOptions");
    }

    #[test]
    fn an_unchanged_status_needs_no_patch_and_keeps_transition_times() {
        let mut stored = pool();
        stored.status = Some(desired(&stored, &report(3), at(10)));
        let again = desired(&stored, &report(3), at(99));
        assert_eq!(patch(&stored, &again), None);
        let changed = desired(&stored, &report(4), at(99));
        let value = patch(&stored, &changed).unwrap().body().clone();
        assert_eq!(value["status"]["used"], 4);
        assert_eq!(value["metadata"]["resourceVersion"], "42");
        // Conditions did not flip, so their transition time stays.
        assert_eq!(changed.conditions[0].last_transition_time, Time(at(10)));
    }

    #[test]
    fn invalid_overlapping_and_degraded_pools_say_so() {
        let mut stored = pool();
        stored.status = Some(desired(&stored, &report(3), at(10)));
        let bad = PoolReport {
            validity: Err(InvalidPool {
                pool: "edge".into(),
                problems: vec![PoolProblem::NoAddresses],
            }),
            overlaps_with: vec!["core".into()],
            degraded_services: (0..7)
                .map(|i| ServiceKey::new("ns", &format!("s{i}")))
                .collect(),
        };
        let status = desired(&stored, &bad, at(20));
        let by_type: BTreeMap<&str, &Condition> = status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c))
            .collect();
        assert_eq!(by_type[COND_VALID].status, "False");
        assert!(
            by_type[COND_VALID]
                .message
                .starts_with("pool edge is invalid")
        );
        assert_eq!(by_type[COND_VALID].last_transition_time, Time(at(20)));
        assert!(by_type[COND_OVERLAPPING].message.contains("core"));
        assert!(by_type[COND_DEGRADED].message.contains("7 Service(s)"));
        assert!(by_type[COND_DEGRADED].message.contains("and 2 more"));
        // The IPv4 entry disappears explicitly.
        let value = patch(&stored, &status).unwrap().body().clone();
        assert_eq!(value["status"]["families"]["IPv4"], Value::Null);
    }
}
