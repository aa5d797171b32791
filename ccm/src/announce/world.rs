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
/// bumps `changed` when what the watch delivers changed what planning reads ([`Changes`]).
pub(crate) fn watch_all<K>(
    api: Api<K>,
    slim: impl FnMut(&mut K) + Send + 'static,
    (listing, changed): (Listing, Arc<watch::Sender<u64>>),
) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
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
) where
    K: Resource<DynamicType = ()> + serde::Serialize,
{
    let mut stream = std::pin::pin!(stream);
    let mut changes = Changes::new(&what);
    while let Some(event) = stream.next().await {
        listing.observe(&event);
        let bump = match &event {
            Ok(event) => changes.observe(event),
            Err(error) => {
                tracing::warn!(%error, kind = what, "watch failed; retrying");
                false
            }
        };
        if bump {
            changed.send_modify(|generation| *generation = generation.wrapping_add(1));
        }
    }
}

/// Which watch events change what planning reads. A Node's status heartbeat, an object's
/// `resourceVersion`, or the status an IPPool or BGPPeer is given (ours among them) change
/// nothing planning reads, yet each arrives as an event: with 1,000 Nodes reporting their
/// status every few minutes, a plan over every Service for each would keep a core busy.
/// So each object's content is kept as a 64-bit fingerprint of what is left after slimming
/// (without `resourceVersion` and `managedFields`, and without the status of IPPools and
/// BGPPeers), and an event counts only when the fingerprint differs or the object is gone.
/// A re-list counts once, at its end.
struct Changes {
    ignore_status: bool,
    seen: std::collections::HashMap<(Option<String>, String), u64>,
    relisted: Option<std::collections::HashMap<(Option<String>, String), u64>>,
}

impl Changes {
    fn new(kind: &str) -> Self {
        Self {
            ignore_status: matches!(kind, "IPPool" | "BGPPeer"),
            seen: std::collections::HashMap::new(),
            relisted: None,
        }
    }

    /// Whether `event` changes what planning reads.
    fn observe<K: Resource<DynamicType = ()> + serde::Serialize>(
        &mut self,
        event: &watcher::Event<K>,
    ) -> bool {
        match event {
            watcher::Event::Init => {
                self.relisted = Some(std::collections::HashMap::new());
                false
            }
            watcher::Event::InitApply(object) => {
                let fingerprint = self.fingerprint(object);
                (self.relisted.get_or_insert_with(Default::default))
                    .insert(key(object), fingerprint);
                false
            }
            watcher::Event::InitDone => {
                self.seen = self.relisted.take().unwrap_or_default();
                true
            }
            watcher::Event::Apply(object) => {
                let fingerprint = self.fingerprint(object);
                self.seen.insert(key(object), fingerprint) != Some(fingerprint)
            }
            watcher::Event::Delete(object) => {
                self.seen.remove(&key(object));
                true
            }
        }
    }

    fn fingerprint<K: serde::Serialize>(&self, object: &K) -> u64 {
        use std::hash::{Hash as _, Hasher as _};
        let mut value = serde_json::to_value(object).unwrap_or_default();
        if let Some(fields) = value.as_object_mut() {
            if self.ignore_status {
                fields.remove("status");
            }
            if let Some(metadata) = fields.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                metadata.remove("resourceVersion");
                metadata.remove("managedFields");
            }
        }
        let mut hasher = std::hash::DefaultHasher::new();
        value.to_string().hash(&mut hasher);
        hasher.finish()
    }
}

fn key<K: Resource<DynamicType = ()>>(object: &K) -> (Option<String>, String) {
    let meta = object.meta();
    (
        meta.namespace.clone(),
        meta.name.clone().unwrap_or_default(),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(version: &str, ready: &str, heartbeat: &str) -> Node {
        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "resourceVersion": version},
            "status": {"conditions": [{"type": "Ready", "status": ready,
                "lastHeartbeatTime": heartbeat}]},
        }))
        .unwrap();
        slim_node(&mut node);
        node
    }

    #[test]
    fn a_heartbeat_is_no_change_and_readiness_is() {
        let mut changes = Changes::new("Node");
        assert!(!changes.observe(&watcher::Event::<Node>::Init));
        let first = node("1", "True", "2026-12-07T10:00:00Z");
        assert!(!changes.observe(&watcher::Event::InitApply(first.clone())));
        assert!(changes.observe(&watcher::Event::<Node>::InitDone));
        let beat = node("2", "True", "2026-12-07T10:05:00Z");
        assert!(!changes.observe(&watcher::Event::Apply(beat)));
        assert!(changes.observe(&watcher::Event::Apply(node(
            "3",
            "False",
            "2026-12-07T10:06:00Z"
        ))));
        assert!(changes.observe(&watcher::Event::Apply(node(
            "4",
            "True",
            "2026-12-07T10:07:00Z"
        ))));
        assert!(changes.observe(&watcher::Event::Delete(first.clone())));
        // Gone, then back as it was: a change.
        assert!(changes.observe(&watcher::Event::Apply(first)));
    }

    #[test]
    fn the_status_of_a_peer_is_no_change_and_its_spec_is() {
        let peer = |version: &str, asn: u32, state: &str| -> BGPPeer {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "BGPPeer",
                "metadata": {"name": "tor", "resourceVersion": version},
                "spec": {"peerAddress": "192.0.2.1", "peerASN": asn, "localASN": 64512},
                "status": {"speakers": [{"speaker": "a", "state": state, "updated": "2026-12-07T10:00:00Z"}]},
            }))
            .unwrap()
        };
        let mut changes = Changes::new("BGPPeer");
        assert!(changes.observe(&watcher::Event::Apply(peer("1", 65000, "Active"))));
        assert!(!changes.observe(&watcher::Event::Apply(peer("2", 65000, "Established"))));
        assert!(changes.observe(&watcher::Event::Apply(peer("3", 65001, "Established"))));
    }
}
