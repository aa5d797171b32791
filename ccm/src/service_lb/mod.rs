//! The `service-lb` controller: addresses for LoadBalancer Services from IPPools, written back
//! to the Service (status, annotation, conditions, events) by the leader only.
//!
//! The controller is stateless: the truth is each Service's `status.loadBalancer.ingress`. On
//! start it allocates nothing until the initial lists of Services, pools and namespaces are
//! complete and every existing allocation has been rebuilt into the allocator.

pub(crate) mod cache;
pub(crate) mod controller;
pub(crate) mod metrics;
mod pool_statuses;
mod pool_writer;
mod reconcile;
mod vanished;
mod watches;
mod writer;

/// The decisions, from the core crate.
pub(crate) use baremetal_ccm_core::service_lb::{
    adopt, class, contest, decide, events, pool_status, request, status,
};
