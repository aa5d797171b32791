//! Benchmark of the cloud-node controller (the release binary, static provider) against a
//! real apiserver and etcd from the test rig. Prints a table:
//!
//! - 1,000 Nodes registered the way kubelets in external mode register them (tainted, with
//!   `--node-ip`), the controller started only after they exist: time until every one is
//!   initialized (taint lifted, providerID and labels set, addresses written);
//! - beside floors measured in the same run by a minimal client with the same rate limit and
//!   concurrency on another 1,000 tainted Nodes: one bare Node update each (the taint
//!   lifted), and the two writes initialization needs (the Node update, then the addresses);
//! - the controller's resident set with the 2,000 Nodes cached.
//!
//! Needs the rig's tools: `eval "$(hack/tools)"` first, or run `hack/bench cloud_node`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

mod support;

use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt as _};
use rig::cluster::TestCluster;
use rig::kubelet::{KubeletNode, UNINITIALIZED};
use rig::measure::rss_kib;
use support::{BURST, QPS, controller, limited_client};

const NODES: usize = 1000;
const CONCURRENCY: usize = 4;

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256)
}

async fn register(client: &Client, prefix: &str) {
    futures::stream::iter(0..NODES)
        .map(|i| {
            let node = KubeletNode::registers(&format!("{prefix}-{i:04}")).node_ip(&ip(i));
            let client = client.clone();
            async move { node.try_create(&client).await.map(drop) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

fn initialized(node: &Node) -> bool {
    let tainted = (node.spec.as_ref().and_then(|s| s.taints.as_ref()))
        .is_some_and(|t| t.iter().any(|t| t.key == UNINITIALIZED));
    let addressed = (node.status.as_ref().and_then(|s| s.addresses.as_ref()))
        .is_some_and(|a| a.iter().any(|a| a.type_ == "InternalIP"));
    !tainted && addressed
}

/// Polls (one list a second) until every Node named `<prefix>-*` is initialized.
async fn wait_initialized(client: &Client, prefix: &str) -> Instant {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let nodes = api.list(&ListParams::default()).await.unwrap().items;
        let done = (nodes.iter())
            .filter(|n| n.name_any().starts_with(prefix) && initialized(n))
            .count();
        if done >= NODES {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{done}/{NODES} initialized");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The minimal client on the Nodes named `<prefix>-*`: the Node update lifting the taint
/// (with providerID and labels), optionally followed by the address write.
async fn floor(client: &Client, prefix: &str, with_addresses: bool) -> Duration {
    let api: Api<Node> = Api::all(client.clone());
    let nodes: Vec<(String, String)> = (api.list(&ListParams::default()).await.unwrap().items)
        .iter()
        .filter(|n| n.name_any().starts_with(prefix))
        .map(|n| (n.name_any(), n.resource_version().unwrap_or_default()))
        .collect();
    let started = Instant::now();
    futures::stream::iter(nodes.into_iter().enumerate())
        .map(|(i, (name, version))| {
            let api = api.clone();
            async move {
                let params = PatchParams::default();
                let update = serde_json::json!({
                    "metadata": {"resourceVersion": version, "labels": {"topology.kubernetes.io/zone": "dc1-a"}},
                    "spec": {"providerID": format!("baremetal://{name}"), "taints": []},
                });
                api.patch(&name, &params, &Patch::Merge(&update)).await?;
                if with_addresses {
                    let status = serde_json::json!({"status": {"addresses": [
                        {"type": "InternalIP", "address": ip(i)}, {"type": "Hostname", "address": name},
                    ]}});
                    api.patch_status(&name, &params, &Patch::Merge(&status)).await?;
                }
                Ok::<_, kube::Error>(())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = TestCluster::start()
        .await
        .expect("the rig's apiserver starts (run `eval \"$(hack/tools)\"` first)");
    let client = cluster.client();
    let limited = limited_client(&cluster).await;

    register(&client, "floor-a").await;
    let floor_update = floor(&limited, "floor-a", false).await;
    register(&client, "floor-b").await;
    let floor_both = floor(&limited, "floor-b", true).await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cloud.yaml");
    std::fs::write(
        &config,
        "static:\n  defaults: {zone: dc1-a, region: dc1, instanceType: metal}\n",
    )
    .unwrap();
    register(&client, "node").await;
    let cloud_config = format!("--cloud-config={}", config.display());
    let concurrency = format!("--concurrent-node-syncs={CONCURRENCY}");
    let started = Instant::now();
    let (mut ccm, _) = controller(
        &cluster.admin_kubeconfig(),
        "bench-nodes",
        &["--controllers=cloud-node", &cloud_config, &concurrency],
    );
    let done = wait_initialized(&client, "node-").await;
    let cold = done.saturating_duration_since(started);
    let (rss, hwm) = rss_kib(ccm.pid());
    ccm.terminate(Duration::from_secs(5));

    let ratio = |floor: Duration| cold.as_secs_f64() / floor.as_secs_f64();
    println!(
        "settings: --kube-api-qps={QPS} --kube-api-burst={BURST} --concurrent-node-syncs={CONCURRENCY}; release build; 2-core machine"
    );
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| {NODES} tainted Nodes initialized from cold, controller start to the last (s) | {:.2} |",
        cold.as_secs_f64()
    );
    println!(
        "| floor: {NODES} bare Node updates by a minimal client (s) | {:.2} |",
        floor_update.as_secs_f64()
    );
    println!(
        "| floor: {NODES} Node updates + {NODES} address writes by a minimal client (s) | {:.2} |",
        floor_both.as_secs_f64()
    );
    println!("| cold ÷ bare-update floor | {:.2} |", ratio(floor_update));
    println!(
        "| cold ÷ update+addresses floor | {:.2} |",
        ratio(floor_both)
    );
    println!(
        "| controller RSS with {} Nodes cached (MiB) | {:.1} (peak {:.1}) |",
        3 * NODES,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}
