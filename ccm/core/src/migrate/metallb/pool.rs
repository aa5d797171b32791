//! `IPAddressPool` to `IPPool`: addresses, assignment, service allocation and the priority
//! order MetalLB gives it; then each pool checked with our own validation.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use super::fields::{Findings, Invalid, Reader};
use super::source::Object;
use crate::crd::ippool::{AllocationScope, Announce, AnnounceMode, IPPool, IPPoolSpec};
use crate::ipam::{AddressRange, RangeError};

/// Our schema's bounds on `addresses`.
const MAX_ADDRESSES: usize = 64;
const MAX_ADDRESS_LEN: usize = 100;
const MAX_COMMUNITIES: usize = 32;

/// A MetalLB pool as read, before its announcement is known.
#[derive(Debug)]
pub(super) struct MetalPool {
    pub(super) label: String,
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
    addresses: Vec<String>,
    auto_assign: bool,
    avoid_buggy_ips: bool,
    /// `serviceAllocation`, when given.
    allocation: Option<Allocation>,
    /// False when something makes the pool unconvertible (already reported).
    usable: bool,
}

#[derive(Debug)]
struct Allocation {
    /// 0 when unset.
    priority: i32,
    /// Whether it names namespaces or Services at all: MetalLB assigns automatically from a
    /// pool with `serviceAllocation` only to the Services it selects.
    selects: bool,
    scope: AllocationScope,
}

pub(super) fn read_pools(objects: &[Object], findings: &mut Findings) -> Vec<MetalPool> {
    objects.iter().map(|o| read_pool(o, findings)).collect()
}

fn read_pool(object: &Object, findings: &mut Findings) -> MetalPool {
    let label = object.label.as_str();
    let mut spec = Reader::new(label, "spec", &object.spec, findings);
    let addresses = read_addresses(&mut spec, findings);
    let auto_assign = spec.boolean("autoAssign", findings).ok().flatten();
    if let Some(auto) = auto_assign {
        findings.exact(label, "spec.autoAssign", format!("autoAssign: {auto}"));
    }
    let avoid = spec.boolean("avoidBuggyIPs", findings).ok().flatten();
    if let Some(avoid) = avoid {
        findings.exact(
            label,
            "spec.avoidBuggyIPs",
            format!("avoidBuggyIPs: {avoid}"),
        );
    }
    let allocation = spec
        .has("serviceAllocation")
        .then(|| read_allocation(spec.nested("serviceAllocation", findings), findings));
    spec.finish(findings);
    findings.exact(
        label,
        "metadata.name",
        "kept as the IPPool's name: Services' metallb.io/address-pool annotation names it",
    );
    MetalPool {
        label: object.label.clone(),
        name: object.name.clone(),
        labels: object.labels.clone(),
        usable: addresses.is_ok(),
        addresses: addresses.unwrap_or_default(),
        auto_assign: auto_assign.unwrap_or(true),
        avoid_buggy_ips: avoid.unwrap_or(false),
        allocation,
    }
}

/// The addresses in the form our schema takes: a CIDR with host bits becomes its network
/// (MetalLB masks them too), spaces around a range's `-` go.
fn read_addresses(spec: &mut Reader<'_>, findings: &mut Findings) -> Result<Vec<String>, Invalid> {
    let label = spec.object();
    let given = spec.strings("addresses", findings)?;
    if given.is_empty() || given.len() > MAX_ADDRESSES {
        findings.none(
            label,
            "spec.addresses",
            format!(
                "{} entries; ours takes 1 to {MAX_ADDRESSES}: not converted",
                given.len()
            ),
        );
        return Err(Invalid);
    }
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for text in &given {
        match canonical_address(text) {
            Ok(canonical) => {
                if canonical != *text {
                    notes.push(format!("{text:?} written {canonical}"));
                }
                out.push(canonical);
            }
            Err(why) => {
                findings.none(
                    label,
                    "spec.addresses",
                    format!("{text:?}: {why}: not converted"),
                );
                return Err(Invalid);
            }
        }
    }
    let mut note = "copied: CIDRs and ranges mean the same set of addresses".to_owned();
    if !notes.is_empty() {
        note = format!("{note} ({})", notes.join("; "));
    }
    findings.exact(label, "spec.addresses", note);
    Ok(out)
}

fn canonical_address(text: &str) -> Result<String, String> {
    let trimmed = text.trim();
    if !trimmed.contains('/') && !trimmed.contains('-') {
        return Err("neither a CIDR nor a range (MetalLB refuses it too)".to_owned());
    }
    let canonical = match AddressRange::from_str(trimmed) {
        Ok(_) => match trimmed.split_once('-') {
            Some((start, end)) => format!("{}-{}", start.trim(), end.trim()),
            None => trimmed.to_owned(),
        },
        Err(RangeError::HostBitsSet { canonical, .. }) => canonical,
        Err(error) => return Err(error.to_string()),
    };
    if canonical.len() > MAX_ADDRESS_LEN {
        return Err(format!("longer than {MAX_ADDRESS_LEN} characters"));
    }
    Ok(canonical)
}

fn read_allocation(mut reader: Reader<'_>, findings: &mut Findings) -> Allocation {
    let max = u64::try_from(i32::MAX - 2).unwrap_or(0);
    let priority = reader
        .number("priority", max, findings)
        .ok()
        .flatten()
        .unwrap_or(0);
    let namespaces = reader.strings("namespaces", findings).unwrap_or_default();
    let namespace_selectors = selectors(&mut reader, "namespaceSelectors", findings);
    let service_selectors = selectors(&mut reader, "serviceSelectors", findings);
    let label = reader.object();
    reader.finish(findings);
    let at = "spec.serviceAllocation";
    if !namespaces.is_empty() {
        findings.exact(
            label,
            &format!("{at}.namespaces"),
            "allocationScope.namespaces",
        );
    }
    if !namespaces.is_empty() && !namespace_selectors.is_empty() {
        findings.none(
            label,
            &format!("{at}.namespaceSelectors"),
            "MetalLB admits the listed namespaces OR the selected ones; ours requires both: converted as both (narrower)",
        );
    }
    for (field, list, ours) in [
        (
            "namespaceSelectors",
            &namespace_selectors,
            "allocationScope.namespaceSelector",
        ),
        (
            "serviceSelectors",
            &service_selectors,
            "allocationScope.serviceSelector",
        ),
    ] {
        match list.len() {
            0 => {}
            1 => findings.exact(label, &format!("{at}.{field}"), ours),
            n => findings.none(
                label,
                &format!("{at}.{field}"),
                format!("{n} selectors, any of which admits (OR); ours holds one: converted with the first only (narrower)"),
            ),
        }
    }
    let selects =
        !namespaces.is_empty() || !namespace_selectors.is_empty() || !service_selectors.is_empty();
    Allocation {
        priority: i32::try_from(priority).unwrap_or(0),
        selects,
        scope: AllocationScope {
            namespaces,
            namespace_selector: namespace_selectors.into_iter().next(),
            service_selector: service_selectors.into_iter().next(),
        },
    }
}

/// A list of label selectors, each checked with our selector rules; invalid ones are
/// reported and left out.
pub(super) fn selectors(
    reader: &mut Reader<'_>,
    key: &str,
    findings: &mut Findings,
) -> Vec<LabelSelector> {
    let field = reader.at(key);
    let label = reader.object();
    let items = reader.list(key, findings).unwrap_or(&[]);
    items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| selector(item, label, &format!("{field}[{i}]"), findings))
        .collect()
}

fn selector(
    value: &Value,
    label: &str,
    field: &str,
    findings: &mut Findings,
) -> Option<LabelSelector> {
    let selector: LabelSelector = match serde_json::from_value(value.clone()) {
        Ok(selector) => selector,
        Err(error) => {
            findings.none(
                label,
                field,
                format!("not a label selector ({error}): left out"),
            );
            return None;
        }
    };
    match crate::selector::Selector::new(&crate::crd::selector_spec(&selector)) {
        Ok(_) => Some(selector),
        Err(errors) => {
            findings.none(
                label,
                field,
                format!("invalid label selector ({}): left out", errors[0]),
            );
            None
        }
    }
}

/// Our priorities reproducing MetalLB's order: pools whose `serviceAllocation` selects the
/// Service first (by priority, unset last), then pools without `serviceAllocation`.
fn priorities(pools: &[MetalPool], findings: &mut Findings) -> BTreeMap<String, i32> {
    let selecting = |p: &MetalPool| p.allocation.as_ref().is_some_and(|a| a.selects);
    let highest = (pools.iter().filter(|p| selecting(p)))
        .filter_map(|p| p.allocation.as_ref().map(|a| a.priority))
        .max()
        .unwrap_or(0);
    let any_selecting = pools.iter().any(selecting);
    let ties = "ties: MetalLB picks at random, ours by name";
    let mut out = BTreeMap::new();
    for pool in pools {
        let field = "spec.serviceAllocation.priority";
        let ours = match &pool.allocation {
            Some(a) if a.selects && a.priority > 0 => {
                findings.exact(&pool.label, field, format!("priority {}: MetalLB tries the pools that select a Service lowest priority first, as ours tries eligible pools lowest first; {ties}", a.priority));
                a.priority
            }
            Some(a) if a.selects => {
                findings.exact(&pool.label, field, format!("unset: MetalLB tries it after the prioritized pools that select the Service; priority {} does the same; {ties}", highest + 1));
                highest + 1
            }
            Some(_) => {
                findings.exact(&pool.label, "spec.serviceAllocation", "selects no namespace or Service: MetalLB never assigns from it unless a Service asks for it by name; autoAssign: false does the same");
                0
            }
            None if any_selecting => {
                findings.exact(&pool.label, "(priority)", format!("no serviceAllocation: MetalLB tries it only after the pools that select the Service; priority {} does the same; {ties}", highest + 2));
                highest + 2
            }
            None => 0,
        };
        out.insert(pool.name.clone(), ours);
    }
    out
}

/// Builds and checks the `IPPool`s; pools our API server or controller would refuse are
/// left out and reported.
pub(super) fn convert_pools(
    pools: Vec<MetalPool>,
    mut announce: BTreeMap<String, Announce>,
    findings: &mut Findings,
) -> Vec<IPPool> {
    let order = priorities(&pools, findings);
    let mut out: Vec<(IPPool, String)> = Vec::new();
    for pool in pools.into_iter().filter(|p| p.usable) {
        let announce = announce.remove(&pool.name).unwrap_or(Announce {
            mode: AnnounceMode::None,
            bgp: None,
            l2: None,
        });
        let no_selection = pool.allocation.as_ref().is_some_and(|a| !a.selects);
        let mut ippool = IPPool::new(
            &pool.name,
            IPPoolSpec {
                addresses: pool.addresses,
                avoid_buggy_ips: pool.avoid_buggy_ips,
                avoid_buggy_ips_deprecated: None,
                auto_assign: pool.auto_assign && !no_selection,
                priority: order.get(&pool.name).copied().unwrap_or(0),
                allocation_scope: pool
                    .allocation
                    .map(|a| a.scope)
                    .filter(|s| *s != AllocationScope::default()),
                allow_cross_namespace_sharing: false,
                announce,
            },
        );
        if !pool.labels.is_empty() {
            ippool.metadata.labels = Some(pool.labels);
        }
        match check(&ippool) {
            Ok(()) => out.push((ippool, pool.label)),
            Err(why) => findings.none(&pool.label, "(validation)", format!("{why}: not converted")),
        }
    }
    out.sort_by(|a, b| a.0.metadata.name.cmp(&b.0.metadata.name));
    drop_overlapping(out, findings)
}

fn check(pool: &IPPool) -> Result<(), String> {
    crate::ipam::Pool::new(&crate::service_lb::decide::pool_spec(pool))
        .map_err(|e| e.to_string())?;
    if let Some(Err(why)) = pool.bgp_announcement() {
        return Err(why);
    }
    if let Some(Err(why)) = pool.l2_announcement() {
        return Err(why);
    }
    if let Some(bgp) = &pool.spec.announce.bgp
        && (bgp.communities.len() > MAX_COMMUNITIES
            || bgp.large_communities.len() > MAX_COMMUNITIES)
    {
        return Err(format!(
            "more than {MAX_COMMUNITIES} communities of one kind"
        ));
    }
    Ok(())
}

/// MetalLB refuses overlapping pools; ours marks the later one `Overlapping`. Neither is a
/// configuration to carry over: the later pool (by name) is left out.
fn drop_overlapping(pools: Vec<(IPPool, String)>, findings: &mut Findings) -> Vec<IPPool> {
    let mut kept: Vec<(IPPool, crate::ipam::Pool)> = Vec::new();
    for (pool, label) in pools {
        let Ok(ranges) = crate::ipam::Pool::new(&crate::service_lb::decide::pool_spec(&pool))
        else {
            continue;
        };
        let clash: Vec<&str> = (kept.iter())
            .filter(|(_, other)| other.overlaps(&ranges))
            .map(|(_, other)| other.name())
            .collect();
        if clash.is_empty() {
            kept.push((pool, ranges));
        } else {
            findings.none(
                &label,
                "spec.addresses",
                format!("shares addresses with {} (MetalLB refuses overlapping pools too): not converted", clash.join(", ")),
            );
        }
    }
    kept.into_iter().map(|(pool, _)| pool).collect()
}
