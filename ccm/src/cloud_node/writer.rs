//! The Node writer: applies the Node writes `cloud-node` and `cloud-node-lifecycle` plan
//! (the core's `cloud_node::write`) and deletes the Nodes whose machine is gone, each write
//! measured (`baremetal_ccm_writer_*{resource="nodes"}`).

use baremetal_ccm_core::write::Patch;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::{Client, ResourceExt as _};

use super::controller::NodeError;
use crate::writer::{self, Kind};

#[derive(Clone)]
pub(super) struct NodeWriter {
    api: Api<Node>,
    metrics: writer::Metrics,
}

impl std::fmt::Debug for NodeWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeWriter").finish_non_exhaustive()
    }
}

impl NodeWriter {
    pub(super) fn new(client: Client, metrics: writer::Metrics) -> Self {
        Self {
            api: Api::all(client),
            metrics,
        }
    }

    /// Applies one planned write to the Node `name`.
    pub(super) async fn apply(&self, name: &str, patch: &Patch) -> Result<(), NodeError> {
        (self.metrics.patch(Kind::Node, &self.api, name, patch).await)
            .map(drop)
            .map_err(|source| NodeError::Write {
                node: name.to_owned(),
                source,
            })
    }

    /// Deletes exactly this Node object (by uid): a Node re-registered under the same name
    /// since we looked is not touched. `false` when it was already gone.
    pub(super) async fn delete(&self, node: &Node) -> Result<bool, NodeError> {
        let name = node.name_any();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: node.uid(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let deleted = self
            .metrics
            .measure(Kind::Node, self.api.delete(&name, &params))
            .await;
        match deleted {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(source) => Err(NodeError::Write { node: name, source }),
        }
    }
}
