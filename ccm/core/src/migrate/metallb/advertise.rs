//! `L2Advertisement`s and `BGPAdvertisement`s turned into each pool's one `announce`: which
//! pools each selects, what it sets, and whether the advertisements of a pool merge.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use serde_json::Value;

use super::PEER_LABEL;
use super::fields::{Findings, Reader};
use super::pool::{MetalPool, selectors};
use super::source::{Inputs, Object, duplicates};
use crate::crd::community;
use crate::crd::ippool::{Announce, AnnounceMode, BgpAnnounce, L2Announce};

/// Community names (`Community` objects) and their values.
pub(super) fn read_communities(
    objects: &[Object],
    findings: &mut Findings,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for object in objects {
        let mut spec = Reader::new(&object.label, "spec", &object.spec, findings);
        let entries = spec.list("communities", findings).unwrap_or(&[]);
        for (i, entry) in entries.iter().enumerate() {
            let mut alias = Reader::new(
                &object.label,
                &format!("spec.communities[{i}]"),
                entry,
                findings,
            );
            let name = alias.string("name", findings).ok().flatten();
            let value = alias.string("value", findings).ok().flatten();
            alias.finish(findings);
            let (Some(name), Some(value)) = (name, value) else {
                findings.none(
                    &object.label,
                    &format!("spec.communities[{i}]"),
                    "needs a name and a value: left out",
                );
                continue;
            };
            if out.insert(name.clone(), value).is_some() {
                findings.none(
                    &object.label,
                    &format!("spec.communities[{i}]"),
                    format!("{name} is defined twice (MetalLB refuses that)"),
                );
            }
        }
        spec.finish(findings);
        findings.exact(
            &object.label,
            "spec.communities",
            "names resolved to their values in the pools' announce.bgp",
        );
    }
    out
}

/// What one L2Advertisement asks of each pool it selects.
#[derive(Debug, Clone, PartialEq)]
struct L2Wish {
    node_selector: Option<LabelSelector>,
    /// Empty: every interface.
    interfaces: BTreeSet<String>,
}

/// What one BGPAdvertisement asks, apart from its peers.
#[derive(Debug, Clone, PartialEq, Default)]
struct BgpAttributes {
    communities: BTreeSet<String>,
    large_communities: BTreeSet<String>,
    local_preference: Option<u32>,
    aggregation_length: Option<u8>,
    aggregation_length_v6: Option<u8>,
}

#[derive(Debug, Clone)]
struct BgpWish {
    attributes: BgpAttributes,
    /// `None`: every peer.
    peers: Option<BTreeSet<String>>,
}

/// Each pool's announcement, by pool name (pools no advertisement selects are absent).
pub(super) fn resolve(
    inputs: &Inputs,
    pools: &[MetalPool],
    communities: &BTreeMap<String, String>,
    peers: &[&str],
    findings: &mut Findings,
) -> BTreeMap<String, Announce> {
    let mut l2: BTreeMap<&str, Vec<(&str, L2Wish)>> = BTreeMap::new();
    for object in &inputs.l2_advertisements {
        let mut spec = Reader::new(&object.label, "spec", &object.spec, findings);
        let selected = selected_pools(&mut spec, pools, findings);
        let wish = read_l2(&mut spec, findings);
        spec.finish(findings);
        for pool in selected {
            l2.entry(pool)
                .or_default()
                .push((&object.label, wish.clone()));
        }
    }
    let mut bgp: BTreeMap<&str, Vec<(&str, BgpWish)>> = BTreeMap::new();
    for object in &inputs.bgp_advertisements {
        let mut spec = Reader::new(&object.label, "spec", &object.spec, findings);
        let selected = selected_pools(&mut spec, pools, findings);
        let wish = read_bgp(&mut spec, communities, peers, findings);
        spec.finish(findings);
        for pool in selected {
            bgp.entry(pool)
                .or_default()
                .push((&object.label, wish.clone()));
        }
    }
    let mut out = BTreeMap::new();
    for pool in pools {
        let l2_wishes = l2.remove(pool.name.as_str()).unwrap_or_default();
        let bgp_wishes = bgp.remove(pool.name.as_str()).unwrap_or_default();
        if let Some(announce) = announce(&pool.label, &l2_wishes, &bgp_wishes, findings) {
            out.insert(pool.name.clone(), announce);
        }
    }
    out
}

fn announce(
    pool: &str,
    l2: &[(&str, L2Wish)],
    bgp: &[(&str, BgpWish)],
    findings: &mut Findings,
) -> Option<Announce> {
    let names = |list: &[&str]| list.join(", ");
    let l2_names: Vec<&str> = l2.iter().map(|(n, _)| *n).collect();
    let bgp_names: Vec<&str> = bgp.iter().map(|(n, _)| *n).collect();
    match (l2.is_empty(), bgp.is_empty()) {
        (true, true) => {
            findings.exact(pool, "(announce)", "no L2Advertisement or BGPAdvertisement selects it: announce.mode none (MetalLB allocates from it and announces nothing)");
            None
        }
        (false, true) => {
            findings.exact(
                pool,
                "(announce)",
                format!("announce.mode l2, from {}", names(&l2_names)),
            );
            Some(l2_announce(pool, l2, findings))
        }
        (true, false) => {
            findings.exact(
                pool,
                "(announce)",
                format!("announce.mode bgp, from {}", names(&bgp_names)),
            );
            Some(bgp_announce(pool, bgp, findings))
        }
        (false, false) => {
            findings.none(pool, "(announce)", format!(
                "announced both over layer 2 ({}) and BGP ({}); our pool has one mode: converted as bgp, the layer-2 announcement is lost",
                names(&l2_names), names(&bgp_names)
            ));
            Some(bgp_announce(pool, bgp, findings))
        }
    }
}

/// Several L2Advertisements of a pool announce from the union of what they allow. That
/// union is one `announce.l2` when one of them allows everything, or when they share their
/// node selector (the interfaces then add up).
fn l2_announce(pool: &str, wishes: &[(&str, L2Wish)], findings: &mut Findings) -> Announce {
    let all = |w: &L2Wish| w.node_selector.is_none() && w.interfaces.is_empty();
    let union_interfaces = || -> BTreeSet<String> {
        if wishes.iter().any(|(_, w)| w.interfaces.is_empty()) {
            BTreeSet::new()
        } else {
            wishes
                .iter()
                .flat_map(|(_, w)| w.interfaces.iter().cloned())
                .collect()
        }
    };
    let first = &wishes[0].1;
    let merged = if wishes.iter().any(|(_, w)| all(w)) {
        L2Wish {
            node_selector: None,
            interfaces: BTreeSet::new(),
        }
    } else if wishes
        .iter()
        .all(|(_, w)| w.node_selector == first.node_selector)
    {
        L2Wish {
            node_selector: first.node_selector.clone(),
            interfaces: union_interfaces(),
        }
    } else {
        findings.none(pool, "(announce.l2)", "its L2Advertisements allow different nodes; MetalLB announces from any of them, our pool has one nodeSelector: converted without one (every node)");
        L2Wish {
            node_selector: None,
            interfaces: union_interfaces(),
        }
    };
    let conflict =
        merged.node_selector.is_none() && wishes.iter().all(|(_, w)| w.node_selector.is_some());
    if wishes.len() > 1 && !conflict {
        findings.exact(
            pool,
            "(announce.l2)",
            "its L2Advertisements merge into one announce.l2 (their union)",
        );
    }
    Announce {
        mode: AnnounceMode::L2,
        bgp: None,
        l2: Some(L2Announce {
            interfaces: merged.interfaces.into_iter().collect(),
            node_selector: merged.node_selector,
            ..L2Announce::default()
        }),
    }
}

/// Several BGPAdvertisements of a pool are several announcements in MetalLB; ours has one.
/// They merge when they set the same attributes (their peers then add up).
fn bgp_announce(pool: &str, wishes: &[(&str, BgpWish)], findings: &mut Findings) -> Announce {
    let first = &wishes[0].1;
    if wishes.iter().any(|(_, w)| w.attributes != first.attributes) {
        let names: Vec<&str> = wishes.iter().map(|(n, _)| *n).collect();
        findings.none(pool, "(announce.bgp)", format!(
            "{} announce it with different attributes (aggregation, communities or local preference); ours announces a pool one way: converted as {}",
            names.join(", "), wishes[0].0
        ));
    } else if wishes.len() > 1 {
        findings.exact(
            pool,
            "(announce.bgp)",
            "its BGPAdvertisements set the same attributes: merged, their peers added up",
        );
    }
    let same: Vec<&BgpWish> = (wishes.iter())
        .map(|(_, w)| w)
        .filter(|w| w.attributes == first.attributes)
        .collect();
    let peers = if same.iter().any(|w| w.peers.is_none()) {
        None
    } else {
        Some(
            same.iter()
                .flat_map(|w| w.peers.iter().flatten().cloned())
                .collect(),
        )
    };
    let a = &first.attributes;
    Announce {
        mode: AnnounceMode::Bgp,
        l2: None,
        bgp: Some(BgpAnnounce {
            communities: a.communities.iter().cloned().collect(),
            large_communities: a.large_communities.iter().cloned().collect(),
            local_preference: a.local_preference,
            aggregation_length: a.aggregation_length,
            aggregation_length_v6: a.aggregation_length_v6,
            peer_selector: peers.map(peer_selector),
            max_next_hops: None,
        }),
    }
}

fn peer_selector(names: BTreeSet<String>) -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: PEER_LABEL.to_owned(),
            operator: "In".to_owned(),
            values: Some(names.into_iter().collect()),
        }]),
    }
}

/// The pools an advertisement selects: `ipAddressPools` by name and `ipAddressPoolSelectors`
/// by the pools' labels; every pool when both are empty.
fn selected_pools<'p>(
    spec: &mut Reader<'_>,
    pools: &'p [MetalPool],
    findings: &mut Findings,
) -> Vec<&'p str> {
    let label = spec.object();
    let names = spec.strings("ipAddressPools", findings).unwrap_or_default();
    let had_selectors = spec.has("ipAddressPoolSelectors");
    let chosen = selectors(spec, "ipAddressPoolSelectors", findings);
    for twice in duplicates(&names) {
        findings.none(
            label,
            "spec.ipAddressPools",
            format!("{twice} listed twice (MetalLB refuses that)"),
        );
    }
    let mut selected: BTreeSet<&str> = BTreeSet::new();
    if names.is_empty() && !had_selectors {
        selected.extend(pools.iter().map(|p| p.name.as_str()));
        findings.exact(
            label,
            "spec.ipAddressPools",
            format!(
                "absent, with no pool selector: every pool ({})",
                list(&selected)
            ),
        );
        return selected.into_iter().collect();
    }
    if !names.is_empty() {
        let known: BTreeSet<&str> = (pools.iter())
            .map(|p| p.name.as_str())
            .filter(|n| names.iter().any(|m| m == n))
            .collect();
        let unknown: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| !known.contains(n))
            .collect();
        let mut note = format!("selects {}", list(&known));
        if !unknown.is_empty() {
            note.push_str(&format!(
                "; {} names no IPAddressPool (nothing to announce, as in MetalLB)",
                unknown.join(", ")
            ));
        }
        findings.exact(label, "spec.ipAddressPools", note);
        selected.extend(known);
    }
    if had_selectors {
        let matched: BTreeSet<&str> = (pools.iter())
            .filter(|p| chosen.iter().any(|s| matches(s, &p.labels)))
            .map(|p| p.name.as_str())
            .collect();
        findings.exact(
            label,
            "spec.ipAddressPoolSelectors",
            format!(
                "evaluated against the pools' labels: selects {}",
                list(&matched)
            ),
        );
        selected.extend(matched);
    }
    selected.into_iter().collect()
}

fn matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    crate::selector::Selector::new(&crate::crd::selector_spec(selector))
        .is_ok_and(|s| s.matches(labels))
}

fn list(names: &BTreeSet<&str>) -> String {
    if names.is_empty() {
        "no pool".to_owned()
    } else {
        names.iter().copied().collect::<Vec<_>>().join(", ")
    }
}

fn read_l2(spec: &mut Reader<'_>, findings: &mut Findings) -> L2Wish {
    let label = spec.object();
    let nodes = selectors(spec, "nodeSelectors", findings);
    match nodes.len() {
        0 => {}
        1 => findings.exact(label, "spec.nodeSelectors", "announce.l2.nodeSelector"),
        n => findings.none(label, "spec.nodeSelectors", format!("{n} selectors, any of which allows a node (OR); ours holds one: converted without one (every node)")),
    }
    let interfaces = spec.strings("interfaces", findings).unwrap_or_default();
    if !interfaces.is_empty() {
        findings.exact(label, "spec.interfaces", "announce.l2.interfaces");
    }
    L2Wish {
        node_selector: (nodes.len() == 1).then(|| nodes[0].clone()),
        interfaces: interfaces.into_iter().collect(),
    }
}

fn read_bgp(
    spec: &mut Reader<'_>,
    communities: &BTreeMap<String, String>,
    peers: &[&str],
    findings: &mut Findings,
) -> BgpWish {
    let label = spec.object();
    let mut attributes = BgpAttributes::default();
    if let Ok(Some(length)) = spec.number("aggregationLength", 32, findings) {
        findings.exact(
            label,
            "spec.aggregationLength",
            "announce.bgp.aggregationLength",
        );
        attributes.aggregation_length = (length != 32).then_some(length as u8);
    }
    if let Ok(Some(length)) = spec.number("aggregationLengthV6", 128, findings) {
        findings.exact(
            label,
            "spec.aggregationLengthV6",
            "announce.bgp.aggregationLengthV6",
        );
        attributes.aggregation_length_v6 = (length != 128).then_some(length as u8);
    }
    if let Ok(Some(pref)) = spec.number("localPref", u64::from(u32::MAX), findings) {
        findings.exact(
            label,
            "spec.localPref",
            "announce.bgp.localPreference (sent to iBGP peers only, in both)",
        );
        attributes.local_preference = (pref != 0).then_some(pref as u32);
    }
    for (i, text) in spec
        .strings("communities", findings)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let field = format!("spec.communities[{i}]");
        match classify(text, communities) {
            Ok(Community::Standard(c)) => {
                findings.exact(label, &field, format!("announce.bgp.communities {c}"));
                attributes.communities.insert(c);
            }
            Ok(Community::Large(c)) => {
                findings.exact(label, &field, format!("announce.bgp.largeCommunities {c}"));
                attributes.large_communities.insert(c);
            }
            Err(why) => findings.none(label, &field, format!("{text:?}: {why}: left out")),
        }
    }
    let peers = read_peers(spec, peers, findings);
    if spec
        .take("nodeSelectors")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty())
    {
        findings.none(label, "spec.nodeSelectors", "per-node advertisement: ours announces a pool from every eligible node: converted without it");
    }
    BgpWish { attributes, peers }
}

fn read_peers(
    spec: &mut Reader<'_>,
    known: &[&str],
    findings: &mut Findings,
) -> Option<BTreeSet<String>> {
    let label = spec.object();
    let names = spec.strings("peers", findings).unwrap_or_default();
    if names.is_empty() {
        return None;
    }
    let mut note = format!(
        "announce.bgp.peerSelector: {PEER_LABEL} In ({})",
        names.join(", ")
    );
    let unknown: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| !known.contains(n))
        .collect();
    if !unknown.is_empty() {
        note.push_str(&format!(
            "; {} names no BGPPeer (selects nothing, as in MetalLB)",
            unknown.join(", ")
        ));
    }
    let unusable: Vec<&str> = (names.iter())
        .map(String::as_str)
        .filter(|n| crate::contract::label_value_problem(n).is_some())
        .collect();
    if unusable.is_empty() {
        findings.exact(label, "spec.peers", note);
    } else {
        findings.none(
            label,
            "spec.peers",
            format!(
                "{} cannot be a label value: those peers cannot be selected",
                unusable.join(", ")
            ),
        );
    }
    Some(
        names
            .into_iter()
            .filter(|n| crate::contract::label_value_problem(n).is_none())
            .collect(),
    )
}

enum Community {
    Standard(String),
    Large(String),
}

/// `asn:value`, `large:global:local1:local2`, or the name of a `Community` entry.
fn classify(text: &str, names: &BTreeMap<String, String>) -> Result<Community, String> {
    let literal = |text: &str| -> Option<Result<Community, String>> {
        if let Some(large) = text.strip_prefix("large:") {
            return Some(
                community::parse_large(large)
                    .map(|_| Community::Large(large.to_owned()))
                    .map_err(|e| e.to_string()),
            );
        }
        text.contains(':').then(|| {
            community::parse_standard(text)
                .map(|_| Community::Standard(text.to_owned()))
                .map_err(|e| e.to_string())
        })
    };
    if let Some(result) = literal(text) {
        return result;
    }
    match names.get(text) {
        Some(value) => {
            literal(value).unwrap_or_else(|| Err(format!("its value {value:?} is not a community")))
        }
        None => Err("neither a community nor the name of a Community entry".to_owned()),
    }
}
