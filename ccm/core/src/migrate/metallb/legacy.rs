//! The ConfigMap of MetalLB 0.12 and older (`config` key: `peers`, `address-pools`,
//! `bgp-communities`, `bfd-profiles`) expanded into the objects that replaced it, so that one
//! conversion serves both. Keys are renamed to the CRD spelling; unknown keys are kept as they
//! are and reported as not understood later.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::fields::{Findings, Reader};
use super::source::Object;

const PEER_KEYS: [(&str, &str); 12] = [
    ("my-asn", "myASN"),
    ("peer-asn", "peerASN"),
    ("peer-address", "peerAddress"),
    ("source-address", "sourceAddress"),
    ("peer-port", "peerPort"),
    ("hold-time", "holdTime"),
    ("keepalive-time", "keepaliveTime"),
    ("router-id", "routerID"),
    ("node-selectors", "nodeSelectors"),
    ("password", "password"),
    ("bfd-profile", "bfdProfile"),
    ("ebgp-multihop", "ebgpMultiHop"),
];
const SELECTOR_KEYS: [(&str, &str); 2] = [
    ("match-labels", "matchLabels"),
    ("match-expressions", "matchExpressions"),
];
const POOL_KEYS: [(&str, &str); 3] = [
    ("addresses", "addresses"),
    ("avoid-buggy-ips", "avoidBuggyIPs"),
    ("auto-assign", "autoAssign"),
];
const ADVERTISEMENT_KEYS: [(&str, &str); 4] = [
    ("aggregation-length", "aggregationLength"),
    ("aggregation-length-v6", "aggregationLengthV6"),
    ("localpref", "localPref"),
    ("communities", "communities"),
];
const BFD_KEYS: [(&str, &str); 7] = [
    ("receive-interval", "receiveInterval"),
    ("transmit-interval", "transmitInterval"),
    ("detect-multiplier", "detectMultiplier"),
    ("echo-interval", "echoInterval"),
    ("echo-mode", "echoMode"),
    ("passive-mode", "passiveMode"),
    ("minimum-ttl", "minimumTtl"),
];

/// The objects a legacy ConfigMap stands for, each with its kind.
pub(super) fn expand(configmap: &Value, findings: &mut Findings) -> Vec<(&'static str, Object)> {
    let name = configmap
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("config");
    let label = match configmap
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
    {
        Some(ns) => format!("ConfigMap {ns}/{name}"),
        None => format!("ConfigMap {name}"),
    };
    let Some(config) = config_of(configmap, &label, findings) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut top = Reader::new(&label, "data.config", &config, findings);
    for (i, peer) in (top.list("peers", findings).unwrap_or(&[]).iter()).enumerate() {
        out.push(("BGPPeer", legacy_peer(&label, i, peer)));
    }
    if let Some(map) = top.take("bgp-communities").and_then(Value::as_object) {
        out.push(("Community", legacy_communities(&label, name, map)));
    }
    for (i, profile) in (top.list("bfd-profiles", findings).unwrap_or(&[]).iter()).enumerate() {
        out.push(("BFDProfile", legacy_bfd_profile(&label, i, profile)));
    }
    for (i, pool) in (top.list("address-pools", findings).unwrap_or(&[]).iter()).enumerate() {
        out.extend(expand_pool(&label, i, pool, findings));
    }
    top.finish(findings);
    out
}

/// The ConfigMap's `data.config`, parsed; `None` (reported) when absent or not YAML.
fn config_of(configmap: &Value, label: &str, findings: &mut Findings) -> Option<Value> {
    let mut data = Reader::new(label, "data", &configmap["data"], findings);
    let text = data.string("config", findings).ok().flatten();
    data.finish(findings);
    match serde_yaml::from_str(&text?) {
        Ok(config) => Some(config),
        Err(error) => {
            findings.none(
                label,
                "data.config",
                format!("not YAML ({error}): not converted"),
            );
            None
        }
    }
}

/// `peers[i]` as a BGPPeer object (named `metallb-peer-<i+1>`).
fn legacy_peer(label: &str, i: usize, peer: &Value) -> Object {
    let spec = rename(peer, &PEER_KEYS, |key, value| match key {
        "nodeSelectors" => Value::Array(
            (value.as_array().into_iter().flatten())
                .map(|s| rename(s, &SELECTOR_KEYS, |_, v| v.clone()))
                .collect(),
        ),
        _ => value.clone(),
    });
    legacy_object(
        format!("{label}: peers[{i}]"),
        format!("metallb-peer-{}", i + 1),
        spec,
    )
}

/// `bgp-communities` (name → value) as a Community object.
fn legacy_communities(label: &str, name: &str, map: &serde_json::Map<String, Value>) -> Object {
    let aliases: Vec<Value> = (map.iter())
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    legacy_object(
        format!("{label}: bgp-communities"),
        format!("{name}-communities"),
        json!({ "communities": aliases }),
    )
}

/// `bfd-profiles[i]` as a BFDProfile object.
fn legacy_bfd_profile(label: &str, i: usize, profile: &Value) -> Object {
    let name = (profile.get("name").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    let spec = rename(profile, &BFD_KEYS, |_, v| v.clone());
    legacy_object(
        format!("{label}: bfd-profiles[{i}]"),
        name,
        strip(spec, "name"),
    )
}

/// One legacy address pool: the pool, and the advertisements its `protocol` and
/// `bgp-advertisements` imply.
fn expand_pool(
    label: &str,
    index: usize,
    pool: &Value,
    findings: &mut Findings,
) -> Vec<(&'static str, Object)> {
    let name = pool
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let object = format!("{label}: address-pools[{index}] ({name})");
    let protocol = pool.get("protocol").and_then(Value::as_str);
    let advertisements: &[Value] =
        (pool.get("bgp-advertisements").and_then(Value::as_array)).map_or(&[], Vec::as_slice);
    let spec = strip(
        strip(
            strip(rename(pool, &POOL_KEYS, |_, v| v.clone()), "name"),
            "protocol",
        ),
        "bgp-advertisements",
    );
    let mut out = vec![(
        "IPAddressPool",
        legacy_object(object.clone(), name.clone(), spec),
    )];
    let selects = json!({ "ipAddressPools": [name] });
    match protocol {
        Some("layer2") => {
            findings.exact(
                &object,
                "protocol",
                "layer2: announce.mode l2, from every node, on every interface",
            );
            if !advertisements.is_empty() {
                findings.exact(
                    &object,
                    "bgp-advertisements",
                    "ignored by MetalLB on a layer2 pool: not converted",
                );
            }
            out.push((
                "L2Advertisement",
                legacy_object(format!("{object}.protocol"), format!("{name}-l2"), selects),
            ));
        }
        Some("bgp") => {
            findings.exact(&object, "protocol", "bgp: announce.mode bgp");
            if advertisements.is_empty() {
                out.push((
                    "BGPAdvertisement",
                    legacy_object(format!("{object}.protocol"), format!("{name}-bgp"), selects),
                ));
            }
            for (j, advertisement) in advertisements.iter().enumerate() {
                let mut spec = rename(advertisement, &ADVERTISEMENT_KEYS, |_, v| v.clone());
                if let Value::Object(map) = &mut spec {
                    map.insert("ipAddressPools".to_owned(), json!([name]));
                }
                let adv_label = format!("{object}.bgp-advertisements[{j}]");
                out.push((
                    "BGPAdvertisement",
                    legacy_object(adv_label, format!("{name}-bgp-{}", j + 1), spec),
                ));
            }
        }
        other => findings.none(
            &object,
            "protocol",
            format!("{other:?} is neither layer2 nor bgp: the pool is not announced"),
        ),
    }
    out
}

fn legacy_object(label: String, name: String, spec: Value) -> Object {
    Object {
        label,
        name,
        labels: BTreeMap::new(),
        spec,
    }
}

/// `value` with the keys of `renames` renamed (each value passed through `inner`); other
/// keys kept as they are. A value that is not an object is returned unchanged.
fn rename(value: &Value, renames: &[(&str, &str)], inner: impl Fn(&str, &Value) -> Value) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    let renamed: Map<String, Value> = (map.iter())
        .map(
            |(key, v)| match renames.iter().find(|(legacy, _)| legacy == key) {
                Some((_, new)) => ((*new).to_owned(), inner(new, v)),
                None => (key.clone(), v.clone()),
            },
        )
        .collect();
    Value::Object(renamed)
}

fn strip(mut value: Value, key: &str) -> Value {
    if let Value::Object(map) = &mut value {
        map.remove(key);
    }
    value
}
