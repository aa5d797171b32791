//! kwok as the scale rig's kubelets: it keeps the Nodes the rig marks ([`ANNOTATION`]) Ready,
//! with Lease renewals and status heartbeats, against a [`TestCluster`]'s API server.
//!
//! kwok's own node stages also write `status.addresses` (a default InternalIP), which is the
//! cloud-node controller's job in external mode; the stages here write only conditions,
//! capacity and the node info, so taints, providerID and addresses stay the controller's.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::cluster::TestCluster;
use crate::kubelet::KubeletNode;
use crate::process::{Process, ProcessError, wait_for};
use crate::tools::{Tool, ToolError};

/// The annotation (with [`ANNOTATION_VALUE`]) that puts a Node in kwok's care.
pub const ANNOTATION: &str = "kwok.x-k8s.io/node";
pub const ANNOTATION_VALUE: &str = "fake";

#[derive(Debug, thiserror::Error)]
pub enum KwokError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error("cannot write kwok's configuration {path}")]
    Config {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kwok exited at start; log tail:\n{log}")]
    Exited { log: String },
}

/// The kwok process and its configuration; killed on drop.
#[derive(Debug)]
pub struct Kwok {
    process: Process,
    _dir: tempfile::TempDir,
}

/// How often kwok refreshes what a kubelet refreshes.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeats {
    /// The node Lease's duration; kwok renews it at a quarter of that, as a kubelet does.
    pub lease_seconds: u32,
    /// The status heartbeat (the conditions' `lastHeartbeatTime`), with up to as much jitter.
    pub status_every: Duration,
}

impl Default for Heartbeats {
    /// A kubelet's defaults: a 40 s Lease, status every 5 minutes at the latest (kubelet's
    /// `nodeStatusReportFrequency`), here a minute.
    fn default() -> Self {
        Self {
            lease_seconds: 40,
            status_every: Duration::from_secs(60),
        }
    }
}

impl Kwok {
    /// Starts kwok against `cluster` with a kubelet's heartbeat periods.
    pub fn start(cluster: &TestCluster) -> Result<Self, KwokError> {
        Self::start_with(&cluster.admin_kubeconfig(), Heartbeats::default())
    }

    /// Starts kwok against the API server of `kubeconfig`.
    pub fn start_with(kubeconfig: &Path, heartbeats: Heartbeats) -> Result<Self, KwokError> {
        let bin = Tool::Kwok.path()?;
        let dir = tempfile::Builder::new()
            .prefix("bmccm-kwok-")
            .tempdir()
            .map_err(|source| KwokError::Config {
                path: PathBuf::from("/tmp"),
                source,
            })?;
        let config = dir.path().join("kwok.yaml");
        std::fs::write(&config, stages(heartbeats.status_every)).map_err(|source| {
            KwokError::Config {
                path: config.clone(),
                source,
            }
        })?;
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--config={}", config.display()))
            .arg("--manage-all-nodes=false")
            .arg(format!(
                "--manage-nodes-with-annotation-selector={ANNOTATION}={ANNOTATION_VALUE}"
            ))
            .arg(format!(
                "--node-lease-duration-seconds={}",
                heartbeats.lease_seconds
            ))
            // No kubelet API served: nothing here asks for logs or exec.
            .arg("--server-address=")
            .arg("--v=WARN");
        let mut process = Process::spawn("kwok", cmd, &dir.path().join("kwok.log"))?;
        if !process.is_running() {
            return Err(KwokError::Exited {
                log: process.log_tail(4000),
            });
        }
        Ok(Self { process, _dir: dir })
    }

    /// kwok's log, for diagnosing failures.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        self.process.log_tail(max_bytes)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// A Node as a kubelet in external mode registers it ([`KubeletNode::registers`]: tainted
/// uninitialized, a Hostname address, no providerID), not yet Ready and in kwok's care.
pub fn node(name: &str) -> KubeletNode {
    let mut node = KubeletNode::registers(name);
    (node.node.metadata.annotations.get_or_insert_default())
        .insert(ANNOTATION.into(), ANNOTATION_VALUE.into());
    node.node.status.get_or_insert_default().conditions = None;
    node
}

/// Whether `node`'s Ready condition is True.
pub fn is_ready(node: &Node) -> bool {
    (node.status.as_ref().and_then(|s| s.conditions.as_ref()))
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until at least `count` Nodes whose names start with `prefix` are Ready (one list a
/// second); returns whether they were within `timeout`.
pub async fn wait_ready(client: &Client, prefix: &str, count: usize, timeout: Duration) -> bool {
    let api: Api<Node> = Api::all(client.clone());
    wait_for(timeout, || async {
        let nodes = api.list(&ListParams::default()).await.ok()?.items;
        let ready = (nodes.iter())
            .filter(|n| {
                n.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .filter(|n| is_ready(n))
            .count();
        (ready >= count).then_some(())
    })
    .await
    .is_some()
}

/// The renew time of each node Lease (`kube-node-lease`) whose name starts with `prefix`.
pub async fn lease_renewals(
    client: &Client,
    prefix: &str,
) -> Result<std::collections::BTreeMap<String, k8s_openapi::jiff::Timestamp>, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let leases = api.list(&ListParams::default()).await?.items;
    Ok(leases
        .into_iter()
        .filter_map(|l| {
            let name = l.metadata.name?;
            let renewed = l.spec?.renew_time?.0;
            name.starts_with(prefix).then_some((name, renewed))
        })
        .collect())
}

/// kwok's Node stages: Ready on registration, then a status heartbeat every `every` (plus up
/// to as much jitter). Neither writes addresses, taints or the providerID.
fn stages(every: Duration) -> String {
    let every = every.as_millis();
    format!(
        r#"apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: rig-node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
  next:
    statusTemplate: |
{CONDITIONS}
      allocatable:
        cpu: "32"
        memory: 128Gi
        pods: "110"
      capacity:
        cpu: "32"
        memory: 128Gi
        pods: "110"
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: rig-node-heartbeat
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'In'
      values: ['True']
  delay:
    durationMilliseconds: {every}
    jitterDurationMilliseconds: {jitter}
  next:
    statusTemplate: |
{CONDITIONS}
"#,
        jitter = every * 2,
    )
}

/// The kubelet's node conditions, heartbeat now (kwok's `NodeConditions`: Ready True, the
/// pressure conditions False).
const CONDITIONS: &str = r#"      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}"#;
