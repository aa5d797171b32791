//! `--l2-reply-in-kernel` end to end: the speakers answer the client's plain requests from
//! their eBPF programs, and the program follows the speaker's fate — a stopped speaker's stops
//! answering before its successor takes the address (never two MACs), a killed speaker's is
//! detached with it.

use std::collections::BTreeSet;
use std::time::Duration;

use rig::l2::*;
use rig::netns::Host;
use rig::service::*;

/// The MACs that answer one broadcast ARP request round for `address` (arping waits `wait`
/// for every reply, so that a second answer would be seen).
fn macs_answering(client: &Host, address: &str) -> BTreeSet<String> {
    let out = client
        .command("arping")
        .args(["-c", "2", "-w", "2", "-i", "eth0", address])
        .output()
        .unwrap();
    (String::from_utf8_lossy(&out.stdout).split_whitespace())
        .filter(|word| word.len() == 17 && word.matches(':').count() == 5)
        .map(str::to_lowercase)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_kernel_replies_stop_with_a_stopped_speaker_and_go_with_a_killed_one() {
    let mut cluster = L2Lab::start_with(L2Options {
        speaker_args: vec!["--l2-reply-in-kernel".to_owned()],
        ..L2Options::default()
    })
    .await;
    let api = cluster.cluster.client();
    Svc::lb("default", "web").create(&api).await;
    let v4 = wait_addresses(&api, "default", "web", 1).await.remove(0);
    let owner = cluster.owner_of(&v4).await;
    for node in cluster.hosts.keys() {
        assert_eq!(
            cluster.log_count(node, "answering plain ARP and NDP requests in the kernel"),
            1,
            "{node}'s program attached:\n{}",
            cluster.logs()
        );
    }
    let owner_mac = eth0_mac(&cluster.hosts[&owner]);
    assert_eq!(
        macs_answering(&cluster.client, &v4),
        BTreeSet::from([owner_mac.clone()]),
        "the owner alone answers"
    );

    // Stopped: its program keeps answering only until its deadline (250 ms), before the
    // successor takes over; from then on only the successor answers.
    cluster.signal(&owner, "STOP");
    let (new_mac, took) = wait_moved(&cluster.client, &v4, &owner_mac, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the address did not move within 10 s:\n{}", cluster.logs()));
    eprintln!("SIGSTOP of {owner}: the client's cache moved after {took:?}");
    for round in 0..5 {
        assert_eq!(
            macs_answering(&cluster.client, &v4),
            BTreeSet::from([new_mac.clone()]),
            "round {round} after the stop"
        );
    }
    let successor = cluster.node_with_mac(&new_mac).unwrap();

    // Killed (the first owner still stopped, so that the third speaker is the only one left):
    // its link closes with its descriptors and the kernel detaches its program.
    cluster.speakers.get_mut(&successor).unwrap().kill();
    let (third_mac, took) = wait_moved(&cluster.client, &v4, &new_mac, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("the address did not move within 10 s:\n{}", cluster.logs()));
    eprintln!("SIGKILL of {successor}: the client's cache moved after {took:?}");
    assert!(third_mac != new_mac && third_mac != owner_mac);
    for round in 0..3 {
        assert_eq!(
            macs_answering(&cluster.client, &v4),
            BTreeSet::from([third_mac.clone()]),
            "round {round} after the kill"
        );
    }
}
