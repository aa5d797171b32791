//! Executes a plan (the core's [`Op`]s) against the daemon, one operation after the other, counting what it
//! changed. Paths are added through `AddPathStream` in batches and deleted one by one with
//! the specific path (never the empty `DeletePath`, which deletes every local path).

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::{StreamExt as _, TryStreamExt as _};
use gobgp_api_proto::api::{self, DefinedType, PolicyDirection, RouteAction, TableType};

use baremetal_ccm_core::announce::gobgp::plan::{Op, SetEntries, SetName};
use baremetal_ccm_core::announce::gobgp::policy::{IMPORT_POLICY_NAME, Statement};
use baremetal_ccm_core::announce::gobgp::state::PathKey;

use super::convert;
use super::peer::{new_peer, updated_peer};
use super::{Client, ConvergeReport, GobgpError, request};
use crate::announce::desired::Global;

/// Paths per `AddPathStream` message: gobgpd applies each message as one batch.
const PATHS_PER_MESSAGE: usize = 500;
/// `DeletePath` calls in flight at once.
const DELETES_IN_FLIGHT: usize = 16;

fn call_failed(call: &'static str) -> impl FnOnce(tonic::Status) -> GobgpError {
    move |source| GobgpError::Call { call, source }
}

/// Runs `ops` in order; stops at the first failure (the next converge starts from what
/// the daemon then holds).
///
/// One overlap: while the daemon has no peer (a fresh or restarted daemon), nothing is
/// exported before the plan's `AddPeer`s, so the export policy is built concurrently with
/// the path stream instead of before it. The import policy, which applies as paths enter
/// the table, still precedes them.
pub(crate) async fn apply(
    client: &mut Client,
    ops: Vec<Op>,
    listed_peers: &BTreeMap<IpAddr, api::Peer>,
) -> Result<ConvergeReport, GobgpError> {
    let mut report = ConvergeReport::default();
    let overlap = listed_peers.is_empty();
    let mut deferred: Vec<Op> = Vec::new();
    let mut stopped = false;
    for op in ops {
        if overlap && builds_export_policy(&op) {
            deferred.push(op);
            continue;
        }
        if let Op::AddPaths(paths) = op {
            let policy = std::mem::take(&mut deferred);
            add_paths_alongside(client, paths, policy, &mut report).await?;
            continue;
        }
        for deferred in deferred.drain(..) {
            apply_config(client, deferred, listed_peers, &mut report).await?;
        }
        match op {
            Op::StopBgp => {
                stop(client).await?;
                report.bgp_stopped = true;
                stopped = true;
                report.writes += 1;
            }
            Op::StartBgp(global) => {
                start(client, &global, stopped).await?;
                report.bgp_started = true;
                report.writes += 1;
            }
            Op::DeletePaths(paths) => {
                delete_paths(client, &paths).await?;
                report.writes += paths.len();
                report.paths_deleted += paths.len();
                tracing::info!(count = paths.len(), "paths withdrawn");
            }
            op => apply_config(client, op, listed_peers, &mut report).await?,
        }
    }
    for deferred in deferred {
        apply_config(client, deferred, listed_peers, &mut report).await?;
    }
    Ok(report)
}

fn builds_export_policy(op: &Op) -> bool {
    match op {
        Op::AddToSet(_)
        | Op::RemoveFromSet(_)
        | Op::DeleteSet(_)
        | Op::AddPolicy { .. }
        | Op::AssignExport(_) => true,
        Op::DeletePolicy(name) => name != IMPORT_POLICY_NAME,
        _ => false,
    }
}

/// The path stream, with `policy` (export-policy ops, in order) applied meanwhile.
async fn add_paths_alongside(
    client: &mut Client,
    paths: Vec<(PathKey, IpAddr)>,
    policy: Vec<Op>,
    report: &mut ConvergeReport,
) -> Result<(), GobgpError> {
    let count = paths.len();
    let mut policy_client = client.clone();
    let build_policy = async move {
        let calls = policy.len();
        for op in policy {
            apply_policy(&mut policy_client, op).await?;
        }
        Ok::<_, GobgpError>(calls)
    };
    let (policy_writes, stream_writes) =
        futures::future::try_join(build_policy, add_paths(client, paths)).await?;
    report.policy_writes += policy_writes;
    report.writes += policy_writes + stream_writes;
    report.paths_added += count;
    tracing::info!(count, "paths announced");
    Ok(())
}

async fn start(client: &mut Client, global: &Global, after_stop: bool) -> Result<(), GobgpError> {
    match client
        .start_bgp(request(convert::start_request(global)))
        .await
    {
        Ok(_) => {}
        // gobgpd v4.8.0's StopBgp ends its server loop; nothing starts it again.
        Err(source) if after_stop => return Err(GobgpError::StoppedForGood { source }),
        Err(source) => {
            return Err(GobgpError::Call {
                call: "StartBgp",
                source,
            });
        }
    }
    tracing::info!(asn = global.asn, router_id = %global.router_id, listen_port = global.listen_port, "BGP started");
    Ok(())
}

async fn stop(client: &mut Client) -> Result<(), GobgpError> {
    tracing::info!("BGP stopped to change the global settings");
    client
        .stop_bgp(request(api::StopBgpRequest {
            allow_graceful_restart: true,
        }))
        .await
        .map_err(call_failed("StopBgp"))?;
    Ok(())
}

/// Peers, sets, policies, assignments and resets: one call each.
async fn apply_config(
    client: &mut Client,
    op: Op,
    listed_peers: &BTreeMap<IpAddr, api::Peer>,
    report: &mut ConvergeReport,
) -> Result<(), GobgpError> {
    report.writes += 1;
    match op {
        Op::DeletePeer(address) => {
            client
                .delete_peer(request(api::DeletePeerRequest {
                    address: address.to_string(),
                    interface: String::new(),
                }))
                .await
                .map_err(call_failed("DeletePeer"))?;
            report.peers_deleted += 1;
            tracing::info!(peer = %address, "peer deleted");
        }
        Op::AddPeer {
            address,
            spec,
            restarting,
        } => {
            let peer = new_peer(address, &spec, restarting);
            client
                .add_peer(request(api::AddPeerRequest { peer: Some(peer) }))
                .await
                .map_err(call_failed("AddPeer"))?;
            report.peers_added += 1;
            tracing::info!(peer = %address, peer_asn = spec.peer_asn, source = %spec.description, restarting, "peer added");
        }
        Op::UpdatePeer { address, spec } => {
            let current = listed_peers.get(&address).cloned().unwrap_or_default();
            let peer = updated_peer(&current, address, &spec);
            client
                .update_peer(request(api::UpdatePeerRequest {
                    peer: Some(peer),
                    do_soft_reset_in: false,
                }))
                .await
                .map_err(call_failed("UpdatePeer"))?;
            report.peers_updated += 1;
            tracing::info!(peer = %address, source = %spec.description, "peer updated");
        }
        Op::SoftResetOut => {
            client
                .reset_peer(request(api::ResetPeerRequest {
                    address: "all".to_owned(),
                    communication: String::new(),
                    soft: true,
                    direction: api::reset_peer_request::Direction::Out as i32,
                }))
                .await
                .map_err(call_failed("ResetPeer"))?;
            report.soft_resets += 1;
            tracing::debug!("export policy re-applied to every established peer");
        }
        op => {
            apply_policy(client, op).await?;
            report.policy_writes += 1;
        }
    }
    Ok(())
}

async fn apply_policy(client: &mut Client, op: Op) -> Result<(), GobgpError> {
    match op {
        Op::AddToSet(entries) => {
            let set = defined_set(&entries);
            tracing::debug!(set = %set.name, entries = set.prefixes.len() + set.list.len(), "defined set extended");
            client
                .add_defined_set(request(api::AddDefinedSetRequest {
                    defined_set: Some(set),
                    replace: false,
                }))
                .await
                .map_err(call_failed("AddDefinedSet"))?;
        }
        Op::RemoveFromSet(entries) => {
            let set = defined_set(&entries);
            tracing::debug!(set = %set.name, entries = set.prefixes.len() + set.list.len(), "defined set entries removed");
            delete_defined_set(client, set, false).await?;
        }
        Op::DeleteSet(name) => {
            let (kind, name) = match name {
                SetName::Prefix(name) => (DefinedType::Prefix, name),
                SetName::Neighbor(name) => (DefinedType::Neighbor, name),
            };
            tracing::debug!(set = %name, "defined set deleted");
            let set = api::DefinedSet {
                defined_type: kind as i32,
                name,
                ..api::DefinedSet::default()
            };
            delete_defined_set(client, set, true).await?;
        }
        Op::AddPolicy { name, statements } => add_policy(client, name, &statements).await?,
        Op::DeletePolicy(name) => {
            tracing::debug!(policy = %name, "export policy deleted");
            client
                .delete_policy(request(api::DeletePolicyRequest {
                    policy: Some(api::Policy {
                        name,
                        statements: Vec::new(),
                    }),
                    preserve_statements: false,
                    all: true,
                }))
                .await
                .map_err(call_failed("DeletePolicy"))?;
        }
        Op::AssignExport(policies) => {
            tracing::debug!(?policies, "global export policy assigned");
            let assignment =
                convert::global_assignment(PolicyDirection::Export, &policies, RouteAction::Accept);
            client
                .set_policy_assignment(request(assignment))
                .await
                .map_err(call_failed("SetPolicyAssignment"))?;
        }
        Op::AddImportPolicy => {
            tracing::debug!("import policy built (local routes only)");
            client
                .add_policy(request(api::AddPolicyRequest {
                    policy: Some(convert::import_policy()),
                    refer_existing_statements: false,
                }))
                .await
                .map_err(call_failed("AddPolicy"))?;
        }
        Op::AssignImport(policies) => {
            tracing::debug!(?policies, "global import policy assigned, default reject");
            let assignment =
                convert::global_assignment(PolicyDirection::Import, &policies, RouteAction::Reject);
            client
                .set_policy_assignment(request(assignment))
                .await
                .map_err(call_failed("SetPolicyAssignment"))?;
        }
        op => unreachable!("apply_config handles {op:?}"),
    }
    Ok(())
}

fn defined_set(entries: &SetEntries) -> api::DefinedSet {
    match entries {
        SetEntries::Prefixes { name, entries } => convert::prefix_set(name, entries),
        SetEntries::Neighbors { name, entries } => convert::neighbor_set(name, entries),
    }
}

async fn delete_defined_set(
    client: &mut Client,
    set: api::DefinedSet,
    all: bool,
) -> Result<(), GobgpError> {
    client
        .delete_defined_set(request(api::DeleteDefinedSetRequest {
            defined_set: Some(set),
            all,
        }))
        .await
        .map_err(call_failed("DeleteDefinedSet"))?;
    Ok(())
}

async fn add_policy(
    client: &mut Client,
    name: &str,
    statements: &[Statement],
) -> Result<(), GobgpError> {
    tracing::debug!(
        policy = name,
        statements = statements.len(),
        "export policy built"
    );
    let policy = api::Policy {
        name: name.to_owned(),
        statements: statements
            .iter()
            .map(|s| convert::statement(name, s))
            .collect(),
    };
    client
        .add_policy(request(api::AddPolicyRequest {
            policy: Some(policy),
            refer_existing_statements: false,
        }))
        .await
        .map_err(call_failed("AddPolicy"))?;
    Ok(())
}

/// `paths` in batches of [`PATHS_PER_MESSAGE`] (one, empty, when there are none), each
/// allocated for its own paths only. (Splitting the tail off again and again left every batch
/// with the capacity of all the paths after it: 160,000 paths held about 1 GiB at once.)
fn batches<T>(paths: Vec<T>) -> Vec<Vec<T>> {
    let mut batches = Vec::with_capacity(paths.len().div_ceil(PATHS_PER_MESSAGE).max(1));
    let mut rest = paths.into_iter();
    loop {
        let batch: Vec<T> = rest.by_ref().take(PATHS_PER_MESSAGE).collect();
        if batch.is_empty() && !batches.is_empty() {
            return batches;
        }
        let last = batch.len() < PATHS_PER_MESSAGE;
        batches.push(batch);
        if last {
            return batches;
        }
    }
}

/// Streams the paths in batches; one call. Messages are built as the stream is sent, so
/// encoding overlaps gobgpd's work on the previous batch.
async fn add_paths(
    client: &mut Client,
    paths: Vec<(PathKey, IpAddr)>,
) -> Result<usize, GobgpError> {
    let batches = batches(paths);
    let messages = futures::stream::iter(batches).map(|batch| api::AddPathStreamRequest {
        table_type: TableType::Global as i32,
        vrf_id: String::new(),
        paths: batch
            .iter()
            .map(|(key, hop)| convert::path(key, *hop))
            .collect(),
    });
    client
        .add_path_stream(request(messages))
        .await
        .map_err(call_failed("AddPathStream"))?;
    Ok(1)
}

/// The `DeletePath` request for exactly one path. It always names the path: a request
/// with neither path nor uuid would delete every locally originated path of the family.
pub(crate) fn delete_request(key: &PathKey, next_hop: IpAddr) -> api::DeletePathRequest {
    let path = convert::path(key, next_hop);
    api::DeletePathRequest {
        table_type: TableType::Global as i32,
        vrf_id: String::new(),
        family: path.family,
        path: Some(path),
        uuid: Vec::new(),
    }
}

async fn delete_paths(client: &Client, paths: &[(PathKey, IpAddr)]) -> Result<(), GobgpError> {
    // Owned requests: a stream over borrowed items makes the future non-`Send` (rustc's
    // higher-ranked closure inference), and callers run converge on spawned tasks.
    let requests: Vec<api::DeletePathRequest> = (paths.iter())
        .map(|(key, hop)| delete_request(key, *hop))
        .collect();
    futures::stream::iter(requests)
        .map(|delete| {
            let mut client = client.clone();
            async move {
                client
                    .delete_path(request(delete))
                    .await
                    .map_err(call_failed("DeletePath"))
            }
        })
        .buffer_unordered(DELETES_IN_FLIGHT)
        .try_for_each(|_| async { Ok(()) })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_batches_hold_only_their_own_paths() {
        let paths: Vec<u32> = (0..10 * 500 + 7).collect();
        let split = batches(paths);
        assert_eq!(split.len(), 11);
        assert!(split.iter().all(|b| b.capacity() <= PATHS_PER_MESSAGE));
        assert_eq!(split.concat(), (0..10 * 500 + 7).collect::<Vec<u32>>());
        assert_eq!(batches::<u32>(Vec::new()), vec![Vec::<u32>::new()]);
        assert_eq!(batches((0..500).collect::<Vec<u32>>()).len(), 1);
    }

    #[test]
    fn a_delete_always_names_the_path() {
        let key = PathKey {
            prefix: "198.51.100.10/32".parse().expect("prefix"),
            path_id: 2,
        };
        let delete = delete_request(&key, "192.0.2.2".parse().expect("hop"));
        let path = delete.path.expect("a delete carries the path");
        assert_eq!(path.identifier, 2);
        assert!(path.nlri.is_some());
        assert!(delete.family.is_some());
    }
}
