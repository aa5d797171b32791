//! The membership over real UDP on loopback: every speaker on 127.0.0.1 at a port of its own.
//! Timings are wall-clock on a shared machine: bounds are generous, measured figures printed.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::metrics::Reason;
use super::wire::{self, Kind, Probe};
use super::*;

const KEY: [u8; 32] = [0x5a; 32];

/// How a test speaker starts.
struct Setup {
    name: String,
    key: Vec<u8>,
    addr: SocketAddr,
    generation: Option<u64>,
    state: MemberState,
    seeds: Vec<SocketAddr>,
    /// Keys that change during the test (instead of `key`).
    keys: Option<watch::Receiver<GossipKeys>>,
}

impl Setup {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            key: KEY.to_vec(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            generation: None,
            state: state_of(name, 1),
            seeds: Vec::new(),
            keys: None,
        }
    }

    fn seeds(mut self, seeds: &[&Node]) -> Self {
        self.seeds = seeds.iter().map(|n| n.addr()).collect();
        self
    }
}

/// A running speaker and the caller's side of its inputs.
struct Node {
    membership: Membership,
    state: watch::Sender<MemberState>,
    seeds: watch::Sender<Vec<SocketAddr>>,
    watched: watch::Sender<BTreeSet<String>>,
    registry: Registry,
    metrics: Metrics,
}

impl Node {
    async fn start(setup: Setup) -> Result<Self, MembershipError> {
        let mut config = match setup.keys {
            Some(keys) => Config::following(setup.name, setup.addr, keys),
            None => Config::new(setup.name, setup.addr, GossipKey::new(&setup.key)?),
        };
        config.generation = setup.generation;
        let (state, state_rx) = watch::channel(setup.state);
        let (seeds, seeds_rx) = watch::channel(setup.seeds);
        let (watched, watched_rx) = watch::channel(BTreeSet::new());
        let mut registry = Registry::with_prefix("baremetal_ccm");
        let metrics = Metrics::new(&mut registry);
        let inputs = Inputs {
            state: state_rx,
            seeds: seeds_rx,
            watched: watched_rx,
        };
        let membership = Membership::start(config, inputs, metrics.clone()).await?;
        Ok(Self {
            membership,
            state,
            seeds,
            watched,
            registry,
            metrics,
        })
    }

    async fn named(name: &str, seeds: &[&Node]) -> Self {
        Self::start(Setup::new(name).seeds(seeds)).await.unwrap()
    }

    fn addr(&self) -> SocketAddr {
        self.membership.local_addr()
    }

    fn view(&self) -> watch::Receiver<View> {
        self.membership.view()
    }

    fn rejected(&self, reason: &str) -> u64 {
        let labels = Reason {
            reason: reason.to_owned(),
        };
        self.metrics.rejected.get_or_create(&labels).get()
    }

    fn metrics_text(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).unwrap();
        text
    }
}

/// A node's state in these tests: ready, with one interface whose MAC and address say whose
/// it is and which `variant`.
fn state_of(name: &str, variant: u8) -> MemberState {
    let id = name.bytes().last().unwrap_or(0);
    MemberState {
        ready: true,
        settling: false,
        leaving: false,
        interfaces: vec![baremetal_ccm_core::l2::election::Interface {
            name: "eth0".to_owned(),
            up: true,
            mac: [2, 0, 0, 0, id, variant],
            addresses: vec![format!("192.0.2.{id}/24").parse().unwrap()],
        }],
        // What the controller reads off the speakers travels too.
        conflicts: vec![super::state::Conflict {
            address: format!("192.0.2.{}", 100 + variant).parse().unwrap(),
            interface: "eth0".to_owned(),
            mac: [2, 0, 0, 9, id, variant],
        }],
        host_problems: vec!["proxy_arp".to_owned()],
    }
}

/// Waits until `done` holds for the view, at most `within`; how long it took.
async fn until(
    view: watch::Receiver<View>,
    within: Duration,
    what: &str,
    done: impl Fn(&View) -> bool,
) -> Duration {
    let start = Instant::now();
    let mut view = view;
    loop {
        let holds = done(&view.borrow_and_update());
        if holds {
            return start.elapsed();
        }
        let left = within.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, view.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("{what}: the membership stopped"),
            Err(_) => panic!(
                "{what}: not within {within:?}; last view: {:#?}",
                *view.borrow()
            ),
        }
    }
}

/// Polls `done` every 20 ms, at most `within`.
async fn eventually(within: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every node in `names` alive in `view`, with the state it gossips.
fn converged(view: &View, names: &[&str]) -> bool {
    view.members.len() == names.len()
        && (names.iter()).all(|name| {
            (view.members.get(*name)).is_some_and(|p| p.alive && p.state == state_of(name, 1))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_speakers_converge_to_all_alive_with_each_others_states() {
    let first = Node::named("node-0", &[]).await;
    let mut nodes = vec![];
    for i in 1..4 {
        nodes.push(Node::named(&format!("node-{i}"), &[&first]).await);
    }
    // The last learns its seeds later, as a speaker does once its Node informer has listed.
    let late = Node::named("node-4", &[]).await;
    late.seeds.send(vec![nodes[2].addr()]).unwrap();
    nodes.insert(0, first);
    nodes.push(late);
    let names = ["node-0", "node-1", "node-2", "node-3", "node-4"];
    let start = Instant::now();
    for node in &nodes {
        until(node.view(), Duration::from_secs(10), "converged", |v| {
            converged(v, &names)
        })
        .await;
    }
    eprintln!("five speakers converged in {:?}", start.elapsed());
    let text = nodes[4].metrics_text();
    assert!(
        text.contains("baremetal_ccm_l2_members{state=\"down\"} 0"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_owner_is_suspected_by_its_watcher_at_once_then_down_for_everyone() {
    let owner = Node::named("node-a", &[]).await;
    let watcher = Node::named("node-b", &[&owner]).await;
    let others = [
        Node::named("node-c", &[&owner]).await,
        Node::named("node-d", &[&owner]).await,
    ];
    let names = ["node-a", "node-b", "node-c", "node-d"];
    for node in [&watcher, &others[0], &others[1]] {
        until(node.view(), Duration::from_secs(10), "converged", |v| {
            converged(v, &names)
        })
        .await;
    }
    watcher
        .watched
        .send(BTreeSet::from(["node-a".to_owned()]))
        .unwrap();

    // Abruptly: the task is aborted, its socket closed, nobody told.
    let stopped = Instant::now();
    drop(owner);
    until(
        watcher.view(),
        Duration::from_secs(2),
        "suspected by its watcher",
        |v| v.members["node-a"].suspected_by_me,
    )
    .await;
    let suspected = stopped.elapsed();
    eprintln!("the watcher suspected the stopped owner after {suspected:?}");
    assert!(suspected < Duration::from_secs(2));

    for node in [&watcher, &others[0], &others[1]] {
        until(
            node.view(),
            Duration::from_secs(8),
            "down for everyone",
            |v| !v.members["node-a"].alive,
        )
        .await;
    }
    eprintln!(
        "the stopped owner was down for everyone after {:?}",
        stopped.elapsed()
    );

    assert!(watcher.metrics.probe_failures.get() >= 3);
    let text = watcher.metrics_text();
    assert!(
        text.contains("baremetal_ccm_l2_failure_detection_seconds_count 1"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_that_leaves_is_seen_leaving_at_once() {
    let a = Node::named("node-a", &[]).await;
    let b = Node::named("node-b", &[&a]).await;
    let leaver = Node::named("node-c", &[&a]).await;
    let names = ["node-a", "node-b", "node-c"];
    for node in [&a, &b, &leaver] {
        until(node.view(), Duration::from_secs(10), "converged", |v| {
            converged(v, &names)
        })
        .await;
    }
    let left = Instant::now();
    leaver.membership.leave().await.unwrap();
    for node in [&a, &b] {
        until(node.view(), Duration::from_secs(1), "seen leaving", |v| {
            let c = &v.members["node-c"];
            !c.alive || c.state.leaving
        })
        .await;
        until(node.view(), Duration::from_secs(1), "gone", |v| {
            !v.members["node-c"].alive
        })
        .await;
    }
    eprintln!("both saw the leaver gone after {:?}", left.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_with_another_key_is_rejected_counted_and_joins_no_one() {
    let a = Node::named("node-a", &[]).await;
    let mut setup = Setup::new("node-x").seeds(&[&a]);
    setup.key = b"another key, as long as needed".to_vec();
    let stranger = Node::start(setup).await.unwrap();
    eventually(Duration::from_secs(5), "counted as bad_tag", || {
        a.rejected("bad_tag") >= 2
    })
    .await;
    assert!(stranger.rejected("bad_tag") == 0, "a never talks to it");
    let alone = |name: &'static str| move |v: &View| v.members.keys().eq([name]);
    until(a.view(), Duration::ZERO, "alone", alone("node-a")).await;
    until(stranger.view(), Duration::ZERO, "alone", alone("node-x")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_truncated_datagrams_are_rejected_counted_and_harmless() {
    let a = Node::named("node-a", &[]).await;
    let key = GossipKeys::from(GossipKey::new(&KEY).unwrap());
    let raw = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ping = wire::seal(&key, Kind::Probe, &Probe::Ping { nonce: 7 }.encode());
    let datagrams: [Vec<u8>; 7] = [
        vec![],
        vec![1, 2, 3],
        vec![0xab; 100],
        ping[..ping.len() - 1].to_vec(),
        wire::seal(&key, Kind::Swim, b"\xff\xff\xff not SWIM"),
        wire::seal(&key, Kind::Probe, &[0xff; 4]),
        wire::seal(&key, Kind::State, &[0xff; 4]),
    ];
    for datagram in &datagrams {
        raw.send_to(datagram, a.addr()).await.unwrap();
    }
    let counted = || {
        (
            a.rejected("short"),
            a.rejected("bad_tag"),
            a.rejected("malformed"),
        ) == (2, 2, 3)
    };
    eventually(Duration::from_secs(5), "every datagram counted", counted).await;

    // Still answering, and still alone.
    raw.send_to(&ping, a.addr()).await.unwrap();
    let mut buf = [0_u8; 2048];
    let (len, from) = tokio::time::timeout(Duration::from_secs(2), raw.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(from, a.addr());
    let (kind, payload) = wire::open(&key, &buf[..len]).unwrap();
    assert_eq!(kind, Kind::Probe);
    assert_eq!(Probe::decode(payload).unwrap(), Probe::Ack { nonce: 7 });
    assert!(a.view().borrow().members.keys().eq(["node-a"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_speaker_rejoins_and_its_new_state_wins_over_the_old() {
    let a = Node::named("node-a", &[]).await;
    let mut setup = Setup::new("node-b").seeds(&[&a]);
    setup.generation = Some(1);
    let b = Node::start(setup).await.unwrap();
    // Push the old life's version well above where the new one starts.
    for variant in [7, 8, 1] {
        b.state.send(state_of("node-b", variant)).unwrap();
    }
    until(a.view(), Duration::from_secs(10), "converged", |v| {
        converged(v, &["node-a", "node-b"])
    })
    .await;

    let addr = b.addr();
    drop(b);
    let mut setup = Setup::new("node-b").seeds(&[&a]);
    (setup.addr, setup.generation, setup.state) = (addr, Some(2), state_of("node-b", 2));
    let restarting = Instant::now();
    let restarted = restart(setup).await;
    until(a.view(), Duration::from_secs(5), "new state", |v| {
        let b = &v.members["node-b"];
        b.alive && b.addr == addr && b.state == state_of("node-b", 2)
    })
    .await;
    eprintln!(
        "the restarted speaker's new state won {:?} after it started binding",
        restarting.elapsed()
    );
    until(restarted.view(), Duration::from_secs(5), "sees a", |v| {
        v.members
            .get("node-a")
            .is_some_and(|p| p.alive && p.state == state_of("node-a", 1))
    })
    .await;
}

/// Starts at the address a dropped node had: its aborted task may hold the socket a moment.
async fn restart(setup: Setup) -> Node {
    let start = Instant::now();
    let (name, key, addr, generation) = (setup.name, setup.key, setup.addr, setup.generation);
    let (state, seeds) = (setup.state, setup.seeds);
    loop {
        let again = Setup {
            name: name.clone(),
            key: key.clone(),
            addr,
            generation,
            state: state.clone(),
            seeds: seeds.clone(),
            keys: None,
        };
        match Node::start(again).await {
            Ok(node) => return node,
            Err(MembershipError::Bind { .. }) if start.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => panic!("cannot restart {name}: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_going_down_in_one_speakers_state_is_seen_by_another() {
    let a = Node::named("node-a", &[]).await;
    let b = Node::named("node-b", &[&a]).await;
    until(b.view(), Duration::from_secs(10), "converged", |v| {
        converged(v, &["node-a", "node-b"])
    })
    .await;
    let mut down = state_of("node-a", 1);
    down.interfaces[0].up = false;
    a.state.send(down.clone()).unwrap();
    let took = until(b.view(), Duration::from_secs(2), "interface down", |v| {
        v.members["node-a"].state == down
    })
    .await;
    eprintln!("the interface went down in the other's view after {took:?}");
    // Its own view too; published after the datagrams went out, so maybe a moment later.
    until(a.view(), Duration::from_secs(1), "its own view too", |v| {
        v.members["node-a"].state == down
    })
    .await;
}

#[tokio::test]
async fn an_unspecified_address_or_a_bad_period_is_refused_before_binding() {
    let key = GossipKey::new(&KEY).unwrap();
    let inputs = || Inputs {
        state: watch::channel(MemberState::default()).1,
        seeds: watch::channel(Vec::new()).1,
        watched: watch::channel(BTreeSet::new()).1,
    };
    let metrics = || Metrics::new(&mut Registry::default());
    let anywhere = SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT));
    let config = Config::new("n".to_owned(), anywhere, key.clone());
    let error = Membership::start(config, inputs(), metrics())
        .await
        .unwrap_err();
    assert!(matches!(error, MembershipError::UnspecifiedAddress { .. }));
    let mut config = Config::new("n".to_owned(), SocketAddr::from(([127, 0, 0, 1], 0)), key);
    config.probe_rtt = config.probe_period;
    let error = Membership::start(config, inputs(), metrics())
        .await
        .unwrap_err();
    assert!(matches!(error, MembershipError::Config { .. }), "{error}");
}

/// The UDP payloads and destination ports of an IPv4 capture on an Ethernet-framed link
/// (`tcpdump -i lo -w`: the classic pcap format in this machine's byte order).
fn udp_payloads(pcap: &[u8]) -> Vec<(u16, Vec<u8>)> {
    const GLOBAL: usize = 24;
    const RECORD: usize = 16;
    const ETHERNET: usize = 14;
    assert!(pcap.len() >= GLOBAL, "not a pcap file");
    assert_eq!(pcap[..4], 0xa1b2_c3d4_u32.to_ne_bytes(), "pcap magic");
    assert_eq!(pcap[20..24], 1_u32.to_ne_bytes(), "Ethernet link type");
    let mut out = Vec::new();
    let mut at = GLOBAL;
    while at + RECORD <= pcap.len() {
        let field = |o: usize| u32::from_ne_bytes(pcap[at + o..at + o + 4].try_into().unwrap());
        let len = field(8) as usize;
        let Some(frame) = pcap.get(at + RECORD..at + RECORD + len) else {
            break; // the last record, cut short by the writer being stopped
        };
        at += RECORD + len;
        let ip = &frame[ETHERNET..];
        let udp = &ip[usize::from(ip[0] & 0x0f) * 4..];
        let dst = u16::from_be_bytes([udp[2], udp[3]]);
        out.push((dst, udp[8..].to_vec()));
    }
    out
}

/// Someone on the gossip path can record a speaker's datagrams and send them again later:
/// they are authentic (the tag holds), so the key does not stop them. Replayed after the
/// speaker is down, they change nothing: a down identity's messages are ignored (it comes
/// back only as a new generation, which needs its key and a fresh tag over a new identity),
/// an old state is not newer than the one known, and old fast-path answers carry nonces
/// nobody waits for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_speakers_recorded_datagrams_replayed_bring_nothing_back() {
    let a = Node::named("node-a", &[]).await;
    let b = Node::named("node-b", &[&a]).await;
    let c = Node::named("node-c", &[&a]).await;
    let names = ["node-a", "node-b", "node-c"];
    for node in [&a, &b, &c] {
        until(node.view(), Duration::from_secs(10), "converged", |v| {
            converged(v, &names)
        })
        .await;
    }
    // Fast-path probes both ways while node-c is recorded: its answers and its own probes.
    a.watched
        .send(BTreeSet::from(["node-c".to_owned()]))
        .unwrap();
    c.watched
        .send(BTreeSet::from(["node-a".to_owned()]))
        .unwrap();
    let c_addr = c.addr();
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("c.pcap");
    let mut tcpdump = std::process::Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&pcap)
        .arg(format!(
            "udp and src host 127.0.0.1 and src port {}",
            c_addr.port()
        ))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tcpdump (a Debian package hack/tools installs)");
    eventually(
        Duration::from_secs(15),
        "40 datagrams of node-c recorded",
        || {
            std::fs::read(&pcap)
                .is_ok_and(|bytes| bytes.len() > 24 && udp_payloads(&bytes).len() >= 40)
        },
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &tcpdump.id().to_string()])
        .status();
    tcpdump.wait().unwrap();
    let recorded = udp_payloads(&std::fs::read(&pcap).unwrap());
    let kinds: BTreeSet<u8> = recorded.iter().map(|(_, p)| p[0]).collect();
    eprintln!("recorded {} datagrams of kinds {kinds:?}", recorded.len());
    assert!(kinds.contains(&(Kind::Swim as u8)) && kinds.contains(&(Kind::Probe as u8)));

    drop(c);
    for node in [&a, &b] {
        until(node.view(), Duration::from_secs(8), "node-c down", |v| {
            !v.members["node-c"].alive
        })
        .await;
    }
    let before = (a.view().borrow().clone(), b.view().borrow().clone());
    // Sent from node-c's own address (its socket is closed now), three times over.
    let raw = loop {
        match UdpSocket::bind(c_addr).await {
            Ok(socket) => break socket,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    };
    for _ in 0..3 {
        for (port, payload) in &recorded {
            raw.send_to(payload, SocketAddr::from(([127, 0, 0, 1], *port)))
                .await
                .unwrap();
        }
    }
    // They arrived and were taken as authentic: node-a answers the replayed probes (to
    // whoever holds node-c's address now)...
    let key = GossipKeys::from(GossipKey::new(&KEY).unwrap());
    let mut buf = [0_u8; 2048];
    loop {
        let (len, _) = tokio::time::timeout(Duration::from_secs(5), raw.recv_from(&mut buf))
            .await
            .expect("node-a answers a replayed probe")
            .unwrap();
        if let Ok((Kind::Probe, payload)) = wire::open(&key, &buf[..len])
            && matches!(Probe::decode(payload), Ok(Probe::Ack { .. }))
        {
            break;
        }
    }
    // ...none was rejected...
    for node in [&a, &b] {
        for reason in ["short", "bad_tag", "malformed"] {
            assert_eq!(node.rejected(reason), 0, "{reason}");
        }
    }
    // ...and for a few SWIM probe periods node-c stays down, its last state unchanged. (A
    // window, not a sleep: nothing can be waited for when the point is that nothing happens.)
    let window = Duration::from_secs(2);
    for (node, seen) in [(&a, &before.0), (&b, &before.1)] {
        let came_back = tokio::time::timeout(
            window,
            until(node.view(), window * 2, "node-c back", |v| {
                v.members["node-c"].alive
                    || v.members["node-c"].state != seen.members["node-c"].state
            }),
        )
        .await;
        assert!(
            came_back.is_err(),
            "a replay brought node-c back: {:#?}",
            *node.view().borrow()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_rotate_their_key_one_by_one_and_never_lose_each_other() {
    let key = |byte: u8| GossipKey::new(&[byte; 32]).unwrap();
    let (a_keys, a_rx) = watch::channel(GossipKeys::from(key(1)));
    let (b_keys, b_rx) = watch::channel(GossipKeys::from(key(1)));
    let mut setup = Setup::new("node-a");
    setup.keys = Some(a_rx);
    let a = Node::start(setup).await.unwrap();
    let mut setup = Setup::new("node-b").seeds(&[&a]);
    setup.keys = Some(b_rx);
    let b = Node::start(setup).await.unwrap();
    for node in [&a, &b] {
        until(node.view(), Duration::from_secs(10), "converged", |v| {
            converged(v, &["node-a", "node-b"])
        })
        .await;
    }
    // The procedure of docs/l2.md: every speaker accepts the new key (as `previous-key`),
    // then every one signs with it, then the old one goes. One speaker at a time.
    let accept_new = || GossipKeys::new(key(1), Some(key(2)));
    let sign_new = || GossipKeys::new(key(2), Some(key(1)));
    let steps: [(&str, &watch::Sender<GossipKeys>, GossipKeys); 6] = [
        ("node-a", &a_keys, accept_new()),
        ("node-b", &b_keys, accept_new()),
        ("node-a", &a_keys, sign_new()),
        ("node-b", &b_keys, sign_new()),
        ("node-a", &a_keys, GossipKeys::from(key(2))),
        ("node-b", &b_keys, GossipKeys::from(key(2))),
    ];
    let mut down_seen = false;
    for (step, (who, keys, new)) in steps.into_iter().enumerate() {
        keys.send_replace(new);
        // Each speaker's news reaches the other after the change: both directions work.
        let variant = u8::try_from(step + 2).unwrap();
        a.state.send(state_of("node-a", variant)).unwrap();
        b.state.send(state_of("node-b", variant)).unwrap();
        for (node, other) in [(&a, "node-b"), (&b, "node-a")] {
            let what = format!("step {step} ({who}): {other}'s news");
            until(node.view(), Duration::from_secs(5), &what, |v| {
                v.members[other].state == state_of(other, variant)
            })
            .await;
            let peer = node.view().borrow().members[other].clone();
            down_seen |= !peer.alive || peer.suspect || peer.suspected_by_me;
        }
    }
    assert!(!down_seen, "a speaker lost the other during the rotation");
    assert_eq!((a.rejected("bad_tag"), b.rejected("bad_tag")), (0, 0));
    // The old key is gone: a speaker that still holds only it is not heard.
    let mut setup = Setup::new("node-x").seeds(&[&a]);
    setup.key = vec![1; 32];
    let stale = Node::start(setup).await.unwrap();
    eventually(Duration::from_secs(5), "the old key refused", || {
        a.rejected("bad_tag") >= 1
    })
    .await;
    assert!(!a.view().borrow().members.contains_key("node-x"));
    drop(stale);
}
