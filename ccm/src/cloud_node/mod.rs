//! The cloud half of the CCM: `cloud-node` initializes Nodes registered by kubelets in
//! external mode and keeps their addresses current; `cloud-node-lifecycle` taints shut-down
//! nodes and deletes Nodes whose machine is certainly gone.

pub(crate) mod controller;
pub(crate) mod metrics;
mod monitor;
mod writer;

/// The decisions, from the core crate.
pub(crate) use baremetal_ccm_core::cloud_node::{events, lifecycle, node_ip, plan, write};
