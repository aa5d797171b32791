//! Nodes the way a kubelet started with `--cloud-provider=external` registers them: the
//! uninitialized taint, the usual labels, a Hostname address, its system UUID, and, with
//! `--node-ip`, the provided-node-ip annotation.

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

pub const UNINITIALIZED: &str = "node.cloudprovider.kubernetes.io/uninitialized";
pub const SHUTDOWN: &str = "node.cloudprovider.kubernetes.io/shutdown";
pub const NODE_IP: &str = "alpha.kubernetes.io/provided-node-ip";

/// A Node as a kubelet in external mode creates it: the uninitialized taint, the usual
/// labels, a Hostname address, the system UUID, Ready.
#[derive(Debug, Clone)]
pub struct KubeletNode {
    pub node: Node,
}

impl KubeletNode {
    pub fn registers(name: &str) -> Self {
        let labels = [
            ("kubernetes.io/hostname", name),
            ("kubernetes.io/os", "linux"),
            ("kubernetes.io/arch", "amd64"),
        ];
        Self {
            node: Node {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some(
                        (labels.iter())
                            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                            .collect(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(NodeSpec {
                    taints: Some(vec![Taint {
                        key: UNINITIALIZED.into(),
                        value: Some("true".into()),
                        effect: "NoSchedule".into(),
                        ..Taint::default()
                    }]),
                    ..NodeSpec::default()
                }),
                status: Some(NodeStatus {
                    addresses: Some(vec![NodeAddress {
                        type_: "Hostname".into(),
                        address: name.into(),
                    }]),
                    node_info: Some(NodeSystemInfo {
                        system_uuid: format!("00000000-0000-4000-8000-{:0>12}", name.len()),
                        ..NodeSystemInfo::default()
                    }),
                    conditions: Some(vec![ready_condition("True")]),
                    ..NodeStatus::default()
                }),
            },
        }
    }

    /// The kubelet ran with `--node-ip=<value>`.
    pub fn node_ip(mut self, value: &str) -> Self {
        (self.node.metadata.annotations.get_or_insert_default())
            .insert(NODE_IP.into(), value.into());
        self
    }

    /// The kubelet ran with `--provider-id=<id>`.
    pub fn provider_id(mut self, id: &str) -> Self {
        self.node.spec.get_or_insert_default().provider_id = Some(id.into());
        self
    }

    pub fn label(mut self, key: &str, value: &str) -> Self {
        (self.node.metadata.labels.get_or_insert_default()).insert(key.into(), value.into());
        self
    }

    pub fn system_uuid(mut self, uuid: &str) -> Self {
        let status = self.node.status.get_or_insert_default();
        status.node_info.get_or_insert_default().system_uuid = uuid.into();
        self
    }

    /// Registered after initialization already happened (no uninitialized taint).
    pub fn initialized(mut self) -> Self {
        self.node.spec.get_or_insert_default().taints = None;
        self
    }

    pub fn taint(mut self, key: &str) -> Self {
        let spec = self.node.spec.get_or_insert_default();
        spec.taints.get_or_insert_default().push(Taint {
            key: key.into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        });
        self
    }

    pub fn not_ready(mut self) -> Self {
        self.node.status.get_or_insert_default().conditions = Some(vec![ready_condition("False")]);
        self
    }

    /// Creates the Node through `client`.
    pub async fn try_create(&self, client: &Client) -> Result<Node, kube::Error> {
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &self.node)
            .await
    }

    /// [`KubeletNode::try_create`] for tests: a failure panics.
    pub async fn create(self, client: &Client) -> Node {
        self.try_create(client).await.expect("node created")
    }
}

/// A `Ready` condition with `status` (`True`, `False`, `Unknown`).
pub fn ready_condition(status: &str) -> NodeCondition {
    NodeCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some("KubeletReady".into()),
        ..NodeCondition::default()
    }
}
