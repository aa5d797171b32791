//! The service-lb controller (kube-runtime): its shared state ([`Context`]) and [`run`], which
//! starts the watches, gates every decision on their first lists and one rebuild, and runs
//! the per-Service reconcile (`reconcile`) beside the pool status task (`pool_statuses`) and
//! the release of vanished Services (`vanished`).

use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use kube::Client;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::{Notify, OnceCell, mpsc};

use super::cache::CachedService;
use super::class::ClassPolicy;
use super::decide::Decider;
use super::events;
use super::metrics::Metrics;
use super::pool_writer::PoolStatusWriter;
use super::reconcile::{ReconcileError, error_policy, reconcile};
use super::watches::{self, NamespaceMeta, namespace_labels, receiver_stream};
use super::writer::ServiceWriter;
use crate::crd::ippool::IPPool;
use crate::ipam::ServiceKey;
use crate::listed::{AllListed, Listings};

/// Settings of the controller.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub class_policy: ClassPolicy,
    pub concurrency: u16,
    /// How Services' annotations are read (`--metallb-annotations`).
    pub reading: baremetal_ccm_core::service_lb::request::Reading,
}

pub(super) struct Context {
    pub(super) settings: Settings,
    pub(super) services: Store<CachedService>,
    pub(super) pools: Store<IPPool>,
    pub(super) namespaces: Store<NamespaceMeta>,
    decider: Mutex<Decider>,
    rebuilt: OnceCell<()>,
    pub(super) events: crate::events::Recorder,
    pub(super) metrics: Metrics,
    pub(super) attempts: crate::retry::Attempts<ObjectRef<CachedService>>,
    pub(super) writer: ServiceWriter,
    pub(super) pool_writer: PoolStatusWriter,
    /// Services to reconcile again: pending ones after a release, displaced ones.
    wake: mpsc::UnboundedSender<ObjectRef<CachedService>>,
    /// Something the pool status depends on changed.
    pub(super) pools_dirty: Arc<Notify>,
    /// Services whose addresses another writer keeps replacing.
    contests: Mutex<super::contest::Contests>,
    listed: AllListed,
}

/// Runs the controller until the watch streams end (they do not, short of shutdown).
/// `events` publishes the controller's Events (on its own client and rate-limit budget).
pub(crate) async fn run(
    client: Client,
    events: &crate::events::Publisher,
    settings: Settings,
    metrics: Metrics,
) {
    let mut listings = Listings::default();
    let (gone_tx, gone_rx) = mpsc::unbounded_channel();
    let (services, service_stream) = watches::services(
        &client,
        settings.class_policy,
        listings.track("Services"),
        gone_tx,
    );
    let pools_dirty = Arc::new(Notify::new());
    let dirty = pools_dirty.clone();
    let pools = watches::pools(&client, listings.track("IPPools"), move || {
        dirty.notify_one()
    });
    let namespaces = watches::namespaces(&client, listings.track("Namespaces"));
    let (wake, wakes) = mpsc::unbounded_channel();
    let controller = Controller::for_stream(service_stream, services.clone()).with_config(
        kube::runtime::controller::Config::default().concurrency(settings.concurrency),
    );
    let context = Arc::new(Context {
        events: events.recorder(events::CONTROLLER),
        writer: ServiceWriter::new(client.clone(), metrics.writes.clone()),
        pool_writer: PoolStatusWriter::new(client, metrics.writes.clone()),
        services,
        pools: pools.store,
        namespaces: namespaces.store,
        decider: Mutex::new(Decider::new(settings.reading)),
        rebuilt: OnceCell::new(),
        metrics,
        attempts: crate::retry::Attempts::default(),
        wake,
        pools_dirty,
        contests: Mutex::default(),
        listed: listings.all(),
        settings,
    });
    let triggers = futures::stream::select(pools.changes, namespaces.changes);
    let status_task = tokio::spawn(super::pool_statuses::run(context.clone()));
    let gone_task = tokio::spawn(super::vanished::release(context.clone(), gone_rx));
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
    for task in [status_task, gone_task, pools.task, namespaces.task] {
        task.abort();
    }
}

impl Context {
    /// Waits for the initial lists, then rebuilds every existing allocation exactly once.
    pub(super) async fn ready(&self) -> Result<(), ReconcileError> {
        self.rebuilt
            .get_or_try_init(|| async {
                self.listed.wait().await?;
                // Each cached Service is decoded in turn, so that they are never all decoded at
                // once.
                let cached = self.services.state();
                let summary = self.lock().rebuild(
                    &self.pools.state(),
                    &namespace_labels(&self.namespaces),
                    cached.iter().map(|service| Box::new(service.service())),
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

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Decider> {
        self.decider
            .lock()
            .expect("the decider lock is never poisoned: deciding does not panic")
    }

    pub(super) fn contests(&self) -> std::sync::MutexGuard<'_, super::contest::Contests> {
        self.contests
            .lock()
            .expect("the contests lock is never poisoned: nothing panics while holding it")
    }

    /// Reconciles these Services again.
    pub(super) fn wake(&self, keys: impl IntoIterator<Item = ServiceKey>) {
        for key in keys {
            let _ = self
                .wake
                .send(ObjectRef::new(&key.name).within(&key.namespace));
        }
    }
}
