//! The `service-lb` controller: addresses for LoadBalancer Services from IPPools, written back
//! to the Service (status, annotation, conditions, events) by the leader only.
//!
//! The controller is stateless: the truth is each Service's `status.loadBalancer.ingress`. On
//! start it allocates nothing until the initial lists of Services, pools and namespaces are
//! complete and every existing allocation has been rebuilt into the allocator.

pub mod adopt;
pub mod cache;
pub mod class;
pub mod contest;
pub mod controller;
pub mod decide;
pub mod events;
pub mod metrics;
mod outcome;
pub mod pool_status;
pub mod request;
pub mod status;
