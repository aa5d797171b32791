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

/// Whether `service` is another load-balancer implementation's: a LoadBalancer Service not
/// ours by class (another explicit class; no class under [`ClassPolicy::ExplicitOnly`]) that
/// bears no mark of our writes (the `allocated-from` annotation our first write sets). The
/// cleanup finalizer is the same for every implementation, so holding it proves nothing: such
/// a Service's finalizer, addresses and Events are left alone. (Releasing it once made the
/// controller strip another implementation's finalizer and addresses, found by the 100,000
/// Service benchmark: two writes per foreign Service, racing the burst.)
pub fn is_anothers(service: &Service, policy: ClassPolicy) -> bool {
    let load_balancer =
        (service.spec.as_ref()).is_some_and(|s| s.type_.as_deref() == Some("LoadBalancer"));
    let marked = (service.metadata.annotations.as_ref())
        .is_some_and(|a| a.contains_key(crate::contract::ALLOCATED_FROM));
    load_balancer && !is_ours(service, policy) && !marked
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
    fn another_class_with_the_shared_finalizer_is_anothers_unless_we_wrote_to_it() {
        let mut foreign = service("LoadBalancer", Some("example.com/other"));
        foreign.metadata.finalizers = Some(vec![crate::contract::FINALIZER.into()]);
        assert!(is_anothers(&foreign, ClassPolicy::DefaultAndExplicit));
        let mut ours_once = foreign.clone();
        ours_once.metadata.annotations =
            Some([(crate::contract::ALLOCATED_FROM.to_owned(), "a".to_owned())].into());
        assert!(!is_anothers(&ours_once, ClassPolicy::DefaultAndExplicit));
        assert!(is_anothers(
            &service("LoadBalancer", None),
            ClassPolicy::ExplicitOnly
        ));
        assert!(!is_anothers(
            &service("LoadBalancer", None),
            ClassPolicy::DefaultAndExplicit
        ));
        assert!(!is_anothers(
            &service("ClusterIP", None),
            ClassPolicy::DefaultAndExplicit
        ));
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
