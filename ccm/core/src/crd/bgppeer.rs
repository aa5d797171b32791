//! The `BGPPeer` custom resource (`baremetal-ccm.io/v1alpha1`): a router the announcers open
//! a BGP session with, and, in its status, each speaker's view of that session.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// A BGP neighbour of the cluster.
#[derive(CustomResource, schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "baremetal-ccm.io",
    version = "v1alpha1",
    kind = "BGPPeer",
    plural = "bgppeers",
    shortname = "bgppeer",
    status = "BGPPeerStatus",
    printcolumn = r#"{"name":"Peer","type":"string","jsonPath":".spec.peerAddress"}"#,
    printcolumn = r#"{"name":"ASN","type":"integer","jsonPath":".spec.peerASN"}"#,
    printcolumn = r#"{"name":"Placement","type":"string","jsonPath":".spec.placement"}"#,
    printcolumn = r#"{"name":"Sessions","type":"string","jsonPath":".status.speakers[*].state"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// The router's address (IPv4 or IPv6). A session carries the families of its address
    /// unless `families` says otherwise.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "isIP(self)", "message": "peerAddress must be an IP address"}]))]
    pub peer_address: String,
    /// The router's AS number.
    #[serde(rename = "peerASN")]
    #[schemars(range(min = 1, max = 4294967295_u32))]
    pub peer_asn: u32,
    /// Our AS number on this session.
    #[serde(rename = "localASN")]
    #[schemars(range(min = 1, max = 4294967295_u32))]
    pub local_asn: u32,
    /// The router's TCP port (179 unless set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<u16>,
    /// Where the session runs: `central` (the controller's sidecar, announcing the eligible
    /// nodes as next hops with ADD-PATH) or `nodeLocal` (every selected node's speaker,
    /// announcing itself as next hop).
    #[serde(default)]
    pub placement: Placement,
    /// `nodeLocal`: the nodes whose speakers open this session (all nodes when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// TCP MD5 signature (RFC 2385) with the password in a Secret of the BGP password
    /// namespace (`--bgp-password-namespace`, `baremetal-ccm-bgp` as shipped), the only
    /// namespace whose Secrets the product reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// eBGP multihop: the TTL of our packets (1, single hop, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub ebgp_multihop_ttl: Option<u8>,
    /// Hold time in seconds (90 when absent; 0 disables keepalives, or at least 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 65535))]
    pub hold_time_seconds: Option<u32>,
    /// Keepalive interval in seconds (a third of the hold time when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 21845))]
    pub keepalive_seconds: Option<u32>,
    /// Seconds between connection attempts (5 when absent; gobgpd's own default of 120 leaves a
    /// router that restarted without routes for two minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub connect_retry_seconds: Option<u32>,
    /// Seconds the session stays idle after it was reset (BFD reported the router down, or
    /// the router sent a NOTIFICATION) before connecting again (5 when absent; gobgpd's own
    /// default of 30 keeps the routes away for half a minute after every BFD failure or
    /// router restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub idle_hold_after_reset_seconds: Option<u32>,
    /// Graceful restart (RFC 4724): the router keeps our routes while our daemon restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestart>,
    /// BFD (RFC 5880) on this session: a dead link takes its routes away in milliseconds
    /// instead of at the hold timer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<Bfd>,
    /// Address families announced on this session (`IPv4`, `IPv6`); the peer address's family
    /// when empty. Announce IPv6 over an IPv6 session: routers reject IPv6 prefixes with an
    /// IPv4 next hop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub families: Vec<Family>,
    /// `central`: how many paths per prefix (one per eligible node) may be sent with ADD-PATH;
    /// 0 turns ADD-PATH off (the router then learns one next hop). 16 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 255))]
    pub add_path_send_max: Option<u8>,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Placement {
    #[default]
    Central,
    NodeLocal,
}

#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, schemars::JsonSchema,
)]
pub enum Family {
    IPv4,
    IPv6,
}

/// A key of a Secret in the BGP password namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    pub name: String,
    /// The key whose value is the password (UTF-8 text; a trailing newline is dropped).
    pub key: String,
    /// The Secret's namespace: the BGP password namespace when absent. Any other namespace
    /// is refused (the peer is `NotConfigured`): the product reads no other Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestart {
    /// Seconds the router keeps our routes after the session drops (120 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4095))]
    pub restart_time_seconds: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Bfd {
    /// Our minimum receive interval in milliseconds (300 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub min_rx_ms: Option<u32>,
    /// Our desired minimum transmit interval in milliseconds (300 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub min_tx_ms: Option<u32>,
    /// Packets missed before the session is down (3 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 255))]
    pub multiplier: Option<u8>,
}

/// Observed state: one entry per speaker (a controller replica in `central` placement, a
/// node's speaker in `nodeLocal`), each written by that speaker alone (server-side apply with
/// a field manager per speaker).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["speaker"]))]
    pub speakers: Vec<SpeakerSession>,
}

/// One speaker's session with the peer, as its gobgpd reports it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerSession {
    /// The controller replica's identity or the node's name.
    pub speaker: String,
    /// `Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`.
    pub state: String,
    /// When the session last became Established (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub established_since: Option<String>,
    /// Prefixes (paths) sent to the router, per family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_prefixes_sent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_prefixes_sent: Option<u64>,
    /// Whether the router accepts several paths per prefix (ADD-PATH receive): without it a
    /// central speaker's router learns one next hop per address, not one per node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_path_negotiated: Option<bool>,
    /// Central placement: the most next hops (paths) a prefix gets on this session — the
    /// largest `maxNextHops` of the pools announced, at most `addPathSendMax` (1 without
    /// ADD-PATH). Absent in node-local placement (one path per speaker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_next_hops: Option<u32>,
    /// The BFD session's state, when BFD is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_state: Option<String>,
    /// Why the session last went down or could not be configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When this entry was written (RFC 3339).
    pub updated: String,
}
