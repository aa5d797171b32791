//! The `static` instance provider: node metadata written by the operator in the cloud-config
//! file, as defaults plus per-node entries matched by name or by pattern.
//!
//! Addresses: an entry's `addresses`, plus the kubelet's `--node-ip` (the provided-node-ip
//! annotation) as InternalIP for every IP family the entry pins no InternalIP of. Pinning an
//! InternalIP therefore makes the node IP checked: a kubelet claiming another address keeps its
//! node tainted. The machine of a static node always "exists": this provider never reports a
//! node shut down or gone, so nodes are never deleted.

use std::net::IpAddr;

use serde::Deserialize;

use super::{
    AddressType, InstanceMetadata, InstanceProvider, InstanceState, NodeAddress, NodeQuery,
    ProviderError,
};
use crate::cloud_config::{FieldError, is_label_value};

/// The providerID scheme of this provider.
pub(crate) const SCHEME: &str = "baremetal://";

/// The `static:` section of the cloud config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct StaticConfig {
    /// What nodes without an entry get, and what entries do not override.
    #[serde(default)]
    pub defaults: Topology,
    /// Per-node entries; an exact `name` wins over a `pattern`, patterns in file order.
    #[serde(default)]
    pub nodes: Vec<NodeEntry>,
}

/// Zone, region and instance type; each becomes its label (and the beta twin) when set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Topology {
    pub zone: Option<String>,
    pub region: Option<String>,
    pub instance_type: Option<String>,
}

/// The metadata of one node (or of every node a pattern matches).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeEntry {
    /// The node's exact name.
    pub name: Option<String>,
    /// A name pattern: `*` matches any run of characters, `?` one character.
    pub pattern: Option<String>,
    /// The providerID to set instead of `baremetal://<node>` (only with `name`).
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    pub zone: Option<String>,
    pub region: Option<String>,
    pub instance_type: Option<String>,
    /// Addresses of the machine, in order of preference.
    #[serde(default)]
    pub addresses: Vec<AddressEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressEntry {
    /// `InternalIP`, `ExternalIP`, `Hostname`, `InternalDNS` or `ExternalDNS`.
    #[serde(rename = "type")]
    pub kind: String,
    pub address: String,
}

impl StaticConfig {
    /// Checks what serde cannot; `at` is this section's path in the file.
    pub fn validate(&self, at: &str) -> Result<(), FieldError> {
        validate_topology(&self.defaults, &format!("{at}.defaults"))?;
        let mut names = std::collections::BTreeMap::new();
        for (index, entry) in self.nodes.iter().enumerate() {
            let here = format!("{at}.nodes[{index}]");
            entry.validate(&here)?;
            if let Some(name) = &entry.name
                && let Some(first) = names.insert(name.clone(), index)
            {
                return Err(FieldError::new(
                    format!("{here}.name"),
                    format!("node {name:?} already has an entry ({at}.nodes[{first}])"),
                ));
            }
        }
        Ok(())
    }
}

impl NodeEntry {
    fn validate(&self, here: &str) -> Result<(), FieldError> {
        match (&self.name, &self.pattern) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(FieldError::new(
                    here,
                    "give exactly one of name and pattern",
                ));
            }
            (None, Some(_)) if self.provider_id.is_some() => {
                return Err(FieldError::new(
                    format!("{here}.providerID"),
                    "only an entry with a name can set a providerID (a pattern matches several nodes)",
                ));
            }
            (Some(name), None) if name.is_empty() => {
                return Err(FieldError::new(format!("{here}.name"), "must not be empty"));
            }
            _ => {}
        }
        if let Some(id) = &self.provider_id {
            let valid = id
                .split_once("://")
                .is_some_and(|(scheme, rest)| !scheme.is_empty() && !rest.is_empty());
            if !valid {
                return Err(FieldError::new(
                    format!("{here}.providerID"),
                    format!("{id:?} is not of the form <scheme>://<id>"),
                ));
            }
        }
        validate_topology(&self.topology(), here)?;
        for (index, address) in self.addresses.iter().enumerate() {
            address.parse().map_err(|message| {
                FieldError::new(format!("{here}.addresses[{index}]"), message)
            })?;
        }
        Ok(())
    }

    fn topology(&self) -> Topology {
        Topology {
            zone: self.zone.clone(),
            region: self.region.clone(),
            instance_type: self.instance_type.clone(),
        }
    }

    fn matches(&self, node: &str) -> bool {
        match (&self.name, &self.pattern) {
            (Some(name), _) => name == node,
            (None, Some(pattern)) => glob(pattern.as_bytes(), node.as_bytes()),
            (None, None) => false,
        }
    }
}

impl AddressEntry {
    fn parse(&self) -> Result<NodeAddress, String> {
        let kind = AddressType::parse(&self.kind).ok_or_else(|| {
            format!(
                "type {:?} is not one of InternalIP, ExternalIP, Hostname, InternalDNS, ExternalDNS",
                self.kind
            )
        })?;
        let is_ip = matches!(kind, AddressType::InternalIP | AddressType::ExternalIP);
        if is_ip {
            let ip: IpAddr = self
                .address
                .parse()
                .map_err(|_not_ip| format!("{:?} is not an IP address", self.address))?;
            // The canonical spelling, so that comparisons with the kubelet's agree.
            return Ok(NodeAddress::new(kind, ip.to_string()));
        }
        if self.address.is_empty() || self.address.contains(char::is_whitespace) {
            return Err(format!("{:?} is not a host name", self.address));
        }
        Ok(NodeAddress::new(kind, self.address.clone()))
    }
}

fn validate_topology(topology: &Topology, here: &str) -> Result<(), FieldError> {
    let fields = [
        ("zone", &topology.zone),
        ("region", &topology.region),
        ("instanceType", &topology.instance_type),
    ];
    for (field, value) in fields {
        if let Some(value) = value
            && !is_label_value(value)
        {
            return Err(FieldError::new(
                format!("{here}.{field}"),
                format!(
                    "{value:?} is not a valid label value (at most 63 characters: letters, digits, '-', '_', '.', beginning and ending with a letter or digit)"
                ),
            ));
        }
    }
    Ok(())
}

/// `*` matches any run of bytes, `?` exactly one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// The static provider, built from a validated [`StaticConfig`].
#[derive(Debug, Clone)]
pub(crate) struct StaticProvider {
    config: StaticConfig,
}

impl StaticProvider {
    /// `config` must have passed [`StaticConfig::validate`] (the cloud-config loader does it).
    pub(crate) fn new(config: StaticConfig) -> Self {
        Self { config }
    }

    fn entry(&self, node: &str) -> Option<&NodeEntry> {
        let nodes = &self.config.nodes;
        (nodes.iter().find(|e| e.name.as_deref() == Some(node))).or_else(|| {
            nodes
                .iter()
                .find(|e| e.pattern.is_some() && e.matches(node))
        })
    }

    /// The providerID the node has or gets; an existing one of another scheme is refused.
    fn provider_id(node: &NodeQuery, entry: Option<&NodeEntry>) -> Result<String, ProviderError> {
        let configured = entry.and_then(|e| e.provider_id.clone());
        match &node.provider_id {
            Some(existing)
                if existing.starts_with(SCHEME) || Some(existing) == configured.as_ref() =>
            {
                Ok(existing.clone())
            }
            Some(existing) => Err(ProviderError::ForeignProviderId {
                provider_id: existing.clone(),
                expected: configured.unwrap_or_else(|| format!("{SCHEME}{}", node.name)),
            }),
            None => Ok(configured.unwrap_or_else(|| format!("{SCHEME}{}", node.name))),
        }
    }
}

impl InstanceProvider for StaticProvider {
    fn name(&self) -> &'static str {
        "static"
    }

    async fn metadata(&self, node: &NodeQuery) -> Result<InstanceMetadata, ProviderError> {
        let entry = self.entry(&node.name);
        let provider_id = Self::provider_id(node, entry)?;
        let defaults = &self.config.defaults;
        let topology = entry.map(NodeEntry::topology).unwrap_or_default();
        let pick = |own: Option<String>, default: &Option<String>| own.or_else(|| default.clone());
        let mut addresses: Vec<NodeAddress> = (entry.map(|e| e.addresses.as_slice()))
            .unwrap_or_default()
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let pinned = |ip: &IpAddr| {
            addresses.iter().any(|a| {
                a.kind == AddressType::InternalIP
                    && a.address
                        .parse::<IpAddr>()
                        .is_ok_and(|p| p.is_ipv4() == ip.is_ipv4())
            })
        };
        let adopted: Vec<NodeAddress> = (node.node_ips.iter())
            .filter(|ip| !pinned(ip))
            .map(|ip| NodeAddress::new(AddressType::InternalIP, ip.to_string()))
            .collect();
        addresses.splice(0..0, adopted);
        Ok(InstanceMetadata {
            provider_id,
            zone: pick(topology.zone, &defaults.zone),
            region: pick(topology.region, &defaults.region),
            instance_type: pick(topology.instance_type, &defaults.instance_type),
            addresses,
            labels: Default::default(),
        })
    }

    async fn state(&self, node: &NodeQuery) -> Result<InstanceState, ProviderError> {
        Self::provider_id(node, self.entry(&node.name))?;
        Ok(InstanceState::Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud_config::CloudConfig;

    fn provider(yaml: &str) -> StaticProvider {
        let config = CloudConfig::parse(yaml).expect("fixture config is valid");
        StaticProvider::new(config.static_.unwrap_or_default())
    }

    fn query(name: &str) -> NodeQuery {
        NodeQuery {
            name: name.into(),
            ..NodeQuery::default()
        }
    }

    const FILE: &str = r#"
static:
  defaults: {zone: dc1-a, region: dc1, instanceType: metal}
  nodes:
    - pattern: "gpu-*"
      instanceType: gpu
    - name: gpu-7
      zone: dc1-c
      providerID: baremetal://rack3/gpu-7
      addresses:
        - {type: InternalIP, address: "192.0.2.7"}
        - {type: ExternalIP, address: "203.0.113.7"}
    - name: v6-only
      addresses:
        - {type: InternalIP, address: "2001:db8:0::7"}
"#;

    #[tokio::test]
    async fn a_node_without_an_entry_gets_the_defaults_and_the_derived_provider_id() {
        let meta = provider(FILE).metadata(&query("worker-1")).await.unwrap();
        assert_eq!(meta.provider_id, "baremetal://worker-1");
        assert_eq!(
            (
                meta.zone.as_deref(),
                meta.region.as_deref(),
                meta.instance_type.as_deref()
            ),
            (Some("dc1-a"), Some("dc1"), Some("metal"))
        );
        assert!(meta.addresses.is_empty());
    }

    #[tokio::test]
    async fn an_exact_name_wins_over_an_earlier_pattern() {
        let p = provider(FILE);
        let exact = p.metadata(&query("gpu-7")).await.unwrap();
        assert_eq!(exact.provider_id, "baremetal://rack3/gpu-7");
        assert_eq!(exact.zone.as_deref(), Some("dc1-c"));
        // Fields the entry does not set come from the defaults, not from the pattern.
        assert_eq!(exact.instance_type.as_deref(), Some("metal"));
        let patterned = p.metadata(&query("gpu-1")).await.unwrap();
        assert_eq!(patterned.instance_type.as_deref(), Some("gpu"));
        assert_eq!(patterned.zone.as_deref(), Some("dc1-a"));
    }

    #[tokio::test]
    async fn the_node_ip_is_adopted_only_for_families_the_entry_does_not_pin() {
        let p = provider(FILE);
        let mut q = query("v6-only");
        q.node_ips = vec![
            "192.0.2.50".parse().unwrap(),
            "2001:db8::99".parse().unwrap(),
        ];
        let meta = p.metadata(&q).await.unwrap();
        assert_eq!(
            meta.addresses,
            [
                NodeAddress::new(AddressType::InternalIP, "192.0.2.50"),
                // Canonical spelling of the pinned address; the claimed v6 is not adopted.
                NodeAddress::new(AddressType::InternalIP, "2001:db8::7"),
            ]
        );
    }

    #[tokio::test]
    async fn a_provider_id_set_by_the_kubelet_is_kept_and_a_foreign_one_refused() {
        let p = provider(FILE);
        let mut q = query("worker-2");
        q.provider_id = Some("baremetal://chassis-9".into());
        assert_eq!(
            p.metadata(&q).await.unwrap().provider_id,
            "baremetal://chassis-9"
        );
        q.provider_id = Some("aws:///eu-west-1a/i-0abc".into());
        let error = p.metadata(&q).await.unwrap_err();
        assert!(
            matches!(error, ProviderError::ForeignProviderId { .. }),
            "{error:?}"
        );
        assert!(p.state(&q).await.is_err());
        // The configured providerID of another scheme counts as ours for that node.
        let mut q = query("gpu-7");
        q.provider_id = Some("baremetal://rack3/gpu-7".into());
        assert!(p.metadata(&q).await.is_ok());
    }

    #[tokio::test]
    async fn static_machines_are_never_shut_down_or_gone() {
        let state = provider(FILE).state(&query("anything")).await.unwrap();
        assert_eq!(state, InstanceState::Running);
    }

    fn invalid_field(yaml: &str) -> String {
        CloudConfig::parse(yaml).unwrap_err().field().to_owned()
    }

    #[test]
    fn invalid_entries_are_refused_naming_the_field() {
        let cases = [
            ("static:\n  nodes:\n    - zone: a\n", "static.nodes[0]"),
            (
                "static:\n  nodes:\n    - {name: a, pattern: 'b*'}\n",
                "static.nodes[0]",
            ),
            (
                "static:\n  nodes:\n    - {pattern: 'b*', providerID: 'baremetal://x'}\n",
                "static.nodes[0].providerID",
            ),
            (
                "static:\n  nodes:\n    - {name: a, providerID: 'a-b'}\n",
                "static.nodes[0].providerID",
            ),
            (
                "static:\n  nodes:\n    - {name: a, zone: 'eu west'}\n",
                "static.nodes[0].zone",
            ),
            (
                "static:\n  defaults: {instanceType: '-x'}\n",
                "static.defaults.instanceType",
            ),
            (
                "static:\n  nodes:\n    - name: a\n      addresses: [{type: InternalIP, address: '10.0.0.300'}]\n",
                "static.nodes[0].addresses[0]",
            ),
            (
                "static:\n  nodes:\n    - name: a\n      addresses: [{type: Internal, address: '10.0.0.3'}]\n",
                "static.nodes[0].addresses[0]",
            ),
            (
                "static:\n  nodes:\n    - {name: a}\n    - {name: a}\n",
                "static.nodes[1].name",
            ),
            (
                "static:\n  nodes:\n    - {name: a, zon: b}\n",
                "static.nodes[0].zon",
            ),
        ];
        for (yaml, field) in cases {
            assert_eq!(invalid_field(yaml), field, "{yaml}");
        }
    }

    #[test]
    fn glob_patterns_match_runs_and_single_characters() {
        assert!(glob(b"gpu-*", b"gpu-1"));
        assert!(glob(b"gpu-*", b"gpu-"));
        assert!(glob(b"*-worker-??", b"rack1-worker-07"));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"gpu-*", b"cpu-1"));
        assert!(!glob(b"w?", b"w10"));
        assert!(!glob(b"a*b", b"acbd"));
    }
}
