//! The service-lb reconcile loop (kube-runtime): gate on the initial lists, rebuild, then
//! decide per Service with the IPAM core and apply the planned writes; a second task keeps the
//! `IPPool` statuses and the pool metrics current.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use tokio::sync::{Notify, OnceCell, mpsc, watch};

use super::class::{ClassPolicy, is_ours};
use super::contest::Verdict;
use super::decide::{Decider, Outcome};
use super::events;
use super::metrics::{Metrics, PoolFamily, Reason};
use super::pool_status;
use super::status::{self, Patch};
use crate::crd::ippool::IPPool;
use crate::ipam::{Family, ServiceKey};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("writing Service {namespace}/{name} failed")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the controller's initial lists could not be completed: the watch stopped")]
    NotSynced,
}

impl ReconcileError {
    /// Bounded label for the error metric.
    fn class(&self) -> &'static str {
        match self {
            ReconcileError::Write {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => "conflict",
            ReconcileError::Write { source, .. } if crate::fence::FenceError::is_in(source) => {
                "not_leader"
            }
            ReconcileError::Write { .. } => "api",
            ReconcileError::NotSynced => "not_synced",
        }
    }
}

/// Settings of the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    pub class_policy: ClassPolicy,
    pub concurrency: u16,
    /// Name used as the Event reporter instance.
    pub identity: String,
}

type NamespaceMeta = PartialObjectMeta<Namespace>;

/// Whether each watch has completed its first list. (`Store::wait_until_ready` wakes only one
/// of several concurrent waiters, so the controller keeps its own signals.)
#[derive(Debug, Clone)]
struct Listed {
    services: watch::Receiver<bool>,
    pools: watch::Receiver<bool>,
    namespaces: watch::Receiver<bool>,
}

async fn listed(signal: &watch::Receiver<bool>) -> Result<(), ReconcileError> {
    let mut signal = signal.clone();
    signal
        .wait_for(|done| *done)
        .await
        .map(drop)
        .map_err(|_closed| ReconcileError::NotSynced)
}

struct Context {
    client: Client,
    settings: Settings,
    services: Store<Service>,
    pools: Store<IPPool>,
    namespaces: Store<NamespaceMeta>,
    decider: Mutex<Decider>,
    rebuilt: OnceCell<()>,
    events: crate::events::Recorder,
    metrics: Metrics,
    attempts: crate::retry::Attempts<ObjectRef<Service>>,
    /// Versions of a Service our own writes produced and then replaced with a later write.
    /// The cache may still hand them to a reconcile; deciding on them would only earn a 409.
    superseded: Mutex<HashMap<ObjectRef<Service>, Vec<String>>>,
    /// Services to reconcile again: pending ones after a release, displaced ones.
    wake: mpsc::UnboundedSender<ObjectRef<Service>>,
    /// Something the pool status depends on changed.
    pools_dirty: Arc<Notify>,
    /// Services whose addresses another writer keeps replacing.
    contests: Mutex<super::contest::Contests>,
    listed: Listed,
}

/// Runs the controller until the watch streams end (they do not, short of shutdown).
/// `events` publishes the controller's Events (on its own client and rate-limit budget).
pub async fn run(
    client: Client,
    events: &crate::events::Publisher,
    settings: Settings,
    metrics: Metrics,
) {
    let (services_listed, services_listed_rx) = watch::channel(false);
    let (pools_listed, pools_listed_rx) = watch::channel(false);
    let (namespaces_listed, namespaces_listed_rx) = watch::channel(false);
    let (services, service_writer) = reflector::store();
    let class_policy = settings.class_policy;
    let (gone_tx, gone_rx) = mpsc::unbounded_channel();
    // The cache keeps only what deciding reads: managedFields and kubectl's copy of the last
    // applied object are most of a Service's size and are never needed here.
    let service_stream = reflector::reflector(
        service_writer,
        watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default().streaming_lists(),
        )
        .default_backoff()
        .modify(move |service| super::cache::slim(service, class_policy)),
    )
    .inspect(move |event| match event {
        // A Service that vanished without passing through our finalizer (it was removed by
        // hand) is never reconciled again; its addresses are freed here.
        Ok(watcher::Event::Delete(service)) => {
            let key = ServiceKey::new(
                &service.namespace().unwrap_or_default(),
                &service.name_any(),
            );
            let _ = gone_tx.send(Gone::Service(key));
        }
        Ok(watcher::Event::InitDone) => {
            services_listed.send_replace(true);
            let _ = gone_tx.send(Gone::Relisted);
        }
        Err(error) => tracing::warn!(%error, "watching Services failed; retrying"),
        _ => {}
    })
    .applied_objects();
    let controller = Controller::for_stream(service_stream, services.clone()).with_config(
        kube::runtime::controller::Config::default().concurrency(settings.concurrency),
    );

    let (pools, pool_writer) = reflector::store();
    let pool_stream = reflector::reflector(
        pool_writer,
        watcher(
            Api::<IPPool>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let (namespaces, ns_writer) = reflector::store();
    let ns_stream = reflector::reflector(
        ns_writer,
        watcher(
            Api::<NamespaceMeta>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff();
    let pools_dirty = Arc::new(Notify::new());
    let dirty = pools_dirty.clone();
    let (pool_task, pool_changes) = drive(
        pool_stream,
        "IPPools",
        pools_listed,
        |pool: &IPPool| pool.metadata.generation,
        move || dirty.notify_one(),
    );
    // Scopes select namespaces by label: only label changes matter.
    let (ns_task, ns_changes) = drive(
        ns_stream,
        "Namespaces",
        namespaces_listed,
        |ns: &NamespaceMeta| ns.metadata.labels.clone(),
        || {},
    );
    let (wake, wakes) = mpsc::unbounded_channel();

    let context = Arc::new(Context {
        events: events.recorder(events::CONTROLLER),
        client,
        services,
        pools,
        namespaces,
        decider: Mutex::new(Decider::default()),
        rebuilt: OnceCell::new(),
        metrics,
        attempts: crate::retry::Attempts::default(),
        superseded: Mutex::new(HashMap::new()),
        wake,
        pools_dirty,
        contests: Mutex::default(),
        listed: Listed {
            services: services_listed_rx,
            pools: pools_listed_rx,
            namespaces: namespaces_listed_rx,
        },
        settings,
    });
    let triggers = futures::stream::select(pool_changes, ns_changes);
    let status_task = tokio::spawn(write_pool_statuses(context.clone()));
    let gone_task = tokio::spawn(release_vanished(context.clone(), gone_rx));
    controller
        .reconcile_all_on(triggers)
        .reconcile_on(receiver_stream(wakes))
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not complete");
            }
        })
        .await;
    for task in [status_task, gone_task, pool_task, ns_task] {
        task.abort();
    }
}

/// A Service deletion seen by the watch, or the end of a (re)list.
enum Gone {
    Service(ServiceKey),
    Relisted,
}

/// Frees the addresses of Services that disappeared without being released: deleted after
/// their finalizer was removed by hand, or deleted while the watch was relisting.
async fn release_vanished(ctx: Arc<Context>, mut gone: mpsc::UnboundedReceiver<Gone>) {
    if ctx.ready().await.is_err() {
        return;
    }
    while let Some(event) = gone.recv().await {
        let vanished: Vec<ServiceKey> = match event {
            Gone::Service(key) => vec![key],
            Gone::Relisted => (ctx.lock().holders().into_iter())
                .filter(|key| {
                    ctx.services
                        .get(&ObjectRef::new(&key.name).within(&key.namespace))
                        .is_none()
                })
                .collect(),
        };
        let pending = {
            let mut decider = ctx.lock();
            let freed = vanished
                .iter()
                .filter(|key| decider.release_key(key))
                .count();
            if freed == 0 {
                continue;
            }
            tracing::info!(
                services = freed,
                "freed the addresses of Services that vanished"
            );
            decider.pending_services()
        };
        ctx.pools_dirty.notify_one();
        ctx.wake(pending);
    }
}

/// Drives a watch (and the store it feeds) on its own task, so that the stores stay current
/// even while every reconcile slot is busy (the controller stops polling its triggers then).
/// Marks `listed` after the first list. Returns the task and a stream with one item per change that matters to Services: an object
/// created, deleted, or changed in `fingerprint`, and the end of every (re)list. Our own status
/// writes do not change a pool's generation, so they do not reconcile every Service.
/// `on_event` runs for every event.
fn drive<K, F>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    what: &'static str,
    listed: watch::Sender<bool>,
    fingerprint: impl Fn(&K) -> F + Send + 'static,
    on_event: impl Fn() + Send + 'static,
) -> (
    tokio::task::JoinHandle<()>,
    impl Stream<Item = ()> + Send + 'static,
)
where
    K: kube::Resource + Send + 'static,
    F: PartialEq + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut seen: BTreeMap<(Option<String>, String), F> = BTreeMap::new();
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            on_event();
            let key = |object: &K| (object.meta().namespace.clone(), object.name_any());
            let relevant = match event {
                Ok(watcher::Event::Apply(object)) => {
                    let print = fingerprint(&object);
                    let changed = seen.get(&key(&object)) != Some(&print);
                    seen.insert(key(&object), print);
                    changed
                }
                Ok(watcher::Event::Delete(object)) => {
                    seen.remove(&key(&object));
                    true
                }
                Ok(watcher::Event::InitApply(object)) => {
                    seen.insert(key(&object), fingerprint(&object));
                    false
                }
                Ok(watcher::Event::Init) => {
                    seen.clear();
                    false
                }
                Ok(watcher::Event::InitDone) => {
                    listed.send_replace(true);
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "watching {what} failed; retrying");
                    false
                }
            };
            if relevant && tx.send(()).is_err() {
                return;
            }
        }
    });
    (task, receiver_stream(rx))
}

fn receiver_stream<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn namespace_labels(
    store: &Store<NamespaceMeta>,
) -> impl Fn(&str) -> BTreeMap<String, String> + '_ {
    |name| {
        store
            .get(&ObjectRef::new(name))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default()
    }
}

impl Context {
    /// Waits for the initial lists, then rebuilds every existing allocation exactly once.
    async fn ready(&self) -> Result<(), ReconcileError> {
        self.rebuilt
            .get_or_try_init(|| async {
                listed(&self.listed.services).await?;
                listed(&self.listed.pools).await?;
                listed(&self.listed.namespaces).await?;
                let summary = self.lock().rebuild(
                    &self.pools.state(),
                    &namespace_labels(&self.namespaces),
                    &self.services.state(),
                    self.settings.class_policy,
                );
                tracing::info!(
                    services = summary.services,
                    conflicts = summary.conflicts,
                    outside_pools = summary.outside_pools,
                    "rebuilt existing allocations"
                );
                self.pools_dirty.notify_one();
                Ok(())
            })
            .await
            .map(drop)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Decider> {
        self.decider
            .lock()
            .expect("the decider lock is never poisoned: deciding does not panic")
    }

    /// Applies `patches` in order. Each carries the `resourceVersion` the decision was made on;
    /// after our own write the next one carries the version that write produced (nothing else
    /// can have changed in between, or our write would have failed).
    async fn apply_all(&self, service: &Service, patches: &[Patch]) -> Result<(), ReconcileError> {
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams::default();
        let mut version: Option<String> = None;
        let mut intermediate = Vec::new();
        for patch in patches {
            let (mut value, status) = match patch {
                Patch::Metadata(value) => (value.clone(), false),
                Patch::Status(value) => (value.clone(), true),
            };
            if let Some(version) = &version {
                value["metadata"]["resourceVersion"] = serde_json::Value::String(version.clone());
            }
            let merge = kube::api::Patch::Merge(&value);
            let result = if status {
                api.patch_status(&name, &params, &merge).await
            } else {
                api.patch(&name, &params, &merge).await
            };
            let written = result.map_err(|source| ReconcileError::Write {
                namespace: namespace.clone(),
                name: name.clone(),
                source,
            })?;
            if let Some(previous) = version.take() {
                intermediate.push(previous);
            }
            version = written.metadata.resource_version;
        }
        if !intermediate.is_empty() {
            let key = ObjectRef::from_obj(service);
            (self
                .superseded
                .lock()
                .expect("superseded lock is never poisoned"))
            .insert(key, intermediate);
        }
        Ok(())
    }

    /// Whether `service` is a version our own writes already replaced. Any other version
    /// clears the record.
    fn is_superseded(&self, service: &Service) -> bool {
        let key = ObjectRef::from_obj(service);
        let mut superseded = self
            .superseded
            .lock()
            .expect("superseded lock is never poisoned");
        let stale = (superseded.get(&key))
            .zip(service.metadata.resource_version.as_ref())
            .is_some_and(|(versions, version)| versions.contains(version));
        if !stale {
            superseded.remove(&key);
        }
        stale
    }

    fn contests(&self) -> std::sync::MutexGuard<'_, super::contest::Contests> {
        self.contests
            .lock()
            .expect("the contests lock is never poisoned: nothing panics while holding it")
    }

    /// Reconciles these Services again.
    fn wake(&self, keys: impl IntoIterator<Item = ServiceKey>) {
        for key in keys {
            let _ = self
                .wake
                .send(ObjectRef::new(&key.name).within(&key.namespace));
        }
    }
}

#[tracing::instrument(skip_all, fields(namespace = service.namespace(), name = service.name_any()))]
async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    ctx.ready().await?;
    let started = std::time::Instant::now();
    let result = reconcile_ready(&service, &ctx).await;
    ctx.metrics
        .sync_seconds
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.attempts.succeeded(&ObjectRef::from_obj(&*service));
    }
    result
}

async fn reconcile_ready(service: &Service, ctx: &Context) -> Result<Action, ReconcileError> {
    if ctx.is_superseded(service) {
        // The event of our later write follows and reconciles the current version.
        return Ok(Action::await_change());
    }
    let deleting = service.metadata.deletion_timestamp.is_some();
    if deleting || !is_ours(service, ctx.settings.class_policy) {
        return release(service, ctx, deleting).await;
    }
    let key = ServiceKey::new(
        &service.namespace().unwrap_or_default(),
        &service.name_any(),
    );
    let (mut outcome, displaced, recorded) = {
        let mut decider = ctx.lock();
        decider.refresh_pools(&ctx.pools.state());
        let recorded = decider.recorded(&key);
        let outcome = decider.decide(service, &namespace_labels(&ctx.namespaces));
        (outcome, decider.take_displaced(), recorded)
    };
    ctx.wake(displaced);
    let held = super::request::held_addresses(service);
    let contest = ctx.contests().judge(
        &key,
        &held,
        &recorded,
        &outcome.desired.ingress,
        std::time::Instant::now(),
    );
    if contest == Some(Verdict::StandDown) {
        return Ok(Action::await_change());
    }
    if contest == Some(Verdict::GiveUp) {
        outcome.desired.conditions.push(status::WantedCondition {
            type_: super::contest::COND_CONTESTED,
            status: true,
            reason: "AddressContested".to_owned(),
            message: super::contest::note(&held, &recorded),
        });
    }
    // The finalizer goes in the first write, before any address is written to the Service.
    let patches = status::plan_with_finalizer(
        service,
        &outcome.desired,
        k8s_openapi::jiff::Timestamp::now(),
    );
    if patches.is_empty() {
        return Ok(requeue_for(&outcome));
    }
    let ingress_changed = outcome.desired.ingress != held;
    ctx.apply_all(service, &patches).await?;
    if let Some(verdict) = contest {
        ctx.contests()
            .restored(&key, verdict, std::time::Instant::now());
        if verdict == Verdict::GiveUp {
            tracing::warn!(
                "another writer keeps replacing the Service's addresses; no longer writing it"
            );
            ctx.events.warning(
                service,
                super::contest::CONTESTED_EVENT,
                super::contest::note(&held, &recorded),
            );
        }
    }
    ctx.pools_dirty.notify_one();
    announce_outcome(service, ctx, &outcome, ingress_changed);
    Ok(requeue_for(&outcome))
}

fn announce_outcome(service: &Service, ctx: &Context, outcome: &Outcome, ingress_changed: bool) {
    if ingress_changed && !outcome.desired.ingress.is_empty() {
        tracing::info!(addresses = %outcome.summary, "assigned load-balancer addresses");
        ctx.events
            .normal(service, events::ENSURED, outcome.summary.clone());
        if outcome.deprecated_field {
            let note = "spec.loadBalancerIP is deprecated; use the baremetal-ccm.io/ips annotation"
                .to_owned();
            ctx.events.warning(service, events::DEPRECATED_FIELD, note);
        }
    }
    if let Some(pending) = &outcome.pending {
        ctx.events.warning(
            service,
            events::SYNC_FAILED,
            format!("{}: {}", pending.reason, pending.message),
        );
    }
    if let Some(note) = &outcome.outside_pool {
        ctx.events
            .warning(service, events::OUTSIDE_POOL, note.clone());
    }
    if let Some(note) = &outcome.conflict {
        tracing::warn!("kept a Service on an address another Service holds, as found");
        ctx.events
            .warning(service, super::adopt::CONFLICT_EVENT, note.clone());
    }
}

/// Pending Services are retried on pool, namespace and release triggers; a slow periodic
/// retry covers anything those miss.
fn requeue_for(outcome: &Outcome) -> Action {
    if outcome.pending.is_some() {
        Action::requeue(Duration::from_secs(300))
    } else {
        Action::await_change()
    }
}

async fn release(
    service: &Service,
    ctx: &Context,
    deleting: bool,
) -> Result<Action, ReconcileError> {
    ctx.contests().settled(&ServiceKey::new(
        &service.namespace().unwrap_or_default(),
        &service.name_any(),
    ));
    let patches = status::plan_release(service);
    if !patches.is_empty() {
        if deleting {
            ctx.events
                .normal(service, events::DELETING, "Deleting load balancer".into());
        }
        ctx.apply_all(service, &patches).await?;
        let reason = if deleting {
            events::DELETED
        } else {
            events::UPDATED
        };
        ctx.events.normal(
            service,
            reason,
            "Released the load-balancer addresses".into(),
        );
        tracing::info!(deleting, "released load-balancer addresses");
    }
    // Freed only once the Service no longer shows them: another Service never holds an
    // address while this one's status still carries it.
    let (freed, pending) = {
        let mut decider = ctx.lock();
        let freed = decider.release(service);
        (
            freed,
            if freed {
                decider.pending_services()
            } else {
                Vec::new()
            },
        )
    };
    if freed {
        ctx.pools_dirty.notify_one();
        ctx.wake(pending);
    }
    Ok(Action::await_change())
}

fn error_policy(service: Arc<Service>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let attempt = ctx.attempts.failed(ObjectRef::from_obj(&*service));
    let reason = Reason {
        reason: error.class().to_owned(),
    };
    ctx.metrics.sync_errors.get_or_create(&reason).inc();
    let delay = crate::retry::Backoff::TRANSIENT.delay(attempt);
    tracing::warn!(error = %error, attempt, delay_ms = delay.as_millis(), "reconcile failed; retrying");
    Action::requeue(delay)
}

/// Keeps every pool's status and the pool metrics current: after the rebuild, whenever
/// something they depend on changed (debounced), and every minute.
async fn write_pool_statuses(ctx: Arc<Context>) {
    if ctx.ready().await.is_err() {
        return;
    }
    let mut known_reasons: Vec<&'static str> = Vec::new();
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(60), ctx.pools_dirty.notified()).await;
        // Collects the changes of a burst into one round of writes.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (reports, pending, outside, conflicting) = {
            let mut decider = ctx.lock();
            decider.refresh_pools(&ctx.pools.state());
            (
                decider.pool_reports(),
                decider.pending_by_reason(),
                decider.outside_count(),
                decider.conflict_count(),
            )
        };
        ctx.metrics
            .conflicting
            .set(i64::try_from(conflicting).unwrap_or(i64::MAX));
        let contested = ctx.contests().stood_down();
        ctx.metrics
            .contested
            .set(i64::try_from(contested).unwrap_or(i64::MAX));
        update_metrics(
            &ctx.metrics,
            &reports,
            &pending,
            outside,
            &mut known_reasons,
        );
        let now = k8s_openapi::jiff::Timestamp::now();
        for pool in ctx.pools.state() {
            let Some(report) = reports.get(&pool.name_any()) else {
                continue;
            };
            let desired = pool_status::desired(&pool, report, now);
            let Some(patch) = pool_status::patch(&pool, &desired) else {
                continue;
            };
            let api: Api<IPPool> = Api::all(ctx.client.clone());
            let params = PatchParams::default();
            if let Err(error) = api
                .patch_status(&pool.name_any(), &params, &kube::api::Patch::Merge(&patch))
                .await
            {
                ctx.metrics.pool_status_errors.inc();
                tracing::warn!(%error, pool = pool.name_any(), "writing the pool status failed; retrying");
                ctx.pools_dirty.notify_one();
            }
        }
    }
}

fn saturating_i64(value: u128) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn update_metrics(
    metrics: &Metrics,
    reports: &BTreeMap<String, super::decide::PoolReport>,
    pending: &BTreeMap<&'static str, usize>,
    outside: usize,
    known_reasons: &mut Vec<&'static str>,
) {
    metrics.allocated.clear();
    metrics.pool_size.clear();
    for (pool, report) in reports {
        let Ok(usage) = &report.validity else {
            continue;
        };
        for family in Family::ALL {
            let counts = usage.family(family);
            if counts.total == 0 {
                continue;
            }
            let labels = PoolFamily {
                pool: pool.clone(),
                family: family.to_string(),
            };
            metrics
                .allocated
                .get_or_create(&labels)
                .set(saturating_i64(counts.used));
            metrics
                .pool_size
                .get_or_create(&labels)
                .set(saturating_i64(counts.total));
        }
    }
    for reason in pending.keys() {
        if !known_reasons.contains(reason) {
            known_reasons.push(reason);
        }
    }
    for reason in known_reasons.iter() {
        let count = pending.get(reason).copied().unwrap_or(0);
        let labels = Reason {
            reason: (*reason).to_owned(),
        };
        metrics
            .pending
            .get_or_create(&labels)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    metrics
        .outside_pool
        .set(i64::try_from(outside).unwrap_or(i64::MAX));
}
