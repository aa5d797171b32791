//! Reading what a Service asks for: annotations, the deprecated `spec.loadBalancerIP`, address
//! families and ports. Pure; the result feeds the IPAM core.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

pub use crate::contract::{
    IPS_ANNOTATION as IPS, POOL_ANNOTATION as POOL, SHARING_KEY_ANNOTATION as SHARING_KEY,
};

/// Where requested addresses came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestSource {
    None,
    Annotation,
    /// `spec.loadBalancerIP`, deprecated upstream: honoured with a Warning event.
    DeprecatedField,
}

/// The raw, unvalidated asks of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asks {
    pub pool: Option<String>,
    /// The requested-addresses text (annotation, or the deprecated field) still to be parsed.
    pub requested: Option<String>,
    pub source: RequestSource,
    pub sharing_key: Option<String>,
    /// `ipFamilies` as written by the apiserver (`IPv4`, `IPv6`).
    pub families: Vec<String>,
    /// `ipFamilyPolicy`; `SingleStack` when absent (the apiserver default).
    pub family_policy: String,
    /// (protocol, port) pairs of the Service.
    pub ports: Vec<(String, u16)>,
    /// Creation time in seconds, for "the earlier claimant wins".
    pub created: i64,
}

/// Reads the asks of `service`. When both the annotation and the deprecated field are set,
/// the annotation wins (it is the documented interface).
pub fn asks(service: &Service) -> Asks {
    let annotations: BTreeMap<String, String> =
        service.metadata.annotations.clone().unwrap_or_default();
    let spec = service.spec.clone().unwrap_or_default();
    let deprecated = spec.load_balancer_ip.filter(|ip| !ip.is_empty());
    let (requested, source) = match (annotations.get(IPS), deprecated) {
        (Some(ips), _) => (Some(ips.clone()), RequestSource::Annotation),
        (None, Some(ip)) => (Some(ip), RequestSource::DeprecatedField),
        (None, None) => (None, RequestSource::None),
    };
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            Some((p.protocol.unwrap_or_else(|| "TCP".to_owned()), port))
        })
        .collect();
    Asks {
        pool: annotations.get(POOL).cloned(),
        requested,
        source,
        sharing_key: annotations.get(SHARING_KEY).cloned(),
        families: spec.ip_families.unwrap_or_default(),
        family_policy: spec
            .ip_family_policy
            .unwrap_or_else(|| "SingleStack".to_owned()),
        ports,
        created: service
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
    }
}

pub use crate::contract::held_addresses;

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

    #[test]
    fn annotations_are_read() {
        let asks = asks(&service(
            &[(POOL, "edge"), (IPS, "192.0.2.10"), (SHARING_KEY, "dns")],
            None,
        ));
        assert_eq!(asks.pool.as_deref(), Some("edge"));
        assert_eq!(asks.requested.as_deref(), Some("192.0.2.10"));
        assert_eq!(asks.source, RequestSource::Annotation);
        assert_eq!(asks.sharing_key.as_deref(), Some("dns"));
        assert_eq!(asks.ports, [("UDP".to_owned(), 53), ("TCP".to_owned(), 80)]);
        assert_eq!(asks.family_policy, "PreferDualStack");
    }

    #[test]
    fn the_deprecated_field_is_used_only_without_the_annotation() {
        let asks_field = asks(&service(&[], Some("192.0.2.20")));
        assert_eq!(asks_field.source, RequestSource::DeprecatedField);
        assert_eq!(asks_field.requested.as_deref(), Some("192.0.2.20"));
        let both = asks(&service(&[(IPS, "192.0.2.10")], Some("192.0.2.20")));
        assert_eq!(
            (both.source, both.requested.as_deref()),
            (RequestSource::Annotation, Some("192.0.2.10"))
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
