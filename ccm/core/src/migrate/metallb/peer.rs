//! MetalLB's `BGPPeer` (v1beta2, and v1beta1, which has the same fields) and `BFDProfile` to
//! our `BGPPeer`: the session, its timers, placement, password and BFD.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use super::fields::{Findings, Invalid, Reader};
use super::pool::selectors;
use super::source::Object;
use super::{Options, PASSWORD_KEY, PEER_LABEL, SecretCopy, SecretSource};
use crate::crd::bgppeer::{
    BGPPeer, BGPPeerSpec, Bfd, Family, GracefulRestart, Placement, SecretKeyRef,
};

/// FRR's TTL for `ebgp-multihop` without a hop count, which is what MetalLB configures.
const MULTIHOP_TTL: u8 = 255;
const MAX_HOLD: u64 = 65535;
const MAX_KEEPALIVE: u64 = 21845;
const MAX_CONNECT_RETRY: u64 = 3600;

/// Each BFD profile by name, converted (its own fields reported on it).
pub(super) fn read_bfd_profiles(
    objects: &[Object],
    findings: &mut Findings,
) -> BTreeMap<String, Bfd> {
    let mut out = BTreeMap::new();
    for object in objects {
        let label = object.label.as_str();
        let mut spec = Reader::new(label, "spec", &object.spec, findings);
        let ms = |key: &str, ours: &str, spec: &mut Reader<'_>, findings: &mut Findings| {
            let value = spec.number(key, 60000, findings).ok().flatten()?;
            if value < 10 {
                findings.none(
                    label,
                    &spec.at(key),
                    "below 10 ms (MetalLB refuses it too): left out",
                );
                return None;
            }
            findings.exact(
                label,
                &spec.at(key),
                format!("bfd.{ours} (300 when absent, in both)"),
            );
            u32::try_from(value).ok()
        };
        let min_rx_ms = ms("receiveInterval", "minRxMs", &mut spec, findings);
        let min_tx_ms = ms("transmitInterval", "minTxMs", &mut spec, findings);
        let multiplier = match spec.number("detectMultiplier", 255, findings) {
            Ok(Some(0)) => {
                findings.none(
                    label,
                    "spec.detectMultiplier",
                    "0 (MetalLB refuses it too): left out",
                );
                None
            }
            Ok(Some(m)) => {
                findings.exact(
                    label,
                    "spec.detectMultiplier",
                    "bfd.multiplier (3 when absent, in both)",
                );
                u8::try_from(m).ok()
            }
            _ => None,
        };
        if spec.take("echoInterval").is_some() {
            findings.approximate(label, "spec.echoInterval", "no echo function here: ignored");
        }
        if spec.boolean("echoMode", findings) == Ok(Some(true)) {
            findings.approximate(label, "spec.echoMode", "no echo function here: failure is detected from control packets at the intervals above");
        }
        if spec.boolean("passiveMode", findings) == Ok(Some(true)) {
            findings.approximate(
                label,
                "spec.passiveMode",
                "ours always sends control packets (active): the router's BFD still comes up",
            );
        }
        if spec.take("minimumTtl").is_some() {
            findings.approximate(
                label,
                "spec.minimumTtl",
                "the incoming TTL check is not configurable here: ignored",
            );
        }
        spec.finish(findings);
        out.insert(
            object.name.clone(),
            Bfd {
                min_rx_ms,
                min_tx_ms,
                multiplier,
            },
        );
    }
    out
}

/// The converted peers that pass our own checks, and the Secrets their passwords need.
pub(super) fn convert_peers(
    objects: &[Object],
    profiles: &BTreeMap<String, Bfd>,
    options: &Options,
    findings: &mut Findings,
) -> (Vec<BGPPeer>, Vec<SecretCopy>) {
    let mut peers = Vec::new();
    let mut secrets = Vec::new();
    for object in objects {
        let Some((peer, secret)) = convert_peer(object, profiles, options, findings) else {
            continue;
        };
        match crate::announce::inputs::peer_input(&peer) {
            Ok(_) => {
                peers.push(peer);
                secrets.extend(secret);
            }
            Err(why) => findings.none(
                &object.label,
                "(validation)",
                format!("{why}: not converted"),
            ),
        }
    }
    (peers, secrets)
}

/// The session's identity: `None` (reported) when it has no equivalent or is invalid.
struct Session {
    peer_address: String,
    peer_asn: u32,
    local_asn: u32,
}

fn read_session(spec: &mut Reader<'_>, findings: &mut Findings) -> Option<Session> {
    let label = spec.object();
    let max = u64::from(u32::MAX);
    let local = spec.number("myASN", max, findings).ok().flatten();
    let remote = spec.number("peerASN", max, findings).ok().flatten();
    let dynamic = spec
        .string("dynamicASN", findings)
        .ok()
        .flatten()
        .filter(|d| !d.is_empty());
    let address = spec
        .string("peerAddress", findings)
        .ok()
        .flatten()
        .filter(|a| !a.is_empty());
    let interface = spec
        .string("interface", findings)
        .ok()
        .flatten()
        .filter(|i| !i.is_empty());
    let mut ok = true;
    if let Some(mode) = dynamic {
        findings.none(
            label,
            "spec.dynamicASN",
            format!("{mode}: ours needs the router's ASN: not converted"),
        );
        ok = false;
    }
    if interface.is_some() {
        findings.none(
            label,
            "spec.interface",
            "unnumbered BGP over an interface: ours needs the router's address: not converted",
        );
        ok = false;
    }
    let local = local.filter(|n| *n > 0).and_then(|n| u32::try_from(n).ok());
    match local {
        Some(_) => findings.exact(label, "spec.myASN", "localASN"),
        None => {
            findings.none(label, "spec.myASN", "missing or 0: not converted");
            ok = false;
        }
    }
    let remote = remote
        .filter(|n| *n > 0)
        .and_then(|n| u32::try_from(n).ok());
    match remote {
        Some(_) => findings.exact(label, "spec.peerASN", "peerASN"),
        None if ok => {
            findings.none(label, "spec.peerASN", "missing or 0: not converted");
            ok = false;
        }
        None => {}
    }
    let parsed = address.as_deref().map(str::parse::<IpAddr>);
    match parsed {
        Some(Ok(ip)) => findings.exact(label, "spec.peerAddress", format!("peerAddress {ip}")),
        Some(Err(_)) => {
            findings.none(
                label,
                "spec.peerAddress",
                "not an IP address: not converted",
            );
            ok = false;
        }
        None if interface.is_none() => {
            findings.none(label, "spec.peerAddress", "missing: not converted");
            ok = false;
        }
        None => {}
    }
    Some(Session {
        peer_address: parsed?.ok()?.to_string(),
        peer_asn: remote?,
        local_asn: local?,
    })
    .filter(|_| ok)
}

fn convert_peer(
    object: &Object,
    profiles: &BTreeMap<String, Bfd>,
    options: &Options,
    findings: &mut Findings,
) -> Option<(BGPPeer, Option<SecretCopy>)> {
    let label = object.label.as_str();
    let mut spec = Reader::new(label, "spec", &object.spec, findings);
    let session = read_session(&mut spec, findings);
    let mut ours = BGPPeerSpec {
        peer_address: String::new(),
        peer_asn: 0,
        local_asn: 0,
        port: read_port(&mut spec, findings),
        placement: Placement::NodeLocal,
        node_selector: read_placement(&mut spec, findings),
        password_secret_ref: None,
        ebgp_multihop_ttl: None,
        hold_time_seconds: None,
        keepalive_seconds: None,
        connect_retry_seconds: None,
        idle_hold_after_reset_seconds: None,
        graceful_restart: None,
        bfd: None,
        families: Vec::new(),
        add_path_send_max: None,
    };
    read_timers(&mut spec, &mut ours, findings);
    let secret = read_password(&mut spec, object, options, &mut ours, findings);
    read_options(&mut spec, profiles, session.as_ref(), &mut ours, findings);
    let vrf = spec
        .string("vrf", findings)
        .ok()
        .flatten()
        .filter(|v| !v.is_empty());
    if let Some(vrf) = &vrf {
        findings.none(label, "spec.vrf", format!("sessions from VRF {vrf}: ours peers from the default routing table only: not converted"));
    }
    spec.finish(findings);
    let session = session.filter(|_| vrf.is_none())?;
    ours.peer_address = session.peer_address;
    ours.peer_asn = session.peer_asn;
    ours.local_asn = session.local_asn;
    let mut peer = BGPPeer::new(&object.name, ours);
    let mut labels = object.labels.clone();
    match crate::contract::label_value_problem(&object.name) {
        None => {
            labels.insert(PEER_LABEL.to_owned(), object.name.clone());
            findings.exact(label, "metadata.name", format!("kept; labelled {PEER_LABEL}={} for the pools' peerSelector", object.name));
        }
        Some(why) => findings.none(label, "metadata.name", format!("kept, but it cannot be a label value ({why}): BGPAdvertisements' peers cannot select it")),
    }
    peer.metadata.labels = Some(labels);
    Some((peer, secret))
}

fn read_port(spec: &mut Reader<'_>, findings: &mut Findings) -> Option<u16> {
    let port = spec.number("peerPort", 65535, findings).ok().flatten()?;
    if port == 0 {
        findings.none(
            spec.object(),
            "spec.peerPort",
            "0 is not a port: left out (179)",
        );
        return None;
    }
    findings.exact(
        spec.object(),
        "spec.peerPort",
        "port (179 when absent, in both)",
    );
    u16::try_from(port).ok().filter(|p| *p != 179)
}

/// MetalLB opens every session from each selected node's speaker, with the node as next hop:
/// our `nodeLocal` placement.
fn read_placement(
    spec: &mut Reader<'_>,
    findings: &mut Findings,
) -> Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> {
    let label = spec.object();
    let nodes = selectors(spec, "nodeSelectors", findings);
    let placement =
        "placement nodeLocal: MetalLB peers from every selected node's speaker with next-hop self";
    match nodes.len() {
        0 => findings.exact(label, "(placement)", format!("{placement} (all nodes)")),
        1 => findings.exact(label, "spec.nodeSelectors", format!("nodeSelector; {placement}")),
        n => findings.none(label, "spec.nodeSelectors", format!("{n} selectors, any of which selects a node (OR); ours holds one: converted without one (every node peers)")),
    }
    (nodes.len() == 1)
        .then(|| nodes.into_iter().next())
        .flatten()
}

/// A Go duration in whole seconds (`90s`, `1m30s`); fractions are dropped, as MetalLB does
/// for the hold time.
fn seconds(
    spec: &mut Reader<'_>,
    key: &str,
    findings: &mut Findings,
) -> Result<Option<(u64, bool)>, Invalid> {
    let Some(text) = spec.string(key, findings)? else {
        return Ok(None);
    };
    match crate::duration::parse(&text) {
        Ok(d) => Ok(Some((d.as_secs(), d != Duration::from_secs(d.as_secs())))),
        Err(error) => {
            findings.none(spec.object(), &spec.at(key), format!("{error}: left out"));
            Err(Invalid)
        }
    }
}

fn read_timers(spec: &mut Reader<'_>, ours: &mut BGPPeerSpec, findings: &mut Findings) {
    let label = spec.object().to_owned();
    let hold = seconds(spec, "holdTime", findings).ok().flatten();
    let keepalive = seconds(spec, "keepaliveTime", findings).ok().flatten();
    let whole = |field: &str, fraction: bool, what: &str, findings: &mut Findings| {
        if fraction {
            findings.approximate(
                &label,
                field,
                format!("{what} in whole seconds: the fraction is dropped"),
            );
        } else {
            findings.exact(&label, field, what.to_owned());
        }
    };
    match (hold, keepalive) {
        (Some((h, f)), k) => {
            whole("spec.holdTime", f, "holdTimeSeconds", findings);
            ours.hold_time_seconds = bounded(h, 0, MAX_HOLD, &label, "spec.holdTime", findings);
            if let Some((k, f)) = k {
                whole("spec.keepaliveTime", f, "keepaliveSeconds", findings);
                ours.keepalive_seconds =
                    bounded(k, 1, MAX_KEEPALIVE, &label, "spec.keepaliveTime", findings);
            }
        }
        (None, Some((k, f))) => {
            whole(
                "spec.keepaliveTime",
                f,
                "keepaliveSeconds, and holdTimeSeconds three times it (MetalLB's rule; ours would default to 90)",
                findings,
            );
            ours.keepalive_seconds =
                bounded(k, 1, MAX_KEEPALIVE, &label, "spec.keepaliveTime", findings);
            ours.hold_time_seconds =
                bounded(k * 3, 0, MAX_HOLD, &label, "spec.keepaliveTime", findings);
        }
        (None, None) => {}
    }
    if let Ok(Some((c, fraction))) = seconds(spec, "connectTime", findings) {
        let capped = c.clamp(1, MAX_CONNECT_RETRY);
        if capped != c || fraction {
            findings.approximate(&label, "spec.connectTime", format!("connectRetrySeconds {capped} (ours takes whole seconds from 1 to {MAX_CONNECT_RETRY})"));
        } else {
            findings.exact(&label, "spec.connectTime", "connectRetrySeconds");
        }
        ours.connect_retry_seconds = Some(capped as u32);
    }
}

/// `value` when ours takes it; otherwise reported and left out (our default applies).
fn bounded(
    value: u64,
    min: u64,
    max: u64,
    label: &str,
    field: &str,
    findings: &mut Findings,
) -> Option<u32> {
    let taken = u32::try_from(value)
        .ok()
        .filter(|_| (min..=max).contains(&value));
    if taken.is_none() {
        findings.none(
            label,
            field,
            format!("{value} s is outside {min} to {max} s: left out"),
        );
    }
    taken
}

fn read_password(
    spec: &mut Reader<'_>,
    object: &Object,
    options: &Options,
    ours: &mut BGPPeerSpec,
    findings: &mut Findings,
) -> Option<SecretCopy> {
    let label = object.label.as_str();
    let inline = spec
        .string("password", findings)
        .ok()
        .flatten()
        .filter(|p| !p.is_empty());
    let mut reference = spec.nested("passwordSecret", findings);
    let secret_name = reference
        .string("name", findings)
        .ok()
        .flatten()
        .filter(|n| !n.is_empty());
    let secret_namespace = reference.string("namespace", findings).ok().flatten();
    reference.finish(findings);
    let namespace = label
        .split_once(' ')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map_or("metallb-system", |(ns, _)| ns);
    let (field, name, source) = match (inline, secret_name) {
        (Some(_), Some(_)) => {
            findings.none(
                label,
                "spec.password",
                "both password and passwordSecret (MetalLB refuses that): no password converted",
            );
            return None;
        }
        (Some(_), None) => (
            "spec.password",
            format!("metallb-bgp-{}", object.name),
            SecretSource::Inline {
                object: label.to_owned(),
                field: "spec.password".to_owned(),
            },
        ),
        (None, Some(name)) => (
            "spec.passwordSecret",
            name.clone(),
            SecretSource::Secret {
                namespace: secret_namespace.unwrap_or_else(|| namespace.to_owned()),
                name,
                key: PASSWORD_KEY.to_owned(),
            },
        ),
        (None, None) => return None,
    };
    let copy = SecretCopy {
        peer: object.name.clone(),
        namespace: options.bgp_password_namespace.clone(),
        name: name.clone(),
        key: PASSWORD_KEY.to_owned(),
        source,
    };
    findings.exact(
        label,
        field,
        format!(
            "passwordSecretRef {name}/{PASSWORD_KEY} in {}; create it first: {}",
            options.bgp_password_namespace,
            copy.instruction()
        ),
    );
    ours.password_secret_ref = Some(SecretKeyRef {
        name,
        key: PASSWORD_KEY.to_owned(),
        namespace: None,
    });
    Some(copy)
}

fn read_options(
    spec: &mut Reader<'_>,
    profiles: &BTreeMap<String, Bfd>,
    session: Option<&Session>,
    ours: &mut BGPPeerSpec,
    findings: &mut Findings,
) {
    let label = spec.object();
    if let Ok(Some(profile)) = spec.string("bfdProfile", findings) {
        match profiles.get(&profile) {
            Some(bfd) => {
                findings.exact(
                    label,
                    "spec.bfdProfile",
                    format!("bfd from BFDProfile {profile}"),
                );
                ours.bfd = Some(bfd.clone());
            }
            None => findings.none(
                label,
                "spec.bfdProfile",
                format!("names no BFDProfile ({profile}): no BFD"),
            ),
        }
    }
    if let Ok(Some(graceful)) = spec.boolean("enableGracefulRestart", findings) {
        findings.exact(
            label,
            "spec.enableGracefulRestart",
            "gracefulRestart (restart time 120 s, FRR's default)",
        );
        ours.graceful_restart = graceful.then_some(GracefulRestart {
            restart_time_seconds: None,
        });
    }
    if let Ok(Some(multihop)) = spec.boolean("ebgpMultiHop", findings) {
        let ibgp = session.is_some_and(|s| s.local_asn == s.peer_asn);
        match (multihop, ibgp) {
            (true, true) => findings.none(
                label,
                "spec.ebgpMultiHop",
                "set on an iBGP session (MetalLB refuses that): left out",
            ),
            (true, false) => {
                findings.approximate(label, "spec.ebgpMultiHop", format!("ebgpMultihopTtl {MULTIHOP_TTL}: what FRR uses for ebgp-multihop without a hop count, as MetalLB configures it; set the real hop count to narrow it"));
                ours.ebgp_multihop_ttl = Some(MULTIHOP_TTL);
            }
            (false, _) => findings.exact(label, "spec.ebgpMultiHop", "single hop (the default)"),
        }
    }
    if let Ok(Some(both)) = spec.boolean("dualStackAddressFamily", findings) {
        findings.exact(
            label,
            "spec.dualStackAddressFamily",
            if both {
                "families [IPv4, IPv6]"
            } else {
                "the peer address's family (the default)"
            },
        );
        if both {
            ours.families = vec![Family::IPv4, Family::IPv6];
        }
    }
    match spec.boolean("disableMP", findings) {
        Ok(Some(true)) => findings.exact(label, "spec.disableMP", "each session carries its own family: our default"),
        Ok(Some(false)) => findings.approximate(label, "spec.disableMP", "false: MetalLB before dualStackAddressFamily carried both families on one session; ours carries the peer address's family (set families to carry both)"),
        _ => {}
    }
    if let Ok(Some(id)) = spec.string("routerID", findings) {
        findings.approximate(
            label,
            "spec.routerID",
            format!("{id}: a per-session router ID is not configurable; the speaker's own applies"),
        );
    }
    if let Ok(Some(source)) = spec.string("sourceAddress", findings) {
        findings.approximate(
            label,
            "spec.sourceAddress",
            format!("{source}: not configurable; the kernel picks the source address by route"),
        );
    }
}
