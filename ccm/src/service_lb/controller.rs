//! The service-lb reconcile loop (kube-runtime): gate on the initial lists, rebuild, then
//! decide per Service with the IPAM core and apply the planned writes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{Api, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, metadata_watcher, watcher};
use kube::{Client, ResourceExt as _};
use tokio::sync::OnceCell;

use super::class::{ClassPolicy, is_ours};
use super::decide::{Decider, Outcome};
use super::events::{self, ServiceEvents};
use super::metrics::{Metrics, Reason};
use super::status::{self, Patch};
use crate::crd::ippool::IPPool;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("writing Service {namespace}/{name} failed")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("the controller's initial lists could not be completed")]
    NotSynced(#[source] reflector::store::WriterDropped),
}

impl ReconcileError {
    /// Bounded label for the error metric.
    fn class(&self) -> &'static str {
        match self {
            ReconcileError::Write { source: kube::Error::Api(s), .. } if s.code == 409 => "conflict",
            ReconcileError::Write { .. } => "api",
            ReconcileError::NotSynced(_) => "not_synced",
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

pub(super) struct Context {
    client: Client,
    settings: Settings,
    services: Store<Service>,
    pools: Store<IPPool>,
    namespaces: Store<kube::core::PartialObjectMeta<Namespace>>,
    decider: Mutex<Decider>,
    rebuilt: OnceCell<()>,
    events: ServiceEvents,
    metrics: Metrics,
    attempts: Mutex<HashMap<ObjectRef<Service>, u32>>,
    /// Wakes every Service after a release, so pending ones can take the freed address.
    wake_all: tokio::sync::mpsc::UnboundedSender<()>,
}

/// Runs the controller until the watch streams end (they do not, short of shutdown).
pub async fn run(client: Client, settings: Settings, metrics: Metrics) {
    let services: Api<Service> = Api::all(client.clone());
    let controller = Controller::new(services, watcher::Config::default().any_semantic())
        .concurrency(settings.concurrency);

    let (pools, pool_writer) = reflector::store();
    let pool_events = reflector::reflector(pool_writer, watcher(Api::<IPPool>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|_| ());
    let (namespaces, ns_writer) = reflector::store();
    let ns_events = reflector::reflector(ns_writer, metadata_watcher(Api::<Namespace>::all(client.clone()), watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|_| ());
    let (wake_all, wakes) = tokio::sync::mpsc::unbounded_channel();
    let wakes = tokio_stream_from(wakes);
    let triggers = futures::stream::select(futures::stream::select(pool_events, ns_events), wakes);

    let context = Arc::new(Context {
        events: ServiceEvents::new(client.clone(), &settings.identity),
        client,
        services: controller.store(),
        pools,
        namespaces,
        decider: Mutex::new(Decider::default()),
        rebuilt: OnceCell::new(),
        metrics,
        attempts: Mutex::new(HashMap::new()),
        wake_all,
        settings,
    });
    controller
        .reconcile_all_on(triggers)
        .run(reconcile, error_policy, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile did not complete");
            }
        })
        .await;
}

fn tokio_stream_from(mut rx: tokio::sync::mpsc::UnboundedReceiver<()>) -> impl futures::Stream<Item = ()> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

impl Context {
    /// Waits for the initial lists, then rebuilds every existing allocation exactly once.
    async fn ready(&self) -> Result<(), ReconcileError> {
        self.rebuilt
            .get_or_try_init(|| async {
                self.services.wait_until_ready().await.map_err(ReconcileError::NotSynced)?;
                self.pools.wait_until_ready().await.map_err(ReconcileError::NotSynced)?;
                self.namespaces.wait_until_ready().await.map_err(ReconcileError::NotSynced)?;
                let mut decider = self.lock();
                let report = decider.rebuild(&self.pools.state(), &self.namespaces.state(), &self.services.state(), self.settings.class_policy);
                tracing::info!(services = report.services, conflicts = report.conflicts, "rebuilt existing allocations");
                Ok(())
            })
            .await
            .map(drop)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Decider> {
        self.decider.lock().expect("the decider lock is never poisoned: deciding does not panic")
    }

    async fn apply(&self, service: &Service, patch: &Patch) -> Result<(), ReconcileError> {
        let namespace = service.namespace().unwrap_or_default();
        let name = service.name_any();
        let api: Api<Service> = Api::namespaced(self.client.clone(), &namespace);
        let params = PatchParams::default();
        let result = match patch {
            Patch::Metadata(value) => api.patch(&name, &params, &kube::api::Patch::Merge(value)).await,
            Patch::Status(value) => api.patch_status(&name, &params, &kube::api::Patch::Merge(value)).await,
        };
        result.map(drop).map_err(|source| ReconcileError::Write { namespace, name, source })
    }
}

#[tracing::instrument(skip_all, fields(namespace = service.namespace(), name = service.name_any()))]
async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    ctx.ready().await?;
    let started = std::time::Instant::now();
    let result = reconcile_ready(&service, &ctx).await;
    ctx.metrics.sync_seconds.observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.attempts.lock().expect("attempts lock is never poisoned").remove(&ObjectRef::from_obj(&*service));
    }
    result
}

async fn reconcile_ready(service: &Service, ctx: &Context) -> Result<Action, ReconcileError> {
    let deleting = service.metadata.deletion_timestamp.is_some();
    if deleting || !is_ours(service, ctx.settings.class_policy) {
        return release(service, ctx, deleting).await;
    }
    if let Some(patch) = status::add_finalizer(service) {
        // Allocation waits for the finalizer; the write triggers the next reconcile.
        ctx.apply(service, &patch).await?;
        return Ok(Action::await_change());
    }
    let outcome = {
        let mut decider = ctx.lock();
        decider.refresh_pools(&ctx.pools.state());
        decider.decide(service, &ctx.namespaces.state())
    };
    let patches = status::plan(service, &outcome.desired, k8s_openapi::jiff::Timestamp::now());
    if patches.is_empty() {
        return Ok(requeue_for(&outcome));
    }
    let ingress_changes = patches.iter().any(|p| matches!(p, Patch::Status(_))) && outcome.desired.ingress != super::request::held_addresses(service);
    if ingress_changes && !outcome.desired.ingress.is_empty() {
        ctx.events.normal(service, events::ENSURING, "Ensuring load balancer".into()).await;
    }
    for patch in &patches {
        ctx.apply(service, patch).await?;
    }
    announce_outcome(service, ctx, &outcome, ingress_changes).await;
    Ok(requeue_for(&outcome))
}

async fn announce_outcome(service: &Service, ctx: &Context, outcome: &Outcome, ingress_changed: bool) {
    if ingress_changed && !outcome.desired.ingress.is_empty() {
        let addresses: Vec<String> = outcome.desired.ingress.iter().map(ToString::to_string).collect();
        tracing::info!(addresses = %addresses.join(","), "assigned load-balancer addresses");
        ctx.events.normal(service, events::ENSURED, outcome.summary.clone()).await;
        if outcome.deprecated_field {
            let note = "spec.loadBalancerIP is deprecated; use the baremetal-ccm.io/ips annotation".to_owned();
            ctx.events.warning(service, events::DEPRECATED_FIELD, note).await;
        }
    }
    if let Some(pending) = &outcome.pending {
        ctx.events.warning(service, events::SYNC_FAILED, pending.message.clone()).await;
    }
    if let Some(note) = &outcome.outside_pool {
        ctx.events.warning(service, events::OUTSIDE_POOL, note.clone()).await;
    }
}

/// Pending Services are retried on pool, namespace and release triggers; a slow periodic
/// retry covers anything those miss.
fn requeue_for(outcome: &Outcome) -> Action {
    if outcome.pending.is_some() { Action::requeue(Duration::from_secs(300)) } else { Action::await_change() }
}

async fn release(service: &Service, ctx: &Context, deleting: bool) -> Result<Action, ReconcileError> {
    let freed = ctx.lock().release(service);
    let patches = status::plan_release(service);
    if patches.is_empty() {
        if freed {
            let _ = ctx.wake_all.send(());
        }
        return Ok(Action::await_change());
    }
    if deleting {
        ctx.events.normal(service, events::DELETING, "Deleting load balancer".into()).await;
    }
    for patch in &patches {
        ctx.apply(service, patch).await?;
    }
    let reason = if deleting { events::DELETED } else { events::UPDATED };
    ctx.events.normal(service, reason, "Released the load-balancer addresses".into()).await;
    tracing::info!(deleting, "released load-balancer addresses");
    let _ = ctx.wake_all.send(());
    Ok(Action::await_change())
}

fn error_policy(service: Arc<Service>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(&*service);
    let attempt = {
        let mut attempts = ctx.attempts.lock().expect("attempts lock is never poisoned");
        let n = attempts.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    ctx.metrics.sync_errors.get_or_create(&Reason { reason: error.class().to_owned() }).inc();
    let delay = backoff(attempt);
    tracing::warn!(error = %error, attempt, delay_ms = delay.as_millis(), "reconcile failed; retrying");
    Action::requeue(delay)
}

/// Per-object exponential backoff: 100 ms doubling to at most 60 s.
pub fn backoff(attempt: u32) -> Duration {
    let factor = 2u64.saturating_pow(attempt.saturating_sub(1).min(20));
    Duration::from_millis(100u64.saturating_mul(factor)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(5), Duration::from_millis(1600));
        assert_eq!(backoff(30), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(60));
    }
}
