//! What initializing or refreshing a Node changes, decided from the Node and its instance's
//! metadata alone (no client, no provider calls).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Taint};

use super::node_ip::{self, NodeIpError};
use crate::instance::{AddressType, InstanceMetadata, NodeAddress, NodeQuery};

pub use crate::contract::UNINITIALIZED_TAINT;

/// Stable and beta label pairs: (stable, beta).
pub const ZONE_LABELS: (&str, &str) = (
    "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/zone",
);
pub const REGION_LABELS: (&str, &str) = (
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/region",
);
pub const INSTANCE_TYPE_LABELS: (&str, &str) = (
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    NodeIp(#[from] NodeIpError),
    #[error("the instance provider gave no providerID and the node has none")]
    NoProviderId,
}

/// Whether the node still waits for initialization.
pub fn is_uninitialized(node: &Node) -> bool {
    taints(node).iter().any(|t| t.key == UNINITIALIZED_TAINT)
}

pub fn taints(node: &Node) -> &[Taint] {
    (node.spec.as_ref().and_then(|s| s.taints.as_deref())).unwrap_or_default()
}

/// What the provider is asked about this node. A malformed node-IP annotation is an error:
/// the node cannot be initialized until its kubelet is fixed.
pub fn query(node: &Node) -> Result<NodeQuery, NodeIpError> {
    let annotation = (node.metadata.annotations.as_ref()).and_then(|a| a.get(node_ip::ANNOTATION));
    let node_ips = match annotation {
        Some(value) => node_ip::parse(value)?,
        None => Vec::new(),
    };
    let provider_id = (node.spec.as_ref())
        .and_then(|s| s.provider_id.clone())
        .filter(|id| !id.is_empty());
    let system_uuid = (node.status.as_ref())
        .and_then(|s| s.node_info.as_ref())
        .map(|i| i.system_uuid.clone())
        .filter(|id| !id.is_empty());
    Ok(NodeQuery {
        name: node.metadata.name.clone().unwrap_or_default(),
        provider_id,
        system_uuid,
        node_ips,
    })
}

/// The writes that initialize a node: one Node update, then its addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Initialization {
    /// Set when the node has none (it is immutable once set).
    pub provider_id: Option<String>,
    /// Labels to set (the node's other labels stay).
    pub labels: BTreeMap<String, String>,
    /// The node's taints without the uninitialized one.
    pub taints: Vec<Taint>,
    /// The whole new `status.addresses`; `None` leaves it alone (the provider knows none).
    pub addresses: Option<Vec<NodeAddress>>,
}

/// Decides the initialization of a tainted node, or why it must stay tainted.
pub fn initialize(
    node: &Node,
    query: &NodeQuery,
    meta: &InstanceMetadata,
) -> Result<Initialization, InitError> {
    let provider_id = match (&query.provider_id, meta.provider_id.is_empty()) {
        (Some(_), _) => None,
        (None, false) => Some(meta.provider_id.clone()),
        (None, true) => return Err(InitError::NoProviderId),
    };
    let addresses = addresses(node, query, meta)?;
    let mut labels = BTreeMap::new();
    let pairs = [
        (ZONE_LABELS, &meta.zone),
        (REGION_LABELS, &meta.region),
        (INSTANCE_TYPE_LABELS, &meta.instance_type),
    ];
    for ((stable, beta), value) in pairs {
        if let Some(value) = value.as_ref().filter(|v| !v.is_empty()) {
            labels.insert(stable.to_owned(), value.clone());
            labels.insert(beta.to_owned(), value.clone());
        }
    }
    let existing = node.metadata.labels.clone().unwrap_or_default();
    for (key, value) in &meta.labels {
        // Providers may not write into the Kubernetes label namespaces, nor overwrite a label.
        if !is_kubernetes_label(key) && !existing.contains_key(key) {
            labels.insert(key.clone(), value.clone());
        }
    }
    labels.retain(|key, value| existing.get(key) != Some(value));
    let taints = (taints(node).iter())
        .filter(|t| t.key != UNINITIALIZED_TAINT)
        .cloned()
        .collect();
    Ok(Initialization {
        provider_id,
        labels,
        taints,
        addresses,
    })
}

/// What the periodic refresh of an initialized node changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Refresh {
    /// The new `status.addresses`, when it differs from the node's.
    pub addresses: Option<Vec<NodeAddress>>,
    /// Beta labels brought back in line with their stable twins.
    pub labels: BTreeMap<String, String>,
}

impl Refresh {
    pub fn is_empty(&self) -> bool {
        self.addresses.is_none() && self.labels.is_empty()
    }
}

/// Decides the refresh of an initialized node: addresses that changed at the provider, and
/// beta topology labels that drifted from their stable twins.
pub fn refresh(
    node: &Node,
    query: &NodeQuery,
    meta: &InstanceMetadata,
) -> Result<Refresh, NodeIpError> {
    let addresses = addresses(node, query, meta)?.filter(|new| *new != current_addresses(node));
    let existing = node.metadata.labels.clone().unwrap_or_default();
    let mut labels = BTreeMap::new();
    for (stable, beta) in [ZONE_LABELS, REGION_LABELS, INSTANCE_TYPE_LABELS] {
        if let Some(value) = existing.get(stable)
            && existing.get(beta) != Some(value)
        {
            labels.insert(beta.to_owned(), value.clone());
        }
    }
    Ok(Refresh { addresses, labels })
}

/// The node's addresses as the provider sees them: its Hostname kept when the provider has
/// none, ordered around the kubelet's node IPs. `None` when the provider knows no address.
fn addresses(
    node: &Node,
    query: &NodeQuery,
    meta: &InstanceMetadata,
) -> Result<Option<Vec<NodeAddress>>, NodeIpError> {
    if meta.addresses.is_empty() {
        // Still check the claimed node IP: an instance without addresses cannot have it.
        node_ip::prefer(&query.node_ips, Vec::new())?;
        return Ok(None);
    }
    let mut addresses = meta.addresses.clone();
    if !addresses.iter().any(|a| a.kind == AddressType::Hostname) {
        addresses.extend(
            current_addresses(node)
                .into_iter()
                .filter(|a| a.kind == AddressType::Hostname),
        );
    }
    node_ip::prefer(&query.node_ips, addresses).map(Some)
}

/// The node's `status.addresses`, types the API does not know skipped.
pub fn current_addresses(node: &Node) -> Vec<NodeAddress> {
    (node.status.as_ref().and_then(|s| s.addresses.as_ref()))
        .into_iter()
        .flatten()
        .filter_map(|a| AddressType::parse(&a.type_).map(|kind| NodeAddress::new(kind, &a.address)))
        .collect()
}

/// `kubernetes.io/` and `k8s.io/` and their subdomains.
fn is_kubernetes_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, NodeSystemInfo};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// A Node the way a kubelet in external mode registers it.
    struct Kubelet {
        node: Node,
    }

    impl Kubelet {
        fn registers(name: &str) -> Self {
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    labels: Some([("kubernetes.io/hostname".to_owned(), name.to_owned())].into()),
                    ..ObjectMeta::default()
                },
                spec: Some(NodeSpec {
                    taints: Some(vec![
                        Taint {
                            key: UNINITIALIZED_TAINT.into(),
                            value: Some("true".into()),
                            effect: "NoSchedule".into(),
                            ..Taint::default()
                        },
                        Taint {
                            key: "node.kubernetes.io/not-ready".into(),
                            effect: "NoSchedule".into(),
                            ..Taint::default()
                        },
                    ]),
                    ..NodeSpec::default()
                }),
                status: Some(NodeStatus {
                    addresses: Some(vec![k8s_openapi::api::core::v1::NodeAddress {
                        type_: "Hostname".into(),
                        address: name.into(),
                    }]),
                    node_info: Some(NodeSystemInfo {
                        system_uuid: "4C4C4544-0042".into(),
                        ..NodeSystemInfo::default()
                    }),
                    ..NodeStatus::default()
                }),
            };
            Self { node }
        }

        fn node_ip(mut self, value: &str) -> Self {
            self.node.metadata.annotations =
                Some([(node_ip::ANNOTATION.to_owned(), value.to_owned())].into());
            self
        }

        fn provider_id(mut self, id: &str) -> Self {
            self.node.spec.get_or_insert_default().provider_id = Some(id.into());
            self
        }

        fn label(mut self, key: &str, value: &str) -> Self {
            (self.node.metadata.labels.get_or_insert_default()).insert(key.into(), value.into());
            self
        }
    }

    fn meta(addresses: &[(AddressType, &str)]) -> InstanceMetadata {
        InstanceMetadata {
            provider_id: "baremetal://n1".into(),
            zone: Some("dc1-a".into()),
            region: Some("dc1".into()),
            instance_type: Some("metal".into()),
            addresses: (addresses.iter())
                .map(|(k, a)| NodeAddress::new(*k, *a))
                .collect(),
            ..InstanceMetadata::default()
        }
    }

    fn init(kubelet: &Kubelet, meta: &InstanceMetadata) -> Result<Initialization, InitError> {
        let query = query(&kubelet.node).expect("fixture annotations are well-formed");
        initialize(&kubelet.node, &query, meta)
    }

    #[test]
    fn initialization_sets_the_provider_id_labels_and_lifts_only_the_cloud_taint() {
        let kubelet = Kubelet::registers("n1").node_ip("192.0.2.10");
        let plan = init(&kubelet, &meta(&[(AddressType::InternalIP, "192.0.2.10")])).unwrap();
        assert_eq!(plan.provider_id.as_deref(), Some("baremetal://n1"));
        let keys: Vec<&str> = plan.labels.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "beta.kubernetes.io/instance-type",
                "failure-domain.beta.kubernetes.io/region",
                "failure-domain.beta.kubernetes.io/zone",
                "node.kubernetes.io/instance-type",
                "topology.kubernetes.io/region",
                "topology.kubernetes.io/zone",
            ]
        );
        let left: Vec<&str> = plan.taints.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(left, ["node.kubernetes.io/not-ready"]);
        assert_eq!(
            plan.addresses.unwrap(),
            [
                NodeAddress::new(AddressType::InternalIP, "192.0.2.10"),
                NodeAddress::new(AddressType::Hostname, "n1"),
            ]
        );
    }

    #[test]
    fn a_provider_id_the_kubelet_set_is_never_rewritten() {
        let kubelet = Kubelet::registers("n1").provider_id("baremetal://chassis-9");
        let plan = init(&kubelet, &meta(&[])).unwrap();
        assert_eq!(plan.provider_id, None);
    }

    #[test]
    fn without_any_provider_id_the_node_stays_tainted() {
        let mut m = meta(&[]);
        m.provider_id.clear();
        assert_eq!(
            init(&Kubelet::registers("n1"), &m),
            Err(InitError::NoProviderId)
        );
    }

    #[test]
    fn a_node_ip_the_instance_lacks_keeps_the_taint() {
        let kubelet = Kubelet::registers("n1").node_ip("192.0.2.99");
        let error = init(&kubelet, &meta(&[(AddressType::InternalIP, "192.0.2.10")])).unwrap_err();
        assert!(matches!(
            error,
            InitError::NodeIp(NodeIpError::NotAnInstanceAddress { .. })
        ));
        // Also when the provider knows no address at all.
        assert!(init(&kubelet, &meta(&[])).is_err());
    }

    #[test]
    fn a_provider_hostname_replaces_the_kubelets() {
        let kubelet = Kubelet::registers("n1");
        let plan = init(
            &kubelet,
            &meta(&[
                (AddressType::InternalIP, "192.0.2.10"),
                (AddressType::Hostname, "n1.example"),
            ]),
        )
        .unwrap();
        let hostnames: Vec<&str> = (plan.addresses.iter().flatten())
            .filter(|a| a.kind == AddressType::Hostname)
            .map(|a| a.address.as_str())
            .collect();
        assert_eq!(hostnames, ["n1.example"]);
    }

    #[test]
    fn without_provider_addresses_the_status_is_left_alone() {
        let plan = init(&Kubelet::registers("n1"), &meta(&[])).unwrap();
        assert_eq!(plan.addresses, None);
    }

    #[test]
    fn labels_already_right_are_not_rewritten_and_provider_labels_never_overwrite() {
        let kubelet = Kubelet::registers("n1")
            .label("topology.kubernetes.io/zone", "dc1-a")
            .label("failure-domain.beta.kubernetes.io/zone", "dc1-a")
            .label("example.com/rack", "r1");
        let mut m = meta(&[]);
        m.zone = Some("dc1-a".into());
        m.region = None;
        m.instance_type = None;
        m.labels = [
            ("example.com/rack".to_owned(), "r2".to_owned()),
            ("example.com/row".to_owned(), "7".to_owned()),
            ("node.kubernetes.io/exclude".to_owned(), "x".to_owned()),
            ("sub.k8s.io/x".to_owned(), "x".to_owned()),
        ]
        .into();
        let plan = init(&kubelet, &m).unwrap();
        assert_eq!(
            plan.labels,
            BTreeMap::from([("example.com/row".to_owned(), "7".to_owned())])
        );
    }

    #[test]
    fn refresh_writes_addresses_only_when_they_changed() {
        let mut kubelet = Kubelet::registers("n1");
        let m = meta(&[(AddressType::InternalIP, "192.0.2.10")]);
        let q = query(&kubelet.node).unwrap();
        let first = refresh(&kubelet.node, &q, &m).unwrap();
        let written = first.addresses.clone().expect("the kubelet's list differs");
        kubelet.node.status.get_or_insert_default().addresses = Some(
            (written.iter())
                .map(|a| k8s_openapi::api::core::v1::NodeAddress {
                    type_: a.kind.to_string(),
                    address: a.address.clone(),
                })
                .collect(),
        );
        assert!(refresh(&kubelet.node, &q, &m).unwrap().is_empty());
    }

    #[test]
    fn refresh_brings_beta_labels_back_to_their_stable_twins() {
        let kubelet = Kubelet::registers("n1")
            .label("topology.kubernetes.io/zone", "dc1-b")
            .label("failure-domain.beta.kubernetes.io/zone", "dc1-a")
            .label("node.kubernetes.io/instance-type", "metal");
        let q = query(&kubelet.node).unwrap();
        let plan = refresh(&kubelet.node, &q, &meta(&[])).unwrap();
        assert_eq!(
            plan.labels,
            BTreeMap::from([
                (
                    "beta.kubernetes.io/instance-type".to_owned(),
                    "metal".to_owned()
                ),
                (
                    "failure-domain.beta.kubernetes.io/zone".to_owned(),
                    "dc1-b".to_owned()
                ),
            ])
        );
        assert_eq!(plan.addresses, None);
    }

    #[test]
    fn the_query_carries_what_the_kubelet_reported() {
        let kubelet = Kubelet::registers("n1").node_ip("2001:db8::10,192.0.2.10");
        let q = query(&kubelet.node).unwrap();
        assert_eq!(q.name, "n1");
        assert_eq!(q.system_uuid.as_deref(), Some("4C4C4544-0042"));
        assert_eq!(q.node_ips.len(), 2);
        assert!(query(&Kubelet::registers("n1").node_ip("192.0.2.1 ").node).is_err());
    }
}
