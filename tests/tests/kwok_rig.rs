//! kwok keeps the rig's fake Nodes Ready: 50 Nodes registered as kubelets in external mode do
//! (tainted, no providerID, only a Hostname address), go Ready, and stay Ready through Lease
//! renewals and status heartbeats — while their taints, providerID and addresses stay as
//! registered, for the cloud-node controller to initialize. A Node without the annotation is
//! left alone.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use rig::cluster::TestCluster;
use rig::kwok::{self, Heartbeats, Kwok};
use rig::nodes::{UNINITIALIZED, addresses, provider_id, taint_keys};
use rig::process::wait_for;

const NODES: usize = 50;

fn ready_heartbeat(node: &Node) -> Option<k8s_openapi::jiff::Timestamp> {
    let conditions = node.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    Some(ready.last_heartbeat_time.as_ref()?.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_kwok_nodes_go_and_stay_ready_and_keep_what_the_ccm_writes() {
    rig::init_test_logging();
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client();
    let registered: Vec<Node> = futures::stream::iter(0..NODES)
        .map(|i| {
            let client = client.clone();
            async move {
                kwok::node(&format!("kwok-{i:02}"))
                    .try_create(&client)
                    .await
            }
        })
        .buffer_unordered(8)
        .try_collect()
        .await
        .unwrap();
    // Registered by a kubelet but not kwok's: must stay as it is.
    let other = rig::kubelet::KubeletNode::registers("real-node")
        .not_ready()
        .create(&client)
        .await;

    let heartbeats = Heartbeats {
        lease_seconds: 8,
        status_every: Duration::from_secs(3),
    };
    let kwok = Kwok::start_with(&cluster.admin_kubeconfig(), heartbeats).unwrap();
    assert!(
        kwok::wait_ready(&client, "kwok-", NODES, Duration::from_secs(60)).await,
        "all {NODES} kwok Nodes Ready within 60 s; kwok log:\n{}",
        kwok.log_tail(4000)
    );
    let api: Api<Node> = Api::all(client.clone());
    let first: Vec<Node> = (api.list(&ListParams::default()).await.unwrap().items)
        .into_iter()
        .filter(|n| n.metadata.name.as_deref().unwrap().starts_with("kwok-"))
        .collect();
    let leases = kwok::lease_renewals(&client, "kwok-").await.unwrap();
    assert_eq!(leases.len(), NODES, "kwok holds a Lease per Node");

    // Stay Ready: every Lease renewed and every status heartbeat refreshed since, Ready still.
    // Renewals take 2 s and heartbeats at most 9 s here; the wait is long because kwok once
    // (one CI run in many, after the API server's start-up errors) took over 60 s.
    let stayed = wait_for(Duration::from_secs(180), || async {
        let renewed = kwok::lease_renewals(&client, "kwok-").await.ok()?;
        let all_renewed =
            (leases.iter()).all(|(name, at)| renewed.get(name).is_some_and(|r| r > at));
        let nodes = api.list(&ListParams::default()).await.ok()?.items;
        let beating = (first.iter()).all(|before| {
            let now = nodes
                .iter()
                .find(|n| n.metadata.name == before.metadata.name);
            now.is_some_and(|n| kwok::is_ready(n) && ready_heartbeat(n) > ready_heartbeat(before))
        });
        (all_renewed && beating).then_some(nodes)
    })
    .await;
    let nodes = stayed.unwrap_or_else(|| {
        panic!(
            "kwok Nodes did not renew their Leases and heartbeats while Ready within 180 s; kwok log:\n{}",
            kwok.log_tail(4000)
        )
    });
    for node in nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref().unwrap().starts_with("kwok-"))
    {
        let name = node.metadata.name.as_deref().unwrap();
        let before = (registered.iter())
            .find(|n| n.metadata.name == node.metadata.name)
            .unwrap();
        // As registered: the uninitialized taint, and the not-ready one the API server's
        // TaintNodesByCondition admission adds to a Node registered not Ready (the node
        // lifecycle controller, not running here, would lift it).
        assert!(taint_keys(before).iter().any(|k| k == UNINITIALIZED));
        assert_eq!(
            taint_keys(node),
            taint_keys(before),
            "{name}: taints untouched"
        );
        assert_eq!(provider_id(node), None, "{name}: no providerID");
        assert_eq!(
            addresses(node),
            [("Hostname".to_owned(), name.to_owned())],
            "{name}: addresses as registered"
        );
    }
    let untouched = api.get("real-node").await.unwrap();
    assert!(
        !kwok::is_ready(&untouched),
        "a Node without the annotation is not kwok's"
    );
    assert_eq!(
        untouched.metadata.resource_version, other.metadata.resource_version,
        "kwok did not write a Node it does not manage"
    );
}
