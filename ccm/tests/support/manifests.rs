//! The shipped manifests as objects, and applying them (or a doc's example) as they are.

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, PostParams};
use serde::Deserialize as _;

pub const MANIFESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests");

/// The YAML documents of `text`, empty ones left out.
pub fn yaml_documents(text: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_json::Value::deserialize(doc).expect("the YAML is valid"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The documents of `manifests/<path>`.
pub fn documents(path: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(format!("{MANIFESTS}/{path}"))
        .unwrap_or_else(|error| panic!("manifests/{path}: {error}"));
    yaml_documents(&text)
}

/// Creates each RBAC document (ServiceAccounts, roles and their bindings) as it is written;
/// namespaced ones in their own namespace.
pub async fn apply(client: &kube::Client, documents: Vec<serde_json::Value>) {
    fn parse<T: serde::de::DeserializeOwned>(doc: serde_json::Value) -> T {
        serde_json::from_value(doc).expect("the document is an object of its kind")
    }
    for doc in documents {
        let kind = doc["kind"]
            .as_str()
            .expect("every document has a kind")
            .to_owned();
        let namespace = doc["metadata"]["namespace"].as_str().map(str::to_owned);
        let namespaced = || {
            namespace
                .clone()
                .unwrap_or_else(|| panic!("the {kind} has a namespace"))
        };
        let pp = PostParams::default();
        match kind.as_str() {
            "ServiceAccount" => Api::namespaced(client.clone(), &namespaced())
                .create(&pp, &parse::<ServiceAccount>(doc))
                .await
                .map(drop),
            "ClusterRole" => Api::all(client.clone())
                .create(&pp, &parse::<ClusterRole>(doc))
                .await
                .map(drop),
            "ClusterRoleBinding" => Api::all(client.clone())
                .create(&pp, &parse::<ClusterRoleBinding>(doc))
                .await
                .map(drop),
            "Role" => Api::namespaced(client.clone(), &namespaced())
                .create(&pp, &parse::<Role>(doc))
                .await
                .map(drop),
            "RoleBinding" => Api::namespaced(client.clone(), &namespaced())
                .create(&pp, &parse::<RoleBinding>(doc))
                .await
                .map(drop),
            other => panic!("unexpected kind {other} among the RBAC documents"),
        }
        .unwrap_or_else(|error| panic!("{kind}: {error}"));
    }
}

/// Applies `manifests/rbac/rbac.yaml`.
pub async fn apply_rbac(client: &kube::Client) {
    apply(client, documents("rbac/rbac.yaml")).await;
}
