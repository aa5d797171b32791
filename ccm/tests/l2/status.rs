//! What the operator sees of layer 2, written by the controller's l2-status observer (in n1's
//! namespace, beside n1's speaker): the Service condition names the owner, its interface and
//! the MAC the client's kernel holds; an owner killed or stopped gives an Event with its
//! reason and a condition naming the new owner, also when the API server was away during the
//! failover; a host problem on a node gives an Event on its Node.

use std::time::Duration;

use baremetal_ccm_core::l2::status::CONDITION;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use rig::l2::*;
use rig::service::*;

/// Waits until the Service's L2Announced condition satisfies `want`; returns (status, reason,
/// message).
async fn wait_l2(
    api: &kube::Client,
    name: &str,
    what: &str,
    want: impl Fn(&str, &str, &str) -> bool,
) -> (String, String, String) {
    let services: Api<Service> = Api::namespaced(api.clone(), "default");
    let found = rig::process::wait_for(Duration::from_secs(30), || async {
        let service = services.get(name).await.ok()?;
        let (status, reason, message) = condition(&service, CONDITION)?;
        want(&status, &reason, &message).then_some((status, reason, message))
    })
    .await;
    match found {
        Some(found) => found,
        None => {
            let service = services.get(name).await.unwrap();
            panic!(
                "{name}: no condition {what}; it has {:?}",
                condition(&service, CONDITION)
            )
        }
    }
}

/// The clause the condition gives the owner `node` whose eth0 has `mac`.
fn clause(address: &str, node: &str, mac: &str) -> String {
    format!("{address} by node {node} on eth0 ({mac})")
}

/// Waits for an Event `reason` on the Service `web` whose note mentions `words`.
async fn wait_owner_event(api: &kube::Client, reason: &str, words: &str) -> (String, String) {
    let found = rig::process::wait_for(Duration::from_secs(30), || async {
        (events_for(api, "default", "web").await.into_iter())
            .find(|(_, r, note)| r == reason && note.contains(words))
            .map(|(type_, _, note)| (type_, note))
    })
    .await;
    found.unwrap_or_else(|| panic!("no {reason} Event saying {words:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_condition_names_the_owner_the_client_sees_and_follows_a_kill_and_a_stop() {
    let mut lab = L2Lab::start_with_status().await;
    let api = lab.cluster.client();
    let (address, owner) = lab.one_address_service("web").await;
    let mac = neighbour(&lab.client, &address).unwrap();
    let (_, reason, message) = wait_l2(&api, "web", "naming the owner", |s, _, m| {
        s == "True" && m == clause(&address, &owner, &mac)
    })
    .await;
    assert_eq!(reason, "Announced", "{message}");
    // service-lb's own condition and the address are there too: neither writer removed the
    // other's.
    let service = Api::<Service>::namespaced(api.clone(), "default")
        .get("web")
        .await
        .unwrap();
    assert!(condition(&service, "baremetal-ccm.io/AddressAllocated").is_some());
    assert_eq!(
        wait_addresses(&api, "default", "web", 1).await,
        [address.as_str()]
    );

    // SIGKILL: NodeFailed, and the condition names the new owner and the MAC the client moved to.
    lab.speakers.get_mut(&owner).unwrap().kill();
    let (new_mac, took) = wait_moved(&lab.client, &address, &mac, Duration::from_secs(10))
        .expect("the address moved within 10 s");
    let new_owner = lab.node_with_mac(&new_mac).unwrap();
    let started = std::time::Instant::now();
    wait_l2(&api, "web", "naming the new owner", |s, _, m| {
        s == "True" && m == clause(&address, &new_owner, &new_mac)
    })
    .await;
    eprintln!(
        "SIGKILL of {owner}: the client moved after {took:?}, the condition {:?} later",
        started.elapsed()
    );
    let (type_, note) = wait_owner_event(&api, "NodeFailed", &new_owner).await;
    assert_eq!(type_, "Warning");
    assert_eq!(
        note,
        format!(
            "{address} moved from node {owner} to node {new_owner}: the previous owner's \
             speaker is down"
        )
    );

    // SIGTERM: Handover.
    lab.sigterm(&new_owner);
    let (third_mac, _) = wait_moved(&lab.client, &address, &new_mac, Duration::from_secs(10))
        .expect("the address moved within 10 s");
    let third = lab.node_with_mac(&third_mac).unwrap();
    wait_l2(&api, "web", "naming the third owner", |s, _, m| {
        s == "True" && m == clause(&address, &third, &third_mac)
    })
    .await;
    let (type_, note) = wait_owner_event(&api, "Handover", &third).await;
    assert_eq!(type_, "Normal");
    assert!(
        note.contains(&format!("from node {new_owner} to node {third}")),
        "{note}"
    );
    // With exactly the shipped RBAC (the lab's controller runs as its ServiceAccount).
    let log = lab.controller().log_tail(500_000);
    assert!(log.contains("layer-2 status observer started"), "{log}");
    assert!(!log.to_lowercase().contains("forbidden"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_while_the_api_server_is_away_reaches_the_condition_when_it_returns() {
    let mut lab = L2Lab::start_with_status().await;
    let api = lab.cluster.client();
    let (address, owner) = lab.one_address_service("web").await;
    let mac = neighbour(&lab.client, &address).unwrap();
    wait_l2(&api, "web", "naming the owner", |s, _, m| {
        s == "True" && m == clause(&address, &owner, &mac)
    })
    .await;

    // The speakers and the controller lose the API server; the owner dies; the address moves
    // all the same (the failover path needs no API server), but nobody can write it down.
    lab.block_api();
    lab.speakers.get_mut(&owner).unwrap().kill();
    let (new_mac, _) = wait_moved(&lab.client, &address, &mac, Duration::from_secs(10))
        .expect("the address moved within 10 s without the API server");
    let new_owner = lab.node_with_mac(&new_mac).unwrap();
    // The observer has seen it (its log), and could not write it.
    let seen = rig::process::wait_for(Duration::from_secs(10), || async {
        let log = lab.controller().log_tail(500_000);
        (log.lines())
            .any(|l| l.contains("the address changed owner") && l.contains("NodeFailed"))
            .then_some(())
    })
    .await;
    assert!(seen.is_some(), "{}", lab.controller().log_tail(4000));
    let service = Api::<Service>::namespaced(api.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let (_, _, written) = condition(&service, CONDITION).unwrap();
    assert_eq!(
        written,
        clause(&address, &owner, &mac),
        "written while cut off?"
    );

    // The API server is back: the condition catches up, and the Event recorded meanwhile
    // is published.
    let back = std::time::Instant::now();
    lab.unblock_api();
    wait_l2(&api, "web", "naming the new owner", |s, _, m| {
        s == "True" && m == clause(&address, &new_owner, &new_mac)
    })
    .await;
    eprintln!(
        "the condition caught up {:?} after the API server returned",
        back.elapsed()
    );
    wait_owner_event(&api, "NodeFailed", &new_owner).await;
    let log = lab.controller().log_tail(500_000);
    assert!(!log.contains("lost leadership"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_problem_on_a_node_is_one_event_on_its_node() {
    let lab = L2Lab::start_with_status().await;
    let api = lab.cluster.client();
    let n2 = &lab.hosts["n2"];
    n2.run(["sysctl", "-w", "net.ipv4.conf.eth0.proxy_arp=1"])
        .unwrap();
    // An interface change makes the speaker check its host at once (else within 30 s).
    n2.run(["ip", "address", "add", "198.51.100.9/32", "dev", "eth0"])
        .unwrap();
    let note = wait_event(&api, "default", "n2", "L2HostProblem").await;
    assert!(
        note.starts_with("layer 2 host problem proxy_arp on node n2: ")
            && note.contains("turn it off"),
        "{note}"
    );
    // It lasts while the speaker checks again (the address goes: another check) and keeps
    // gossiping its state (every 2 s): still one Event. An absence needs a time to wait; two
    // of the speaker's rebroadcasts are enough for a repeat to have shown.
    n2.run(["ip", "address", "del", "198.51.100.9/32", "dev", "eth0"])
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let events = events_for(&api, "default", "n2").await;
    let problems: Vec<_> = events
        .iter()
        .filter(|(_, r, _)| r == "L2HostProblem")
        .collect();
    assert_eq!(problems.len(), 1, "{events:?}");
    assert_eq!(problems[0].0, "Warning");
    // The other nodes have none.
    for node in ["n1", "n3"] {
        let events = events_for(&api, "default", node).await;
        assert!(
            !events.iter().any(|(_, r, _)| r == "L2HostProblem"),
            "{node}: {events:?}"
        );
    }
}
