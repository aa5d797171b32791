//! The `cloud-node-lifecycle` loop: every monitor period, NotReady nodes are looked up at the
//! provider; shut-down machines taint their node, Ready nodes lose the taint, and a Node is
//! deleted only when the provider is certain its machine is gone.

use std::sync::Arc;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::ResourceExt as _;

use super::controller::{Concern, Context, NodeError, chain};
use super::events;
use super::lifecycle::{self, Action, SHUTDOWN_TAINT};
use super::metrics::{Reason, TaintChange};
use super::plan;
use super::write;
use crate::listed::AllListed;
use crate::provider::InstanceProvider;

pub(super) async fn run<P: InstanceProvider>(ctx: Arc<Context<P>>, listed: AllListed) {
    if listed.wait().await.is_err() {
        return;
    }
    let mut ticks = tokio::time::interval(ctx.settings.monitor_period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        futures::stream::iter(ctx.nodes.state())
            .for_each_concurrent(usize::from(ctx.settings.concurrency.max(1)), |node| {
                let ctx = ctx.clone();
                async move { ctx.check(&node).await }
            })
            .await;
    }
}

impl<P: InstanceProvider> Context<P> {
    async fn check(&self, node: &Node) {
        let name = node.name_any();
        let mut action = lifecycle::decide(node);
        if action == Action::AskProvider {
            action = match self.state(node).await {
                Ok(state) => lifecycle::after_state(node, state),
                Err(error) => {
                    self.lifecycle_failed(node, &error);
                    return;
                }
            };
        }
        let result = match action {
            Action::Nothing | Action::AskProvider => Ok(()),
            Action::SetTaints { taints, shutdown } => {
                self.set_taints(node, &taints, shutdown).await
            }
            Action::Delete => self.delete(node).await,
        };
        match result {
            Ok(()) => self.forget_failure(Concern::Lifecycle, &name),
            Err(error) => self.lifecycle_failed(node, &error),
        }
    }

    async fn state(&self, node: &Node) -> Result<crate::provider::InstanceState, NodeError> {
        let query = plan::query(node)?;
        (self.provider.state(&query).await).map_err(|source| NodeError::Provider {
            provider: self.provider.name(),
            node: query.name.clone(),
            source,
        })
    }

    fn lifecycle_failed(&self, node: &Node, error: &NodeError) {
        let reason = Reason {
            reason: error.class().to_owned(),
        };
        self.metrics.lifecycle_errors.get_or_create(&reason).inc();
        let note = chain(error);
        tracing::warn!(
            node = node.name_any(),
            error = note,
            "node lifecycle check failed"
        );
        self.report_failure(Concern::Lifecycle, node, events::STATE_UNKNOWN, note);
    }

    async fn set_taints(
        &self,
        node: &Node,
        taints: &[Taint],
        shutdown: bool,
    ) -> Result<(), NodeError> {
        let name = node.name_any();
        (self.writer)
            .apply(&name, &write::taints(node, taints))
            .await?;
        let (change, reason, note) = if shutdown {
            (
                "added",
                events::SHUTDOWN,
                format!("the machine is shut down; tainted {SHUTDOWN_TAINT}:NoSchedule"),
            )
        } else {
            (
                "removed",
                events::SHUTDOWN_CLEARED,
                format!("the node is Ready again; removed {SHUTDOWN_TAINT}"),
            )
        };
        tracing::info!(node = name, change, "shutdown taint changed");
        let labels = TaintChange {
            change: change.to_owned(),
        };
        self.metrics.shutdown_taints.get_or_create(&labels).inc();
        self.lifecycle_events.normal(node, reason, note);
        Ok(())
    }

    /// Deletes the Node (exactly this object, see the Node writer).
    async fn delete(&self, node: &Node) -> Result<(), NodeError> {
        let name = node.name_any();
        let note = format!(
            "Deleting node {name} because it does not exist in the {} provider",
            self.provider.name()
        );
        self.lifecycle_events
            .normal(node, events::DELETING_NODE, note);
        if !self.writer.delete(node).await? {
            return Ok(());
        }
        tracing::info!(node = name, "deleted node: its machine is gone");
        self.metrics.deleted.inc();
        Ok(())
    }
}
