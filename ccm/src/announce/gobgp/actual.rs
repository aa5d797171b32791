//! Reads what a gobgpd holds into the core's model ([`Actual`]): global settings, peers, our
//! defined sets and policies, the global policy assignments, and the locally originated
//! paths of the global table. The listed peers are kept as received for read-modify-write
//! updates.

use std::collections::BTreeMap;
use std::net::IpAddr;

use gobgp_api_proto::api::{self, DefinedType, PolicyDirection, TableType};
use tonic::Streaming;

use baremetal_ccm_core::announce::gobgp::policy::{IMPORT_POLICY_NAME, is_our_policy, is_our_set};
use baremetal_ccm_core::announce::gobgp::state::{
    Actual, ActualExport, Assignment, ImportPolicy, PathKey,
};

use super::convert::{self, ConvertError};
use super::peer::peer_spec;
use super::{Client, GobgpError, request};
use crate::announce::desired::Afi;

/// The daemon's state and the peers exactly as `ListPeer` returned them.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub actual: Actual,
    pub listed_peers: BTreeMap<IpAddr, api::Peer>,
}

fn call_failed(call: &'static str) -> impl FnOnce(tonic::Status) -> GobgpError {
    move |source| GobgpError::Call { call, source }
}

fn unreadable(call: &'static str) -> impl FnOnce(ConvertError) -> GobgpError {
    move |source| GobgpError::Unreadable { call, source }
}

async fn drain<T>(call: &'static str, mut stream: Streaming<T>) -> Result<Vec<T>, GobgpError> {
    let mut items = Vec::new();
    while let Some(item) = stream.message().await.map_err(call_failed(call))? {
        items.push(item);
    }
    Ok(items)
}

/// Reads everything converge compares. A daemon whose BGP is not started holds nothing
/// else (and `StartBgp` would reset its policy anyway), so nothing else is read. With
/// `known_paths` (the table this handle itself left the daemon with) the path table is not
/// read back: with tens of thousands of paths that read dominates a converge.
pub(crate) async fn read(
    client: &mut Client,
    known_paths: Option<&BTreeMap<PathKey, IpAddr>>,
) -> Result<Snapshot, GobgpError> {
    let reply = client
        .get_bgp(request(api::GetBgpRequest {}))
        .await
        .map_err(call_failed("GetBgp"))?
        .into_inner();
    let Some(global) =
        convert::global_from_api(reply.global.as_ref()).map_err(unreadable("GetBgp"))?
    else {
        return Ok(Snapshot::default());
    };
    let listed_peers = read_peers(client).await?;
    let peers = (listed_peers.iter())
        .map(|(address, peer)| {
            let (_, spec) = peer_spec(peer).map_err(unreadable("ListPeer"))?;
            Ok((*address, spec))
        })
        .collect::<Result<_, GobgpError>>()?;
    let export = read_export(client).await?;
    let paths = match known_paths {
        Some(known) => known.clone(),
        None => {
            let mut paths = BTreeMap::new();
            for afi in [Afi::Ipv4, Afi::Ipv6] {
                paths.extend(read_paths(client, afi).await?);
            }
            paths
        }
    };
    Ok(Snapshot {
        actual: Actual {
            global: Some(global),
            peers,
            export,
            paths,
        },
        listed_peers,
    })
}

/// Every neighbor, as listed (with `enable_advertised` when `advertised`).
pub(crate) async fn list_peers(
    client: &mut Client,
    advertised: bool,
) -> Result<Vec<api::Peer>, GobgpError> {
    let stream = client
        .list_peer(request(api::ListPeerRequest {
            address: String::new(),
            enable_advertised: advertised,
        }))
        .await
        .map_err(call_failed("ListPeer"))?
        .into_inner();
    Ok(drain("ListPeer", stream)
        .await?
        .into_iter()
        .filter_map(|reply| reply.peer)
        .collect())
}

pub(super) async fn read_peers(
    client: &mut Client,
) -> Result<BTreeMap<IpAddr, api::Peer>, GobgpError> {
    list_peers(client, false)
        .await?
        .into_iter()
        .map(|peer| {
            let address = convert::parse_addr(
                "neighbor address",
                peer.conf
                    .as_ref()
                    .map_or("", |c| c.neighbor_address.as_str()),
            )
            .map_err(unreadable("ListPeer"))?;
            Ok((address, peer))
        })
        .collect()
}

async fn defined_sets(
    client: &mut Client,
    kind: DefinedType,
) -> Result<Vec<api::DefinedSet>, GobgpError> {
    let stream = client
        .list_defined_set(request(api::ListDefinedSetRequest {
            defined_type: kind as i32,
            name: String::new(),
        }))
        .await
        .map_err(call_failed("ListDefinedSet"))?
        .into_inner();
    Ok(drain("ListDefinedSet", stream)
        .await?
        .into_iter()
        .filter_map(|reply| reply.defined_set)
        .filter(|set| is_our_set(&set.name))
        .collect())
}

async fn assignment(
    client: &mut Client,
    direction: PolicyDirection,
) -> Result<Assignment, GobgpError> {
    let stream = client
        .list_policy_assignment(request(api::ListPolicyAssignmentRequest {
            name: "global".to_owned(),
            direction: direction as i32,
        }))
        .await
        .map_err(call_failed("ListPolicyAssignment"))?
        .into_inner();
    let listed = drain("ListPolicyAssignment", stream).await?;
    let Some(assignment) = listed.into_iter().find_map(|reply| reply.assignment) else {
        return Ok(Assignment::default());
    };
    Ok(Assignment {
        policies: assignment.policies.into_iter().map(|p| p.name).collect(),
        default: convert::disposition(assignment.default_action),
    })
}

async fn read_export(client: &mut Client) -> Result<ActualExport, GobgpError> {
    let mut export = ActualExport::default();
    for set in defined_sets(client, DefinedType::Prefix).await? {
        let entries = convert::prefix_entries(&set).map_err(unreadable("ListDefinedSet"))?;
        export.prefix_sets.insert(set.name, entries);
    }
    for set in defined_sets(client, DefinedType::Neighbor).await? {
        let entries = convert::neighbor_entries(&set).map_err(unreadable("ListDefinedSet"))?;
        export.neighbor_sets.insert(set.name, entries);
    }
    let stream = client
        .list_policy(request(api::ListPolicyRequest {
            name: String::new(),
        }))
        .await
        .map_err(call_failed("ListPolicy"))?
        .into_inner();
    for policy in drain("ListPolicy", stream).await? {
        let Some(policy) = policy.policy else {
            continue;
        };
        if policy.name == IMPORT_POLICY_NAME {
            export.import_policy = if convert::is_import_policy(&policy) {
                ImportPolicy::AcceptsLocal
            } else {
                ImportPolicy::Other
            };
            continue;
        }
        if !is_our_policy(&policy.name) {
            continue;
        }
        let statements = (policy.statements.iter())
            .map(|s| convert::statement_from_api(&policy.name, s))
            .collect::<Result<Option<Vec<_>>, _>>()
            .map_err(unreadable("ListPolicy"))?;
        export.policies.insert(policy.name, statements);
    }
    export.export = assignment(client, PolicyDirection::Export).await?;
    export.import = assignment(client, PolicyDirection::Import).await?;
    Ok(export)
}

async fn read_paths(
    client: &mut Client,
    afi: Afi,
) -> Result<BTreeMap<PathKey, IpAddr>, GobgpError> {
    let stream = client
        .list_path(request(api::ListPathRequest {
            table_type: TableType::Global as i32,
            family: Some(convert::family(afi)),
            ..api::ListPathRequest::default()
        }))
        .await
        .map_err(call_failed("ListPath"))?
        .into_inner();
    let mut paths = BTreeMap::new();
    for reply in drain("ListPath", stream).await? {
        let Some(destination) = reply.destination else {
            continue;
        };
        for path in &destination.paths {
            if let Some((key, next_hop)) =
                convert::local_path(path).map_err(unreadable("ListPath"))?
            {
                paths.insert(key, next_hop);
            }
        }
    }
    Ok(paths)
}
