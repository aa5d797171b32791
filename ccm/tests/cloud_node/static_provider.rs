//! The cloud-node and cloud-node-lifecycle controllers with the static provider, as the real
//! binary against a real apiserver, with Nodes created the way kubelets in external mode
//! create them.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::process::Command;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use rig::ccm::*;
use rig::nodes::*;
use rig::service::*;

const CONFIG: &str = r#"
provider: static
static:
  defaults: {zone: dc1-a, region: dc1, instanceType: metal}
  nodes:
    - pattern: "gpu-*"
      instanceType: gpu-a100
    - name: pinned
      addresses:
        - {type: InternalIP, address: "192.0.2.20"}
        - {type: ExternalIP, address: "203.0.113.20"}
    - name: custom-id
      providerID: "baremetal://rack3/custom-id"
"#;

fn start(
    cluster: &rig::cluster::TestCluster,
    config: &tempfile::TempDir,
    extra: &[&str],
) -> rig::process::Process {
    let path = config.path().join("cloud.yaml");
    let cloud_config = format!("--cloud-config={}", path.display());
    let mut args = vec![
        "--controllers=cloud-node,cloud-node-lifecycle",
        "--node-monitor-period=1s",
        cloud_config.as_str(),
    ];
    args.extend_from_slice(extra);
    start_ccm(&cluster.admin_kubeconfig(), "ccm-nodes", &args).0
}

/// Events about a node: (type, reason, message).
async fn node_events(client: &kube::Client, name: &str) -> Vec<(String, String, String)> {
    events_for(client, "default", name).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tainted_nodes_are_initialized_by_the_rules_of_the_ccm_contract() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let config = cloud_config(CONFIG);
    let _ccm = start(&cluster, &config, &[]);

    KubeletNode::registers("worker-1")
        .node_ip("192.0.2.11")
        .label("example.com/rack", "r1")
        .create(&client)
        .await;
    KubeletNode::registers("dual")
        .node_ip("2001:db8::12,192.0.2.12")
        .create(&client)
        .await;
    KubeletNode::registers("gpu-3")
        .node_ip("192.0.2.13")
        .provider_id("baremetal://chassis-77")
        .create(&client)
        .await;
    KubeletNode::registers("pinned")
        .node_ip("192.0.2.20")
        .create(&client)
        .await;
    KubeletNode::registers("custom-id").create(&client).await;

    let worker = wait_node(&client, "worker-1", is_initialized).await;
    assert_eq!(
        provider_id(&worker).as_deref(),
        Some("baremetal://worker-1")
    );
    let worker_labels = labels(&worker);
    for (key, value) in [
        ("topology.kubernetes.io/zone", "dc1-a"),
        ("failure-domain.beta.kubernetes.io/zone", "dc1-a"),
        ("topology.kubernetes.io/region", "dc1"),
        ("failure-domain.beta.kubernetes.io/region", "dc1"),
        ("node.kubernetes.io/instance-type", "metal"),
        ("beta.kubernetes.io/instance-type", "metal"),
        ("example.com/rack", "r1"),
        ("kubernetes.io/hostname", "worker-1"),
    ] {
        assert_eq!(
            worker_labels.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    // Only the cloud taint is lifted; the apiserver's not-ready taint stays.
    assert_eq!(taint_keys(&worker), ["node.kubernetes.io/not-ready"]);
    let worker = wait_node(&client, "worker-1", |n| addresses(n).len() == 2).await;
    assert_eq!(
        addresses(&worker),
        [
            ("InternalIP".to_owned(), "192.0.2.11".to_owned()),
            ("Hostname".to_owned(), "worker-1".to_owned()),
        ]
    );
    let synced = wait_event(&client, "default", "worker-1", "Synced").await;
    assert_eq!(synced, "Node synced successfully");

    // Dual-stack node IPs, both first, in the kubelet's order.
    let dual = wait_node(&client, "dual", |n| {
        is_initialized(n) && addresses(n).len() == 3
    })
    .await;
    assert_eq!(
        addresses(&dual),
        [
            ("InternalIP".to_owned(), "2001:db8::12".to_owned()),
            ("InternalIP".to_owned(), "192.0.2.12".to_owned()),
            ("Hostname".to_owned(), "dual".to_owned()),
        ]
    );

    // A providerID the kubelet set is kept; the pattern's instance type applies.
    let gpu = wait_node(&client, "gpu-3", is_initialized).await;
    assert_eq!(provider_id(&gpu).as_deref(), Some("baremetal://chassis-77"));
    assert_eq!(
        labels(&gpu)
            .get("node.kubernetes.io/instance-type")
            .map(String::as_str),
        Some("gpu-a100")
    );

    // Addresses pinned in the file: the node IP matches one, the ExternalIP follows.
    let pinned = wait_node(&client, "pinned", |n| {
        is_initialized(n) && addresses(n).len() == 3
    })
    .await;
    assert_eq!(
        addresses(&pinned),
        [
            ("InternalIP".to_owned(), "192.0.2.20".to_owned()),
            ("ExternalIP".to_owned(), "203.0.113.20".to_owned()),
            ("Hostname".to_owned(), "pinned".to_owned()),
        ]
    );

    // An explicit providerID from the file; no address known: initialized, with a warning,
    // and the kubelet's Hostname address left alone.
    let custom = wait_node(&client, "custom-id", is_initialized).await;
    assert_eq!(
        provider_id(&custom).as_deref(),
        Some("baremetal://rack3/custom-id")
    );
    let warning = wait_event(&client, "default", "custom-id", "NoNodeAddresses").await;
    assert!(warning.contains("--node-ip"), "{warning}");
    assert_eq!(
        addresses(&custom),
        [("Hostname".to_owned(), "custom-id".to_owned())]
    );

    // Initialized nodes stay as they are: no second Synced event for anyone.
    for name in ["worker-1", "dual", "gpu-3", "pinned", "custom-id"] {
        wait_event(&client, "default", name, "Synced").await;
        let synced = (node_events(&client, name).await.into_iter())
            .filter(|e| e.1 == "Synced")
            .count();
        assert_eq!(synced, 1, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_with_bad_input_stay_tainted_and_say_why_until_fixed() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let config = cloud_config(CONFIG);
    let metrics = Metrics::on_free_port(&cluster.admin_kubeconfig());
    let _ccm = start(&cluster, &config, &[&metrics.flag()]);

    let created = [
        KubeletNode::registers("pinned").node_ip("192.0.2.99"),
        KubeletNode::registers("spaced").node_ip("192.0.2.30, 2001:db8::30"),
        KubeletNode::registers("foreign").provider_id("aws:///eu-west-1a/i-0abc"),
        KubeletNode::registers("unspecified").node_ip("0.0.0.0"),
    ];
    for node in created.clone() {
        node.create(&client).await;
    }
    let expected = [
        (
            "pinned",
            "node IP 192.0.2.99 (from alpha.kubernetes.io/provided-node-ip) is not among the instance's addresses (InternalIP 192.0.2.20, ExternalIP 203.0.113.20, Hostname pinned)",
        ),
        ("spaced", "\" 2001:db8::30\" is not an IP address"),
        (
            "foreign",
            "providerID \"aws:///eu-west-1a/i-0abc\" is not of this provider (expected baremetal://foreign)",
        ),
        ("unspecified", "the unspecified address is not a node IP"),
    ];
    for (name, reason) in expected {
        let note = wait_event(&client, "default", name, "InitializationFailed").await;
        assert!(note.contains(reason), "{name}: {note}");
    }
    // The retries run again (the controller counts every failed initialization): still
    // tainted, nothing else touched, and one Warning per node however often the retry fails.
    const FAILURES: &str = "baremetal_ccm_cloud_node_initialization_errors_total";
    let first = metrics.sum(FAILURES).await;
    let again = first + f64::from(u32::try_from(created.len()).unwrap());
    metrics.wait_sum(FAILURES, again).await;
    let api: Api<Node> = Api::all(client.clone());
    for registered in &created {
        let name = registered.node.metadata.name.clone().unwrap();
        let node = api.get(&name).await.unwrap();
        assert!(!is_initialized(&node), "{name} must stay tainted");
        assert_eq!(provider_id(&node), provider_id(&registered.node), "{name}");
        assert_eq!(labels(&node), labels(&registered.node), "{name}");
        assert_eq!(addresses(&node), addresses(&registered.node), "{name}");
        let warnings = (node_events(&client, &name).await.into_iter())
            .filter(|e| e.1 == "InitializationFailed")
            .count();
        assert_eq!(warnings, 1, "{name}");
    }

    // The kubelet restarted with the right --node-ip: the node initializes.
    let patch = serde_json::json!({"metadata": {"annotations": {NODE_IP: "192.0.2.20"}}});
    api.patch("pinned", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let pinned = wait_node(&client, "pinned", is_initialized).await;
    assert_eq!(provider_id(&pinned).as_deref(), Some("baremetal://pinned"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initialized_nodes_are_refreshed_and_static_nodes_are_never_deleted() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let config = cloud_config(CONFIG);
    let _ccm = start(&cluster, &config, &["--node-status-update-frequency=1s"]);
    let api: Api<Node> = Api::all(client.clone());

    // Someone rewrote an initialized node's addresses: the refresh puts the provider's back.
    KubeletNode::registers("pinned")
        .initialized()
        .node_ip("192.0.2.20")
        .provider_id("baremetal://pinned")
        .create(&client)
        .await;
    let pinned = wait_node(&client, "pinned", |n| addresses(n).len() == 3).await;
    assert_eq!(
        addresses(&pinned)[0],
        ("InternalIP".to_owned(), "192.0.2.20".to_owned())
    );
    let stale = serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.250"}]}});
    api.patch_status("pinned", &PatchParams::default(), &Patch::Merge(&stale))
        .await
        .unwrap();
    wait_node(&client, "pinned", |n| {
        addresses(n).first() == Some(&("InternalIP".to_owned(), "192.0.2.20".to_owned()))
    })
    .await;
    wait_event(&client, "default", "pinned", "NodeAddressesUpdated").await;

    // A Ready node with a leftover shutdown taint loses it; others stay.
    KubeletNode::registers("back")
        .initialized()
        .taint(SHUTDOWN)
        .taint("example.com/keep")
        .create(&client)
        .await;
    let back = wait_node(&client, "back", |n| {
        !taint_keys(n).iter().any(|k| k == SHUTDOWN)
    })
    .await;
    assert!(taint_keys(&back).iter().any(|k| k == "example.com/keep"));
    wait_event(&client, "default", "back", "NodeShutdownCleared").await;

    // A NotReady static node: its machine "exists"; never tainted shut down, never deleted.
    KubeletNode::registers("down")
        .initialized()
        .not_ready()
        .create(&client)
        .await;
    // Evidence that the lifecycle monitor checked "down": it clears a shutdown taint put back
    // on "back" (a later watch event than "down"'s creation, so every pass that sees it sees
    // "down" too) twice; the first of those passes has finished, "down" included.
    for _ in 0..2 {
        let taint = serde_json::json!({"spec": {"taints": [
            {"key": SHUTDOWN, "effect": "NoSchedule"},
            {"key": "example.com/keep", "effect": "NoSchedule"},
        ]}});
        api.patch("back", &PatchParams::default(), &Patch::Merge(&taint))
            .await
            .unwrap();
        wait_node(&client, "back", |n| {
            !taint_keys(n).iter().any(|k| k == SHUTDOWN)
        })
        .await;
    }
    let down = api
        .get("down")
        .await
        .expect("a static node is never deleted");
    assert!(!taint_keys(&down).iter().any(|k| k == SHUTDOWN));
}

#[test]
fn a_broken_cloud_config_stops_the_controller_naming_the_field() {
    let cases = [
        (
            "static:\n  nodes:\n    - name: a\n      zonne: b\n",
            "static.nodes[0].zonne: unknown field `zonne`",
        ),
        (
            "static:\n  defaults:\n    zone: [a]\n",
            "static.defaults.zone: invalid type",
        ),
        ("provider: aws\n", "provider: unknown variant `aws`"),
        (
            "static:\n  nodes:\n    - {name: a, zone: 'eu west'}\n",
            "static.nodes[0].zone: \"eu west\" is not a valid label value",
        ),
    ];
    for (text, expected) in cases {
        let config = cloud_config(text);
        let output = Command::new(rig::ccm::binary())
            .arg("controller")
            .arg(format!(
                "--cloud-config={}",
                config.path().join("cloud.yaml").display()
            ))
            .arg("--kubeconfig=/nonexistent/kubeconfig")
            .arg("--admin-bind-address=127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(expected),
            "{text}: expected {expected:?} in {stderr}"
        );
        assert!(
            !stderr.contains("kubeconfig"),
            "stopped before connecting: {stderr}"
        );
    }
}
