//! Nodes the way a kubelet started with `--cloud-provider=external` registers them, and
//! waiting on what the node controllers write.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use rig::process::wait_for;

use super::WAIT;

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

    pub async fn create(self, client: &Client) -> Node {
        Api::<Node>::all(client.clone())
            .create(&PostParams::default(), &self.node)
            .await
            .expect("node created")
    }
}

fn ready_condition(status: &str) -> NodeCondition {
    NodeCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some("KubeletReady".into()),
        ..NodeCondition::default()
    }
}

/// Sets the node's Ready condition, as its kubelet (or the node-lifecycle controller) would.
pub async fn set_ready(client: &Client, name: &str, ready: bool) {
    let patch = serde_json::json!({
        "status": { "conditions": [ready_condition(if ready { "True" } else { "False" })] }
    });
    Api::<Node>::all(client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .expect("node status patched");
}

/// Waits until the node satisfies `check`; returns it. Panics with the node's state otherwise.
pub async fn wait_node(client: &Client, name: &str, check: impl Fn(&Node) -> bool) -> Node {
    let api: Api<Node> = Api::all(client.clone());
    let found = wait_for(WAIT, || async {
        let node = api.get(name).await.ok()?;
        check(&node).then_some(node)
    })
    .await;
    match found {
        Some(node) => node,
        None => panic!(
            "node {name} did not reach the expected state within {WAIT:?}: {:#?}",
            api.get(name).await.map(|n| (n.spec, n.metadata.labels))
        ),
    }
}

pub fn taint_keys(node: &Node) -> Vec<String> {
    (node.spec.as_ref().and_then(|s| s.taints.clone()))
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.key)
        .collect()
}

pub fn is_initialized(node: &Node) -> bool {
    !taint_keys(node).iter().any(|k| k == UNINITIALIZED)
}

pub fn provider_id(node: &Node) -> Option<String> {
    node.spec.as_ref().and_then(|s| s.provider_id.clone())
}

pub fn labels(node: &Node) -> BTreeMap<String, String> {
    node.metadata.labels.clone().unwrap_or_default()
}

/// `status.addresses` as (type, address).
pub fn addresses(node: &Node) -> Vec<(String, String)> {
    (node.status.as_ref().and_then(|s| s.addresses.clone()))
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect()
}

/// Writes a cloud-config file into a fresh temporary directory.
pub fn cloud_config(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary directory");
    std::fs::write(dir.path().join("cloud.yaml"), text).expect("cloud config written");
    dir
}
