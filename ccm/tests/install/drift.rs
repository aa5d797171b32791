//! One truth between the chart and the kustomize manifests: the chart with its default values
//! renders exactly the objects `kubectl apply -k manifests/` creates, and with the OpenNebula
//! provider exactly those of `manifests/opennebula/`, but for what Helm adds (its labels, the
//! CRDs' keep policy, the pods' cloud-config checksum, the layer-2 gossip key Secret it
//! generates) and the cloud config's comments.
//!
//! The kustomizations are plain lists of resources (no patches, no generators), so they are
//! read here as kustomize reads them; a kustomization that gains anything else fails this test
//! rather than being misread.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::chart::{render, values_file};
use super::repo;

/// Labels and annotations Helm's rendering adds that the kustomize manifests do not carry.
const HELM_LABELS: [&str; 4] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
];
const HELM_ANNOTATIONS: [&str; 2] = ["helm.sh/resource-policy", "checksum/cloud-config"];
/// The Secret with the layer-2 gossip key that the chart generates (a random key, kept across
/// upgrades). Kustomize cannot draw a random key: the base mounts the Secret by this name and
/// `manifests/README.md` gives the command that creates it.
const GENERATED_SECRET: &str = "Secret kube-system/baremetal-ccm-l2-gossip";

/// The chart's objects without the Secret it generates, which must be there.
fn without_generated_secret(objects: Vec<Value>) -> Vec<Value> {
    let (secret, rest): (Vec<Value>, Vec<Value>) =
        (objects.into_iter()).partition(|o| key(o) == GENERATED_SECRET);
    assert_eq!(secret.len(), 1, "the chart generates {GENERATED_SECRET}");
    rest
}

/// The objects of the kustomization in `dir`, in its order (resources that are directories
/// are kustomizations themselves).
fn kustomize(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    let kustomization: Value = serde_yaml::from_str(&text).unwrap();
    let keys: Vec<&String> = kustomization.as_object().unwrap().keys().collect();
    for key in &keys {
        assert!(
            ["apiVersion", "kind", "resources"].contains(&key.as_str()),
            "{}: `{key}` is more than a list of resources; read it with kustomize",
            dir.display()
        );
    }
    let mut objects = Vec::new();
    for resource in kustomization["resources"].as_array().unwrap() {
        let path = dir.join(resource.as_str().unwrap());
        if path.is_dir() {
            objects.extend(kustomize(&path));
        } else {
            let text = std::fs::read_to_string(&path).unwrap();
            objects.extend(rig_documents(&text));
        }
    }
    objects
}

fn rig_documents(text: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|doc| !doc.is_null())
        .collect()
}

/// `kind namespace/name` of an object.
fn key(object: &Value) -> String {
    let meta = &object["metadata"];
    format!(
        "{} {}/{}",
        object["kind"].as_str().unwrap(),
        meta["namespace"].as_str().unwrap_or(""),
        meta["name"].as_str().unwrap()
    )
}

/// Removes `names` from the map at `object[field]`, and the map if it is then empty.
fn strip(object: &mut Value, field: &str, names: &[&str]) {
    let Some(map) = object.get_mut(field).and_then(Value::as_object_mut) else {
        return;
    };
    for name in names {
        map.remove(*name);
    }
    if map.is_empty() {
        object.as_object_mut().unwrap().remove(field);
    }
}

/// An object as compared: Helm's additions gone, the cloud config parsed (its comments are
/// the manifests' documentation, its content is what must agree).
fn normalized(mut object: Value) -> Value {
    for path in ["/metadata", "/spec/template/metadata"] {
        if let Some(meta) = object.pointer_mut(path) {
            strip(meta, "labels", &HELM_LABELS);
            strip(meta, "annotations", &HELM_ANNOTATIONS);
        }
    }
    if object["kind"] == "ConfigMap"
        && let Some(text) = object.pointer("/data/cloud.yaml").and_then(Value::as_str)
    {
        let parsed: Value = serde_yaml::from_str(text).unwrap();
        object["data"]["cloud.yaml"] = parsed;
    }
    object
}

fn by_key(objects: Vec<Value>) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for object in objects {
        let key = key(&object);
        assert!(
            map.insert(key.clone(), normalized(object)).is_none(),
            "{key} twice"
        );
    }
    map
}

/// Asserts that the two sets of objects are the same, naming every difference.
fn assert_same(chart: Vec<Value>, kustomize: Vec<Value>, what: &str) {
    let (chart, kustomize) = (by_key(chart), by_key(kustomize));
    let only_chart: Vec<&String> = chart
        .keys()
        .filter(|k| !kustomize.contains_key(*k))
        .collect();
    let only_kustomize: Vec<&String> = kustomize
        .keys()
        .filter(|k| !chart.contains_key(*k))
        .collect();
    assert!(
        only_chart.is_empty() && only_kustomize.is_empty(),
        "{what}: objects only the chart renders: {only_chart:?}; only the manifests: {only_kustomize:?}"
    );
    let differing: Vec<String> = (chart.iter())
        .filter(|(k, v)| kustomize[*k] != **v)
        .map(|(k, v)| {
            format!(
                "{k}:\n  chart:     {}\n  manifests: {}",
                serde_json::to_string(v).unwrap(),
                serde_json::to_string(&kustomize[k]).unwrap()
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "{what}: objects that differ:\n{}",
        differing.join("\n")
    );
    assert!(
        chart.len() >= 15,
        "{what}: {} objects compared",
        chart.len()
    );
}

#[test]
fn the_chart_with_default_values_renders_what_the_kustomize_base_ships() {
    assert_same(
        without_generated_secret(render(&[])),
        kustomize(&repo().join("manifests")),
        "charts/baremetal-ccm (default values) vs manifests/",
    );
}

#[test]
fn the_chart_with_the_opennebula_provider_renders_what_the_overlay_ships() {
    // The overlay grants the OpenNebula RBAC for the Secret kube-system/opennebula and leaves
    // the cloud config to the operator; the chart writes both from one value.
    let (_dir, values) = values_file(
        "cloudConfig:\n  provider: opennebula\n  opennebula:\n    endpoint: https://one.example.net:2633/RPC2\n    credentials:\n      secret: {namespace: kube-system, name: opennebula, key: credentials}\n",
    );
    let without_cloud_config = |objects: Vec<Value>| -> Vec<Value> {
        (objects.into_iter())
            .filter(|o| key(o) != "ConfigMap kube-system/baremetal-ccm-cloud-config")
            .collect()
    };
    assert_same(
        without_cloud_config(without_generated_secret(render(&[&values]))),
        without_cloud_config(kustomize(&repo().join("manifests/opennebula"))),
        "charts/baremetal-ccm (provider opennebula) vs manifests/opennebula/",
    );
}

#[test]
fn the_chart_keeps_its_crds_on_uninstall_and_upgrades_them_as_templates() {
    let crds: Vec<Value> = (render(&[]).into_iter())
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 2, "IPPool and BGPPeer");
    for crd in &crds {
        assert_eq!(
            crd["metadata"]["annotations"]["helm.sh/resource-policy"],
            "keep",
            "{}",
            key(crd)
        );
    }
    assert!(
        !super::chart::chart_dir().join("crds").exists(),
        "CRDs in crds/ are never upgraded by Helm: they are templates (templates/crds.yaml)"
    );
    let (_dir, values) = values_file("crds:\n  install: true\n  keep: false\n");
    for crd in (render(&[&values]).into_iter()).filter(|o| o["kind"] == "CustomResourceDefinition")
    {
        assert!(
            crd.pointer("/metadata/annotations/helm.sh~1resource-policy")
                .is_none(),
            "{}",
            key(&crd)
        );
    }
}
