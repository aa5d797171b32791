//! A BGP fabric for end-to-end tests: one layer-2 segment with a router (BIRD or FRR), hosts running
//! gobgpd (the controller replicas' or the nodes' sidecars), and the cluster objects that
//! describe them (Nodes on the segment, BGP pools, BGPPeers).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use crate::gobgpd::Gobgpd;
use crate::kubelet::KubeletNode;
use crate::netns::{Host, Lab, Segment};
use crate::process::wait_for;
use crate::router::{PeerSession, Router, RouterConfig, RouterKind, RouterPath};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, NodeAddress};
use kube::Client;
use kube::api::{Api, PostParams};

pub const ROUTER_ASN: u32 = 64500;
pub const CLUSTER_ASN: u32 = 64512;
pub const ROUTER_V4: &str = "198.51.100.1";
pub const ROUTER_V6: &str = "2001:db8:ff::1";

/// The address of fabric member `n` (2 = the first speaker host, 11.. = nodes).
pub fn v4(n: u8) -> String {
    format!("198.51.100.{n}")
}

pub fn v6(n: u8) -> String {
    format!("2001:db8:ff::{n:x}")
}

fn net(address: &str, len: u8) -> IpNet {
    format!("{address}/{len}")
        .parse()
        .expect("fixture addresses are valid")
}

/// The router's side of the sessions with one speaker at member `member`: an IPv4 session
/// `s<member>v4` and an IPv6 session `s<member>v6`.
#[derive(Debug, Clone)]
pub struct Session {
    pub member: u8,
    pub password: Option<String>,
    pub bfd: bool,
    pub graceful_restart: bool,
    pub hold: Option<u32>,
}

impl Session {
    pub fn to(member: u8) -> Self {
        Self {
            member,
            password: None,
            bfd: false,
            graceful_restart: false,
            hold: None,
        }
    }
}

/// The router's configuration for `sessions` (either kind: [`RouterConfig::bird`],
/// [`RouterConfig::frr`]).
pub fn router_config(sessions: &[Session]) -> RouterConfig {
    let mut peers = Vec::new();
    for s in sessions {
        for (name, local, neighbor) in [
            (
                format!("s{}v4", s.member),
                ROUTER_V4.to_owned(),
                v4(s.member),
            ),
            (
                format!("s{}v6", s.member),
                ROUTER_V6.to_owned(),
                v6(s.member),
            ),
        ] {
            let mut peer = PeerSession::new(
                &name,
                local.parse().expect("fixture address"),
                ROUTER_ASN,
                neighbor.parse().expect("fixture address"),
                CLUSTER_ASN,
            );
            peer.password = s.password.clone();
            peer.bfd = s.bfd;
            peer.graceful_restart = s.graceful_restart;
            peer.hold = s.hold;
            peers.push(peer);
        }
    }
    RouterConfig {
        router_id: ROUTER_V4.parse().expect("fixture address"),
        sessions: peers,
    }
}

/// The segment, the router and the speaker hosts.
#[derive(Debug)]
pub struct Fabric {
    pub lab: Lab,
    pub segment: Segment,
    pub router_host: Host,
    pub router: Router,
    /// Hosts by member number, each with its gobgpd.
    pub speakers: Vec<(u8, Host, Gobgpd)>,
}

impl Fabric {
    /// A router of `kind` and a gobgpd on a host for each session's member.
    pub async fn start(kind: RouterKind, sessions: &[Session]) -> Fabric {
        let config = router_config(sessions);
        Self::start_with(sessions, |host| async move {
            Router::start(kind, &host, config)
                .await
                .unwrap_or_else(|e| panic!("{kind} starts: {e}"))
        })
        .await
    }

    /// The fabric with a router started by `start` (a configuration written by hand).
    pub async fn start_with<F, Fut>(sessions: &[Session], start: F) -> Fabric
    where
        F: FnOnce(Host) -> Fut,
        Fut: std::future::Future<Output = Router>,
    {
        let (lab, segment, router_host, speakers) = Self::hosts(sessions).await;
        let router = start(router_host.clone()).await;
        Fabric {
            lab,
            segment,
            router_host,
            router,
            speakers,
        }
    }

    async fn hosts(sessions: &[Session]) -> (Lab, Segment, Host, Vec<(u8, Host, Gobgpd)>) {
        let mut lab = Lab::new().expect("a lab");
        let segment = lab.segment("fab").expect("a segment");
        let router = (lab.host_on("rtr", &segment, &[net(ROUTER_V4, 24), net(ROUTER_V6, 64)]))
            .expect("the router host");
        let mut speakers = Vec::new();
        for s in sessions {
            let addrs = [net(&v4(s.member), 24), net(&v6(s.member), 64)];
            let host =
                (lab.host_on(&format!("m{}", s.member), &segment, &addrs)).expect("a speaker host");
            let gobgpd = Gobgpd::start(&host).await.expect("gobgpd starts");
            speakers.push((s.member, host, gobgpd));
        }
        (lab, segment, router, speakers)
    }

    pub fn gobgpd(&self, member: u8) -> &Gobgpd {
        &self
            .speakers
            .iter()
            .find(|s| s.0 == member)
            .expect("a speaker of that member")
            .2
    }

    fn gobgpd_mut(&mut self, member: u8) -> &mut Gobgpd {
        &mut (self.speakers.iter_mut().find(|s| s.0 == member))
            .expect("a speaker of that member")
            .2
    }

    /// Kills member's gobgpd and starts a fresh one on the same socket (a container restart).
    pub async fn restart_gobgpd(&mut self, member: u8) {
        self.gobgpd_mut(member)
            .restart()
            .await
            .expect("gobgpd restarts");
    }

    /// Kills member's gobgpd for good (its pod is gone).
    pub fn kill_gobgpd(&mut self, member: u8) {
        self.gobgpd_mut(member).kill();
    }

    /// How many routes the router accepted over `session` (e.g. `s2v4`).
    pub fn imported(&self, session: &str) -> Option<u64> {
        self.router.imported(self.router.neighbor(session))
    }

    pub fn endpoint(&self, member: u8) -> String {
        format!("unix://{}", self.gobgpd(member).socket().display())
    }

    /// The router's paths for `prefix` (all sessions).
    pub fn routes(&self, prefix: &str) -> Vec<RouterPath> {
        let prefix: IpNet = prefix.parse().expect("a prefix");
        self.router.paths(&prefix).expect("the router answers")
    }

    /// The next hops of `prefix` in the router's kernel table.
    pub fn kernel_next_hops(&self, prefix: &str) -> BTreeSet<IpAddr> {
        let prefix: IpNet = prefix.parse().expect("a prefix");
        (self
            .router_host
            .kernel_next_hops(&prefix)
            .unwrap_or_default())
        .into_iter()
        .collect()
    }

    /// Waits until the kernel's next hops for `prefix` are exactly `expected`.
    pub async fn wait_kernel(&self, prefix: &str, expected: &[String], within: Duration) {
        let expected: BTreeSet<IpAddr> = expected
            .iter()
            .map(|a| a.parse().expect("an address"))
            .collect();
        let found = wait_for(within, || async {
            (self.kernel_next_hops(prefix) == expected).then_some(())
        })
        .await;
        assert!(
            found.is_some(),
            "{prefix} at {}: expected next hops {expected:?}, kernel has {:?}; router: {:?}\n{}",
            self.router.kind(),
            self.kernel_next_hops(prefix),
            self.routes(prefix),
            self.protocols()
        );
    }

    /// Waits until the router holds no path for `prefix` at all.
    pub async fn wait_withdrawn(&self, prefix: &str, within: Duration) {
        let left = wait_for(within, || async {
            self.routes(prefix).is_empty().then_some(())
        })
        .await;
        assert!(
            left.is_some(),
            "{} keeps paths of {prefix}: {:?}",
            self.router.kind(),
            self.routes(prefix)
        );
    }

    /// The router's sessions as text (for failure messages).
    pub fn protocols(&self) -> String {
        self.router.describe()
    }

    /// Whether the router's session `name` (e.g. `s2v4`) is Established.
    pub fn established(&self, name: &str) -> bool {
        self.router.established(self.router.neighbor(name))
    }
}

/// Registers an initialized, Ready node on the fabric (member `n`).
pub async fn node_on_fabric(client: &Client, name: &str, n: u8) -> Node {
    let mut kubelet = KubeletNode::registers(name).initialized();
    let status = kubelet.node.status.get_or_insert_default();
    status.addresses = Some(vec![
        NodeAddress {
            type_: "InternalIP".into(),
            address: v4(n),
        },
        NodeAddress {
            type_: "InternalIP".into(),
            address: v6(n),
        },
        NodeAddress {
            type_: "Hostname".into(),
            address: name.into(),
        },
    ]);
    kubelet.create(client).await
}

/// Creates a BGPPeer from its spec as JSON.
pub async fn create_peer(
    client: &Client,
    name: &str,
    labels: serde_json::Value,
    spec: serde_json::Value,
) {
    let api: Api<baremetal_ccm_core::crd::bgppeer::BGPPeer> = Api::all(client.clone());
    let peer = serde_json::from_value(serde_json::json!({
        "apiVersion": "baremetal-ccm.io/v1alpha1", "kind": "BGPPeer",
        "metadata": {"name": name, "labels": labels}, "spec": spec,
    }))
    .expect("peer fixture is well-formed");
    api.create(&PostParams::default(), &peer)
        .await
        .expect("peer created");
}

/// The central peers towards BIRD, IPv4 and IPv6, with `extra` spec fields.
pub async fn central_peers(client: &Client, extra: serde_json::Value) {
    for (name, address) in [("tor-v4", ROUTER_V4), ("tor-v6", ROUTER_V6)] {
        let mut spec = serde_json::json!({"peerAddress": address, "peerASN": ROUTER_ASN, "localASN": CLUSTER_ASN, "connectRetrySeconds": 1});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        create_peer(client, name, serde_json::json!({}), spec).await;
    }
}

/// A session entry of a BGPPeer's status for `speaker`.
pub async fn peer_session(
    client: &Client,
    peer: &str,
    speaker: &str,
) -> Option<baremetal_ccm_core::crd::bgppeer::SpeakerSession> {
    let api: Api<baremetal_ccm_core::crd::bgppeer::BGPPeer> = Api::all(client.clone());
    let status = api.get(peer).await.ok()?.status?;
    status.speakers.into_iter().find(|s| s.speaker == speaker)
}

/// Waits until `speaker`'s entry in `peer`'s status satisfies `check`.
pub async fn wait_session(
    client: &Client,
    peer: &str,
    speaker: &str,
    check: impl Fn(&baremetal_ccm_core::crd::bgppeer::SpeakerSession) -> bool,
) -> baremetal_ccm_core::crd::bgppeer::SpeakerSession {
    let found = wait_for(crate::ccm::WAIT, || async {
        peer_session(client, peer, speaker)
            .await
            .filter(|s| check(s))
    })
    .await;
    match found {
        Some(session) => session,
        None => panic!(
            "BGPPeer {peer}: {speaker}'s session did not reach the expected state: {:?}",
            peer_session(client, peer, speaker).await
        ),
    }
}
