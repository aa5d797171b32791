//! Benchmark of a node owning 1,000 addresses, and of what the speakers ask of the API server.
//! In the layer-2 lab (`rig::l2::L2Lab`, its API server auditing every request, the speakers
//! running as the shipped ServiceAccount) a pool of 1,000 addresses whose `nodeSelector`
//! matches only node n1 (its eth0 given an address in their subnet), and Services created
//! through the API server that the service-lb controller addresses from it:
//!
//! 1. the floor: n1's speaker owning one address, a steady window: its CPU time
//!    (`/proc/<pid>/stat` utime + stime) and memory (VmRSS, VmHWM);
//! 2. 999 more Services; once the client has seen a gratuitous ARP for each address, a steady
//!    window of `L2_BENCH_WINDOW` seconds (default 300): the same figures;
//! 3. the takeover burst: n1's eth0 goes down (the speaker drops every address) and up again —
//!    the only eligible node, it takes all 1,000 at once — and the client's capture times the
//!    first gratuitous ARP, the first one for the last address and the last one of the burst,
//!    from the link coming up, with the speaker's CPU time over the burst;
//! 4. in each steady window, every request of the speakers' user in the API server's audit log
//!    (the evidence that cannot lie): writes, reads and watches, per node, extrapolated to an
//!    hour. Target (issue 14): no writes for liveness.
//!
//! Needs root (network namespaces) and the rig's tools: run `hack/bench l2_scale`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use rig::capture::{Capture, Frame, What};
use rig::cluster::{AuditedRequest, ClusterOptions};
use rig::l2::{L2Lab, L2Options, SPEAKER_USER};
use rig::measure::{cpu_time, ms, rss_kib};
use rig::service::{Svc, wait_addresses};

const SCALE: u32 = 1000;
/// The pool: 10.20.0.10–10.20.3.241, inside n1's 10.20.0.0/22.
const FIRST: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 10);
const NODE: &str = "n1";
const FLOOR_WINDOW: Duration = Duration::from_secs(60);
const WINDOW: Duration = Duration::from_secs(300);

fn pool_addresses() -> BTreeSet<IpAddr> {
    (0..SCALE)
        .map(|i| IpAddr::V4(Ipv4Addr::from(u32::from(FIRST) + i)))
        .collect()
}

/// Gratuitous ARPs (request form: sender = target; reply form: unasked) for pool addresses,
/// seen after `since`: (address, when).
fn gratuitous(frames: &[Frame], since: Duration) -> Vec<(IpAddr, Duration)> {
    let pool = pool_addresses();
    (frames.iter())
        .filter(|f| f.at >= since)
        .filter_map(|f| match f.what {
            What::ArpRequest { target, sender } if target == sender => Some((target, f.at)),
            What::ArpReply { address } => Some((address, f.at)),
            _ => None,
        })
        .filter(|(a, _)| pool.contains(a))
        .collect()
}

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

/// Frames of one address's burst: `count` rounds (pool default 5) of a request and a reply.
const BURST_FRAMES: usize = 10;

/// When the client saw a burst: its first gratuitous ARP, the first one for the last address
/// to be announced, and the frame that completed the last address's burst.
struct Burst {
    first: Duration,
    every_address: Duration,
    complete: Duration,
    frames: usize,
}

/// Waits until the client has seen, since `since`, a whole burst for every pool address.
async fn wait_burst(capture: &Capture, since: Duration) -> Burst {
    let start = Instant::now();
    loop {
        let seen = gratuitous(&capture.frames(), since);
        let mut per: BTreeMap<IpAddr, Vec<Duration>> = BTreeMap::new();
        for (address, at) in &seen {
            per.entry(*address).or_default().push(*at);
        }
        let whole = per.values().filter(|t| t.len() >= BURST_FRAMES).count();
        if whole == SCALE as usize {
            return Burst {
                first: seen.iter().map(|(_, at)| *at).min().unwrap(),
                every_address: per.values().map(|t| t[0]).max().unwrap(),
                complete: per.values().map(|t| t[BURST_FRAMES - 1]).max().unwrap(),
                frames: seen.len(),
            };
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "{} of {SCALE} addresses announced, {whole} with a whole burst",
            per.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The speakers' requests as the audit log had them at one moment.
fn speaker_requests(lab: &L2Lab) -> Vec<AuditedRequest> {
    let mut all = lab.cluster.audited_requests().unwrap();
    all.retain(|r| r.user.username == SPEAKER_USER);
    all
}

/// One steady window: CPU and memory of n1's speaker, the speakers' requests started in it.
struct Steady {
    cpu: Duration,
    rss: (u64, u64),
    requests: Vec<AuditedRequest>,
    announcements: usize,
}

async fn steady(lab: &L2Lab, capture: &Capture, window: Duration) -> Steady {
    let pid = lab.speakers[NODE].pid();
    let before = speaker_requests(lab).len();
    let (cpu0, since) = (cpu_time(pid), now());
    tokio::time::sleep(window).await;
    let cpu = cpu_time(pid) - cpu0;
    let rss = rss_kib(pid);
    let announcements = gratuitous(&capture.frames(), since).len();
    Steady {
        cpu,
        rss,
        requests: speaker_requests(lab).split_off(before),
        announcements,
    }
}

fn cpu_row(what: &str, s: &Steady, window: Duration) {
    println!(
        "| {what} | {} s | {:.0} ms | {:.2} % | {} | {} | {} |",
        window.as_secs(),
        s.cpu.as_secs_f64() * 1000.0,
        100.0 * s.cpu.as_secs_f64() / window.as_secs_f64(),
        s.rss.0 / 1024,
        s.rss.1 / 1024,
        s.announcements
    );
}

/// Writes, reads (get, list) and watches of the speakers, per node and extrapolated to an hour.
fn api_row(what: &str, s: &Steady, window: Duration, nodes: usize) {
    const WRITES: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
    let mut kinds: BTreeMap<&str, BTreeMap<String, usize>> = BTreeMap::new();
    for r in &s.requests {
        let kind = match r.verb.as_str() {
            v if WRITES.contains(&v) => "writes",
            "watch" => "watches",
            _ => "reads",
        };
        let resource =
            (r.object_ref.as_ref()).map_or_else(|| "?".to_owned(), |o| o.resource.clone());
        *(kinds.entry(kind).or_default())
            .entry(format!("{} {resource}", r.verb))
            .or_default() += 1;
    }
    let per_hour = |kind: &str| {
        let count: usize = kinds.get(kind).map_or(0, |k| k.values().sum());
        let hourly = count as f64 / nodes as f64 * 3600.0 / window.as_secs_f64();
        format!("{count} ({hourly:.1})")
    };
    let detail: Vec<String> = (kinds.values())
        .flat_map(|k| k.iter().map(|(what, n)| format!("{what} ×{n}")))
        .collect();
    println!(
        "| {what} | {} s | {} | {} | {} | {} |",
        window.as_secs(),
        per_hour("writes"),
        per_hour("reads"),
        per_hour("watches"),
        if detail.is_empty() {
            "—".to_owned()
        } else {
            detail.join(", ")
        }
    );
}

async fn create_services(lab: &L2Lab, range: std::ops::Range<u32>) {
    let api = lab.cluster.client();
    futures::stream::iter(range)
        .for_each_concurrent(16, |i| {
            let api = api.clone();
            async move {
                (Svc::lb("default", &format!("s{i:04}")))
                    .annotate("baremetal-ccm.io/pool", "scale")
                    .without_node_ports()
                    .create(&api)
                    .await;
            }
        })
        .await;
}

/// n1 alone eligible for the `scale` pool, with an address in its subnet.
async fn scale_pool(lab: &L2Lab) {
    let api = lab.cluster.client();
    lab.hosts[NODE]
        .run(["ip", "addr", "add", "10.20.3.251/22", "dev", "eth0"])
        .unwrap();
    let labels = serde_json::json!({"metadata": {"labels": {"l2-scale": "yes"}}});
    (Api::<Node>::all(api.clone()))
        .patch(NODE, &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .unwrap();
    rig::pool::create_pool(
        &api,
        "scale",
        serde_json::json!({
            "addresses": ["10.20.0.10-10.20.3.241"],
            "autoAssign": false,
            "announce": {"mode": "l2", "l2": {"nodeSelector": {"matchLabels": {"l2-scale": "yes"}}}}
        }),
    )
    .await;
}

/// n1's eth0 down until its speaker has dropped every address, then up: the takeover burst.
/// Prints when the client saw its first gratuitous ARP, the first for the last address, and
/// the last, with the speaker's CPU time from the link coming up to the last one.
async fn takeover(lab: &L2Lab, capture: &Capture) {
    let host = &lab.hosts[NODE];
    let speaker = &lab.speakers[NODE];
    let dropped = |log: &str| log.matches("no longer owning the address").count();
    let before = dropped(&speaker.log_tail(usize::MAX));
    host.run(["ip", "link", "set", "eth0", "down"]).unwrap();
    let start = Instant::now();
    while dropped(&speaker.log_tail(usize::MAX)) < before + SCALE as usize {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "n1 kept its addresses"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu0 = cpu_time(speaker.pid());
    let up = now();
    host.run(["ip", "link", "set", "eth0", "up"]).unwrap();
    let burst = wait_burst(capture, up).await;
    let cpu = cpu_time(speaker.pid()) - cpu0;
    let cpu_window = now() - up;
    let (first, all, last) = (
        burst.first - up,
        burst.every_address - up,
        burst.complete - up,
    );
    let (rss, hwm) = rss_kib(speaker.pid());
    println!("\ntakeover burst of {SCALE} addresses (ms from `ip link set eth0 up` on {NODE})\n");
    println!(
        "| first gratuitous ARP | every address announced once | every burst complete | frames | speaker CPU from link up to the end | VmRSS / VmHWM after (MiB) |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {} | {} | {} | {} | {:.0} ms ({:.0} % of a core) | {} / {} |",
        ms(first),
        ms(all),
        ms(last),
        burst.frames,
        cpu.as_secs_f64() * 1000.0,
        100.0 * cpu.as_secs_f64() / cpu_window.as_secs_f64(),
        rss / 1024,
        hwm / 1024
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let window = (std::env::var("L2_BENCH_WINDOW").ok())
        .and_then(|t| t.parse().ok())
        .map_or(WINDOW, Duration::from_secs);
    let floor_window = FLOOR_WINDOW.min(window);
    let options = L2Options {
        cluster: ClusterOptions {
            audit_requests: true,
            ..ClusterOptions::default()
        },
        shipped_speaker_account: true,
        ..L2Options::default()
    };
    let lab = L2Lab::start_with(options).await;
    let nodes = lab.speakers.len();
    scale_pool(&lab).await;
    let capture = Capture::start(&lab.client, "eth0");
    create_services(&lab, 0..1).await;
    wait_addresses(&lab.cluster.client(), "default", "s0000", 1).await;
    lab.wait_settled().await;
    let floor = steady(&lab, &capture, floor_window).await;
    let since = now();
    create_services(&lab, 1..SCALE).await;
    let announced = wait_burst(&capture, Duration::ZERO).await.every_address - since;
    println!(
        "\n{} more Services created through the API server, addressed by the controller and each \
         announced by {NODE} within {:.1} s",
        SCALE - 1,
        announced.as_secs_f64()
    );
    let full = steady(&lab, &capture, window).await;
    println!("\nspeaker on {NODE}: CPU (utime + stime) and memory in steady state");
    println!("(pool defaults: a refresh round per address every 60 s ± 10 %)\n");
    println!(
        "| addresses owned | window | CPU | of a core | VmRSS (MiB) | VmHWM (MiB) | gratuitous ARPs in the window |"
    );
    println!("|---|---|---|---|---|---|---|");
    cpu_row("1 (floor)", &floor, floor_window);
    cpu_row(&SCALE.to_string(), &full, window);
    takeover(&lab, &capture).await;
    println!(
        "\nthe speakers' requests to the API server (audit log, user {SPEAKER_USER}, {nodes} speakers)"
    );
    println!(
        "(counted in the window; in parentheses per node per hour, extrapolated from the window)\n"
    );
    println!("| n1 owns | window | writes | reads (get, list) | watches started | which |");
    println!("|---|---|---|---|---|---|");
    api_row("1 address", &floor, floor_window, nodes);
    api_row(&format!("{SCALE} addresses"), &full, window, nodes);
}
