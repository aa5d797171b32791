//! Benchmark of layer-2 failover, from a client's point of view: three release-built speakers
//! in their nodes' network namespaces on one bridge (`rig::l2::L2Lab`), a client namespace
//! whose kernel resolves the Service's address, and behind the address on every node a TCP
//! server (the address routed locally there, the kernel told not to answer ARP for it, as
//! kube-proxy's rules would take the packets). For each way of losing the owner — SIGKILL of
//! its speaker, its eth0 going down, SIGTERM — and with the speakers' API server reachable or
//! cut off, it records (a) when the client's ARP cache first holds another node's MAC (moved
//! by the new owner's gratuitous ARP) and (b) the client's first successful TCP connect, both
//! from the moment of the fault. A speaker killed or stopped leaves its node forwarding, so
//! there (b) shows that connections go on (through the old MAC until the cache moves); with
//! eth0 down the node is gone and (b) waits for the new owner. Targets (issue 14): crash p50 ≤ 1 s, max ≤ 2 s; planned
//! handover ≤ 0.3 s.
//!
//! Needs root (network namespaces) and the rig's tools: run `hack/bench l2`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rig::l2::{L2Lab, eth0_mac, neighbour, wait_moved};
use rig::measure::{ms, percentile};
use rig::netns::Host;
use rig::process::Process;
use rig::service::{Svc, wait_addresses};

/// Trials of each fault (half with the API server cut off); `L2_BENCH_TRIALS` overrides.
const TRIALS: usize = 20;
const PORT: &str = "8080";

#[derive(Clone, Copy, Debug)]
enum Fault {
    Kill,
    LinkDown,
    Term,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "SIGKILL",
            Fault::LinkDown => "eth0 down",
            Fault::Term => "SIGTERM (handover)",
        }
    }
}

#[derive(Default)]
struct Samples {
    cache: Vec<Duration>,
    connect: Vec<Duration>,
    failed: usize,
}

/// Every node accepts TCP on the address (routed to itself, no ARP answer from its kernel).
fn serve(lab: &L2Lab, address: &str) -> Vec<Process> {
    let mut servers = Vec::new();
    for (name, host) in &lab.hosts {
        host.run(["sysctl", "-qw", "net.ipv4.conf.eth0.arp_ignore=1"])
            .unwrap();
        host.run([
            "ip",
            "route",
            "add",
            "local",
            &format!("{address}/32"),
            "dev",
            "lo",
        ])
        .unwrap();
        let mut cmd = host.command("socat");
        cmd.args([
            &format!("TCP-LISTEN:{PORT},fork,reuseaddr"),
            "EXEC:/bin/true",
        ]);
        let log = std::env::temp_dir().join(format!("bmccm-l2bench-server-{name}.log"));
        servers.push(Process::spawn(&format!("server-{name}"), cmd, &log).unwrap());
    }
    servers
}

/// Tries a TCP connect from the client every 10 ms (50 ms timeout each) until one succeeds;
/// records when, relative to `since`.
fn first_connect(
    client: Host,
    address: String,
    since: Instant,
    done: Arc<AtomicBool>,
) -> Arc<Mutex<Option<Duration>>> {
    let found = Arc::new(Mutex::new(None));
    let out = found.clone();
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            let ok = client
                .command("socat")
                .args([
                    "-u",
                    "/dev/null",
                    &format!("TCP:{address}:{PORT},connect-timeout=0.05"),
                ])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                *out.lock().unwrap() = Some(since.elapsed());
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    found
}

/// Waits until every speaker runs and has settled (hold-down over), the client resolves the
/// address and connects: the start of a trial.
async fn steady(lab: &mut L2Lab, address: &str) -> String {
    lab.restore_api();
    for (name, host) in lab.hosts.clone() {
        let _ = host.run(["ip", "link", "set", "eth0", "up"]);
        if !lab.speakers.get_mut(&name).unwrap().is_running() {
            lab.restart(&name);
        }
    }
    // The restarted speaker settles for 10 s; wait it out so that every trial starts alike.
    lab.wait_settled().await;
    lab.owner_of(address).await
}

async fn trial(lab: &mut L2Lab, address: &str, fault: Fault, cut: bool, samples: &mut Samples) {
    let owner = steady(lab, address).await;
    let old = eth0_mac(&lab.hosts[&owner]);
    // Warm the client's cache with the owner's MAC, as a client talking to it would have.
    let _ = lab
        .client
        .command("ping")
        .args(["-c", "1", "-W", "1", address])
        .output();
    assert_eq!(
        neighbour(&lab.client, address).as_deref(),
        Some(old.as_str())
    );
    if cut {
        lab.cut_api();
    }
    let done = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    match fault {
        Fault::Kill => lab.speakers.get_mut(&owner).unwrap().kill(),
        Fault::LinkDown => lab.hosts[&owner]
            .run(["ip", "link", "set", "eth0", "down"])
            .unwrap(),
        Fault::Term => lab.sigterm(&owner),
    }
    let connect = first_connect(lab.client.clone(), address.to_owned(), start, done.clone());
    match wait_moved(&lab.client, address, &old, Duration::from_secs(10)) {
        // From the fault, not from the poll's own start.
        Some(_) => samples.cache.push(start.elapsed()),
        None => samples.failed += 1,
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while connect.lock().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Relaxed);
    match *connect.lock().unwrap() {
        Some(took) => samples.connect.push(took),
        None => samples.failed += 1,
    }
}

fn row(fault: Fault, api: &str, samples: &mut Samples) {
    samples.cache.sort();
    samples.connect.sort();
    let stats = |v: &[Duration]| {
        if v.is_empty() {
            "—".to_owned()
        } else {
            format!(
                "{} / {} / {}",
                ms(percentile(v, 50.0)),
                ms(percentile(v, 95.0)),
                ms(v[v.len() - 1])
            )
        }
    };
    println!(
        "| {} | {api} | {} | {} | {} | {} |",
        fault.name(),
        samples.cache.len(),
        stats(&samples.cache),
        stats(&samples.connect),
        samples.failed
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut lab = L2Lab::start().await;
    let api = lab.cluster.client();
    Svc::lb("default", "web").create(&api).await;
    let address = wait_addresses(&api, "default", "web", 1).await.remove(0);
    let _servers = serve(&lab, &address);
    println!("\nlayer-2 failover at the client (ms from the fault: p50 / p95 / max)");
    println!(
        "(after SIGKILL or SIGTERM of a speaker its node still forwards: the first TCP connect shows that"
    );
    println!(
        "connections never stop; with eth0 down the node is gone and it waits for the new owner)\n"
    );
    println!("| fault | API server | trials | ARP cache moved | first TCP connect | failed |");
    println!("|---|---|---|---|---|---|");
    let trials = (std::env::var("L2_BENCH_TRIALS").ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(TRIALS);
    for fault in [Fault::Kill, Fault::LinkDown, Fault::Term] {
        for cut in [false, true] {
            let mut samples = Samples::default();
            for _ in 0..trials.div_ceil(2) {
                trial(&mut lab, &address, fault, cut, &mut samples).await;
            }
            row(fault, if cut { "cut off" } else { "up" }, &mut samples);
        }
    }
}
