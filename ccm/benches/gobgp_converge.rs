//! Benchmark of the GoBGP adapter against a real gobgpd from the test rig. Prints a table:
//!
//! - 10,000 paths into a fresh gobgpd by `Daemon::converge` (read, plan, `StartBgp`, the
//!   import policy and, in two variants, an export rule holding every prefix, contiguous or
//!   never adjacent; `AddPathStream`), beside a floor measured in the same run by a minimal
//!   client: `StartBgp`, then the same 10,000 paths built and sent through `AddPathStream`
//!   (the fastest of 1, 500 and 1,000 paths per message);
//! - a second converge of the same state (reads 10,000 paths back, writes nothing);
//! - one path added and one removed with 10,000 held.
//!
//! Each figure is the median of several runs, each on a new gobgpd. Needs the rig's tools:
//! `eval "$(hack/tools)"` first, or run `hack/bench gobgp_converge`.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fails loudly"
)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use baremetal_ccm::gobgp::Daemon;
use baremetal_ccm_core::announce::desired::{DesiredDaemon, DesiredPath, ExportRule, Global};
use futures::StreamExt as _;
use gobgp_api_proto::api::{self, attribute::Attr, family, nlri};
use ipnet::{IpNet, Ipv4Net};
use rig::gobgpd::Gobgpd;
use rig::netns::Lab;

const PATHS: u32 = 10_000;
const RUNS: usize = 9;

fn prefix(i: u32) -> Ipv4Net {
    let base = u32::from(Ipv4Addr::new(10, 0, 0, 0));
    Ipv4Net::new(Ipv4Addr::from(base + i), 32).unwrap()
}

fn global() -> Global {
    Global {
        asn: 64512,
        router_id: Ipv4Addr::new(192, 0, 2, 1),
        listen_port: -1,
    }
}

/// `count` paths on every `stride`-th address (stride 2: no two are adjacent, so the export
/// rule's set cannot be aggregated), with or without an export rule holding them all.
fn desired(count: u32, with_rule: bool, stride: u32) -> DesiredDaemon {
    let paths: BTreeSet<DesiredPath> = (0..count)
        .map(|i| DesiredPath {
            prefix: IpNet::V4(prefix(i * stride)),
            next_hop: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2 + (i % 3) as u8)),
            path_id: 0,
        })
        .collect();
    DesiredDaemon {
        global: global(),
        peers: Default::default(),
        export: with_rule
            .then(|| ExportRule {
                name: "pool".into(),
                prefixes: paths.iter().map(|p| p.prefix).collect(),
                peers: None,
                communities: vec![65000 << 16 | 100],
                large_communities: Vec::new(),
                local_preference: None,
            })
            .into_iter()
            .collect(),
        paths,
    }
}

/// The path a minimal client sends: the same attributes as the adapter's.
fn minimal_path(i: u32) -> api::Path {
    let p = prefix(i);
    let nlri = api::Nlri {
        nlri: Some(nlri::Nlri::Prefix(api::IpAddressPrefix {
            prefix_len: 32,
            prefix: p.addr().to_string(),
        })),
    };
    let attrs = [
        Attr::Origin(api::OriginAttribute { origin: 0 }),
        Attr::NextHop(api::NextHopAttribute {
            next_hop: Ipv4Addr::new(192, 0, 2, 2 + (i % 3) as u8).to_string(),
        }),
    ];
    api::Path {
        nlri: Some(nlri),
        pattrs: attrs
            .into_iter()
            .map(|a| api::Attribute { attr: Some(a) })
            .collect(),
        family: Some(api::Family {
            afi: family::Afi::Ip as i32,
            safi: family::Safi::Unicast as i32,
        }),
        ..api::Path::default()
    }
}

/// The minimal client: `StartBgp`, then the paths built and streamed, `per_message` a message.
async fn floor(gobgpd: &Gobgpd, per_message: usize) -> Duration {
    let mut client = gobgpd.client().await.unwrap();
    let started = Instant::now();
    let g = global();
    client
        .start_bgp(api::StartBgpRequest {
            global: Some(api::Global {
                asn: g.asn,
                router_id: g.router_id.to_string(),
                listen_port: g.listen_port,
                ..api::Global::default()
            }),
        })
        .await
        .unwrap();
    let batches: Vec<Vec<u32>> = (0..PATHS)
        .collect::<Vec<_>>()
        .chunks(per_message)
        .map(<[u32]>::to_vec)
        .collect();
    let messages = futures::stream::iter(batches).map(|batch| api::AddPathStreamRequest {
        table_type: api::TableType::Global as i32,
        vrf_id: String::new(),
        paths: batch.into_iter().map(minimal_path).collect(),
    });
    client.add_path_stream(messages).await.unwrap();
    started.elapsed()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let mut lab = Lab::new().unwrap();
    let host = lab.host("bench").unwrap();
    let plain = Scenario::new(desired(PATHS, false, 1));
    let pooled = Scenario::new(desired(PATHS, true, 1));
    let scattered = Scenario::new(desired(PATHS, true, 2));
    let batches = [1, 500, 1000];
    let mut floors: Vec<Vec<Duration>> = vec![Vec::new(); batches.len()];
    let (mut plain_runs, mut pooled_runs, mut scattered_runs) =
        (Runs::default(), Runs::default(), Runs::default());
    // Interleaved, so that load from elsewhere on the machine hits floors and converges alike.
    for _ in 0..RUNS {
        for (i, per_message) in batches.iter().enumerate() {
            let gobgpd = Gobgpd::start(&host)
                .await
                .expect("gobgpd (run `eval \"$(hack/tools)\"` first)");
            floors[i].push(floor(&gobgpd, *per_message).await);
        }
        plain.run(&host, &mut plain_runs).await;
        pooled.run(&host, &mut pooled_runs).await;
        scattered.run(&host, &mut scattered_runs).await;
    }
    let floors: Vec<(usize, Duration)> = batches
        .iter()
        .copied()
        .zip(floors.into_iter().map(median))
        .collect();
    let (best_batch, floor_time) = *floors.iter().min_by_key(|(_, d)| *d).unwrap();

    println!("| measure | median of {RUNS} (ms) |");
    println!("|---|---:|");
    for (per_message, time) in &floors {
        println!(
            "| floor: StartBgp + {PATHS} paths built and streamed, {per_message} per message | {} |",
            ms(*time)
        );
    }
    for (what, runs) in [
        ("no export rule", plain_runs),
        ("one export rule holding every prefix", pooled_runs),
        ("one export rule, prefixes never adjacent", scattered_runs),
    ] {
        let cold = median(runs.cold);
        println!(
            "| converge {PATHS} paths into a fresh gobgpd, {what} | {} |",
            ms(cold)
        );
        println!(
            "| … ÷ best floor ({best_batch} per message) | {:.2}× |",
            cold.as_secs_f64() / floor_time.as_secs_f64()
        );
        println!(
            "| … second converge, nothing to do ({PATHS} paths read back) | {} |",
            ms(median(runs.again))
        );
        println!(
            "| … one path added, one removed, {PATHS} held | {} |",
            ms(median(runs.one))
        );
    }
}

#[derive(Default)]
struct Runs {
    cold: Vec<Duration>,
    again: Vec<Duration>,
    one: Vec<Duration>,
}

/// A desired state and the same state with one path replaced by another.
struct Scenario {
    want: DesiredDaemon,
    moved: DesiredDaemon,
}

impl Scenario {
    fn new(want: DesiredDaemon) -> Self {
        let mut moved = want.clone();
        let first = moved.paths.iter().next().unwrap().clone();
        moved.paths.remove(&first);
        let extra = DesiredPath {
            prefix: IpNet::V4(prefix(4 * PATHS)),
            ..first
        };
        if let Some(rule) = moved.export.first_mut() {
            rule.prefixes.insert(extra.prefix);
        }
        moved.paths.insert(extra);
        Scenario { want, moved }
    }

    /// On a new gobgpd: converge from empty, converge again, converge the one-path change.
    async fn run(&self, host: &rig::netns::Host, runs: &mut Runs) {
        let gobgpd = Gobgpd::start(host).await.unwrap();
        let mut daemon = Daemon::connect(&gobgpd.endpoint()).await.unwrap();
        let started = Instant::now();
        let report = daemon.converge(&self.want).await.unwrap();
        runs.cold.push(started.elapsed());
        assert_eq!(report.paths_added, PATHS as usize);
        let started = Instant::now();
        assert!(!daemon.converge(&self.want).await.unwrap().changed());
        runs.again.push(started.elapsed());
        let started = Instant::now();
        let report = daemon.converge(&self.moved).await.unwrap();
        runs.one.push(started.elapsed());
        assert_eq!((report.paths_added, report.paths_deleted), (1, 1));
    }
}
