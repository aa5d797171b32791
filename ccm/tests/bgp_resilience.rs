//! BGP through failures, end to end (real controller, gobgpd, BIRD): a restarted gobgpd gets
//! every route back and, with graceful restart, the router keeps forwarding throughout; a
//! controller replica (pod) that dies withdraws nothing; BFD takes a dead link's routes away
//! long before the hold timer; the BGPPeer status says what BIRD sees.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod support;

use std::time::{Duration, Instant};

use support::bgp::*;
use support::*;

async fn setup(client: &kube::Client, peer_extra: serde_json::Value) {
    for (name, n) in [("n1", 11), ("n2", 12), ("n3", 13)] {
        node_on_fabric(client, name, n).await;
    }
    create_pool(
        client,
        "pool-a",
        serde_json::json!({"addresses": ["192.0.2.0/28"], "announce": {"mode": "bgp"}}),
    )
    .await;
    let mut spec = serde_json::json!({"peerAddress": ROUTER_V4, "peerASN": ROUTER_ASN, "localASN": CLUSTER_ASN, "connectRetrySeconds": 1});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), peer_extra.as_object()) {
        spec.extend(extra.clone());
    }
    create_peer(client, "tor", serde_json::json!({}), spec).await;
}

/// The Service whose route the tests follow (the controller must be running).
async fn web(client: &kube::Client) {
    Svc::lb("default", "web").create(client).await;
    assert_eq!(
        wait_addresses(client, "default", "web", 1).await,
        ["192.0.2.0"]
    );
}

fn all_nodes() -> Vec<String> {
    vec![v4(11), v4(12), v4(13)]
}

/// Polls the router's kernel route until `until` holds; returns the shortest next-hop set seen.
async fn watch_kernel_until(
    fabric: &Fabric,
    prefix: &str,
    until: impl Fn(&Fabric) -> bool,
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    let mut fewest = usize::MAX;
    loop {
        fewest = fewest.min(fabric.kernel_next_hops(prefix).len());
        if until(fabric) {
            return fewest;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix}: condition not reached within {within:?}; BIRD: {:?}\n{}",
            fabric.routes(prefix),
            fabric
                .bird
                .birdc(&["show", "protocols", "all"])
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gobgpd_gets_every_route_back_while_graceful_restart_keeps_them_at_the_router()
{
    let mut session = Session::to(2);
    session.graceful_restart = true;
    let mut fabric = Fabric::start(&[session]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    setup(
        &client,
        serde_json::json!({"gracefulRestart": {"restartTimeSeconds": 60}, "families": ["IPv4"]}),
    )
    .await;
    let _ccm = start_replica(&cluster, &fabric, "ccm-a", 2);
    web(&client).await;
    fabric
        .wait_kernel("192.0.2.0/32", &all_nodes(), Duration::from_secs(20))
        .await;
    // The status says what BIRD sees.
    let status = wait_session(&client, "tor", "ccm-a", |s| {
        s.state == "Established" && s.ipv4_prefixes_sent == Some(3)
    })
    .await;
    assert_eq!(fabric.imported("s2v4"), status.ipv4_prefixes_sent);

    let restarted = Instant::now();
    fabric.restart_gobgpd(2).await;
    // Every route back: BIRD's session re-established with all three paths fresh (not stale).
    let fresh = |f: &Fabric| {
        f.established("s2v4")
            && f.imported("s2v4") == Some(3)
            && f.routes("192.0.2.0/32")
                .iter()
                .all(|r| !r.attributes.contains_key("BGP.stale") && r.protocol == "s2v4")
    };
    let fewest = watch_kernel_until(&fabric, "192.0.2.0/32", fresh, Duration::from_secs(30)).await;
    let back = restarted.elapsed();
    assert_eq!(
        fewest, 3,
        "graceful restart keeps every next hop at the router throughout"
    );
    eprintln!("gobgpd restart → all routes re-announced: {back:?}");
    wait_session(&client, "tor", "ccm-a", |s| {
        s.state == "Established" && s.ipv4_prefixes_sent == Some(3)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_replica_that_dies_withdraws_nothing() {
    let mut fabric = Fabric::start(&[Session::to(2), Session::to(3)]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    setup(&client, serde_json::json!({"families": ["IPv4"]})).await;
    let mut ccm_a = start_replica(&cluster, &fabric, "ccm-a", 2);
    let _ccm_b = start_replica(&cluster, &fabric, "ccm-b", 3);
    web(&client).await;
    fabric
        .wait_kernel("192.0.2.0/32", &all_nodes(), Duration::from_secs(20))
        .await;
    let both = |f: &Fabric| f.imported("s2v4") == Some(3) && f.imported("s3v4") == Some(3);
    watch_kernel_until(&fabric, "192.0.2.0/32", both, Duration::from_secs(20)).await;
    // Replica a's pod dies: its controller and its sidecar.
    ccm_a.kill();
    fabric.kill_gobgpd(2);
    let a_gone = |f: &Fabric| !f.established("s2v4");
    let fewest =
        watch_kernel_until(&fabric, "192.0.2.0/32", a_gone, Duration::from_secs(120)).await;
    assert_eq!(
        fewest, 3,
        "the other replica's identical paths keep every next hop"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fabric.kernel_next_hops("192.0.2.0/32").len(), 3);
    // The surviving replica still reports its session.
    wait_session(&client, "tor", "ccm-b", |s| s.state == "Established").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_takes_a_dead_links_routes_away_long_before_the_hold_timer() {
    let mut session = Session::to(2);
    session.bfd = true;
    session.hold = Some(90);
    let fabric = Fabric::start(&[session]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    setup(
        &client,
        serde_json::json!({"families": ["IPv4"], "holdTimeSeconds": 90, "bfd": {"minRxMs": 100, "minTxMs": 100, "multiplier": 3}}),
    )
    .await;
    let _ccm = start_replica(&cluster, &fabric, "ccm-a", 2);
    web(&client).await;
    fabric
        .wait_kernel("192.0.2.0/32", &all_nodes(), Duration::from_secs(20))
        .await;
    wait_session(&client, "tor", "ccm-a", |s| {
        s.bfd_state.as_deref() == Some("Up")
    })
    .await;
    // The link dies silently (no TCP reset, no BGP notification): only BFD can tell.
    let host = &fabric.speakers[0].1;
    let cut = Instant::now();
    host.run(["ip", "link", "set", "eth0", "down"]).unwrap();
    fabric
        .wait_kernel("192.0.2.0/32", &[], Duration::from_secs(30))
        .await;
    let detected = cut.elapsed();
    eprintln!("link down → routes withdrawn at the router: {detected:?}");
    assert!(
        detected < Duration::from_secs(10),
        "BFD detection took {detected:?} (hold time 90 s)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_running_only_the_announcer_never_takes_the_lease() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let (mut announcer, _) = start_ccm(
        &cluster.admin_kubeconfig(),
        "announcer-only",
        &["--controllers=bgp-announcer"],
    );
    let started = rig::process::wait_for(WAIT, || async {
        announcer
            .log_tail(100_000)
            .contains("announcer started")
            .then_some(())
    })
    .await;
    assert!(started.is_some(), "{}", announcer.log_tail(4000));
    let _lb = start_controller(&cluster.admin_kubeconfig(), "lb", &[]);
    create_pool(
        &client,
        "pool-a",
        serde_json::json!({"addresses": ["192.0.2.0/28"], "announce": {"mode": "bgp"}}),
    )
    .await;
    web(&client).await;
    let lease = kube::Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(
        client.clone(),
        "kube-system",
    )
    .get("baremetal-ccm")
    .await
    .unwrap();
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("lb")
    );
    assert!(announcer.is_running());
}
