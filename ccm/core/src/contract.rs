//! The names the product and the cluster agree on: the finalizer, annotations, labels and
//! taints of the cloud-provider contract and of our own API, and what a Service holds.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};

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
/// MetalLB's Service annotations that we read as ours when no annotation of ours says otherwise
/// (`--metallb-annotations`): the sharing key, the requested addresses, the pool. Each under
/// MetalLB's current prefix first, then its earlier one.
pub const METALLB_SHARING_KEY: [&str; 2] = [
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];
/// See [`METALLB_SHARING_KEY`].
pub const METALLB_IPS: [&str; 2] = [
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];
/// See [`METALLB_SHARING_KEY`]. Its value names an `IPPool` (the converter keeps MetalLB's pool
/// names).
pub const METALLB_POOL: [&str; 2] = [
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];
/// The taint the kubelet sets with `--cloud-provider=external` until a CCM initializes the Node.
pub const UNINITIALIZED_TAINT: &str = "node.cloudprovider.kubernetes.io/uninitialized";
/// The taint on Nodes whose machine is shut down.
pub const SHUTDOWN_TAINT: &str = "node.cloudprovider.kubernetes.io/shutdown";
/// The taint the cluster autoscaler sets on Nodes it is about to remove.
pub const AUTOSCALER_TAINT: &str = "ToBeDeletedByClusterAutoscaler";
/// The label that takes a Node out of every load balancer.
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Why a Node may carry no load-balancer traffic whatever else it offers: what Kubernetes and
/// its cluster autoscaler mark on it. One rule for every announcer (BGP and layer 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exclusion {
    /// The Node has a deletion timestamp.
    BeingDeleted,
    /// The cluster autoscaler's [`AUTOSCALER_TAINT`]: it is about to remove the Node.
    MarkedByAutoscaler,
    /// The [`EXCLUDE_LABEL`] with any value but a boolean false.
    ExcludedByLabel,
}

impl Exclusion {
    /// The exclusion of `node`, if any (the first that applies, in the order above).
    pub fn of(node: &Node) -> Option<Exclusion> {
        let taints = (node.spec.as_ref().and_then(|s| s.taints.as_deref())).unwrap_or_default();
        let label = (node.metadata.labels.as_ref()).and_then(|l| l.get(EXCLUDE_LABEL));
        if node.metadata.deletion_timestamp.is_some() {
            Some(Exclusion::BeingDeleted)
        } else if taints.iter().any(|t| t.key == AUTOSCALER_TAINT) {
            Some(Exclusion::MarkedByAutoscaler)
        } else if label.is_some_and(|v| !is_false(v)) {
            Some(Exclusion::ExcludedByLabel)
        } else {
            None
        }
    }

    /// A short phrase for messages (`node x: being deleted`).
    pub fn reason(self) -> &'static str {
        match self {
            Exclusion::BeingDeleted => "being deleted",
            Exclusion::MarkedByAutoscaler => "marked for deletion by the cluster autoscaler",
            Exclusion::ExcludedByLabel => "excluded from external load balancers by label",
        }
    }
}

/// The exclusion label's value the way Kubernetes parses it since 1.34: only a boolean false
/// (`false`, `0`, `f`, …) includes the node; any other value, empty included, excludes it.
fn is_false(value: &str) -> bool {
    matches!(value, "0" | "f" | "F" | "false" | "FALSE" | "False")
}

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

/// Why `value` is not a valid Kubernetes label value, if it is not: at most 63 characters of
/// `[A-Za-z0-9-_.]`, alphanumeric at both ends. Empty is valid (Kubernetes allows it); a
/// topology label whose value is empty is simply not set.
pub fn label_value_problem(value: &str) -> Option<&'static str> {
    if value.len() > 63 {
        return Some("longer than 63 characters");
    }
    let bytes = value.as_bytes();
    let inner_ok =
        (bytes.iter()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let ends_ok =
        ([bytes.first(), bytes.last()].into_iter().flatten()).all(u8::is_ascii_alphanumeric);
    (!(inner_ok && ends_ok))
        .then_some("must be alphanumeric at both ends with only '-', '_' or '.' inside")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_follow_the_kubernetes_rule_and_may_be_empty() {
        for good in ["", "a", "zone-1", "A.b_c", "0", &"x".repeat(63)] {
            assert_eq!(label_value_problem(good), None, "{good:?}");
        }
        for bad in ["-a", "a-", "a b", "ü", ".a", "a_", &"x".repeat(64)] {
            assert!(label_value_problem(bad).is_some(), "{bad:?}");
        }
    }
}
