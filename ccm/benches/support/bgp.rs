//! What the BGP benchmarks' floors share: a minimal client's session from a fresh gobgpd to
//! the fabric's router (BIRD) with ADD-PATH, and its paths as an `AddPathStream`.

use gobgp_api_proto::GoBgpServiceClient;
use gobgp_api_proto::api;
use rig::fabric::{CLUSTER_ASN, ROUTER_ASN, ROUTER_V4};
use tonic::transport::Channel;

/// IPv4 unicast.
pub fn ipv4_family() -> api::Family {
    api::Family {
        afi: api::family::Afi::Ip as i32,
        safi: api::family::Safi::Unicast as i32,
    }
}

/// `paths` as `AddPathStream` messages of 1,000 paths each.
pub fn path_stream(paths: &[api::Path]) -> Vec<api::AddPathStreamRequest> {
    (paths.chunks(1000))
        .map(|chunk| api::AddPathStreamRequest {
            table_type: api::TableType::Global as i32,
            vrf_id: String::new(),
            paths: chunk.to_vec(),
        })
        .collect()
}

/// Starts BGP on a fresh gobgpd as `router_id` and adds the router as a peer that gets up to
/// `send_max` paths per prefix (ADD-PATH), retrying its connect every second.
pub async fn start_router_session(
    client: &mut GoBgpServiceClient<Channel>,
    router_id: String,
    send_max: u32,
) {
    client
        .start_bgp(api::StartBgpRequest {
            global: Some(api::Global {
                asn: CLUSTER_ASN,
                router_id,
                listen_port: -1,
                ..api::Global::default()
            }),
        })
        .await
        .unwrap();
    let peer = api::Peer {
        conf: Some(api::PeerConf {
            neighbor_address: ROUTER_V4.into(),
            peer_asn: ROUTER_ASN,
            ..api::PeerConf::default()
        }),
        timers: Some(api::Timers {
            config: Some(api::TimersConfig {
                connect_retry: 1,
                ..api::TimersConfig::default()
            }),
            ..api::Timers::default()
        }),
        afi_safis: vec![api::AfiSafi {
            config: Some(api::AfiSafiConfig {
                family: Some(ipv4_family()),
                enabled: true,
            }),
            add_paths: Some(api::AddPaths {
                config: Some(api::AddPathsConfig {
                    receive: false,
                    send_max,
                }),
                ..api::AddPaths::default()
            }),
            ..api::AfiSafi::default()
        }],
        ..api::Peer::default()
    };
    client
        .add_peer(api::AddPeerRequest { peer: Some(peer) })
        .await
        .unwrap();
}

/// Removes the router peer [`start_router_session`] added.
pub async fn remove_router_peer(client: &mut GoBgpServiceClient<Channel>) {
    client
        .delete_peer(api::DeletePeerRequest {
            address: ROUTER_V4.into(),
            interface: String::new(),
        })
        .await
        .unwrap();
}
