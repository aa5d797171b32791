//! The announcer's view of the cluster: watched caches of Services, Nodes, EndpointSlices,
//! IPPools and BGPPeers, slimmed to what planning reads, the password Secrets the peers
//! reference ([`Passwords`]), and a signal that something changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointSlice};
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, Resource, ResourceExt as _};

use super::passwords::{PasswordError, Passwords};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::inputs::{self, LocalEndpoints, NodeInput, PeerInput, PoolInput, ServiceInput};
use crate::contract::ALLOCATED_FROM;
use crate::crd::bgppeer::{BGPPeer, SecretKeyRef};
use crate::crd::ippool::IPPool;
use crate::listed::{AllListed, Listing, Listings};

/// The caches; cheap to clone.
#[derive(Clone)]
pub(crate) struct World {
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    pools: Store<IPPool>,
    peers: Store<BGPPeer>,
    passwords: Passwords,
    listed: AllListed,
    /// The small lists a session needs: pools, peers and Nodes (not Services or slices).
    sessions_listed: AllListed,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("passwords", &self.passwords)
            .finish_non_exhaustive()
    }
}

/// Everything planning reads, taken from the caches at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub pools: Vec<PoolInput>,
    /// Pools whose announce options cannot be used, with the reason.
    pub invalid_pools: BTreeMap<String, String>,
    pub peers: Vec<PeerInput>,
    /// Peers whose spec cannot be configured, with the reason.
    pub invalid_peers: BTreeMap<String, String>,
    pub services: Vec<ServiceInput>,
    pub endpoints: LocalEndpoints,
    pub nodes: Vec<NodeInput>,
}

impl World {
    /// Starts the watches; `changed` is bumped on every event. Password Secrets are read from
    /// `password_namespace` only, and only those the peers reference
    /// ([`World::track_passwords`]).
    pub(crate) fn start(
        client: &Client,
        password_namespace: &str,
        changed: watch::Sender<u64>,
    ) -> World {
        let changed = Arc::new(changed);
        let mut listings = Listings::default();
        let mut watch = |what| (listings.track(what), changed.clone());
        let services = watch_all(Api::all(client.clone()), slim_service, watch("Services"));
        let nodes = watch_all(Api::all(client.clone()), slim_node, watch("Nodes"));
        let slices = watch_all(
            Api::all(client.clone()),
            slim_slice,
            watch("EndpointSlices"),
        );
        let pools = watch_all(Api::all(client.clone()), |_| {}, watch("IPPools"));
        let peers = watch_all(Api::all(client.clone()), |_| {}, watch("BGPPeers"));
        let passwords = Passwords::new(client, password_namespace, changed);
        let sessions_listed = listings.only(&["IPPools", "BGPPeers", "Nodes"]);
        World {
            services,
            nodes,
            slices,
            pools,
            peers,
            passwords,
            listed: listings.all(),
            sessions_listed,
        }
    }

    /// Waits until every watch has listed once.
    pub(crate) async fn listed(&self) {
        tracing::debug!("waiting for the initial lists");
        if let Err(stopped) = self.listed.wait().await {
            // The watch task ended (shutdown): nothing to wait for.
            tracing::debug!(%stopped, "not waiting for the initial lists");
        }
    }

    /// Waits until the pools, peers and Nodes have listed once: enough to configure the
    /// sessions (the router ID may be the Node's address), not the paths.
    pub(crate) async fn listed_for_sessions(&self) {
        if let Err(stopped) = self.sessions_listed.wait().await {
            tracing::debug!(%stopped, "not waiting for the initial lists");
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        for pool in self.pools.state() {
            match inputs::pool_input(&pool) {
                Some(Ok(input)) => snapshot.pools.push(input),
                Some(Err(reason)) => {
                    snapshot.invalid_pools.insert(pool.name_any(), reason);
                }
                None => {}
            }
        }
        for peer in self.peers.state() {
            match inputs::peer_input(&peer) {
                Ok(input) => snapshot.peers.push(input),
                Err(reason) => {
                    snapshot.invalid_peers.insert(peer.name_any(), reason);
                }
            }
        }
        snapshot.services = (self.services.state().iter())
            .filter_map(|s| inputs::service_input(s))
            .collect();
        let slices = self.slices.state();
        snapshot.endpoints = inputs::local_endpoints(slices.iter().map(|s| &**s));
        snapshot.nodes = (self.nodes.state().iter())
            .map(|n| inputs::node_input(n))
            .collect();
        snapshot
    }

    /// Watches the password Secrets `peers` reference (and no others), waiting briefly for
    /// new ones to be read.
    pub(crate) async fn track_passwords(&self, peers: &[PeerInput]) {
        (self.passwords)
            .track(peers.iter().filter_map(|p| p.password.as_ref()))
            .await;
    }

    /// The password a peer's Secret reference points at.
    pub(crate) fn password(&self, reference: &SecretKeyRef) -> Result<String, PasswordError> {
        self.passwords.password(reference)
    }
}

/// Drives a reflector for `api` on its own task; marks its listing after the first list and
/// bumps `changed` on every event.
pub(crate) fn watch_all<K>(
    api: Api<K>,
    slim: impl FnMut(&mut K) + Send + 'static,
    (listing, changed): (Listing, Arc<watch::Sender<u64>>),
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let what = K::kind(&()).into_owned();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(slim),
    );
    tokio::spawn(drive(stream, what, listing, changed));
    store
}

async fn drive<K>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
    what: String,
    listing: Listing,
    changed: Arc<watch::Sender<u64>>,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        listing.observe(&event);
        match event {
            Ok(watcher::Event::InitDone) => {}
            Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(%error, kind = what, "watch failed; retrying");
                continue;
            }
        }
        changed.send_modify(|generation| *generation = generation.wrapping_add(1));
    }
}

/// Keeps what [`inputs::service_input`] reads.
pub(crate) fn slim_service(service: &mut Service) {
    service.managed_fields_mut().clear();
    let from = service.annotations().get(ALLOCATED_FROM).cloned();
    service.metadata.annotations = from.map(|f| [(ALLOCATED_FROM.to_owned(), f)].into());
    service.metadata.labels = None;
    service.metadata.owner_references = None;
    service.spec = service.spec.take().map(|spec| ServiceSpec {
        type_: spec.type_,
        external_traffic_policy: spec.external_traffic_policy,
        ..ServiceSpec::default()
    });
}

/// Keeps what [`inputs::node_input`] reads; the Ready condition without its timestamps, so
/// that heartbeats change nothing.
pub(crate) fn slim_node(node: &mut Node) {
    node.managed_fields_mut().clear();
    node.metadata.annotations = None;
    let status = node.status.take().unwrap_or_default();
    let ready = (status.conditions.into_iter().flatten())
        .filter(|c| c.type_ == "Ready")
        .map(|c| NodeCondition {
            type_: c.type_,
            status: c.status,
            ..NodeCondition::default()
        })
        .collect();
    node.status = Some(NodeStatus {
        addresses: status.addresses,
        conditions: Some(ready),
        ..NodeStatus::default()
    });
}

/// Keeps the service-name label and each endpoint's node and conditions (ready for BGP;
/// serving and terminating too for layer 2, which falls back to them as kube-proxy does).
pub(crate) fn slim_slice(slice: &mut EndpointSlice) {
    slice.managed_fields_mut().clear();
    slice.metadata.annotations = None;
    slice.ports = None;
    slice.endpoints = slice.endpoints.take().map(|endpoints| {
        (endpoints.into_iter())
            .map(|e| Endpoint {
                node_name: e.node_name,
                conditions: e.conditions.map(|c| EndpointConditions {
                    ready: c.ready,
                    serving: c.serving,
                    terminating: c.terminating,
                }),
                ..Endpoint::default()
            })
            .collect()
    });
}
