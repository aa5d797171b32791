//! BGP in central placement, end to end: the real controller binary against a real
//! apiserver drives a real gobgpd (its sidecar, in a network namespace) that peers with a real
//! router, BIRD 2 and FRR 8.4 in turn; assertions are on the router's table and its kernel
//! routes.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use rig::ccm::*;
use rig::fabric::*;
use rig::manifests::*;
use rig::nodes::set_ready;
use rig::pool::*;
use rig::router::RouterKind;
use rig::service::*;

const ROUTE: Duration = Duration::from_secs(20);

async fn bgp_pool(client: &kube::Client, name: &str, addresses: &[&str], bgp: serde_json::Value) {
    create_pool(
        client,
        name,
        serde_json::json!({"addresses": addresses, "announce": {"mode": "bgp", "bgp": bgp}}),
    )
    .await;
}

async fn three_nodes(client: &kube::Client) {
    for (name, n) in [("n1", 11), ("n2", 12), ("n3", 13)] {
        node_on_fabric(client, name, n).await;
    }
}

fn nodes(members: &[u8], v6: bool) -> Vec<String> {
    members
        .iter()
        .map(|m| if v6 { rig::fabric::v6(*m) } else { v4(*m) })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_services_with_ecmp_over_the_eligible_nodes_with_bird() {
    routes_follow_services_with_ecmp_over_the_eligible_nodes(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_follow_services_with_ecmp_over_the_eligible_nodes_with_frr() {
    routes_follow_services_with_ecmp_over_the_eligible_nodes(RouterKind::Frr).await;
}

async fn routes_follow_services_with_ecmp_over_the_eligible_nodes(kind: RouterKind) {
    let fabric = Fabric::start(kind, &[Session::to(2)]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    three_nodes(&client).await;
    bgp_pool(
        &client,
        "pool-a",
        &["192.0.2.0/28", "2001:db8:5::/124"],
        serde_json::json!({}),
    )
    .await;
    central_peers(&client, serde_json::json!({})).await;
    let _ccm = start_replica(&cluster, &fabric, "ccm-a", 2);

    Svc::lb("default", "web")
        .families("RequireDualStack", &["IPv4", "IPv6"])
        .create(&client)
        .await;
    let ips = wait_addresses(&client, "default", "web", 2).await;
    assert_eq!(ips, ["192.0.2.0", "2001:db8:5::"]);
    // One path per node, ECMP in the router's kernel, over separate IPv4 and IPv6 sessions.
    fabric
        .wait_kernel("192.0.2.0/32", &nodes(&[11, 12, 13], false), ROUTE)
        .await;
    fabric
        .wait_kernel("2001:db8:5::/128", &nodes(&[11, 12, 13], true), ROUTE)
        .await;
    let session = wait_session(&client, "tor-v4", "ccm-a", |s| {
        s.state == "Established" && s.ipv4_prefixes_sent == Some(3)
    })
    .await;
    assert_eq!(session.add_path_negotiated, Some(true), "{session:?}");
    assert!(
        fabric.established("s2v4") && fabric.established("s2v6"),
        "{}",
        fabric.protocols()
    );

    // A node that is no longer Ready stops carrying the address; back, it carries it again.
    set_ready(&client, "n2", false).await;
    fabric
        .wait_kernel("192.0.2.0/32", &nodes(&[11, 13], false), ROUTE)
        .await;
    set_ready(&client, "n2", true).await;
    fabric
        .wait_kernel("192.0.2.0/32", &nodes(&[11, 12, 13], false), ROUTE)
        .await;

    // The Service goes: its routes go, nothing else does.
    Svc::lb("default", "api").create(&client).await;
    assert_eq!(
        wait_addresses(&client, "default", "api", 1).await,
        ["192.0.2.1"]
    );
    fabric
        .wait_kernel("192.0.2.1/32", &nodes(&[11, 12, 13], false), ROUTE)
        .await;
    Api::<k8s_openapi::api::core::v1::Service>::namespaced(client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    fabric.wait_kernel("192.0.2.0/32", &[], ROUTE).await;
    fabric.wait_kernel("2001:db8:5::/128", &[], ROUTE).await;
    assert_eq!(fabric.kernel_next_hops("192.0.2.1/32").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_traffic_policy_follows_ready_endpoints_and_pool_attributes_reach_the_router_with_bird()
 {
    local_traffic_policy_follows_ready_endpoints_and_pool_attributes_reach_the_router(
        RouterKind::Bird,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_traffic_policy_follows_ready_endpoints_and_pool_attributes_reach_the_router_with_frr()
 {
    local_traffic_policy_follows_ready_endpoints_and_pool_attributes_reach_the_router(
        RouterKind::Frr,
    )
    .await;
}

async fn local_traffic_policy_follows_ready_endpoints_and_pool_attributes_reach_the_router(
    kind: RouterKind,
) {
    let fabric = Fabric::start(kind, &[Session::to(2)]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    three_nodes(&client).await;
    bgp_pool(
        &client,
        "pool-a",
        &["192.0.2.0/28"],
        serde_json::json!({"communities": ["64512:100"], "largeCommunities": ["64512:7:9"]}),
    )
    .await;
    central_peers(&client, serde_json::json!({})).await;
    let _ccm = start_replica(&cluster, &fabric, "ccm-a", 2);

    let mut svc = Svc::lb("default", "web");
    svc.service.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    svc.create(&client).await;
    wait_addresses(&client, "default", "web", 1).await;
    // No endpoint anywhere: no route.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice = |nodes: &[(&str, bool)]| -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": nodes.iter().enumerate().map(|(i, (node, ready))| serde_json::json!({
                "addresses": [format!("10.244.0.{}", i + 1)], "nodeName": node, "conditions": {"ready": ready}})).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    slices
        .create(
            &PostParams::default(),
            &slice(&[("n1", true), ("n3", false)]),
        )
        .await
        .unwrap();
    fabric
        .wait_kernel("192.0.2.0/32", &nodes(&[11], false), ROUTE)
        .await;
    let mut replaced = slice(&[("n1", true), ("n3", true)]);
    replaced.metadata.resource_version =
        slices.get("web-1").await.unwrap().metadata.resource_version;
    slices
        .replace("web-1", &PostParams::default(), &replaced)
        .await
        .unwrap();
    fabric
        .wait_kernel("192.0.2.0/32", &nodes(&[11, 13], false), ROUTE)
        .await;

    let routes = fabric.routes("192.0.2.0/32");
    assert_eq!(routes.len(), 2, "{routes:?}");
    for route in &routes {
        assert!(route.communities.contains("64512:100"), "{route:?}");
        assert!(route.large_communities.contains("64512:7:9"), "{route:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_show_in_their_status_and_leave_the_others_untouched_with_bird() {
    bad_peers_show_in_their_status_and_leave_the_others_untouched(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peers_show_in_their_status_and_leave_the_others_untouched_with_frr() {
    bad_peers_show_in_their_status_and_leave_the_others_untouched(RouterKind::Frr).await;
}

async fn bad_peers_show_in_their_status_and_leave_the_others_untouched(kind: RouterKind) {
    let mut good = Session::to(2);
    good.password = Some("s3cret".into());
    let fabric = Fabric::start(kind, &[good]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    // The controller runs with exactly the shipped RBAC: its password Secrets come from the
    // password namespace, and a Secret elsewhere is neither readable nor used.
    apply_shipped_rbac(&client).await;
    let (kubeconfig, _) = cluster
        .service_account_client("kube-system", "baremetal-ccm")
        .await
        .unwrap();
    three_nodes(&client).await;
    bgp_pool(&client, "pool-a", &["192.0.2.0/28"], serde_json::json!({})).await;
    let passwords = serde_json::json!({"password": "s3cret", "wrong": "nope"});
    create_secret(&client, "baremetal-ccm-bgp", "bgp", passwords).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "baremetal-ccm-bgp");
    let elsewhere = serde_json::json!({"password": "s3cret"});
    create_secret(&client, "kube-system", "bgp", elsewhere).await;
    let peer = |address: &str, asn: u32, key: Option<&str>| {
        let mut spec = serde_json::json!({"peerAddress": address, "peerASN": asn, "localASN": CLUSTER_ASN, "connectRetrySeconds": 1, "families": ["IPv4"]});
        if let Some(key) = key {
            spec["passwordSecretRef"] = serde_json::json!({"name": "bgp", "key": key});
        }
        spec
    };
    create_peer(
        &client,
        "good",
        serde_json::json!({}),
        peer(ROUTER_V4, ROUTER_ASN, Some("password")),
    )
    .await;
    // The router at an address nobody answers, the router with the wrong ASN (its IPv6
    // address, where BIRD answers as 64500), and one whose Secret key does not exist.
    create_peer(
        &client,
        "wrong-asn",
        serde_json::json!({}),
        peer(ROUTER_V6, 64999, None),
    )
    .await;
    create_peer(
        &client,
        "unreachable",
        serde_json::json!({}),
        peer("198.51.100.99", ROUTER_ASN, None),
    )
    .await;
    create_peer(
        &client,
        "missing-key",
        serde_json::json!({}),
        peer("198.51.100.98", ROUTER_ASN, Some("absent")),
    )
    .await;
    let mut elsewhere = peer("198.51.100.97", ROUTER_ASN, None);
    elsewhere["passwordSecretRef"] =
        serde_json::json!({"name": "bgp", "key": "password", "namespace": "kube-system"});
    create_peer(&client, "elsewhere", serde_json::json!({}), elsewhere).await;
    let ccm = start_replica_as(&kubeconfig, &fabric, "ccm-a", 2);

    Svc::lb("default", "web").create(&client).await;
    wait_addresses(&client, "default", "web", 1).await;
    fabric
        .wait_kernel("192.0.2.0/32", &nodes(&[11, 12, 13], false), ROUTE)
        .await;
    wait_session(&client, "good", "ccm-a", |s| s.state == "Established").await;
    let missing = wait_session(&client, "missing-key", "ccm-a", |s| {
        s.state == "NotConfigured"
    })
    .await;
    assert!(
        missing
            .last_error
            .unwrap()
            .contains("has no key \"absent\"")
    );
    let elsewhere = wait_session(&client, "elsewhere", "ccm-a", |s| {
        s.state == "NotConfigured"
    })
    .await;
    let reason = elsewhere.last_error.unwrap();
    assert!(
        reason.contains("read from namespace baremetal-ccm-bgp only")
            && reason.contains("kube-system/bgp is outside it"),
        "{reason}"
    );
    let unreachable = wait_session(&client, "unreachable", "ccm-a", |s| !s.state.is_empty()).await;
    assert_ne!(unreachable.state, "Established");
    // The wrong ASN: the controller configures the peer into gobgpd (evidence it acted on
    // it), and the session never establishes while gobgpd retries every second: watched at
    // every sample, so a session that comes up even briefly fails the test. Neither router
    // nor gobgpd counts the refused handshake (BIRD stays in Connect without an error,
    // gobgpd's message counters stay at 0), so the window has no better end than its length.
    let router_v6: std::net::IpAddr = ROUTER_V6.parse().unwrap();
    let configured = rig::process::wait_for(WAIT, || async {
        let state = fabric.gobgpd(2).peer_state(router_v6).await.ok()??;
        (state.peer_asn == 64999).then_some(())
    })
    .await;
    assert!(
        configured.is_some(),
        "{:?}",
        fabric.gobgpd(2).peer_state(router_v6).await
    );
    let established = gobgp_api_proto::api::peer_state::SessionState::Established as i32;
    let came_up = rig::process::wait_for(std::time::Duration::from_secs(4), || async {
        let state = fabric.gobgpd(2).peer_state(router_v6).await.ok()??;
        (state.session_state == established).then_some(())
    })
    .await;
    assert!(came_up.is_none(), "the wrong ASN's session came up");
    let wrong = peer_session(&client, "wrong-asn", "ccm-a").await.unwrap();
    assert_ne!(wrong.state, "Established", "{wrong:?}");
    assert!(!fabric.established("s2v6"), "{}", fabric.protocols());
    // The good session was never disturbed.
    assert!(fabric.established("s2v4"));
    assert_eq!(fabric.kernel_next_hops("192.0.2.0/32").len(), 3);

    // A wrong password on the good peer: the session drops (MD5 mismatch), the routes go;
    // the right one again, written into the Secret the peer now references: back.
    let peers: Api<baremetal_ccm_core::crd::bgppeer::BGPPeer> = Api::all(client.clone());
    let wrong = serde_json::json!({"spec": {"passwordSecretRef": {"name": "bgp", "key": "wrong"}}});
    peers
        .patch("good", &PatchParams::default(), &Patch::Merge(&wrong))
        .await
        .unwrap();
    fabric
        .wait_kernel("192.0.2.0/32", &[], Duration::from_secs(120))
        .await;
    let right = serde_json::json!({"stringData": {"wrong": "s3cret"}});
    secrets
        .patch("bgp", &PatchParams::default(), &Patch::Merge(&right))
        .await
        .unwrap();
    fabric
        .wait_kernel(
            "192.0.2.0/32",
            &nodes(&[11, 12, 13], false),
            Duration::from_secs(60),
        )
        .await;
    let log = ccm.log_tail(2_000_000);
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");
    assert!(!log.contains("s3cret"), "a password reached the log");
}

/// The router configuration example of `kind` in docs/bgp.md, as written (between
/// `<!-- router-example: <kind> -->` and `<!-- /router-example -->`, without the fences).
fn documented_router_config(kind: &str) -> String {
    let path = rig::tools::repo_root().join("docs/bgp.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let start = format!("<!-- router-example: {kind} -->");
    let (_, rest) = doc
        .split_once(&start)
        .unwrap_or_else(|| panic!("{start} in {}", path.display()));
    let (block, _) = rest.split_once("<!-- /router-example -->").unwrap();
    let block = block.trim();
    let block = block.strip_prefix("```").unwrap().trim_start_matches('\n');
    block.strip_suffix("```").unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bird_example_in_the_docs_works_as_written() {
    the_router_example_in_the_docs_works_as_written(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_frr_example_in_the_docs_works_as_written() {
    the_router_example_in_the_docs_works_as_written(RouterKind::Frr).await;
}

/// The documented router configuration with the documented BGPPeers (MD5, BFD, graceful
/// restart, IPv4 and IPv6 sessions): ECMP over the nodes in both families, BFD up.
async fn the_router_example_in_the_docs_works_as_written(kind: RouterKind) {
    let sessions = [Session::to(2)];
    // The documented sessions' names (BIRD's protocols), for the router queries.
    let mut config = router_config(&sessions);
    for (peer, name) in config.sessions.iter_mut().zip(["ccm_a", "ccm_a_v6"]) {
        peer.name = name.to_owned();
    }
    let fabric = match kind {
        RouterKind::Bird => {
            let text = documented_router_config("bird");
            Fabric::start_with(&sessions, |host| async move {
                rig::router::Router::start_bird_with(&host, &text, config)
                    .await
                    .unwrap()
            })
            .await
        }
        RouterKind::Frr => {
            let text = documented_router_config("frr");
            Fabric::start_with(&sessions, |host| async move {
                rig::router::Router::start_frr_with(&host, &text, true, config)
                    .await
                    .unwrap()
            })
            .await
        }
    };
    let cluster = cluster(false).await;
    let client = cluster.client();
    three_nodes(&client).await;
    bgp_pool(
        &client,
        "pool-a",
        &["192.0.2.0/28", "2001:db8:5::/124"],
        serde_json::json!({}),
    )
    .await;
    create_namespace(&client, "baremetal-ccm-bgp", &[]).await;
    let password = serde_json::json!({"password": "s3cret"});
    create_secret(&client, "baremetal-ccm-bgp", "bgp", password).await;
    central_peers(
        &client,
        serde_json::json!({"passwordSecretRef": {"name": "bgp", "key": "password"}, "gracefulRestart": {}, "bfd": {}}),
    )
    .await;
    let _ccm = start_replica(&cluster, &fabric, "ccm-a", 2);
    Svc::lb("default", "web")
        .families("RequireDualStack", &["IPv4", "IPv6"])
        .create(&client)
        .await;
    wait_addresses(&client, "default", "web", 2).await;
    fabric
        .wait_kernel("192.0.2.0/32", &nodes(&[11, 12, 13], false), ROUTE)
        .await;
    fabric
        .wait_kernel("2001:db8:5::/128", &nodes(&[11, 12, 13], true), ROUTE)
        .await;
    for peer in ["tor-v4", "tor-v6"] {
        wait_session(&client, peer, "ccm-a", |s| {
            s.state == "Established" && s.bfd_state.as_deref() == Some("Up")
        })
        .await;
    }
    assert!(
        fabric.established("ccm_a") && fabric.established("ccm_a_v6"),
        "{}",
        fabric.protocols()
    );
}

/// `maxNextHops`: of three eligible nodes, a prefix gets the two highest in rank for it; when
/// one of those is no longer Ready the third takes its place, and it comes back after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_gets_at_most_max_next_hops_the_highest_in_rank_with_bird() {
    let fabric = Fabric::start(RouterKind::Bird, &[Session::to(2)]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    three_nodes(&client).await;
    bgp_pool(
        &client,
        "pool-a",
        &["192.0.2.0/28"],
        serde_json::json!({"maxNextHops": 2}),
    )
    .await;
    central_peers(&client, serde_json::json!({})).await;
    let _ccm = start_replica(&cluster, &fabric, "ccm-a", 2);
    Svc::lb("default", "web").create(&client).await;
    let ip = wait_addresses(&client, "default", "web", 1).await.remove(0);
    let mut ranked = [("n1", 11_u8), ("n2", 12), ("n3", 13)];
    ranked.sort_by_key(|(n, _)| std::cmp::Reverse(baremetal_ccm_core::rendezvous::weight(n, &ip)));
    let [(first, a), (_, b), (_, c)] = ranked;
    let prefix = format!("{ip}/32");
    fabric
        .wait_kernel(&prefix, &nodes(&[a, b], false), ROUTE)
        .await;
    // The first in rank goes: the third steps in, the second stays.
    set_ready(&client, first, false).await;
    fabric
        .wait_kernel(&prefix, &nodes(&[b, c], false), ROUTE)
        .await;
    set_ready(&client, first, true).await;
    fabric
        .wait_kernel(&prefix, &nodes(&[a, b], false), ROUTE)
        .await;
}

/// A session that flaps under load (600 paths resent at every flap): the BGPPeer status
/// follows it, written at most twice per flap (down, up) and at most once per status period
/// (2 s), and nothing else is written for it (no Service, pool or Event writes: no status
/// storm). gobgpd holds a session the router reset down for 5 s, so flaps come no faster than
/// one per 5-7 s: of the two bounds the per-flap one binds here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_peer_under_load_writes_its_status_at_most_every_two_seconds_with_bird() {
    const SERVICES: usize = 200;
    const FLAPS: u32 = 5;
    let paths = u64::try_from(SERVICES * 3).unwrap();
    let fabric = Fabric::start(RouterKind::Bird, &[Session::to(2)]).await;
    let cluster = cluster(true).await;
    let client = cluster.client();
    three_nodes(&client).await;
    bgp_pool(&client, "pool-a", &["192.0.2.0/24"], serde_json::json!({})).await;
    central_peers(&client, serde_json::json!({})).await;
    let _ccm = start_replica(&cluster, &fabric, "ccm-a", 2);
    for i in 0..SERVICES {
        Svc::lb("default", &format!("web-{i}"))
            .create(&client)
            .await;
    }
    let imported = |want: u64| {
        let fabric = &fabric;
        move || async move {
            (fabric.established("s2v4") && fabric.imported("s2v4") == Some(want)).then_some(())
        }
    };
    let all = rig::process::wait_for(Duration::from_secs(60), imported(paths)).await;
    assert!(
        all.is_some(),
        "{:?} of {paths} paths at BIRD",
        fabric.imported("s2v4")
    );
    let before = wait_session(&client, "tor-v4", "ccm-a", |s| {
        s.state == "Established" && s.ipv4_prefixes_sent == Some(paths)
    })
    .await;
    let router: std::net::IpAddr = ROUTER_V4.parse().unwrap();
    let flops = |state: Option<gobgp_api_proto::api::PeerState>| state.map_or(0, |s| s.flops);
    let flops_before = flops(fabric.gobgpd(2).peer_state(router).await.unwrap());
    let bird = fabric.router.bird().unwrap();
    let established = gobgp_api_proto::api::peer_state::SessionState::Established as i32;
    let writes_before = window_writes(&cluster);

    // The router drops the session, gobgpd sees it go, the router takes it back and gets
    // every path again: FLAPS times, as fast as the session allows.
    let started = std::time::Instant::now();
    for flap in 0..FLAPS {
        bird.birdc(&["disable", "s2v4"]).unwrap();
        let down = rig::process::wait_for(Duration::from_secs(30), || async {
            let state = fabric.gobgpd(2).peer_state(router).await.ok()??;
            (state.session_state != established).then_some(())
        })
        .await;
        assert!(down.is_some(), "flap {flap}: gobgpd kept the session up");
        bird.birdc(&["enable", "s2v4"]).unwrap();
        let up = rig::process::wait_for(Duration::from_secs(60), imported(paths)).await;
        assert!(
            up.is_some(),
            "flap {flap}: {:?} of {paths} paths back",
            fabric.imported("s2v4")
        );
    }
    let window = started.elapsed();
    let writes: Vec<_> = window_writes(&cluster)
        .into_iter()
        .filter(|w| !writes_before.iter().any(|b| b.audit_id == w.audit_id))
        .collect();
    let flopped = flops(fabric.gobgpd(2).peer_state(router).await.unwrap()) - flops_before;
    assert!(flopped >= FLAPS, "gobgpd counted {flopped} flaps");

    // Only the flapping peer's status was written: at most down and up per flap, and at most
    // once per 2 s status period.
    let described: Vec<String> = (writes.iter())
        .map(|w| format!("{} {}", w.verb, w.request_uri))
        .collect();
    let status_of = |w: &rig::cluster::AuditedRequest| {
        w.object_ref.as_ref().is_some_and(|o| {
            o.resource == "bgppeers"
                && o.name.as_deref() == Some("tor-v4")
                && o.subresource.as_deref() == Some("status")
        })
    };
    assert!(writes.iter().all(status_of), "{described:#?}");
    let per_flap = usize::try_from(2 * FLAPS + 2).unwrap();
    let bound = usize::try_from(window.as_secs() / 2 + 2)
        .unwrap()
        .min(per_flap);
    assert!(
        (1..=bound).contains(&writes.len()),
        "{} status writes in {window:?} for {FLAPS} flaps (at most {bound})",
        writes.len()
    );
    // And it ends saying what is true: up again, since after the flaps, every path sent.
    let after = wait_session(&client, "tor-v4", "ccm-a", |s| {
        s.state == "Established"
            && s.ipv4_prefixes_sent == Some(paths)
            && s.established_since != before.established_since
    })
    .await;
    assert!(
        after.established_since > before.established_since,
        "{after:?}"
    );
    eprintln!(
        "{FLAPS} flaps ({flopped} counted by gobgpd) of a session with {paths} paths in {window:?}: {} status writes (bound {bound})",
        writes.len()
    );
}

/// The controller's writes so far (made as the rig's admin, as the test's own are: the test
/// writes nothing while it counts), its Lease renewals aside.
fn window_writes(cluster: &rig::cluster::TestCluster) -> Vec<rig::cluster::AuditedRequest> {
    (cluster.audited_writes().unwrap().into_iter())
        .filter(|w| w.user.username == "rig-admin")
        .filter(|w| w.object_ref.as_ref().is_none_or(|o| o.resource != "leases"))
        .collect()
}

/// Status heartbeats of Nodes (a kubelet reports its status every few minutes: 1,000 Nodes
/// make several a second) change nothing the announcer plans from, nor do its own BGPPeer
/// status writes or the IPPool status service-lb writes: none of them causes a plan (each
/// plan is over every Service). A change that matters after them (a node NotReady) does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_heartbeats_and_status_writes_cause_no_plan_with_bird() {
    let fabric = Fabric::start(RouterKind::Bird, &[Session::to(2)]).await;
    let cluster = cluster(false).await;
    let client = cluster.client();
    three_nodes(&client).await;
    bgp_pool(&client, "pool-a", &["192.0.2.0/28"], serde_json::json!({})).await;
    central_peers(&client, serde_json::json!({})).await;
    let endpoint = format!("--gobgp-endpoint={}", fabric.endpoint(2));
    let router_id = format!("--bgp-router-id={}", v4(2));
    let args = [
        "--controllers=service-lb,bgp-announcer",
        &endpoint,
        &router_id,
    ];
    let (_ccm, admin) = start_ccm(&cluster.admin_kubeconfig(), "ccm-a", &args);
    Svc::lb("default", "web").create(&client).await;
    let ip = wait_addresses(&client, "default", "web", 1).await.remove(0);
    let prefix = format!("{ip}/32");
    fabric
        .wait_kernel(&prefix, &nodes(&[11, 12, 13], false), ROUTE)
        .await;
    wait_session(&client, "tor-v4", "ccm-a", |s| s.state == "Established").await;
    let plans = || async {
        let text = http_get(admin, "/metrics").await.expect("metrics answered");
        (text.lines())
            .find_map(|line| line.strip_prefix("baremetal_ccm_bgp_plans_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .expect("the plans counter is exported")
    };
    let before = plans().await;

    // 20 heartbeats per node: the Ready condition unchanged, its times new.
    let api: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    for beat in 0..20 {
        for node in ["n1", "n2", "n3"] {
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let patch = serde_json::json!({"status": {"conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": format!("heartbeat {beat}"),
                "lastHeartbeatTime": now,
            }]}});
            api.patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
                .unwrap();
        }
    }
    // Then a change that matters, on the same watch: its plan comes after theirs would.
    set_ready(&client, "n2", false).await;
    fabric
        .wait_kernel(&prefix, &nodes(&[11, 13], false), ROUTE)
        .await;
    let planned = plans().await - before;
    assert!(
        (1.0..=3.0).contains(&planned),
        "60 heartbeats and one node NotReady made {planned} plans (1 expected, at most 3)"
    );
}
