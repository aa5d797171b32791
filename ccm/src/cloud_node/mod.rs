//! The cloud half of the CCM: `cloud-node` initializes Nodes registered by kubelets in
//! external mode and keeps their addresses current; `cloud-node-lifecycle` taints shut-down
//! nodes and deletes Nodes whose machine is certainly gone.

pub mod controller;
pub mod events;
pub mod lifecycle;
pub mod metrics;
mod monitor;
pub mod node_ip;
pub mod plan;
