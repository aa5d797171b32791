//! A speaker the others declared down while its link stayed up — a stalled process, a
//! partition beyond its own port — comes back settling: it does not pull its addresses back
//! from the speaker that carried them until its hold-down is over. The others, who also learn
//! that it had declared them down, keep what they own.

use std::time::{Duration, Instant};

use rig::l2::*;

const RETURNING: &str = "rejoined as a new generation, returning";
const SETTLED: &str = "settled: owns addresses";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_owner_declared_down_waits_out_the_hold_down_after_it_resumes() {
    let cluster = L2Lab::start().await;
    let (address, owner) = cluster.one_address_service("web").await;
    let owner_mac = eth0_mac(&cluster.hosts[&owner]);
    // A stalled process (a long pause, a frozen machine) answers nothing: the others suspect
    // it, take its address and declare it down.
    let counts = Counts::take(&cluster, &owner);
    cluster.signal(&owner, "STOP");
    let (_, took) = wait_moved(
        &cluster.client,
        &address,
        &owner_mac,
        Duration::from_secs(10),
    )
    .unwrap_or_else(|| panic!("the address did not move within 10 s:\n{}", cluster.logs()));
    eprintln!("{owner} stopped: moved after {took:?}");
    declared_down_by_the_others(&cluster, &owner).await;
    cluster.signal(&owner, "CONT");
    held_down_then_back(&cluster, &address, &owner, &owner_mac, &counts).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cut_off_from_the_others_gossip_waits_out_the_hold_down_after_the_cut_heals() {
    let cluster = L2Lab::start().await;
    let (address, owner) = cluster.one_address_service("web").await;
    let owner_mac = eth0_mac(&cluster.hosts[&owner]);
    let counts = Counts::take(&cluster, &owner);
    let alone = cluster.log_count(&owner, "No other speaker is alive");
    // Its link, its ARP and NDP stay: only the gossip is cut. Both sides answer meanwhile
    // (a split brain); what matters is what happens when it heals.
    cluster.cut_gossip(&owner);
    declared_down_by_the_others(&cluster, &owner).await;
    let within = Duration::from_secs(15);
    (cluster.wait_log(&owner, "No other speaker is alive", alone, within)).await;
    cluster.heal_gossip(&owner);
    held_down_then_back(&cluster, &address, &owner, &owner_mac, &counts).await;
}

/// Log counts taken before the fault, so that only what it caused counts.
struct Counts {
    returning: usize,
    settled: usize,
    others_returning: Vec<(String, usize)>,
}

impl Counts {
    fn take(cluster: &L2Lab, owner: &str) -> Self {
        Counts {
            returning: cluster.log_count(owner, RETURNING),
            settled: cluster.log_count(owner, SETTLED),
            others_returning: (cluster.speakers.keys())
                .filter(|n| *n != owner)
                .map(|n| (n.clone(), cluster.log_count(n, RETURNING)))
                .collect(),
        }
    }
}

/// Waits until every other speaker logged that `owner`'s speaker is down.
async fn declared_down_by_the_others(cluster: &L2Lab, owner: &str) {
    let down = format!("node={owner}");
    let declared_down = |log: &str| {
        log.lines()
            .any(|l| l.contains("A speaker is down.") && l.contains(&down))
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(cluster.speakers.iter())
        .filter(|(n, _)| *n != owner)
        .all(|(_, s)| declared_down(&s.log_tail(usize::MAX)))
    {
        assert!(
            Instant::now() < deadline,
            "the others never declared {owner} down:\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// After the returning speaker said it returns: the first fresh resolution that names a MAC
/// other than the owner's (within 5 s), which then must hold.
async fn converged_away_from(cluster: &L2Lab, address: &str, owner_mac: &str) -> String {
    let start = Instant::now();
    loop {
        if let Some(mac) = resolve(&cluster.client, address).filter(|m| m != owner_mac) {
            return mac;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{address} still resolves to the returning owner:\n{}",
            cluster.logs()
        );
    }
}

/// The returning `owner` says it returns; until its hold-down is over every fresh resolution
/// of `address` gets one other speaker's MAC (the next in rank's, once converged); the hold-down lasts about its 10 s; then, settled and first
/// in rank, the owner takes its address back. The others did not count a return.
async fn held_down_then_back(
    cluster: &L2Lab,
    address: &str,
    owner: &str,
    owner_mac: &str,
    counts: &Counts,
) {
    let within = Duration::from_secs(10);
    (cluster.wait_log(owner, RETURNING, counts.returning, within)).await;
    let back = Instant::now();
    let interim = converged_away_from(cluster, address, owner_mac).await;
    let mut resolutions = 0_u32;
    loop {
        let now = resolve(&cluster.client, address);
        // Read after the resolution: an answer that came once the hold-down was over counts.
        if cluster.log_count(owner, SETTLED) > counts.settled {
            break;
        }
        assert_eq!(
            now.as_deref(),
            Some(interim.as_str()),
            "{address} {:?} after {owner} came back (resolution {resolutions}):\n{}",
            back.elapsed(),
            cluster.logs()
        );
        resolutions += 1;
        assert!(
            back.elapsed() < Duration::from_secs(30),
            "{owner} never settled"
        );
    }
    let held = back.elapsed();
    eprintln!(
        "{owner} held down for {held:?}; {resolutions} fresh resolutions answered by {interim}"
    );
    assert!(
        held >= Duration::from_secs(8),
        "the hold-down ended after only {held:?}"
    );
    let (mac, took) = wait_moved(&cluster.client, address, &interim, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("{owner} never took its address back:\n{}", cluster.logs()));
    assert_eq!(mac, owner_mac, "the first in rank takes it back");
    eprintln!("back on {owner} {took:?} after it settled");
    for (node, before) in &counts.others_returning {
        assert_eq!(
            cluster.log_count(node, RETURNING),
            *before,
            "{node} was on the larger side, yet counted a return:\n{}",
            cluster.logs()
        );
    }
}
