//! The shipped manifests as objects, and applying them (or a doc's example) as they are.

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

/// The RBAC files the kustomization ships (`rbac/…`), in its order.
pub fn shipped_rbac_files() -> Vec<String> {
    let kustomization = documents("kustomization.yaml");
    (kustomization[0]["resources"].as_array().expect("resources"))
        .iter()
        .filter_map(|r| r.as_str())
        .filter(|r| r.starts_with("rbac/"))
        .map(str::to_owned)
        .collect()
}

/// The documents of every shipped RBAC file.
pub fn shipped_rbac_documents() -> Vec<serde_json::Value> {
    (shipped_rbac_files().iter())
        .flat_map(|file| documents(file))
        .collect()
}

/// Creates every object of the shipped RBAC files as written (namespaces, ServiceAccounts,
/// roles, bindings, admission policies), in their order.
pub async fn apply_shipped_rbac(client: &kube::Client) {
    for file in shipped_rbac_files() {
        apply_documents(client, documents(&file)).await;
    }
}

/// Creates each document as written, in order.
pub async fn apply_documents(client: &kube::Client, documents: Vec<serde_json::Value>) {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use kube::api::{ApiResource, DynamicObject};
    for doc in documents {
        let kind = doc["kind"].as_str().expect("kind").to_owned();
        let (resource, namespaced) = match kind.as_str() {
            "Namespace" => (ApiResource::erase::<Namespace>(&()), false),
            "ServiceAccount" => (ApiResource::erase::<ServiceAccount>(&()), true),
            "ClusterRole" => (ApiResource::erase::<ClusterRole>(&()), false),
            "ClusterRoleBinding" => (ApiResource::erase::<ClusterRoleBinding>(&()), false),
            "Role" => (ApiResource::erase::<Role>(&()), true),
            "RoleBinding" => (ApiResource::erase::<RoleBinding>(&()), true),
            "ValidatingAdmissionPolicy" => {
                (ApiResource::erase::<ValidatingAdmissionPolicy>(&()), false)
            }
            "ValidatingAdmissionPolicyBinding" => (
                ApiResource::erase::<ValidatingAdmissionPolicyBinding>(&()),
                false,
            ),
            other => panic!("unexpected kind {other} in the shipped RBAC"),
        };
        let object: DynamicObject = serde_json::from_value(doc).expect("an object");
        let api: Api<DynamicObject> = match (namespaced, object.metadata.namespace.as_deref()) {
            (true, Some(namespace)) => Api::namespaced_with(client.clone(), namespace, &resource),
            (true, None) => panic!("{kind} without a namespace"),
            (false, _) => Api::all_with(client.clone(), &resource),
        };
        api.create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|error| panic!("{kind}: {error}"));
    }
}
