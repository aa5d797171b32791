//! The names the product and the cluster agree on: the finalizer, annotations, labels and
//! taints of the cloud-provider contract and of our own API, and what a Service holds.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

/// The finalizer on every LoadBalancer Service we address (as upstream's service controller).
pub const FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
/// The pool a Service's addresses came from (our record of the allocation).
pub const ALLOCATED_FROM: &str = "baremetal-ccm.io/allocated-from";
/// The `loadBalancerClass` we serve (besides Services without a class).
pub const LOAD_BALANCER_CLASS: &str = "baremetal-ccm.io/lb";
/// Service annotation: the pool to allocate from.
pub const POOL_ANNOTATION: &str = "baremetal-ccm.io/pool";
/// Service annotation: the addresses requested.
pub const IPS_ANNOTATION: &str = "baremetal-ccm.io/ips";
/// Service annotation: Services with the same key may share addresses.
pub const SHARING_KEY_ANNOTATION: &str = "baremetal-ccm.io/sharing-key";
/// The taint the kubelet sets with `--cloud-provider=external` until a CCM initializes the Node.
pub const UNINITIALIZED_TAINT: &str = "node.cloudprovider.kubernetes.io/uninitialized";
/// The taint on Nodes whose machine is shut down.
pub const SHUTDOWN_TAINT: &str = "node.cloudprovider.kubernetes.io/shutdown";
/// The taint the cluster autoscaler sets on Nodes it is about to remove.
pub const AUTOSCALER_TAINT: &str = "ToBeDeletedByClusterAutoscaler";
/// The label that takes a Node out of every load balancer.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// The addresses currently in `status.loadBalancer.ingress` (the Service's allocation).
/// Entries that are not IP addresses (hostnames) are ignored: we never write them.
pub fn held_addresses(service: &Service) -> Vec<IpAddr> {
    (service.status.as_ref())
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| {
            (ingress.iter())
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}
