//! BGP in node-local placement, end to end: a real speaker process per node drives that
//! node's own gobgpd (in the node's network namespace), each announcing itself as next hop to
//! a real router (BIRD 2 and FRR 8.4 in turn), which installs one ECMP route over the nodes.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, PostParams};
use rig::ccm::*;
use rig::fabric::*;
use rig::pool::*;
use rig::process::Process;
use rig::router::RouterKind;
use rig::service::*;

const ROUTE: Duration = Duration::from_secs(20);

fn speaker(
    cluster: &rig::cluster::TestCluster,
    fabric: &Fabric,
    node: &str,
    member: u8,
) -> Process {
    let endpoint = format!("--gobgp-endpoint={}", fabric.endpoint(member));
    start_speaker(&cluster.admin_kubeconfig(), node, &[&endpoint])
}

/// A speaker for each of the nodes n1, n2, n3 (fabric members 11, 12, 13).
fn three_speakers(cluster: &rig::cluster::TestCluster, fabric: &Fabric) -> Vec<Process> {
    [("n1", 11), ("n2", 12), ("n3", 13)]
        .iter()
        .map(|(node, member)| speaker(cluster, fabric, node, *member))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_selected_node_announces_itself_and_the_router_balances_over_them_with_bird() {
    every_selected_node_announces_itself_and_the_router_balances_over_them(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_selected_node_announces_itself_and_the_router_balances_over_them_with_frr() {
    every_selected_node_announces_itself_and_the_router_balances_over_them(RouterKind::Frr).await;
}

async fn every_selected_node_announces_itself_and_the_router_balances_over_them(kind: RouterKind) {
    let fabric = Fabric::start(kind, &[Session::to(11), Session::to(12), Session::to(13)]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    for (name, n) in [("n1", 11), ("n2", 12), ("n3", 13)] {
        node_on_fabric(&client, name, n).await;
    }
    // All three in the rack the leaf peer selects.
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    for (name, rack) in [("n1", "r1"), ("n2", "r1"), ("n3", "r1")] {
        let patch = serde_json::json!({"metadata": {"labels": {"rack": rack}}});
        api.patch(name, &Default::default(), &kube::api::Patch::Merge(&patch))
            .await
            .unwrap();
    }
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/28", "2001:db8:5::/124"]).await;
    for (name, address) in [("leaf-v4", ROUTER_V4), ("leaf-v6", ROUTER_V6)] {
        create_peer(
            &client,
            name,
            serde_json::json!({}),
            serde_json::json!({"peerAddress": address, "peerASN": ROUTER_ASN, "localASN": CLUSTER_ASN,
                "placement": "nodeLocal", "nodeSelector": {"matchLabels": {"rack": "r1"}}, "connectRetrySeconds": 1}),
        )
        .await;
    }
    let _controller = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    let _speakers = three_speakers(&cluster, &fabric);

    Svc::lb("default", "web")
        .families("RequireDualStack", &["IPv4", "IPv6"])
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "web", 2).await,
        ["192.0.2.0", "2001:db8:5::"]
    );
    // Next hop self: each node's own address, one session each, ECMP over three.
    fabric
        .wait_kernel("192.0.2.0/32", &[v4(11), v4(12), v4(13)], ROUTE)
        .await;
    fabric
        .wait_kernel("2001:db8:5::/128", &[v6(11), v6(12), v6(13)], ROUTE)
        .await;
    for node in ["n1", "n2", "n3"] {
        let session = wait_session(&client, "leaf-v4", node, |s| {
            s.state == "Established" && s.ipv4_prefixes_sent == Some(1)
        })
        .await;
        assert_eq!(session.speaker, node);
    }
    // n3 moves to another rack: the peer no longer selects it; it closes its session and
    // removes its status entry, the others carry on.
    let moved = serde_json::json!({"metadata": {"labels": {"rack": "r2"}}});
    api.patch("n3", &Default::default(), &kube::api::Patch::Merge(&moved))
        .await
        .unwrap();
    fabric
        .wait_kernel("192.0.2.0/32", &[v4(11), v4(12)], ROUTE)
        .await;
    let gone = rig::process::wait_for(WAIT, || async {
        peer_session(&client, "leaf-v4", "n3")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "n3's entry stays");
    assert!(!fabric.established("s13v4"), "{}", fabric.protocols());

    // externalTrafficPolicy Local: only the node with a ready endpoint announces.
    let mut local = Svc::lb("default", "local");
    local.service.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    local.create(&client).await;
    assert_eq!(
        wait_addresses(&client, "default", "local", 1).await,
        ["192.0.2.1"]
    );
    let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "local-1", "labels": {"kubernetes.io/service-name": "local"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.244.2.7"], "nodeName": "n2", "conditions": {"ready": true}}],
    }))
    .unwrap();
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &slice)
        .await
        .unwrap();
    fabric.wait_kernel("192.0.2.1/32", &[v4(12)], ROUTE).await;
    assert_eq!(
        fabric.kernel_next_hops("192.0.2.0/32").len(),
        2,
        "the other Service is untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gobgpd_restarted_with_graceful_restart_keeps_its_next_hop_and_no_stale_path_with_bird()
 {
    node_gobgpd_restart_with_graceful_restart(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_gobgpd_restarted_with_graceful_restart_keeps_its_next_hop_and_no_stale_path_with_frr()
 {
    node_gobgpd_restart_with_graceful_restart(RouterKind::Frr).await;
}

/// Node-local placement with graceful restart: n2's sidecar (gobgpd) is killed and a fresh
/// one started on the same socket. The router sees the session go down but keeps n2's path
/// (stale) meanwhile, so the ECMP route never loses n2's next hop; n2's speaker converges the new daemon, the path is
/// refreshed (not stale) and, once the Service is deleted, nothing of the old daemon stays.
async fn node_gobgpd_restart_with_graceful_restart(kind: RouterKind) {
    let sessions: Vec<Session> = [11, 12, 13]
        .into_iter()
        .map(|member| Session {
            graceful_restart: true,
            ..Session::to(member)
        })
        .collect();
    let mut fabric = Fabric::start(kind, &sessions).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    for (name, n) in [("n1", 11), ("n2", 12), ("n3", 13)] {
        node_on_fabric(&client, name, n).await;
    }
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/28"]).await;
    create_peer(
        &client,
        "leaf",
        serde_json::json!({}),
        serde_json::json!({"peerAddress": ROUTER_V4, "peerASN": ROUTER_ASN, "localASN": CLUSTER_ASN,
            "placement": "nodeLocal", "families": ["IPv4"], "connectRetrySeconds": 1,
            "gracefulRestart": {"restartTimeSeconds": 60}}),
    )
    .await;
    let _controller = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    let _speakers = three_speakers(&cluster, &fabric);
    Svc::lb("default", "web").create(&client).await;
    assert_eq!(
        wait_addresses(&client, "default", "web", 1).await,
        ["192.0.2.0"]
    );
    let all = [v4(11), v4(12), v4(13)];
    fabric.wait_kernel("192.0.2.0/32", &all, ROUTE).await;
    wait_session(&client, "leaf", "n2", |s| {
        s.state == "Established" && s.ipv4_prefixes_sent == Some(1)
    })
    .await;

    let restarted = Instant::now();
    fabric.restart_gobgpd(12).await;
    // Until n2's session is back with its path refreshed: three fresh paths, one per node.
    let n2: Option<IpAddr> = v4(12).parse().ok();
    let fresh = |f: &Fabric| {
        let paths = f.routes("192.0.2.0/32");
        f.established("s12v4")
            && paths.len() == 3
            && paths.iter().all(|p| !p.stale)
            && paths.iter().any(|p| p.neighbor == n2)
    };
    let mut fewest = usize::MAX;
    let mut saw_down = false;
    let mut n2_kept = true;
    let mut saw_stale = false;
    let deadline = restarted + Duration::from_secs(30);
    loop {
        fewest = fewest.min(fabric.kernel_next_hops("192.0.2.0/32").len());
        saw_down |= !fabric.established("s12v4");
        let paths = fabric.routes("192.0.2.0/32");
        n2_kept &= paths.iter().any(|p| p.neighbor == n2);
        saw_stale |= paths.iter().any(|p| p.neighbor == n2 && p.stale);
        if fresh(&fabric) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{kind}: n2's path not refreshed: {:?}\n{}",
            fabric.routes("192.0.2.0/32"),
            fabric.protocols()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let back = restarted.elapsed();
    eprintln!("{kind}, node-local: n2's gobgpd restart → its path fresh again: {back:?}");
    assert_eq!(fewest, 3, "{kind}: n2's next hop was withdrawn meanwhile");
    assert!(saw_down, "{kind} saw n2's session go down");
    assert!(n2_kept, "{kind} kept n2's path while its session was down");
    assert!(
        saw_stale,
        "{kind} kept it as a restarting neighbor's (stale) path"
    );
    wait_session(&client, "leaf", "n2", |s| {
        s.state == "Established" && s.ipv4_prefixes_sent == Some(1)
    })
    .await;

    // No path of the old daemon survives: deleting the Service empties the router.
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), "default")
        .delete("web", &Default::default())
        .await
        .unwrap();
    fabric.wait_kernel("192.0.2.0/32", &[], ROUTE).await;
    fabric
        .wait_withdrawn("192.0.2.0/32", Duration::from_secs(10))
        .await;
}
