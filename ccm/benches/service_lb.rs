//! Benchmark of the service-lb controller (the release binary) against a real apiserver and
//! etcd from the test rig. Prints two tables.
//!
//! At scale, in an API server sized for it (`ClusterOptions::scale`), with
//! `SERVICE_LB_BENCH_SERVICES` Services (default 100,000):
//!
//! - the floor: the contract's two writes per Service (finalizer, then status) by a minimal
//!   client without any client-side rate limit, `CONCURRENCY` Services at a time, on Services
//!   of ours that exist while the controller is stopped (then both writes are taken back).
//!   They are written straight into etcd as the API server would store them, each with its
//!   `IPAddress` (`seed_many`): creating 100,000 through kube-apiserver 1.33+ takes hours;
//! - cold: the controller started on those Services with its rate limit off at the same
//!   concurrency: time until all hold an address (and until the first does: process start,
//!   the initial list, the rebuild), its writes and failed writes, and its resident set with
//!   all of them;
//! - a second floor: the same two patches carrying what the controller writes besides (its
//!   `allocated-from` annotation, its `AddressAllocated` condition);
//! - the ratio of the cold run to each (issue 16's target: ≤ 1.3 the first), and the CPU per
//!   Service the API server, etcd and the writer used in each phase (each phase starts once the
//!   API server is idle);
//! - Service create → address, one at a time, while all of them exist, beside a minimal
//!   client's create + two patches, and the create request alone (the API server's share).
//!
//! Small, with the controller's usual client-side limit (`--kube-api-qps=500
//! --kube-api-burst=1000`):
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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use rig::cluster::{ClusterOptions, TestCluster};
use rig::measure::{ms, percentile, rss_kib};
use rig::process::{Process, wait_for};
use rig::service::Svc;
use support::{BURST, QPS, controller, limited_client};
use tokio::sync::Notify;

const CONCURRENCY: usize = 4;
const LATENCY_SERVICES: usize = 1000;
const LATENCY_FLOOR_SERVICES: usize = 300;
/// Objects a second written into etcd by `seed_many` (a Service and its IPAddress are two).
const SEED_PER_SECOND: u32 = 1000;
/// Creates timed alone at scale: what the API server's side of create → IP costs.
const CREATE_ALONE_SERVICES: usize = 50;
const BURST_SERVICES: usize = 5000;
const RSS_SERVICES: usize = 10_000;
/// The class of the floors' Services: the controller leaves them alone.
const OTHER_CLASS: &str = "bench.example/other";
/// The addresses the scale floor writes (on the Services the controller then serves from
/// cold), counted up from this one: the address watch does not count them.
const SCALE_FLOOR_PREFIX: &str = "2001:db8:400::";
const FINALIZER: &str = "service.kubernetes.io/load-balancer-cleanup";
const ALLOCATED_FROM: &str = "baremetal-ccm.io/allocated-from";

/// The scale section's Service count: `SERVICE_LB_BENCH_SERVICES`, 100,000 by default.
fn scale_services() -> usize {
    support::count_from_env("SERVICE_LB_BENCH_SERVICES", 100_000)
}

fn service_lb(kubeconfig: &std::path::Path, identity: &str) -> (Process, std::net::SocketAddr) {
    let concurrency = format!("--concurrent-service-syncs={CONCURRENCY}");
    controller(
        kubeconfig,
        identity,
        &["--controllers=service-lb", &concurrency],
    )
}

/// The service-lb controller without its client-side rate limit (a limit no burst reaches):
/// what bounds it is then the API server and our own code. `extra`: e.g. the metrics flag.
fn service_lb_unlimited(kubeconfig: &std::path::Path, identity: &str, extra: &[&str]) -> Process {
    let concurrency = format!("--concurrent-service-syncs={CONCURRENCY}");
    let filter = std::env::var("BENCH_CONTROLLER_LOG").unwrap_or_else(|_| "warn".to_owned());
    let launch = rig::ccm::Launch::controller(kubeconfig, identity)
        .log_filter(&filter)
        .args(&[
            "--kube-api-qps=1000000",
            "--kube-api-burst=1000000",
            "--controllers=service-lb",
            &concurrency,
        ])
        .args(extra);
    let (process, _) = launch.spawn();
    if std::env::var_os("BENCH_CONTROLLER_LOG").is_some() {
        eprintln!("controller log: {}", process.log_path().display());
    }
    process
}

/// An IPv6 LoadBalancer Service without NodePorts (more Services than the NodePort range).
fn service(namespace: &str, name: &str, class: Option<&str>) -> Service {
    let svc = Svc::lb(namespace, name)
        .without_node_ports()
        .families("SingleStack", &["IPv6"]);
    match class {
        Some(class) => svc.class(class).service,
        None => svc.service,
    }
}

fn name(prefix: &str, i: usize) -> String {
    format!("{prefix}-{i:06}")
}

/// Creates `count` Services `<prefix>-000000`…, 16 requests at a time; returns how long it took.
/// Says on stderr how fast every 5,000 went: the API server's cost of a create grows with the
/// Services that exist (docs/scale.md, "Creating 100,000 Services").
async fn create_many(
    client: &Client,
    namespace: &str,
    prefix: &str,
    count: usize,
    class: Option<&str>,
) -> Duration {
    const EVERY: usize = 5000;
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let mut created = futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let svc = service(namespace, &name(prefix, i), class);
            async move { api.create(&PostParams::default(), &svc).await.map(drop) }
        })
        .buffer_unordered(16);
    let (mut done, mut lap) = (0, Instant::now());
    while let Some(result) = created.next().await {
        result.unwrap();
        done += 1;
        if done % EVERY == 0 {
            let rate = EVERY as f64 / lap.elapsed().as_secs_f64();
            eprintln!("{namespace}: {done} Services created, the last {EVERY} at {rate:.0}/s");
            lap = Instant::now();
        }
    }
    started.elapsed()
}

/// Puts `count` Services `<prefix>-000000`… of `namespace` straight into the rig's etcd, past
/// the API server, and beside each the `IPAddress` object its ClusterIP allocator would have
/// made; returns how long it took. Each is a copy of one Service the API server created (and
/// then deleted, with its `IPAddress`) with its own name, uid and ClusterIP, so the API server
/// serves them as it would created ones (same defaults, same managed fields) and its ClusterIP
/// repair finds nothing to repair. Why: creating them through the API costs a count of every
/// ClusterIP per create (docs/scale.md), hours at 100,000 on this machine.
async fn seed_many(cluster: &TestCluster, namespace: &str, prefix: &str, count: usize) -> Duration {
    let client = cluster.client();
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let started = Instant::now();
    let template = api
        .create(
            &PostParams::default(),
            &service(namespace, "seed-template", None),
        )
        .await
        .unwrap();
    let template_ip: std::net::Ipv6Addr = template
        .spec
        .as_ref()
        .and_then(|spec| spec.cluster_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .expect("the API server gives the template an IPv6 ClusterIP");
    let ip_path = format!("/apis/networking.k8s.io/v1/ipaddresses/{template_ip}");
    let request = http::Request::get(&ip_path).body(Vec::new()).unwrap();
    let mut ip_template: serde_json::Value = client.request(request).await.unwrap();
    api.delete("seed-template", &Default::default())
        .await
        .unwrap();
    let mut service_template = serde_json::to_value(&template).unwrap();
    for object in [&mut service_template, &mut ip_template] {
        let metadata = object["metadata"].as_object_mut().unwrap();
        metadata.remove("resourceVersion");
    }
    // The scale range is a /108: the seeded ClusterIPs from its 65,536th address on.
    let range = u128::from(template_ip) & !0xf_ffff;
    assert!(count < 0xf_0000, "{count} ClusterIPs fit the scale range");
    let uid = |i: usize| format!("5eed0000-0000-4000-8000-{i:012x}");
    let ip = |i: usize| std::net::Ipv6Addr::from(range + 0x1_0000 + i as u128).to_string();
    // Created now, as far as the API server can tell: its ClusterIP repair deletes an
    // IPAddress older than a minute whose Service it cannot find yet.
    let now = || {
        let now = k8s_openapi::jiff::Timestamp::now();
        serde_json::Value::from(
            now.round(k8s_openapi::jiff::Unit::Second)
                .unwrap()
                .to_string(),
        )
    };
    let address = |i: usize| {
        let (ip, mut address) = (ip(i), ip_template.clone());
        address["metadata"]["creationTimestamp"] = now();
        address["metadata"]["name"] = ip.clone().into();
        address["metadata"]["uid"] = uid(count + i).into();
        address["spec"]["parentRef"]["name"] = name(prefix, i).into();
        let key = format!("/registry/ipaddresses/{ip}");
        (key, serde_json::to_vec(&address).unwrap())
    };
    let service = |i: usize| {
        let (ip, name, mut svc) = (ip(i), name(prefix, i), service_template.clone());
        svc["metadata"]["creationTimestamp"] = now();
        svc["metadata"]["name"] = name.clone().into();
        svc["metadata"]["uid"] = uid(i).into();
        svc["spec"]["clusterIPs"] = serde_json::json!([ip]);
        svc["spec"]["clusterIP"] = ip.into();
        let key = format!("/registry/services/specs/{namespace}/{name}");
        (key, serde_json::to_vec(&svc).unwrap())
    };
    // As the API server creates them: each IPAddress before its Service, here `LEAD` Services
    // ahead, so that its ClusterIP repair (which watches both) sees the address first.
    const LEAD: usize = 200;
    let objects = (0..count + LEAD).flat_map(|i| {
        let address = (i < count).then(|| address(i));
        let service = i.checked_sub(LEAD).map(service);
        address.into_iter().chain(service)
    });
    let before = Requests::now(&client).await;
    let put = cluster
        .etcd()
        .put_all(objects, SEED_PER_SECOND)
        .await
        .unwrap();
    assert_eq!(put, 2 * count);
    // Served by the API server as its own: all listed, the last one's IPAddress readable.
    wait_for(Duration::from_secs(300), || {
        let api = api.clone();
        async move {
            let listed = listed(&api).await.ok()?;
            (listed == count as i64).then_some(())
        }
    })
    .await
    .expect("the API server lists every seeded Service");
    let last = api.get(&name(prefix, count - 1)).await.unwrap();
    let last_ip = last.spec.and_then(|spec| spec.cluster_ip).unwrap();
    let request = http::Request::get(format!("/apis/networking.k8s.io/v1/ipaddresses/{last_ip}"))
        .body(Vec::new())
        .unwrap();
    let address: serde_json::Value = client.request(request).await.unwrap();
    assert_eq!(
        address["spec"]["parentRef"]["name"],
        name(prefix, count - 1)
    );
    // Paced so that the API server's informers (its ClusterIP repair among them) keep up.
    // They do not always: at 100,000 its watch cache closes one or two watchers as too slow
    // (100 events behind), and the repair, on a stale cache until its informer lists again,
    // tries to create IPAddresses that exist (refused, 409) with an Event each. Harmless, and
    // said; what would not be is an IPAddress deleted or missing, so those fail the bench, and
    // the phases start only once the API server is idle.
    let took = started.elapsed();
    settle(cluster, "checking the seeded Services").await;
    let seeded = Requests::now(&client).await.since(&before);
    let count_of = |prefix: &str| -> Vec<(&String, f64)> {
        (seeded.0.iter())
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, (n, _))| (key, *n))
            .collect()
    };
    assert!(
        count_of("DELETE ipaddresses").is_empty(),
        "the API server deleted seeded IPAddresses"
    );
    let addresses: Api<k8s_openapi::api::networking::v1::IPAddress> = Api::all(client.clone());
    // Ours, and the `kubernetes` Service's.
    let addresses = listed(&addresses).await.unwrap();
    assert_eq!(
        addresses,
        count as i64 + 1,
        "every seeded IPAddress is there"
    );
    let repairs: Vec<_> = ["POST ipaddresses", "POST events", "watchers closed"]
        .iter()
        .flat_map(|prefix| count_of(prefix))
        .collect();
    eprintln!(
        "scale: while seeding, the API server's watch cache and ClusterIP repair: {repairs:?}"
    );
    took
}

/// How many objects `api` lists, from one page of one (the API server counts the rest).
async fn listed<K>(api: &Api<K>) -> Result<i64, kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await?;
    Ok(list.items.len() as i64 + list.metadata.remaining_item_count.unwrap_or(0))
}

/// When each Service (namespace/name) was first seen with an address, and per namespace how
/// many were and when the first and the last was (so waiting for all of 100,000 is not a scan
/// of 100,000 per event).
#[derive(Default)]
struct Seen {
    state: std::sync::Mutex<SeenState>,
    changed: Notify,
}

#[derive(Default)]
struct SeenState {
    at: HashMap<String, Instant>,
    namespaces: HashMap<String, Progress>,
}

#[derive(Clone, Copy)]
struct Progress {
    count: usize,
    first: Instant,
    last: Instant,
}

impl Seen {
    fn lock(&self) -> std::sync::MutexGuard<'_, SeenState> {
        self.state.lock().expect("nothing panics holding the lock")
    }

    fn record(&self, namespace: String, name: &str) {
        let now = Instant::now();
        let mut state = self.lock();
        let key = format!("{namespace}/{name}");
        if state.at.contains_key(&key) {
            return;
        }
        state.at.insert(key, now);
        let progress = state.namespaces.entry(namespace).or_insert(Progress {
            count: 0,
            first: now,
            last: now,
        });
        progress.count += 1;
        progress.last = now;
        drop(state);
        self.changed.notify_waiters();
    }

    fn progress(&self, namespace: &str) -> Option<Progress> {
        self.lock().namespaces.get(namespace).copied()
    }
}

fn watch_addresses(client: Client, seen: Arc<Seen>) {
    tokio::spawn(async move {
        let api: Api<Service> = Api::all(client);
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .applied_objects()
            .boxed();
        // A failed watch is retried (with backoff) by the watcher: errors are skipped, not an
        // end of the stream.
        while let Some(event) = events.next().await {
            let Ok(svc) = event else { continue };
            let has_ip = (svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()))
                .and_then(|lb| lb.ingress.as_ref())
                .is_some_and(|i| {
                    (i.iter().filter_map(|i| i.ip.as_deref()))
                        .any(|ip| !ip.starts_with(SCALE_FLOOR_PREFIX))
                });
            if has_ip {
                seen.record(svc.namespace().unwrap_or_default(), &svc.name_any());
            }
        }
    });
}

/// Waits until `count` Services of `namespace` were seen addressed; returns their progress.
async fn wait_count(seen: &Seen, namespace: &str, count: usize, timeout: Duration) -> Progress {
    let deadline = Instant::now() + timeout;
    loop {
        let notified = seen.changed.notified();
        let progress = seen.progress(namespace);
        if let Some(progress) = progress.filter(|p| p.count >= count) {
            return progress;
        }
        assert!(
            Instant::now() < deadline,
            "{namespace}: {} of {count} Services got addresses within {timeout:?}",
            progress.map_or(0, |p| p.count)
        );
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

/// When `key` was first seen with an address (waits up to 30 s from `started`).
async fn first_seen(seen: &Seen, key: &str, started: Instant) -> Instant {
    loop {
        let notified = seen.changed.notified();
        if let Some(at) = seen.lock().at.get(key) {
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

/// What a floor writes to each Service.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FloorWrites {
    /// One status patch (the address).
    Status,
    /// The contract's two: the finalizer, then the address.
    Contract,
    /// The same two patches with what the controller writes besides: its `allocated-from`
    /// annotation with the finalizer, its `AddressAllocated` condition with the address.
    AsController,
}

impl FloorWrites {
    fn label(self) -> &'static str {
        match self {
            Self::Status => "status-floor",
            Self::Contract => "minimal-floor",
            Self::AsController => "same-content-floor",
        }
    }
}

/// The minimal client: for each of the `count` Services `<names>-*` of `namespace`, what
/// `writes` says, `CONCURRENCY` Services at a time.
async fn floor(
    client: &Client,
    (namespace, names, count): (&str, &str, usize),
    writes: FloorWrites,
    prefix: &str,
) -> Duration {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let base = u128::from(prefix.parse::<std::net::Ipv6Addr>().unwrap());
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let name = name(names, i);
            async move {
                let params = PatchParams::default();
                let rich = writes == FloorWrites::AsController;
                if writes != FloorWrites::Status {
                    let mut meta = serde_json::json!({"metadata": {"finalizers": [FINALIZER]}});
                    if rich {
                        meta["metadata"]["annotations"] =
                            serde_json::json!({ALLOCATED_FROM: "bench"});
                    }
                    api.patch(&name, &params, &Patch::Merge(&meta)).await?;
                }
                let ip = std::net::Ipv6Addr::from(base + i as u128 + 1).to_string();
                let mut status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
                if rich {
                    let now = k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second).unwrap();
                    status["status"]["conditions"] = serde_json::json!([{
                        "type": "baremetal-ccm.io/AddressAllocated", "status": "True",
                        "reason": "Allocated", "message": format!("{ip} from pool bench"),
                        "lastTransitionTime": now.to_string(),
                    }]);
                }
                api.patch_status(&name, &params, &Patch::Merge(&status)).await.map(drop)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    started.elapsed()
}

/// Takes back what [`floor`] wrote to the `count` Services `<names>-*` of `namespace` (their
/// status, then their finalizer), so that they are as created again.
async fn unfloor(client: &Client, (namespace, names, count): (&str, &str, usize)) {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let name = name(names, i);
            async move {
                let params = PatchParams::default();
                let status =
                    serde_json::json!({"status": {"loadBalancer": null, "conditions": null}});
                api.patch_status(&name, &params, &Patch::Merge(&status))
                    .await?;
                let meta =
                    serde_json::json!({"metadata": {"finalizers": null, "annotations": null}});
                api.patch(&name, &params, &Patch::Merge(&meta))
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
}

/// Service create → address seen by the watch, one at a time, `count` Services of ours in
/// `namespace` (a controller must be running); sorted.
async fn controller_latency(
    client: &Client,
    seen: &Seen,
    namespace: &str,
    count: usize,
) -> Vec<Duration> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let name = name("lat", i);
        let started = Instant::now();
        api.create(&PostParams::default(), &service(namespace, &name, None))
            .await
            .unwrap();
        let at = first_seen(seen, &format!("{namespace}/{name}"), started).await;
        latencies.push(at.saturating_duration_since(started));
    }
    latencies.sort();
    latencies
}

/// `count` Service creates (another class, so nothing acts on them), one at a time: how long
/// each request took; sorted.
async fn create_alone(client: &Client, namespace: &str, count: usize) -> Vec<Duration> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut took = Vec::with_capacity(count);
    for i in 0..count {
        let svc = service(namespace, &name("alone", i), Some(OTHER_CLASS));
        let started = Instant::now();
        api.create(&PostParams::default(), &svc).await.unwrap();
        took.push(started.elapsed());
    }
    took.sort();
    took
}

/// The same path by a minimal client: create, finalizer patch, status patch, seen by the same
/// watch, one at a time (no controller acts on these: another class); sorted.
async fn floor_latency(
    client: &Client,
    seen: &Seen,
    namespace: &str,
    count: usize,
) -> Vec<Duration> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let name = name("lat", i);
        let started = Instant::now();
        api.create(
            &PostParams::default(),
            &service(namespace, &name, Some(OTHER_CLASS)),
        )
        .await
        .unwrap();
        let params = PatchParams::default();
        let meta = serde_json::json!({"metadata": {"finalizers": [FINALIZER]}});
        api.patch(&name, &params, &Patch::Merge(&meta))
            .await
            .unwrap();
        let ip = format!("2001:db8:500::{:x}", i + 1);
        let status = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip, "ipMode": "VIP"}]}}});
        api.patch_status(&name, &params, &Patch::Merge(&status))
            .await
            .unwrap();
        let at = first_seen(seen, &format!("{namespace}/{name}"), started).await;
        latencies.push(at.saturating_duration_since(started));
    }
    latencies.sort();
    latencies
}

/// A cluster with the project's CRDs, `namespaces`, the bench pool, and the address watch.
async fn prepare(options: ClusterOptions, namespaces: &[&str]) -> (TestCluster, Arc<Seen>) {
    let cluster = TestCluster::start_with(options)
        .await
        .expect("the rig's apiserver starts (run `eval \"$(hack/tools)\"` first)");
    cluster.install_project_crds().await.unwrap();
    let client = cluster.client();
    for ns in namespaces {
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
    watch_addresses(client, seen.clone());
    (cluster, seen)
}

/// What the scale section measured.
struct Scale {
    services: usize,
    create: Duration,
    floor: Duration,
    /// The floor writing what the controller writes (annotation, condition).
    floor_as_controller: Duration,
    /// CPU used in the minimal floor, the floor with the controller's content, the cold run.
    cpu: [Cpu; 3],
    /// The API server's requests and watch events in the same three phases.
    requests: [Requests; 3],
    cold: Duration,
    first: Duration,
    /// Patches of Services, of IPPools (status), and Service patches refused with 409.
    writes: (f64, f64, f64),
    /// Events dropped by the controller (its queue full) by the time all were addressed.
    events_dropped: f64,
    rss: u64,
    hwm: u64,
    latencies: Vec<Duration>,
    floor_latencies: Vec<Duration>,
    /// A Service create request alone while all exist (another class), sorted.
    creates: Vec<Duration>,
}

/// In a fresh API server sized for it, `n` Services of ours: first the contract's two writes
/// for each by a minimal client without any client-side rate limit (the rig's client has none)
/// while no controller runs, then, those writes taken back, the same Services from cold by the
/// controller with its rate limit off — both bounded only by the API server and the code, on
/// the same objects, so their ratio says how close the controller comes to what the machine
/// can do (issue 16) — then latency while all of them exist. One set of Services, not one
/// each: every create costs the API server a scan of every ClusterIP already allocated
/// (docs/scale.md), so a second set would cost three times the first.
async fn scale(n: usize) -> Scale {
    let options = ClusterOptions {
        scale: true,
        ..ClusterOptions::default()
    };
    let namespaces = ["scale-cold", "scale-lat", "scale-lat-floor"];
    let (cluster, seen) = prepare(options, &namespaces).await;
    let client = cluster.client();
    let timeout = Duration::from_secs(900).max(Duration::from_millis(50 * n as u64));

    let create = seed_many(&cluster, "scale-cold", "cold", n).await;
    eprintln!("scale: {n} Services seeded in {create:.1?}");
    let cold = ("scale-cold", "cold", n);
    let (floor_writes, floor_cpu, floor_requests) =
        scale_floor(&cluster, cold, FloorWrites::Contract).await;
    eprintln!("scale: floor {floor_writes:.1?}");
    let (floor_as_controller, floor_as_controller_cpu, floor_as_controller_requests) =
        scale_floor(&cluster, cold, FloorWrites::AsController).await;
    eprintln!("scale: floor with the controller's content {floor_as_controller:.1?}");
    assert!(
        seen.progress("scale-cold").is_none(),
        "the floor's addresses are not counted"
    );

    let kubeconfig = cluster.admin_kubeconfig();
    let metrics = rig::ccm::Metrics::on_free_port(&kubeconfig);
    settle(&cluster, "the cold run").await;
    let requests_before = Requests::now(&client).await;
    let profile = Profile::start(&client, "cold");
    let started = Instant::now();
    let before = Cpu::before_start(&cluster);
    let mut ccm = service_lb_unlimited(&kubeconfig, "bench-scale", &[&metrics.flag()]);
    let done = wait_count(&seen, "scale-cold", n, timeout).await;
    // The writer is the controller: all it used from its start (the bench's watch left out).
    let cold_cpu = Cpu::now(&cluster, ccm.pid()).since(&before);
    let cold_requests = Requests::now(&client).await.since(&requests_before);
    profile.finish().await;
    let (rss, hwm) = rss_kib(ccm.pid());
    eprintln!("scale: cold {:.1?}", done.last - started);
    let written = |resource: &str| {
        format!("baremetal_ccm_writer_patch_duration_seconds_count{{resource=\"{resource}\"}}")
    };
    let writes = (
        metrics.series(&written("services")).await,
        metrics.series(&written("ippools")).await,
        (metrics.series(
            "baremetal_ccm_writer_patch_errors_total{resource=\"services\",reason=\"conflict\"}",
        ))
        .await,
    );
    let events_dropped = metrics.series("baremetal_ccm_events_dropped_total").await;
    let creates = create_alone(&client, "scale-lat-floor", CREATE_ALONE_SERVICES).await;
    let latencies = controller_latency(&client, &seen, "scale-lat", LATENCY_SERVICES).await;
    ccm.terminate(Duration::from_secs(5));
    let floor_latencies =
        floor_latency(&client, &seen, "scale-lat-floor", LATENCY_FLOOR_SERVICES).await;
    Scale {
        services: n,
        create,
        floor: floor_writes,
        floor_as_controller,
        cpu: [floor_cpu, floor_as_controller_cpu, cold_cpu],
        requests: [floor_requests, floor_as_controller_requests, cold_requests],
        cold: done.last.saturating_duration_since(started),
        first: done.first.saturating_duration_since(started),
        writes,
        events_dropped,
        rss,
        hwm,
        latencies,
        floor_latencies,
        creates,
    }
}

fn print_scale(s: &Scale) {
    let n = s.services;
    println!(
        "scale: {n} Services; --concurrent-service-syncs={CONCURRENCY}, the controller's client-side limit off (--kube-api-qps=1000000); release build; 2-core machine"
    );
    println!("| measure | value | floor | ratio | target |");
    println!("|---|---:|---:|---:|---|");
    println!(
        "| {n} Services from cold, controller start to the last addressed (s) | {:.1} | {:.1} | {:.2} | ≤ 1.3× |",
        s.cold.as_secs_f64(),
        s.floor.as_secs_f64(),
        s.cold.as_secs_f64() / s.floor.as_secs_f64()
    );
    println!(
        "| the same, beside a floor writing what the controller writes (its annotation with the finalizer, its condition with the address) (s) | {:.1} | {:.1} | {:.2} | — |",
        s.cold.as_secs_f64(),
        s.floor_as_controller.as_secs_f64(),
        s.cold.as_secs_f64() / s.floor_as_controller.as_secs_f64()
    );
    let [floor_cpu, rich_cpu, cold_cpu] = &s.cpu;
    println!(
        "| CPU per Service, API server / etcd / writer / all (ms): cold run (writer: the controller) vs the minimal floor (writer: the bench process) | {} | {} | — | — |",
        cold_cpu.per_service(n),
        floor_cpu.per_service(n)
    );
    println!(
        "| CPU per Service, the same, the floor writing what the controller writes (ms) | — | {} | — | — |",
        rich_cpu.per_service(n)
    );
    println!(
        "| controller start to the first addressed (start, initial list of {n} Services, rebuild) (s) | {:.1} | — | — | — |",
        s.first.as_secs_f64()
    );
    let (services, pools, conflicts) = s.writes;
    println!(
        "| controller's Service patches (of which 409) | {services:.0} ({conflicts:.0}) | {} (0) | {:.2} | — |",
        2 * n,
        services / (2 * n) as f64
    );
    println!("| controller's IPPool status patches | {pools:.0} | — | — | — |");
    println!(
        "| controller's Events dropped by then (queue full; published on their own budget, `--event-qps`) | {:.0} | — | — | — |",
        s.events_dropped
    );
    print_requests(n, &s.requests);
    println!(
        "| controller RSS with {n} Services of ours (MiB) | {:.1} (peak {:.1}) | — | — | ≤ 256 |",
        s.rss as f64 / 1024.0,
        s.hwm as f64 / 1024.0
    );
    println!(
        "| create → IP p50 / p99 while {n} exist ({LATENCY_SERVICES} one at a time, ms) | {} / {} | {} / {} | {:.2} / {:.2} | — |",
        ms(percentile(&s.latencies, 50.0)),
        ms(percentile(&s.latencies, 99.0)),
        ms(percentile(&s.floor_latencies, 50.0)),
        ms(percentile(&s.floor_latencies, 99.0)),
        percentile(&s.latencies, 50.0).as_secs_f64()
            / percentile(&s.floor_latencies, 50.0).as_secs_f64(),
        percentile(&s.latencies, 99.0).as_secs_f64()
            / percentile(&s.floor_latencies, 99.0).as_secs_f64(),
    );
    println!(
        "| (reference) of which the API server's create request alone, p50 / p99 ({CREATE_ALONE_SERVICES} one at a time, ms) | {} / {} | — | — | — |",
        ms(percentile(&s.creates, 50.0)),
        ms(percentile(&s.creates, 99.0)),
    );
    println!(
        "| (reference) {n} Services written into etcd as the API server would store them, with their IPAddress objects (s) | {:.1} | — | — | — |",
        s.create.as_secs_f64()
    );
}

/// One floor of the scale table on the Services `cold` once the API server is idle: its time,
/// CPU (the writer is this process) and the API server's requests, then its writes taken back.
async fn scale_floor(
    cluster: &TestCluster,
    cold: (&str, &str, usize),
    writes: FloorWrites,
) -> (Duration, Cpu, Requests) {
    let client = cluster.client();
    settle(cluster, "a floor").await;
    let requests = Requests::now(&client).await;
    let profile = Profile::start(&client, writes.label());
    let before = Cpu::now(cluster, std::process::id());
    let time = floor(&client, cold, writes, SCALE_FLOOR_PREFIX).await;
    let cpu = Cpu::now(cluster, std::process::id()).since(&before);
    let requests = Requests::now(&client).await.since(&requests);
    profile.finish().await;
    unfloor(&client, cold).await;
    (time, cpu, requests)
}

/// What the API server served in a phase, from its own metrics: requests by verb, resource and
/// response code (`apiserver_request_total`), with the seconds spent in their handlers
/// (`apiserver_request_duration_seconds_sum`), and the watch events it sent and their bytes
/// (`apiserver_watch_events_total`, `apiserver_watch_events_sizes_sum`), by kind. Shows any
/// request a phase makes beyond its patches (a re-list, a GET, an Event) and the fan-out of
/// its writes to watchers.
#[derive(Default, Clone)]
struct Requests(BTreeMap<String, (f64, f64)>);

impl Requests {
    async fn now(client: &Client) -> Self {
        let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = client.request_text(request).await.unwrap();
        let mut counts: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for line in text.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Some((metric, labels)) = series.split_once('{') else {
                continue;
            };
            let label = |key: &str| {
                labels.split(',').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    (k == key).then(|| v.trim_end_matches('}').trim_matches('"').to_owned())
                })
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (key, slot) = match metric {
                "apiserver_request_total" | "apiserver_request_duration_seconds_sum" => {
                    let resource = label("resource").unwrap_or_default();
                    if resource.is_empty() {
                        continue; // /metrics, /healthz and other non-resource paths
                    }
                    let subresource = label("subresource").unwrap_or_default();
                    let code = label("code").map(|c| format!(" {c}")).unwrap_or_default();
                    let verb = label("verb").unwrap_or_default();
                    let path = [resource, subresource].join("/");
                    let path = path.trim_end_matches('/');
                    if metric == "apiserver_request_total" {
                        (format!("{verb} {path}{code}"), 0)
                    } else {
                        (format!("{verb} {path}"), 1)
                    }
                }
                "apiserver_watch_events_total" | "apiserver_watch_events_sizes_sum" => {
                    let kind = (label("kind").filter(|k| !k.is_empty()))
                        .or_else(|| label("resource"))
                        .unwrap_or_default();
                    let slot = usize::from(metric == "apiserver_watch_events_sizes_sum");
                    (format!("watch events {kind} (KiB)"), slot)
                }
                "apiserver_terminated_watchers_total" => {
                    let resource = label("resource").unwrap_or_default();
                    (format!("watchers closed as too slow, {resource}"), 0)
                }
                _ => continue,
            };
            let entry = counts.entry(key).or_default();
            if slot == 0 {
                entry.0 += value;
            } else {
                entry.1 += value;
            }
        }
        Self(counts)
    }

    fn since(&self, before: &Self) -> Self {
        let mut diff = BTreeMap::new();
        for (key, (count, sum)) in &self.0 {
            let (was_count, was_sum) = before.0.get(key).copied().unwrap_or_default();
            if count - was_count > 0.0 || sum - was_sum > 0.0 {
                diff.insert(key.clone(), (count - was_count, sum - was_sum));
            }
        }
        Self(diff)
    }

    /// Per Service: the count (requests with this code, or watch events) and the handler
    /// milliseconds (requests, summed over codes) or KiB (watch events).
    fn per_service(&self, key: &str, n: usize) -> Option<(f64, f64)> {
        let (count, sum) = self.0.get(key).copied()?;
        let sum = if key.starts_with("watch events") {
            sum / 1024.0
        } else {
            let (verb_path, _) = key.rsplit_once(' ').unwrap_or((key, ""));
            self.0.get(verb_path).map_or(sum, |(_, s)| *s) * 1000.0
        };
        Some((count / n as f64, sum / n as f64))
    }
}

/// The API server's requests (per Service, with handler ms per Service) and watch events (per
/// Service, with KiB per Service) in the three scale phases; rows under 1 in 1,000 Services in
/// every phase left out.
fn print_requests(n: usize, phases: &[Requests; 3]) {
    println!(
        "| API server requests and watch events per Service (handler ms or KiB): minimal floor · same content · cold run | | | | |"
    );
    let keys: std::collections::BTreeSet<&String> = phases
        .iter()
        .flat_map(|p| {
            p.0.iter()
                .filter(|(_, (count, _))| *count > 0.0)
                .map(|(k, _)| k)
        })
        .collect();
    for key in keys {
        let cells: Vec<Option<(f64, f64)>> = phases.iter().map(|p| p.per_service(key, n)).collect();
        if cells.iter().flatten().all(|(count, _)| *count < 0.001) {
            continue;
        }
        let cell = |c: &Option<(f64, f64)>| {
            c.map_or("—".to_owned(), |(count, sum)| {
                format!("{count:.3} ({sum:.2})")
            })
        };
        println!(
            "| {key} | {} · {} · {} | | | |",
            cell(&cells[0]),
            cell(&cells[1]),
            cell(&cells[2])
        );
    }
}

/// A CPU profile of the API server over the first 20 s of a phase, when
/// `SERVICE_LB_BENCH_PPROF` names a directory (`<dir>/<phase>.pprof`; read with `go tool pprof`).
struct Profile(Option<tokio::task::JoinHandle<()>>);

impl Profile {
    fn start(client: &Client, phase: &str) -> Self {
        let Some(dir) = std::env::var_os("SERVICE_LB_BENCH_PPROF") else {
            return Self(None);
        };
        let path = std::path::PathBuf::from(dir).join(format!("{phase}.pprof"));
        let (client, phase) = (client.clone(), phase.to_owned());
        Self(Some(tokio::spawn(async move {
            let request = http::Request::get("/debug/pprof/profile?seconds=20")
                .body(Vec::new())
                .unwrap();
            let mut body = client.request_stream(request).await.unwrap();
            let mut bytes = Vec::new();
            futures::AsyncReadExt::read_to_end(&mut body, &mut bytes)
                .await
                .unwrap();
            std::fs::write(&path, bytes).unwrap();
            eprintln!("scale: API server profile of {phase} in {}", path.display());
        })))
    }

    async fn finish(self) {
        if let Some(task) = self.0 {
            task.await.unwrap();
        }
    }
}

/// Waits until the API server is idle (under 5 % of a core over a second), at most 2 minutes,
/// before a timed phase: after thousands of creates or patches it goes on working for a while
/// (watch fan-out, garbage collection), which would otherwise be charged to the next phase.
async fn settle(cluster: &TestCluster, phase: &str) {
    let started = Instant::now();
    let mut last = cluster.cpu_times().0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = cluster.cpu_times().0;
        let used = now.saturating_sub(last);
        last = now;
        if used < Duration::from_millis(50) || started.elapsed() > Duration::from_secs(120) {
            eprintln!(
                "scale: API server settled before {phase} in {:.1?} ({used:?} CPU in the last second)",
                started.elapsed()
            );
            return;
        }
    }
}

/// CPU time used in a phase by the API server, etcd and the writing client (the bench process
/// for a floor: its watch too; the controller for the cold run).
#[derive(Clone, Copy)]
struct Cpu {
    apiserver: Duration,
    etcd: Duration,
    client: Duration,
}

impl Cpu {
    /// The CPU used so far by the cluster and the process `client`.
    fn now(cluster: &TestCluster, client: u32) -> Self {
        let (apiserver, etcd) = cluster.cpu_times();
        Self {
            apiserver,
            etcd,
            client: rig::measure::cpu_time(client),
        }
    }

    /// The cluster's CPU so far, before the writing process starts (which has used none).
    fn before_start(cluster: &TestCluster) -> Self {
        let (apiserver, etcd) = cluster.cpu_times();
        Self {
            apiserver,
            etcd,
            client: Duration::ZERO,
        }
    }

    fn since(&self, before: &Self) -> Self {
        Self {
            apiserver: self.apiserver.saturating_sub(before.apiserver),
            etcd: self.etcd.saturating_sub(before.etcd),
            client: self.client.saturating_sub(before.client),
        }
    }

    /// Milliseconds per Service: API server / etcd / client / all.
    fn per_service(&self, n: usize) -> String {
        let each = |d: Duration| d.as_secs_f64() * 1000.0 / n as f64;
        let all = self.apiserver + self.etcd + self.client;
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2}",
            each(self.apiserver),
            each(self.etcd),
            each(self.client),
            each(all)
        )
    }
}

/// What the small section measured (the controller's usual client-side limit).
struct Small {
    latencies: Vec<Duration>,
    floor_latencies: Vec<Duration>,
    burst: Duration,
    floor_status: Duration,
    floor_contract: Duration,
    rss: u64,
}

async fn small() -> Small {
    let namespaces = ["latency", "latency-floor", "floor", "burst", "rss"];
    let (cluster, seen) = prepare(ClusterOptions::default(), &namespaces).await;
    let client = cluster.client();

    // Latency, one Service at a time.
    let (mut ccm, admin) = service_lb(&cluster.admin_kubeconfig(), "bench-a");
    let ready = wait_for(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(admin).await.ok().map(drop)
    })
    .await;
    assert!(ready.is_some(), "controller admin port came up");
    let latencies = controller_latency(&client, &seen, "latency", LATENCY_SERVICES).await;
    ccm.terminate(Duration::from_secs(5));

    let limited = limited_client(&cluster).await;
    let floor_latencies =
        floor_latency(&limited, &seen, "latency-floor", LATENCY_FLOOR_SERVICES).await;

    // Floors: a minimal client with the same rate limit and concurrency, on Services of
    // another class (the controller leaves them alone).
    create_many(&client, "floor", "floor", BURST_SERVICES, Some(OTHER_CLASS)).await;
    let names = ("floor", "floor", BURST_SERVICES);
    let floor_status = floor(&limited, names, FloorWrites::Status, "2001:db8:200::").await;
    let floor_contract = floor(&limited, names, FloorWrites::Contract, "2001:db8:300::").await;

    // Burst from cold.
    create_many(&client, "burst", "burst", BURST_SERVICES, None).await;
    let started = Instant::now();
    let (mut ccm, _) = service_lb(&cluster.admin_kubeconfig(), "bench-b");
    let done = wait_count(&seen, "burst", BURST_SERVICES, Duration::from_secs(900)).await;
    let burst = done.last.saturating_duration_since(started);

    // Memory with 10,000 allocated Services.
    let rest = RSS_SERVICES - LATENCY_SERVICES - BURST_SERVICES;
    create_many(&client, "rss", "rss", rest, None).await;
    wait_count(&seen, "rss", rest, Duration::from_secs(900)).await;
    let (rss, _) = rss_kib(ccm.pid());
    ccm.terminate(Duration::from_secs(5));
    Small {
        latencies,
        floor_latencies,
        burst,
        floor_status,
        floor_contract,
        rss,
    }
}

fn print_small(s: &Small) {
    let ratio = |floor: Duration| s.burst.as_secs_f64() / floor.as_secs_f64();
    println!(
        "small: --kube-api-qps={QPS} --kube-api-burst={BURST} --concurrent-service-syncs={CONCURRENCY}; release build; 2-core machine"
    );
    println!("| measure | value | target |");
    println!("|---|---:|---|");
    println!(
        "| create → IP p50 ({LATENCY_SERVICES} Services, ms) | {} | ≤ 10 |",
        ms(percentile(&s.latencies, 50.0))
    );
    println!(
        "| create → IP p99 (ms) | {} | — |",
        ms(percentile(&s.latencies, 99.0))
    );
    println!(
        "| floor: create + finalizer patch + status patch by a minimal client, p50 / p99 ({LATENCY_FLOOR_SERVICES} Services, ms) | {} / {} | — |",
        ms(percentile(&s.floor_latencies, 50.0)),
        ms(percentile(&s.floor_latencies, 99.0))
    );
    println!(
        "| burst of {BURST_SERVICES} from cold, all addressed (s) | {:.2} | — |",
        s.burst.as_secs_f64()
    );
    println!(
        "| floor: {BURST_SERVICES} status patches (s) | {:.2} | — |",
        s.floor_status.as_secs_f64()
    );
    println!(
        "| floor: {BURST_SERVICES} finalizer + status patches (s) | {:.2} | — |",
        s.floor_contract.as_secs_f64()
    );
    println!(
        "| burst ÷ finalizer+status floor | {:.2} | — |",
        ratio(s.floor_contract)
    );
    println!(
        "| controller RSS with {RSS_SERVICES} Services (+{BURST_SERVICES} foreign) (MiB) | {:.1} | ≤ 64 |",
        s.rss as f64 / 1024.0
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `SERVICE_LB_BENCH_SECTIONS`: which tables, `scale,small` by default.
    let sections =
        std::env::var("SERVICE_LB_BENCH_SECTIONS").unwrap_or_else(|_| "scale,small".into());
    if sections.split(',').any(|s| s == "scale") {
        let scale = scale(scale_services()).await;
        print_scale(&scale);
    }
    if sections.split(',').any(|s| s == "small") {
        let small = small().await;
        print_small(&small);
    }
}
