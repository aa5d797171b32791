//! Which Services the service-lb controller serves (the CCM contract's loadBalancerClass rules).

use k8s_openapi::api::core::v1::Service;

pub use crate::contract::LOAD_BALANCER_CLASS;

/// Whether Services without a loadBalancerClass are served too (the CCM default) or only
/// those with [`LOAD_BALANCER_CLASS`] (`--lb-class-only`, for clusters with another default
/// load-balancer implementation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassPolicy {
    DefaultAndExplicit,
    ExplicitOnly,
}

/// Whether `service` wants a load balancer from us right now. A Service that stops being ours
/// (type changed, class changed) is released by the controller because of this returning false.
pub fn is_ours(service: &Service, policy: ClassPolicy) -> bool {
    let Some(spec) = service.spec.as_ref() else {
        return false;
    };
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return false;
    }
    match (spec.load_balancer_class.as_deref(), policy) {
        (None, ClassPolicy::DefaultAndExplicit) => true,
        (None, ClassPolicy::ExplicitOnly) => false,
        (Some(class), _) => class == LOAD_BALANCER_CLASS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;

    fn service(type_: &str, class: Option<&str>) -> Service {
        Service {
            spec: Some(ServiceSpec {
                type_: Some(type_.into()),
                load_balancer_class: class.map(Into::into),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn classless_load_balancers_are_ours_unless_restricted() {
        assert!(is_ours(
            &service("LoadBalancer", None),
            ClassPolicy::DefaultAndExplicit
        ));
        assert!(!is_ours(
            &service("LoadBalancer", None),
            ClassPolicy::ExplicitOnly
        ));
    }

    #[test]
    fn our_class_is_always_ours_and_other_classes_never() {
        for policy in [ClassPolicy::DefaultAndExplicit, ClassPolicy::ExplicitOnly] {
            assert!(is_ours(
                &service("LoadBalancer", Some(LOAD_BALANCER_CLASS)),
                policy
            ));
            assert!(!is_ours(
                &service("LoadBalancer", Some("metallb.io/metallb")),
                policy
            ));
        }
    }

    #[test]
    fn other_service_types_are_not_ours() {
        assert!(!is_ours(
            &service("ClusterIP", None),
            ClassPolicy::DefaultAndExplicit
        ));
        assert!(!is_ours(
            &service("NodePort", Some(LOAD_BALANCER_CLASS)),
            ClassPolicy::DefaultAndExplicit
        ));
        assert!(!is_ours(
            &Service::default(),
            ClassPolicy::DefaultAndExplicit
        ));
    }
}
