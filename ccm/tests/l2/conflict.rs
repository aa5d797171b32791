//! Probes and machines outside the cluster, with real kernels: an outside machine (a
//! namespace on the segment, no speaker) holds a pool address on its interface and answers
//! ARP and NDP for it itself. The Service that gets that address is not announced by any
//! speaker, not even when the one that found the conflict can no longer own it; once the
//! machine lets the address go, the address is announced within the re-probe period. A fresh
//! address is probed before its first announcement; a failover is not.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use baremetal_ccm_core::l2::conflict::{REPROBE, REPROBE_TIMEOUT};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use rig::l2::*;
use rig::service::*;

const HELD_V4: &str = "192.0.2.105";
const HELD_V6: &str = "2001:db8::105";

/// The MACs that answer `address` when `client` asks for it afresh: `arping` for IPv4,
/// `ndisc6` for IPv6, each waiting for every answer, not just the first.
fn answerers(client: &rig::netns::Host, address: &str) -> BTreeSet<String> {
    let out = if address.contains(':') {
        (client.command("ndisc6"))
            .args(["-m", "-n", "-r", "1", "-w", "500", address, "eth0"])
            .output()
    } else {
        (client.command("arping"))
            .args(["-c", "3", "-W", "0.2", "-w", "2", "-i", "eth0", address])
            .output()
    }
    .expect("the tool runs");
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    (text.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ','))
        .filter(|w| w.len() == 17 && w.matches(':').count() == 5)
        .filter(|w| w.chars().all(|c| c == ':' || c.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

/// The log lines of `log` that contain every one of `words` (a [`field`] may end the line).
fn lines<'a>(log: &'a str, words: &[&str]) -> Vec<&'a str> {
    (log.lines())
        .filter(|line| {
            let line = format!("{line} ");
            words.iter().all(|w| line.contains(w))
        })
        .collect()
}

/// The speakers whose logs have a line with every one of `words`.
fn speakers_logging(cluster: &L2Lab, words: &[&str]) -> Vec<String> {
    (cluster.speakers.iter())
        .filter(|(_, s)| !lines(&s.log_tail(2_000_000), words).is_empty())
        .map(|(node, _)| node.clone())
        .collect()
}

/// Waits until some speaker logs a line with every one of `words`; returns the speakers.
async fn wait_logged(cluster: &L2Lab, words: &[&str], within: Duration) -> Vec<String> {
    let start = Instant::now();
    loop {
        let found = speakers_logging(cluster, words);
        if !found.is_empty() {
            return found;
        }
        assert!(
            start.elapsed() < within,
            "no speaker logged {words:?} within {within:?}; logs:\n{}",
            (cluster.speakers.values())
                .map(|s| s.log_tail(3000))
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The timestamp at the start of a speaker's log line.
fn stamp(line: &str) -> k8s_openapi::jiff::Timestamp {
    let first = line.split_whitespace().next().expect("a log line");
    first.parse().expect("a log line starts with its time")
}

/// A log field as the plain format writes it, with the space that ends it.
fn field(name: &str, value: &str) -> String {
    format!("{name}={value} ")
}

/// For `within`, every fresh resolution by the client's kernel gets `mac` and only the
/// outside machine answers; no speaker ever announced `address`.
fn stays_with(cluster: &L2Lab, address: &str, mac: &str, within: Duration) {
    let start = Instant::now();
    while start.elapsed() < within {
        assert_eq!(
            resolve(&cluster.client, address).as_deref(),
            Some(mac),
            "{address} after {:?}",
            start.elapsed()
        );
        let answers = answerers(&cluster.client, address);
        assert_eq!(answers, BTreeSet::from([mac.to_owned()]), "{address}");
    }
    // A speaker that probes logs owning the address (its duty), but must never announce it.
    let address = field("address", address);
    let announced: Vec<String> = (cluster.speakers.iter())
        .flat_map(|(node, s)| {
            let log = s.log_tail(2_000_000);
            (lines(&log, &["l2::responder: announced", &address]).into_iter())
                .map(|l| format!("{node}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        announced.is_empty(),
        "a speaker announced it: {announced:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_an_outside_machine_holds_is_left_to_it_by_every_speaker_until_it_lets_go() {
    let mut cluster = L2Lab::start().await;
    let outside = cluster.outside_machine(
        "out",
        &[
            format!("{HELD_V4}/24").parse().unwrap(),
            format!("{HELD_V6}/64").parse().unwrap(),
        ],
    );
    let outside_mac = eth0_mac(&outside);
    let api = cluster.cluster.client();
    // Settled, so that what a speaker finds is gossiped at once.
    cluster.wait_settled().await;
    let created = Instant::now();
    Svc::lb("default", "taken")
        .families("RequireDualStack", &["IPv4", "IPv6"])
        .annotate("baremetal-ccm.io/ips", &format!("{HELD_V4},{HELD_V6}"))
        .create(&api)
        .await;
    wait_addresses(&api, "default", "taken", 2).await;
    let mut finders = BTreeSet::new();
    for address in [HELD_V4, HELD_V6] {
        let words = [
            "a machine outside the cluster holds the address",
            "while_probing=true",
            &field("address", address),
        ];
        let found = wait_logged(&cluster, &words, Duration::from_secs(20)).await;
        eprintln!(
            "{address}: conflict found by {found:?} {:?} after the Service was created",
            created.elapsed()
        );
        finders.extend(found);
    }
    // The client's kernel reaches the outside machine, and keeps reaching it after the
    // probe window; nobody else answers.
    for address in [HELD_V4, HELD_V6] {
        stays_with(&cluster, address, &outside_mac, Duration::from_secs(2));
    }
    // And the entry it has is left alone: no gratuitous announcement moves it.
    let kept = Instant::now();
    while kept.elapsed() < Duration::from_secs(2) {
        for address in [HELD_V4, HELD_V6] {
            let cached = neighbour(&cluster.client, address);
            assert_eq!(cached.as_deref(), Some(outside_mac.as_str()), "{address}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The finders can no longer own any address; they are alive, so what they found still
    // holds: the next in rank must not announce the addresses either. (Once a finder's
    // conflict runs out, the new owner probes, finds the machine itself and holds them.)
    let nodes: Api<Node> = Api::all(api.clone());
    let label = serde_json::json!({"metadata": {"labels": {
        "node.kubernetes.io/exclude-from-external-load-balancers": "true"
    }}});
    for finder in &finders {
        (nodes.patch(finder, &PatchParams::default(), &Patch::Merge(&label)))
            .await
            .unwrap();
    }
    for address in [HELD_V4, HELD_V6] {
        stays_with(&cluster, address, &outside_mac, Duration::from_secs(3));
    }

    // The outside machine lets the addresses go: a speaker's probe again finds them free.
    outside
        .run(["ip", "addr", "del", &format!("{HELD_V4}/24"), "dev", "eth0"])
        .unwrap();
    outside
        .run(["ip", "addr", "del", &format!("{HELD_V6}/64"), "dev", "eth0"])
        .unwrap();
    let gone = Instant::now();
    // A finder that can no longer own the address drops its conflict REPROBE_TIMEOUT after
    // its period ends; the new owner then probes once more.
    let bound = REPROBE + REPROBE_TIMEOUT + Duration::from_secs(5);
    for address in [HELD_V4, HELD_V6] {
        let start = Instant::now();
        let mac = loop {
            if let Some(mac) = resolve(&cluster.client, address).filter(|m| *m != outside_mac) {
                break mac;
            }
            assert!(
                gone.elapsed() < bound,
                "{address} not announced {bound:?} after the outside machine let it go"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let owner = cluster.node_with_mac(&mac).expect("a speaker's MAC");
        eprintln!(
            "{address}: announced by {owner} {:?} after the outside machine let it go (waited {:?} here)",
            gone.elapsed(),
            start.elapsed()
        );
        assert!(!finders.contains(&owner), "{owner} is excluded");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_address_is_probed_before_its_first_announcement_and_a_failover_is_not() {
    let mut cluster = L2Lab::start().await;
    let api = cluster.cluster.client();
    cluster.wait_settled().await;
    Svc::lb("default", "fresh")
        .families("RequireDualStack", &["IPv4", "IPv6"])
        .create(&api)
        .await;
    let addresses = wait_addresses(&api, "default", "fresh", 2).await;
    for address in &addresses {
        let at = field("address", address);
        let probing = ["probing the address before its first announcement", &at];
        let prober = wait_logged(&cluster, &probing, Duration::from_secs(20)).await;
        assert_eq!(prober.len(), 1, "{address} probed by {prober:?}");
        let prober = &prober[0];
        let announced = ["l2::responder: announced", &at];
        wait_logged(&cluster, &announced, Duration::from_secs(10)).await;
        let log = cluster.speakers[prober].log_tail(2_000_000);
        let (probed, first) = (lines(&log, &probing)[0], lines(&log, &announced)[0]);
        let took = stamp(first).duration_since(stamp(probed));
        eprintln!("{address}: probed by {prober}, announced {took:?} later");
        assert!(
            took.as_secs_f64() >= 0.9 && took.as_secs_f64() <= 1.5,
            "{address}: the probe window took {took:?}; {prober}'s log about it:\n{}",
            log.lines()
                .filter(|l| !l.contains("DEBUG"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // Failover: the successor takes over without a probe, as fast as ever.
    let v4 = addresses.iter().find(|a| a.contains('.')).unwrap().clone();
    let owner = cluster.owner_of(&v4).await;
    let old_mac = eth0_mac(&cluster.hosts[&owner]);
    cluster.speakers.get_mut(&owner).unwrap().kill();
    let (new_mac, took) = wait_moved(&cluster.client, &v4, &old_mac, Duration::from_secs(10))
        .expect("the address moved within 10 s");
    let new_owner = cluster.node_with_mac(&new_mac).expect("a speaker's MAC");
    eprintln!("SIGKILL of {owner}: the client's cache moved to {new_owner} after {took:?}");
    let log = cluster.speakers[&new_owner].log_tail(2_000_000);
    assert!(!lines(&log, &["owning the address", &field("address", &v4)]).is_empty());
    assert!(
        lines(&log, &["probing the address", &field("address", &v4)]).is_empty(),
        "{new_owner} probed {v4} on taking it over"
    );
}
