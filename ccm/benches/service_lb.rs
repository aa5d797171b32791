//! Benchmark of the service-lb controller (the release binary) against a real apiserver and
//! etcd from the test rig. Prints a table:
//!
//! - latency: Service create → address in status, one Service at a time, over 1,000 Services,
//!   beside the same create and two patches made by a minimal client;
//! - burst: 5,000 Services created while the controller is stopped, then the controller
//!   started: time until all hold an address, beside floors measured in the same run by a
//!   minimal client with the same rate limit and concurrency (5,000 status patches; and the
//!   5,000 finalizer + 5,000 status patches the CCM contract needs);
//! - memory: the controller's resident set with 10,000 of its Services allocated (plus the
//!   5,000 Services of another class used by the floors, which it also watches).
//!
//! Needs the rig's tools: `eval "$(hack/tools)"` first, or run `hack/bench`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use rig::cluster::TestCluster;
use rig::measure::{ms, percentile, rss_kib};
use rig::process::{Process, wait_for};
use rig::service::Svc;
use support::{BURST, QPS, controller, limited_client};
use tokio::sync::{Mutex, Notify};

const CONCURRENCY: usize = 4;
const LATENCY_SERVICES: usize = 1000;
const LATENCY_FLOOR_SERVICES: usize = 300;
const BURST_SERVICES: usize = 5000;
const RSS_SERVICES: usize = 10_000;

fn service_lb(kubeconfig: &std::path::Path, identity: &str) -> (Process, std::net::SocketAddr) {
    let concurrency = format!("--concurrent-service-syncs={CONCURRENCY}");
    controller(
        kubeconfig,
        identity,
        &["--controllers=service-lb", &concurrency],
    )
}

/// The service-lb controller without its client-side rate limit (a limit no burst reaches):
/// what bounds it is then the API server and our own code.
fn service_lb_unlimited(kubeconfig: &std::path::Path, identity: &str) -> Process {
    let concurrency = format!("--concurrent-service-syncs={CONCURRENCY}");
    let launch = rig::ccm::Launch::controller(kubeconfig, identity)
        .log_filter("warn")
        .args(&[
            "--kube-api-qps=1000000",
            "--kube-api-burst=1000000",
            "--controllers=service-lb",
            &concurrency,
        ]);
    launch.spawn().0
}

/// An IPv6 LoadBalancer Service without NodePorts (15,000 Services exceed the NodePort range).
fn service(namespace: &str, name: &str, class: Option<&str>) -> Service {
    let svc = Svc::lb(namespace, name)
        .without_node_ports()
        .families("SingleStack", &["IPv6"]);
    match class {
        Some(class) => svc.class(class).service,
        None => svc.service,
    }
}

async fn create_many(
    client: &Client,
    namespace: &str,
    prefix: &str,
    count: usize,
    class: Option<&str>,
) {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let svc = service(namespace, &format!("{prefix}-{i:05}"), class);
            async move { api.create(&PostParams::default(), &svc).await.map(drop) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

/// When each Service (namespace/name) was first seen with an address.
#[derive(Default)]
struct Seen {
    at: Mutex<HashMap<String, Instant>>,
    changed: Notify,
}

fn watch_addresses(client: Client, seen: Arc<Seen>) {
    tokio::spawn(async move {
        let api: Api<Service> = Api::all(client);
        let mut events = watcher(api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(Ok(svc)) = events.next().await {
            let has_ip = (svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()))
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|i| !i.is_empty());
            if has_ip {
                let key = format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any());
                seen.at.lock().await.entry(key).or_insert_with(Instant::now);
                seen.changed.notify_waiters();
            }
        }
    });
}

async fn wait_count(seen: &Seen, namespace: &str, count: usize, timeout: Duration) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let notified = seen.changed.notified();
        {
            let at = seen.at.lock().await;
            let prefix = format!("{namespace}/");
            let done: Vec<&Instant> = at
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
                .map(|(_, t)| t)
                .collect();
            if done.len() >= count {
                return **done.iter().max().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}: not all {count} Services got addresses within {timeout:?}"
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

/// When `key` was first seen with an address (waits up to 30 s from `started`).
async fn first_seen(seen: &Seen, key: &str, started: Instant) -> Instant {
    loop {
        let notified = seen.changed.notified();
        if let Some(at) = seen.at.lock().await.get(key) {
            return *at;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{key} got no address"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    }
}

async fn create_namespace(client: &Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

/// The minimal client: for each Service of `namespace`, optionally the finalizer patch, then
/// one status patch, `CONCURRENCY` Services at a time.
async fn floor(client: &Client, namespace: &str, with_finalizer: bool, prefix: &str) -> Duration {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|s| s.name_any())
        .collect();
    let started = Instant::now();
    futures::stream::iter(names.into_iter().enumerate())
        .map(|(i, name)| {
            let api = api.clone();
            async move {
                let params = PatchParams::default();
                if with_finalizer {
                    let meta = serde_json::json!({"metadata": {"finalizers": ["service.kubernetes.io/load-balancer-cleanup"]}});
                    api.patch(&name, &params, &Patch::Merge(&meta)).await?;
                }
                let ip = format!("{prefix}{:x}", i + 1);
                let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
                api.patch_status(&name, &params, &Patch::Merge(&status)).await.map(drop)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    started.elapsed()
}

/// In a fresh API server: the contract's two writes for `BURST_SERVICES` Services by a minimal
/// client without any client-side rate limit (the rig's client has none), then a burst of as
/// many from cold by the controller with its rate limit off — both bounded only by the API
/// server and the code, so their ratio says how close the controller comes to what the
/// machine can do (issue 16).
async fn unthrottled() -> (Duration, Duration) {
    let cluster = TestCluster::start()
        .await
        .expect("a second apiserver starts");
    cluster.install_project_crds().await.unwrap();
    let client = cluster.client();
    for ns in ["floor-free", "burst-free"] {
        create_namespace(&client, ns).await;
    }
    let pools: Api<baremetal_ccm_core::crd::ippool::IPPool> = Api::all(client.clone());
    let pool = serde_json::from_value(serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "bench"},
        "spec": {"addresses": ["2001:db8:100::/104"], "announce": {"mode": "none"}},
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let seen = Arc::new(Seen::default());
    watch_addresses(client.clone(), seen.clone());
    create_many(
        &client,
        "floor-free",
        "floor-free",
        BURST_SERVICES,
        Some("bench.example/other"),
    )
    .await;
    let floor_free = floor(&client, "floor-free", true, "2001:db8:400::").await;
    create_many(&client, "burst-free", "burst-free", BURST_SERVICES, None).await;
    let started = Instant::now();
    let mut unlimited = service_lb_unlimited(&cluster.admin_kubeconfig(), "bench-free");
    let done = wait_count(
        &seen,
        "burst-free",
        BURST_SERVICES,
        Duration::from_secs(900),
    )
    .await;
    unlimited.terminate(Duration::from_secs(5));
    (floor_free, done.saturating_duration_since(started))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let cluster = TestCluster::start()
        .await
        .expect("the rig's apiserver starts (run `eval \"$(hack/tools)\"` first)");
    cluster.install_project_crds().await.unwrap();
    let client = cluster.client();
    for ns in ["latency", "latency-floor", "floor", "burst", "rss"] {
        create_namespace(&client, ns).await;
    }
    let pools: Api<baremetal_ccm_core::crd::ippool::IPPool> = Api::all(client.clone());
    let pool = serde_json::from_value(serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "bench"},
        "spec": {"addresses": ["2001:db8:100::/104"], "announce": {"mode": "none"}},
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let seen = Arc::new(Seen::default());
    watch_addresses(client.clone(), seen.clone());

    // Latency, one Service at a time.
    let (mut ccm, admin) = service_lb(&cluster.admin_kubeconfig(), "bench-a");
    let ready = wait_for(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(admin).await.ok().map(drop)
    })
    .await;
    assert!(ready.is_some(), "controller admin port came up");
    let api: Api<Service> = Api::namespaced(client.clone(), "latency");
    let mut latencies = Vec::with_capacity(LATENCY_SERVICES);
    for i in 0..LATENCY_SERVICES {
        let name = format!("lat-{i:05}");
        let started = Instant::now();
        api.create(&PostParams::default(), &service("latency", &name, None))
            .await
            .unwrap();
        let key = format!("latency/{name}");
        let at = first_seen(&seen, &key, started).await;
        latencies.push(at.saturating_duration_since(started));
    }
    latencies.sort();
    ccm.terminate(Duration::from_secs(5));

    // The same path by a minimal client: create, finalizer patch, status patch, seen by the
    // same watch; no controller running.
    let limited = limited_client(&cluster).await;
    let floor_api: Api<Service> = Api::namespaced(limited.clone(), "latency-floor");
    let mut floor_latencies = Vec::with_capacity(LATENCY_FLOOR_SERVICES);
    for i in 0..LATENCY_FLOOR_SERVICES {
        let name = format!("lat-{i:05}");
        let started = Instant::now();
        floor_api
            .create(
                &PostParams::default(),
                &service("latency-floor", &name, Some("bench.example/other")),
            )
            .await
            .unwrap();
        let params = PatchParams::default();
        let meta = serde_json::json!({"metadata": {"finalizers": ["service.kubernetes.io/load-balancer-cleanup"]}});
        floor_api
            .patch(&name, &params, &Patch::Merge(&meta))
            .await
            .unwrap();
        let ip = format!("2001:db8:400::{:x}", i + 1);
        let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
        floor_api
            .patch_status(&name, &params, &Patch::Merge(&status))
            .await
            .unwrap();
        let key = format!("latency-floor/{name}");
        let at = first_seen(&seen, &key, started).await;
        floor_latencies.push(at.saturating_duration_since(started));
    }
    floor_latencies.sort();

    // Floors: a minimal client with the same rate limit and concurrency, on Services of
    // another class (the controller leaves them alone).
    create_many(
        &client,
        "floor",
        "floor",
        BURST_SERVICES,
        Some("bench.example/other"),
    )
    .await;
    let floor_status = floor(&limited, "floor", false, "2001:db8:200::").await;
    let floor_contract = floor(&limited, "floor", true, "2001:db8:300::").await;

    // Burst from cold.
    create_many(&client, "burst", "burst", BURST_SERVICES, None).await;
    let started = Instant::now();
    let (mut ccm, _) = service_lb(&cluster.admin_kubeconfig(), "bench-b");
    let done = wait_count(&seen, "burst", BURST_SERVICES, Duration::from_secs(900)).await;
    let burst = done.saturating_duration_since(started);

    // Memory with 10,000 allocated Services.
    let rest = RSS_SERVICES - LATENCY_SERVICES - BURST_SERVICES;
    create_many(&client, "rss", "rss", rest, None).await;
    wait_count(&seen, "rss", rest, Duration::from_secs(900)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, hwm) = rss_kib(ccm.pid());
    ccm.terminate(Duration::from_secs(5));

    drop(cluster);
    let (floor_free, burst_free) = unthrottled().await;

    let ratio = |floor: Duration| burst.as_secs_f64() / floor.as_secs_f64();
    println!(
        "settings: --kube-api-qps={QPS} --kube-api-burst={BURST} --concurrent-service-syncs={CONCURRENCY}; release build; 2-core machine"
    );
    println!("| measure | value | target |");
    println!("|---|---:|---|");
    println!(
        "| create → IP p50 ({LATENCY_SERVICES} Services, ms) | {} | ≤ 10 |",
        ms(percentile(&latencies, 50.0))
    );
    println!(
        "| create → IP p99 (ms) | {} | — |",
        ms(percentile(&latencies, 99.0))
    );
    println!(
        "| create → IP max (ms) | {} | — |",
        ms(*latencies.last().unwrap())
    );
    println!(
        "| floor: create + finalizer patch + status patch by a minimal client, p50 / p99 ({LATENCY_FLOOR_SERVICES} Services, ms) | {} / {} | — |",
        ms(percentile(&floor_latencies, 50.0)),
        ms(percentile(&floor_latencies, 99.0))
    );
    println!(
        "| burst of {BURST_SERVICES} from cold, all addressed (s) | {:.2} | — |",
        burst.as_secs_f64()
    );
    println!(
        "| floor: {BURST_SERVICES} status patches (s) | {:.2} | — |",
        floor_status.as_secs_f64()
    );
    println!(
        "| floor: {BURST_SERVICES} finalizer + status patches (s) | {:.2} | — |",
        floor_contract.as_secs_f64()
    );
    println!(
        "| burst ÷ status-patch floor | {:.2} | ≤ 1.5 |",
        ratio(floor_status)
    );
    println!(
        "| burst ÷ finalizer+status floor | {:.2} | — |",
        ratio(floor_contract)
    );
    println!(
        "| floor: {BURST_SERVICES} finalizer + status patches, no client-side rate limit (s) | {:.2} | — |",
        floor_free.as_secs_f64()
    );
    println!(
        "| burst of {BURST_SERVICES} from cold, the controller's rate limit off (s) | {:.2} | — |",
        burst_free.as_secs_f64()
    );
    println!(
        "| burst (limit off) ÷ unthrottled finalizer+status floor | {:.2} | ≤ 1.3 (issue 16) |",
        burst_free.as_secs_f64() / floor_free.as_secs_f64()
    );
    println!(
        "| controller RSS with {RSS_SERVICES} Services (+{BURST_SERVICES} foreign) (MiB) | {:.1} | ≤ 64 |",
        rss as f64 / 1024.0
    );
    println!(
        "| controller peak RSS (MiB) | {:.1} | — |",
        hwm as f64 / 1024.0
    );
}
