//! Sessions under stress, with a real gobgpd and real routers (BIRD 2 and FRR): MD5
//! passwords, BFD taking routes away long before the hold timer, a killed and restarted
//! gobgpd converged again (graceful restart keeping the routes at the router meanwhile), and
//! a change of the global settings, which gobgpd v4.8.0 can only apply in a new process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::lab::*;
use baremetal_ccm::gobgp::{Daemon, DaemonOptions, GobgpError, RestartCause};
use baremetal_ccm_core::announce::desired::{Afi, BfdSettings, Password};
use baremetal_ccm_core::announce::gobgp::{BfdState, SessionState};
use rig::process::wait_for;
use rig::router::{Router, RouterKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_session_comes_up_with_the_right_password_and_not_with_a_wrong_one_bird() {
    md5(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_session_comes_up_with_the_right_password_and_not_with_a_wrong_one_frr() {
    md5(RouterKind::Frr).await;
}

async fn md5(kind: RouterKind) {
    let lab = BgpLab::new(1).await;
    let mut md5 = session(0, Afi::Ipv4);
    md5.password = Some("s3cret".into());
    let router = start_router(kind, &lab, 0, vec![md5]).await;
    let mut tor = peer(router_v4(0), ROUTER_ASN, "tor");
    tor.password = Some(Password("wrong".into()));
    let mut want = desired(
        [tor],
        [path("198.51.100.50/32", "192.0.2.2", 0)],
        Vec::new(),
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    daemon.converge(&want).await.expect("converge");

    // gobgpd retries every 2 s; over several retries the kernel drops every segment with
    // the wrong signature, so the session never reaches Established.
    let came_up = wait_for(Duration::from_secs(8), || async {
        established(&router, "spk4").then_some(())
    })
    .await;
    assert!(came_up.is_none(), "established with a wrong password");
    let status = &daemon.peer_statuses().await.expect("statuses")[0];
    assert_ne!(status.session, SessionState::Established);

    let tor = want.peers.get_mut(&router_v4(0)).expect("peer");
    tor.password = Some(Password("s3cret".into()));
    let report = daemon.converge(&want).await.expect("converge");
    assert_eq!((report.peers_updated, report.writes), (1, 1), "{report:?}");
    wait_established(&router, "spk4", &lab.gobgpd).await;
    wait_kernel(
        &lab,
        0,
        &net("198.51.100.50/32"),
        &[ip("192.0.2.2")],
        &router,
    )
    .await;
    assert!(
        !format!("{:?}", want.peers[&router_v4(0)]).contains("s3cret"),
        "the password never shows in Debug output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_takes_the_routes_away_long_before_the_hold_timer_when_the_link_fails_bird() {
    bfd(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_takes_the_routes_away_long_before_the_hold_timer_when_the_link_fails_frr() {
    bfd(RouterKind::Frr).await;
}

async fn bfd(kind: RouterKind) {
    let lab = BgpLab::new(1).await;
    let mut with_bfd = session(0, Afi::Ipv4);
    with_bfd.bfd = true;
    with_bfd.hold = Some(90);
    let router = start_router(kind, &lab, 0, vec![with_bfd]).await;
    let mut tor = peer(router_v4(0), ROUTER_ASN, "tor");
    tor.hold_time = Duration::from_secs(90);
    tor.keepalive = Duration::from_secs(30);
    tor.bfd = Some(BfdSettings {
        min_rx: Duration::from_millis(100),
        min_tx: Duration::from_millis(100),
        multiplier: 3,
    });
    let prefix = net("198.51.100.60/32");
    let want = desired(
        [tor],
        [path("198.51.100.60/32", "192.0.2.2", 0)],
        Vec::new(),
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    daemon.converge(&want).await.expect("converge");
    wait_kernel(&lab, 0, &prefix, &[ip("192.0.2.2")], &router).await;

    // BFD is configured once the session is Established (the next converge after it).
    let bfd_up = wait_for(SESSION_WAIT, || async {
        Daemon::connect(&lab.gobgpd.endpoint())
            .await
            .ok()?
            .converge(&want)
            .await
            .ok()?;
        let ours = daemon_bfd(&lab).await?;
        (ours == BfdState::Up && router_bfd_up(&router)).then_some(())
    })
    .await;
    assert!(
        bfd_up.is_some(),
        "BFD up on both sides; {kind}: {}; gobgpd: {:?}",
        router.describe(),
        daemon.peer_statuses().await
    );
    assert_eq!(
        daemon.peer_statuses().await.expect("statuses")[0].bfd,
        Some(BfdState::Up)
    );

    // The speaker's switch port fails: the router's own link stays up, so only BFD (or the 90 s
    // hold timer) can tell.
    let cut = Instant::now();
    lab.switch
        .host()
        .run(["ip", "link", "set", lab.speaker_port(), "down"])
        .expect("link down");
    let gone = wait_for(Duration::from_secs(30), || async {
        routes_from(&router, "spk4", &prefix)
            .is_empty()
            .then_some(())
    })
    .await;
    let detection = cut.elapsed();
    assert!(
        gone.is_some(),
        "route withdrawn: {:#?}",
        router.paths(&prefix)
    );
    eprintln!("BFD: route gone from {kind} {detection:?} after the link failed (hold time 90 s)");
    assert!(
        detection < Duration::from_secs(5),
        "BFD detection took {detection:?}"
    );
    wait_kernel(&lab, 0, &prefix, &[], &router).await;
    let log = router.log_tail();
    assert!(
        !log.to_lowercase().contains("hold timer expired"),
        "BFD, not the hold timer: {log}"
    );
}

/// The router's BFD session with the speaker is up.
fn router_bfd_up(router: &Router) -> bool {
    match router {
        Router::Bird { bird, .. } => bird
            .birdc(&["show", "bfd", "sessions"])
            .is_ok_and(|s| s.contains("Up")),
        Router::Frr { frr, .. } => frr.json("show bfd peers json").is_ok_and(|peers| {
            (peers.as_array().into_iter().flatten())
                .any(|p| p.get("status").and_then(|s| s.as_str()) == Some("up"))
        }),
    }
}

async fn daemon_bfd(lab: &BgpLab) -> Option<BfdState> {
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint()).await.ok()?;
    daemon.peer_statuses().await.ok()?.first()?.bfd
}

/// One look at the router during the restart.
#[derive(Debug)]
struct Sample {
    at: Instant,
    v4: bool,
    v6: bool,
    /// The router keeps the IPv4 session's route for a restarting neighbor.
    v4_graceful: bool,
}

/// Whether `router` keeps `session`'s path of `prefix` for a restarting neighbor (stale).
fn kept_for_restart(router: &Router, session: &str, prefix: &ipnet::IpNet) -> bool {
    routes_from(router, session, prefix).iter().any(|p| p.stale)
}

/// Samples the router until `stop` is set (on a thread: birdc and vtysh are blocking child
/// processes).
fn sample(router: Arc<Router>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let v4 = net("198.51.100.70/32");
        let v6 = net("2001:db8:100::70/128");
        let mut samples = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let (Ok(at_v4), Ok(at_v6)) = (router.paths(&v4), router.paths(&v6)) else {
                continue;
            };
            samples.push(Sample {
                at: Instant::now(),
                v4: !at_v4.is_empty(),
                v6: !at_v6.is_empty(),
                v4_graceful: at_v4.iter().any(|p| p.stale),
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        samples
    })
}

/// The graceful-restart session's route stayed at the router in every sample after the
/// kill, as a restarting neighbor's (stale) route, while the other session's route went away.
fn assert_kept_throughout(samples: &[Sample], killed: Instant) {
    let during: Vec<_> = samples.iter().filter(|s| s.at >= killed).collect();
    assert!(
        during.len() > 5,
        "the router was sampled during the restart"
    );
    assert!(
        during.iter().all(|s| s.v4),
        "the graceful-restart session's route stayed at the router throughout"
    );
    assert!(
        during.iter().any(|s| s.v4_graceful),
        "the router kept it as a restarting neighbor's (stale) route"
    );
    assert!(
        during.iter().any(|s| !s.v6),
        "the session without graceful restart lost its route meanwhile"
    );
}

/// The new gobgpd greeted BIRD as a restarting speaker that kept forwarding (Restart State
/// and Forwarding State bits), so BIRD refreshed the stale route instead of flushing it: no
/// withdrawal ever reached it. (BIRD only: FRR's view is checked by the samples.)
fn assert_greeted_as_restarting(bird: &rig::bird::Bird) {
    let details = bird
        .birdc(&["show", "protocols", "all", "spk4"])
        .expect("birdc");
    let neighbor_caps = details
        .split("Neighbor capabilities")
        .nth(1)
        .expect("neighbor capabilities");
    assert!(
        neighbor_caps.contains("Restart recovery") && neighbor_caps.contains("AF preserved: ipv4"),
        "{details}"
    );
    let withdraws = details
        .lines()
        .find(|l| l.trim_start().starts_with("Import withdraws:"))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("withdraw counter");
    assert_eq!(withdraws, "0", "{details}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gobgpd_is_converged_again_and_graceful_restart_keeps_the_routes_at_bird() {
    restarted_gobgpd(RouterKind::Bird).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_gobgpd_is_converged_again_and_graceful_restart_keeps_the_routes_at_frr() {
    restarted_gobgpd(RouterKind::Frr).await;
}

async fn restarted_gobgpd(kind: RouterKind) {
    let mut lab = BgpLab::new(1).await;
    let mut v4_session = session(0, Afi::Ipv4);
    v4_session.graceful_restart = true;
    let sessions = vec![v4_session, session(0, Afi::Ipv6)];
    let router = Arc::new(start_router(kind, &lab, 0, sessions).await);
    let mut graceful = peer(router_v4(0), ROUTER_ASN, "tor");
    graceful.graceful_restart = Some(Duration::from_secs(60));
    let v4 = net("198.51.100.70/32");
    let v6 = net("2001:db8:100::70/128");
    let want = desired(
        [graceful, peer(router_v6(0), ROUTER_ASN, "tor")],
        [
            path("198.51.100.70/32", "192.0.2.2", 0),
            path("2001:db8:100::70/128", "2001:db8::2", 0),
        ],
        Vec::new(),
    );
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("connect");
    daemon.converge(&want).await.expect("converge");
    wait_kernel(&lab, 0, &v4, &[ip("192.0.2.2")], &router).await;
    wait_kernel(&lab, 0, &v6, &[ip("2001:db8::2")], &router).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(router.clone(), stop.clone());
    let restarted = daemon.restarted();
    let killed = Instant::now();
    lab.gobgpd.kill();
    let cause = tokio::time::timeout(Duration::from_secs(10), restarted)
        .await
        .expect("the restart is noticed");
    let noticed = killed.elapsed();
    // A killed daemon is noticed by whichever sees it first: the event stream ending or
    // breaking, or the liveness probe's connection being reset. It is never mistaken for
    // a new daemon (`NotStarted`), which would need a daemon to answer.
    assert!(
        matches!(
            cause,
            RestartCause::StreamEnded
                | RestartCause::StreamFailed(_)
                | RestartCause::Unreachable(_)
        ),
        "{cause:?}"
    );

    let started = Instant::now();
    lab.gobgpd.restart().await.expect("gobgpd starts again");
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint())
        .await
        .expect("reconnect");
    let report = daemon
        .converge(&want)
        .await
        .expect("converge after the restart");
    let converged = started.elapsed();
    assert!(report.bgp_started && report.peers_added == 2 && report.paths_added == 2);

    // Recovered: both sessions up again and the router has left graceful-restart mode.
    let recovered = wait_for(SESSION_WAIT, || async {
        let back = established(&router, "spk4")
            && established(&router, "spk6")
            && !kept_for_restart(&router, "spk4", &v4)
            && !routes_from(&router, "spk4", &v4).is_empty()
            && !routes_from(&router, "spk6", &v6).is_empty();
        back.then_some(())
    })
    .await;
    let recovery = killed.elapsed();
    stop.store(true, Ordering::Release);
    let samples = sampler.join().expect("sampler");
    assert!(recovered.is_some(), "{}", protocol_details(&router));
    eprintln!(
        "restart: noticed after {noticed:?}; new gobgpd converged {converged:?} after its start; \
         {kind} back to normal {recovery:?} after the kill ({} samples)",
        samples.len()
    );

    assert_kept_throughout(&samples, killed);
    if let Some(bird) = router.bird() {
        assert_greeted_as_restarting(bird);
    }
    wait_kernel(&lab, 0, &v4, &[ip("192.0.2.2")], &router).await;
    wait_kernel(&lab, 0, &v6, &[ip("2001:db8::2")], &router).await;
    assert!(!daemon.converge(&want).await.expect("converge").changed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_router_id_stops_bgp_which_needs_a_new_gobgpd_and_the_watch_notices() {
    let mut lab = BgpLab::new(1).await;
    let router = start_router(RouterKind::Bird, &lab, 0, vec![session(0, Afi::Ipv4)]).await;
    let prefix = net("198.51.100.80/32");
    let mut want = desired(
        [peer(router_v4(0), ROUTER_ASN, "tor")],
        [path("198.51.100.80/32", "192.0.2.2", 0)],
        Vec::new(),
    );
    let options = DaemonOptions {
        probe_interval: Duration::from_millis(200),
        ..DaemonOptions::default()
    };
    let mut daemon = Daemon::connect_with(&lab.gobgpd.endpoint(), options.clone())
        .await
        .expect("connect");
    daemon.converge(&want).await.expect("converge");
    wait_kernel(&lab, 0, &prefix, &[ip("192.0.2.2")], &router).await;

    want.global.router_id = "192.0.2.9".parse().expect("router id");
    let restarted = daemon.restarted();
    let stopped = daemon.converge(&want).await;
    assert!(
        matches!(stopped, Err(GobgpError::StoppedForGood { .. })),
        "{stopped:?}"
    );
    let cause = tokio::time::timeout(Duration::from_secs(10), restarted)
        .await
        .expect("the stopped server is noticed");
    assert!(matches!(cause, RestartCause::Unreachable(_)), "{cause:?}");

    lab.gobgpd.restart().await.expect("a new gobgpd");
    let mut daemon = Daemon::connect_with(&lab.gobgpd.endpoint(), options)
        .await
        .expect("reconnect");
    daemon
        .converge(&want)
        .await
        .expect("converge with the new router id");
    wait_kernel(&lab, 0, &prefix, &[ip("192.0.2.2")], &router).await;
    let details = protocol_details(&router);
    assert!(details.contains("Neighbor ID:      192.0.2.9"), "{details}");
}
