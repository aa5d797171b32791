//! The node controllers' I/O: one watch of Nodes shared by `cloud-node` (initialization on
//! every change of a tainted node, address refresh on a timer) and `cloud-node-lifecycle`
//! (see [`super::monitor`]). Decisions come from [`super::plan`] and [`super::lifecycle`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};

use super::events;
use super::metrics::{Metrics, Reason};
use super::node_ip::NodeIpError;
use super::plan::{self, InitError};
use super::write;
use super::writer::NodeWriter;
use crate::events::Recorder;
use crate::listed::{AllListed, Listings};
use crate::provider::{InstanceProvider, NodeAddress, ProviderError};
use crate::retry::{Attempts, Backoff};
pub(super) use crate::telemetry::error_chain as chain;

#[derive(Debug, thiserror::Error)]
pub(crate) enum NodeError {
    #[error(transparent)]
    NodeIp(#[from] NodeIpError),
    #[error(transparent)]
    Plan(#[from] InitError),
    #[error("the {provider} provider cannot describe the machine of node {node}")]
    Provider {
        provider: &'static str,
        node: String,
        #[source]
        source: ProviderError,
    },
    #[error("writing Node {node} failed")]
    Write {
        node: String,
        #[source]
        source: kube::Error,
    },
}

impl NodeError {
    /// Bounded label for metrics.
    pub(crate) fn class(&self) -> &'static str {
        match self {
            NodeError::NodeIp(_) => "node_ip",
            NodeError::Plan(InitError::NodeIp(_)) => "node_ip",
            NodeError::Plan(InitError::NoProviderId) => "no_provider_id",
            NodeError::Provider { source, .. } => source.class(),
            NodeError::Write { source, .. } => crate::writer::reason(source),
        }
    }

    /// How soon to retry: a provider or API hiccup soon, a bad node or configuration slowly.
    fn backoff(&self) -> Backoff {
        match self {
            NodeError::Provider { source, .. } if !source.is_transient() => Backoff::PERSISTENT,
            NodeError::Write { .. } | NodeError::Provider { .. } => Backoff::TRANSIENT,
            NodeError::NodeIp(_) | NodeError::Plan(_) => Backoff::PERSISTENT,
        }
    }
}

/// Which controllers run and how.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Run `cloud-node` (initialization and address refresh).
    pub initialize: bool,
    /// Run `cloud-node-lifecycle`.
    pub lifecycle: bool,
    /// Nodes initialized or refreshed at once.
    pub concurrency: u16,
    /// How often initialized nodes' addresses are refreshed.
    pub refresh_period: Duration,
    /// How often NotReady nodes are checked at the provider.
    pub monitor_period: Duration,
}

/// What a reported failure is about; each has its own memory of the last note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Concern {
    Initialization,
    Refresh,
    Lifecycle,
}

pub(super) struct Context<P> {
    pub(super) writer: NodeWriter,
    pub(super) provider: Arc<P>,
    pub(super) nodes: Store<Node>,
    pub(super) node_events: Recorder,
    pub(super) lifecycle_events: Recorder,
    pub(super) metrics: Metrics,
    pub(super) settings: Settings,
    attempts: Attempts<String>,
    /// The last failure reported per node and concern: a Warning Event is published only
    /// when the reason changes, however often the retry fails.
    reported: Mutex<HashMap<(Concern, String), String>>,
    /// Nodes initialized whose address write failed: the next reconcile writes them.
    addresses_owed: Mutex<std::collections::HashSet<String>>,
}

/// Runs the selected node controllers until the Node watch ends (it does not, short of
/// shutdown).
pub(crate) async fn run<P: InstanceProvider>(
    client: Client,
    events: &crate::events::Publisher,
    provider: Arc<P>,
    settings: Settings,
    metrics: Metrics,
) {
    let (nodes, writer) = reflector::store();
    let mut listings = Listings::default();
    let listing = listings.track("Nodes");
    let listed = listings.all();
    let stream = reflector::reflector(
        writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(slim),
    )
    .inspect(move |event| {
        listing.observe(event);
        if let Err(error) = event {
            tracing::warn!(%error, "watching Nodes failed; retrying");
        }
    })
    .applied_objects();
    let ctx = Arc::new(Context {
        writer: NodeWriter::new(client, metrics.writes.clone()),
        provider,
        nodes: nodes.clone(),
        node_events: events.recorder(events::CLOUD_NODE),
        lifecycle_events: events.recorder(events::LIFECYCLE),
        metrics,
        settings: settings.clone(),
        attempts: Attempts::default(),
        reported: Mutex::new(HashMap::new()),
        addresses_owed: Mutex::new(Default::default()),
    });
    let mut tasks = Vec::new();
    if settings.lifecycle {
        tasks.push(tokio::spawn(super::monitor::run(
            ctx.clone(),
            listed.clone(),
        )));
    }
    if settings.initialize {
        tasks.push(tokio::spawn(refresh_periodically(ctx.clone(), listed)));
        Controller::for_stream(stream, nodes)
            .with_config(
                kube::runtime::controller::Config::default()
                    .concurrency(settings.concurrency.max(1)),
            )
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "node reconcile did not complete");
                }
            })
            .await;
    } else {
        // The lifecycle monitor reads the store only; the stream still has to be driven.
        stream.for_each(|_| async {}).await;
    }
    for task in tasks {
        task.abort();
    }
}

/// Drops from a cached Node what the controllers never read: managedFields, the image list
/// (often most of a Node's size), volumes and daemon endpoints.
fn slim(node: &mut Node) {
    node.managed_fields_mut().clear();
    if let Some(status) = node.status.as_mut() {
        status.images = None;
        status.volumes_attached = None;
        status.volumes_in_use = None;
        status.daemon_endpoints = None;
        status.config = None;
    }
}

#[tracing::instrument(skip_all, fields(node = node.name_any()))]
async fn reconcile<P: InstanceProvider>(
    node: Arc<Node>,
    ctx: Arc<Context<P>>,
) -> Result<Action, NodeError> {
    if node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = node.name_any();
    if plan::is_uninitialized(&node) {
        ctx.initialize(&node).await?;
    } else if ctx.owes_addresses(&name) {
        ctx.refresh(&node).await?;
        ctx.lock_owed().remove(&name);
    }
    ctx.attempts.succeeded(&name);
    ctx.forget_failure(Concern::Initialization, &name);
    Ok(Action::await_change())
}

fn error_policy<P: InstanceProvider>(
    node: Arc<Node>,
    error: &NodeError,
    ctx: Arc<Context<P>>,
) -> Action {
    let name = node.name_any();
    let attempt = ctx.attempts.failed(name.clone());
    let class = error.class();
    let reason = Reason {
        reason: class.to_owned(),
    };
    ctx.metrics
        .initialization_errors
        .get_or_create(&reason)
        .inc();
    let note = chain(error);
    let delay = error.backoff().delay(attempt);
    tracing::warn!(
        error = note,
        attempt,
        delay_ms = delay.as_millis(),
        "node not initialized; retrying"
    );
    if plan::is_uninitialized(&node) {
        ctx.report_failure(
            Concern::Initialization,
            &node,
            events::INITIALIZATION_FAILED,
            note,
        );
    }
    Action::requeue(delay)
}

impl<P: InstanceProvider> Context<P> {
    async fn initialize(&self, node: &Node) -> Result<(), NodeError> {
        let name = node.name_any();
        let query = plan::query(node)?;
        let meta = self.metadata(&query).await?;
        let init = plan::initialize(node, &query, &meta)?;
        let update = write::initialization(node, &init);
        self.writer.apply(&name, &update).await?;
        tracing::info!(
            provider_id = init.provider_id.as_deref().or(query.provider_id.as_deref()),
            labels = init.labels.len(),
            "initialized node"
        );
        self.metrics.initialized.inc();
        if let Some(created) = node.creation_timestamp() {
            let delay = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
            (self.metrics.initialization_delay).observe(delay.as_secs_f64().max(0.0));
        }
        match &init.addresses {
            Some(addresses) => {
                if let Err(error) = self.write_addresses(&name, addresses).await {
                    self.lock_owed().insert(name);
                    return Err(error);
                }
            }
            None => self.node_events.warning(
                node,
                events::NO_ADDRESSES,
                format!(
                    "the {} provider knows no address of this node; give the kubelet --node-ip or list its addresses in the cloud config",
                    self.provider.name()
                ),
            ),
        }
        (self.node_events).normal(node, events::SYNCED, "Node synced successfully".into());
        Ok(())
    }

    /// Brings an initialized node's addresses and beta labels up to date.
    pub(super) async fn refresh(&self, node: &Node) -> Result<bool, NodeError> {
        let name = node.name_any();
        let query = plan::query(node)?;
        let meta = self.metadata(&query).await?;
        let refresh = plan::refresh(node, &query, &meta)?;
        if let Some(addresses) = &refresh.addresses {
            self.write_addresses(&name, addresses).await?;
            self.metrics.address_updates.inc();
            let listed: Vec<String> = (addresses.iter())
                .map(|a| format!("{} {}", a.kind, a.address))
                .collect();
            (self.node_events).normal(node, events::ADDRESSES_UPDATED, listed.join(", "));
        }
        if !refresh.labels.is_empty() {
            (self.writer)
                .apply(&name, &write::labels(&refresh.labels))
                .await?;
        }
        Ok(!refresh.is_empty())
    }

    async fn metadata(
        &self,
        query: &crate::provider::NodeQuery,
    ) -> Result<crate::provider::InstanceMetadata, NodeError> {
        (self.provider.metadata(query).await).map_err(|source| NodeError::Provider {
            provider: self.provider.name(),
            node: query.name.clone(),
            source,
        })
    }

    /// Replaces `status.addresses` as a whole.
    async fn write_addresses(
        &self,
        name: &str,
        addresses: &[NodeAddress],
    ) -> Result<(), NodeError> {
        (self.writer)
            .apply(name, &write::addresses(addresses))
            .await?;
        tracing::info!(
            node = name,
            addresses = addresses.len(),
            "wrote node addresses"
        );
        Ok(())
    }

    fn owes_addresses(&self, name: &str) -> bool {
        self.lock_owed().contains(name)
    }

    fn lock_owed(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.addresses_owed
            .lock()
            .expect("the owed-addresses lock is never poisoned: holders do not panic")
    }

    /// Publishes a Warning about `node` unless the same note was the last one published
    /// about this concern of it.
    pub(super) fn report_failure(&self, concern: Concern, node: &Node, reason: &str, note: String) {
        let key = (concern, node.name_any());
        let fresh = {
            let mut reported = self.lock_reported();
            let fresh = reported.get(&key) != Some(&note);
            reported.insert(key, note.clone());
            fresh
        };
        if fresh {
            let recorder = match concern {
                Concern::Lifecycle => &self.lifecycle_events,
                Concern::Initialization | Concern::Refresh => &self.node_events,
            };
            recorder.warning(node, reason, note);
        }
    }

    pub(super) fn forget_failure(&self, concern: Concern, node: &str) {
        self.lock_reported().remove(&(concern, node.to_owned()));
    }

    fn lock_reported(&self) -> std::sync::MutexGuard<'_, HashMap<(Concern, String), String>> {
        self.reported
            .lock()
            .expect("the reported-failures lock is never poisoned: holders do not panic")
    }
}

/// Refreshes every initialized node's addresses each `refresh_period`.
async fn refresh_periodically<P: InstanceProvider>(ctx: Arc<Context<P>>, listed: AllListed) {
    if listed.wait().await.is_err() {
        return;
    }
    let mut ticks = tokio::time::interval(ctx.settings.refresh_period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let nodes: Vec<Arc<Node>> = (ctx.nodes.state().into_iter())
            .filter(|n| !plan::is_uninitialized(n) && n.metadata.deletion_timestamp.is_none())
            .collect();
        let started = std::time::Instant::now();
        let changed = futures::stream::iter(nodes)
            .map(|node| {
                let ctx = ctx.clone();
                async move { ctx.refresh_reported(&node).await }
            })
            .buffer_unordered(usize::from(ctx.settings.concurrency.max(1)))
            .filter(|changed| std::future::ready(*changed))
            .count()
            .await;
        tracing::debug!(
            changed,
            took_ms = started.elapsed().as_millis(),
            "refreshed node addresses"
        );
    }
}

impl<P: InstanceProvider> Context<P> {
    /// [`Context::refresh`] with failures counted and reported; whether anything changed.
    async fn refresh_reported(&self, node: &Node) -> bool {
        match self.refresh(node).await {
            Ok(changed) => {
                self.forget_failure(Concern::Refresh, &node.name_any());
                changed
            }
            Err(error) => {
                let reason = Reason {
                    reason: error.class().to_owned(),
                };
                self.metrics.refresh_errors.get_or_create(&reason).inc();
                let note = chain(&error);
                tracing::warn!(
                    node = node.name_any(),
                    error = note,
                    "node addresses not refreshed"
                );
                self.report_failure(Concern::Refresh, node, events::REFRESH_FAILED, note);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_joins_causes_without_repeating_them() {
        let error = NodeError::Provider {
            provider: "static",
            node: "n1".into(),
            source: ProviderError::NotFound {
                node: "n1".into(),
                detail: "no VM named n1".into(),
            },
        };
        assert_eq!(
            chain(&error),
            "the static provider cannot describe the machine of node n1: no instance matches node n1: no VM named n1"
        );
        let transparent = NodeError::NodeIp(NodeIpError::Unspecified { value: "::".into() });
        assert_eq!(
            chain(&transparent),
            "alpha.kubernetes.io/provided-node-ip \"::\": the unspecified address is not a node IP"
        );
    }

    #[test]
    fn bad_nodes_and_configuration_are_retried_slowly_hiccups_quickly() {
        let foreign = NodeError::Provider {
            provider: "static",
            node: "n1".into(),
            source: ProviderError::ForeignProviderId {
                provider_id: "aws://x".into(),
                expected: "baremetal://n1".into(),
            },
        };
        assert_eq!(foreign.backoff(), Backoff::PERSISTENT);
        let down = NodeError::Provider {
            provider: "opennebula",
            node: "n1".into(),
            source: ProviderError::Unavailable {
                provider: "opennebula",
                source: "connection refused".into(),
            },
        };
        assert_eq!(down.backoff(), Backoff::TRANSIENT);
        assert_eq!(
            NodeError::Plan(InitError::NoProviderId).backoff(),
            Backoff::PERSISTENT
        );
    }
}
