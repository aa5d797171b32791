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
use crate::ipam::{
    Family, IpFamilyPolicy, Pending, Protocol, ServiceKey, ServiceRequest, parse_requested_ips,
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
}

/// The Service's key in the IPAM core.
pub fn key(service: &Service) -> ServiceKey {
    ServiceKey::new(
        &service.namespace().unwrap_or_default(),
        &service.name_any(),
    )
}

/// Reads `service`. When both the annotation and the deprecated field request addresses, the
/// annotation wins (it is the documented interface).
pub fn read(service: &Service, namespaces: NamespaceLabels<'_>) -> Read {
    let annotations = service.annotations();
    let spec = service.spec.clone().unwrap_or_default();
    let created = (service.metadata.creation_timestamp.as_ref()).map_or(0, |t| t.0.as_second());
    let mut request = ServiceRequest::new(key(service), created);
    request.namespace_labels = namespaces(&service.namespace().unwrap_or_default());
    request.service_labels = service.labels().clone();
    request.pool = annotations.get(POOL).filter(|p| !p.is_empty()).cloned();
    request.sharing_key = annotations.get(SHARING_KEY).cloned();
    // The apiserver validates ipFamilies; an unknown spelling can only come from a newer
    // Kubernetes and is skipped rather than blocking the Service.
    request.ip_families = (spec.ip_families.iter().flatten())
        .filter_map(|f| f.parse::<Family>().ok())
        .collect();
    let mut problems: Vec<Pending> = Vec::new();
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
    let (requested, source) = requested(annotations, &spec);
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
        let field = read(&service(&[], Some("192.0.2.20")), &no_labels);
        assert!(field.deprecated_field);
        assert_eq!(field.request.requested, [ip("192.0.2.20")]);
        let both = read(
            &service(&[(IPS, "192.0.2.10")], Some("192.0.2.20")),
            &no_labels,
        );
        assert!(!both.deprecated_field);
        assert_eq!(both.request.requested, [ip("192.0.2.10")]);
    }

    #[test]
    fn a_malformed_request_names_where_it_was_written() {
        let annotation = read(&service(&[(IPS, "not-an-ip")], None), &no_labels);
        let field = read(&service(&[], Some("not-an-ip")), &no_labels);
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
        let read = read(&svc, &labels);
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
}
