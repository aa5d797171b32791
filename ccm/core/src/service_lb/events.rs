//! The Event reasons of the service-lb controller: upstream's CCM reasons plus ours.

/// `reportingController` of the service-lb controller's Events.
pub const CONTROLLER: &str = "baremetal-ccm.io/service-lb";

pub const ENSURED: &str = "EnsuredLoadBalancer";
pub const SYNC_FAILED: &str = "SyncLoadBalancerFailed";
pub const DELETING: &str = "DeletingLoadBalancer";
pub const DELETED: &str = "DeletedLoadBalancer";
pub const UPDATED: &str = "UpdatedLoadBalancer";
/// Warning: the deprecated `spec.loadBalancerIP` was honoured.
pub const DEPRECATED_FIELD: &str = "DeprecatedLoadBalancerIP";
/// Normal: MetalLB's annotations were read as ours (`--metallb-annotations`).
pub const METALLB_ANNOTATIONS: &str = "MetalLBAnnotationsHonoured";
/// Warning: a held address is no longer inside any pool.
pub const OUTSIDE_POOL: &str = "AddressOutsidePool";
