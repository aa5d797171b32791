//! The `IPPool` custom resource (`baremetal-ccm.io/v1alpha1`): the address pools LoadBalancer
//! Services draw from, with their allocation scope, sharing policy and announcement mode.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use serde::{Deserialize, Serialize};

use super::community::{self, LargeCommunity};
use crate::selector::Selector;

/// CEL: one `addresses` entry is a canonical CIDR (no host bits) or a range `a-b` of one family,
/// with `a <= b` checked here for IPv4 (CEL has no IPv6 ordering; the controller checks it and
/// reports `Valid=False`).
const ADDRESS_RULE: &str = "self.all(a, a.contains('-') \
 ? (a.split('-').size() == 2 \
    && isIP(a.split('-')[0].trim()) && isIP(a.split('-')[1].trim()) \
    && ip(a.split('-')[0].trim()).family() == ip(a.split('-')[1].trim()).family() \
    && (ip(a.split('-')[0].trim()).family() == 6 \
        || [a.split('-').map(e, e.trim().split('.')) \
              .map(o, int(o[0]) * 16777216 + int(o[1]) * 65536 + int(o[2]) * 256 + int(o[3]))] \
              .all(p, p[0] <= p[1]))) \
 : (isCIDR(a) && cidr(a).masked().ip() == cidr(a).ip()))";

const ADDRESS_MESSAGE: &str = "each address must be a CIDR without host bits (192.0.2.0/24) or a range of one family with start <= end (192.0.2.10-192.0.2.20)";

/// Specification of an address pool.
#[derive(CustomResource, schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "baremetal-ccm.io",
    version = "v1alpha1",
    kind = "IPPool",
    plural = "ippools",
    shortname = "ippool",
    status = "IPPoolStatus",
    printcolumn = r#"{"name":"Addresses","type":"string","jsonPath":".spec.addresses"}"#,
    printcolumn = r#"{"name":"Used","type":"integer","jsonPath":".status.used"}"#,
    printcolumn = r#"{"name":"Free","type":"string","jsonPath":".status.free"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".spec.announce.mode"}"#,
    printcolumn = r#"{"name":"Valid","type":"string","jsonPath":".status.conditions[?(@.type==\"Valid\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolSpec {
    /// Addresses of the pool: CIDRs (`192.0.2.0/24`, `2001:db8::/64`) and ranges
    /// (`192.0.2.10-192.0.2.20`); IPv4 and IPv6 may be mixed in one pool.
    #[schemars(
        length(min = 1, max = 64),
        inner(length(min = 1, max = 100)),
        extend("x-kubernetes-validations" = [{"rule": ADDRESS_RULE, "message": ADDRESS_MESSAGE}])
    )]
    pub addresses: Vec<String>,
    /// Never hand out IPv4 addresses ending in `.0` or `.255` (some clients mistreat them).
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Deprecated spelling of `avoidBuggyIPs` that early CRDs had; still honoured (either
    /// being true skips the addresses) so that pools written with it keep their meaning.
    #[serde(
        default,
        rename = "avoidBuggyIps",
        skip_serializing_if = "Option::is_none"
    )]
    pub avoid_buggy_ips_deprecated: Option<bool>,
    /// Whether Services that do not name a pool or an address may get addresses from this pool.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Preference among eligible pools for automatic assignment: lower first, ties by name.
    #[serde(default)]
    pub priority: i32,
    /// Which Services may draw from this pool; all Services when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_scope: Option<AllocationScope>,
    /// Whether Services in different namespaces may share an address of this pool through the
    /// same `baremetal-ccm.io/sharing-key` (off by default: a shared key is a hijack vector).
    #[serde(default)]
    pub allow_cross_namespace_sharing: bool,
    /// How addresses of this pool are announced to the network.
    pub announce: Announce,
}

fn default_true() -> bool {
    true
}

impl IPPoolSpec {
    /// Whether `.0`/`.255` IPv4 addresses are skipped, by either spelling of the field.
    pub fn avoids_buggy_ips(&self) -> bool {
        self.avoid_buggy_ips || self.avoid_buggy_ips_deprecated == Some(true)
    }
}

/// Which Services may draw from a pool. All given criteria must match.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationScope {
    /// Namespaces by name; any namespace when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub namespaces: Vec<String>,
    /// Namespaces by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Services by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_selector: Option<LabelSelector>,
}

/// Announcement of a pool's addresses.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Announce {
    /// `bgp` (routers learn the address over BGP), `l2` (a node answers ARP/NDP for it) or
    /// `none` (allocated and reported only; the network is configured by other means).
    pub mode: AnnounceMode,
    /// Options of `mode: bgp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<BgpAnnounce>,
    /// Options of `mode: l2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l2: Option<L2Announce>,
}

/// `asn:value`, both at most 65535 (a schema pattern: free of CEL cost).
const COMMUNITY_PATTERN: &str = "^(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}):(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})$";
/// `global:local1:local2`, each at most 4294967295.
const LARGE_COMMUNITY_PATTERN: &str = "^(429496729[0-5]|42949672[0-8][0-9]|4294967[01][0-9]{2}|429496[0-6][0-9]{3}|42949[0-5][0-9]{4}|4294[0-8][0-9]{5}|429[0-3][0-9]{6}|42[0-8][0-9]{7}|4[01][0-9]{8}|[1-3][0-9]{9}|[0-9]{1,9}):(429496729[0-5]|42949672[0-8][0-9]|4294967[01][0-9]{2}|429496[0-6][0-9]{3}|42949[0-5][0-9]{4}|4294[0-8][0-9]{5}|429[0-3][0-9]{6}|42[0-8][0-9]{7}|4[01][0-9]{8}|[1-3][0-9]{9}|[0-9]{1,9}):(429496729[0-5]|42949672[0-8][0-9]|4294967[01][0-9]{2}|429496[0-6][0-9]{3}|42949[0-5][0-9]{4}|4294[0-8][0-9]{5}|429[0-3][0-9]{6}|42[0-8][0-9]{7}|4[01][0-9]{8}|[1-3][0-9]{9}|[0-9]{1,9})$";

/// How a BGP pool's addresses are announced.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpAnnounce {
    /// Standard communities (RFC 1997) added to the pool's routes, as `asn:value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 11), pattern(COMMUNITY_PATTERN)))]
    pub communities: Vec<String>,
    /// Large communities (RFC 8092), as `global:local1:local2`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 32),
        inner(length(max = 32), pattern(LARGE_COMMUNITY_PATTERN))
    )]
    pub large_communities: Vec<String>,
    /// LOCAL_PREF of the pool's routes (seen by iBGP peers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<u32>,
    /// Announce IPv4 addresses as the covering prefix of this length instead of /32
    /// (e.g. 24: one route for the whole /24, whatever addresses are in use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 32))]
    pub aggregation_length: Option<u8>,
    /// The same for IPv6 (128 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 128))]
    pub aggregation_length_v6: Option<u8>,
    /// The `BGPPeer`s (by label) that receive this pool's routes; all peers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_selector: Option<LabelSelector>,
    /// Central placement: at most this many nodes are next hops of each announced prefix,
    /// chosen by a stable ranking of node and prefix, so that a node leaving changes only the
    /// prefixes it carried and a node joining takes about this many in N of them; 16 when
    /// absent (a common ECMP limit of routers). Node-local placement: not used (each node
    /// announces itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024))]
    pub max_next_hops: Option<u16>,
}

/// A pool's BGP announcement options, parsed and validated.
#[derive(Debug, Clone)]
pub struct BgpAnnouncement {
    /// Standard communities as 32-bit values (`asn << 16 | value`).
    pub communities: Vec<u32>,
    pub large_communities: Vec<LargeCommunity>,
    pub local_preference: Option<u32>,
    pub aggregation_v4: u8,
    pub aggregation_v6: u8,
    pub peer_selector: Option<Selector>,
    /// Central placement: next hops per prefix at most ([`DEFAULT_MAX_NEXT_HOPS`] when absent).
    pub max_next_hops: usize,
}

/// The next hops a prefix gets at most in central placement when the pool does not say: a
/// common ECMP limit of routers (BIRD, Junos), below FRR's default of 64.
pub const DEFAULT_MAX_NEXT_HOPS: u16 = 16;

impl BgpAnnouncement {
    /// Whether the options change anything about the routes (attributes or reach), so that
    /// the pool needs an export rule of its own.
    pub fn has_rule(&self) -> bool {
        !self.communities.is_empty()
            || !self.large_communities.is_empty()
            || self.local_preference.is_some()
            || self.peer_selector.is_some()
    }
}

impl IPPool {
    /// The pool's BGP announcement when it is a `mode: bgp` pool (`None` otherwise), or why
    /// its options cannot be used.
    pub fn bgp_announcement(&self) -> Option<Result<BgpAnnouncement, String>> {
        (self.spec.announce.mode == AnnounceMode::Bgp)
            .then(|| self.spec.announce.bgp.clone().unwrap_or_default().parse())
    }

    /// The pool's layer-2 announcement when it is a `mode: l2` pool (`None` otherwise; the
    /// defaults when it has no `announce.l2`), or why its options cannot be used.
    pub fn l2_announcement(&self) -> Option<Result<L2Announcement, String>> {
        (self.spec.announce.mode == AnnounceMode::L2)
            .then(|| self.spec.announce.l2.clone().unwrap_or_default().parse())
    }

    /// Options given for a mode other than the pool's (`announce.l2` on a `bgp` pool, say),
    /// which nothing reads: named, so that the pool's status can say they are ignored.
    pub fn ignored_announce_options(&self) -> Option<String> {
        let announce = &self.spec.announce;
        let ignored: Vec<&str> = [
            (announce.bgp.is_some() && announce.mode != AnnounceMode::Bgp)
                .then_some("announce.bgp"),
            (announce.l2.is_some() && announce.mode != AnnounceMode::L2).then_some("announce.l2"),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!ignored.is_empty()).then(|| {
            format!(
                "{} set on a pool of announce.mode {}: ignored",
                ignored.join(" and "),
                announce.mode.as_str()
            )
        })
    }
}

impl BgpAnnounce {
    /// The options, checked beyond what the schema can check.
    pub fn parse(&self) -> Result<BgpAnnouncement, String> {
        let communities = (self.communities.iter())
            .map(|c| {
                community::parse_standard(c).map_err(|_shape_or_range| {
                    format!("announce.bgp.communities: {c:?} is not asn:value")
                })
            })
            .collect::<Result<_, _>>()?;
        let large_communities = (self.large_communities.iter())
            .map(|c| {
                community::parse_large(c).map_err(|_shape_or_range| {
                    format!("announce.bgp.largeCommunities: {c:?} is not global:local1:local2")
                })
            })
            .collect::<Result<_, _>>()?;
        let peer_selector = match &self.peer_selector {
            Some(selector) => Some(
                Selector::new(&super::selector_spec(selector))
                    .map_err(|errors| format!("announce.bgp.peerSelector: {}", errors[0]))?,
            ),
            None => None,
        };
        Ok(BgpAnnouncement {
            communities,
            large_communities,
            local_preference: self.local_preference,
            aggregation_v4: self.aggregation_length.unwrap_or(32).min(32),
            aggregation_v6: self.aggregation_length_v6.unwrap_or(128).min(128),
            peer_selector,
            max_next_hops: usize::from(
                self.max_next_hops
                    .unwrap_or(DEFAULT_MAX_NEXT_HOPS)
                    .clamp(1, 1024),
            ),
        })
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AnnounceMode {
    Bgp,
    L2,
    None,
}

impl AnnounceMode {
    /// The mode as the resource spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnounceMode::Bgp => "bgp",
            AnnounceMode::L2 => "l2",
            AnnounceMode::None => "none",
        }
    }
}

mod l2;
pub use l2::{L2Announce, L2Announcement, L2Announcements};

/// Observed state of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IPPoolStatus {
    /// Addresses held by Services, all families.
    #[serde(default)]
    pub used: u64,
    /// Free addresses, all families, as a decimal string (an IPv6 pool exceeds 64 bits).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub free: String,
    /// Per family (`IPv4`, `IPv6`): total, used and free, counts as decimal strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub families: BTreeMap<String, FamilyUsage>,
    /// `Valid`, `Overlapping` (naming the other pool), `Degraded` (Services holding addresses
    /// outside the pool after an edit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Usage of one address family of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FamilyUsage {
    pub total: String,
    pub used: String,
    pub free: String,
}

/// An `IPPool` of `addresses` announced by `mode`, every other field at the resource's default.
pub fn pool_with_defaults(name: &str, addresses: &[&str], mode: AnnounceMode) -> IPPool {
    IPPool::new(
        name,
        IPPoolSpec {
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            avoid_buggy_ips: false,
            avoid_buggy_ips_deprecated: None,
            auto_assign: true,
            priority: 0,
            allocation_scope: None,
            allow_cross_namespace_sharing: false,
            announce: Announce {
                mode,
                bgp: None,
                l2: None,
            },
        },
    )
}
