//! The lab the GoBGP adapter tests share: a speaker namespace running a real gobgpd, router
//! namespaces running a router (BIRD 2 or FRR, `rig::router`) on one switch, the routers'
//! sessions, and builders for the desired daemon state.
//!
//! Addresses: speaker 192.0.2.1 / 2001:db8::1; router `i` 192.0.2.(254-i) /
//! 2001:db8::(fe-i); extra next hops (other "nodes") 192.0.2.2.. and 2001:db8::2...

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]
#![allow(
    unreachable_pub,
    reason = "helpers shared by the BGP area's test modules through `crate::lab`"
)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use baremetal_ccm_core::announce::desired::{
    Afi, DesiredDaemon, DesiredPath, DesiredPeer, ExportRule, Global,
};
use ipnet::IpNet;
use rig::gobgpd::Gobgpd;
use rig::netns::{Host, Lab, Segment};
use rig::process::wait_for;
use rig::router::{PeerSession, Router, RouterConfig, RouterKind, RouterPath};

pub const SPEAKER_ASN: u32 = 64512;
pub const ROUTER_ASN: u32 = 64500;
/// Long enough for a session to come up (gobgpd retries every 2 s at the fastest).
pub const SESSION_WAIT: Duration = Duration::from_secs(60);

pub fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

pub fn net(text: &str) -> IpNet {
    text.parse().expect("a prefix")
}

pub fn speaker_v4() -> IpAddr {
    ip("192.0.2.1")
}

pub fn speaker_v6() -> IpAddr {
    ip("2001:db8::1")
}

pub fn router_v4(i: u8) -> IpAddr {
    ip(&format!("192.0.2.{}", 254 - i))
}

pub fn router_v6(i: u8) -> IpAddr {
    ip(&format!("2001:db8::{:x}", 0xfe - i))
}

/// A speaker with gobgpd and `routers` router namespaces, all on one switch.
pub struct BgpLab {
    pub speaker: Host,
    pub switch: Segment,
    pub routers: Vec<Host>,
    pub gobgpd: Gobgpd,
    /// Dropped last: the namespaces outlive the processes in them.
    _lab: Lab,
}

impl BgpLab {
    pub async fn new(routers: u8) -> BgpLab {
        rig::init_test_logging();
        let mut lab = Lab::new().expect("lab");
        let switch = lab.segment("sw").expect("switch");
        let speaker = (lab.host_on(
            "spk",
            &switch,
            &[net("192.0.2.1/24"), net("2001:db8::1/64")],
        ))
        .expect("speaker namespace");
        let routers = (0..routers)
            .map(|i| {
                let v4 = IpNet::new(router_v4(i), 24).expect("prefix length");
                let v6 = IpNet::new(router_v6(i), 64).expect("prefix length");
                (lab.host_on(&format!("r{i}"), &switch, &[v4, v6])).expect("router namespace")
            })
            .collect();
        let gobgpd = Gobgpd::start(&speaker).await.expect("gobgpd starts");
        BgpLab {
            speaker,
            switch,
            routers,
            gobgpd,
            _lab: lab,
        }
    }

    /// The switch port of the speaker (the first host connected).
    pub fn speaker_port(&self) -> &'static str {
        "p0"
    }
}

/// The router's session with the speaker over `afi` from router `i` (eBGP, named `spk4` /
/// `spk6`), importing everything, one path per prefix (set `add_paths_rx` for ADD-PATH).
pub fn session(router: u8, afi: Afi) -> PeerSession {
    let (name, local, neighbor) = match afi {
        Afi::Ipv4 => ("spk4", router_v4(router), speaker_v4()),
        Afi::Ipv6 => ("spk6", router_v6(router), speaker_v6()),
    };
    let mut session = PeerSession::new(name, local, ROUTER_ASN, neighbor, SPEAKER_ASN);
    session.add_paths_rx = false;
    session
}

/// Starts a router of `kind` in router namespace `i` with `sessions` (BGP routes installed
/// in its kernel, ECMP merged).
pub async fn start_router(
    kind: RouterKind,
    lab: &BgpLab,
    i: u8,
    sessions: Vec<PeerSession>,
) -> Router {
    let config = RouterConfig {
        router_id: router_v4(i),
        sessions,
    };
    Router::start(kind, &lab.routers[usize::from(i)], config)
        .await
        .unwrap_or_else(|e| panic!("{kind} starts: {e}"))
}

pub fn global() -> Global {
    Global {
        asn: SPEAKER_ASN,
        router_id: "192.0.2.1".parse().expect("router id"),
        listen_port: -1,
    }
}

/// A session to `address` with short timers (hold 9 s, connect-retry 1 s).
pub fn peer(address: IpAddr, peer_asn: u32, source: &str) -> DesiredPeer {
    DesiredPeer {
        peer_asn,
        local_asn: 0,
        source: source.to_owned(),
        ..baremetal_ccm_core::fixtures::desired_peer(address)
    }
}

pub fn path(prefix: &str, next_hop: &str, path_id: u32) -> DesiredPath {
    DesiredPath {
        prefix: net(prefix),
        next_hop: ip(next_hop),
        path_id,
    }
}

pub fn rule(name: &str, prefixes: &[&str]) -> ExportRule {
    ExportRule {
        name: name.to_owned(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        peers: None,
        communities: Vec::new(),
        large_communities: Vec::new(),
        local_preference: None,
    }
}

pub fn desired(
    peers: impl IntoIterator<Item = DesiredPeer>,
    paths: impl IntoIterator<Item = DesiredPath>,
    export: Vec<ExportRule>,
) -> DesiredDaemon {
    DesiredDaemon {
        global: global(),
        peers: peers.into_iter().map(|p| (p.address, p)).collect(),
        export,
        paths: paths.into_iter().collect(),
    }
}

/// The router's paths for `prefix` over `session` (e.g. `spk4`).
pub fn routes_from(router: &Router, session: &str, prefix: &IpNet) -> Vec<RouterPath> {
    let from = Some(router.neighbor(session));
    (router
        .paths(prefix)
        .expect("the router answers")
        .into_iter())
    .filter(|p| p.neighbor == from)
    .collect()
}

/// The router's view of its sessions (for failure messages).
pub fn protocol_details(router: &Router) -> String {
    router.describe()
}

pub fn established(router: &Router, session: &str) -> bool {
    router.established(router.neighbor(session))
}

/// Paths accepted over `session`.
pub fn imported(router: &Router, session: &str) -> Option<u64> {
    router.imported(router.neighbor(session))
}

/// Waits until `session` is Established at `router`.
pub async fn wait_established(router: &Router, session: &str, gobgpd: &Gobgpd) {
    let up = wait_for(SESSION_WAIT, || async {
        established(router, session).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "{session} not established at {}:\n{}\ngobgpd:\n{}",
        router.kind(),
        router.describe(),
        gobgpd.log_tail(3000)
    );
}

/// What gobgpd holds, through its CLI, for failure messages.
pub fn gobgp_dump(gobgpd: &Gobgpd) -> String {
    let mut out = String::new();
    for args in [
        &["neighbor"][..],
        &["global", "rib", "-a", "ipv4"],
        &["global", "rib", "-a", "ipv6"],
        &["global", "policy"],
        &["policy"],
    ] {
        let text = gobgpd.cli(args).unwrap_or_else(|e| e.to_string());
        writeln!(out, "$ gobgp {}\n{text}", args.join(" ")).expect("write to a string");
    }
    out
}

/// Waits until router `i`'s kernel has `prefix` via exactly `hops`.
pub async fn wait_kernel(lab: &BgpLab, i: usize, prefix: &IpNet, hops: &[IpAddr], router: &Router) {
    wait_kernel_within(lab, i, prefix, hops, router, SESSION_WAIT).await;
}

pub async fn wait_kernel_within(
    lab: &BgpLab,
    i: usize,
    prefix: &IpNet,
    hops: &[IpAddr],
    router_process: &Router,
    timeout: Duration,
) {
    let router = &lab.routers[i];
    let mut want = hops.to_vec();
    want.sort();
    let seen = wait_for(timeout, || async {
        (router.kernel_next_hops(prefix).ok()? == want).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "kernel route {prefix} via {want:?}; kernel has {:?}; {} has {:#?}\n{}\n{}\ngobgpd log:\n{}",
        router.kernel_next_hops(prefix),
        router_process.kind(),
        router_process.paths(prefix),
        router_process.describe(),
        gobgp_dump(&lab.gobgpd),
        lab.gobgpd.log_tail(4000),
    );
}
