//! Benchmark of central BGP placement at scale: the release binary's bgp-announcer with 1,000
//! Ready Nodes and 10,000 LoadBalancer Services of a BGP pool (`maxNextHops` 16), driving a
//! real gobgpd that peers (IPv4, ADD-PATH) with a real BIRD in network namespaces, against the
//! rig's apiserver. Prints a table:
//!
//! - cold start: the Services already addressed, the announcer process started → every path
//!   (Services × 16) at BIRD, beside two floors measured in the same run: the same paths pushed
//!   into a fresh gobgpd by a minimal client (`StartBgp`, `AddPeer`, `AddPathStream`), streamed
//!   at once or once the session is Established (the faster is the floor);
//! - memory: the announcer's and its gobgpd's resident set with everything announced, beside
//!   the floor's gobgpd holding the same paths;
//! - one node going NotReady → its next hops replaced at BIRD (and Ready again → back): time,
//!   and the route updates and withdrawals BIRD received on the session (its route change
//!   statistics), beside the minimum: one withdrawal and one new path per prefix the node
//!   carried;
//! - `externalTrafficPolicy: Local` (`BGP_SCALE_LOCAL_SERVICES` of the Services, 1,000): each
//!   has an EndpointSlice as the EndpointSlice controller writes it, with ready endpoints on
//!   3 nodes, so its address gets those nodes as next hops only; one endpoint going not ready
//!   → that node's path withdrawn at BIRD (and ready again → back), beside the minimum: one
//!   withdrawal, then one path;
//! - node-local placement on a few nodes (`BGP_SCALE_SPEAKERS`, 3): each speaker's time to
//!   announce every address, its memory and its gobgpd's, its watches at the API server and
//!   what it lists at start — the per-speaker costs docs/scale.md multiplies.
//!
//! The bench makes the Nodes itself (created with an InternalIP, then Ready by a status
//! patch, as a kubelet would report it; no kubelet or kwok keeps them Ready) and writes the
//! Services' addresses itself, in the form the service-lb controller writes them (finalizer,
//! `allocated-from` annotation, `status.loadBalancer.ingress`): the announcer only reads
//! Services, and the controller's own cost is `service_lb`'s to measure.
//!
//! Scale: `BGP_SCALE_NODES` (1000), `BGP_SCALE_SERVICES` (10000), `BGP_SCALE_LOCAL_SERVICES`
//! (1000 of them), `BGP_SCALE_MAX_NEXT_HOPS` (16), `BGP_SCALE_SPEAKERS` (3). Needs root (network namespaces) and the rig's tools: run `hack/bench bgp_scale`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use baremetal_ccm_core::announce::inputs::NodeInput;
use baremetal_ccm_core::contract::{ALLOCATED_FROM, FINALIZER};
use futures::{StreamExt as _, TryStreamExt as _};
use gobgp_api_proto::api;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rig::bird_control::{BirdControl, ProtocolStats};
use rig::cluster::TestCluster;
use rig::fabric::{CLUSTER_ASN, Fabric, ROUTER_ASN, ROUTER_V4, Session, v4};
use rig::kubelet::KubeletNode;
use rig::measure::rss_kib;
use rig::service::Svc;
use support::controller;

/// The announcer's fabric member (its gobgpd) and the floor's.
const ANNOUNCER: u8 = 2;
const FLOOR: u8 = 3;
/// The router's address on the nodes' network: node next hops must be directly connected
/// (BIRD treats an eBGP next hop it cannot reach directly as a withdrawal).
const ROUTER_NODE_NET: &str = "10.255.0.1/16";
const POOL: &str = "scale";
const POOL_CIDR: &str = "10.64.0.0/14";
/// The first fabric member of the node-local speakers (one gobgpd each).
const FIRST_SPEAKER: u8 = 4;
/// The label that selects the speakers' nodes for the node-local peer.
const SPEAKER_LABEL: &str = "bench.baremetal-ccm.io/speaker";
/// Writes in flight while the bench creates Nodes and Services.
const CONCURRENCY: usize = 32;
/// Nodes with a ready endpoint of each `externalTrafficPolicy: Local` Service.
const ENDPOINTS_PER_LOCAL: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Scale {
    nodes: usize,
    services: usize,
    max_next_hops: usize,
    /// The last this many Services have `externalTrafficPolicy: Local`.
    local_services: usize,
    /// Node-local speakers measured at the end.
    speakers: usize,
}

impl Scale {
    fn from_env() -> Self {
        let scale = Self {
            nodes: support::count_from_env("BGP_SCALE_NODES", 1000),
            services: support::count_from_env("BGP_SCALE_SERVICES", 10_000),
            max_next_hops: support::count_from_env("BGP_SCALE_MAX_NEXT_HOPS", 16),
            local_services: support::count_from_env("BGP_SCALE_LOCAL_SERVICES", 1000),
            speakers: support::count_from_env("BGP_SCALE_SPEAKERS", 3),
        };
        assert!(
            scale.nodes <= 60_000 && scale.services <= 200_000 && scale.speakers <= 20,
            "the node network is a /16, the pool a /14, speakers at most 20"
        );
        assert!(
            scale.local_services <= scale.services.min(2000)
                && (scale.local_services == 0 || scale.nodes > ENDPOINTS_PER_LOCAL),
            "Local Services: at most the Services and 2,000 (each takes a health-check node \
             port), and more nodes than endpoints"
        );
        scale
    }

    /// Whether Service `s` has `externalTrafficPolicy: Local`.
    fn is_local(&self, s: usize) -> bool {
        s >= self.services - self.local_services
    }

    /// The nodes with a ready endpoint of Local Service `s`: distinct, never node 0 (the one
    /// whose readiness the bench changes).
    fn endpoint_nodes(&self, s: usize) -> [usize; ENDPOINTS_PER_LOCAL] {
        let others = self.nodes - 1;
        let base = s * 7 % others;
        std::array::from_fn(|j| 1 + (base + j) % others)
    }
}

fn node_name(i: usize) -> String {
    format!("node-{i:05}")
}

fn node_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 255, 1, 0)) + u32::try_from(i).unwrap())
}

fn service_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 64, 0, 0)) + u32::try_from(i).unwrap())
}

/// The placement the announcer must arrive at, computed with the core's own ranking: each
/// Service address's next hops (node index, ADD-PATH identifier), highest in rank first.
fn placement(scale: Scale) -> Vec<Vec<(usize, u32)>> {
    let inputs: Vec<NodeInput> = (0..scale.nodes)
        .map(|i| NodeInput {
            name: node_name(i),
            labels: BTreeMap::new(),
            ineligible: None,
            ipv4: Some(node_address(i)),
            ipv6: None,
        })
        .collect();
    let ids = baremetal_ccm_core::announce::plan::path_ids(&inputs);
    let ids: Vec<u32> = (0..scale.nodes)
        .map(|i| ids[node_name(i).as_str()])
        .collect();
    let names: Vec<String> = (0..scale.nodes).map(node_name).collect();
    (0..scale.services)
        .map(|s| {
            let mut carriers: Vec<(usize, &str)> = names
                .iter()
                .enumerate()
                .map(|(n, name)| (n, name.as_str()))
                .collect();
            if scale.is_local(s) {
                let endpoints = scale.endpoint_nodes(s);
                carriers.retain(|(n, _)| endpoints.contains(n));
            }
            let key = service_address(s).to_string();
            baremetal_ccm_core::rendezvous::keep_highest(
                &mut carriers,
                scale.max_next_hops,
                &key,
                |c| c.1,
            );
            carriers.into_iter().map(|(n, _)| (n, ids[n])).collect()
        })
        .collect()
}

/// The placement's paths as the announcer sends them.
fn paths(placement: &[Vec<(usize, u32)>]) -> Vec<api::Path> {
    let mut paths = Vec::new();
    for (s, hops) in placement.iter().enumerate() {
        for (node, id) in hops {
            paths.push(api::Path {
                nlri: Some(api::Nlri {
                    nlri: Some(api::nlri::Nlri::Prefix(api::IpAddressPrefix {
                        prefix_len: 32,
                        prefix: service_address(s).to_string(),
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
                            next_hop: node_address(*node).to_string(),
                        })),
                    },
                ],
                family: Some(support::bgp::ipv4_family()),
                identifier: *id,
                ..api::Path::default()
            });
        }
    }
    paths
}

/// Polls `session`'s figures until `done` holds; when it did (the figures then).
async fn wait_stats(
    bird: &mut BirdControl,
    session: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&ProtocolStats) -> bool,
) -> (Instant, ProtocolStats) {
    let deadline = Instant::now() + within;
    loop {
        let stats = bird.protocol_stats(session).await.unwrap();
        if done(&stats) {
            return (Instant::now(), stats);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: BIRD's {session} has {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The floor: a minimal client starts a fresh gobgpd, adds BIRD as an ADD-PATH peer and streams
/// the paths — at once, or (`after_established`) once the session is up; the time from the
/// first call until BIRD has them all, and that gobgpd's resident set (KiB) holding them. The
/// peer is removed after.
async fn floor(
    fabric: &Fabric,
    bird: &mut BirdControl,
    paths: Vec<api::Path>,
    send_max: u32,
    after_established: bool,
) -> (Duration, u64) {
    let gobgpd = fabric.gobgpd(FLOOR);
    let mut client = gobgpd.client().await.unwrap();
    let session = format!("s{FLOOR}v4");
    let expected = u64::try_from(paths.len()).unwrap();
    let chunks = support::bgp::path_stream(&paths);
    drop(paths);
    let started = Instant::now();
    support::bgp::start_router_session(&mut client, v4(FLOOR), send_max).await;
    if after_established {
        let router: std::net::IpAddr = ROUTER_V4.parse().unwrap();
        let established = api::peer_state::SessionState::Established as i32;
        let up = rig::process::wait_for(Duration::from_secs(60), || async {
            let state = gobgpd.peer_state(router).await.ok()??;
            (state.session_state == established).then_some(())
        })
        .await;
        assert!(up.is_some(), "the floor's session did not come up");
    }
    client
        .add_path_stream(futures::stream::iter(chunks))
        .await
        .unwrap();
    let (done, _) = wait_stats(bird, &session, Duration::from_secs(600), "floor", |s| {
        s.imported == expected
    })
    .await;
    let (rss, _) = rss_kib(gobgpd.pid());
    support::bgp::remove_router_peer(&mut client).await;
    wait_stats(
        bird,
        &session,
        Duration::from_secs(120),
        "floor peer removed",
        |s| s.imported == 0,
    )
    .await;
    (done.saturating_duration_since(started), rss)
}

/// Creates `count` Nodes with an InternalIP each, then reports them Ready with a status patch
/// (as their kubelets would; nothing keeps them Ready after).
async fn create_nodes(client: &Client, count: usize) {
    let api: Api<Node> = Api::all(client.clone());
    on_each(count, |i| {
        let api = api.clone();
        let client = client.clone();
        async move {
            let name = node_name(i);
            KubeletNode::registers(&name)
                .initialized()
                .not_ready()
                .try_create(&client)
                .await?;
            let status = serde_json::json!({"status": {
                "addresses": [
                    {"type": "InternalIP", "address": node_address(i).to_string()},
                    {"type": "Hostname", "address": name},
                ],
                "conditions": [rig::kubelet::ready_condition("True")],
            }});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map(drop)
        }
    })
    .await;
}

/// `write(i)` for `0..count` (Nodes or Services), `CONCURRENCY` at a time; panics on a failed
/// write.
async fn on_each<F, Fut>(count: usize, write: F)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    futures::stream::iter(0..count)
        .map(write)
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

/// The EndpointSlice of Local Service `s` as the EndpointSlice controller writes it: one
/// endpoint (a pod address) on each of its nodes, ready, except the one on `not_ready`.
fn endpoint_slice(scale: Scale, s: usize, not_ready: Option<usize>) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = (scale.endpoint_nodes(s).iter())
        .map(|&node| {
            let ready = not_ready != Some(node);
            let pod = Ipv4Addr::from(
                u32::from(Ipv4Addr::new(10, 128, 0, 0)) + u32::try_from(node * 64).unwrap(),
            );
            serde_json::json!({
                "addresses": [pod.to_string()], "nodeName": node_name(node),
                "conditions": {"ready": ready, "serving": ready, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": "default", "name": format!("svc-{s:06}-{node}")},
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("svc-{s:06}-1"), "namespace": "default", "labels": {
            "kubernetes.io/service-name": format!("svc-{s:06}"),
            "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
        }},
        "addressType": "IPv4",
        "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

/// Creates the LoadBalancer Services and gives each its address as the service-lb
/// controller would: our finalizer and `allocated-from` at creation, then the status. The
/// Local ones get their EndpointSlice first.
async fn create_services(client: &Client, scale: Scale) {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    on_each(scale.services, |i| {
        let api = api.clone();
        let slices = slices.clone();
        async move {
            let name = format!("svc-{i:06}");
            let mut service = Svc::lb("default", &name)
                .without_node_ports()
                .annotate(ALLOCATED_FROM, POOL)
                .service;
            service.metadata.finalizers = Some(vec![FINALIZER.into()]);
            if scale.is_local(i) {
                let spec = service.spec.as_mut().unwrap();
                spec.external_traffic_policy = Some("Local".into());
                slices
                    .create(&PostParams::default(), &endpoint_slice(scale, i, None))
                    .await?;
            }
            api.create(&PostParams::default(), &service).await?;
            let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [
                {"ip": service_address(i).to_string(), "ipMode": "VIP"},
            ]}}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map(drop)
        }
    })
    .await;
}

async fn create_pool_and_peer(client: &Client, max_next_hops: usize, send_max: u32) {
    let api: Api<baremetal_ccm_core::crd::ippool::IPPool> = Api::all(client.clone());
    let pool = serde_json::from_value(serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool", "metadata": {"name": POOL},
        "spec": {"addresses": [POOL_CIDR], "announce": {"mode": "bgp", "bgp": {"maxNextHops": max_next_hops}}},
    }))
    .unwrap();
    api.create(&PostParams::default(), &pool).await.unwrap();
    rig::fabric::create_peer(
        client,
        "tor",
        serde_json::json!({}),
        serde_json::json!({"peerAddress": ROUTER_V4, "peerASN": ROUTER_ASN, "localASN": CLUSTER_ASN,
            "connectRetrySeconds": 1, "families": ["IPv4"], "addPathSendMax": send_max}),
    )
    .await;
}

/// What one node's change of readiness cost at BIRD.
#[derive(Debug)]
struct Change {
    time: Duration,
    updates: u64,
    withdraws: u64,
    /// Further updates and withdrawals counted once the change was complete, by the time the
    /// next measurement started.
    late: u64,
}

impl Change {
    /// From `started` (BIRD's figures then: `before`) until `done` (its figures then).
    fn between(
        started: Instant,
        before: &ProtocolStats,
        (done, after): (Instant, &ProtocolStats),
    ) -> Self {
        Change {
            time: done.saturating_duration_since(started),
            updates: after.updates_received - before.updates_received,
            withdraws: after.withdraws_received - before.withdraws_received,
            late: 0,
        }
    }
}

/// Sets node `index` Ready or not and waits until BIRD's session shows the change complete:
/// every path via the node gone (`ready` false) or back (`ready` true), the table whole again,
/// and at least `carried` updates and `carried` withdrawals received.
async fn readiness_change(
    client: &Client,
    bird: &mut BirdControl,
    index: usize,
    ready: bool,
    carried: u64,
    total: u64,
) -> Change {
    let session = format!("s{ANNOUNCER}v4");
    let gw = format!("gw = {}", node_address(index));
    let before = bird.protocol_stats(&session).await.unwrap();
    let started = Instant::now();
    rig::nodes::set_ready(client, &node_name(index), ready).await;
    let deadline = started + Duration::from_secs(300);
    let (done, stats) = loop {
        let (at, stats) = wait_stats(bird, &session, Duration::from_secs(300), "readiness", |s| {
            s.imported == total
                && s.updates_received - before.updates_received >= carried
                && s.withdraws_received - before.withdraws_received >= carried
        })
        .await;
        let via = bird.count_where(&gw).await.unwrap();
        if via == if ready { carried } else { 0 } {
            break (at, stats);
        }
        assert!(
            Instant::now() < deadline,
            "{} routes via {} at BIRD",
            via,
            node_address(index)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    Change::between(started, &before, (done, &stats))
}

/// Sets the endpoint of Local Service `s` on `node` not ready (`ready` false) or ready again,
/// as the EndpointSlice controller would rewrite the slice, and waits until BIRD's session
/// shows the change complete: the node's path for the address gone or back (the routes via
/// the node one fewer than `via_before`, or equal again), the table one path short or whole.
async fn endpoint_change(
    client: &Client,
    bird: &mut BirdControl,
    scale: Scale,
    (s, node): (usize, usize),
    ready: bool,
    (via_before, total): (u64, u64),
) -> Change {
    let session = format!("s{ANNOUNCER}v4");
    let gw = format!("gw = {}", node_address(node));
    let (want_via, want_total) = if ready {
        (via_before, total)
    } else {
        (via_before - 1, total - 1)
    };
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let before = bird.protocol_stats(&session).await.unwrap();
    let slice = endpoint_slice(scale, s, (!ready).then_some(node));
    let started = Instant::now();
    let name = format!("svc-{s:06}-1");
    slices
        .patch(&name, &PatchParams::default(), &Patch::Merge(&slice))
        .await
        .unwrap();
    let deadline = started + Duration::from_secs(300);
    let (done, stats) = loop {
        let (at, stats) = wait_stats(bird, &session, Duration::from_secs(300), "endpoint", |st| {
            st.imported == want_total
        })
        .await;
        if bird.count_where(&gw).await.unwrap() == want_via {
            break (at, stats);
        }
        assert!(
            Instant::now() < deadline,
            "routes via {}",
            node_address(node)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    Change::between(started, &before, (done, &stats))
}

/// The API server's open watches (`apiserver_longrunning_requests`, verb WATCH, summed).
async fn open_watches(client: &Client) -> u64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    (text.lines())
        .filter(|l| {
            l.starts_with("apiserver_longrunning_requests{") && l.contains("verb=\"WATCH\"")
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// The JSON size of everything a speaker lists at start that scales with the cluster:
/// Services, Nodes, EndpointSlices (bytes).
async fn listed_bytes(client: &Client) -> (usize, usize, usize) {
    let size = |list: serde_json::Value| serde_json::to_vec(&list).unwrap().len();
    let services: Api<Service> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let slices: Api<k8s_openapi::api::discovery::v1::EndpointSlice> = Api::all(client.clone());
    let params = kube::api::ListParams::default();
    (
        size(serde_json::to_value(services.list(&params).await.unwrap()).unwrap()),
        size(serde_json::to_value(nodes.list(&params).await.unwrap()).unwrap()),
        size(serde_json::to_value(slices.list(&params).await.unwrap()).unwrap()),
    )
}

/// One node-local speaker: process started → all its paths at BIRD; its resident set, its
/// peak and its gobgpd's (KiB).
#[derive(Debug)]
struct SpeakerCost {
    time: Duration,
    rss: u64,
    peak: u64,
    gobgpd: u64,
}

/// Node-local placement on a few nodes: what one speaker costs.
#[derive(Debug)]
struct PerSpeaker {
    speakers: Vec<SpeakerCost>,
    /// Open watches at the API server added by the speakers, per speaker.
    watches: f64,
    /// Bytes of Services, Nodes and EndpointSlices as JSON (what each speaker lists).
    listed: (usize, usize, usize),
}

/// Starts `count` speakers (nodes 0.., fabric members from [`FIRST_SPEAKER`]) with a
/// node-local peer selecting their nodes, each announcing every Service address itself (the
/// Local ones where its node has a ready endpoint).
async fn node_local(
    client: &Client,
    kubeconfig: &std::path::Path,
    fabric: &Fabric,
    bird: &mut BirdControl,
    count: usize,
    scale: Scale,
) -> PerSpeaker {
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..count {
        let label = serde_json::json!({"metadata": {"labels": {SPEAKER_LABEL: "true"}}});
        nodes
            .patch(
                &node_name(i),
                &PatchParams::default(),
                &Patch::Merge(&label),
            )
            .await
            .unwrap();
    }
    rig::fabric::create_peer(
        client,
        "tor-local",
        serde_json::json!({}),
        serde_json::json!({"peerAddress": ROUTER_V4, "peerASN": ROUTER_ASN, "localASN": CLUSTER_ASN,
            "connectRetrySeconds": 1, "families": ["IPv4"], "placement": "nodeLocal",
            "nodeSelector": {"matchLabels": {SPEAKER_LABEL: "true"}}}),
    )
    .await;
    let watches_before = open_watches(client).await;
    let listed = listed_bytes(client).await;
    let mut running = Vec::new();
    for i in 0..count {
        let member = FIRST_SPEAKER + u8::try_from(i).unwrap();
        let endpoint = format!("--gobgp-endpoint={}", fabric.endpoint(member));
        let router_id = format!("--bgp-router-id={}", v4(member));
        let started = Instant::now();
        let process = rig::ccm::Launch::speaker(kubeconfig, &node_name(i))
            .args(&[&endpoint, &router_id])
            .spawn()
            .0;
        running.push((member, started, process));
    }
    let mut speakers = Vec::new();
    for (i, (member, started, process)) in running.iter().enumerate() {
        // Every Cluster Service, and the Local ones with a ready endpoint on its node.
        let services = u64::try_from(
            (0..scale.services)
                .filter(|&s| !scale.is_local(s) || scale.endpoint_nodes(s).contains(&i))
                .count(),
        )
        .unwrap();
        let (done, _) = wait_stats(
            bird,
            &format!("s{member}v4"),
            Duration::from_secs(600),
            "node-local speaker",
            |s| s.imported == services,
        )
        .await;
        let (rss, hwm) = rss_kib(process.pid());
        let (gobgpd, _) = rss_kib(fabric.gobgpd(*member).pid());
        speakers.push(SpeakerCost {
            time: done.saturating_duration_since(*started),
            rss,
            peak: hwm,
            gobgpd,
        });
    }
    let watches_after = open_watches(client).await;
    for (_, _, mut process) in running {
        process.terminate(Duration::from_secs(5));
    }
    PerSpeaker {
        speakers,
        watches: (watches_after.saturating_sub(watches_before)) as f64 / count as f64,
        listed,
    }
}

/// The window over which the announcer's quiet cost is measured.
const QUIET: Duration = Duration::from_secs(10);

/// What the announcer costs when nothing it plans from changes.
struct Quiet {
    idle_cpu: Duration,
    idle_plans: f64,
    beats_took: Duration,
    beats_cpu: Duration,
    beat_plans: f64,
}

/// The announcer `pid`'s CPU and plans (`baremetal_ccm_bgp_plans_total` on its admin
/// address) over [`QUIET`] with nothing changing, then while every one of the `nodes` Nodes
/// sends a status heartbeat (its Ready condition unchanged, its times new) and for [`QUIET`]
/// after: both change nothing planning reads.
async fn quiet_cost(client: &Client, pid: u32, admin: std::net::SocketAddr, nodes: usize) -> Quiet {
    let plans = || async {
        let text = rig::ccm::http_get(admin, "/metrics")
            .await
            .expect("metrics answered");
        (text.lines())
            .find_map(|line| line.strip_prefix("baremetal_ccm_bgp_plans_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            // A build from before the counter (BAREMETAL_CCM_BINARY): CPU only.
            .unwrap_or(f64::NAN)
    };
    let (cpu, plans_before) = (rig::measure::cpu_time(pid), plans().await);
    tokio::time::sleep(QUIET).await;
    let idle_cpu = rig::measure::cpu_time(pid).saturating_sub(cpu);
    let idle_plans = plans().await - plans_before;

    let (cpu, plans_before, started) = (rig::measure::cpu_time(pid), plans().await, Instant::now());
    let api: Api<Node> = Api::all(client.clone());
    on_each(nodes, |i| {
        let api = api.clone();
        async move {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let patch = serde_json::json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": now,
            }]}});
            api.patch_status(
                &node_name(i),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
            .map(drop)
        }
    })
    .await;
    let beats_took = started.elapsed();
    tokio::time::sleep(QUIET).await;
    Quiet {
        idle_cpu,
        idle_plans,
        beats_took,
        beats_cpu: rig::measure::cpu_time(pid).saturating_sub(cpu),
        beat_plans: plans().await - plans_before,
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let scale = Scale::from_env();
    let send_max = u32::try_from(scale.max_next_hops).unwrap();
    let load_start = load_average();
    let mut sessions = vec![Session::to(ANNOUNCER), Session::to(FLOOR)];
    sessions
        .extend((0..scale.speakers).map(|i| Session::to(FIRST_SPEAKER + u8::try_from(i).unwrap())));
    let mut fabric = Fabric::start(rig::router::RouterKind::Bird, &sessions).await;
    fabric
        .router_host
        .run(["ip", "addr", "add", ROUTER_NODE_NET, "dev", "eth0"])
        .unwrap();
    let mut bird = BirdControl::connect(
        fabric
            .router
            .bird()
            .expect("the benchmark's router is BIRD")
            .socket(),
    )
    .await
    .unwrap();

    let planned = Instant::now();
    let placement = placement(scale);
    eprintln!(
        "placement of {} Services over {} nodes computed in {:.2} s",
        scale.services,
        scale.nodes,
        planned.elapsed().as_secs_f64()
    );
    let total = u64::try_from(placement.iter().map(Vec::len).sum::<usize>()).unwrap();
    let (floor_time, floor_rss) =
        floor(&fabric, &mut bird, paths(&placement), send_max, false).await;
    eprintln!(
        "floor (paths streamed at once): {:.2} s",
        floor_time.as_secs_f64()
    );
    fabric.restart_gobgpd(FLOOR).await;
    let (floor_up_time, _) = floor(&fabric, &mut bird, paths(&placement), send_max, true).await;
    eprintln!(
        "floor (paths streamed once Established): {:.2} s",
        floor_up_time.as_secs_f64()
    );
    let best_floor = floor_time.min(floor_up_time);

    let cluster = TestCluster::start()
        .await
        .expect("the rig's apiserver starts");
    cluster.install_project_crds().await.unwrap();
    let client = cluster.client();
    create_pool_and_peer(&client, scale.max_next_hops, send_max).await;
    let made = Instant::now();
    create_nodes(&client, scale.nodes).await;
    create_services(&client, scale).await;
    eprintln!(
        "{} Nodes and {} Services written in {:.1} s",
        scale.nodes,
        scale.services,
        made.elapsed().as_secs_f64()
    );

    // Cold start: the announcer process started with everything in place.
    let kubeconfig = cluster.admin_kubeconfig();
    let endpoint = format!("--gobgp-endpoint={}", fabric.endpoint(ANNOUNCER));
    let router_id = format!("--bgp-router-id={}", v4(ANNOUNCER));
    let args = [
        "--controllers=bgp-announcer",
        endpoint.as_str(),
        router_id.as_str(),
    ];
    let session = format!("s{ANNOUNCER}v4");
    let load_cold = load_average();
    let started = Instant::now();
    let (mut announcer, admin) = controller(&kubeconfig, "bench-bgp", &args);
    let (first, _) = wait_stats(
        &mut bird,
        &session,
        Duration::from_secs(600),
        "first path",
        |s| s.imported > 0,
    )
    .await;
    let (_, hwm_at_first) = rss_kib(announcer.pid());
    let (all, cold_stats) = wait_stats(
        &mut bird,
        &session,
        Duration::from_secs(900),
        "cold start",
        |s| s.imported == total,
    )
    .await;
    let cold = all.saturating_duration_since(started);
    let first = first.saturating_duration_since(started);
    let (announcer_rss, announcer_hwm) = rss_kib(announcer.pid());
    let (gobgpd_rss, _) = rss_kib(fabric.gobgpd(ANNOUNCER).pid());

    // One node goes NotReady, then Ready again: the first node in name order.
    let victim = 0;
    let carried = u64::try_from(
        (placement.iter())
            .filter(|hops| hops.iter().any(|(n, _)| *n == victim))
            .count(),
    )
    .unwrap();
    let load_change = load_average();
    let mut down = readiness_change(&client, &mut bird, victim, false, carried, total).await;
    let before_up = bird.protocol_stats(&session).await.unwrap();
    let up = readiness_change(&client, &mut bird, victim, true, carried, total).await;
    down.late = (before_up.updates_received + before_up.withdraws_received)
        - (cold_stats.updates_received + cold_stats.withdraws_received)
        - down.updates
        - down.withdraws;

    // A Local Service's endpoint goes not ready, then ready again: the first Local Service,
    // its highest-ranked endpoint node (one of its next hops).
    let endpoint = (scale.local_services > 0).then(|| {
        let s = scale.services - scale.local_services;
        (s, placement[s][0].0)
    });
    let mut endpoint_changes = None;
    if let Some((s, node)) = endpoint {
        let via = bird
            .count_where(&format!("gw = {}", node_address(node)))
            .await
            .unwrap();
        let gone = endpoint_change(&client, &mut bird, scale, (s, node), false, (via, total)).await;
        let back = endpoint_change(&client, &mut bird, scale, (s, node), true, (via, total)).await;
        endpoint_changes = Some((gone, back));
    }
    let quiet = quiet_cost(&client, announcer.pid(), admin, scale.nodes).await;
    announcer.terminate(Duration::from_secs(5));
    // The central paths leave BIRD with their daemon, so that the speakers are measured alone.
    fabric.kill_gobgpd(ANNOUNCER);
    wait_stats(
        &mut bird,
        &session,
        Duration::from_secs(120),
        "central withdrawn",
        |s| s.imported == 0,
    )
    .await;
    let load_local = load_average();
    let local = node_local(
        &client,
        &kubeconfig,
        &fabric,
        &mut bird,
        scale.speakers,
        scale,
    )
    .await;
    let load_end = load_average();

    println!(
        "settings: {} Ready Nodes, {} LoadBalancer Services ({} of them externalTrafficPolicy Local with \
         {ENDPOINTS_PER_LOCAL} ready endpoints each), maxNextHops {}, central placement, \
         IPv4 session with ADD-PATH to BIRD 2, release build, 2-core machine; load average \
         (1/5/15 min) at start {load_start}, before the cold start {load_cold}, before the \
         readiness changes {load_change}, before the node-local speakers {load_local}, at the \
         end {load_end}",
        scale.nodes, scale.services, scale.local_services, scale.max_next_hops
    );
    println!("| measure | value | floor | ratio | target |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| cold start: announcer process started → all {total} paths at BIRD (s) | {:.2} | {:.2} | {:.2} | ≤ 1.2 × floor |",
        cold.as_secs_f64(),
        best_floor.as_secs_f64(),
        cold.as_secs_f64() / best_floor.as_secs_f64()
    );
    println!(
        "| floor, the paths streamed at once / once the session is Established (s) | — | {:.2} / {:.2} | — | — |",
        floor_time.as_secs_f64(),
        floor_up_time.as_secs_f64()
    );
    println!(
        "| cold start: announcer process started → first path at BIRD (s) | {:.2} | — | — | — |",
        first.as_secs_f64()
    );
    println!(
        "| cold start: route updates BIRD received | {} | {total} | {:.2} | — |",
        cold_stats.updates_received,
        cold_stats.updates_received as f64 / total as f64
    );
    println!(
        "| announcer RSS / peak with everything announced (MiB) | {} / {} | — | — | — |",
        mib(announcer_rss),
        mib(announcer_hwm)
    );
    println!(
        "| announcer peak when the first path reached BIRD (MiB) | {} | — | — | — |",
        mib(hwm_at_first)
    );
    println!(
        "| gobgpd RSS with everything announced (MiB) | {} | {} | {:.2} | — |",
        mib(gobgpd_rss),
        mib(floor_rss),
        gobgpd_rss as f64 / floor_rss as f64
    );
    for (what, change) in [("NotReady", &down), ("Ready again", &up)] {
        println!(
            "| node {what} → its next hops replaced at BIRD (ms) | {:.1} | — | — | — |",
            change.time.as_secs_f64() * 1000.0
        );
        println!(
            "| node {what}: route updates / withdrawals BIRD received | {} / {} | {carried} / {carried} | {:.2} | — |",
            change.updates,
            change.withdraws,
            (change.updates + change.withdraws) as f64 / (2 * carried) as f64
        );
    }
    println!(
        "| after NotReady was complete, further updates + withdrawals before Ready | {} | 0 | — | — |",
        down.late
    );
    if let Some((gone, back)) = &endpoint_changes {
        for (what, change, minimum) in [
            ("not ready → its node's path withdrawn", gone, (0, 1)),
            ("ready again → its node's path back", back, (1, 0)),
        ] {
            println!(
                "| eTP Local: an endpoint {what} at BIRD (ms) | {:.1} | — | — | — |",
                change.time.as_secs_f64() * 1000.0
            );
            println!(
                "| eTP Local, endpoint {}: route updates / withdrawals BIRD received | {} / {} | {} / {} | — | — |",
                if minimum.0 == 0 {
                    "not ready"
                } else {
                    "ready again"
                },
                change.updates,
                change.withdraws,
                minimum.0,
                minimum.1
            );
        }
    }
    println!(
        "| announcer CPU with nothing changing, over {} s (% of a core; plans made) | {:.1} ({:.0}) | — | — | — |",
        QUIET.as_secs(),
        quiet.idle_cpu.as_secs_f64() * 100.0 / QUIET.as_secs_f64(),
        quiet.idle_plans
    );
    println!(
        "| {} Node status heartbeats (each Node's Ready condition with a new lastHeartbeatTime, as a kubelet sends every 5 minutes), sent in {:.1} s: announcer CPU until {} s after (core-seconds; plans made) | {:.2} ({:.0}) | — | — | — |",
        scale.nodes,
        quiet.beats_took.as_secs_f64(),
        QUIET.as_secs(),
        quiet.beats_cpu.as_secs_f64(),
        quiet.beat_plans
    );
    let n = local.speakers.len();
    let mean =
        |f: &dyn Fn(&SpeakerCost) -> f64| local.speakers.iter().map(f).sum::<f64>() / n as f64;
    println!(
        "| node-local, {n} speakers: speaker started → its {} paths (and its nodes' Local ones) at BIRD, mean (s) | {:.2} | — | — | — |",
        scale.services - scale.local_services,
        mean(&|s| s.time.as_secs_f64())
    );
    println!(
        "| node-local: speaker RSS / peak, mean (MiB) | {:.1} / {:.1} | — | — | — |",
        mean(&|s| s.rss as f64 / 1024.0),
        mean(&|s| s.peak as f64 / 1024.0)
    );
    println!(
        "| node-local: speaker's gobgpd RSS with its {} paths, mean (MiB) | {:.1} | — | — | — |",
        scale.services - scale.local_services,
        mean(&|s| s.gobgpd as f64 / 1024.0)
    );
    println!(
        "| node-local: open watches at the API server per speaker | {:.1} | — | — | — |",
        local.watches
    );
    println!(
        "| node-local: what a speaker lists at start, Services / Nodes / EndpointSlices as JSON (MiB) | {} / {} / {} | — | — | — |",
        mib(u64::try_from(local.listed.0 / 1024).unwrap()),
        mib(u64::try_from(local.listed.1 / 1024).unwrap()),
        mib(u64::try_from(local.listed.2 / 1024).unwrap())
    );
}
