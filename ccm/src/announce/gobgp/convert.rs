//! Conversions between the model of a gobgpd (the core's `announce::gobgp`) and the GoBGP v4
//! protobuf messages, both ways: global settings, families, locally originated paths, defined
//! sets, statements and policy assignments. Peers (`peer`) and session states (`status`)
//! have their own modules.

use std::collections::BTreeSet;
use std::net::IpAddr;

use gobgp_api_proto::api::{
    self, Attribute, DefinedSet, DefinedType, IpAddressPrefix, MpReachNlriAttribute,
    NextHopAttribute, Nlri, OriginAttribute, RouteAction, attribute::Attr, family, nlri,
};
use ipnet::IpNet;

use baremetal_ccm_core::announce::gobgp::policy::{
    Action, Attributes, IMPORT_POLICY_NAME, IMPORT_STATEMENT_NAME, Statement,
};
use baremetal_ccm_core::announce::gobgp::state::{Disposition, PathKey, PrefixEntry};

use crate::announce::desired::{Afi, Global};

/// Something the daemon returned that we cannot read.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{field} {value:?} is not an IP address")]
    Address {
        field: &'static str,
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    #[error("{field} {value:?} is not an IP prefix")]
    PrefixText {
        field: &'static str,
        value: String,
        #[source]
        source: ipnet::AddrParseError,
    },
    #[error("{field} {value:?} has an impossible prefix length")]
    PrefixLength {
        field: &'static str,
        value: String,
        #[source]
        source: ipnet::PrefixLenError,
    },
    #[error("{field} {value} is out of range")]
    OutOfRange {
        field: &'static str,
        value: u64,
        #[source]
        source: std::num::TryFromIntError,
    },
    #[error("{what} is missing")]
    Missing { what: &'static str },
    #[error("a community gobgpd printed cannot be read")]
    Community(#[from] crate::crd::community::CommunityError),
}

pub(crate) fn family(afi: Afi) -> api::Family {
    let afi = match afi {
        Afi::Ipv4 => family::Afi::Ip,
        Afi::Ipv6 => family::Afi::Ip6,
    };
    api::Family {
        afi: afi as i32,
        safi: family::Safi::Unicast as i32,
    }
}

/// The unicast family `f` is, if it is one.
pub(crate) fn unicast_afi(f: &api::Family) -> Option<Afi> {
    if f.safi != family::Safi::Unicast as i32 {
        return None;
    }
    match family::Afi::try_from(f.afi) {
        Ok(family::Afi::Ip) => Some(Afi::Ipv4),
        Ok(family::Afi::Ip6) => Some(Afi::Ipv6),
        _ => None,
    }
}

pub(crate) fn parse_addr(field: &'static str, value: &str) -> Result<IpAddr, ConvertError> {
    value.parse().map_err(|source| ConvertError::Address {
        field,
        value: value.to_owned(),
        source,
    })
}

pub(crate) fn start_request(global: &Global) -> api::StartBgpRequest {
    api::StartBgpRequest {
        global: Some(api::Global {
            asn: global.asn,
            router_id: global.router_id.to_string(),
            listen_port: global.listen_port,
            ..api::Global::default()
        }),
    }
}

/// The global settings a `GetBgp` answer holds; `None` when BGP is not started (asn 0).
pub(crate) fn global_from_api(
    global: Option<&api::Global>,
) -> Result<Option<Global>, ConvertError> {
    let Some(global) = global.filter(|g| g.asn != 0) else {
        return Ok(None);
    };
    let router_id = match parse_addr("router id", &global.router_id)? {
        IpAddr::V4(id) => id,
        IpAddr::V6(_) => {
            return Err(ConvertError::Missing {
                what: "an IPv4 router id",
            });
        }
    };
    Ok(Some(Global {
        asn: global.asn,
        router_id,
        listen_port: global.listen_port,
    }))
}

fn prefix_nlri(prefix: &IpNet) -> Nlri {
    Nlri {
        nlri: Some(nlri::Nlri::Prefix(IpAddressPrefix {
            prefix_len: prefix.prefix_len().into(),
            prefix: prefix.addr().to_string(),
        })),
    }
}

/// A locally originated path: ORIGIN IGP and the next hop, in NEXT_HOP for an IPv4 prefix
/// with an IPv4 next hop and in MP_REACH_NLRI otherwise (as gobgpd's `api2Path` stores it).
/// The path identifier goes in `identifier`: gobgpd keys local paths by it (the NLRI's
/// path id, `apiutil2Path`), so re-adding one replaces it; the id sent to ADD-PATH peers is
/// one gobgpd allocates per destination (`local_identifier`).
pub(crate) fn path(key: &PathKey, next_hop: IpAddr) -> api::Path {
    let afi = Afi::of_net(&key.prefix);
    let hop = if afi == Afi::Ipv4 && next_hop.is_ipv4() {
        Attr::NextHop(NextHopAttribute {
            next_hop: next_hop.to_string(),
        })
    } else {
        Attr::MpReach(MpReachNlriAttribute {
            family: Some(family(afi)),
            next_hops: vec![next_hop.to_string()],
            nlris: vec![prefix_nlri(&key.prefix)],
        })
    };
    api::Path {
        nlri: Some(prefix_nlri(&key.prefix)),
        pattrs: vec![
            Attribute {
                attr: Some(Attr::Origin(OriginAttribute { origin: 0 })),
            },
            Attribute { attr: Some(hop) },
        ],
        family: Some(family(afi)),
        identifier: key.path_id,
        ..api::Path::default()
    }
}

/// A path from `ListPath` on the global table, if it is one we originated (gobgpd leaves
/// the neighbor of a local path empty).
pub(crate) fn local_path(path: &api::Path) -> Result<Option<(PathKey, IpAddr)>, ConvertError> {
    if !path.neighbor_ip.is_empty() || path.source_asn != 0 || path.is_withdraw {
        return Ok(None);
    }
    let Some(nlri::Nlri::Prefix(nlri)) = path.nlri.as_ref().and_then(|n| n.nlri.as_ref()) else {
        return Ok(None);
    };
    let addr = parse_addr("path prefix", &nlri.prefix)?;
    let len = u8::try_from(nlri.prefix_len).map_err(|source| ConvertError::OutOfRange {
        field: "prefix length",
        value: nlri.prefix_len.into(),
        source,
    })?;
    let prefix = IpNet::new(addr, len).map_err(|source| ConvertError::PrefixLength {
        field: "path prefix",
        value: format!("{}/{}", nlri.prefix, nlri.prefix_len),
        source,
    })?;
    let next_hop = path
        .pattrs
        .iter()
        .find_map(|a| match &a.attr {
            Some(Attr::NextHop(hop)) => Some(hop.next_hop.as_str()),
            Some(Attr::MpReach(reach)) => reach.next_hops.first().map(String::as_str),
            _ => None,
        })
        .ok_or(ConvertError::Missing {
            what: "the next hop of a local path",
        })?;
    let next_hop = parse_addr("next hop", next_hop)?;
    let key = PathKey {
        prefix: prefix.trunc(),
        path_id: path.identifier,
    };
    Ok(Some((key, next_hop)))
}

pub(crate) fn prefix_set<'a>(
    name: &str,
    entries: impl IntoIterator<Item = &'a PrefixEntry>,
) -> DefinedSet {
    DefinedSet {
        defined_type: DefinedType::Prefix as i32,
        name: name.to_owned(),
        list: Vec::new(),
        prefixes: entries
            .into_iter()
            .map(|e| api::Prefix {
                ip_prefix: e.prefix.to_string(),
                mask_length_min: e.min_len,
                mask_length_max: e.max_len,
                rtc_prefix: String::new(),
            })
            .collect(),
    }
}

pub(crate) fn neighbor_set<'a>(
    name: &str,
    entries: impl IntoIterator<Item = &'a IpNet>,
) -> DefinedSet {
    DefinedSet {
        defined_type: DefinedType::Neighbor as i32,
        name: name.to_owned(),
        list: entries.into_iter().map(IpNet::to_string).collect(),
        prefixes: Vec::new(),
    }
}

/// The entries of a prefix set as `ListDefinedSet` reports them.
pub(crate) fn prefix_entries(set: &DefinedSet) -> Result<BTreeSet<PrefixEntry>, ConvertError> {
    set.prefixes
        .iter()
        .map(|entry| {
            let prefix = entry
                .ip_prefix
                .parse()
                .map_err(|source| ConvertError::PrefixText {
                    field: "prefix set entry",
                    value: entry.ip_prefix.clone(),
                    source,
                })?;
            Ok(PrefixEntry {
                prefix,
                min_len: entry.mask_length_min,
                max_len: entry.mask_length_max,
            })
        })
        .collect()
}

/// The entries of a neighbor set (gobgpd prints them as prefixes, `192.0.2.1/32`).
pub(crate) fn neighbor_entries(set: &DefinedSet) -> Result<BTreeSet<IpNet>, ConvertError> {
    set.list
        .iter()
        .map(|entry| match entry.parse::<IpNet>() {
            Ok(net) => Ok(net),
            Err(_not_a_prefix) => parse_addr("neighbor set entry", entry).map(IpNet::from),
        })
        .collect()
}

pub(crate) fn disposition(action: i32) -> Disposition {
    match RouteAction::try_from(action) {
        Ok(RouteAction::Accept) => Disposition::Accept,
        Ok(RouteAction::Reject) => Disposition::Reject,
        _ => Disposition::Unspecified,
    }
}

fn match_set(name: &str, kind: api::match_set::Type) -> api::MatchSet {
    api::MatchSet {
        r#type: kind as i32,
        name: name.to_owned(),
    }
}

fn community_action(communities: Vec<String>) -> Option<api::CommunityAction> {
    (!communities.is_empty()).then_some(api::CommunityAction {
        r#type: api::community_action::Type::Add as i32,
        communities,
    })
}

pub(crate) fn statement(policy: &str, statement: &Statement) -> api::Statement {
    let conditions = api::Conditions {
        prefix_set: Some(match_set(&statement.prefix_set, api::match_set::Type::Any)),
        neighbor_set: statement
            .unless_neighbor_in
            .as_deref()
            .map(|name| match_set(name, api::match_set::Type::Invert)),
        ..api::Conditions::default()
    };
    let actions = match &statement.action {
        Action::Reject => api::Actions {
            route_action: RouteAction::Reject as i32,
            ..api::Actions::default()
        },
        Action::Accept(attributes) => api::Actions {
            route_action: RouteAction::Accept as i32,
            community: community_action(
                attributes
                    .communities
                    .iter()
                    .map(|c| format!("{}:{}", c >> 16, c & 0xffff))
                    .collect(),
            ),
            large_community: community_action(
                attributes
                    .large_communities
                    .iter()
                    .map(|(g, l1, l2)| format!("{g}:{l1}:{l2}"))
                    .collect(),
            ),
            local_pref: attributes
                .local_preference
                .map(|value| api::LocalPrefAction { value }),
            ..api::Actions::default()
        },
    };
    api::Statement {
        name: statement.full_name(policy),
        conditions: Some(conditions),
        actions: Some(actions),
    }
}

fn parse_community(value: &str) -> Result<u32, ConvertError> {
    Ok(crate::crd::community::parse_standard(value)?)
}

fn parse_large_community(value: &str) -> Result<(u32, u32, u32), ConvertError> {
    Ok(crate::crd::community::parse_large(value)?)
}

fn added_communities<T: Ord>(
    action: Option<&api::CommunityAction>,
    parse: impl Fn(&str) -> Result<T, ConvertError>,
) -> Result<Option<BTreeSet<T>>, ConvertError> {
    let Some(action) = action else {
        return Ok(Some(BTreeSet::new()));
    };
    if action.r#type != api::community_action::Type::Add as i32 {
        return Ok(None);
    }
    let parsed = action
        .communities
        .iter()
        .map(|c| parse(c))
        .collect::<Result<_, _>>()?;
    Ok(Some(parsed))
}

/// A statement of our policy `policy` in our model; `None` if it has a condition or action
/// the model has no place for (then it can never equal a desired statement).
pub(crate) fn statement_from_api(
    policy: &str,
    statement: &api::Statement,
) -> Result<Option<Statement>, ConvertError> {
    let Some(key) = Statement::key_of(policy, &statement.name) else {
        return Ok(None);
    };
    let conditions = statement.conditions.clone().unwrap_or_default();
    let actions = statement.actions.clone().unwrap_or_default();
    let Some(prefix_set) = conditions
        .prefix_set
        .as_ref()
        .filter(|m| m.r#type == api::match_set::Type::Any as i32)
    else {
        return Ok(None);
    };
    let unless_neighbor_in = match &conditions.neighbor_set {
        None => None,
        Some(m) if m.r#type == api::match_set::Type::Invert as i32 => Some(m.name.clone()),
        Some(_) => return Ok(None),
    };
    let only_ours = api::Conditions {
        prefix_set: conditions.prefix_set.clone(),
        neighbor_set: conditions.neighbor_set.clone(),
        rpki_result: conditions.rpki_result,
        ..api::Conditions::default()
    };
    if only_ours != conditions {
        return Ok(None);
    }
    let Some(action) = action_from_api(&actions)? else {
        return Ok(None);
    };
    Ok(Some(Statement {
        key: key.to_owned(),
        prefix_set: prefix_set.name.clone(),
        unless_neighbor_in,
        action,
    }))
}

fn action_from_api(actions: &api::Actions) -> Result<Option<Action>, ConvertError> {
    let only_ours = api::Actions {
        route_action: actions.route_action,
        community: actions.community.clone(),
        large_community: actions.large_community.clone(),
        local_pref: actions.local_pref,
        ..api::Actions::default()
    };
    if only_ours != *actions {
        return Ok(None);
    }
    if actions.route_action == RouteAction::Reject as i32 {
        let bare = actions.community.is_none()
            && actions.large_community.is_none()
            && actions.local_pref.is_none();
        return Ok(bare.then_some(Action::Reject));
    }
    if actions.route_action != RouteAction::Accept as i32 {
        return Ok(None);
    }
    let communities = added_communities(actions.community.as_ref(), parse_community)?;
    let large = added_communities(actions.large_community.as_ref(), parse_large_community)?;
    let (Some(communities), Some(large_communities)) = (communities, large) else {
        return Ok(None);
    };
    Ok(Some(Action::Accept(Attributes {
        communities,
        large_communities,
        local_preference: actions.local_pref.map(|p| p.value),
    })))
}

/// The import policy: one statement accepting locally originated routes.
pub(crate) fn import_policy() -> api::Policy {
    api::Policy {
        name: IMPORT_POLICY_NAME.to_owned(),
        statements: vec![api::Statement {
            name: IMPORT_STATEMENT_NAME.to_owned(),
            conditions: Some(api::Conditions {
                route_type: api::conditions::RouteType::Local as i32,
                ..api::Conditions::default()
            }),
            actions: Some(api::Actions {
                route_action: RouteAction::Accept as i32,
                ..api::Actions::default()
            }),
        }],
    }
}

/// Whether a listed policy is exactly [`import_policy`].
pub(crate) fn is_import_policy(policy: &api::Policy) -> bool {
    let normalize = |mut s: api::Statement| {
        s.conditions.get_or_insert_with(api::Conditions::default);
        s.actions.get_or_insert_with(api::Actions::default);
        s
    };
    let want = import_policy();
    policy.name == want.name
        && policy.statements.len() == 1
        && policy
            .statements
            .iter()
            .cloned()
            .map(normalize)
            .eq(want.statements.into_iter().map(normalize))
}

/// Sets the global `direction` assignment to exactly `policies` with `default`.
pub(crate) fn global_assignment(
    direction: api::PolicyDirection,
    policies: &[&str],
    default: RouteAction,
) -> api::SetPolicyAssignmentRequest {
    api::SetPolicyAssignmentRequest {
        assignment: Some(api::PolicyAssignment {
            name: "global".to_owned(),
            direction: direction as i32,
            policies: policies
                .iter()
                .map(|name| api::Policy {
                    name: (*name).to_owned(),
                    statements: Vec::new(),
                })
                .collect(),
            default_action: default as i32,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(prefix: &str, path_id: u32) -> PathKey {
        PathKey {
            prefix: prefix.parse().expect("prefix"),
            path_id,
        }
    }

    #[test]
    fn an_ipv4_path_carries_next_hop_and_an_ipv6_path_mp_reach() {
        let v4 = path(
            &key("198.51.100.10/32", 7),
            "192.0.2.1".parse().expect("hop"),
        );
        assert_eq!(v4.identifier, 7, "the path id goes in identifier");
        assert!(matches!(v4.pattrs[1].attr, Some(Attr::NextHop(_))));
        let v6 = path(&key("2001:db8:100::10/128", 0), "::".parse().expect("hop"));
        let Some(Attr::MpReach(reach)) = &v6.pattrs[1].attr else {
            panic!("MP_REACH_NLRI for IPv6: {v6:?}");
        };
        assert_eq!(reach.next_hops, ["::"]);
        assert_eq!(
            unicast_afi(v6.family.as_ref().expect("family")),
            Some(Afi::Ipv6)
        );
    }

    #[test]
    fn a_built_path_reads_back_as_the_same_local_path() {
        for (prefix, hop, id) in [
            ("198.51.100.10/32", "0.0.0.0", 0),
            ("2001:db8:100::10/128", "2001:db8::2", 3),
        ] {
            let k = key(prefix, id);
            let hop: IpAddr = hop.parse().expect("hop");
            assert_eq!(
                local_path(&path(&k, hop)).expect("readable"),
                Some((k, hop))
            );
        }
    }

    #[test]
    fn a_learned_path_is_not_taken_for_a_local_one() {
        let mut learned = path(
            &key("198.51.100.10/32", 0),
            "192.0.2.9".parse().expect("hop"),
        );
        learned.neighbor_ip = "192.0.2.254".into();
        assert_eq!(local_path(&learned).expect("readable"), None);
    }

    #[test]
    fn statements_read_back_into_the_model_they_were_built_from() {
        let accept = Statement {
            key: "pool/v4/accept".into(),
            prefix_set: "baremetal-ccm/pool/v4".into(),
            unless_neighbor_in: None,
            action: Action::Accept(Attributes {
                communities: BTreeSet::from([65000 << 16 | 100, 1]),
                large_communities: BTreeSet::from([(65000, 1, 2)]),
                local_preference: Some(250),
            }),
        };
        let reject = Statement {
            key: "pool/v4/reject".into(),
            prefix_set: "baremetal-ccm/pool/v4".into(),
            unless_neighbor_in: Some("baremetal-ccm/pool/peers".into()),
            action: Action::Reject,
        };
        for s in [accept, reject] {
            let api = statement("baremetal-ccm-export", &s);
            assert_eq!(
                statement_from_api("baremetal-ccm-export", &api).expect("readable"),
                Some(s)
            );
        }
    }

    #[test]
    fn a_statement_with_a_foreign_action_is_not_ours() {
        let mut api = statement(
            "p",
            &Statement {
                key: "a/v4/accept".into(),
                prefix_set: "s".into(),
                unless_neighbor_in: None,
                action: Action::Accept(Attributes::default()),
            },
        );
        api.actions.as_mut().expect("actions").med = Some(api::MedAction {
            r#type: api::med_action::Type::Replace as i32,
            value: 10,
        });
        assert_eq!(statement_from_api("p", &api).expect("readable"), None);
    }

    #[test]
    fn sets_read_back_as_the_entries_they_were_built_from() {
        let prefixes: Vec<IpNet> = ["198.51.100.10/32", "198.51.100.11/32", "2001:db8:100::/48"]
            .iter()
            .map(|p| p.parse().expect("prefix"))
            .collect();
        let entries = PrefixEntry::exact_set(&prefixes);
        let set = prefix_set("s", &entries);
        assert_eq!(
            (
                set.prefixes[0].ip_prefix.as_str(),
                set.prefixes[0].mask_length_min,
                set.prefixes[0].mask_length_max
            ),
            ("198.51.100.10/31", 32, 32),
            "two adjacent /32s are one block of /32s"
        );
        assert_eq!(prefix_entries(&set).expect("readable"), entries);
        let neighbors: BTreeSet<IpNet> = ["192.0.2.254/32", "2001:db8::fe/128"]
            .iter()
            .map(|n| n.parse().expect("net"))
            .collect();
        let set = neighbor_set("n", &neighbors);
        assert_eq!(set.list, ["192.0.2.254/32", "2001:db8::fe/128"]);
        assert_eq!(neighbor_entries(&set).expect("readable"), neighbors);
    }

    #[test]
    fn the_import_policy_is_recognized_only_unchanged() {
        let mut policy = import_policy();
        assert!(is_import_policy(&policy));
        policy.statements[0]
            .actions
            .as_mut()
            .expect("actions")
            .route_action = RouteAction::Reject as i32;
        assert!(!is_import_policy(&policy));
    }

    #[test]
    fn bgp_not_started_reads_back_as_no_global_settings() {
        assert_eq!(
            global_from_api(Some(&api::Global::default())).expect("ok"),
            None
        );
    }
}
