//! The announcer's loop, the same in a controller replica (central placement) and in a
//! node's speaker (node-local): watch the cluster, plan, keep the sidecar converged, and
//! report this speaker's sessions in the `BGPPeer` statuses. It needs no lease: every replica
//! computes the same plan and programs its own daemon.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::watch;

use baremetal_ccm_core::announce::gobgp::PeerStatus;

use super::announcer::{Announcer, Connect, Step};
use super::metrics::Metrics;
use super::plan::{self, Inputs, Speaker};
use super::status;
use super::world::{Snapshot, World};
use crate::admin::{Readiness, ReadinessPart};
use crate::crd::bgppeer::{BGPPeer, SpeakerSession};
use baremetal_ccm_core::announce::readiness::readiness;

/// How often the daemon is checked for a restart and re-converged if needed.
const TICK: Duration = Duration::from_secs(1);
/// Events within this window are planned together.
const DEBOUNCE: Duration = Duration::from_millis(10);
/// How often sessions are read for the status.
const STATUS_PERIOD: Duration = Duration::from_secs(2);
/// An unchanged status entry is written again this often (so a stale `updated` shows a dead
/// speaker).
const HEARTBEAT: Duration = Duration::from_secs(600);

/// Where this announcer runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// A controller replica; `node` is where it runs (for the router ID).
    Central { node: Option<String> },
    /// A node's speaker.
    NodeLocal { node: String },
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub role: Role,
    /// The speaker's name in statuses (the replica's identity, or the node's name).
    pub speaker: String,
    pub asn: u32,
    pub router_id: Option<Ipv4Addr>,
    /// The only namespace password Secrets are read from.
    pub password_namespace: String,
}

impl Settings {
    fn speaker(&self, snapshot: &Snapshot) -> Speaker {
        let node = match &self.role {
            Role::Central { node } => node.as_deref(),
            Role::NodeLocal { node } => Some(node.as_str()),
        };
        let node_ipv4 = node.and_then(|name| {
            (snapshot.nodes.iter())
                .find(|n| n.name == name)
                .and_then(|n| n.ipv4)
        });
        let router_id =
            (self.router_id.or(node_ipv4)).unwrap_or_else(|| derived_router_id(&self.speaker));
        match &self.role {
            Role::Central { .. } => Speaker::Central {
                asn: self.asn,
                router_id,
            },
            Role::NodeLocal { node } => Speaker::NodeLocal {
                node: node.clone(),
                asn: self.asn,
                router_id,
            },
        }
    }
}

/// A router ID for a speaker without an IPv4 address: a hash of its name (never 0.0.0.0).
fn derived_router_id(name: &str) -> Ipv4Addr {
    Ipv4Addr::from(plan::fnv1a(name.as_bytes()).max(1))
}

/// The sessions to report and, when they cannot be known, why: the daemon is not converged
/// (`daemon_error`), or reading its sessions failed. Either way every configured peer's entry
/// must say `Unknown` with the cause, never a made-up `Idle`.
fn session_outcome<E: std::error::Error>(
    daemon_error: Option<String>,
    read: Option<Result<Vec<PeerStatus>, E>>,
) -> (Vec<PeerStatus>, Option<String>) {
    match (daemon_error, read) {
        (Some(note), _) => (Vec::new(), Some(note)),
        (None, Some(Ok(sessions))) => (sessions, None),
        (None, Some(Err(error))) => (
            Vec::new(),
            Some(format!(
                "reading the sessions from the BGP daemon failed: {}",
                crate::telemetry::error_chain(&error)
            )),
        ),
        (None, None) => (Vec::new(), None),
    }
}

/// Runs until the process stops.
/// `ready` is this announcer's part of the process's readiness: ready once every session its
/// plan configures is established (core `announce::readiness`).
pub(crate) async fn run<C: Connect>(
    client: Client,
    connect: C,
    settings: Settings,
    metrics: Metrics,
    ready: ReadinessPart,
) {
    let (changes, mut changed) = watch::channel(0_u64);
    let world = World::start(&client, &settings.password_namespace, changes);
    let mut announcer = Announcer::new(connect);
    open_sessions(&world, &settings, &mut announcer).await;
    world.listed().await;
    tracing::info!(speaker = settings.speaker, role = ?settings.role, "announcer started");
    let mut reporter = Reporter {
        writer: StatusWriter::new(client, &settings.speaker),
        speaker: settings.speaker.clone(),
        report_invalid: matches!(settings.role, Role::Central { .. }),
        ready,
    };
    let mut failures = 0_u32;
    let mut next_status = Instant::now();
    // Next-hop rankings kept between plans: a node's change re-ranks only what it touches.
    let mut memory = plan::Memory::default();
    // The last plan and what it was made from: planned again only when an input changed
    // (the world's signal), not at every tick, which only re-checks the daemon.
    let mut planned: Option<(Snapshot, plan::Plan)> = None;
    // Whether the inputs changed since the last plan (woken by the signal, or signalled while
    // the last step ran); true at first, so the first turn plans.
    let mut inputs_changed = true;
    loop {
        inputs_changed |= changed.has_changed().unwrap_or(true);
        changed.borrow_and_update();
        if std::mem::take(&mut inputs_changed) {
            let snapshot = world.snapshot();
            world.track_passwords(&snapshot.peers).await;
            let inputs = Inputs {
                pools: &snapshot.pools,
                peers: &snapshot.peers,
                services: &snapshot.services,
                endpoints: &snapshot.endpoints,
                nodes: &snapshot.nodes,
            };
            // A password that cannot be had skips its peer; the reason is its status message.
            let password =
                |r: &_| (world.password(r)).map_err(|error| crate::telemetry::error_chain(&error));
            let plan =
                plan::plan_with(&settings.speaker(&snapshot), inputs, &password, &mut memory);
            metrics.plans.inc();
            planned = Some((snapshot, plan));
        }
        let Some((snapshot, plan)) = &planned else {
            continue;
        };
        let started = Instant::now();
        let outcome = announcer.step(&plan.daemon).await;
        metrics.record(plan, &outcome, started.elapsed());
        let (wait, daemon_error) = match &outcome {
            Ok(step) => {
                failures = 0;
                log_step(*step, plan);
                (TICK, None)
            }
            Err(error) => {
                failures = failures.saturating_add(1);
                let note = crate::telemetry::error_chain(error);
                let wait = error.retry_after(failures);
                tracing::warn!(
                    error = note,
                    attempt = failures,
                    transient = error.is_transient(),
                    retry_in = ?wait,
                    "the BGP daemon is not converged; retrying"
                );
                (wait, Some(note))
            }
        };
        if Instant::now() >= next_status || daemon_error.is_some() {
            let read = match &daemon_error {
                None => Some(announcer.sessions().await),
                Some(_) => None,
            };
            let (sessions, unreadable) = session_outcome(daemon_error, read);
            metrics.sessions(&sessions);
            reporter
                .report(plan, snapshot, &sessions, unreadable.as_deref())
                .await;
            next_status = Instant::now() + STATUS_PERIOD;
        }
        tokio::select! {
            result = changed.changed() => {
                if result.is_err() {
                    return;
                }
                inputs_changed = true;
                tokio::time::sleep(DEBOUNCE).await;
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// On a daemon that holds nothing (a fresh sidecar), opens the sessions as soon as the
/// pools, peers and Nodes are read, while the Services and EndpointSlices (the large lists)
/// still are: a session takes seconds to come up, and gobgpd sends paths added once it is up
/// several times faster than a table that was waiting for it. A daemon that holds state is
/// left alone until the first full plan; an error only logs (the loop's first step retries).
async fn open_sessions<C: Connect>(
    world: &World,
    settings: &Settings,
    announcer: &mut Announcer<C>,
) {
    world.listed_for_sessions().await;
    let snapshot = world.snapshot();
    world.track_passwords(&snapshot.peers).await;
    let inputs = Inputs {
        pools: &snapshot.pools,
        peers: &snapshot.peers,
        services: &[],
        endpoints: &Default::default(),
        nodes: &snapshot.nodes,
    };
    let password =
        |r: &_| (world.password(r)).map_err(|error| crate::telemetry::error_chain(&error));
    let speaker = settings.speaker(&snapshot);
    let plan = plan::plan_with(&speaker, inputs, &password, &mut plan::Memory::default());
    if let Err(error) = announcer.open(&plan.daemon).await {
        tracing::debug!(
            error = crate::telemetry::error_chain(&error),
            "opening the BGP sessions early failed; the first converge retries"
        );
    }
}

/// What a speaker reports of its sessions: its `BGPPeer` status entries and its readiness.
struct Reporter {
    writer: StatusWriter,
    speaker: String,
    /// Whether peers that cannot be configured get an entry (the controller's replicas report
    /// them; the node speakers would only repeat it).
    report_invalid: bool,
    ready: ReadinessPart,
}

impl Reporter {
    /// `unknown` is why the sessions could not be read, when they could not: every configured
    /// peer's entry then says `Unknown` with it, and the speaker is not ready.
    async fn report(
        &mut self,
        plan: &plan::Plan,
        snapshot: &Snapshot,
        sessions: &[PeerStatus],
        unknown: Option<&str>,
    ) {
        let mut entries = status::entries(
            &self.speaker,
            plan,
            sessions,
            &snapshot.invalid_peers,
            self.report_invalid,
        );
        if let Some(note) = unknown {
            status::mark_unknown(&mut entries, note);
        }
        self.ready
            .set(match readiness(&plan.daemon, sessions, unknown) {
                Ok(()) => Readiness::Ready,
                Err(reason) => Readiness::NotReady(reason),
            });
        self.writer.write(entries).await;
    }
}

fn log_step(step: Step, plan: &plan::Plan) {
    match step {
        Step::Converged {
            restarted: true, ..
        } => tracing::info!(
            paths = plan.daemon.paths.len(),
            peers = plan.daemon.peers.len(),
            "the BGP daemon restarted; configured it again"
        ),
        Step::Converged { changed: true, .. } => tracing::info!(
            paths = plan.daemon.paths.len(),
            peers = plan.daemon.peers.len(),
            "announcements changed"
        ),
        Step::Converged { .. } | Step::Unchanged | Step::Idle => {}
    }
}

/// Writes this speaker's entries into `BGPPeer` statuses with server-side apply under its
/// own field manager: each speaker owns exactly its entry, so speakers never conflict.
struct StatusWriter {
    api: Api<BGPPeer>,
    manager: String,
    speaker: String,
    written: BTreeMap<String, (SpeakerSession, Instant)>,
}

impl StatusWriter {
    fn new(client: Client, speaker: &str) -> Self {
        // Field managers are limited to 128 characters.
        let manager: String = format!("baremetal-ccm/{speaker}")
            .chars()
            .take(128)
            .collect();
        Self {
            api: Api::all(client),
            manager,
            speaker: speaker.to_owned(),
            written: BTreeMap::new(),
        }
    }

    async fn write(&mut self, entries: BTreeMap<String, SpeakerSession>) {
        let gone: Vec<String> = (self.written.keys())
            .filter(|peer| !entries.contains_key(*peer))
            .cloned()
            .collect();
        for peer in gone {
            // Applying no entry removes ours; a peer deleted meanwhile answers 404.
            if self.apply(&peer, None).await {
                self.written.remove(&peer);
            }
        }
        for (peer, mut entry) in entries {
            let due = match self.written.get(&peer) {
                Some((written, at)) => {
                    status::differs(written, &entry) || at.elapsed() >= HEARTBEAT
                }
                None => true,
            };
            if !due {
                continue;
            }
            entry.updated = Timestamp::now().to_string();
            if self.apply(&peer, Some(&entry)).await {
                self.written.insert(peer, (entry, Instant::now()));
            }
        }
    }

    /// Applies our entry (or none); whether the status now says what we meant.
    async fn apply(&self, peer: &str, entry: Option<&SpeakerSession>) -> bool {
        let speakers: Vec<&SpeakerSession> = entry.into_iter().collect();
        let patch = json!({
            "apiVersion": "baremetal-ccm.io/v1alpha1",
            "kind": "BGPPeer",
            "metadata": { "name": peer },
            "status": { "speakers": speakers },
        });
        let params = PatchParams::apply(&self.manager).force();
        match self
            .api
            .patch_status(peer, &params, &Patch::Apply(&patch))
            .await
        {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 404 => true,
            Err(error) => {
                tracing::warn!(%error, peer, speaker = self.speaker, "writing the BGPPeer status failed; retrying");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce::announcer::SidecarError;
    use crate::announce::gobgp::GobgpError;

    /// A configured peer's entry as `status::entries` writes it before anything is known.
    fn entries_with_one_configured_and_one_skipped_peer() -> BTreeMap<String, SpeakerSession> {
        let mut plan = plan::Plan::default();
        plan.peer_names
            .insert("198.51.100.1".parse().unwrap(), "tor".into());
        plan.skipped_peers
            .insert("bad".into(), "password Secret x/y does not exist".into());
        status::entries("n1", &plan, &[], &BTreeMap::new(), false)
    }

    #[test]
    fn a_failed_session_read_is_unknown_with_its_cause_never_idle() {
        let failed = Some(Err(SidecarError::Call(GobgpError::Call {
            call: "ListPeer",
            source: tonic::Status::unavailable("connection reset"),
        })));
        let (sessions, cause) = session_outcome(None, failed);
        assert!(sessions.is_empty());
        let cause = cause.expect("a failed read has a cause");
        assert!(
            cause.contains("reading the sessions") && cause.contains("connection reset"),
            "{cause}"
        );
        let mut entries = entries_with_one_configured_and_one_skipped_peer();
        assert_eq!(entries["tor"].state, "Idle");
        status::mark_unknown(&mut entries, &cause);
        assert_eq!(entries["tor"].state, status::UNKNOWN);
        assert_eq!(entries["tor"].last_error.as_deref(), Some(cause.as_str()));
        assert_eq!(entries["bad"].state, status::NOT_CONFIGURED);
        assert_eq!(
            entries["bad"].last_error.as_deref(),
            Some("password Secret x/y does not exist")
        );
    }

    #[test]
    fn the_daemon_error_is_the_cause_and_a_good_read_has_none() {
        let (_, cause) = session_outcome::<GobgpError>(Some("not converged".into()), None);
        assert_eq!(cause.as_deref(), Some("not converged"));
        let (sessions, cause) = session_outcome::<GobgpError>(None, Some(Ok(Vec::new())));
        assert!(sessions.is_empty() && cause.is_none());
    }

    #[test]
    fn a_router_id_comes_from_the_flag_then_the_node_then_the_name() {
        let node = super::super::inputs::NodeInput {
            name: "n1".into(),
            labels: Default::default(),
            ineligible: None,
            ipv4: Some(Ipv4Addr::new(198, 51, 100, 11)),
            ipv6: None,
        };
        let snapshot = Snapshot {
            nodes: vec![node],
            ..Snapshot::default()
        };
        let mut settings = Settings {
            role: Role::NodeLocal { node: "n1".into() },
            speaker: "n1".into(),
            asn: 64512,
            router_id: None,
            password_namespace: "baremetal-ccm-bgp".into(),
        };
        let id = |s: &Settings| match s.speaker(&snapshot) {
            Speaker::Central { router_id, .. } | Speaker::NodeLocal { router_id, .. } => router_id,
        };
        assert_eq!(id(&settings), Ipv4Addr::new(198, 51, 100, 11));
        settings.router_id = Some(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(id(&settings), Ipv4Addr::new(10, 0, 0, 1));
        settings.router_id = None;
        settings.role = Role::Central { node: None };
        settings.speaker = "ccm-a".into();
        let derived = id(&settings);
        assert_ne!(derived, Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            derived,
            derived_router_id("ccm-a"),
            "stable across restarts"
        );
    }
}
