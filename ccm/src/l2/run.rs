//! The speaker's layer 2, put together: watches of the Services, Nodes, EndpointSlices and
//! IPPools; the node's interfaces; the membership; and a responder per interface. On every
//! change it plans again (the core's `l2::plan`) and hands each responder its duty and the
//! membership the owners to watch. The failover path needs no API call: a change of the
//! membership view alone moves an address. The host checks (`host`) run at start, on every
//! change of the interfaces and every [`HOST_RECHECK`] (a sysctl changes without an event).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use baremetal_ccm_core::announce::inputs::{ServiceInput, service_input};
use baremetal_ccm_core::crd::ippool::{IPPool, L2Announcement};
use baremetal_ccm_core::l2::conflict::{self, Conflicts, Verdict};
use baremetal_ccm_core::l2::election::{
    self, Liveness, LocalEndpoints, Member, NoEligibleNode, NodeFacts, Ownership,
};
use baremetal_ccm_core::l2::frame::Mac;
use baremetal_ccm_core::l2::plan::{self, Inputs, Plan, ServiceKey};
use baremetal_ccm_core::l2::probe::{self, Announced};
use baremetal_ccm_core::l2::respond::{ClaimKind, Interface};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt as _};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::host::{HostChecks, Refused};
use super::keys::KeyFiles;
use super::links::{self, Link, LinksError};
use super::membership::{self, Config, Conflict, MemberState, Membership, MembershipError};
use super::metrics::Metrics;
use super::responder::{Duty, ReplyOptions, Report, Responder, Task};
use crate::admin::{Readiness, ReadinessPart};
use crate::announce::world::{slim_node, slim_service, slim_slice, watch_all};
use crate::listed::Listings;

/// How long a speaker that found a higher-ranked speaker answering for one of its addresses
/// stays away from it (unless the views agree sooner: then the plan no longer gives it the
/// address anyway). Long enough that a lasting split does not make the two take turns often.
const YIELD: Duration = Duration::from_secs(30);

/// How long a speaker that has just started says it is settling: it owns addresses only when
/// no settled speaker can, so a restarting or flapping node does not pull them back at once.
const HOLD_DOWN: Duration = Duration::from_secs(10);

/// How often the host's settings are read again without an interface event: a fixed sysctl
/// (kube-proxy restarted with strict ARP) clears its problem within this.
const HOST_RECHECK: Duration = Duration::from_secs(30);

/// The speaker's layer-2 settings.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) node: String,
    pub(crate) port: u16,
    pub(crate) keys: KeyFiles,
    /// How the replies are sent (`--l2-reply-realtime`, `--l2-reply-in-kernel`).
    pub(crate) replies: ReplyOptions,
}

/// Why layer 2 stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum L2Error {
    #[error("watching the node's interfaces")]
    Links(#[source] LinksError),
    #[error("the membership")]
    Membership(#[source] MembershipError),
    #[error("the interface watch ended")]
    LinksEnded,
}

/// The watched caches (the speaker's, and the l2-status controller's: the same inputs give
/// the same election).
pub(crate) struct World {
    pub(crate) services: Store<Service>,
    pub(crate) nodes: Store<Node>,
    slices: Store<EndpointSlice>,
    pools: Store<IPPool>,
}

impl World {
    pub(crate) fn start(
        client: &Client,
        changed: watch::Sender<u64>,
    ) -> (World, crate::listed::AllListed) {
        let changed = Arc::new(changed);
        let mut listings = Listings::default();
        let mut watch = |what| (listings.track(what), changed.clone());
        let world = World {
            services: watch_all(Api::all(client.clone()), slim_service, watch("Services")),
            nodes: watch_all(Api::all(client.clone()), slim_node, watch("Nodes")),
            slices: watch_all(
                Api::all(client.clone()),
                slim_slice,
                watch("EndpointSlices"),
            ),
            pools: watch_all(Api::all(client.clone()), |_| {}, watch("IPPools")),
        };
        (world, listings.all())
    }

    /// The first InternalIP of `node` (IPv4 first): where its speaker gossips.
    pub(crate) fn address_of(&self, node: &str) -> Option<IpAddr> {
        let node = self
            .nodes
            .state()
            .into_iter()
            .find(|n| n.name_any() == node)?;
        let mut internal: Vec<IpAddr> = (node.status.as_ref())
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect();
        internal.sort_by_key(|a| !a.is_ipv4());
        internal.first().copied()
    }

    /// The first InternalIP of `node`, waited for: `waiting` is called each time there is
    /// none yet; `None` when the watches end first.
    pub(crate) async fn address_when_known(
        &self,
        node: &str,
        changed: &mut watch::Receiver<u64>,
        mut waiting: impl FnMut(),
    ) -> Option<IpAddr> {
        loop {
            if let Some(address) = self.address_of(node) {
                return Some(address);
            }
            waiting();
            changed.changed().await.ok()?;
        }
    }

    /// Where the other nodes' speakers would gossip (their address of `family`).
    pub(crate) fn seeds(&self, me: &str, port: u16, ipv4: bool) -> Vec<SocketAddr> {
        (self.nodes.state().iter())
            .filter(|n| n.name_any() != me)
            .filter_map(|n| self.address_of(&n.name_any()))
            .filter(|a| a.is_ipv4() == ipv4)
            .map(|a| SocketAddr::new(a, port))
            .collect()
    }
}

/// Runs layer 2 until `shutdown` resolves (then leaves the membership, so that successors
/// take over at once) or something fails.
pub(crate) async fn run(
    client: Client,
    settings: Settings,
    metrics: Metrics,
    readiness: ReadinessPart,
    shutdown: impl Future<Output = ()>,
) -> Result<(), L2Error> {
    let (changed_tx, mut changed) = watch::channel(0u64);
    let (world, listed) = World::start(&client, changed_tx);
    if let Err(stopped) = listed.wait().await {
        tracing::debug!(%stopped, "not waiting for the initial lists");
    }
    let Some(address) = gossip_address(&world, &settings.node, &readiness, &mut changed).await
    else {
        return Ok(());
    };
    let (mut links, follow) = links::watch().await.map_err(L2Error::Links)?;
    let follow: JoinHandle<Result<(), LinksError>> = tokio::spawn(follow);
    let (state_tx, state_rx) = watch::channel(member_state(&links.borrow(), true, false));
    let seeds = world.seeds(&settings.node, settings.port, address.is_ipv4());
    let (seeds_tx, seeds_rx) = watch::channel(seeds);
    let (watched_tx, watched_rx) = watch::channel(BTreeSet::new());
    let (keys_tx, keys_rx) = watch::channel(settings.keys.keys());
    let follow_keys = tokio::spawn(settings.keys.follow(keys_tx));
    let config = Config::following(
        settings.node.clone(),
        SocketAddr::new(address, settings.port),
        keys_rx,
    );
    let inputs = membership::Inputs {
        state: state_rx,
        seeds: seeds_rx,
        watched: watched_rx,
    };
    let membership = (Membership::start(config, inputs, metrics.membership.clone()).await)
        .map_err(L2Error::Membership)?;
    let mut view = membership.view();
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let was_up = up_links(&links.borrow());
    let mut me = Supervisor {
        node: settings.node,
        port: settings.port,
        ipv4: address.is_ipv4(),
        world,
        responders: Responders::new(report_tx, metrics.clone(), settings.replies),
        host: HostChecks::new(metrics.host_problems.clone()),
        check_host: true,
        refused: Refused::default(),
        previous: Plan::default(),
        yielded: BTreeMap::new(),
        conflicts: Conflicts::default(),
        announced: Announced::default(),
        origin: tokio::time::Instant::now(),
        settling: true,
        returns: 0,
        was_up,
        metrics,
        readiness,
        state_tx,
        seeds_tx,
        watched_tx,
    };
    let mut shutdown = std::pin::pin!(shutdown);
    let mut settled = std::pin::pin!(tokio::time::sleep(HOLD_DOWN));
    let mut recheck =
        tokio::time::interval_at(tokio::time::Instant::now() + HOST_RECHECK, HOST_RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tracing::info!(gossip = %membership.local_addr(), "layer 2 started");
    tracing::info!(hold_down = ?HOLD_DOWN, "settling: owns an address only when no settled speaker can");
    loop {
        me.replan(&links.borrow(), &view.borrow());
        tokio::select! {
            () = &mut shutdown => break,
            result = changed.changed() => if result.is_err() { break },
            result = view.changed() => {
                if result.is_err() {
                    break;
                }
                if me.returned(&view.borrow(), &links.borrow()) {
                    settled.as_mut().reset(tokio::time::Instant::now() + HOLD_DOWN);
                }
            }
            result = links.changed() => {
                if result.is_err() {
                    return Err(L2Error::LinksEnded);
                }
                if me.links_changed(&links.borrow()) {
                    settled.as_mut().reset(tokio::time::Instant::now() + HOLD_DOWN);
                }
            }
            _ = recheck.tick() => me.check_host = true,
            () = &mut settled, if me.settling => me.settled(&links.borrow()),
            Some(report) = reports.recv() => me.report(report, &view.borrow()),
            () = sleep_until(me.next_wake_up()) => {}
        }
        me.publish_seeds();
    }
    tracing::info!("leaving the layer-2 membership");
    // Stop answering first, then tell the others: successors take over as soon as they hear.
    drop(me);
    follow.abort();
    follow_keys.abort();
    membership.leave().await.map_err(L2Error::Membership)
}

/// The address this node's speaker gossips on: its Node's first InternalIP, waited for (not
/// ready meanwhile); `None` when the watches end first.
async fn gossip_address(
    world: &World,
    node: &str,
    readiness: &ReadinessPart,
    changed: &mut watch::Receiver<u64>,
) -> Option<IpAddr> {
    let waiting = || {
        readiness.set(Readiness::NotReady(format!(
            "l2: node {node} has no InternalIP to gossip on"
        )));
    };
    world.address_when_known(node, changed, waiting).await
}

/// The supervisor's state between two changes.
struct Supervisor {
    node: String,
    port: u16,
    ipv4: bool,
    world: World,
    responders: Responders,
    host: HostChecks,
    check_host: bool,
    refused: Refused,
    previous: Plan,
    /// Addresses given way on, until when (a higher-ranked speaker answers for them too).
    yielded: BTreeMap<IpAddr, Yield>,
    /// Machines outside the cluster found holding addresses (times since `origin`).
    conflicts: Conflicts,
    /// The addresses known to have been announced: a takeover of those is not probed.
    announced: Announced,
    origin: tokio::time::Instant,
    settling: bool,
    /// The membership's count of this speaker's returns (declared down while cut off or
    /// stalled) already settled for.
    returns: u64,
    was_up: BTreeMap<String, u64>,
    metrics: Metrics,
    readiness: ReadinessPart,
    state_tx: watch::Sender<MemberState>,
    seeds_tx: watch::Sender<Vec<SocketAddr>>,
    watched_tx: watch::Sender<BTreeSet<String>>,
}

impl Supervisor {
    /// Plans from what is known now and hands the plan out: duties to the responders, owners
    /// to watch to the membership; checks the host when due; sets readiness.
    fn replan(&mut self, links: &[Link], view: &membership::View) {
        self.responders.follow(links);
        if self.check_host || self.responders.refused() != self.refused {
            self.refused = self.responders.refused();
            self.host.check(links, self.refused.clone());
            self.check_host = false;
            (self.state_tx)
                .send_if_modified(|state| replace(&mut state.host_problems, self.host.problems()));
        }
        self.drop_speakers_conflicts(view);
        let held_back = self.conflicts.holding_back();
        let (mut plan, before) = plan_now(&self.world, view, &self.node, &held_back);
        let now = tokio::time::Instant::now();
        self.yielded.retain(|_, y| y.holds(view, &self.node, now));
        for duty in plan.duties.values_mut() {
            duty.retain(|address, _| !self.yielded.contains_key(address));
        }
        if (self.conflicts).advance(now - self.origin, &plan.elections.keys().copied().collect()) {
            self.publish_conflicts();
        }
        let to_probe = self.announced.to_probe(&plan, &before);
        self.announced.learn(&plan, &self.node);
        self.responders.assign(&plan, &to_probe);
        log_changes(&self.previous, &plan);
        self.metrics.conflicted.set(count_i64(conflicted(&plan)));
        (self.watched_tx).send_if_modified(|w| replace(w, plan.watched.clone()));
        self.metrics.owned.set(count_i64(owned(&plan).len()));
        self.previous = plan;
        let problems = (self.responders.failures())
            .chain(self.host.unready())
            .collect();
        self.readiness.set(readiness_of(problems));
    }

    /// Gossips the interfaces' new state; true when one came (back) up, which restarts the
    /// hold-down: a flapping link must not drag addresses back and forth.
    fn links_changed(&mut self, links: &[Link]) -> bool {
        let now_up = up_links(links);
        let returned = came_back(&self.was_up, &now_up);
        if returned {
            tracing::info!(hold_down = ?HOLD_DOWN, "settling: owns an address only when no settled speaker can");
            self.settling = true;
        }
        self.was_up = now_up;
        self.publish_state(links);
        self.check_host = true;
        returned
    }

    /// Whether the membership says this speaker came back from being declared down on the
    /// side that was cut off (or stalled): that restarts the hold-down, as a link coming back
    /// does, so it does not pull addresses back from the speakers that carried them.
    fn returned(&mut self, view: &membership::View, links: &[Link]) -> bool {
        if view.returns <= self.returns {
            return false;
        }
        self.returns = view.returns;
        tracing::info!(hold_down = ?HOLD_DOWN, "settling: owns an address only when no settled speaker can (back after the others declared it down)");
        self.settling = true;
        self.publish_state(links);
        true
    }

    /// The hold-down is over.
    fn settled(&mut self, links: &[Link]) {
        tracing::info!("settled: owns addresses whenever it is first in rank");
        self.settling = false;
        self.publish_state(links);
        self.publish_conflicts();
    }

    /// Gossips the interfaces and the hold-down as they are now; what else the state says
    /// (host problems, conflicts) stays.
    fn publish_state(&self, links: &[Link]) {
        let fresh = member_state(links, self.settling, false);
        (self.state_tx).send_modify(|state| {
            state.interfaces = fresh.interfaces;
            state.settling = fresh.settling;
            state.leaving = fresh.leaving;
            state.ready = fresh.ready;
        });
    }

    /// When the loop must run again without any event: a yield or a conflict runs out.
    fn next_wake_up(&self) -> Option<tokio::time::Instant> {
        let conflicts = (self.conflicts.next_change()).map(|at| self.origin + at);
        (self.yielded.values().map(|y| y.until))
            .chain(conflicts)
            .min()
    }

    fn report(&mut self, report: Report, view: &membership::View) {
        match report {
            Report::Announced { interface, address } => {
                self.announced.insert(address);
                if self.conflicts.announced(address) {
                    tracing::info!(%interface, %address, "the machine that held the address no longer answers: announced");
                    self.publish_conflicts();
                }
            }
            Report::Conflict {
                interface,
                address,
                mac,
                kind,
                while_probing,
            } => {
                self.metrics.conflicts.inc();
                match speaker_with_mac(view, mac) {
                    Some(other) if other != self.node => {
                        let yields = election::yields_to(&self.node, &other, address);
                        tracing::info!(%interface, %address, %mac, speaker = %other, yields, while_probing, "another speaker answers for the address too");
                        // A speaker answers for it: it was announced, no probe is due.
                        self.announced.insert(address);
                        if yields {
                            let y = Yield::to(&other, view, tokio::time::Instant::now());
                            self.yielded.insert(address, y);
                        }
                    }
                    _ => self.outside_claim(&interface, address, mac, kind, while_probing),
                }
            }
        }
    }

    /// A MAC that is no speaker's claimed `address`: defended once, or a conflict.
    fn outside_claim(
        &mut self,
        interface: &str,
        address: IpAddr,
        mac: Mac,
        kind: ClaimKind,
        while_probing: bool,
    ) {
        let now = tokio::time::Instant::now() - self.origin;
        let verdict = (self.conflicts).claimed(address, interface, mac.0, while_probing, now);
        let kind = kind.label();
        match verdict {
            Verdict::Defend => {
                tracing::warn!(%interface, %address, %mac, kind, "address conflict: defended once");
            }
            Verdict::Conflict => {
                tracing::warn!(%interface, %address, %mac, kind, while_probing, reprobe = ?conflict::REPROBE, settling = self.settling, "address conflict: a machine outside the cluster holds the address; no speaker announces it");
                self.publish_conflicts();
            }
        }
    }

    /// Conflicts with a MAC that turned out to be a speaker's (not yet known when it claimed
    /// the address, as right after a start) were none: dropped, and the address counts as
    /// announced (a speaker answered for it).
    fn drop_speakers_conflicts(&mut self, view: &membership::View) {
        let macs: BTreeSet<[u8; 6]> = (self.conflicts.held().iter()).map(|h| h.mac).collect();
        let mut dropped = false;
        for mac in macs {
            if speaker_with_mac(view, Mac(mac)).is_some() {
                for address in self.conflicts.not_outside(mac) {
                    tracing::info!(%address, mac = %Mac(mac), "the claimant is a speaker: no conflict");
                    self.announced.insert(address);
                    dropped = true;
                }
            }
        }
        if dropped {
            self.publish_conflicts();
        }
    }

    /// Gossips the conflicts (the newest [`conflict::MAX_CONFLICTS`]); none while settling:
    /// a speaker that has just started may not know every other speaker's MAC yet.
    fn publish_conflicts(&self) {
        let conflicts: Vec<Conflict> = if self.settling {
            Vec::new()
        } else {
            (self.conflicts.held().into_iter())
                .map(|h| Conflict {
                    address: h.address,
                    interface: h.interface.clone(),
                    mac: h.mac,
                })
                .collect()
        };
        (self.state_tx).send_if_modified(|state| replace(&mut state.conflicts, conflicts));
    }

    fn publish_seeds(&self) {
        let seeds = self.world.seeds(&self.node, self.port, self.ipv4);
        self.seeds_tx.send_if_modified(|s| replace(s, seeds));
    }
}

/// Giving way on an address to a higher-ranked speaker that answers for it too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Yield {
    to: String,
    until: tokio::time::Instant,
    /// Whether our view had that speaker up when we gave way. If it did, the view going
    /// against it later is news (it died, it left): the yield ends then, or a failover would
    /// wait out the rest of it. If it did not (our view was already wrong: a split), the
    /// view saying so again is no news, and the yield runs its time.
    up_then: bool,
}

impl Yield {
    fn to(other: &str, view: &membership::View, now: tokio::time::Instant) -> Self {
        Yield {
            to: other.to_owned(),
            until: now + YIELD,
            up_then: up_in(view, other),
        }
    }

    /// Whether the yield still holds for `own` (this speaker). It also ends when the speaker
    /// given way to is up and settling while we are not: it came back from being declared
    /// down (the split healed) and, in its hold-down, no longer answers for the address; kept,
    /// the yield would leave the address to nobody.
    fn holds(&self, view: &membership::View, own: &str, now: tokio::time::Instant) -> bool {
        let settling = |node: &str| (view.members.get(node)).is_some_and(|p| p.state.settling);
        let deferring = up_in(view, &self.to) && settling(&self.to) && !settling(own);
        self.until > now && (!self.up_then || up_in(view, &self.to)) && !deferring
    }
}

/// Whether `node`'s speaker is alive, unsuspected and not leaving in `view`.
fn up_in(view: &membership::View, node: &str) -> bool {
    (view.members.get(node)).is_some_and(|p| liveness_of(p) == Liveness::Alive)
}

/// A member's liveness as the election reads it. A speaker that said it was leaving and is
/// now down left gracefully: either way it owns nothing, and the reason of the change it
/// makes is a handover.
fn liveness_of(peer: &membership::Peer) -> Liveness {
    if peer.state.leaving {
        Liveness::Leaving
    } else if !peer.alive || peer.suspected_by_me {
        Liveness::Down
    } else {
        Liveness::Alive
    }
}

/// Ready when nothing is wrong; otherwise every reason, in one line.
fn readiness_of(problems: Vec<String>) -> Readiness {
    if problems.is_empty() {
        Readiness::Ready
    } else {
        Readiness::NotReady(format!("l2: {}", problems.join("; ")))
    }
}

/// Replaces `current` with `new` when they differ; whether they did (for `send_if_modified`).
pub(crate) fn replace<T: PartialEq>(current: &mut T, new: T) -> bool {
    let changed = *current != new;
    if changed {
        *current = new;
    }
    changed
}

/// The announceable interfaces that are up, by name, with how often each was seen down.
fn up_links(links: &[Link]) -> BTreeMap<String, u64> {
    (links.iter())
        .filter(|l| l.announceable && l.up)
        .map(|l| (l.name.clone(), l.downs))
        .collect()
}

/// Whether an interface is up now that was not, or was down in between (a flap shorter than
/// our look: its down count grew).
fn came_back(was_up: &BTreeMap<String, u64>, now_up: &BTreeMap<String, u64>) -> bool {
    (now_up.iter()).any(|(name, downs)| was_up.get(name) != Some(downs))
}

/// This speaker's gossiped state: its announceable interfaces.
fn member_state(links: &[Link], settling: bool, leaving: bool) -> MemberState {
    MemberState {
        ready: true,
        settling,
        leaving,
        interfaces: (links.iter())
            .filter(|l| l.announceable)
            .map(|l| election::Interface {
                name: l.name.clone(),
                up: l.up,
                mac: l.mac,
                addresses: l.addresses.clone(),
            })
            .collect(),
        ..MemberState::default()
    }
}

/// The plan from the caches and the membership view at this moment, with this speaker's own
/// conflicts as `held_back` (not as gossiped: those it probes again are not held back here),
/// and the addresses the Services' conditions say were announced before.
fn plan_now(
    world: &World,
    view: &membership::View,
    me: &str,
    held_back: &BTreeSet<IpAddr>,
) -> (Plan, BTreeSet<IpAddr>) {
    let facts = Facts::gather(world, view, None, Some((me, held_back)));
    let cached = world.services.state();
    let before = probe::announced_before(cached.iter().map(|s| &**s));
    (plan::plan(facts.inputs(me)), before)
}

/// Everything the election reads, gathered from the caches and a membership view.
pub(crate) struct Facts {
    pub(crate) view: election::View,
    pools: BTreeMap<String, L2Announcement>,
    pub(crate) services: Vec<ServiceInput>,
    endpoints: BTreeMap<ServiceKey, LocalEndpoints>,
}

impl Facts {
    /// The facts now; `observer` (the l2-status controller's own member) is left out of the
    /// election's view: it is no speaker, and counting it would change why nobody is eligible.
    /// Every member's conflicts are the ones it gossips, except `own`'s: a speaker plans with
    /// the conflicts it holds back now.
    pub(crate) fn gather(
        world: &World,
        view: &membership::View,
        observer: Option<&str>,
        own: Option<(&str, &BTreeSet<IpAddr>)>,
    ) -> Facts {
        let mut election = election::View::default();
        for (name, peer) in &view.members {
            if Some(name.as_str()) == observer {
                continue;
            }
            let liveness = liveness_of(peer);
            let conflicts = match own {
                Some((me, held_back)) if me == name => held_back.clone(),
                _ => peer.state.conflicts.iter().map(|c| c.address).collect(),
            };
            election.members.insert(
                name.clone(),
                Member {
                    liveness,
                    ready: peer.state.ready,
                    settling: peer.state.settling,
                    interfaces: peer.state.interfaces.clone(),
                    conflicts,
                },
            );
        }
        for node in world.nodes.state() {
            election.nodes.insert(node.name_any(), NodeFacts::of(&node));
        }
        let mut pools = BTreeMap::new();
        for pool in world.pools.state() {
            match pool.l2_announcement() {
                Some(Ok(options)) => {
                    pools.insert(pool.name_any(), options);
                }
                // The controller reports invalid options on the pool; nothing is announced.
                Some(Err(_reported_on_the_pool)) => {}
                None => {}
            }
        }
        let services: Vec<_> = (world.services.state().iter())
            .filter_map(|s| service_input(s))
            .collect();
        let slices = world.slices.state();
        let endpoints = plan::local_endpoints(slices.iter().map(|s| &**s));
        Facts {
            view: election,
            pools,
            services,
            endpoints,
        }
    }

    /// The planner's inputs, for `node`.
    pub(crate) fn inputs<'a>(&'a self, node: &'a str) -> Inputs<'a> {
        Inputs {
            node,
            view: &self.view,
            pools: &self.pools,
            services: &self.services,
            endpoints: &self.endpoints,
        }
    }
}

/// The addresses nobody announces because a speaker found them held outside the cluster.
fn conflicted(plan: &Plan) -> usize {
    (plan.elections.values())
        .filter(|e| {
            matches!(
                e.ownership,
                Ownership::NoEligibleNode(NoEligibleNode::AddressConflict)
            )
        })
        .count()
}

fn count_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The speaker (node) one of whose interfaces has `mac`, as far as this speaker knows.
fn speaker_with_mac(view: &membership::View, mac: Mac) -> Option<String> {
    (view.members.iter())
        .find(|(_, peer)| peer.state.interfaces.iter().any(|i| i.mac == mac.0))
        .map(|(node, _)| node.clone())
}

fn owned(plan: &Plan) -> BTreeSet<IpAddr> {
    plan.duties
        .values()
        .flat_map(|d| d.keys().copied())
        .collect()
}

fn log_changes(before: &Plan, after: &Plan) {
    let (was, is) = (owned(before), owned(after));
    for address in is.difference(&was) {
        let interfaces: Vec<&String> = (after.duties.iter())
            .filter(|(_, d)| d.contains_key(address))
            .map(|(i, _)| i)
            .collect();
        tracing::info!(%address, ?interfaces, "owning the address");
    }
    for address in was.difference(&is) {
        let owner = (after.elections.get(address))
            .and_then(|e| e.ownership.owner())
            .map(|c| c.node.clone());
        tracing::info!(%address, ?owner, "no longer owning the address");
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why a responder could not start.
#[derive(Debug, PartialEq, Eq)]
struct Failure {
    message: String,
    needs_net_raw: bool,
}

/// The responders, one per announceable interface that is up.
struct Responders {
    running: BTreeMap<String, (watch::Sender<Duty>, JoinHandle<()>)>,
    failed: BTreeMap<String, Failure>,
    /// Interfaces whose responder runs without the in-kernel reply it was asked for.
    in_kernel_refused: BTreeSet<String>,
    reports: mpsc::UnboundedSender<Report>,
    metrics: Metrics,
    replies: ReplyOptions,
}

impl Responders {
    fn new(
        reports: mpsc::UnboundedSender<Report>,
        metrics: Metrics,
        replies: ReplyOptions,
    ) -> Self {
        Responders {
            running: BTreeMap::new(),
            failed: BTreeMap::new(),
            in_kernel_refused: BTreeSet::new(),
            reports,
            metrics,
            replies,
        }
    }

    /// Starts responders on new interfaces and ends those of interfaces that are gone, down
    /// or no longer announceable, and those that stopped on an error (restarted next time).
    fn follow(&mut self, links: &[Link]) {
        let usable: BTreeMap<&str, &Link> = (links.iter())
            .filter(|l| l.usable())
            .map(|l| (l.name.as_str(), l))
            .collect();
        self.running
            .retain(|name, (_, task)| usable.contains_key(name.as_str()) && !task.is_finished());
        self.failed
            .retain(|name, _| usable.contains_key(name.as_str()));
        self.in_kernel_refused
            .retain(|name| self.running.contains_key(name.as_str()));
        for (name, link) in usable {
            if self.running.contains_key(name) {
                continue;
            }
            let interface = Interface {
                name: name.to_owned(),
                mac: Mac(link.mac),
            };
            let counters = Arc::new(self.metrics.clone());
            match Responder::open(
                interface,
                link.index,
                self.reports.clone(),
                counters,
                self.replies,
            ) {
                Ok(responder) => {
                    if responder.in_kernel_refused().is_some() {
                        self.in_kernel_refused.insert(name.to_owned());
                    }
                    let (duty_tx, duty_rx) = watch::channel(Duty::default());
                    let interface = name.to_owned();
                    let task = tokio::spawn(async move {
                        if let Err(error) = responder.run(duty_rx).await {
                            tracing::error!(error = %crate::error_chain(&error), %interface, "the responder stopped");
                        }
                    });
                    self.running.insert(name.to_owned(), (duty_tx, task));
                    self.failed.remove(name);
                }
                Err(error) => {
                    let failure = Failure {
                        message: crate::error_chain(&error),
                        needs_net_raw: error.needs_net_raw(),
                    };
                    // Retried on every change: said once, and again only if it changes.
                    if self.failed.get(name) != Some(&failure) {
                        tracing::error!(error = %failure.message, interface = name, "cannot answer on the interface");
                    }
                    self.failed.insert(name.to_owned(), failure);
                }
            }
        }
    }

    /// Gives each responder its duty from `plan`, probing the addresses `to_probe` first.
    fn assign(&mut self, plan: &Plan, to_probe: &BTreeSet<IpAddr>) {
        for (name, (duty, _)) in &self.running {
            let addresses = (plan.duties.get(name).into_iter().flatten())
                .map(|(address, cadence)| {
                    let task = Task {
                        cadence: *cadence,
                        probe: to_probe.contains(address),
                    };
                    (*address, task)
                })
                .collect();
            duty.send_if_modified(|current| replace(current, Duty { addresses }));
        }
        for name in plan.duties.keys() {
            if !self.running.contains_key(name) {
                tracing::warn!(interface = %name, "elected to announce on an interface without a responder");
            }
        }
    }

    /// Why responders could not start (each message names its interface).
    fn failures(&self) -> impl Iterator<Item = String> {
        self.failed.values().map(|f| f.message.clone())
    }

    /// The interfaces whose packet sockets the kernel refused for want of `CAP_NET_RAW`, and
    /// those without the in-kernel reply asked for.
    fn refused(&self) -> Refused {
        Refused {
            packet_sockets: (self.failed.iter())
                .filter(|(_, f)| f.needs_net_raw)
                .map(|(name, _)| name.clone())
                .collect(),
            in_kernel_reply: self.in_kernel_refused.clone(),
        }
    }
}

impl Drop for Responders {
    fn drop(&mut self) {
        for (_, (_, task)) in std::mem::take(&mut self.running) {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(links: &[(&str, u64)]) -> BTreeMap<String, u64> {
        links.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect()
    }

    fn view_with(node: &str, alive: bool, suspected: bool) -> membership::View {
        let mut view = membership::View::default();
        view.members.insert(
            node.to_owned(),
            membership::Peer {
                alive,
                suspect: suspected,
                suspected_by_me: suspected,
                addr: "192.0.2.1:7947".parse().unwrap(),
                state: MemberState::default(),
            },
        );
        view
    }

    #[test]
    fn a_yield_ends_when_the_speaker_given_way_to_goes_down_unless_the_view_was_wrong_already() {
        let now = tokio::time::Instant::now();
        let up = view_with("n1", true, false);
        let suspected = view_with("n1", true, true);
        // Given way to a speaker our view had up: it holds while that stays so...
        let y = Yield::to("n1", &up, now);
        assert!(y.holds(&up, "n2", now + Duration::from_secs(1)));
        assert!(!y.holds(&up, "n2", now + YIELD), "and runs out");
        // ...and ends as soon as it is suspected or down: a failover must not wait.
        assert!(!y.holds(&suspected, "n2", now + Duration::from_secs(1)));
        assert!(!y.holds(
            &view_with("n1", false, false),
            "n2",
            now + Duration::from_secs(1)
        ));
        // Given way while our view already had it suspected (a split: it answers, so our
        // view is wrong): the view saying so again changes nothing.
        let split = Yield::to("n1", &suspected, now);
        assert!(split.holds(&suspected, "n2", now + Duration::from_secs(1)));
        assert!(!split.holds(&suspected, "n2", now + YIELD));
    }

    #[test]
    fn a_yield_ends_when_the_speaker_given_way_to_comes_back_settling() {
        let now = tokio::time::Instant::now();
        let later = now + Duration::from_secs(1);
        // Given way during a split (our view had it down) to a speaker that still answered.
        let split = Yield::to("n1", &view_with("n1", false, false), now);
        let mut healed = view_with("n1", true, false);
        assert!(
            split.holds(&healed, "n2", later),
            "back and settled: it owns the address"
        );
        healed.members.get_mut("n1").unwrap().state.settling = true;
        assert!(
            !split.holds(&healed, "n2", later),
            "back and settling: it no longer answers, so we must"
        );
        // Unless we settle too: then it owns by rank, and answers.
        let mut own = healed.members["n1"].clone();
        own.state.settling = true;
        healed.members.insert("n2".to_owned(), own);
        assert!(split.holds(&healed, "n2", later));
    }

    #[test]
    fn a_link_comes_back_when_it_is_up_again_or_flapped_unseen() {
        let was = up(&[("eth0", 1), ("eth1", 0)]);
        assert!(!came_back(&was, &was), "nothing changed");
        assert!(!came_back(&was, &up(&[("eth0", 1)])), "one went down");
        assert!(came_back(&up(&[("eth0", 1)]), &was), "one came up");
        assert!(
            came_back(&was, &up(&[("eth0", 2), ("eth1", 0)])),
            "eth0 went down and up between two looks"
        );
    }
}
