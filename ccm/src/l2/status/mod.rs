//! The `l2-status` controller (design 0003, "Who writes them"): the leader joins the speakers'
//! membership as an *observer* — a member that gossips a state that is never eligible (not
//! ready, no interface) under a name no Node can have — reads the same view, runs the same
//! election from the same watches, and writes what the operator sees: the Service condition
//! `baremetal-ccm.io/L2Announced`, Events on a Service when its address changes owner or is
//! held by a machine outside the cluster, and Events on a Node whose speaker reports a host
//! problem. The decisions are the core's `l2::status`; this module gathers, records and hands
//! the condition writes to its [`writer`], off the failover path.

mod writer;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use baremetal_ccm_core::announce::inputs::service_input;
use baremetal_ccm_core::l2::election::OwnerChange;
use baremetal_ccm_core::l2::plan;
use baremetal_ccm_core::l2::status::{self as decide, Conflict, Event};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt as _};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::membership::{self, Config, GossipKeys, MemberState, Membership, MembershipError};
use super::run::{Facts, World, replace};
use crate::events::Recorder;
pub(crate) use writer::Writer;

/// The observer's gossip port (`--l2-observer-port`): not the speakers' (7947), so that the
/// controller, in the host network of a node that runs a speaker too, can bind it.
pub(crate) const DEFAULT_OBSERVER_PORT: u16 = 7948;

/// How long the observer listens before it decides anything: until the membership has told it
/// who is alive, every address would look unowned and every condition would flap.
const LEARN: Duration = Duration::from_secs(3);

/// The controller's layer-2 status settings.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The controller's own identity (leader election's): its member name is made of it.
    pub(crate) identity: String,
    /// The node the controller runs on: its InternalIP is the observer's address.
    pub(crate) node: String,
    /// The observer's UDP port.
    pub(crate) port: u16,
    /// The speakers' gossip port, where the seeds are.
    pub(crate) speaker_port: u16,
    /// The gossip keys, as the key files hold them.
    pub(crate) keys: watch::Receiver<GossipKeys>,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StatusError {
    #[error("the observer's membership")]
    Membership(#[source] MembershipError),
}

/// The controller's metrics: the membership's as the observer sees it, and the writes waiting.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    membership: membership::Metrics,
    pending: Gauge,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            membership: membership::Metrics::new(registry),
            pending: Gauge::default(),
        };
        let sub = registry.sub_registry_with_prefix("l2_status");
        sub.register(
            "pending_writes",
            "Services whose L2Announced condition waits to be written (the API server is away or refused it)",
            metrics.pending.clone(),
        );
        metrics
    }
}

/// The observer's member name: `controller:<identity>`. A Node's name is a DNS subdomain, which
/// has no colon, so the election, which needs a Node for a candidate, can never pick it.
pub(crate) fn member_name(identity: &str) -> String {
    format!("controller:{identity}")
}

/// Runs until the watches end or the membership fails.
pub(crate) async fn run(
    client: Client,
    recorder: Recorder,
    settings: Settings,
    metrics: Metrics,
    writes: crate::writer::Metrics,
) -> Result<(), StatusError> {
    let (changed_tx, mut changed) = watch::channel(0u64);
    let (world, listed) = World::start(&client, changed_tx);
    if let Err(stopped) = listed.wait().await {
        tracing::debug!(%stopped, "not waiting for the initial lists");
    }
    let Some(address) = own_address(&world, &settings.node, &mut changed).await else {
        return Ok(());
    };
    let name = member_name(&settings.identity);
    // Never ready, no interface: whatever it gossips, nobody elects it.
    let (_state, state) = watch::channel(MemberState::default());
    let seeds = world.seeds(&name, settings.speaker_port, address.is_ipv4());
    let (seeds_tx, seeds) = watch::channel(seeds);
    let (_watched, watched) = watch::channel(BTreeSet::new());
    let config = Config::following(
        name.clone(),
        SocketAddr::new(address, settings.port),
        settings.keys,
    );
    let inputs = membership::Inputs {
        state,
        seeds,
        watched,
    };
    let membership = Membership::start(config, inputs, metrics.membership.clone())
        .await
        .map_err(StatusError::Membership)?;
    let mut view = membership.view();
    tracing::info!(gossip = %membership.local_addr(), member = %name, "layer-2 status observer started");
    let mut observer = Observer {
        name,
        recorder,
        writer: Writer::start(client, writes, metrics.pending),
        previous: None,
        conflicts: BTreeSet::new(),
        problems: BTreeMap::new(),
    };
    let mut learnt = std::pin::pin!(tokio::time::sleep(LEARN));
    let mut learning = true;
    loop {
        if !learning {
            observer.round(&world, &view.borrow());
        }
        tokio::select! {
            result = changed.changed() => if result.is_err() { break },
            result = view.changed() => if result.is_err() { break },
            () = &mut learnt, if learning => learning = false,
        }
        let seeds = world.seeds(&observer.name, settings.speaker_port, address.is_ipv4());
        seeds_tx.send_if_modified(|s| replace(s, seeds));
    }
    Ok(())
}

/// The InternalIP of the controller's node, waited for; `None` when the watches end first.
async fn own_address(
    world: &World,
    node: &str,
    changed: &mut watch::Receiver<u64>,
) -> Option<IpAddr> {
    let mut said = false;
    let waiting = || {
        if !std::mem::replace(&mut said, true) {
            tracing::warn!(
                node,
                "the controller's node has no InternalIP yet; the layer-2 status observer waits for one"
            );
        }
    };
    world.address_when_known(node, changed, waiting).await
}

/// What the observer remembers between rounds.
struct Observer {
    name: String,
    recorder: Recorder,
    writer: Writer,
    /// The owners of the last round (`None` before the first).
    previous: Option<BTreeMap<IpAddr, Option<String>>>,
    conflicts: BTreeSet<Conflict>,
    problems: BTreeMap<String, BTreeSet<String>>,
}

impl Observer {
    /// Decides from what is known now: the conditions to write, the Events to record.
    fn round(&mut self, world: &World, view: &membership::View) {
        let facts = Facts::gather(world, view, Some(&self.name), None);
        let inputs = facts.inputs(&self.name);
        let plan = plan::plan(inputs);
        let (conflicts, problems) = reported(view, &self.name);
        let listed: Vec<Conflict> = conflicts.iter().cloned().collect();
        let states = decide::address_states(&plan, &facts.view, &listed);
        let now = Timestamp::now();
        for service in world.services.state() {
            let addresses: Vec<IpAddr> = (service_input(&service).into_iter())
                .flat_map(|input| input.addresses.into_iter().map(|(a, _)| a))
                .collect();
            let want = decide::wanted(&addresses, &states);
            let config = decide::apply_config(&service, want.as_ref(), now);
            let key = (service.namespace().unwrap_or_default(), service.name_any());
            self.writer.want(key, config);
        }
        if let Some(previous) = &self.previous {
            for change in decide::changes(previous, &inputs, &plan) {
                log_change(&change);
                let event = decide::owner_change_event(&change);
                self.on_services(world, &facts, change.address, &event);
            }
        }
        self.previous = Some(decide::owners(&plan));
        for conflict in decide::new_conflicts(&self.conflicts, &conflicts) {
            tracing::warn!(address = %conflict.address, node = conflict.node, interface = conflict.interface, mac = decide::mac_text(conflict.mac), "a speaker found the address held outside the cluster");
            let event = decide::conflict_event(conflict);
            self.on_services(world, &facts, conflict.address, &event);
        }
        self.conflicts = conflicts;
        for (node, event) in decide::host_problem_events(&self.problems, &problems) {
            let found = world.nodes.get(&ObjectRef::<Node>::new(&node));
            match found {
                Some(node) => record(&self.recorder, &*node, &event),
                None => tracing::debug!(node, "a host problem of a node without a Node object"),
            }
        }
        self.problems = problems;
    }

    /// Records `event` on every Service that holds `address`.
    fn on_services(&self, world: &World, facts: &Facts, address: IpAddr, event: &Event) {
        let holders =
            (facts.services.iter()).filter(|s| s.addresses.iter().any(|(a, _)| *a == address));
        for holder in holders {
            let key = ObjectRef::<Service>::new(&holder.name).within(&holder.namespace);
            if let Some(service) = world.services.get(&key) {
                record(&self.recorder, &*service, event);
            }
        }
    }
}

/// The conflicts and host problems the alive speakers report in their gossiped states.
fn reported(
    view: &membership::View,
    observer: &str,
) -> (BTreeSet<Conflict>, BTreeMap<String, BTreeSet<String>>) {
    let mut conflicts = BTreeSet::new();
    let mut problems = BTreeMap::new();
    let speakers = (view.members.iter()).filter(|(node, peer)| *node != observer && peer.alive);
    for (node, peer) in speakers {
        conflicts.extend(peer.state.conflicts.iter().map(|c| Conflict {
            address: c.address,
            node: node.clone(),
            interface: c.interface.clone(),
            mac: c.mac,
        }));
        if !peer.state.host_problems.is_empty() {
            let labels = peer.state.host_problems.iter().cloned().collect();
            problems.insert(node.clone(), labels);
        }
    }
    (conflicts, problems)
}

fn record<K: kube::Resource<DynamicType = ()>>(recorder: &Recorder, object: &K, event: &Event) {
    if event.warning {
        recorder.warning(object, event.reason, event.note.clone());
    } else {
        recorder.normal(object, event.reason, event.note.clone());
    }
}

fn log_change(change: &OwnerChange) {
    tracing::info!(
        address = %change.address,
        from = change.from.as_deref().unwrap_or("-"),
        to = change.to.as_deref().unwrap_or("-"),
        reason = change.reason.as_str(),
        "the address changed owner"
    );
}
