//! The rig's BGP half is real: the project's `gobgp-api-proto` client configures a fresh
//! gobgpd entirely through the v4 API, announces an IPv4 and an IPv6 path, a real BIRD in
//! another namespace installs both in its kernel table, the `gobgp` CLI shows the same paths,
//! and deleting them through the API removes them from BIRD.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::net::IpAddr;
use std::time::Duration;

use gobgp_api_proto::api::{
    self, AddPathRequest, AddPeerRequest, AfiSafi, AfiSafiConfig, Attribute, DeletePathRequest,
    Family, GetBgpRequest, Global, IpAddressPrefix, ListPeerRequest, MpReachNlriAttribute,
    NextHopAttribute, Nlri, OriginAttribute, Peer, PeerConf, StartBgpRequest, TableType,
    attribute::Attr, family, nlri,
};
use ipnet::IpNet;
use rig::bird::Bird;
use rig::gobgpd::Gobgpd;
use rig::netns::{Host, Lab};
use rig::process::wait_for;
use rig::router::{PeerSession, RouterConfig};

const SPEAKER_ASN: u32 = 64512;
const ROUTER_ASN: u32 = 64500;

fn family(afi: family::Afi) -> Family {
    Family {
        afi: afi as i32,
        safi: family::Safi::Unicast as i32,
    }
}

fn prefix_nlri(prefix: &IpNet) -> Nlri {
    Nlri {
        nlri: Some(nlri::Nlri::Prefix(IpAddressPrefix {
            prefix_len: prefix.prefix_len().into(),
            prefix: prefix.addr().to_string(),
        })),
    }
}

/// A path as the product will build it: origin IGP, next hop in NEXT_HOP (IPv4) or in
/// MP_REACH_NLRI (IPv6).
fn path(prefix: &IpNet, next_hop: IpAddr) -> api::Path {
    let origin = Attribute {
        attr: Some(Attr::Origin(OriginAttribute { origin: 0 })),
    };
    let (fam, hop) = match prefix {
        IpNet::V4(_) => (
            family(family::Afi::Ip),
            Attribute {
                attr: Some(Attr::NextHop(NextHopAttribute {
                    next_hop: next_hop.to_string(),
                })),
            },
        ),
        IpNet::V6(_) => (
            family(family::Afi::Ip6),
            Attribute {
                attr: Some(Attr::MpReach(MpReachNlriAttribute {
                    family: Some(family(family::Afi::Ip6)),
                    next_hops: vec![next_hop.to_string()],
                    nlris: vec![prefix_nlri(prefix)],
                })),
            },
        ),
    };
    api::Path {
        nlri: Some(prefix_nlri(prefix)),
        pattrs: vec![origin, hop],
        family: Some(fam),
        ..api::Path::default()
    }
}

fn peer(address: &str, afi: family::Afi) -> Peer {
    Peer {
        conf: Some(PeerConf {
            neighbor_address: address.into(),
            peer_asn: ROUTER_ASN,
            ..PeerConf::default()
        }),
        afi_safis: vec![AfiSafi {
            config: Some(AfiSafiConfig {
                family: Some(family(afi)),
                enabled: true,
            }),
            ..AfiSafi::default()
        }],
        ..Peer::default()
    }
}

/// BIRD's sessions with the speaker, IPv4 and IPv6, one path per prefix.
fn bird_config() -> String {
    let session = |name: &str, local: &str, neighbor: &str| {
        let mut session = PeerSession::new(
            name,
            local.parse().unwrap(),
            ROUTER_ASN,
            neighbor.parse().unwrap(),
            SPEAKER_ASN,
        );
        session.add_paths_rx = false;
        session
    };
    RouterConfig {
        router_id: "192.0.2.254".parse().unwrap(),
        sessions: vec![
            session("spk4", "192.0.2.254", "192.0.2.1"),
            session("spk6", "2001:db8::fe", "2001:db8::1"),
        ],
    }
    .bird()
}

struct Topology {
    _lab: Lab,
    speaker: Host,
    router: Host,
}

fn topology() -> Topology {
    let mut lab = Lab::new().expect("lab");
    let sw = lab.segment("sw").expect("segment");
    let addrs = |v4: &str, v6: &str| [v4.parse().unwrap(), v6.parse().unwrap()];
    let speaker =
        (lab.host_on("spk", &sw, &addrs("192.0.2.1/24", "2001:db8::1/64"))).expect("speaker host");
    let router = (lab.host_on("rtr", &sw, &addrs("192.0.2.254/24", "2001:db8::fe/64")))
        .expect("router host");
    Topology {
        _lab: lab,
        speaker,
        router,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gobgpd_configured_through_the_api_announces_to_bird() {
    rig::init_test_logging();
    let topo = topology();
    let gobgpd = Gobgpd::start(&topo.speaker).await.expect("gobgpd starts");
    let bird = Bird::start(&topo.router, &bird_config())
        .await
        .expect("BIRD starts");
    let mut client = gobgpd.client().await.expect("API reachable");

    // A fresh daemon reports asn 0: not started. Configure it entirely through the API.
    let before = client
        .get_bgp(GetBgpRequest {})
        .await
        .expect("GetBgp")
        .into_inner();
    assert_eq!(
        before.global.map(|g| g.asn),
        Some(0),
        "a fresh gobgpd is not started"
    );
    let global = Global {
        asn: SPEAKER_ASN,
        router_id: "192.0.2.1".into(),
        listen_port: 179,
        ..Global::default()
    };
    client
        .start_bgp(StartBgpRequest {
            global: Some(global),
        })
        .await
        .expect("StartBgp");
    client
        .add_peer(AddPeerRequest {
            peer: Some(peer("192.0.2.254", family::Afi::Ip)),
        })
        .await
        .expect("AddPeer v4");
    client
        .add_peer(AddPeerRequest {
            peer: Some(peer("2001:db8::fe", family::Afi::Ip6)),
        })
        .await
        .expect("AddPeer v6");

    let v4: IpNet = "198.51.100.10/32".parse().unwrap();
    let v6: IpNet = "2001:db8:100::10/128".parse().unwrap();
    let v4_hop: IpAddr = "192.0.2.1".parse().unwrap();
    let v6_hop: IpAddr = "2001:db8::1".parse().unwrap();
    let mut uuids = Vec::new();
    for (prefix, hop) in [(v4, v4_hop), (v6, v6_hop)] {
        let reply = client
            .add_path(AddPathRequest {
                table_type: TableType::Global as i32,
                vrf_id: String::new(),
                path: Some(path(&prefix, hop)),
            })
            .await
            .expect("AddPath")
            .into_inner();
        assert!(!reply.uuid.is_empty(), "gobgpd returns the path's uuid");
        uuids.push(reply.uuid);
    }

    // BIRD learns both over their own sessions and installs them in the kernel.
    let installed = wait_for(Duration::from_secs(60), || async {
        let four = topo.router.kernel_next_hops(&v4).ok()?;
        let six = topo.router.kernel_next_hops(&v6).ok()?;
        (four == [v4_hop] && six == [v6_hop]).then_some(())
    })
    .await;
    assert!(
        installed.is_some(),
        "kernel routes in the router namespace; BIRD says:\n{}\n{}",
        bird.birdc(&["show", "protocols", "all"])
            .unwrap_or_default(),
        gobgpd.log_tail(3000)
    );
    let routes = bird.routes().expect("birdc show route all");
    for (prefix, hop, session) in [(v4, v4_hop, "spk4"), (v6, v6_hop, "spk6")] {
        let route = routes
            .iter()
            .find(|r| r.prefix == prefix)
            .unwrap_or_else(|| panic!("{prefix} in BIRD: {routes:#?}"));
        assert_eq!(route.protocol, session);
        assert_eq!(route.next_hops, [hop]);
        assert_eq!(
            route.attributes.get("BGP.as_path").map(String::as_str),
            Some("64512")
        );
        assert_eq!(
            route.attributes.get("BGP.origin").map(String::as_str),
            Some("IGP")
        );
    }

    // The GoBGP CLI reads the same daemon state the API wrote.
    let rib4 = gobgpd
        .cli(&["global", "rib", "-a", "ipv4", "-j"])
        .expect("gobgp global rib");
    let rib6 = gobgpd
        .cli(&["global", "rib", "-a", "ipv6", "-j"])
        .expect("gobgp global rib");
    assert!(
        rib4.contains("198.51.100.10/32") && rib4.contains("192.0.2.1"),
        "{rib4}"
    );
    assert!(
        rib6.contains("2001:db8:100::10/128") && rib6.contains("2001:db8::1"),
        "{rib6}"
    );
    let neighbors = gobgpd.cli(&["neighbor"]).expect("gobgp neighbor");
    assert!(
        neighbors.contains("192.0.2.254") && neighbors.contains("Establ"),
        "{neighbors}"
    );

    // ListPeer through our client agrees: both sessions established.
    let mut stream = client
        .list_peer(ListPeerRequest {
            address: String::new(),
            enable_advertised: true,
        })
        .await
        .expect("ListPeer")
        .into_inner();
    let mut established = 0;
    while let Some(reply) = stream.message().await.expect("ListPeer stream") {
        let state = reply.peer.and_then(|p| p.state).map(|s| s.session_state);
        if state == Some(api::peer_state::SessionState::Established as i32) {
            established += 1;
        }
    }
    assert_eq!(established, 2);

    // Deleting exactly these paths (by uuid, never the delete-everything form) withdraws them.
    for (uuid, prefix) in uuids.into_iter().zip([v4, v6]) {
        let fam = if prefix.addr().is_ipv4() {
            family(family::Afi::Ip)
        } else {
            family(family::Afi::Ip6)
        };
        client
            .delete_path(DeletePathRequest {
                table_type: TableType::Global as i32,
                vrf_id: String::new(),
                family: Some(fam),
                path: None,
                uuid,
            })
            .await
            .expect("DeletePath");
    }
    let withdrawn = wait_for(Duration::from_secs(30), || async {
        let routes = bird.routes().ok()?;
        routes
            .iter()
            .all(|r| r.prefix != v4 && r.prefix != v6)
            .then_some(())
    })
    .await;
    assert!(
        withdrawn.is_some(),
        "BIRD dropped both routes: {:#?}",
        bird.routes()
    );
    assert!(
        topo.router.kernel_next_hops(&v4).unwrap().is_empty(),
        "kernel route removed"
    );
}
