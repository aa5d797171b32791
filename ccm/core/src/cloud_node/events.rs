//! The Event reasons of the node controllers: upstream's where upstream has one, ours otherwise.

/// `reportingController` of the cloud-node controller's Events.
pub const CLOUD_NODE: &str = "baremetal-ccm.io/cloud-node";
/// `reportingController` of the cloud-node-lifecycle controller's Events.
pub const LIFECYCLE: &str = "baremetal-ccm.io/cloud-node-lifecycle";

/// Normal (upstream): the node was initialized.
pub const SYNCED: &str = "Synced";
/// Warning: the node stays tainted; the note says why.
pub const INITIALIZATION_FAILED: &str = "InitializationFailed";
/// Warning: the provider knows no address for the node.
pub const NO_ADDRESSES: &str = "NoNodeAddresses";
/// Normal: an initialized node's addresses changed at the provider and were rewritten.
pub const ADDRESSES_UPDATED: &str = "NodeAddressesUpdated";
/// Warning: refreshing an initialized node failed; its addresses stay as they are.
pub const REFRESH_FAILED: &str = "NodeAddressesNotUpdated";
/// Normal (upstream): the Node is deleted because its machine is gone.
pub const DELETING_NODE: &str = "DeletingNode";
/// Normal: the machine is shut down; the shutdown taint was added.
pub const SHUTDOWN: &str = "NodeShutdown";
/// Normal: the node is Ready again; the shutdown taint was removed.
pub const SHUTDOWN_CLEARED: &str = "NodeShutdownCleared";
/// Warning: the provider could not say whether the node's machine exists.
pub const STATE_UNKNOWN: &str = "InstanceStateUnknown";
