//! Benchmark of how fast a speaker answers, beside the kernel's own answer: from the client
//! namespace of the layer-2 lab (`rig::l2::L2Lab`), ARP requests (`arping`) and Neighbor
//! Solicitations (`ndisc6`) for a Service address that a speaker answers from its packet
//! socket, and for the address that the same node's kernel holds on its eth0 — same bridge,
//! same node, same path — interleaved one by one in the same run so that the machine's load
//! hits both alike. Each request and its reply are timed by tcpdump on the client's eth0
//! (`rig::capture`), with the kernel's timestamps: arping's own figure is taken where libpcap
//! hands it the frame, ndisc6 prints none, and timing the tools' processes would add their
//! start-up (milliseconds) to replies of tens of microseconds. A second pass, in a fresh lab,
//! runs the speakers with `--l2-reply-realtime` (their reply threads at real-time priority,
//! as `speaker.l2.realtimeReplies` ships them), which also separates the wait for a CPU from
//! the rest; a third runs them with `--l2-reply-in-kernel` (the plain requests answered by the
//! speaker's eBPF program on tc ingress). Target (issue 14): the speaker within 1.5 × the
//! kernel.
//!
//! Needs root (network namespaces) and the rig's tools: run `hack/bench l2_reply`.
//! `L2_BENCH_SAMPLES` (default 500) sets the requests per address.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use rig::capture::{Capture, request_reply_times, requests_for};
use rig::l2::{L2_NODES, L2Lab, L2Options};
use rig::measure::percentile;
use rig::service::{Svc, wait_addresses};

const SAMPLES: usize = 500;

/// The two addresses asked in one family: the speaker's and the kernel's, on the same node.
struct Pair {
    protocol: &'static str,
    node: String,
    speaker: IpAddr,
    kernel: IpAddr,
}

impl Pair {
    /// The shell command that asks once for `address`.
    fn ask(&self, address: IpAddr) -> String {
        match address {
            IpAddr::V4(_) => format!("arping -q -c 1 -C 1 -w 1 -i eth0 {address} >/dev/null"),
            IpAddr::V6(_) => format!("ndisc6 -q -1 -r 1 -w 1000 {address} eth0 >/dev/null"),
        }
    }
}

/// The node the client resolves `address` to, and that node's own address of the same family.
async fn pair(lab: &L2Lab, protocol: &'static str, address: &str) -> Pair {
    let node = lab.owner_of(address).await;
    let speaker: IpAddr = address.parse().unwrap();
    let (_, v4, v6) = (L2_NODES.iter())
        .find(|(name, _, _)| *name == node)
        .unwrap();
    let own = if speaker.is_ipv4() { v4 } else { v6 };
    let kernel = own.split('/').next().unwrap().parse().unwrap();
    Pair {
        protocol,
        node,
        speaker,
        kernel,
    }
}

/// One script: for each sample, each family, the speaker's and the kernel's address one after
/// the other, the first of the two alternating.
fn script(pairs: &[Pair], samples: usize) -> String {
    let mut script = String::new();
    for i in 0..samples {
        for pair in pairs {
            let (first, second) = if i % 2 == 0 {
                (pair.speaker, pair.kernel)
            } else {
                (pair.kernel, pair.speaker)
            };
            writeln!(script, "{}; {}", pair.ask(first), pair.ask(second)).unwrap();
        }
    }
    script
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

fn row(protocol: &str, who: &str, address: IpAddr, asked: usize, mut times: Vec<Duration>) {
    times.sort();
    if times.is_empty() {
        println!("| {protocol} | {who} | {address} | {asked} | 0 | — | — | — | — |");
        return;
    }
    println!(
        "| {protocol} | {who} | {address} | {asked} | {} | {} | {} | {} | {} |",
        times.len(),
        us(percentile(&times, 50.0)),
        us(percentile(&times, 90.0)),
        us(percentile(&times, 99.0)),
        us(times[times.len() - 1])
    );
}

fn ratio(speaker: &[Duration], kernel: &[Duration], p: f64) -> String {
    let mut s = speaker.to_vec();
    let mut k = kernel.to_vec();
    s.sort();
    k.sort();
    if s.is_empty() || k.is_empty() {
        return "—".to_owned();
    }
    format!(
        "{:.2}",
        percentile(&s, p).as_secs_f64() / percentile(&k, p).as_secs_f64()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let samples = (std::env::var("L2_BENCH_SAMPLES").ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(SAMPLES);
    println!(
        "\nlayer-2 reply latency at the client (µs from request to reply, both stamped by the client's kernel)"
    );
    println!(
        "(each address asked {samples} times, interleaved: speaker, kernel, kernel, speaker, …; \
         asked = requests in the capture)\n"
    );
    println!("| protocol | answered by | address | asked | answered | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let plain = pass(L2Options::default(), samples, "").await;
    // The same in a fresh lab with the reply threads at real-time priority: what is left of
    // the difference is not the wait for a CPU.
    let realtime = L2Options {
        speaker_args: vec!["--l2-reply-realtime".to_owned()],
        ..L2Options::default()
    };
    let realtime = pass(realtime, samples, ", --l2-reply-realtime").await;
    // And with the plain requests answered by the speaker's eBPF program on tc ingress.
    let in_kernel = L2Options {
        speaker_args: vec!["--l2-reply-in-kernel".to_owned()],
        ..L2Options::default()
    };
    let in_kernel = pass(in_kernel, samples, ", --l2-reply-in-kernel").await;
    println!("\nspeaker ÷ kernel: {}", plain.join("; "));
    println!(
        "speaker with --l2-reply-realtime ÷ kernel: {}",
        realtime.join("; ")
    );
    println!(
        "speaker with --l2-reply-in-kernel ÷ kernel: {}",
        in_kernel.join("; ")
    );
}

/// One lab with `options`, its two addresses measured; the ratios.
async fn pass(options: L2Options, samples: usize, how: &str) -> Vec<String> {
    let lab = L2Lab::start_with(options).await;
    let api = lab.cluster.client();
    Svc::lb("default", "reply4").create(&api).await;
    (Svc::lb("default", "reply6").families("SingleStack", &["IPv6"]))
        .create(&api)
        .await;
    let v4 = wait_addresses(&api, "default", "reply4", 1).await.remove(0);
    let v6 = wait_addresses(&api, "default", "reply6", 1).await.remove(0);
    lab.wait_settled().await;
    let pairs = [pair(&lab, "ARP", &v4).await, pair(&lab, "NDP", &v6).await];
    measure(&lab, &pairs, samples, how)
}

/// One interleaved run: prints a row per address and returns the ratios.
fn measure(lab: &L2Lab, pairs: &[Pair], samples: usize, how: &str) -> Vec<String> {
    let capture = Capture::start(&lab.client, "eth0");
    warm_up(lab, &capture, &pairs[0]);
    let since = capture.frames().len();
    // An unanswered request makes the script's status non-zero; the table counts those.
    let _status = (lab.client.command("sh"))
        .args(["-c", &script(pairs, samples)])
        .status()
        .unwrap();
    let frames = capture.stop().split_off(since);
    let mut ratios = Vec::new();
    for pair in pairs {
        let speaker = request_reply_times(&frames, pair.speaker);
        let kernel = request_reply_times(&frames, pair.kernel);
        let asked = |a| requests_for(&frames, a);
        let who = format!("speaker ({}{how})", pair.node);
        row(
            pair.protocol,
            &who,
            pair.speaker,
            asked(pair.speaker),
            speaker.clone(),
        );
        let who = format!("kernel ({})", pair.node);
        row(
            pair.protocol,
            &who,
            pair.kernel,
            asked(pair.kernel),
            kernel.clone(),
        );
        ratios.push(format!(
            "{}: p50 {} ×, p99 {} ×",
            pair.protocol,
            ratio(&speaker, &kernel, 50.0),
            ratio(&speaker, &kernel, 99.0)
        ));
    }
    ratios
}

/// Asks the kernel's address until the capture holds a request: it is recording.
fn warm_up(lab: &L2Lab, capture: &Capture, pair: &Pair) {
    let start = std::time::Instant::now();
    while requests_for(&capture.frames(), pair.kernel) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the capture sees nothing"
        );
        let _status = (lab.client.command("sh"))
            .args(["-c", &pair.ask(pair.kernel)])
            .status()
            .unwrap();
    }
}
