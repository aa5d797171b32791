//! Layer 2 end to end: three real speakers, each in its node's network namespace on one
//! bridge, a real API server and the service-lb controller, and a client namespace whose
//! kernel resolves the Service's address with its own ARP and NDP. The address is owned by
//! exactly one speaker; when that speaker is SIGKILLed, or SIGTERMed, another takes it over
//! and the client's cache follows — measured from the client's side.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rig::ccm::*;
use rig::l2::*;
use rig::netns::{Host, Lab};
use rig::pool::create_pool;
use rig::process::Process;
use rig::service::*;

const NODES: [(&str, &str, &str); 3] = [
    ("n1", "192.0.2.11/24", "2001:db8::11/64"),
    ("n2", "192.0.2.12/24", "2001:db8::12/64"),
    ("n3", "192.0.2.13/24", "2001:db8::13/64"),
];

struct Cluster {
    _lab: Lab,
    cluster: rig::cluster::TestCluster,
    hosts: BTreeMap<String, Host>,
    client: Host,
    speakers: BTreeMap<String, Process>,
    _forwards: Vec<Forward>,
    _controller: Process,
    _key: tempfile::TempDir,
}

impl Cluster {
    /// The node whose eth0 has `mac`.
    fn node_with_mac(&self, mac: &str) -> Option<String> {
        (self.hosts.iter())
            .find(|(_, host)| eth0_mac(host) == mac)
            .map(|(name, _)| name.clone())
    }
}

async fn start() -> Cluster {
    let mut lab = Lab::new().unwrap();
    let segment = lab.segment("sw").unwrap();
    let mut hosts = BTreeMap::new();
    for (name, v4, v6) in NODES {
        let host = lab
            .host_on(name, &segment, &[v4.parse().unwrap(), v6.parse().unwrap()])
            .unwrap();
        hosts.insert(name.to_owned(), host);
    }
    let client = lab
        .host_on(
            "cli",
            &segment,
            &[
                "192.0.2.20/24".parse().unwrap(),
                "2001:db8::20/64".parse().unwrap(),
            ],
        )
        .unwrap();
    let cluster = cluster(false).await;
    let api = cluster.client();
    for (name, v4, _) in NODES {
        let address = v4.split('/').next().unwrap().parse().unwrap();
        create_node(&api, name, address).await;
    }
    create_pool(
        &api,
        "l2",
        serde_json::json!({
            "addresses": ["192.0.2.100-192.0.2.110", "2001:db8::100/124"],
            "announce": {"mode": "l2", "l2": {"announcements": {"count": 3, "interval": "300ms", "refresh": "0s"}}}
        }),
    )
    .await;
    let controller = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    let (key_dir, key) = gossip_key();
    let mut forwards = Vec::new();
    let mut speakers = BTreeMap::new();
    for (name, host) in &hosts {
        forwards.push(forward_api(&cluster, host));
        speakers.insert(name.clone(), start_l2_speaker(&cluster, host, name, &key));
    }
    Cluster {
        _lab: lab,
        cluster,
        hosts,
        client,
        speakers,
        _forwards: forwards,
        _controller: controller,
        _key: key_dir,
    }
}

fn eth0_mac(host: &Host) -> String {
    let out = host.run_capture(["cat", "/sys/class/net/eth0/address"]);
    // `cat` runs in the namespace's mount of /sys only with `ip netns exec`: it does.
    out.unwrap().trim().to_owned()
}

/// The MAC the client's kernel has for `address` after asking (a ping makes it ask; nobody
/// answers the ping, the address is on no interface and no kube-proxy runs here).
fn resolve(client: &Host, address: &str) -> Option<String> {
    let _ = client.run(["ip", "neigh", "flush", "to", address, "dev", "eth0"]);
    let _unanswered = client
        .command("ping")
        .args(["-c", "1", "-W", "1", address])
        .output();
    neighbour(client, address)
}

fn neighbour(client: &Host, address: &str) -> Option<String> {
    let out = (client.run_capture(["ip", "neigh", "show", "to", address, "dev", "eth0"])).ok()?;
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "lladdr")?;
    Some(words[at + 1].to_owned())
}

/// Polls the client's cache every 20 ms (without flushing it: the new owner's gratuitous
/// announcements are what must move it) until it holds a MAC other than `old`.
fn wait_moved(client: &Host, address: &str, old: &str, within: Duration) -> (String, Duration) {
    let start = Instant::now();
    loop {
        if let Some(mac) = neighbour(client, address).filter(|m| m != old) {
            return (mac, start.elapsed());
        }
        assert!(
            start.elapsed() < within,
            "{address} still resolves to {old} after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn owner_of(cluster: &Cluster, address: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(mac) = resolve(&cluster.client, address)
            && let Some(node) = cluster.node_with_mac(&mac)
        {
            return node;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "nobody answers for {address}; speaker logs:\n{}",
            (cluster.speakers.values())
                .map(|s| s.log_tail(3000))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_answers_and_a_killed_owners_address_moves_to_another_speaker() {
    let mut cluster = start().await;
    let api = cluster.cluster.client();
    Svc::lb("default", "web")
        .families("PreferDualStack", &["IPv4", "IPv6"])
        .create(&api)
        .await;
    let addresses = wait_addresses(&api, "default", "web", 2).await;
    let v4 = addresses.iter().find(|a| a.contains('.')).unwrap().clone();
    let v6 = addresses.iter().find(|a| a.contains(':')).unwrap().clone();
    let owner = owner_of(&cluster, &v4).await;
    let owner6 = owner_of(&cluster, &v6).await;
    eprintln!("{v4} is owned by {owner}, {v6} by {owner6}");

    // SIGKILL: no goodbye; the successor's probes find it gone.
    let old_mac = eth0_mac(&cluster.hosts[&owner]);
    cluster.speakers.get_mut(&owner).unwrap().kill();
    let (new_mac, took) = wait_moved(&cluster.client, &v4, &old_mac, Duration::from_secs(10));
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
    cluster
        .speakers
        .get_mut(&new_owner)
        .unwrap()
        .terminate(Duration::from_secs(10));
    let (third_mac, took) = wait_moved(&cluster.client, &v4, &old_mac, Duration::from_secs(10));
    let third = cluster.node_with_mac(&third_mac).unwrap();
    eprintln!("SIGTERM of {new_owner}: the client's cache moved to {third} after {took:?}");
    assert!(third != owner && third != new_owner);
    assert!(
        cluster.speakers[&third]
            .log_tail(200_000)
            .contains("owning the address")
    );
}
