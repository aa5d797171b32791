//! Waiting on what the node controllers write to Nodes (registered with
//! [`crate::kubelet::KubeletNode`]).

use std::collections::BTreeMap;

pub use crate::kubelet::{KubeletNode, NODE_IP, SHUTDOWN, UNINITIALIZED, ready_condition};
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::ccm::WAIT;
use crate::process::wait_for;

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
