//! Layer 2 as the chart installs it: on by default with a gossip key Secret it generates
//! (32 random bytes) and keeps across upgrades, or one the operator names; the speaker gets
//! the key as a read-only file, the port as a flag, and `NET_RAW` (as uid 0, the only way a
//! container process holds an added capability) only while layer 2 is on.

use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use rig::cluster::TestCluster;
use serde_json::Value;

use super::chart::{render, render_against, values_file};

const SECRET: &str = "baremetal-ccm-l2-gossip";
const KEY_FILE_FLAG: &str = "--l2-gossip-key-file=";

fn secrets(objects: &[Value]) -> Vec<&Value> {
    (objects.iter()).filter(|o| o["kind"] == "Secret").collect()
}

fn speaker_pod(objects: &[Value]) -> &Value {
    let daemonset = (objects.iter())
        .find(|o| o["kind"] == "DaemonSet" && o["metadata"]["name"] == "baremetal-ccm-speaker")
        .expect("the speaker DaemonSet");
    &daemonset["spec"]["template"]["spec"]
}

fn container<'a>(pod: &'a Value, name: &str) -> &'a Value {
    (pod["containers"].as_array().unwrap().iter())
        .find(|c| c["name"] == name)
        .unwrap()
}

fn args(container: &Value) -> Vec<&str> {
    (container["args"].as_array().unwrap().iter())
        .map(|a| a.as_str().unwrap())
        .collect()
}

/// The bytes of the key in a rendered Secret (`data` holds them base64-encoded).
fn key_of(secret: &Value) -> Vec<u8> {
    let secret: Secret = serde_json::from_value(secret.clone()).unwrap();
    secret.data.unwrap()["key"].0.clone()
}

fn render_with(values: &str) -> Vec<Value> {
    let (_dir, path) = values_file(values);
    render(&[&path])
}

/// The Secret volume the key file is read from, found through the flag's path and the mount.
fn key_volume(pod: &Value) -> &Value {
    let speaker = container(pod, "speaker");
    let file = (args(speaker).into_iter())
        .find_map(|a| a.strip_prefix(KEY_FILE_FLAG))
        .expect("the key file flag");
    let (dir, name) = file.rsplit_once('/').unwrap();
    let mount = (speaker["volumeMounts"].as_array().unwrap().iter())
        .find(|m| m["mountPath"] == dir)
        .expect("the key file's directory is mounted");
    assert_eq!(mount["readOnly"], true);
    let volume = (pod["volumes"].as_array().unwrap().iter())
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    // The whole Secret (`key`, and `previous-key` during a rotation), so the file is named
    // after the Secret's key.
    assert!(volume["secret"].get("items").is_none(), "{volume}");
    assert_eq!(name, "key");
    assert_eq!(
        volume["secret"]["optional"], false,
        "a missing Secret is an event"
    );
    &volume["secret"]
}

#[test]
fn by_default_the_chart_generates_a_32_byte_key_and_the_speaker_reads_it_as_a_file() {
    let objects = render(&[]);
    let secrets = secrets(&objects);
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0]["metadata"]["name"], SECRET);
    assert_eq!(secrets[0]["metadata"]["namespace"], "kube-system");
    let key = key_of(secrets[0]);
    assert_eq!(key.len(), 32);
    let again = render(&[]);
    assert_ne!(
        key_of(self::secrets(&again)[0]),
        key,
        "a render without a cluster to read draws a new key"
    );
    let pod = speaker_pod(&objects);
    assert_eq!(key_volume(pod)["secretName"], SECRET);
    let speaker = container(pod, "speaker");
    assert!(args(speaker).contains(&"--l2-gossip-port=7947"));
    let context = &speaker["securityContext"];
    assert_eq!(
        context["capabilities"]["add"],
        serde_json::json!(["NET_RAW"])
    );
    assert_eq!(context["runAsUser"], 0);
}

#[test]
fn a_named_secret_is_mounted_and_none_is_generated() {
    let objects = render_with("speaker:\n  l2:\n    existingSecret: gossip-key\n");
    assert!(secrets(&objects).is_empty());
    assert_eq!(
        key_volume(speaker_pod(&objects))["secretName"],
        "gossip-key"
    );
}

#[test]
fn the_port_value_sets_the_flag_and_the_declared_port() {
    let objects = render_with("speaker:\n  l2:\n    gossipPort: 17946\n");
    let speaker = container(speaker_pod(&objects), "speaker");
    assert!(args(speaker).contains(&"--l2-gossip-port=17946"));
    let gossip = (speaker["ports"].as_array().unwrap().iter())
        .find(|p| p["name"] == "l2-gossip")
        .unwrap();
    assert_eq!(gossip["containerPort"], 17946);
    assert_eq!(gossip["protocol"], "UDP");
}

#[test]
fn with_layer_2_off_the_speaker_runs_non_root_without_capabilities_key_or_secret() {
    let objects = render_with("speaker:\n  l2:\n    enabled: false\n");
    assert!(secrets(&objects).is_empty());
    let pod = speaker_pod(&objects);
    let speaker = container(pod, "speaker");
    assert!(
        !args(speaker).iter().any(|a| a.starts_with("--l2-")),
        "{:?}",
        args(speaker)
    );
    let context = &speaker["securityContext"];
    assert_eq!(context["runAsNonRoot"], true);
    assert_eq!(context["runAsUser"], 65532);
    assert!(context["capabilities"].get("add").is_none());
    assert!(
        !(pod["volumes"].as_array().unwrap().iter()).any(|v| v.get("secret").is_some()),
        "no key volume"
    );
    assert!(
        !(speaker["ports"].as_array().unwrap().iter()).any(|p| p["name"] == "l2-gossip"),
        "no gossip port"
    );
}

#[tokio::test]
async fn an_upgrade_keeps_the_key_the_cluster_holds() {
    rig::init_test_logging();
    let cluster = TestCluster::start().await.unwrap();
    let key = b"the key every running speaker holds".to_vec();
    // As the release installed it: Helm takes over only what it owns.
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET.to_owned()),
            namespace: Some("kube-system".to_owned()),
            labels: Some([("app.kubernetes.io/managed-by".to_owned(), "Helm".to_owned())].into()),
            annotations: Some(
                [
                    ("meta.helm.sh/release-name", "baremetal-ccm"),
                    ("meta.helm.sh/release-namespace", "kube-system"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            ),
            ..Default::default()
        },
        data: Some([("key".to_owned(), ByteString(key.clone()))].into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(cluster.client(), "kube-system")
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let kubeconfig: &Path = &cluster.admin_kubeconfig();
    for values in [None, Some("speaker:\n  l2:\n    gossipPort: 17946\n")] {
        let file = values.map(values_file);
        let paths: Vec<&Path> = file.iter().map(|(_, p)| p.as_path()).collect();
        let objects = render_against(kubeconfig, &paths);
        let secrets = secrets(&objects);
        assert_eq!(secrets.len(), 1);
        assert_eq!(key_of(secrets[0]), key, "values {values:?}");
    }
}
