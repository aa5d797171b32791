//! What the controller keeps of a Service in its cache: only what deciding reads, so that
//! memory follows the Services we serve, not every Service of the cluster.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use kube::ResourceExt as _;

use super::class::{ClassPolicy, is_ours};
use super::status;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from a cached Service what deciding never reads, so that memory follows the
/// Services we serve: managedFields and kubectl's last-applied copy (most of an object's
/// size), the spec fields of routing and node ports, and, for a Service that is not ours and
/// carries none of our state (no finalizer), everything but what says whether it is ours.
pub(crate) fn slim(service: &mut Service, policy: ClassPolicy) {
    service.managed_fields_mut().clear();
    service.annotations_mut().remove(LAST_APPLIED);
    let finalized = (service.metadata.finalizers.iter().flatten()).any(|f| f == status::FINALIZER);
    if !is_ours(service, policy) && !finalized && service.metadata.deletion_timestamp.is_none() {
        service.metadata.annotations = None;
        service.metadata.labels = None;
        service.metadata.owner_references = None;
        service.status = None;
        service.spec = service.spec.take().map(|spec| ServiceSpec {
            type_: spec.type_,
            load_balancer_class: spec.load_balancer_class,
            ..ServiceSpec::default()
        });
        return;
    }
    if let Some(spec) = service.spec.as_mut() {
        *spec = ServiceSpec {
            type_: spec.type_.take(),
            load_balancer_class: spec.load_balancer_class.take(),
            load_balancer_ip: spec.load_balancer_ip.take(),
            ip_families: spec.ip_families.take(),
            ip_family_policy: spec.ip_family_policy.take(),
            ports: spec.ports.take().map(|ports| {
                (ports.into_iter())
                    .map(|p| ServicePort {
                        port: p.port,
                        protocol: p.protocol,
                        ..ServicePort::default()
                    })
                    .collect()
            }),
            ..ServiceSpec::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::api::ObjectMeta;

    fn full(class: Option<&str>, finalized: bool) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("u1".into()),
                resource_version: Some("7".into()),
                labels: Some([("app".to_owned(), "web".to_owned())].into()),
                annotations: Some(
                    [
                        (LAST_APPLIED.to_owned(), "{...}".to_owned()),
                        ("baremetal-ccm.io/pool".to_owned(), "a".to_owned()),
                    ]
                    .into(),
                ),
                finalizers: finalized.then(|| vec![status::FINALIZER.to_owned()]),
                managed_fields: Some(vec![ManagedFieldsEntry::default()]),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                type_: Some("LoadBalancer".into()),
                load_balancer_class: class.map(Into::into),
                cluster_ip: Some("10.96.0.10".into()),
                selector: Some([("app".to_owned(), "web".to_owned())].into()),
                ip_families: Some(vec!["IPv4".into()]),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    node_port: Some(31000),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn slim_keeps_what_deciding_reads() {
        let mut ours = full(None, false);
        slim(&mut ours, ClassPolicy::DefaultAndExplicit);
        assert!(
            ours.metadata
                .managed_fields
                .as_ref()
                .is_none_or(Vec::is_empty)
        );
        let annotations = ours.metadata.annotations.clone().unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED));
        assert_eq!(annotations["baremetal-ccm.io/pool"], "a");
        assert!(ours.metadata.labels.is_some());
        let spec = ours.spec.clone().unwrap();
        assert_eq!(spec.cluster_ip, None);
        assert_eq!(spec.ip_families, Some(vec!["IPv4".into()]));
        let port = &spec.ports.unwrap()[0];
        assert_eq!(
            (port.port, port.protocol.as_deref(), port.node_port),
            (80, Some("TCP"), None)
        );
        assert!(is_ours(&ours, ClassPolicy::DefaultAndExplicit));
    }

    #[test]
    fn slim_reduces_foreign_services_to_what_says_they_are_not_ours() {
        let mut foreign = full(Some("example.com/other"), false);
        slim(&mut foreign, ClassPolicy::DefaultAndExplicit);
        assert!(foreign.metadata.annotations.is_none() && foreign.metadata.labels.is_none());
        assert_eq!(foreign.metadata.uid.as_deref(), Some("u1"));
        let spec = foreign.spec.clone().unwrap();
        assert_eq!(
            spec.load_balancer_class.as_deref(),
            Some("example.com/other")
        );
        assert!(spec.ports.is_none());
        // One that still carries our finalizer (its class just changed) keeps its state for
        // the release.
        let mut leaving = full(Some("example.com/other"), true);
        slim(&mut leaving, ClassPolicy::DefaultAndExplicit);
        assert!(
            leaving
                .metadata
                .annotations
                .unwrap()
                .contains_key("baremetal-ccm.io/pool")
        );
    }
}
