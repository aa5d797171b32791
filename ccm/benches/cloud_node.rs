//! Benchmark of the cloud-node controller (the release binary, static provider) against a
//! real apiserver and etcd from the test rig. Prints two tables.
//!
//! Unthrottled, with kwok keeping every Node Ready (Lease renewals, status heartbeats) as
//! kubelets would: `CLOUD_NODE_BENCH_NODES` (default 1,000) tainted Nodes initialized from
//! cold by the controller with its client-side rate limit off, beside the same two writes per
//! Node by a minimal client without any rate limit at the same concurrency, on as many other
//! Nodes (all of them registered and Ready before either runs, so both see the same
//! heartbeat load); the ratio (issue 16's target: ≤ 1.3); the controller's writes and RSS.
//!
//! With the controller's usual client-side limit:
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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use rig::cluster::TestCluster;
use rig::kubelet::{KubeletNode, UNINITIALIZED};
use rig::kwok::Kwok;
use rig::measure::rss_kib;
use support::{BURST, QPS, controller, limited_client};
use tokio::sync::Notify;

const NODES: usize = 1000;
const CONCURRENCY: usize = 4;

fn ip(i: usize) -> String {
    format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256)
}

/// `CLOUD_NODE_BENCH_NODES`, 1,000 by default: the unthrottled section's Node count.
fn kwok_nodes() -> usize {
    support::count_from_env("CLOUD_NODE_BENCH_NODES", 1000)
}

async fn register(client: &Client, prefix: &str) {
    register_as(client, prefix, NODES, KubeletNode::registers).await;
}

/// Registers `count` Nodes `<prefix>-0000`… made by `make`, each with `--node-ip`.
async fn register_as(client: &Client, prefix: &str, count: usize, make: fn(&str) -> KubeletNode) {
    futures::stream::iter(0..count)
        .map(|i| {
            let node = make(&format!("{prefix}-{i:04}")).node_ip(&ip(i));
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

/// Polls (ten lists a second) until `count` Nodes named `<prefix>-*` are initialized.
async fn wait_initialized(client: &Client, prefix: &str, count: usize) -> Instant {
    let api: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let nodes = api.list(&ListParams::default()).await.unwrap().items;
        let done = (nodes.iter())
            .filter(|n| n.name_any().starts_with(prefix) && initialized(n))
            .count();
        if done >= count {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{done}/{count} initialized");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The minimal client on the Nodes named `<prefix>-*`: the Node update lifting the taint
/// (with providerID and labels), optionally followed by the address write.
/// `precondition`: the Node update carries the `resourceVersion` it was decided on (an update,
/// as the controller's); without it the patch cannot conflict with a heartbeat.
async fn floor(
    client: &Client,
    prefix: &str,
    with_addresses: bool,
    precondition: bool,
) -> Duration {
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
                let mut update = serde_json::json!({
                    "metadata": {"labels": {"topology.kubernetes.io/zone": "dc1-a"}},
                    "spec": {"providerID": format!("baremetal://{name}"), "taints": []},
                });
                if precondition {
                    update["metadata"]["resourceVersion"] = version.into();
                }
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

/// The Nodes of one prefix seen initialized, and when the first and the last were.
type PrefixSeen = (HashSet<String>, Option<Instant>, Option<Instant>);

/// When Nodes were first seen initialized, per name prefix (up to the last `-`), by one watch.
#[derive(Default)]
struct Initialized {
    state: std::sync::Mutex<HashMap<String, PrefixSeen>>,
    changed: Notify,
}

fn watch_initialized(client: Client, seen: Arc<Initialized>) {
    tokio::spawn(async move {
        let mut events = watcher(Api::<Node>::all(client), watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        while let Some(event) = events.next().await {
            let Ok(node) = event else { continue };
            if !initialized(&node) {
                continue;
            }
            let name = node.name_any();
            let prefix = name.rsplit_once('-').map_or("", |(p, _)| p).to_owned();
            let now = Instant::now();
            let mut state = seen.state.lock().expect("nothing panics holding the lock");
            let (names, first, last) = state.entry(prefix).or_default();
            if names.insert(name) {
                first.get_or_insert(now);
                *last = Some(now);
                drop(state);
                seen.changed.notify_waiters();
            }
        }
    });
}

/// Waits until `count` Nodes `<prefix>-*` were seen initialized; returns when the first and
/// the last were.
async fn wait_seen(seen: &Initialized, prefix: &str, count: usize) -> (Instant, Instant) {
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let notified = seen.changed.notified();
        let done = {
            let state = seen.state.lock().expect("nothing panics holding the lock");
            match state.get(prefix) {
                Some((names, Some(first), Some(last))) if names.len() >= count => {
                    return (*first, *last);
                }
                Some((names, ..)) => names.len(),
                None => 0,
            }
        };
        assert!(
            Instant::now() < deadline,
            "{done}/{count} of {prefix}-* initialized"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

/// What the unthrottled section measured.
struct Unthrottled {
    nodes: usize,
    floor: Duration,
    cold: Duration,
    first: Duration,
    writes: f64,
    failed_writes: f64,
    rss: u64,
    hwm: u64,
}

/// kwok keeps 2 × `n` Nodes Ready; a minimal client without any rate limit initializes `n`
/// of them (the two writes), then the controller with its limit off the other `n`, from cold.
async fn unthrottled(n: usize, cloud_config: &str) -> Unthrottled {
    let cluster = TestCluster::start()
        .await
        .expect("the rig's apiserver starts (run `eval \"$(hack/tools)\"` first)");
    let client = cluster.client();
    let kwok = Kwok::start(&cluster).expect("kwok starts (run `eval \"$(hack/tools)\"` first)");
    let seen = Arc::new(Initialized::default());
    watch_initialized(client.clone(), seen.clone());
    register_as(&client, "kwok-floor", n, rig::kwok::node).await;
    register_as(&client, "kwok-node", n, rig::kwok::node).await;
    assert!(
        rig::kwok::wait_ready(&client, "kwok-", 2 * n, Duration::from_secs(300)).await,
        "kwok made {} Nodes Ready; its log:\n{}",
        2 * n,
        kwok.log_tail(4000)
    );
    let floor = floor(&client, "kwok-floor", true, false).await;

    let kubeconfig = cluster.admin_kubeconfig();
    let metrics = rig::ccm::Metrics::on_free_port(&kubeconfig);
    let concurrency = format!("--concurrent-node-syncs={CONCURRENCY}");
    let started = Instant::now();
    let (mut ccm, _) = rig::ccm::Launch::controller(&kubeconfig, "bench-kwok")
        .log_filter("warn")
        .args(&[
            "--kube-api-qps=1000000",
            "--kube-api-burst=1000000",
            "--controllers=cloud-node",
            cloud_config,
            &concurrency,
            &metrics.flag(),
        ])
        .spawn();
    let (first, last) = wait_seen(&seen, "kwok-node", n).await;
    let (rss, hwm) = rss_kib(ccm.pid());
    let writes = (metrics
        .series("baremetal_ccm_writer_patch_duration_seconds_count{resource=\"nodes\"}"))
    .await;
    let failed_writes = metrics.sum("baremetal_ccm_writer_patch_errors_total").await;
    ccm.terminate(Duration::from_secs(5));
    Unthrottled {
        nodes: n,
        floor,
        cold: last.saturating_duration_since(started),
        first: first.saturating_duration_since(started),
        writes,
        failed_writes,
        rss,
        hwm,
    }
}

fn print_unthrottled(u: &Unthrottled) {
    let n = u.nodes;
    println!(
        "unthrottled: {n} Nodes kept Ready by kwok (+{n} for the floor); --concurrent-node-syncs={CONCURRENCY}, the controller's client-side limit off; release build; 2-core machine"
    );
    println!("| measure | value | floor | ratio | target |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| {n} tainted Nodes initialized from cold, controller start to the last (s) | {:.2} | {:.2} | {:.2} | ≤ 1.3× |",
        u.cold.as_secs_f64(),
        u.floor.as_secs_f64(),
        u.cold.as_secs_f64() / u.floor.as_secs_f64()
    );
    println!(
        "| controller start to the first initialized (s) | {:.2} | — | — | — |",
        u.first.as_secs_f64()
    );
    println!(
        "| controller writes counted by its writer metrics (failed) | {:.0} ({:.0}) | {} (0) | — | — |",
        u.writes,
        u.failed_writes,
        2 * n
    );
    println!(
        "| controller RSS with {} Nodes cached (MiB) | {:.1} (peak {:.1}) | — | — | — |",
        2 * n,
        u.rss as f64 / 1024.0,
        u.hwm as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cloud.yaml");
    std::fs::write(
        &config,
        "static:\n  defaults: {zone: dc1-a, region: dc1, instanceType: metal}\n",
    )
    .unwrap();
    let cloud_config = format!("--cloud-config={}", config.display());
    let free = unthrottled(kwok_nodes(), &cloud_config).await;
    print_unthrottled(&free);

    let cluster = TestCluster::start()
        .await
        .expect("the rig's apiserver starts (run `eval \"$(hack/tools)\"` first)");
    let client = cluster.client();
    let limited = limited_client(&cluster).await;

    register(&client, "floor-a").await;
    let floor_update = floor(&limited, "floor-a", false, true).await;
    register(&client, "floor-b").await;
    let floor_both = floor(&limited, "floor-b", true, true).await;

    register(&client, "node").await;
    let concurrency = format!("--concurrent-node-syncs={CONCURRENCY}");
    let started = Instant::now();
    let (mut ccm, _) = controller(
        &cluster.admin_kubeconfig(),
        "bench-nodes",
        &["--controllers=cloud-node", &cloud_config, &concurrency],
    );
    let done = wait_initialized(&client, "node-", NODES).await;
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
