//! What taking over a cluster's LoadBalancer Services would do, computed without writing: the
//! same decisions the controller makes after a start (rebuild from what the Services hold,
//! then decide each), for pools that do not exist yet. `baremetal-ccm migrate metallb
//! --dry-run` prints it before anything is applied; a clean takeover moves nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;

use super::class::{ClassPolicy, is_ours};
use super::decide::Decider;
use super::request::{self as asks, NamespaceLabels, Reading};
use crate::crd::ippool::IPPool;
use crate::ipam::ServiceKey;

/// What would happen to one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It keeps the addresses it holds.
    Kept,
    /// It keeps them, but is flagged: another Service holds one of them and they may not
    /// share it under the new configuration (nothing moves; the note says why).
    KeptInConflict(String),
    /// It keeps them, but its request cannot be met as written (the reason).
    KeptPending(String),
    /// It keeps them, but one lies outside every converted pool that serves it (flagged
    /// `AddressOutsidePool`; a pool is missing from the conversion).
    KeptOutsidePools(String),
    /// It would hold other addresses than now: the takeover is not clean.
    Moved(Vec<IpAddr>),
    /// It holds nothing and would get these.
    Addressed(Vec<IpAddr>),
    /// It holds nothing and would stay pending (the reason).
    Pending(String),
    /// Its class is not ours: untouched.
    NotOurs,
}

impl Fate {
    /// The column of the dry run's table.
    pub fn label(&self) -> &'static str {
        match self {
            Fate::Kept => "kept",
            Fate::KeptInConflict(_) => "kept (conflict)",
            Fate::KeptPending(_) => "kept (pending)",
            Fate::KeptOutsidePools(_) => "kept (outside pools)",
            Fate::Moved(_) => "MOVED",
            Fate::Addressed(_) => "addressed",
            Fate::Pending(_) => "pending",
            Fate::NotOurs => "not ours",
        }
    }
}

/// One Service's forecast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forecast {
    pub service: ServiceKey,
    pub held: Vec<IpAddr>,
    pub fate: Fate,
}

impl fmt::Display for Forecast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ips: &[IpAddr]| {
            let text: Vec<String> = ips.iter().map(ToString::to_string).collect();
            if text.is_empty() {
                "-".to_owned()
            } else {
                text.join(",")
            }
        };
        write!(
            f,
            "{}/{}\t{}\t{}",
            self.service.namespace,
            self.service.name,
            list(&self.held),
            self.fate.label()
        )?;
        match &self.fate {
            Fate::Moved(to) | Fate::Addressed(to) => write!(f, "\t{}", list(to)),
            Fate::KeptInConflict(why)
            | Fate::KeptPending(why)
            | Fate::KeptOutsidePools(why)
            | Fate::Pending(why) => {
                write!(f, "\t{why}")
            }
            Fate::Kept | Fate::NotOurs => Ok(()),
        }
    }
}

/// Counts by fate label, for the summary line.
pub fn tally(forecasts: &[Forecast]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for forecast in forecasts {
        *counts.entry(forecast.fate.label()).or_default() += 1;
    }
    counts
}

/// Whether the takeover moves nothing.
pub fn clean(forecasts: &[Forecast]) -> bool {
    !(forecasts.iter()).any(|f| matches!(f.fate, Fate::Moved(_)))
}

/// The forecast for every LoadBalancer Service of `services` under `pools`: those holding
/// addresses first (as the controller's rebuild records them), then the others in creation
/// order, each decided as the controller would.
pub fn forecast(
    pools: &[Arc<IPPool>],
    namespaces: NamespaceLabels<'_>,
    services: &[Arc<Service>],
    policy: ClassPolicy,
    reading: Reading,
) -> Vec<Forecast> {
    let mut decider = Decider::new(reading);
    decider.rebuild(pools, namespaces, services, policy);
    let load_balancers = (services.iter())
        .filter(|s| (s.spec.as_ref()).and_then(|s| s.type_.as_deref()) == Some("LoadBalancer"));
    let mut ordered: Vec<&Arc<Service>> = load_balancers.collect();
    ordered.sort_by_key(|s| {
        let held = asks::held_addresses(s);
        let created = (s.metadata.creation_timestamp.as_ref()).map(|t| t.0);
        (held.is_empty(), created, asks::key(s))
    });
    let mut forecasts: Vec<Forecast> = (ordered.into_iter())
        .map(|service| {
            let held = asks::held_addresses(service);
            let fate = if is_ours(service, policy) {
                fate(&held, &decider.decide(service, namespaces))
            } else {
                Fate::NotOurs
            };
            Forecast {
                service: asks::key(service),
                held,
                fate,
            }
        })
        .collect();
    forecasts.sort_by(|a, b| a.service.cmp(&b.service));
    forecasts
}

fn fate(held: &[IpAddr], outcome: &super::outcome::Outcome) -> Fate {
    let desired = &outcome.desired.ingress;
    let pending = (outcome.pending.as_ref()).map(|p| format!("{}: {}", p.reason, p.message));
    if held.is_empty() {
        return match pending {
            Some(why) if desired.is_empty() => Fate::Pending(why),
            _ => Fate::Addressed(desired.clone()),
        };
    }
    if desired.as_slice() != held {
        return Fate::Moved(desired.clone());
    }
    match (&outcome.conflict, pending, &outcome.outside_pool) {
        (Some(note), _, _) => Fate::KeptInConflict(note.clone()),
        (None, Some(why), _) => Fate::KeptPending(why),
        (None, None, Some(note)) => Fate::KeptOutsidePools(note.clone()),
        (None, None, None) => Fate::Kept,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::crd::ippool::{AnnounceMode, pool_with_defaults};

    fn service(name: &str, port: i32, held: &[&str], annotations: &[(&str, &str)]) -> Arc<Service> {
        Arc::new(Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                annotations: Some(
                    (annotations.iter())
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                ports: Some(vec![ServicePort {
                    port,
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        (held.iter())
                            .map(|ip| LoadBalancerIngress {
                                ip: Some((*ip).into()),
                                ..LoadBalancerIngress::default()
                            })
                            .collect(),
                    ),
                }),
                ..ServiceStatus::default()
            }),
        })
    }

    fn no_labels(_: &str) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn pools(addresses: &[&str]) -> Vec<Arc<IPPool>> {
        vec![Arc::new(pool_with_defaults(
            "lan",
            addresses,
            AnnounceMode::L2,
        ))]
    }

    const METALLB: Reading = Reading { metallb: true };

    #[test]
    fn services_metallb_addressed_are_kept_and_a_new_one_is_addressed() {
        let services = [
            service("new", 80, &[], &[]),
            service("web", 80, &["192.0.2.10"], &[]),
            service(
                "dns-tcp",
                53,
                &["192.0.2.11"],
                &[("metallb.io/allow-shared-ip", "dns")],
            ),
            service(
                "dns-udp",
                54,
                &["192.0.2.11"],
                &[("metallb.io/allow-shared-ip", "dns")],
            ),
        ];
        let forecasts = forecast(
            &pools(&["192.0.2.10-192.0.2.20"]),
            &no_labels,
            &services,
            ClassPolicy::DefaultAndExplicit,
            METALLB,
        );
        let fates: Vec<(&str, &Fate)> = (forecasts.iter())
            .map(|f| (&*f.service.name, &f.fate))
            .collect();
        assert_eq!(
            fates,
            [
                ("dns-tcp", &Fate::Kept),
                ("dns-udp", &Fate::Kept),
                // The lowest free one: the held ones were recorded first.
                ("new", &Fate::Addressed(vec!["192.0.2.12".parse().unwrap()])),
                ("web", &Fate::Kept),
            ]
        );
        assert!(clean(&forecasts));
        assert_eq!(tally(&forecasts).get("kept"), Some(&3));
    }

    #[test]
    fn an_address_outside_the_converted_pools_is_kept_and_flagged() {
        let services = [service("web", 80, &["198.51.100.7"], &[])];
        let forecasts = forecast(
            &pools(&["192.0.2.10-192.0.2.20"]),
            &no_labels,
            &services,
            ClassPolicy::DefaultAndExplicit,
            METALLB,
        );
        // Kept where it is: nothing moves without being asked; the dry run says a pool is
        // missing.
        assert!(
            matches!(&forecasts[0].fate, Fate::KeptOutsidePools(note) if note.contains("198.51.100.7")),
            "{}",
            forecasts[0]
        );
        assert!(clean(&forecasts));
    }

    #[test]
    fn a_shared_pair_read_without_metallbs_key_is_kept_in_conflict_and_an_asked_address_pends() {
        let services = [
            service(
                "a",
                80,
                &["192.0.2.11"],
                &[("metallb.io/allow-shared-ip", "k")],
            ),
            service(
                "b",
                443,
                &["192.0.2.11"],
                &[("metallb.io/allow-shared-ip", "k")],
            ),
            service("c", 80, &[], &[(asks::IPS, "192.0.2.11")]),
        ];
        let forecasts = forecast(
            &pools(&["192.0.2.10-192.0.2.20"]),
            &no_labels,
            &services,
            ClassPolicy::DefaultAndExplicit,
            Reading { metallb: false },
        );
        assert_eq!(forecasts[0].fate, Fate::Kept);
        assert!(
            matches!(forecasts[1].fate, Fate::KeptInConflict(_)),
            "{}",
            forecasts[1]
        );
        assert!(
            matches!(&forecasts[2].fate, Fate::Pending(why) if why.starts_with("AddressInUse")),
            "{}",
            forecasts[2]
        );
        assert!(clean(&forecasts));
        let line = forecasts[2].to_string();
        assert!(
            line.starts_with("default/c\t-\tpending\tAddressInUse"),
            "{line}"
        );
    }
}
