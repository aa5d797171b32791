//! The inputs sorted by kind: each MetalLB object's identity, labels and spec, with its
//! `apiVersion`, `kind` and `metadata` accounted for; the legacy ConfigMap expanded.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::fields::{Findings, Reader};
use super::legacy;

/// One MetalLB object to convert.
#[derive(Debug, Clone)]
pub(super) struct Object {
    /// Its name in the report: `IPAddressPool metallb-system/lan`.
    pub(super) label: String,
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    /// `Null` when the object has none.
    pub(super) spec: Value,
}

/// The MetalLB objects by kind, duplicates removed.
#[derive(Debug, Default)]
pub(super) struct Inputs {
    pub(super) pools: Vec<Object>,
    pub(super) l2_advertisements: Vec<Object>,
    pub(super) bgp_advertisements: Vec<Object>,
    pub(super) peers: Vec<Object>,
    pub(super) bfd_profiles: Vec<Object>,
    pub(super) communities: Vec<Object>,
}

/// Metadata the API server writes: dropped without a finding.
const BOOKKEEPING: [&str; 11] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "finalizers",
    "ownerReferences",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generateName",
];

impl Inputs {
    pub(super) fn read(objects: &[Value], findings: &mut Findings) -> Inputs {
        let mut inputs = Inputs::default();
        let mut ignored: BTreeMap<String, usize> = BTreeMap::new();
        for (index, value) in objects.iter().enumerate() {
            let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
            let api_version = value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            let group = api_version.split_once('/').map_or("", |(g, _)| g);
            if kind.is_empty() || !value.is_object() {
                let label = format!("(input {})", index + 1);
                findings.none(&label, "kind", "not a Kubernetes object: not converted");
                continue;
            }
            match (group, kind) {
                ("metallb.io", _) => inputs.read_metallb(kind, value, findings),
                ("", "ConfigMap") if value.pointer("/data/config").is_some() => {
                    for (kind, object) in legacy::expand(value, findings) {
                        inputs.add(kind, object, findings);
                    }
                }
                _ => *ignored.entry(format!("{api_version} {kind}")).or_default() += 1,
            }
        }
        for (kind, count) in ignored {
            findings.approximate(
                &kind,
                "(kind)",
                format!("{count} object(s) of a kind that is not MetalLB configuration: ignored"),
            );
        }
        inputs
    }

    fn read_metallb(&mut self, kind: &str, value: &Value, findings: &mut Findings) {
        match kind {
            "IPAddressPool" | "L2Advertisement" | "BGPAdvertisement" | "BGPPeer"
            | "BFDProfile" | "Community" => {
                if let Some(object) = read_object(kind, value, findings) {
                    self.add(kind, object, findings);
                }
            }
            "ServiceL2Status" | "ServiceBGPStatus" => findings.exact(
                kind,
                "(kind)",
                "MetalLB's observed state, not configuration: ignored (ours is in the IPPool and BGPPeer status)",
            ),
            "MetalLB" => findings.approximate(
                kind,
                "(kind)",
                "the MetalLB operator's deployment settings: not converted (our chart's values configure the deployment)",
            ),
            _ => findings.none(
                kind,
                "(kind)",
                "a MetalLB kind the converter does not understand: not converted",
            ),
        }
    }

    fn add(&mut self, kind: &str, object: Object, findings: &mut Findings) {
        let list = match kind {
            "IPAddressPool" => &mut self.pools,
            "L2Advertisement" => &mut self.l2_advertisements,
            "BGPAdvertisement" => &mut self.bgp_advertisements,
            "BGPPeer" => &mut self.peers,
            "BFDProfile" => &mut self.bfd_profiles,
            "Community" => &mut self.communities,
            _ => return,
        };
        if let Some(first) = list.iter().find(|o| o.name == object.name) {
            findings.none(
                &object.label,
                "metadata.name",
                format!(
                    "{} is already the name of {}: names must be unique across namespaces (ours are cluster-scoped); not converted",
                    object.name, first.label
                ),
            );
            return;
        }
        list.push(object);
    }
}

/// Reads the envelope of a MetalLB object; `None` (reported) when it has no usable name.
fn read_object(kind: &str, value: &Value, findings: &mut Findings) -> Option<Object> {
    let name = value.pointer("/metadata/name").and_then(Value::as_str);
    let namespace = value.pointer("/metadata/namespace").and_then(Value::as_str);
    let label = match (namespace, name) {
        (Some(ns), Some(name)) => format!("{kind} {ns}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        (_, None) => format!("{kind} (unnamed)"),
    };
    let mut top = Reader::new(&label, "", value, findings);
    let _kind = top.take("kind");
    let version = top.take("apiVersion").and_then(Value::as_str).unwrap_or("");
    let known: &[&str] = if kind == "BGPPeer" {
        &["metallb.io/v1beta1", "metallb.io/v1beta2"]
    } else {
        &["metallb.io/v1beta1"]
    };
    if !known.contains(&version) {
        findings.approximate(
            &label,
            "apiVersion",
            format!(
                "{version} read with the fields of {}",
                known[known.len() - 1]
            ),
        );
    }
    let _status = top.take("status");
    let spec = top.take("spec").cloned().unwrap_or(Value::Null);
    let mut metadata = top.nested("metadata", findings);
    top.finish(findings);
    let labels = read_metadata(&mut metadata, findings);
    metadata.finish(findings);
    if !labels.is_empty() {
        let note = match kind {
            "IPAddressPool" => {
                "copied to the IPPool (pool selectors are evaluated against them here)"
            }
            "BGPPeer" => "copied to the BGPPeer, beside our own label",
            _ => "not needed: nothing selects this kind by label",
        };
        findings.exact(&label, "metadata.labels", note);
    }
    let Some(name) = name else {
        findings.none(&label, "metadata.name", "missing: not converted");
        return None;
    };
    Some(Object {
        label,
        name: name.to_owned(),
        labels,
        spec,
    })
}

fn read_metadata(metadata: &mut Reader<'_>, findings: &mut Findings) -> BTreeMap<String, String> {
    let object = metadata.object();
    for key in BOOKKEEPING {
        let _dropped = metadata.take(key);
    }
    let _name = metadata.take("name");
    if metadata.take("namespace").is_some() {
        findings.exact(
            object,
            "metadata.namespace",
            "dropped: our IPPool and BGPPeer are cluster-scoped",
        );
    }
    if metadata
        .take("annotations")
        .and_then(Value::as_object)
        .is_some_and(|a| !a.is_empty())
    {
        findings.exact(
            object,
            "metadata.annotations",
            "not carried over: MetalLB reads none on its own objects",
        );
    }
    let mut labels = BTreeMap::new();
    if let Some(value) = metadata.take("labels") {
        let read: Option<BTreeMap<String, String>> = value.as_object().and_then(|map| {
            (map.iter())
                .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        });
        match read {
            Some(read) => labels = read,
            None => findings.none(
                object,
                "metadata.labels",
                "expected a map of strings: not converted",
            ),
        }
    }
    labels
}

/// Names that are listed twice (MetalLB refuses those lists).
pub(super) fn duplicates(names: &[String]) -> Vec<&str> {
    let mut seen = BTreeSet::new();
    let mut twice: Vec<&str> = names
        .iter()
        .filter(|n| !seen.insert(n.as_str()))
        .map(String::as_str)
        .collect();
    twice.dedup();
    twice
}
