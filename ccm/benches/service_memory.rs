//! Memory of the service-lb controller per Service, without an API server: where the bytes
//! that grow with the Services go. Builds `SERVICE_MEMORY_BENCH_SERVICES` Services (default
//! 20,000) as the API server returns them after our writes (dual-stack, our finalizer and
//! `allocated-from` mark, two ingress addresses, our condition, plus kubectl's last-applied
//! copy and managedFields), and holds them the way the controller does, twice: as the cache kept
//! them before `CachedService` (a slimmed k8s-openapi `Service`, `service_cache::slim`) and as it
//! keeps them now (`service_cache::CachedService`). For each:
//!
//! - the reflector store, filled by a full list as `watches.rs` fills it, split into the cached
//!   object (its inline size and the heap of each part) and the store's key (kube's `ObjectRef`)
//!   and table slot;
//! - the allocator (the `Decider`, rebuilt from the store, then deciding every Service as the
//!   reconciles do);
//! - kube-runtime's `Controller` after it reconciled every Service once (a cold start): what its
//!   scheduler keeps once the burst has passed (its tables keep their peak capacity).
//!
//! Prints bytes per Service by part, as requested (`requested`) and as glibc's chunks
//! (`chunks`: `size + 8` rounded up to 16, at least 32, which is what glibc's live-heap count
//! and so the resident set see). Deterministic; a few seconds. Run with
//! `cargo bench -p baremetal-ccm --bench service_memory`.

#![allow(
    unsafe_code,
    reason = "a counting global allocator must implement the unsafe GlobalAlloc trait"
)]
#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use baremetal_ccm::service_cache::{CachedService, slim};
use baremetal_ccm_core::crd::ippool::IPPool;
use baremetal_ccm_core::service_lb::class::ClassPolicy;
use baremetal_ccm_core::service_lb::decide::Decider;
use baremetal_ccm_core::service_lb::request::Reading;
use baremetal_ccm_core::service_lb::status;
use k8s_openapi::api::core::v1::Service;
use kube::Resource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use tokio::runtime::Runtime;

/// Bytes the program asked for and still holds.
static REQUESTED: AtomicIsize = AtomicIsize::new(0);
/// The same allocations as glibc's chunks.
static CHUNKS: AtomicIsize = AtomicIsize::new(0);

fn signed(size: usize) -> isize {
    isize::try_from(size).expect("allocation sizes fit isize (Layout guarantees it)")
}

/// The chunk glibc's malloc uses for `size` bytes on a 64-bit target: the size word, rounded
/// up to 16, at least 32.
fn chunk(size: usize) -> isize {
    signed((size + 8).next_multiple_of(16).max(32))
}

fn count(size: usize, sign: isize) {
    REQUESTED.fetch_add(sign * signed(size), Ordering::Relaxed);
    CHUNKS.fetch_add(sign * chunk(size), Ordering::Relaxed);
}

/// `System`, counting live bytes.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; the counters have no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size(), 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap: (requested, chunks).
#[derive(Debug, Clone, Copy)]
struct Live(isize, isize);

fn live() -> Live {
    Live(
        REQUESTED.load(Ordering::Relaxed),
        CHUNKS.load(Ordering::Relaxed),
    )
}

impl Live {
    fn since(self, before: Live) -> Live {
        Live(self.0 - before.0, self.1 - before.1)
    }
}

/// One line of the table: `what`, its bytes per Service.
struct Report {
    n: usize,
    lines: Vec<(String, f64, f64)>,
}

impl Report {
    #[allow(
        clippy::cast_precision_loss,
        reason = "byte counts far below 2^52 print exactly enough"
    )]
    fn add(&mut self, what: &str, bytes: Live) {
        let n = self.n as f64;
        (self.lines).push((what.to_owned(), bytes.0 as f64 / n, bytes.1 as f64 / n));
    }

    fn print(&self, title: &str) {
        println!("\n{title}");
        println!("{:<58} {:>10} {:>10}", "per Service", "requested", "chunks");
        for (what, requested, chunks) in &self.lines {
            println!("{what:<58} {requested:>10.0} {chunks:>10.0}");
        }
    }
}

const NAMESPACE: &str = "bench";

fn bench_pool() -> Arc<IPPool> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "IPPool",
            "metadata": {"name": "bench", "resourceVersion": "1"},
            "spec": {
                "addresses": ["100.64.0.0/10", "2001:db8:100::/104"],
                "announce": {"mode": "none"},
            },
        }))
        .unwrap(),
    )
}

fn no_labels(_: &str) -> BTreeMap<String, String> {
    BTreeMap::new()
}

/// Service `i` as a user creates it (what `kubectl apply` sends, and what the API server adds).
fn created(i: usize) -> Service {
    let name = format!("web-{i:06}");
    let applied = format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"annotations":{{}},"name":"{name}","namespace":"{NAMESPACE}"}},"spec":{{"ipFamilies":["IPv4","IPv6"],"ipFamilyPolicy":"RequireDualStack","ports":[{{"name":"http","port":80,"protocol":"TCP","targetPort":8080}}],"selector":{{"app":"{name}"}},"type":"LoadBalancer","allocateLoadBalancerNodePorts":false}}}}"#
    );
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": name, "namespace": NAMESPACE,
            "uid": format!("{:08x}-5d0c-4a6e-9c1b-{:012x}", i, i * 7919),
            "resourceVersion": (1_000_000 + 3 * i).to_string(),
            "creationTimestamp": "2026-12-07T17:00:00Z",
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": applied},
            "managedFields": [{
                "manager": "kubectl-client-side-apply", "operation": "Update",
                "apiVersion": "v1", "time": "2026-12-07T17:00:00Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:ports": {"k:{\"port\":80,\"protocol\":\"TCP\"}": {}}}},
            }],
        },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": format!("10.96.{}.{}", i / 250, i % 250 + 1),
            "clusterIPs": [format!("10.96.{}.{}", i / 250, i % 250 + 1), format!("fd00:10:96::{i:x}")],
            "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": format!("web-{i:06}")},
            "sessionAffinity": "None", "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster", "allocateLoadBalancerNodePorts": false,
        },
        "status": {"loadBalancer": {}},
    }))
    .unwrap()
}

/// Service `i` as the API server returns it after our writes (finalizer, mark, addresses,
/// conditions), as JSON: the watch's input.
fn wire(i: usize, decider: &mut Decider) -> String {
    let mut service = created(i);
    let desired = decider.decide(&service, &no_labels).desired;
    assert_eq!(
        desired.ingress.len(),
        2,
        "the pool has room for every Service"
    );
    let mut value = serde_json::to_value(&service).unwrap();
    value["metadata"]["finalizers"] = serde_json::json!([status::FINALIZER]);
    value["metadata"]["annotations"][baremetal_ccm_core::contract::ALLOCATED_FROM] =
        serde_json::json!(desired.allocated_from);
    value["metadata"]["resourceVersion"] = serde_json::json!((1_000_002 + 3 * i).to_string());
    value["status"] = serde_json::json!({
        "loadBalancer": {"ingress": (desired.ingress.iter())
            .map(|ip| serde_json::json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect::<Vec<_>>()},
        "conditions": (desired.conditions.iter())
            .map(|c| serde_json::json!({
                "type": c.type_, "status": if c.status { "True" } else { "False" },
                "reason": c.reason, "message": c.message,
                "lastTransitionTime": "2026-12-07T17:00:01Z",
            }))
            .collect::<Vec<_>>(),
    });
    service = serde_json::from_value(value).unwrap();
    let now = k8s_openapi::jiff::Timestamp::now();
    assert!(
        status::plan_with_finalizer(&service, &desired, now).is_empty(),
        "the fixture is what our writes leave: nothing is left to write"
    );
    serde_json::to_string(&service).unwrap()
}

/// Bytes per part of the cached Services: each part cloned as the reflector clones the
/// Service it caches (so with the capacities a clone has), less the clones' inline size.
fn parts(report: &mut Report, services: &[Service]) {
    fn heap<T: Clone>(services: &[Service], part: impl Fn(&Service) -> T) -> Live {
        let mut clones = Vec::with_capacity(services.len());
        let before = live();
        clones.extend(services.iter().map(part));
        let bytes = live().since(before);
        drop(clones);
        bytes
    }
    let n = signed(services.len());
    let inline = chunk(std::mem::size_of::<Service>() + 2 * std::mem::size_of::<usize>());
    let arc = signed(std::mem::size_of::<Service>() + 2 * std::mem::size_of::<usize>());
    report.add("  Service inline (in its Arc)", Live(arc * n, inline * n));
    report.add(
        "  metadata.annotations",
        heap(services, |s| s.metadata.annotations.clone()),
    );
    report.add(
        "  metadata.labels",
        heap(services, |s| s.metadata.labels.clone()),
    );
    report.add(
        "  metadata.finalizers",
        heap(services, |s| s.metadata.finalizers.clone()),
    );
    report.add(
        "  metadata: name, namespace, uid, resourceVersion, rest",
        heap(services, |s| {
            let mut meta = s.metadata.clone();
            meta.annotations = None;
            meta.labels = None;
            meta.finalizers = None;
            meta
        }),
    );
    report.add("  spec", heap(services, |s| s.spec.clone()));
    report.add(
        "  status.loadBalancer",
        heap(services, |s| {
            (s.status.as_ref()).and_then(|status| status.load_balancer.clone())
        }),
    );
    report.add(
        "  status.conditions",
        heap(services, |s| {
            (s.status.as_ref()).and_then(|status| status.conditions.clone())
        }),
    );
}

/// What kube's `Controller` holds after it reconciled each of `objects` once, fed one watch
/// event per object (each a clone, dropped once the controller took its key).
async fn controller_after_one_reconcile_each<K>(store: Store<K>, objects: Arc<Vec<K>>) -> Live
where
    K: Clone + Resource<DynamicType = ()> + DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    let n = objects.len();
    let done = Arc::new((AtomicUsize::new(0), tokio::sync::Notify::new()));
    let all = objects.clone();
    let events =
        futures::stream::iter((0..n).map(move |i| Ok::<_, watcher::Error>(all[i].clone())));
    let events = futures::StreamExt::chain(events, futures::stream::pending());
    let before = live();
    let reconciled = done.clone();
    let task = tokio::spawn(futures::StreamExt::for_each(
        Controller::for_stream(events, store)
            .with_config(kube::runtime::controller::Config::default().concurrency(4))
            .run(
                move |_: Arc<K>, done: Arc<(AtomicUsize, tokio::sync::Notify)>| async move {
                    if done.0.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        done.1.notify_one();
                    }
                    Ok::<_, std::io::Error>(Action::await_change())
                },
                |_, _, _| Action::await_change(),
                reconciled,
            ),
        |_| async {},
    ));
    done.1.notified().await;
    // The last reconcile's result is reported before the runner frees its slot.
    tokio::task::yield_now().await;
    let bytes = live().since(before);
    task.abort();
    // The aborted task is dropped here, not in the next measurement.
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    drop(objects);
    bytes
}

/// A store filled by one full list of `objects`, as the watch fills it; and its bytes.
fn listed<K>(objects: &[K]) -> (Store<K>, Live)
where
    K: Clone + Resource<DynamicType = ()> + 'static,
{
    let before = live();
    let (store, mut writer) = reflector::store::<K>();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object.clone()));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    (store, live().since(before))
}

/// The sum of the lines of `report` from `at`, as totals.
fn total(report: &Report, at: usize) -> Live {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "per-Service bytes times n are whole byte counts"
    )]
    let of = |per: f64| (per * report.n as f64).round() as isize;
    (report.lines[at..].iter()).fold(Live(0, 0), |sum, line| {
        Live(sum.0 + of(line.1), sum.1 + of(line.2))
    })
}

/// Each Service as the cache kept it before `CachedService`: a slimmed k8s-openapi `Service`.
fn slimmed_services(report: &mut Report, runtime: &Runtime, wires: &[String]) {
    let policy = ClassPolicy::DefaultAndExplicit;
    let mut services: Vec<Service> = Vec::with_capacity(wires.len());
    services.extend(wires.iter().map(|wire| {
        let mut service: Service = serde_json::from_str(wire).unwrap();
        slim(&mut service, policy);
        service
    }));
    let (store, cached) = listed(&services);
    report.add("reflector store (Store<Service>), all of it", cached);
    let at = report.lines.len();
    parts(report, &services);
    let service = total(report, at);
    report.add(
        "  key (ObjectRef) and table slot (the rest)",
        cached.since(service),
    );
    decide_and_reconcile(report, runtime, store, services, |service| service.clone());
}

/// Each Service as the cache keeps it now: a `CachedService`.
fn cached_services(report: &mut Report, runtime: &Runtime, wires: &[String]) {
    let policy = ClassPolicy::DefaultAndExplicit;
    let mut services: Vec<CachedService> = Vec::with_capacity(wires.len());
    let mut packing = std::time::Duration::ZERO;
    services.extend((wires.iter()).map(|wire| {
        let service: Service = serde_json::from_str(wire).unwrap();
        let started = std::time::Instant::now();
        let cached = CachedService::new(service, policy);
        packing += started.elapsed();
        cached
    }));
    let started = std::time::Instant::now();
    for cached in &services {
        std::hint::black_box(cached.service());
    }
    let unpacking = started.elapsed();
    let count = u32::try_from(services.len()).unwrap();
    println!(
        "\nCachedService: {:.1} µs to slim and pack a Service, {:.1} µs to decode it",
        (packing / count).as_secs_f64() * 1e6,
        (unpacking / count).as_secs_f64() * 1e6,
    );
    let (store, cached) = listed(&services);
    report.add("reflector store (Store<CachedService>), all of it", cached);
    let inline = std::mem::size_of::<CachedService>() + 2 * std::mem::size_of::<usize>();
    let n = signed(services.len());
    report.add(
        "  CachedService inline (in its Arc)",
        Live(signed(inline) * n, chunk(inline) * n),
    );
    let at = report.lines.len();
    let mut clones = Vec::with_capacity(services.len());
    let before = live();
    clones.extend(services.iter().cloned());
    let heap = live().since(before);
    drop(clones);
    report.add("  namespace, name and the JSON of the rest", heap);
    let service = total(report, at - 1);
    report.add(
        "  key (ObjectRef) and table slot (the rest)",
        cached.since(service),
    );
    decide_and_reconcile(report, runtime, store, services, CachedService::service);
}

/// What either layout adds past the store: the allocator rebuilt from it (one decoded Service
/// at a time, as the controller does) and deciding every Service, then kube's `Controller`
/// after reconciling each once. `service` is what a reconcile reads of a cached object.
fn decide_and_reconcile<K>(
    report: &mut Report,
    runtime: &Runtime,
    store: Store<K>,
    objects: Vec<K>,
    service: impl Fn(&K) -> Service,
) where
    K: Clone + Resource<DynamicType = ()> + DeserializeOwned + std::fmt::Debug,
    K: Send + Sync + 'static,
{
    let before = live();
    let mut decider = Decider::new(Reading { metallb: true });
    let listed = store.state();
    decider.rebuild(
        std::slice::from_ref(&bench_pool()),
        &no_labels,
        listed.iter().map(|object| Box::new(service(object))),
        ClassPolicy::DefaultAndExplicit,
    );
    drop(listed);
    for object in store.state() {
        let outcome = decider.decide(&service(&object), &no_labels);
        assert!(
            outcome.pending.is_none(),
            "every Service keeps its addresses"
        );
    }
    report.add(
        "allocator (Decider), rebuilt, every Service decided",
        live().since(before),
    );
    let controller = runtime.block_on(controller_after_one_reconcile_each(
        store,
        Arc::new(objects),
    ));
    report.add(
        "kube Controller after reconciling each once (cold start)",
        controller,
    );
}

fn main() {
    let n = std::env::var("SERVICE_MEMORY_BENCH_SERVICES").map_or(20_000, |v| {
        (v.replace(['_', ','], "").parse())
            .unwrap_or_else(|_| panic!("SERVICE_MEMORY_BENCH_SERVICES must be a count, not {v:?}"))
    });
    let wires: Vec<String> = {
        let mut decider = Decider::new(Reading { metallb: true });
        decider.refresh_pools(std::slice::from_ref(&bench_pool()));
        (0..n).map(|i| wire(i, &mut decider)).collect()
    };
    let wire_bytes: usize = wires.iter().map(String::len).sum();
    println!(
        "{n} Services, {} bytes of JSON each on the wire",
        wire_bytes / n
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut before = Report {
        n,
        lines: Vec::new(),
    };
    let full: Vec<Service> = Vec::with_capacity(n);
    let start = live();
    let full = (wires.iter()).fold(full, |mut all, wire| {
        all.push(serde_json::from_str(wire).unwrap());
        all
    });
    before.add(
        "a Service as deserialized, not slimmed (heap only)",
        live().since(start),
    );
    drop(full);
    slimmed_services(&mut before, &runtime, &wires);
    before.print("as a slimmed k8s-openapi Service (before CachedService)");
    let mut after = Report {
        n,
        lines: Vec::new(),
    };
    cached_services(&mut after, &runtime, &wires);
    after.print("as a CachedService");
}
