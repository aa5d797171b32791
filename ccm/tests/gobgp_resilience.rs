//! Sessions under stress, with a real gobgpd and real BIRD 2 routers: MD5 passwords, BFD
//! taking routes away long before the hold timer, a killed and restarted gobgpd converged
//! again (graceful restart keeping the routes at BIRD meanwhile), and a change of the
//! global settings, which gobgpd v4.8.0 can only apply in a new process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod bgp_lab;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use baremetal_ccm::announce::desired::{Afi, BfdSettings, Password};
use baremetal_ccm::announce::gobgp::{
    BfdState, Daemon, DaemonOptions, GobgpError, RestartCause, SessionState,
};
use bgp_lab::*;
use rig::bird::Bird;
use rig::process::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_session_comes_up_with_the_right_password_and_not_with_a_wrong_one() {
    let lab = BgpLab::new(1).await;
    let session = BirdSession::ebgp("spk4", 0, Afi::Ipv4).option("password \"s3cret\";");
    let bird = start_bird(&lab.routers[0], 0, &[session], false).await;
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
        established(&bird, "spk4").then_some(())
    })
    .await;
    assert!(came_up.is_none(), "established with a wrong password");
    let status = &daemon.peer_statuses().await.expect("statuses")[0];
    assert_ne!(status.session, SessionState::Established);

    let tor = want.peers.get_mut(&router_v4(0)).expect("peer");
    tor.password = Some(Password("s3cret".into()));
    let report = daemon.converge(&want).await.expect("converge");
    assert_eq!((report.peers_updated, report.writes), (1, 1), "{report:?}");
    wait_established(&bird, "spk4", &lab.gobgpd).await;
    wait_kernel(&lab, 0, &net("198.51.100.50/32"), &[ip("192.0.2.2")], &bird).await;
    assert!(
        !format!("{:?}", want.peers[&router_v4(0)]).contains("s3cret"),
        "the password never shows in Debug output"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bfd_takes_the_routes_away_long_before_the_hold_timer_when_the_link_fails() {
    let lab = BgpLab::new(1).await;
    let session = BirdSession::ebgp("spk4", 0, Afi::Ipv4)
        .option("bfd on;")
        .option("hold time 90;");
    let bird = start_bird(&lab.routers[0], 0, &[session], false).await;
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
    wait_kernel(&lab, 0, &prefix, &[ip("192.0.2.2")], &bird).await;

    // BFD is configured once the session is Established (the next converge after it).
    let bfd_up = wait_for(SESSION_WAIT, || async {
        Daemon::connect(&lab.gobgpd.endpoint())
            .await
            .ok()?
            .converge(&want)
            .await
            .ok()?;
        let ours = daemon_bfd(&lab).await?;
        let theirs = bird.birdc(&["show", "bfd", "sessions"]).ok()?;
        (ours == BfdState::Up && theirs.contains("Up")).then_some(())
    })
    .await;
    assert!(
        bfd_up.is_some(),
        "BFD up on both sides; BIRD: {:?}; gobgpd: {:?}",
        bird.birdc(&["show", "bfd", "sessions"]),
        daemon.peer_statuses().await
    );
    assert_eq!(
        daemon.peer_statuses().await.expect("statuses")[0].bfd,
        Some(BfdState::Up)
    );

    // The speaker's switch port fails: BIRD's own link stays up, so only BFD (or the 90 s
    // hold timer) can tell.
    let cut = Instant::now();
    lab.switch
        .host()
        .run(["ip", "link", "set", lab.speaker_port(), "down"])
        .expect("link down");
    let gone = wait_for(Duration::from_secs(30), || async {
        routes_from(&bird, "spk4", &prefix).is_empty().then_some(())
    })
    .await;
    let detection = cut.elapsed();
    assert!(gone.is_some(), "route withdrawn: {:#?}", bird.routes());
    eprintln!("BFD: route gone from BIRD {detection:?} after the link failed (hold time 90 s)");
    assert!(
        detection < Duration::from_secs(5),
        "BFD detection took {detection:?}"
    );
    wait_kernel(&lab, 0, &prefix, &[], &bird).await;
    let log = std::fs::read_to_string(bird.log_path()).unwrap_or_default();
    assert!(
        !log.contains("Hold timer expired"),
        "BFD, not the hold timer: {log}"
    );
}

async fn daemon_bfd(lab: &BgpLab) -> Option<BfdState> {
    let mut daemon = Daemon::connect(&lab.gobgpd.endpoint()).await.ok()?;
    daemon.peer_statuses().await.ok()?.first()?.bfd
}

/// One look at BIRD during the restart.
#[derive(Debug)]
struct Sample {
    at: Instant,
    v4: bool,
    v6: bool,
    /// BIRD says it keeps the IPv4 session's routes for a restarting neighbor.
    v4_graceful: bool,
}

/// Samples BIRD until `stop` is set (on a thread: birdc is a blocking child process).
fn sample(bird: Arc<Bird>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Sample>> {
    std::thread::spawn(move || {
        let v4 = net("198.51.100.70/32");
        let v6 = net("2001:db8:100::70/128");
        let mut samples = Vec::new();
        while !stop.load(Ordering::Acquire) {
            let Ok(routes) = bird.routes() else { continue };
            let details = protocol_details(&bird, "spk4");
            samples.push(Sample {
                at: Instant::now(),
                v4: routes.iter().any(|r| r.prefix == v4),
                v6: routes.iter().any(|r| r.prefix == v6),
                v4_graceful: details.contains("Neighbor graceful restart active"),
            });
            std::thread::sleep(Duration::from_millis(20));
        }
        samples
    })
}

/// The graceful-restart session's route stayed at BIRD in every sample after the kill, as
/// a restarting neighbor's (stale) route, while the other session's route went away.
fn assert_kept_throughout(samples: &[Sample], killed: Instant) {
    let during: Vec<_> = samples.iter().filter(|s| s.at >= killed).collect();
    assert!(during.len() > 5, "BIRD was sampled during the restart");
    assert!(
        during.iter().all(|s| s.v4),
        "the graceful-restart session's route stayed at BIRD throughout"
    );
    assert!(
        during.iter().any(|s| s.v4_graceful),
        "BIRD kept it as a restarting neighbor's (stale) route"
    );
    assert!(
        during.iter().any(|s| !s.v6),
        "the session without graceful restart lost its route meanwhile"
    );
}

/// The new gobgpd greeted BIRD as a restarting speaker that kept forwarding (Restart State
/// and Forwarding State bits), so BIRD refreshed the stale route instead of flushing it: no
/// withdrawal ever reached it.
fn assert_greeted_as_restarting(bird: &Bird) {
    let details = protocol_details(bird, "spk4");
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
async fn a_restarted_gobgpd_is_converged_again_and_graceful_restart_keeps_the_routes_meanwhile() {
    let mut lab = BgpLab::new(1).await;
    let sessions = [
        BirdSession::ebgp("spk4", 0, Afi::Ipv4).option("graceful restart on;"),
        BirdSession::ebgp("spk6", 0, Afi::Ipv6),
    ];
    let bird = Arc::new(start_bird(&lab.routers[0], 0, &sessions, false).await);
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
    wait_kernel(&lab, 0, &v4, &[ip("192.0.2.2")], &bird).await;
    wait_kernel(&lab, 0, &v6, &[ip("2001:db8::2")], &bird).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample(bird.clone(), stop.clone());
    let restarted = daemon.restarted();
    let killed = Instant::now();
    lab.gobgpd.kill();
    let cause = tokio::time::timeout(Duration::from_secs(10), restarted)
        .await
        .expect("the restart is noticed");
    let noticed = killed.elapsed();
    assert!(
        matches!(
            cause,
            RestartCause::StreamEnded | RestartCause::StreamFailed(_)
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

    // Recovered: both sessions up again and BIRD has left graceful-restart mode.
    let recovered = wait_for(SESSION_WAIT, || async {
        let back = established(&bird, "spk4")
            && established(&bird, "spk6")
            && !protocol_details(&bird, "spk4").contains("Neighbor graceful restart active")
            && !routes_from(&bird, "spk4", &v4).is_empty()
            && !routes_from(&bird, "spk6", &v6).is_empty();
        back.then_some(())
    })
    .await;
    let recovery = killed.elapsed();
    stop.store(true, Ordering::Release);
    let samples = sampler.join().expect("sampler");
    assert!(recovered.is_some(), "{}", protocol_details(&bird, "spk4"));
    eprintln!(
        "restart: noticed after {noticed:?}; new gobgpd converged {converged:?} after its start; \
         BIRD back to normal {recovery:?} after the kill ({} samples)",
        samples.len()
    );

    assert_kept_throughout(&samples, killed);
    assert_greeted_as_restarting(&bird);
    wait_kernel(&lab, 0, &v4, &[ip("192.0.2.2")], &bird).await;
    wait_kernel(&lab, 0, &v6, &[ip("2001:db8::2")], &bird).await;
    assert!(!daemon.converge(&want).await.expect("converge").changed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_router_id_stops_bgp_which_needs_a_new_gobgpd_and_the_watch_notices() {
    let mut lab = BgpLab::new(1).await;
    let bird = start_bird(
        &lab.routers[0],
        0,
        &[BirdSession::ebgp("spk4", 0, Afi::Ipv4)],
        false,
    )
    .await;
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
    wait_kernel(&lab, 0, &prefix, &[ip("192.0.2.2")], &bird).await;

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
    wait_kernel(&lab, 0, &prefix, &[ip("192.0.2.2")], &bird).await;
    let details = protocol_details(&bird, "spk4");
    assert!(details.contains("Neighbor ID:      192.0.2.9"), "{details}");
}
