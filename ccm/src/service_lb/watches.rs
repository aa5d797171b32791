//! The controller's three watches (Services, IPPools, Namespaces), each driving the store
//! deciding reads, marking its first list, and telling the loop what changed.

use std::collections::BTreeMap;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use tokio::sync::mpsc;

use super::cache::CachedService;
use super::class::ClassPolicy;
use crate::crd::ippool::IPPool;
use crate::ipam::ServiceKey;
use crate::listed::Listing;

pub(super) type NamespaceMeta = PartialObjectMeta<Namespace>;

/// A Service deletion seen by the watch, or the end of a (re)list.
pub(super) enum Gone {
    Service(ServiceKey),
    Relisted,
}

/// The watch of every Service into `Store`, each slimmed to what deciding reads and packed
/// ([`CachedService`]); deletions and the ends of (re)lists go to `gone`. The stream yields the
/// applied Services for the controller.
pub(super) fn services(
    client: &Client,
    class_policy: ClassPolicy,
    listing: Listing,
    gone: mpsc::UnboundedSender<Gone>,
) -> (
    Store<CachedService>,
    impl Stream<Item = Result<CachedService, watcher::Error>> + Send + 'static,
) {
    let (store, writer) = reflector::store();
    // The cache keeps only what deciding reads: managedFields and kubectl's copy of the last
    // applied object are most of a Service's size and are never needed here.
    let events = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default().streaming_lists(),
    )
    .default_backoff()
    .map(move |event| event.map(|event| cached(event, class_policy)));
    let stream = reflector::reflector(writer, events)
        .inspect(move |event| {
            listing.observe(event);
            match event {
                // A Service that vanished without passing through our finalizer (it was
                // removed by hand) is never reconciled again; its addresses are freed.
                Ok(watcher::Event::Delete(service)) => {
                    let key = ServiceKey::new(
                        &service.namespace().unwrap_or_default(),
                        &service.name_any(),
                    );
                    let _ = gone.send(Gone::Service(key));
                }
                Ok(watcher::Event::InitDone) => {
                    let _ = gone.send(Gone::Relisted);
                }
                Err(error) => tracing::warn!(%error, "watching Services failed; retrying"),
                _ => {}
            }
        })
        .applied_objects();
    (store, stream)
}

/// A watch event with its Service as the cache keeps it.
fn cached(event: watcher::Event<Service>, policy: ClassPolicy) -> watcher::Event<CachedService> {
    let cache = |service| CachedService::new(service, policy);
    match event {
        watcher::Event::Apply(service) => watcher::Event::Apply(cache(service)),
        watcher::Event::Delete(service) => watcher::Event::Delete(cache(service)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(service) => watcher::Event::InitApply(cache(service)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// A watch driven on its own task (see [`drive`]): its store, the task, and one item per
/// change that matters to Services.
pub(super) struct Driven<K: kube::Resource<DynamicType = ()> + 'static> {
    pub(super) store: Store<K>,
    pub(super) task: tokio::task::JoinHandle<()>,
    pub(super) changes: futures::stream::BoxStream<'static, ()>,
}

/// IPPools: a change is a pool created, deleted or with a new generation (our own status
/// writes do not change it, so they do not reconcile every Service). `on_event` runs for
/// every event.
pub(super) fn pools(
    client: &Client,
    listing: Listing,
    on_event: impl Fn() + Send + 'static,
) -> Driven<IPPool> {
    let (store, writer) = reflector::store();
    let events = watcher(
        Api::<IPPool>::all(client.clone()),
        watcher::Config::default(),
    );
    let stream = reflector::reflector(writer, events).default_backoff();
    let (task, changes) = drive(
        stream,
        "IPPools",
        listing,
        |pool: &IPPool| pool.metadata.generation,
        on_event,
    );
    Driven {
        store,
        task,
        changes,
    }
}

/// Namespaces (metadata only): scopes select namespaces by label, so only label changes matter.
pub(super) fn namespaces(client: &Client, listing: Listing) -> Driven<NamespaceMeta> {
    let (store, writer) = reflector::store();
    let events = watcher(
        Api::<NamespaceMeta>::all(client.clone()),
        watcher::Config::default(),
    );
    let stream = reflector::reflector(writer, events).default_backoff();
    let (task, changes) = drive(
        stream,
        "Namespaces",
        listing,
        |ns: &NamespaceMeta| ns.metadata.labels.clone(),
        || {},
    );
    Driven {
        store,
        task,
        changes,
    }
}

/// Drives a watch (and the store it feeds) on its own task, so that the stores stay current
/// even while every reconcile slot is busy (the controller stops polling its triggers then).
/// Marks `listing` after the first list. Returns the task and a stream with one item per
/// change: an object created, deleted, or changed in `fingerprint`, and the end of every
/// (re)list.
fn drive<K, F>(
    events: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    what: &'static str,
    listing: Listing,
    fingerprint: impl Fn(&K) -> F + Send + 'static,
    on_event: impl Fn() + Send + 'static,
) -> (
    tokio::task::JoinHandle<()>,
    futures::stream::BoxStream<'static, ()>,
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
            listing.observe(&event);
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
                Ok(watcher::Event::InitDone) => true,
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
    (task, receiver_stream(rx).boxed())
}

pub(super) fn receiver_stream<T: Send + 'static>(
    mut rx: mpsc::UnboundedReceiver<T>,
) -> impl Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// The labels of a namespace by name, from the store (empty for an unknown namespace).
pub(super) fn namespace_labels(
    store: &Store<NamespaceMeta>,
) -> impl Fn(&str) -> BTreeMap<String, String> + '_ {
    |name| {
        store
            .get(&kube::runtime::reflector::ObjectRef::new(name))
            .and_then(|ns| ns.metadata.labels.clone())
            .unwrap_or_default()
    }
}
