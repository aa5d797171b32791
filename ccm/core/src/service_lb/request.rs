//! Reading a Service into what it asks of the IPAM core, in one place: the annotations, the
//! deprecated `spec.loadBalancerIP`, address families, ports, its labels and its namespace's.
//! Pure; what cannot be read is reported, never guessed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use kube::ResourceExt as _;

pub use crate::contract::held_addresses;
pub use crate::contract::{
    IPS_ANNOTATION as IPS, POOL_ANNOTATION as POOL, SHARING_KEY_ANNOTATION as SHARING_KEY,
};
use crate::contract::{METALLB_IPS, METALLB_POOL, METALLB_SHARING_KEY};
use crate::ipam::{
    Family, IpFamilyPolicy, Pending, Protocol, ServiceKey, ServiceRequest, excerpt,
    parse_requested_ips, validate_sharing_key,
};

/// Where the deprecated requested-address field is reported from.
const DEPRECATED_FIELD: &str = "spec.loadBalancerIP";

/// The labels of a namespace by name (empty for an unknown namespace).
pub type NamespaceLabels<'a> = &'a dyn Fn(&str) -> BTreeMap<String, String>;

/// A Service, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// What it asks for, as far as it could be read.
    pub request: ServiceRequest,
    /// The first thing it asks for that cannot be read (the Service is then pending).
    pub problem: Option<Pending>,
    /// It asks for its address with the deprecated `spec.loadBalancerIP` (honoured, with a
    /// Warning Event).
    pub deprecated_field: bool,
    /// MetalLB's annotations read as ours, `name=value` (for the Normal Event saying so).
    pub metallb: Vec<String>,
}

/// How a Service's annotations are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    /// MetalLB's annotations ([`METALLB_SHARING_KEY`], [`METALLB_IPS`], [`METALLB_POOL`]) count
    /// as ours where ours are absent (`--metallb-annotations`, on by default).
    pub metallb: bool,
}

/// The Service's key in the IPAM core.
pub fn key(service: &Service) -> ServiceKey {
    ServiceKey::new(
        &service.namespace().unwrap_or_default(),
        &service.name_any(),
    )
}

/// Reads `service`. When both the annotation and the deprecated field request addresses, the
/// annotation wins (it is the documented interface). With `reading.metallb`, each of MetalLB's
/// annotations stands in for ours where ours is absent (ours win when both are set), and a
/// malformed one is reported under its own name.
pub fn read(service: &Service, namespaces: NamespaceLabels<'_>, reading: Reading) -> Read {
    let annotations = service.annotations();
    let spec = service.spec.clone().unwrap_or_default();
    let created = (service.metadata.creation_timestamp.as_ref()).map_or(0, |t| t.0.as_second());
    let mut request = ServiceRequest::new(key(service), created);
    request.namespace_labels = namespaces(&service.namespace().unwrap_or_default());
    request.service_labels = service.labels().clone();
    let mut metallb: Vec<String> = Vec::new();
    let mut problems: Vec<Pending> = Vec::new();
    let mut stand_in = |ours: &str,
                        theirs: &[&'static str; 2]|
     -> Option<(&'static str, &String)> {
        if !reading.metallb || annotations.contains_key(ours) {
            return None;
        }
        let (name, value) = (theirs.iter()).find_map(|n| annotations.get(*n).map(|v| (*n, v)))?;
        metallb.push(format!("{name}={}", excerpt(value)));
        Some((name, value))
    };
    request.pool = match stand_in(POOL, &METALLB_POOL) {
        Some((_, pool)) => Some(pool.clone()).filter(|p| !p.is_empty()),
        None => annotations.get(POOL).filter(|p| !p.is_empty()).cloned(),
    };
    request.sharing_key = match stand_in(SHARING_KEY, &METALLB_SHARING_KEY) {
        Some((name, key)) => {
            // Checked here so that a bad one is reported under MetalLB's name, not ours.
            if let Err(error) = validate_sharing_key(key) {
                problems.push(Pending::malformed(name, error));
            }
            Some(key.clone())
        }
        None => annotations.get(SHARING_KEY).cloned(),
    };
    let metallb_ips = stand_in(IPS, &METALLB_IPS);
    // The apiserver validates ipFamilies; an unknown spelling can only come from a newer
    // Kubernetes and is skipped rather than blocking the Service.
    request.ip_families = (spec.ip_families.iter().flatten())
        .filter_map(|f| f.parse::<Family>().ok())
        .collect();
    let policy = spec.ip_family_policy.as_deref().unwrap_or("SingleStack");
    match policy.parse::<IpFamilyPolicy>() {
        Ok(policy) => request.ip_family_policy = policy,
        Err(error) => problems.push(Pending::InvalidRequest { error }),
    }
    for port in spec.ports.iter().flatten() {
        let Ok(number) = u16::try_from(port.port) else {
            continue;
        };
        match port
            .protocol
            .as_deref()
            .unwrap_or("TCP")
            .parse::<Protocol>()
        {
            Ok(protocol) => request.ports.push((protocol, number)),
            Err(error) => problems.push(Pending::InvalidRequest { error }),
        }
    }
    let (requested, source) = match metallb_ips {
        Some((name, ips)) => (Some(ips.as_str()), name),
        None => requested(annotations, &spec),
    };
    if let Some(text) = requested {
        match parse_requested_ips(text) {
            Ok(ips) => request.requested = ips,
            Err(error) => problems.push(Pending::malformed(source, error)),
        }
    }
    Read {
        request,
        problem: problems.into_iter().next(),
        deprecated_field: requested.is_some() && source == DEPRECATED_FIELD,
        metallb,
    }
}

/// The requested-addresses text and where it comes from: the annotation, else the deprecated
/// field when set.
fn requested<'a>(
    annotations: &'a BTreeMap<String, String>,
    spec: &'a ServiceSpec,
) -> (Option<&'a str>, &'static str) {
    match annotations.get(IPS) {
        Some(ips) => (Some(ips), IPS),
        None => (
            spec.load_balancer_ip.as_deref().filter(|ip| !ip.is_empty()),
            DEPRECATED_FIELD,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServicePort, ServiceSpec, ServiceStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(annotations: &[(&str, &str)], lb_ip: Option<&str>) -> Service {
        Service {
            metadata: ObjectMeta {
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                load_balancer_ip: lb_ip.map(Into::into),
                ip_families: Some(vec!["IPv4".into(), "IPv6".into()]),
                ip_family_policy: Some("PreferDualStack".into()),
                ports: Some(vec![
                    ServicePort {
                        port: 53,
                        protocol: Some("UDP".into()),
                        ..ServicePort::default()
                    },
                    ServicePort {
                        port: 80,
                        ..ServicePort::default()
                    },
                ]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    fn no_labels(_: &str) -> BTreeMap<String, String> {
        BTreeMap::new()
    }

    fn ip(text: &str) -> std::net::IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn annotations_are_read() {
        let read = read(
            &service(
                &[(POOL, "edge"), (IPS, "192.0.2.10"), (SHARING_KEY, "dns")],
                None,
            ),
            &no_labels,
            Reading::default(),
        );
        assert_eq!(read.problem, None);
        assert!(!read.deprecated_field);
        let request = read.request;
        assert_eq!(request.pool.as_deref(), Some("edge"));
        assert_eq!(request.requested, [ip("192.0.2.10")]);
        assert_eq!(request.sharing_key.as_deref(), Some("dns"));
        assert_eq!(request.ports, [(Protocol::Udp, 53), (Protocol::Tcp, 80)]);
        assert_eq!(request.ip_family_policy, IpFamilyPolicy::PreferDualStack);
        assert_eq!(request.ip_families, [Family::V4, Family::V6]);
    }

    #[test]
    fn the_deprecated_field_is_used_only_without_the_annotation() {
        let field = read(
            &service(&[], Some("192.0.2.20")),
            &no_labels,
            Reading::default(),
        );
        assert!(field.deprecated_field);
        assert_eq!(field.request.requested, [ip("192.0.2.20")]);
        let both = read(
            &service(&[(IPS, "192.0.2.10")], Some("192.0.2.20")),
            &no_labels,
            Reading::default(),
        );
        assert!(!both.deprecated_field);
        assert_eq!(both.request.requested, [ip("192.0.2.10")]);
    }

    #[test]
    fn a_malformed_request_names_where_it_was_written() {
        let annotation = read(
            &service(&[(IPS, "not-an-ip")], None),
            &no_labels,
            Reading::default(),
        );
        let field = read(
            &service(&[], Some("not-an-ip")),
            &no_labels,
            Reading::default(),
        );
        for (read, source) in [(annotation, IPS), (field, DEPRECATED_FIELD)] {
            let problem = read.problem.expect("a malformed address is a problem");
            assert!(problem.to_string().contains(source), "{problem}");
            assert!(read.request.requested.is_empty());
        }
    }

    #[test]
    fn the_namespace_labels_and_an_empty_pool_annotation() {
        let labels = |namespace: &str| BTreeMap::from([("ns".to_owned(), namespace.to_owned())]);
        let mut svc = service(&[(POOL, "")], None);
        svc.metadata.namespace = Some("team-a".into());
        let read = read(&svc, &labels, Reading::default());
        assert_eq!(read.request.namespace_labels["ns"], "team-a");
        assert_eq!(
            read.request.pool, None,
            "an empty pool annotation names no pool"
        );
    }

    #[test]
    fn held_addresses_come_from_the_status() {
        let mut svc = service(&[], None);
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![
                    LoadBalancerIngress {
                        ip: Some("192.0.2.10".into()),
                        ..LoadBalancerIngress::default()
                    },
                    LoadBalancerIngress {
                        hostname: Some("lb.example".into()),
                        ..LoadBalancerIngress::default()
                    },
                ]),
            }),
            ..ServiceStatus::default()
        });
        assert_eq!(
            held_addresses(&svc),
            ["192.0.2.10".parse::<std::net::IpAddr>().unwrap()]
        );
    }

    const METALLB: Reading = Reading { metallb: true };

    #[test]
    fn metallb_annotations_stand_in_for_ours() {
        let read = read(
            &service(
                &[
                    ("metallb.io/address-pool", "edge"),
                    ("metallb.io/loadBalancerIPs", "192.0.2.10,2001:db8::10"),
                    ("metallb.io/allow-shared-ip", "dns"),
                ],
                None,
            ),
            &no_labels,
            METALLB,
        );
        assert_eq!(read.problem, None);
        assert_eq!(read.request.pool.as_deref(), Some("edge"));
        assert_eq!(
            read.request.requested,
            [ip("192.0.2.10"), ip("2001:db8::10")]
        );
        assert_eq!(read.request.sharing_key.as_deref(), Some("dns"));
        assert_eq!(
            read.metallb,
            [
                "metallb.io/address-pool=edge",
                "metallb.io/allow-shared-ip=dns",
                "metallb.io/loadBalancerIPs=192.0.2.10,2001:db8::10",
            ]
        );
        // MetalLB's earlier prefix too; its requested address beats the deprecated field.
        let old = read_with(
            &[("metallb.universe.tf/loadBalancerIPs", "192.0.2.11")],
            Some("192.0.2.20"),
        );
        assert_eq!(old.request.requested, [ip("192.0.2.11")]);
        assert!(!old.deprecated_field);
        assert_eq!(
            old.metallb,
            ["metallb.universe.tf/loadBalancerIPs=192.0.2.11"]
        );
    }

    fn read_with(annotations: &[(&str, &str)], lb_ip: Option<&str>) -> Read {
        read(&service(annotations, lb_ip), &no_labels, METALLB)
    }

    #[test]
    fn ours_win_over_metallbs_and_metallbs_are_ignored_when_turned_off() {
        let both = read_with(
            &[
                (POOL, "ours"),
                ("metallb.io/address-pool", "theirs"),
                (IPS, "192.0.2.10"),
                ("metallb.io/loadBalancerIPs", "192.0.2.99"),
                (SHARING_KEY, "mine"),
                ("metallb.io/allow-shared-ip", "yours"),
            ],
            None,
        );
        assert_eq!(both.request.pool.as_deref(), Some("ours"));
        assert_eq!(both.request.requested, [ip("192.0.2.10")]);
        assert_eq!(both.request.sharing_key.as_deref(), Some("mine"));
        assert!(both.metallb.is_empty(), "none of theirs was read");
        let off = read(
            &service(
                &[
                    ("metallb.io/address-pool", "theirs"),
                    ("metallb.io/loadBalancerIPs", "192.0.2.99"),
                    ("metallb.io/allow-shared-ip", "yours"),
                ],
                None,
            ),
            &no_labels,
            Reading::default(),
        );
        assert_eq!(off.request.pool, None);
        assert!(off.request.requested.is_empty());
        assert_eq!(off.request.sharing_key, None);
        assert!(off.metallb.is_empty());
    }

    #[test]
    fn a_malformed_metallb_annotation_is_reported_under_its_own_name() {
        for (name, value) in [
            ("metallb.io/loadBalancerIPs", "192.0.2.1,192.0.2.2"),
            ("metallb.io/allow-shared-ip", "a key with spaces"),
        ] {
            let read = read_with(&[(name, value)], None);
            let problem = read.problem.expect("a problem");
            assert_eq!(problem.reason(), "MalformedAnnotation");
            assert!(problem.to_string().contains(name), "{problem}");
        }
        // A huge value is quoted short in the Event.
        let huge = "k".repeat(10_000);
        let read = read_with(&[("metallb.io/allow-shared-ip", &huge)], None);
        assert!(read.metallb[0].len() < 200, "{}", read.metallb[0]);
    }
}
