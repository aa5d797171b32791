//! The lab the GoBGP adapter tests share: a speaker namespace running a real gobgpd, router
//! namespaces running BIRD 2 on one switch, BIRD configurations, and builders for the
//! desired daemon state.
//!
//! Addresses: speaker 192.0.2.1 / 2001:db8::1; router `i` 192.0.2.(254-i) /
//! 2001:db8::(fe-i); extra next hops (other "nodes") 192.0.2.2.. and 2001:db8::2...

#![allow(
    dead_code,
    reason = "each test file uses a different subset of the helpers"
)]
#![allow(
    unreachable_pub,
    reason = "helpers shared by several test crates through `mod bgp_lab`"
)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use baremetal_ccm::announce::desired::{
    Afi, DesiredDaemon, DesiredPath, DesiredPeer, ExportRule, Global,
};
use ipnet::IpNet;
use rig::bird::{Bird, BirdRoute};
use rig::gobgpd::Gobgpd;
use rig::netns::{Host, Lab, Segment};
use rig::process::wait_for;

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
        let speaker = lab.host("spk").expect("speaker namespace");
        lab.connect(
            &speaker,
            &switch,
            "eth0",
            &[net("192.0.2.1/24"), net("2001:db8::1/64")],
        )
        .expect("speaker link");
        let routers = (0..routers)
            .map(|i| {
                let host = lab.host(&format!("r{i}")).expect("router namespace");
                let v4 = IpNet::new(router_v4(i), 24).expect("prefix length");
                let v6 = IpNet::new(router_v6(i), 64).expect("prefix length");
                lab.connect(&host, &switch, "eth0", &[v4, v6])
                    .expect("router link");
                host
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

/// One BGP session in a BIRD configuration.
pub struct BirdSession {
    pub name: &'static str,
    pub local: IpAddr,
    pub neighbor: IpAddr,
    pub local_as: u32,
    pub neighbor_as: u32,
    /// Lines inside `protocol bgp { }`.
    pub options: String,
    /// Lines inside the session's `ipv4 { }` / `ipv6 { }` channel.
    pub channel: String,
}

impl BirdSession {
    /// An eBGP session from router `i` to the speaker over `afi`, importing everything.
    pub fn ebgp(name: &'static str, router: u8, afi: Afi) -> BirdSession {
        let (local, neighbor) = match afi {
            Afi::Ipv4 => (router_v4(router), speaker_v4()),
            Afi::Ipv6 => (router_v6(router), speaker_v6()),
        };
        BirdSession {
            name,
            local,
            neighbor,
            local_as: ROUTER_ASN,
            neighbor_as: SPEAKER_ASN,
            options: String::new(),
            channel: String::new(),
        }
    }

    pub fn option(mut self, line: &str) -> Self {
        writeln!(self.options, "  {line}").expect("write to a string");
        self
    }

    pub fn channel(mut self, line: &str) -> Self {
        write!(self.channel, " {line}").expect("write to a string");
        self
    }
}

/// A whole bird.conf: kernel protocols exporting BGP routes (ECMP merged when
/// `merge_paths`), BFD when any session uses it, and the sessions.
pub fn bird_config(router_id: IpAddr, sessions: &[BirdSession], merge_paths: bool) -> String {
    let merge = if merge_paths { "merge paths on;" } else { "" };
    let mut conf = format!(
        "router id {router_id};\n\
         protocol device {{ }}\n\
         protocol kernel k4 {{ {merge} ipv4 {{ export where source = RTS_BGP; }}; }}\n\
         protocol kernel k6 {{ {merge} ipv6 {{ export where source = RTS_BGP; }}; }}\n"
    );
    if sessions.iter().any(|s| s.options.contains("bfd")) {
        conf.push_str("protocol bfd { interface \"eth0\" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }\n");
    }
    for s in sessions {
        let channel = if s.neighbor.is_ipv4() { "ipv4" } else { "ipv6" };
        write!(
            conf,
            "protocol bgp {} {{\n  local {} as {};\n  neighbor {} as {};\n{}  {channel} {{ import all; export none;{} }};\n}}\n",
            s.name, s.local, s.local_as, s.neighbor, s.neighbor_as, s.options, s.channel
        )
        .expect("write to a string");
    }
    conf
}

pub async fn start_bird(host: &Host, router: u8, sessions: &[BirdSession], merge: bool) -> Bird {
    Bird::start(host, &bird_config(router_v4(router), sessions, merge))
        .await
        .expect("BIRD starts")
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
        address,
        port: 179,
        peer_asn,
        local_asn: 0,
        source: source.to_owned(),
        password: None,
        multihop_ttl: None,
        hold_time: Duration::from_secs(9),
        keepalive: Duration::from_secs(3),
        connect_retry: Duration::from_secs(1),
        idle_hold_after_reset: Duration::from_secs(1),
        graceful_restart: None,
        bfd: None,
        families: BTreeSet::from([Afi::of(&address)]),
        add_path_send_max: 0,
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

/// BIRD's routes for `prefix` from `protocol`.
pub fn routes_from(bird: &Bird, protocol: &str, prefix: &IpNet) -> Vec<BirdRoute> {
    bird.routes()
        .expect("birdc show route all")
        .into_iter()
        .filter(|r| r.protocol == protocol && r.prefix == *prefix)
        .collect()
}

/// `birdc show protocols all <protocol>`.
pub fn protocol_details(bird: &Bird, protocol: &str) -> String {
    bird.birdc(&["show", "protocols", "all", protocol])
        .expect("birdc show protocols all")
}

pub fn established(bird: &Bird, protocol: &str) -> bool {
    bird.protocol_info(protocol)
        .is_ok_and(|info| info.contains("Established"))
}

/// The "Routes: N imported" count of a protocol.
pub fn imported(bird: &Bird, protocol: &str) -> Option<u64> {
    protocol_details(bird, protocol).lines().find_map(|line| {
        let rest = line.trim().strip_prefix("Routes:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Waits until `protocol` is Established at `bird`.
pub async fn wait_established(bird: &Bird, protocol: &str, gobgpd: &Gobgpd) {
    let up = wait_for(SESSION_WAIT, || async {
        established(bird, protocol).then_some(())
    })
    .await;
    assert!(
        up.is_some(),
        "{protocol} not established:\n{}\ngobgpd:\n{}",
        protocol_details(bird, protocol),
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
pub async fn wait_kernel(lab: &BgpLab, i: usize, prefix: &IpNet, hops: &[IpAddr], bird: &Bird) {
    wait_kernel_within(lab, i, prefix, hops, bird, SESSION_WAIT).await;
}

pub async fn wait_kernel_within(
    lab: &BgpLab,
    i: usize,
    prefix: &IpNet,
    hops: &[IpAddr],
    bird: &Bird,
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
        "kernel route {prefix} via {want:?}; kernel has {:?}; BIRD has {:#?}\n{}\n{}\ngobgpd log:\n{}",
        router.kernel_next_hops(prefix),
        bird.routes(),
        bird.birdc(&["show", "protocols", "all"])
            .unwrap_or_default(),
        gobgp_dump(&lab.gobgpd),
        lab.gobgpd.log_tail(4000),
    );
}
