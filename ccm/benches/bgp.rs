//! Benchmark of BGP announcing: the release binary's bgp-announcer driving a real gobgpd that
//! peers with a real BIRD (network namespaces), against the rig's apiserver. Prints a table:
//!
//! - latency: Service create → its route in BIRD, one Service at a time (three nodes, ADD-PATH),
//!   with a small table and again with 10,000 Services announced;
//! - bulk: 10,000 Services (30,000 paths, three nodes each) already addressed, the announcer
//!   started on a fresh gobgpd: time until BIRD has every path, beside a floor measured right
//!   before it: the same 30,000 paths pushed into another fresh gobgpd by a minimal client
//!   through `AddPathStream`; five runs of each, medians compared (each side's first connect is
//!   a random 1-2 s of gobgpd's, about half the floor's time);
//! - restart: gobgpd killed and restarted under the announcer: time until BIRD has every path
//!   again.
//!
//! Needs root (network namespaces) and the rig's tools: run `hack/bench bgp`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use gobgp_api_proto::api;
use k8s_openapi::api::core::v1::Service;
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use rig::bird_control::BirdControl;
use rig::cluster::TestCluster;
use rig::fabric::{self, CLUSTER_ASN, Fabric, ROUTER_ASN, ROUTER_V4, Session, v4};
use rig::measure::{ms, percentile};
use rig::service::Svc;
use support::controller;

const LATENCY_SERVICES: usize = 200;
const BULK_SERVICES: usize = 10_000;
/// Cold starts of the announcer, each beside a floor run (medians compared).
const BULK_RUNS: usize = 5;
const NODES: [u8; 3] = [11, 12, 13];

fn service(name: &str) -> Service {
    Svc::lb("default", name).without_node_ports().service
}

async fn create_many(client: &Client, prefix: &str, count: usize) {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let svc = service(&format!("{prefix}-{i:05}"));
            async move { api.create(&PostParams::default(), &svc).await.map(drop) }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

async fn addressed(client: &Client, prefix: &str) -> usize {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    (api.list(&ListParams::default()).await.unwrap().items.iter())
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .filter(|s| !baremetal_ccm_core::contract::held_addresses(s).is_empty())
        .count()
}

/// Polls BIRD until it holds `routes` routes in all; when it did.
async fn wait_routes(bird: &mut BirdControl, routes: u64, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let (have, _) = bird.route_count().await.unwrap();
        if have == routes {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "BIRD has {have} of {routes} routes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The bulk paths: one per node for each of `count` /32 prefixes, as the announcer builds them.
fn bulk_paths(count: usize) -> Vec<api::Path> {
    let mut paths = Vec::with_capacity(count * NODES.len());
    for i in 0..count {
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + u32::try_from(i).unwrap());
        for (n, node) in NODES.iter().enumerate() {
            paths.push(api::Path {
                nlri: Some(api::Nlri {
                    nlri: Some(api::nlri::Nlri::Prefix(api::IpAddressPrefix {
                        prefix_len: 32,
                        prefix: ip.to_string(),
                    })),
                }),
                pattrs: vec![
                    api::Attribute {
                        attr: Some(api::attribute::Attr::Origin(api::OriginAttribute {
                            origin: 0,
                        })),
                    },
                    api::Attribute {
                        attr: Some(api::attribute::Attr::NextHop(api::NextHopAttribute {
                            next_hop: v4(*node),
                        })),
                    },
                ],
                family: Some(support::bgp::ipv4_family()),
                identifier: u32::try_from(n + 1).unwrap(),
                ..api::Path::default()
            });
        }
    }
    paths
}

/// The floor: a minimal client starts a fresh gobgpd, adds BIRD as an ADD-PATH peer and streams
/// the paths; returns the time from the first call until BIRD has them all, then removes the peer.
async fn floor(fabric: &Fabric, bird: &mut BirdControl, paths: Vec<api::Path>) -> Duration {
    let mut client = fabric.gobgpd(3).client().await.unwrap();
    let expected = u64::try_from(paths.len()).unwrap();
    let started = Instant::now();
    support::bgp::start_router_session(&mut client, v4(3), 16).await;
    client
        .add_path_stream(futures::stream::iter(support::bgp::path_stream(&paths)))
        .await
        .unwrap();
    let done = wait_routes(bird, expected, Duration::from_secs(300)).await;
    support::bgp::remove_router_peer(&mut client).await;
    wait_routes(bird, 0, Duration::from_secs(60)).await;
    done.saturating_duration_since(started)
}

/// Creates `count` Services one at a time; the time from each create until its route is in BIRD.
async fn latencies(
    client: &Client,
    bird: &mut BirdControl,
    prefix: &str,
    count: usize,
) -> Vec<Duration> {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut seen = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{prefix}-{i:05}");
        let started = Instant::now();
        api.create(&PostParams::default(), &service(&name))
            .await
            .unwrap();
        let ip = loop {
            let svc = api.get(&name).await.unwrap();
            if let Some(ip) = baremetal_ccm_core::contract::held_addresses(&svc).first() {
                break *ip;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{name} got no address"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let route = format!("{ip}/32");
        while !bird.has_route(&route).await.unwrap() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{route} never reached BIRD"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        seen.push(started.elapsed());
    }
    seen.sort();
    seen
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut fabric = Fabric::start(
        rig::router::RouterKind::Bird,
        &[Session::to(2), Session::to(3)],
    )
    .await;
    let mut bird = BirdControl::connect(
        fabric
            .router
            .bird()
            .expect("the benchmark's router is BIRD")
            .socket(),
    )
    .await
    .unwrap();

    let cluster = TestCluster::start()
        .await
        .expect("the rig's apiserver starts");
    cluster.install_project_crds().await.unwrap();
    let client = cluster.client();
    for (i, n) in NODES.iter().enumerate() {
        fabric::node_on_fabric(&client, &format!("n{}", i + 1), *n).await;
    }
    support_pool(&client).await;
    fabric::create_peer(
        &client,
        "tor",
        serde_json::json!({}),
        serde_json::json!({"peerAddress": ROUTER_V4, "peerASN": ROUTER_ASN, "localASN": CLUSTER_ASN, "connectRetrySeconds": 1, "families": ["IPv4"]}),
    )
    .await;
    let kubeconfig = cluster.admin_kubeconfig();
    let (mut lb, _) = controller(
        &kubeconfig,
        "bench-lb",
        &["--controllers=service-lb", "--concurrent-service-syncs=4"],
    );
    let endpoint = format!("--gobgp-endpoint={}", fabric.endpoint(2));
    let router_id = format!("--bgp-router-id={}", v4(2));
    let announcer_args = [
        "--controllers=bgp-announcer",
        endpoint.as_str(),
        router_id.as_str(),
    ];
    let (mut bgp, _) = controller(&kubeconfig, "bench-bgp", &announcer_args);

    // Latency with a small table.
    let small = latencies(&client, &mut bird, "lat", LATENCY_SERVICES).await;
    let small_routes = u64::try_from(LATENCY_SERVICES * NODES.len()).unwrap();

    // Bulk: the announcer is stopped while 10,000 Services get addresses, then started.
    bgp.terminate(Duration::from_secs(5));
    fabric.restart_gobgpd(2).await;
    wait_routes(&mut bird, 0, Duration::from_secs(120)).await;
    create_many(&client, "bulk", BULK_SERVICES).await;
    let deadline = Instant::now() + Duration::from_secs(900);
    while addressed(&client, "bulk").await < BULK_SERVICES {
        assert!(
            Instant::now() < deadline,
            "the bulk Services did not all get addresses"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let all = small_routes + u64::try_from(BULK_SERVICES * NODES.len()).unwrap();
    // Each side waits once for gobgpd's first connect, a random 1-2 s with `connectRetry` 1,
    // about half of the floor's time: one run's ratio is mostly that draw. So BULK_RUNS runs,
    // each a floor on a fresh gobgpd right before a cold start of the announcer on another
    // (BIRD empty before each), and the medians compared.
    let mut floor_times = Vec::with_capacity(BULK_RUNS);
    let mut bulk_times = Vec::with_capacity(BULK_RUNS);
    let mut bgp: Option<rig::process::Process> = None;
    for run in 0..BULK_RUNS {
        if run > 0 {
            if let Some(mut announcer) = bgp.take() {
                announcer.terminate(Duration::from_secs(5));
            }
            fabric.restart_gobgpd(2).await;
            wait_routes(&mut bird, 0, Duration::from_secs(120)).await;
        }
        fabric.restart_gobgpd(3).await;
        floor_times.push(floor(&fabric, &mut bird, bulk_paths(BULK_SERVICES)).await);
        let started = Instant::now();
        let (announcer, _) = controller(&kubeconfig, &format!("bench-bgp-{run}"), &announcer_args);
        bgp = Some(announcer);
        let done = wait_routes(&mut bird, all, Duration::from_secs(600)).await;
        bulk_times.push(done.saturating_duration_since(started));
    }
    let mut bgp = bgp.expect("at least one bulk run");
    floor_times.sort();
    bulk_times.sort();
    let floor_time = percentile(&floor_times, 50.0);
    let bulk_time = percentile(&bulk_times, 50.0);

    // Restart of gobgpd under the announcer (no graceful restart: BIRD drops everything first).
    let restarted = Instant::now();
    fabric.restart_gobgpd(2).await;
    let back = wait_routes(&mut bird, all, Duration::from_secs(120)).await;
    let restart_time = back.saturating_duration_since(restarted);

    // Latency with the big table.
    let big = latencies(&client, &mut bird, "big", 50).await;
    bgp.terminate(Duration::from_secs(5));
    lb.terminate(Duration::from_secs(5));

    println!(
        "settings: 3 nodes (ADD-PATH, one path per node), IPv4 session to BIRD 2, release build, 2-core machine"
    );
    println!("| measure | value | target |");
    println!("|---|---:|---|");
    println!(
        "| create → route in BIRD p50, {LATENCY_SERVICES} Services one at a time, small table (ms) | {} | ≤ 100 |",
        ms(percentile(&small, 50.0))
    );
    println!(
        "| create → route in BIRD p99, small table (ms) | {} | — |",
        ms(percentile(&small, 99.0))
    );
    println!(
        "| create → route in BIRD p50 / p99 with {BULK_SERVICES} Services announced, 50 Services (ms) | {} / {} | — |",
        ms(percentile(&big, 50.0)),
        ms(percentile(&big, 99.0))
    );
    println!(
        "| {BULK_SERVICES} Services ({} paths) announced from cold: announcer start → all in BIRD, median of {BULK_RUNS} (runs: {}) (s) | {:.2} | — |",
        BULK_SERVICES * NODES.len(),
        seconds(&bulk_times),
        bulk_time.as_secs_f64()
    );
    println!(
        "| floor: the same paths by a minimal client, fresh gobgpd, AddPathStream → all in BIRD, median of {BULK_RUNS} (runs: {}) (s) | {:.2} | — |",
        seconds(&floor_times),
        floor_time.as_secs_f64()
    );
    println!(
        "| bulk ÷ floor (medians) | {:.2} | ≤ 1.2 |",
        bulk_time.as_secs_f64() / floor_time.as_secs_f64()
    );
    println!(
        "| gobgpd restart → every path back in BIRD ({all} paths) (s) | {:.2} | ≤ 3 |",
        restart_time.as_secs_f64()
    );
}

async fn support_pool(client: &Client) {
    let api: Api<baremetal_ccm_core::crd::ippool::IPPool> = Api::all(client.clone());
    let pool = serde_json::from_value(serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool", "metadata": {"name": "bench"},
        "spec": {"addresses": ["10.64.0.0/16"], "announce": {"mode": "bgp"}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &pool).await.unwrap();
}

/// Sorted durations in seconds, e.g. `1.92 2.01 2.40`.
fn seconds(times: &[Duration]) -> String {
    let each: Vec<String> = times
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect();
    each.join(" ")
}
