//! MetalLB's configuration converted into `IPPool`s and `BGPPeer`s: `IPAddressPool`,
//! `L2Advertisement`, `BGPAdvertisement`, `BGPPeer`, `BFDProfile` and `Community` objects, or
//! the ConfigMap of MetalLB 0.12 and older, read as JSON values (from files or the API) and
//! converted without I/O. Every field of every input is accounted for in a [`Report`]:
//! mapped exactly, approximately (with why), or without equivalent (with why).
//!
//! Object bookkeeping the API server writes (`uid`, `resourceVersion`, `managedFields`,
//! `status`, ...) is read and dropped without a finding: it configures nothing.

mod advertise;
mod fields;
mod legacy;
mod peer;
mod pool;
mod source;
#[cfg(test)]
mod tests;

use std::fmt;

use crate::crd::bgppeer::BGPPeer;
use crate::crd::ippool::IPPool;

use fields::Findings;

/// The label each converted `BGPPeer` carries with its MetalLB name as value, which the
/// pools' `announce.bgp.peerSelector` selects (a `BGPAdvertisement`'s `peers`).
pub const PEER_LABEL: &str = "baremetal-ccm.io/metallb-peer";

/// The key of MetalLB's password Secrets (`passwordSecret`) and of the Secrets we ask for.
pub const PASSWORD_KEY: &str = "password";

/// How to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The namespace whose Secrets hold BGP passwords (`--bgp-password-namespace`).
    pub bgp_password_namespace: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bgp_password_namespace: "baremetal-ccm-bgp".to_owned(),
        }
    }
}

/// The result of a conversion: our objects, the Secrets the operator must provide, and the
/// report. Objects that cannot be valid are left out (and reported).
#[derive(Debug, Clone)]
pub struct Converted {
    pub pools: Vec<IPPool>,
    pub peers: Vec<BGPPeer>,
    pub secrets_to_copy: Vec<SecretCopy>,
    pub report: Report,
}

/// A BGP password Secret the operator must create in the BGP password namespace. The
/// converter never reads or prints a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretCopy {
    /// The converted `BGPPeer` whose `passwordSecretRef` names this Secret.
    pub peer: String,
    /// Where to create it: the BGP password namespace.
    pub namespace: String,
    pub name: String,
    pub key: String,
    pub source: SecretSource,
}

/// Where the password is today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Key `key` of an existing Secret (MetalLB's `passwordSecret`).
    Secret {
        namespace: String,
        name: String,
        key: String,
    },
    /// Written in clear in a MetalLB object (`password`); `object` and `field` name it.
    Inline { object: String, field: String },
}

impl SecretCopy {
    /// What the operator runs or does, as one line (no password in it).
    pub fn instruction(&self) -> String {
        let target = format!(
            "kubectl -n {} create secret generic {}",
            self.namespace, self.name
        );
        match &self.source {
            SecretSource::Secret {
                namespace,
                name,
                key,
            } => format!(
                "kubectl -n {namespace} get secret {name} -o jsonpath='{{.data.{key}}}' | base64 -d | {target} --from-file={}=/dev/stdin",
                self.key
            ),
            SecretSource::Inline { object, field } => format!(
                "{target} --from-literal={}=<the password in {object} {field}>",
                self.key
            ),
        }
    }
}

/// What maps and what does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// Whether something has no equivalent: applying the objects would change behaviour.
    pub fn blocking(&self) -> bool {
        self.findings.iter().any(|f| f.fit == Fit::NoEquivalent)
    }
}

/// One field of one input and how it maps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// The input object: `IPAddressPool metallb-system/lan`.
    pub object: String,
    /// The field, as a path in the input (`spec.serviceAllocation.priority`), or a name of
    /// our own in parentheses for what concerns the object as a whole (`(announce)`).
    pub field: String,
    pub fit: Fit,
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fit {
    /// Same behaviour.
    Exact,
    /// Close; the note says what differs and why it was chosen.
    Approximate,
    /// Ours cannot express it, or the input is invalid: the converted objects would behave
    /// differently. Blocking.
    NoEquivalent,
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: the report aligns the column with a width.
        f.pad(match self {
            Fit::Exact => "exact",
            Fit::Approximate => "approximate",
            Fit::NoEquivalent => "no-equivalent",
        })
    }
}

/// Converts MetalLB objects (any order; other kinds are reported once per kind as ignored).
pub fn convert(objects: &[serde_json::Value], options: &Options) -> Converted {
    let mut findings = Findings::default();
    let inputs = source::Inputs::read(objects, &mut findings);
    let profiles = peer::read_bfd_profiles(&inputs.bfd_profiles, &mut findings);
    let (peers, secrets_to_copy) =
        peer::convert_peers(&inputs.peers, &profiles, options, &mut findings);
    let communities = advertise::read_communities(&inputs.communities, &mut findings);
    let metal_pools = pool::read_pools(&inputs.pools, &mut findings);
    let peer_names: Vec<&str> = inputs.peers.iter().map(|p| p.name.as_str()).collect();
    let announcements = advertise::resolve(
        &inputs,
        &metal_pools,
        &communities,
        &peer_names,
        &mut findings,
    );
    let pools = pool::convert_pools(metal_pools, announcements, &mut findings);
    let mut report = Report {
        findings: findings.0,
    };
    report.findings.sort();
    report.findings.dedup();
    Converted {
        pools,
        peers,
        secrets_to_copy,
        report,
    }
}

/// The converted objects as multi-document YAML: pools then peers, each by name.
pub fn render_objects(converted: &Converted) -> String {
    let mut pools: Vec<&IPPool> = converted.pools.iter().collect();
    pools.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut peers: Vec<&BGPPeer> = converted.peers.iter().collect();
    peers.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut out = String::new();
    for pool in pools {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(pool).expect("an IPPool serializes to YAML"));
    }
    for peer in peers {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(peer).expect("a BGPPeer serializes to YAML"));
    }
    out
}

/// The report, one line per finding (`fit object field: note`), sorted by object and field.
pub fn render_report(report: &Report) -> String {
    let mut findings: Vec<&Finding> = report.findings.iter().collect();
    findings.sort();
    let mut out = String::new();
    for f in findings {
        let note = f.note.replace('\n', " ");
        out.push_str(&format!("{:<13} {} {}: {note}\n", f.fit, f.object, f.field));
    }
    out
}
