//! The Node writes of `cloud-node` and `cloud-node-lifecycle`, planned in the one shape of a
//! planned write ([`Patch`]); the binary's Node writer applies them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint};
use serde_json::{Value, json};

use super::plan::Initialization;
use crate::instance::NodeAddress;
use crate::write::Patch;

/// The one Node update that initializes a node: providerID (only when the node has none),
/// labels and the taints without the uninitialized one. It carries the `resourceVersion`
/// the decision was made on, so it fails rather than replace taints someone else changed.
pub fn initialization(node: &Node, init: &Initialization) -> Patch {
    let mut spec = json!({ "taints": init.taints });
    if let Some(provider_id) = &init.provider_id {
        spec["providerID"] = json!(provider_id);
    }
    Patch::Object(json!({
        "metadata": { "resourceVersion": node.metadata.resource_version, "labels": init.labels },
        "spec": spec,
    }))
}

/// Replaces `status.addresses` as a whole (a merge patch replaces lists; a strategic merge
/// would merge the new list into the old by type and keep stale entries).
pub fn addresses(addresses: &[NodeAddress]) -> Patch {
    let listed: Vec<Value> = (addresses.iter())
        .map(|a| json!({ "type": a.kind.as_str(), "address": a.address }))
        .collect();
    Patch::Status(json!({ "status": { "addresses": listed } }))
}

/// Sets labels (the node's other labels stay).
pub fn labels(labels: &BTreeMap<String, String>) -> Patch {
    Patch::Object(json!({ "metadata": { "labels": labels } }))
}

/// Replaces the node's taints; the `resourceVersion` guards the list against a concurrent
/// change by someone else.
pub fn taints(node: &Node, taints: &[Taint]) -> Patch {
    Patch::Object(json!({
        "metadata": { "resourceVersion": node.metadata.resource_version },
        "spec": { "taints": taints },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instance::AddressType;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node() -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                resource_version: Some("41".into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    #[test]
    fn initialization_is_one_guarded_update_and_sets_a_missing_provider_id() {
        let init = Initialization {
            provider_id: Some("baremetal://n1".into()),
            labels: BTreeMap::from([("topology.kubernetes.io/zone".into(), "a".into())]),
            taints: Vec::new(),
            addresses: None,
        };
        let patch = initialization(&node(), &init);
        assert!(!patch.is_status());
        assert_eq!(
            *patch.body(),
            json!({
                "metadata": {"resourceVersion": "41", "labels": {"topology.kubernetes.io/zone": "a"}},
                "spec": {"taints": [], "providerID": "baremetal://n1"},
            })
        );
        let kept = Initialization {
            provider_id: None,
            ..init
        };
        assert!(
            initialization(&node(), &kept).body()["spec"]
                .get("providerID")
                .is_none(),
            "a providerID the node has is never written"
        );
    }

    #[test]
    fn addresses_replace_the_whole_list_on_the_status() {
        let patch = addresses(&[
            NodeAddress::new(AddressType::InternalIP, "192.0.2.1"),
            NodeAddress::new(AddressType::Hostname, "n1"),
        ]);
        assert!(patch.is_status());
        assert_eq!(
            *patch.body(),
            json!({"status": {"addresses": [
                {"type": "InternalIP", "address": "192.0.2.1"},
                {"type": "Hostname", "address": "n1"},
            ]}})
        );
    }

    #[test]
    fn taints_are_guarded_by_the_version_read() {
        let patch = taints(&node(), &[]);
        assert_eq!(patch.body()["metadata"]["resourceVersion"], "41");
        assert_eq!(patch.body()["spec"]["taints"], json!([]));
    }
}
