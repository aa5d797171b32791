//! What the cloud-node controllers decide, without I/O: a Node's initialization and address
//! refresh from its provider's answer (`plan`, `node_ip`), the lifecycle's shutdown taint
//! (`lifecycle`), the Node writes they plan (`write`), and the Event reasons (`events`).

pub mod events;
pub mod lifecycle;
pub mod node_ip;
pub mod plan;
pub mod write;
