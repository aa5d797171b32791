//! MetalLB as the takeover tests meet it: its objects created in a cluster (its CRDs
//! installed), and `baremetal-ccm migrate metallb` run against that cluster.

use std::path::Path;

use kube::Client;
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;

/// The namespace MetalLB's objects live in.
pub const NAMESPACE: &str = "metallb-system";

/// Creates `object` (a MetalLB object as JSON: `apiVersion`, `kind`, `metadata`, `spec`) in
/// [`NAMESPACE`]; the plural is the lower-cased kind with an `s`, as MetalLB's kinds have.
pub async fn create(client: &Client, object: serde_json::Value) {
    let api_version = object["apiVersion"]
        .as_str()
        .expect("apiVersion")
        .to_owned();
    let kind = object["kind"].as_str().expect("kind").to_owned();
    let (group, version) = api_version.split_once('/').expect("group/version");
    let resource = ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        plural: format!("{}s", kind.to_lowercase()),
        api_version,
        kind,
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &resource);
    let object: DynamicObject = serde_json::from_value(object).expect("a Kubernetes object");
    api.create(&PostParams::default(), &object)
        .await
        .expect("MetalLB object created");
}

/// `baremetal-ccm migrate metallb --from-cluster` against the cluster of `kubeconfig`, with
/// `extra` flags: (exit code, stdout, stderr). Its stderr (the report) goes to the test's log.
pub fn migrate(kubeconfig: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let output = std::process::Command::new(crate::ccm::binary())
        .args(["migrate", "metallb", "--from-cluster"])
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(extra)
        .output()
        .expect("baremetal-ccm runs");
    let text = |b: Vec<u8>| String::from_utf8(b).expect("UTF-8 output");
    let (stdout, stderr) = (text(output.stdout), text(output.stderr));
    eprintln!("migrate metallb {extra:?}: {}\n{stderr}", output.status);
    (output.status.code(), stdout, stderr)
}

/// Creates every object of a multi-document YAML stream of our objects (`migrate metallb`'s
/// output: IPPools and BGPPeers).
pub async fn apply_converted(client: &Client, yaml: &str) {
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value: serde_json::Value =
            serde::Deserialize::deserialize(document).expect("a YAML document");
        if value.is_null() {
            continue;
        }
        let object: DynamicObject = serde_json::from_value(value).expect("a Kubernetes object");
        let types = object.types.clone().expect("apiVersion and kind");
        let (group, version) = types.api_version.split_once('/').expect("group/version");
        let resource = ApiResource {
            group: group.to_owned(),
            version: version.to_owned(),
            plural: format!("{}s", types.kind.to_lowercase()),
            api_version: types.api_version.clone(),
            kind: types.kind.clone(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        api.create(&PostParams::default(), &object)
            .await
            .expect("converted object created");
    }
}
