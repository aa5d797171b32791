//! Layer 2 end to end: three real speakers, each in its node's network namespace on one
//! bridge, a real API server and the service-lb controller, and a client namespace whose
//! kernel resolves the Service's address with its own ARP and NDP. The address is owned by
//! exactly one speaker; when that speaker is SIGKILLed, or SIGTERMed, another takes it over
//! and the client's cache follows — measured from the client's side.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod conflict;
mod inkernel;
mod returns;
mod status;

use std::time::Duration;

use rig::l2::*;
use rig::service::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_answers_and_a_killed_owners_address_moves_to_another_speaker() {
    let mut cluster = L2Lab::start().await;
    let api = cluster.cluster.client();
    Svc::lb("default", "web")
        .families("PreferDualStack", &["IPv4", "IPv6"])
        .create(&api)
        .await;
    let addresses = wait_addresses(&api, "default", "web", 2).await;
    let v4 = addresses.iter().find(|a| a.contains('.')).unwrap().clone();
    let v6 = addresses.iter().find(|a| a.contains(':')).unwrap().clone();
    let owner = cluster.owner_of(&v4).await;
    let owner6 = cluster.owner_of(&v6).await;
    eprintln!("{v4} is owned by {owner}, {v6} by {owner6}");

    // SIGKILL: no goodbye; the successor's probes find it gone.
    let old_mac = eth0_mac(&cluster.hosts[&owner]);
    cluster.speakers.get_mut(&owner).unwrap().kill();
    let (new_mac, took) = wait_moved(&cluster.client, &v4, &old_mac, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the address did not move within 10 s:\n{}", cluster.logs()));
    let new_owner = cluster
        .node_with_mac(&new_mac)
        .expect("the new MAC is a speaker's");
    assert_ne!(new_owner, owner);
    eprintln!("SIGKILL of {owner}: the client's cache moved to {new_owner} after {took:?}");
    assert_eq!(
        resolve(&cluster.client, &v4).as_deref(),
        Some(new_mac.as_str())
    );

    // SIGTERM: the speaker leaves, its successor takes over at once.
    let old_mac = new_mac;
    cluster.sigterm(&new_owner);
    let (third_mac, took) = wait_moved(&cluster.client, &v4, &old_mac, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the address did not move within 10 s:\n{}", cluster.logs()));
    let third = cluster.node_with_mac(&third_mac).unwrap();
    eprintln!("SIGTERM of {new_owner}: the client's cache moved to {third} after {took:?}");
    assert!(third != owner && third != new_owner);
    assert!(
        cluster.speakers[&third]
            .log_tail(200_000)
            .contains("owning the address")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_whose_link_comes_back_waits_out_the_hold_down_before_taking_its_address_back() {
    let cluster = L2Lab::start().await;
    let (address, owner) = cluster.one_address_service("web").await;
    let old_mac = eth0_mac(&cluster.hosts[&owner]);
    cluster.hosts[&owner]
        .run(["ip", "link", "set", "eth0", "down"])
        .unwrap();
    let (new_mac, took) = wait_moved(&cluster.client, &address, &old_mac, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the address did not move within 10 s:\n{}", cluster.logs()));
    eprintln!("eth0 of {owner} down: moved after {took:?}");
    cluster.hosts[&owner]
        .run(["ip", "link", "set", "eth0", "up"])
        .unwrap();
    let back = std::time::Instant::now();
    // For the hold-down (10 s) the link's return changes nothing: every fresh resolution
    // still gets the new owner's MAC.
    while back.elapsed() < Duration::from_secs(6) {
        let now = rig::l2::resolve(&cluster.client, &address);
        assert!(
            now.as_deref() == Some(new_mac.as_str()) || now.is_none(),
            "{address} went back to {now:?} {:?} after the link returned; speaker logs:\n{}",
            back.elapsed(),
            cluster.logs()
        );
    }
    // Then the node, settled again and first in rank, takes it back.
    let (mac, _) = wait_moved(&cluster.client, &address, &new_mac, Duration::from_secs(15))
        .expect("the first in rank takes its address back after the hold-down");
    assert_eq!(mac, old_mac);
    eprintln!("taken back {:?} after the link returned", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_two_speakers_answer_for_one_address_the_lower_ranked_gives_way() {
    use baremetal_ccm_core::l2::election::weight;
    let cluster = L2Lab::start().await;
    let (address, owner) = cluster.one_address_service("web").await;
    let ip: std::net::IpAddr = address.parse().unwrap();
    let successor = (L2_NODES.iter().map(|(n, _, _)| *n))
        .filter(|n| *n != owner)
        .max_by_key(|n| weight(n, ip))
        .unwrap();
    // The successor's gossip is cut off from the others (its datagrams to them are dropped;
    // the others would otherwise probe the owner for it and forward the answer), so it
    // suspects the owner and takes the address, while the owner, which hears nothing wrong,
    // keeps it: both answer. Frames still flow both ways on the segment.
    for (node, v4, _) in L2_NODES {
        if node != successor {
            let ip = v4.split('/').next().unwrap();
            cluster.hosts[successor]
                .run(["ip", "route", "add", "blackhole", &format!("{ip}/32")])
                .unwrap();
        }
    }
    let start = std::time::Instant::now();
    loop {
        let log = cluster.speakers[successor].log_tail(200_000);
        if log.contains("another speaker answers for the address too")
            && log.contains("yields=true")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{successor} never gave way; its log:\n{}",
            cluster.speakers[successor].log_tail(4000)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "{successor} gave way to {owner} after {:?}",
        start.elapsed()
    );
    // Converged: every fresh resolution gets the owner's MAC, and only that.
    let owner_mac = eth0_mac(&cluster.hosts[&owner]);
    let steady = std::time::Instant::now();
    wait_moved(&cluster.client, &address, "", Duration::from_secs(5));
    while steady.elapsed() < Duration::from_secs(3) {
        let mac = resolve(&cluster.client, &address);
        assert_eq!(
            mac.as_deref(),
            Some(owner_mac.as_str()),
            "{address} after the split"
        );
    }
    assert!(
        !cluster.speakers[&owner]
            .log_tail(200_000)
            .contains("yields=true")
    );
}

/// Found in the lab (`hack/lab l2-owner-crash`): a speaker that had just started, or whose
/// link came back after it had declared the others down, took its addresses from a view
/// holding only itself; their settled owner gave way to its rank on the wire, and once the
/// returning speaker heard the others it no longer owned them either, so nobody answered a
/// fresh resolution for the rest of its 10 s hold-down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_back_from_a_restart_or_a_long_cut_leaves_the_address_answered_by_its_owner() {
    let mut cluster = L2Lab::start().await;
    let (address, first) = cluster.one_address_service("web").await;
    let first_mac = eth0_mac(&cluster.hosts[&first]);

    // A restart: SIGTERM hands the address over; the new process starts alone.
    (cluster.speakers.get_mut(&first).unwrap()).terminate(Duration::from_secs(10));
    let (interim_mac, _) = wait_moved(
        &cluster.client,
        &address,
        &first_mac,
        Duration::from_secs(10),
    )
    .expect("the address moved on SIGTERM");
    cluster.restart(&first);
    answered_only_by(
        &cluster,
        &address,
        &interim_mac,
        Duration::from_secs(6),
        "after the restart",
    );
    let (mac, _) = wait_moved(
        &cluster.client,
        &address,
        &interim_mac,
        Duration::from_secs(15),
    )
    .expect("the first in rank takes its address back after the hold-down");
    assert_eq!(mac, first_mac);

    // A cut long enough for the owner to declare every other speaker down.
    let alone = "No other speaker is alive";
    let before = cluster.speakers[&first]
        .log_tail(usize::MAX)
        .matches(alone)
        .count();
    cluster.hosts[&first]
        .run(["ip", "link", "set", "eth0", "down"])
        .unwrap();
    let (interim_mac, _) = wait_moved(
        &cluster.client,
        &address,
        &first_mac,
        Duration::from_secs(10),
    )
    .expect("the address moved when the owner's link went down");
    let start = std::time::Instant::now();
    while cluster.speakers[&first]
        .log_tail(usize::MAX)
        .matches(alone)
        .count()
        == before
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{first} never declared the others down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.hosts[&first]
        .run(["ip", "link", "set", "eth0", "up"])
        .unwrap();
    answered_only_by(
        &cluster,
        &address,
        &interim_mac,
        Duration::from_secs(6),
        "after the long cut",
    );
}

/// For `during`, every fresh resolution of `address` is answered, by `mac` only.
fn answered_only_by(cluster: &L2Lab, address: &str, mac: &str, during: Duration, when: &str) {
    let start = std::time::Instant::now();
    while start.elapsed() < during {
        let now = resolve(&cluster.client, address);
        assert_eq!(
            now.as_deref(),
            Some(mac),
            "{address} {when}, {:?} in",
            start.elapsed()
        );
    }
}

/// `externalTrafficPolicy: Local`: only a node with a ready endpoint of the Service may own
/// its address (kube-proxy drops the traffic elsewhere), so the address follows the
/// endpoints — to a node the ranking alone would not choose, and on when they move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_local_traffic_policy_the_address_follows_the_ready_endpoints() {
    use baremetal_ccm_core::l2::election::weight;
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::{Api, PostParams};

    let cluster = L2Lab::start().await;
    let api = cluster.cluster.client();
    cluster.wait_settled().await;
    let mut svc = Svc::lb("default", "local");
    svc.service.spec.as_mut().unwrap().external_traffic_policy = Some("Local".into());
    svc.create(&api).await;
    let address = wait_addresses(&api, "default", "local", 1).await.remove(0);
    let ip: std::net::IpAddr = address.parse().unwrap();
    let mut ranked: Vec<&str> = L2_NODES.iter().map(|(n, _, _)| *n).collect();
    ranked.sort_by_key(|n| std::cmp::Reverse(weight(n, ip)));
    let slice = |nodes: &[(&str, bool)]| -> EndpointSlice {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "local-1", "labels": {"kubernetes.io/service-name": "local"}},
            "addressType": "IPv4",
            "endpoints": nodes.iter().enumerate().map(|(i, (node, ready))| serde_json::json!({
                "addresses": [format!("10.244.0.{}", i + 1)], "nodeName": node,
                "conditions": {"ready": ready}})).collect::<Vec<_>>(),
        }))
        .unwrap()
    };
    let slices: Api<EndpointSlice> = Api::namespaced(api.clone(), "default");
    // The one ready endpoint is on the node ranked last: it owns the address.
    let (last, second) = (ranked[2], ranked[1]);
    slices
        .create(&PostParams::default(), &slice(&[(last, true)]))
        .await
        .unwrap();
    let last_mac = eth0_mac(&cluster.hosts[last]);
    let start = std::time::Instant::now();
    while resolve(&cluster.client, &address).as_deref() != Some(last_mac.as_str()) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{address} not answered by {last}, the only node with an endpoint:\n{}",
            cluster.logs()
        );
    }
    // The endpoint moves: ready on the second in rank, no longer on the last.
    let mut moved = slice(&[(second, true), (last, false)]);
    moved.metadata.resource_version = slices
        .get("local-1")
        .await
        .unwrap()
        .metadata
        .resource_version;
    slices
        .replace("local-1", &PostParams::default(), &moved)
        .await
        .unwrap();
    let (mac, took) = wait_moved(
        &cluster.client,
        &address,
        &last_mac,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| {
        panic!(
            "the address did not follow the endpoint:\n{}",
            cluster.logs()
        )
    });
    assert_eq!(
        mac,
        eth0_mac(&cluster.hosts[second]),
        "to the node with the endpoint"
    );
    eprintln!("{address} followed its endpoint from {last} to {second} in {took:?}");
}
