//! The GoBGP adapter against a real gobgpd and real routers (BIRD 2, and FRR where the router
//! matters) in network namespaces:
//! converge announces what is desired (IPv4 over an IPv4 session, IPv6 over an IPv6
//! session), a second converge writes nothing, removals withdraw exactly what was removed,
//! ADD-PATH next hops become an ECMP kernel route, export rules set communities, large
//! communities and local preference and limit prefixes to chosen peers, and the peer
//! statuses agree with what the router shows.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::lab::*;
use baremetal_ccm::gobgp::{ConvergeReport, Daemon, DaemonOptions};
use baremetal_ccm_core::announce::desired::{Afi, DesiredDaemon};
use baremetal_ccm_core::announce::gobgp::{PeerStatus, SessionState};
use rig::process::wait_for;
use rig::router::{Router, RouterKind};

async fn statuses(daemon: &mut Daemon) -> BTreeMap<std::net::IpAddr, PeerStatus> {
    daemon
        .peer_statuses()
        .await
        .expect("peer statuses")
        .into_iter()
        .map(|s| (s.address, s))
        .collect()
}

/// `peer` as gobgpd lists it.
async fn listed_peer(lab: &BgpLab, peer: std::net::IpAddr) -> Option<gobgp_api_proto::api::Peer> {
    let mut client = lab.gobgpd.client().await.expect("API client");
    let mut stream = client
        .list_peer(gobgp_api_proto::api::ListPeerRequest {
            address: peer.to_string(),
            enable_advertised: false,
        })
        .await
        .expect("ListPeer")
        .into_inner();
    stream.message().await.expect("ListPeer stream")?.peer
}

/// UPDATE messages gobgpd sent to `peer`, from its own counters.
async fn sent_updates(lab: &BgpLab, peer: std::net::IpAddr) -> u64 {
    let listed = listed_peer(lab, peer).await.expect("the peer");
    let messages = listed.state.and_then(|s| s.messages);
    messages.and_then(|m| m.sent).map_or(0, |sent| sent.update)
}

const V4: &str = "198.51.100.10/32";
const V6: &str = "2001:db8:100::10/128";
/// Announced with next-hop-self: the speaker's own address on the session.
const V4_SELF: &str = "198.51.100.11/32";
const V6_SELF: &str = "2001:db8:100::11/128";

/// One router with an IPv4 and an IPv6 session, and a desired state with a path of each
/// family and a next-hop-self path, converged; returns once the router's kernel has them.
async fn two_family_lab(kind: RouterKind) -> (BgpLab, Router, DesiredDaemon, Daemon) {
    let lab = BgpLab::new(1).await;
    let sessions = vec![session(0, Afi::Ipv4), session(0, Afi::Ipv6)];
    let router = start_router(kind, &lab, 0, sessions).await;
    let want = desired(
        [
            peer(router_v4(0), ROUTER_ASN, "tor-a"),
            peer(router_v6(0), ROUTER_ASN, "tor-a"),
        ],
        [
            path(V4, "192.0.2.2", 0),
            path(V6, "2001:db8::2", 0),
            path(V4_SELF, "0.0.0.0", 0),
            path(V6_SELF, "::", 0),
        ],
        vec![rule("pool-a", &[V4, V6])],
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    let first = daemon.converge(&want).await.expect("first converge");
    assert!(
        first.bgp_started && first.peers_added == 2 && first.paths_added == 4,
        "{first:?}"
    );
    assert_eq!(
        first.sessions_up_before_paths,
        Some(true),
        "a fresh daemon's paths are streamed once its sessions are up"
    );
    wait_kernel(&lab, 0, &net(V4), &[ip("192.0.2.2")], &router).await;
    wait_kernel(&lab, 0, &net(V6), &[ip("2001:db8::2")], &router).await;
    wait_kernel(&lab, 0, &net(V4_SELF), &[speaker_v4()], &router).await;
    wait_kernel(&lab, 0, &net(V6_SELF), &[speaker_v6()], &router).await;
    (lab, router, want, daemon)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converge_from_empty_announces_each_family_over_its_own_session_with_bird() {
    converge_from_empty(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converge_from_empty_announces_each_family_over_its_own_session_with_frr() {
    converge_from_empty(RouterKind::Frr).await;
}

/// Each family over its own session, as the statuses and the CLI show.
async fn converge_from_empty(kind: RouterKind) {
    let (lab, router, _, mut daemon) = two_family_lab(kind).await;
    for (prefix, session) in [(net(V4), "spk4"), (net(V6), "spk6")] {
        let routes = routes_from(&router, session, &prefix);
        assert_eq!(
            routes.len(),
            1,
            "{prefix} over its own family's session: {routes:#?}"
        );
        assert_eq!(routes[0].as_path, "64512");
        assert_eq!(routes[0].origin.as_deref(), Some("IGP"));
    }
    assert!(
        routes_from(&router, "spk6", &net(V4)).is_empty(),
        "no IPv4 prefix over IPv6"
    );

    // Operators can inspect the same state with the GoBGP CLI.
    let rib = lab
        .gobgpd
        .cli(&["global", "rib", "-a", "ipv4"])
        .expect("gobgp global rib");
    assert!(rib.contains(V4) && rib.contains("192.0.2.2"), "{rib}");
    let neighbors = lab.gobgpd.cli(&["neighbor"]).expect("gobgp neighbor");
    assert!(neighbors.contains("Establ"), "{neighbors}");

    // Statuses agree with the router: established, two routes over each session.
    let now = statuses(&mut daemon).await;
    let tor4 = &now[&router_v4(0)];
    assert_eq!(tor4.session, SessionState::Established);
    assert_eq!(tor4.source, "tor-a");
    assert!(tor4.established_since.is_some());
    assert_eq!(tor4.advertised, BTreeMap::from([(Afi::Ipv4, 2)]));
    assert_eq!(Some(2), imported(&router, "spk4"));
    assert_eq!(
        now[&router_v6(0)].advertised,
        BTreeMap::from([(Afi::Ipv6, 2)])
    );
    assert_eq!(Some(2), imported(&router, "spk6"));
    assert!(
        tor4.router_receives_add_path.is_empty(),
        "{kind} offers no ADD-PATH receive here"
    );
    assert_eq!(tor4.bfd, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_converge_writes_nothing_and_removing_a_path_withdraws_only_it() {
    let (lab, router, mut want, mut daemon) = two_family_lab(RouterKind::Bird).await;
    let updates_before = sent_updates(&lab, router_v4(0)).await;
    let second = daemon.converge(&want).await.expect("second converge");
    assert_eq!(second, ConvergeReport::default(), "nothing changed");

    want.paths.remove(&path(V4_SELF, "0.0.0.0", 0));
    let third = daemon.converge(&want).await.expect("third converge");
    assert_eq!((third.paths_deleted, third.writes), (1, 1), "{third:?}");
    let gone = wait_for(SESSION_WAIT, || async {
        routes_from(&router, "spk4", &net(V4_SELF))
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "{V4_SELF} withdrawn: {:#?}",
        router.paths(&net(V4_SELF))
    );
    let kernel = lab.routers[0].kernel_next_hops(&net(V4)).unwrap();
    assert_eq!(kernel, [ip("192.0.2.2")], "the other paths stay");
    assert_eq!(routes_from(&router, "spk6", &net(V6)).len(), 1);
    assert_eq!(routes_from(&router, "spk6", &net(V6_SELF)).len(), 1);
    // gobgpd's own counter: since before the second converge, only this withdrawal went out.
    let counted = wait_for(Duration::from_secs(10), || async {
        (sent_updates(&lab, router_v4(0)).await == updates_before + 1).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "one UPDATE since the second converge, got {}",
        sent_updates(&lab, router_v4(0)).await - updates_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_change_updates_the_peer_in_place_without_resetting_the_session() {
    let (_lab, router, mut want, mut daemon) = two_family_lab(RouterKind::Bird).await;
    let before = statuses(&mut daemon).await[&router_v4(0)].clone();
    let tor = want.peers.get_mut(&router_v4(0)).expect("peer");
    tor.connect_retry = Duration::from_secs(7);
    let report = daemon.converge(&want).await.expect("converge");
    assert_eq!((report.peers_updated, report.writes), (1, 1), "{report:?}");
    assert!(
        !daemon.converge(&want).await.expect("converge").changed(),
        "read back as set"
    );
    // Only timers changed: gobgpd updates them in place. Everything we did not change came
    // back unchanged through the read-modify-write, else gobgpd would have re-created the
    // neighbor (a session reset).
    let after = statuses(&mut daemon).await[&router_v4(0)].clone();
    assert_eq!(after.session, SessionState::Established);
    assert_eq!(
        (after.established_since, after.flaps),
        (before.established_since, before.flaps)
    );
    assert!(established(&router, "spk4"));
    assert_eq!(routes_from(&router, "spk4", &net(V4)).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_next_hops_with_add_path_become_one_ecmp_route_in_the_bird_kernel() {
    three_next_hops_with_add_path(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_next_hops_with_add_path_become_one_ecmp_route_in_the_frr_kernel() {
    three_next_hops_with_add_path(RouterKind::Frr).await;
}

async fn three_next_hops_with_add_path(kind: RouterKind) {
    let lab = BgpLab::new(2).await;
    // Router 0 takes several paths per prefix and merges them into one kernel route;
    // router 1 takes one path per prefix (no ADD-PATH receive).
    let mut add_paths = session(0, Afi::Ipv4);
    add_paths.add_paths_rx = true;
    let ecmp = start_router(kind, &lab, 0, vec![add_paths]).await;
    let single = start_router(kind, &lab, 1, vec![session(1, Afi::Ipv4)]).await;
    let prefix = net("198.51.100.20/32");
    let peers = [router_v4(0), router_v4(1)].map(|address| {
        let mut p = peer(address, ROUTER_ASN, "tor");
        p.add_path_send_max = 8;
        p
    });
    let mut want = desired(
        peers,
        [
            path("198.51.100.20/32", "192.0.2.2", 1),
            path("198.51.100.20/32", "192.0.2.3", 2),
            path("198.51.100.20/32", "192.0.2.4", 3),
        ],
        Vec::new(),
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    daemon.converge(&want).await.expect("converge");

    let three = [ip("192.0.2.2"), ip("192.0.2.3"), ip("192.0.2.4")];
    wait_kernel(&lab, 0, &prefix, &three, &ecmp).await;
    assert_eq!(routes_from(&ecmp, "spk4", &prefix).len(), 3);
    wait_established(&single, "spk4", &lab.gobgpd).await;
    let one = wait_for(SESSION_WAIT, || async {
        let routes = routes_from(&single, "spk4", &prefix);
        (routes.len() == 1).then_some(routes)
    })
    .await
    .expect("the router without ADD-PATH gets one path");
    assert_eq!(one[0].next_hops.len(), 1);

    // The statuses tell which router takes the paths: only router 0 gets ECMP.
    let now = statuses(&mut daemon).await;
    let ecmp_status = &now[&router_v4(0)];
    assert_eq!(
        ecmp_status.router_receives_add_path,
        BTreeSet::from([Afi::Ipv4])
    );
    assert_eq!(ecmp_status.add_path_send, BTreeSet::from([Afi::Ipv4]));
    assert_eq!(ecmp_status.advertised[&Afi::Ipv4], 3);
    let single_status = &now[&router_v4(1)];
    assert!(single_status.add_path_send.is_empty(), "{single_status:?}");
    assert_eq!(single_status.advertised[&Afi::Ipv4], 1);
    assert_eq!(Some(1), imported(&single, "spk4"));

    // One node leaves: its next hop leaves the ECMP route, the others stay.
    want.paths.remove(&path("198.51.100.20/32", "192.0.2.3", 2));
    let report = daemon.converge(&want).await.expect("converge");
    assert_eq!((report.paths_deleted, report.writes), (1, 1), "{report:?}");
    wait_kernel(&lab, 0, &prefix, &[three[0], three[2]], &ecmp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_communities_large_communities_and_local_preference_reach_bird() {
    pool_attributes(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_communities_large_communities_and_local_preference_reach_frr() {
    pool_attributes(RouterKind::Frr).await;
}

/// Pool communities, large communities and (iBGP only) local preference reach the routers.
async fn pool_attributes(kind: RouterKind) {
    let lab = BgpLab::new(2).await;
    let ebgp = start_router(kind, &lab, 0, vec![session(0, Afi::Ipv4)]).await;
    let mut ibgp_session = session(1, Afi::Ipv4);
    (ibgp_session.local_as, ibgp_session.neighbor_as) = (SPEAKER_ASN, SPEAKER_ASN);
    let ibgp = start_router(kind, &lab, 1, vec![ibgp_session]).await;
    let mut pool = rule("pool-a", &["198.51.100.30/32"]);
    pool.communities = vec![65000 << 16 | 200, 65000 << 16 | 100];
    pool.large_communities = vec![(65000, 1, 2)];
    pool.local_preference = Some(250);
    let want = desired(
        [
            peer(router_v4(0), ROUTER_ASN, "tor-ebgp"),
            peer(router_v4(1), SPEAKER_ASN, "rr-ibgp"),
        ],
        [
            path("198.51.100.30/32", "192.0.2.2", 0),
            path("198.51.100.31/32", "192.0.2.2", 0),
        ],
        vec![pool],
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    daemon.converge(&want).await.expect("converge");

    let pooled = net("198.51.100.30/32");
    let plain = net("198.51.100.31/32");
    for (i, router) in [(0, &ebgp), (1, &ibgp)] {
        wait_kernel(&lab, i, &pooled, &[ip("192.0.2.2")], router).await;
        wait_kernel(&lab, i, &plain, &[ip("192.0.2.2")], router).await;
    }
    let communities = BTreeSet::from(["65000:100".to_owned(), "65000:200".to_owned()]);
    let at_ebgp = &routes_from(&ebgp, "spk4", &pooled)[0];
    assert_eq!(at_ebgp.communities, communities, "{kind}: {at_ebgp:?}");
    assert_eq!(
        at_ebgp.large_communities,
        BTreeSet::from(["65000:1:2".to_owned()])
    );
    assert_ne!(
        at_ebgp.local_pref,
        Some(250),
        "LOCAL_PREF is not sent over eBGP (BIRD shows its default, FRR none)"
    );
    let at_ibgp = &routes_from(&ibgp, "spk4", &pooled)[0];
    assert_eq!(at_ibgp.local_pref, Some(250), "{kind}: {at_ibgp:?}");
    assert_eq!(at_ibgp.communities, communities);
    let unpooled = &routes_from(&ebgp, "spk4", &plain)[0];
    assert!(
        unpooled.communities.is_empty() && unpooled.large_communities.is_empty(),
        "a prefix outside every rule is exported unchanged: {unpooled:?}"
    );
    assert_eq!(routes_from(&ibgp, "spk4", &plain)[0].local_pref, Some(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_limited_to_one_router_reaches_only_that_router_and_can_move_with_bird() {
    pool_limited_to_one_router(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_limited_to_one_router_reaches_only_that_router_and_can_move_with_frr() {
    pool_limited_to_one_router(RouterKind::Frr).await;
}

async fn pool_limited_to_one_router(kind: RouterKind) {
    let lab = BgpLab::new(2).await;
    let routers = [
        start_router(kind, &lab, 0, vec![session(0, Afi::Ipv4)]).await,
        start_router(kind, &lab, 1, vec![session(1, Afi::Ipv4)]).await,
    ];
    let limited = net("198.51.100.40/32");
    let everywhere = net("198.51.100.41/32");
    let mut pool = rule("limited", &["198.51.100.40/32"]);
    pool.peers = Some(BTreeSet::from([router_v4(0)]));
    let mut want = desired(
        [router_v4(0), router_v4(1)].map(|a| peer(a, ROUTER_ASN, "tor")),
        [
            path("198.51.100.40/32", "192.0.2.2", 0),
            path("198.51.100.41/32", "192.0.2.2", 0),
        ],
        vec![pool],
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    daemon.converge(&want).await.expect("converge");

    let hop = [ip("192.0.2.2")];
    wait_kernel(&lab, 0, &limited, &hop, &routers[0]).await;
    wait_kernel(&lab, 0, &everywhere, &hop, &routers[0]).await;
    // Router 1 has the unrestricted prefix, so the update that would carry the other one
    // has been sent if it ever would be.
    wait_kernel(&lab, 1, &everywhere, &hop, &routers[1]).await;
    assert!(
        routes_from(&routers[1], "spk4", &limited).is_empty(),
        "{:#?}",
        routers[1].paths(&limited)
    );
    assert_eq!(Some(1), imported(&routers[1], "spk4"));

    // The pool moves to router 1: it is withdrawn from router 0 and sent to router 1
    // without touching the paths.
    want.export[0].peers = Some(BTreeSet::from([router_v4(1)]));
    let report = daemon.converge(&want).await.expect("converge");
    assert_eq!(
        (report.paths_added, report.soft_resets),
        (0, 1),
        "{report:?}"
    );
    wait_kernel(&lab, 1, &limited, &hop, &routers[1]).await;
    wait_kernel(&lab, 0, &limited, &[], &routers[0]).await;
    assert_eq!(lab.routers[0].kernel_next_hops(&everywhere).unwrap(), hop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_table_is_trusted_between_resyncs_and_read_back_after() {
    let (lab, router, want, mut trusting) = two_family_lab(RouterKind::Bird).await;
    // Someone deletes a path behind the adapter's back.
    lab.gobgpd
        .cli(&["global", "rib", "-a", "ipv4", "del", V4])
        .expect("gobgp global rib del");
    wait_kernel(&lab, 0, &net(V4), &[], &router).await;
    // Within the resync interval the handle trusts the table it left: nothing to do, and
    // so nothing read back (this is what keeps a change cheap with a large table).
    let trusted = trusting.converge(&want).await.expect("converge");
    assert_eq!(trusted.paths_added, 0, "{trusted:?}");
    // A handle whose interval has passed reads the table back and puts the path back.
    let options = baremetal_ccm::gobgp::DaemonOptions {
        path_resync: Duration::ZERO,
        ..Default::default()
    };
    let mut checking = Daemon::connect_with(&lab.gobgpd.endpoint(), options)
        .await
        .expect("connect");
    let repaired = checking.converge(&want).await.expect("converge");
    assert_eq!(repaired.paths_added, 1, "{repaired:?}");
    wait_kernel(&lab, 0, &net(V4), &[ip("192.0.2.2")], &router).await;
    assert!(!checking.converge(&want).await.expect("converge").changed());
}

/// Whether gobgpd was told to greet `peer` as a restarting speaker.
async fn greeted_as_restarting(lab: &BgpLab, peer: std::net::IpAddr) -> Option<bool> {
    Some(
        listed_peer(lab, peer)
            .await?
            .graceful_restart?
            .local_restarting,
    )
}

/// The cold start of a fresh daemon: opened while the cluster is read (BGP started, the
/// plain IPv4 session brought up with nothing in it, the graceful-restart IPv6 peer left for
/// later), then converged: the paths go into the Established session, and the IPv6 peer is
/// added after them as a restarting speaker, so that it starts with the final table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_opened_early_gets_its_paths_in_the_established_session_and_restarting_peers_last()
{
    let lab = BgpLab::new(1).await;
    let mut v6_session = session(0, Afi::Ipv6);
    v6_session.graceful_restart = true;
    let router = start_router(
        RouterKind::Bird,
        &lab,
        0,
        vec![session(0, Afi::Ipv4), v6_session],
    )
    .await;
    let mut v6_peer = peer(router_v6(0), ROUTER_ASN, "tor-a");
    v6_peer.graceful_restart = Some(Duration::from_secs(60));
    let want = desired(
        [peer(router_v4(0), ROUTER_ASN, "tor-a"), v6_peer],
        [path(V4, "192.0.2.2", 0), path(V6, "2001:db8::2", 0)],
        vec![rule("pool-a", &[V4, V6])],
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    assert!(
        daemon.open(&want).await.expect("open"),
        "a fresh daemon opens"
    );
    let came_up = wait_for(SESSION_WAIT, || async {
        established(&router, "spk4").then_some(())
    })
    .await;
    assert!(
        came_up.is_some(),
        "the plain session comes up before any path is known"
    );
    let up = statuses(&mut daemon).await;
    assert_eq!(up[&router_v4(0)].session, SessionState::Established);
    assert!(
        !up.contains_key(&router_v6(0)),
        "the graceful-restart peer waits for the final table: {up:?}"
    );
    assert_eq!(Some(0), imported(&router, "spk4"));

    // Another handle finds BGP running and opens nothing (it never empties a daemon).
    let mut other = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    assert!(!other.open(&want).await.expect("open"));
    drop(other);

    let report = daemon.converge(&want).await.expect("converge");
    assert!(
        !report.bgp_started && report.peers_added == 1 && report.paths_added == 2,
        "{report:?}"
    );
    assert_eq!(report.sessions_up_before_paths, Some(true), "{report:?}");
    assert_eq!(greeted_as_restarting(&lab, router_v6(0)).await, Some(true));
    wait_kernel(&lab, 0, &net(V4), &[ip("192.0.2.2")], &router).await;
    wait_kernel(&lab, 0, &net(V6), &[ip("2001:db8::2")], &router).await;
    assert!(!daemon.converge(&want).await.expect("converge").changed());
}

/// A router that never answers does not hold the paths back for longer than the session
/// wait: they are in gobgpd's table after it, for the router to get when it comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_never_comes_up_delays_a_fresh_daemons_paths_only_by_the_session_wait() {
    let lab = BgpLab::new(1).await;
    let want = desired(
        [peer(router_v4(0), ROUTER_ASN, "tor-a")],
        [path(V4, "192.0.2.2", 0)],
        vec![rule("pool-a", &[V4])],
    );
    let options = DaemonOptions {
        session_wait: Duration::from_secs(2),
        ..DaemonOptions::default()
    };
    let mut daemon = Daemon::connect_with(&lab.gobgpd.endpoint(), options)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let report = daemon.converge(&want).await.expect("converge");
    let took = started.elapsed();
    assert_eq!(report.sessions_up_before_paths, Some(false), "{report:?}");
    assert_eq!(report.paths_added, 1, "{report:?}");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "waited {took:?}"
    );
    let rib = lab
        .gobgpd
        .cli(&["global", "rib", "-a", "ipv4"])
        .expect("gobgp global rib");
    assert!(rib.contains(V4), "{rib}");
}
