//! Memory of the controller (the release binary, OpenNebula provider) when OpenNebula sends
//! an answer far larger than it should: a fake OpenNebula (the rig's) answers the VM pool
//! with 300 MiB, against a real apiserver with 20 tainted Nodes. Prints a table:
//!
//! - the floor, measured in the same run: the controller's peak resident set while it
//!   initializes the Nodes from a normal answer;
//! - its peak with the 300 MiB answer, capped by the default `maxResponseBytes` (32 MiB), and
//!   with a 128 MiB cap: the answer is refused once the cap is read, so the peak grows with
//!   the cap, not with the answer (the shipped pod's limit is 256 Mi).
//!
//! Needs the rig's tools: `eval "$(hack/tools)"` first, or run `hack/bench opennebula`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams};
use rig::cluster::TestCluster;
use rig::kubelet::{KubeletNode, UNINITIALIZED};
use rig::measure::rss_kib;
use rig::opennebula::{FakeOpenNebula, FakeVm, Fault};
use rig::process::wait_for;
use support::controller;

const NODES: u32 = 20;
const SESSION: &str = "oneadmin:bench";
const OVERSIZED: usize = 300 * 1024 * 1024;
const WAIT: Duration = Duration::from_secs(120);

/// Peak resident set (MiB) of a controller run against `one` until `done` holds.
async fn peak_mib<F, Fut>(
    cluster: &TestCluster,
    one: &FakeOpenNebula,
    extra: &str,
    identity: &str,
    done: F,
) -> f64
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let dir = tempfile::tempdir().unwrap();
    let credentials = dir.path().join("one_auth");
    std::fs::write(&credentials, format!("{SESSION}\n")).unwrap();
    let config = dir.path().join("cloud.yaml");
    std::fs::write(
        &config,
        format!(
            "provider: opennebula\nopennebula:\n  endpoint: {}\n  credentials: {{file: {}}}\n  cacheTtl: 1s\n  minInterval: 0s\n{extra}",
            one.endpoint(),
            credentials.display()
        ),
    )
    .unwrap();
    let cloud_config = format!("--cloud-config={}", config.display());
    let (mut ccm, _) = controller(
        &cluster.admin_kubeconfig(),
        identity,
        &["--controllers=cloud-node", &cloud_config],
    );
    let finished = wait_for(WAIT, || async { done().await.then_some(()) }).await;
    assert!(finished.is_some(), "{}", ccm.log_tail(4000));
    let (_, hwm) = rss_kib(ccm.pid());
    ccm.terminate(Duration::from_secs(5));
    hwm as f64 / 1024.0
}

async fn register(client: &kube::Client, prefix: &str) {
    for i in 0..NODES {
        KubeletNode::registers(&format!("{prefix}-{i:02}"))
            .create(client)
            .await;
    }
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = TestCluster::start()
        .await
        .expect("the rig's apiserver starts (run `eval \"$(hack/tools)\"` first)");
    let client = cluster.client();
    let one = FakeOpenNebula::start(SESSION).await.unwrap();
    for i in 0..NODES {
        one.put_vm(FakeVm::running(100 + i, &format!("vm-{i:02}")));
    }
    let nodes: Api<Node> = Api::all(client.clone());
    let events: Api<Event> = Api::all(client.clone());

    register(&client, "vm").await;
    let initialized = || async {
        let list = nodes.list(&ListParams::default()).await.unwrap();
        (list.items.iter()).all(|n| {
            !(n.spec.as_ref().and_then(|s| s.taints.as_ref()))
                .is_some_and(|t| t.iter().any(|t| t.key == UNINITIALIZED))
        })
    };
    let floor = peak_mib(&cluster, &one, "", "bench-normal", initialized).await;

    // Every lookup now gets 300 MiB; new tainted Nodes make the controller ask.
    one.set_fault(Some(Fault::Oversized(OVERSIZED)));
    let refused = |cap: &'static str| {
        let events = events.clone();
        move || {
            let events = events.clone();
            async move {
                let list = events.list(&ListParams::default()).await.unwrap();
                (list.items.iter()).any(|e| {
                    e.note
                        .as_deref()
                        .is_some_and(|n| n.contains(&format!("larger than {cap} bytes")))
                })
            }
        }
    };
    register(&client, "big-default").await;
    let capped_default = peak_mib(
        &cluster,
        &one,
        "",
        "bench-oversized-default",
        refused("33554432"),
    )
    .await;
    register(&client, "big-128").await;
    let capped_128 = peak_mib(
        &cluster,
        &one,
        "  maxResponseBytes: 134217728\n",
        "bench-oversized-128",
        refused("134217728"),
    )
    .await;

    println!("release build; {NODES} tainted Nodes per run; 2-core machine");
    println!("| run | controller peak RSS (MiB) | ÷ floor |");
    println!("|---|---:|---:|");
    println!("| floor: normal answers, Nodes initialized | {floor:.1} | 1.00 |");
    println!(
        "| 300 MiB answer, default cap (32 MiB), refused | {capped_default:.1} | {:.2} |",
        capped_default / floor
    );
    println!(
        "| 300 MiB answer, 128 MiB cap, refused | {capped_128:.1} | {:.2} |",
        capped_128 / floor
    );
}
