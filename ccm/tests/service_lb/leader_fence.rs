//! Leadership that stops being certain stops the writes: a replica whose Lease renewals hang
//! (a slow admission webhook on Leases holds them, while every other write still goes through)
//! exits within the renew deadline and writes nothing once another replica holds the lease —
//! counted from the apiserver's audit log — and no address is duplicated or renumbered.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{Duration, Instant};

use rig::ccm::*;
use rig::invariants::watch_invariants;
use rig::pool::*;
use rig::process::wait_for;
use rig::rbac::*;
use rig::service::*;
use rig::webhook::HoldingWebhook;

const USER_A: &str = "system:serviceaccount:kube-system:ccm-a";
const USER_B: &str = "system:serviceaccount:kube-system:ccm-b";
/// The controller's renew deadline (kube-controller-manager's default).
const RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// Waits until `user` has written a Service (a successful write in the audit log).
async fn wait_for_write(cluster: &rig::cluster::TestCluster, user: &str) {
    let wrote = wait_for(WAIT, || async {
        let writes = cluster.audited_writes().ok()?;
        writes
            .iter()
            .any(|w| {
                w.user.username == user
                    && w.object_ref
                        .as_ref()
                        .is_some_and(|o| o.resource == "services")
                    && w.response_status
                        .as_ref()
                        .is_some_and(|s| (200..300).contains(&s.code))
            })
            .then_some(())
    })
    .await;
    assert!(wrote.is_some(), "{user} wrote a Service within {WAIT:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_renewals_hang_stops_writing_before_another_takes_the_lease() {
    let cluster = cluster(true).await;
    let client = cluster.client();
    let kubeconfigs = admin_accounts(&cluster, &["ccm-a", "ccm-b"]).await;
    let webhook = HoldingWebhook::register(
        client.clone(),
        "hold-leases",
        "coordination.k8s.io",
        "v1",
        "leases",
    )
    .await
    .unwrap();
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/24"]).await;
    let invariants = watch_invariants(client.clone(), "default");
    let mut a = start_controller(&kubeconfigs[0], "ccm-a", &[]);
    let held = wait_for(WAIT, || async {
        (lease_holder(&client).await.as_deref() == Some("ccm-a")).then_some(())
    })
    .await;
    assert!(held.is_some(), "replica A took the lease");
    let b = start_controller(&kubeconfigs[1], "ccm-b", &[]);
    // The webhook is in force once it has seen one of A's renewals.
    let effective = wait_for(WAIT, || async {
        webhook.seen().iter().any(|u| u == USER_A).then_some(())
    })
    .await;
    assert!(effective.is_some(), "the webhook sees A's lease renewals");

    // Services keep arriving the whole time, so a replica acting as leader keeps writing.
    let churn_client = client.clone();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let churn = tokio::spawn(async move {
        let mut created = 0usize;
        while !*stopped.borrow() {
            Svc::lb("default", &format!("svc-{created}"))
                .create(&churn_client)
                .await;
            created += 1;
            let _ = tokio::time::timeout(Duration::from_millis(150), stopped.changed()).await;
        }
        created
    });
    // A is writing Services before its renewals are held (else this test proves nothing).
    wait_for_write(&cluster, USER_A).await;
    let held_at = Instant::now();
    webhook.hold(Some(USER_A));

    let exited = wait_for(Duration::from_secs(40), || {
        let running = a.is_running();
        async move { (!running).then(Instant::now) }
    })
    .await;
    let Some(exited) = exited else {
        panic!(
            "replica A kept running with its renewals held: {}",
            a.log_tail(3000)
        );
    };
    let exit_after = exited - held_at;
    // The last renewal that succeeded was sent at most one retry period before the hold.
    assert!(
        exit_after <= RENEW_DEADLINE + Duration::from_secs(1),
        "replica A exited {exit_after:?} after its renewals started to hang (deadline {RENEW_DEADLINE:?})"
    );
    let taken = wait_for(Duration::from_secs(40), || async {
        (lease_holder(&client).await.as_deref() == Some("ccm-b")).then(Instant::now)
    })
    .await
    .expect("replica B takes the lease over");
    eprintln!(
        "replica A exited {:.1}s after the hold; B held the lease {:.1}s after it",
        exit_after.as_secs_f64(),
        (taken - held_at).as_secs_f64()
    );
    // B serves the Services created meanwhile, then the churn stops.
    wait_for_write(&cluster, USER_B).await;
    stop.send_replace(true);
    let created = churn.await.unwrap();
    webhook.hold(None);
    for i in 0..created {
        wait_addresses(&client, "default", &format!("svc-{i}"), 1).await;
    }

    let writes = cluster.audited_writes().unwrap();
    let succeeded = |w: &&rig::cluster::AuditedRequest| {
        w.response_status
            .as_ref()
            .is_some_and(|s| (200..300).contains(&s.code))
    };
    let takeover = writes
        .iter()
        .position(|w| {
            w.user.username == USER_B
                && w.object_ref
                    .as_ref()
                    .is_some_and(|o| o.resource == "leases")
                && succeeded(&w)
        })
        .expect("B's takeover is in the audit log");
    let a_before = writes[..takeover]
        .iter()
        .filter(|w| w.user.username == USER_A && succeeded(w))
        .filter(|w| {
            w.object_ref
                .as_ref()
                .is_some_and(|o| o.resource != "leases")
        })
        .count();
    let a_after: Vec<_> = writes[takeover..]
        .iter()
        .filter(|w| w.user.username == USER_A && succeeded(w))
        .collect();
    assert!(
        a_before > 0,
        "A wrote while it was leader (else this test proves nothing)"
    );
    assert!(
        a_after.is_empty(),
        "A wrote {} times after B held the lease: {a_after:?}",
        a_after.len()
    );
    assert!(
        writes[takeover..].iter().any(|w| w.user.username == USER_B
            && w.object_ref
                .as_ref()
                .is_some_and(|o| o.resource == "services")),
        "B served Services after the takeover"
    );

    let violations = invariants.lock().unwrap().violations.clone();
    assert!(
        violations.is_empty(),
        "duplicated or renumbered: {violations:?}"
    );

    let log = std::fs::read_to_string(a.log_path()).unwrap();
    assert!(
        log.contains("the API server is silent"),
        "a silent API server is logged as such: {}",
        a.log_tail(3000)
    );
    assert!(log.contains("lost leadership"), "{}", a.log_tail(3000));
    drop(b);
    webhook.unregister().await.unwrap();
}

/// What a planned hand-over costs: the leader stopped with SIGTERM releases the lease, and a
/// Service created at that moment waits only for the standby's next attempt and rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_hands_over_within_seconds() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let kubeconfigs = admin_accounts(&cluster, &["ccm-a", "ccm-b"]).await;
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/24"]).await;
    let mut a = start_controller(&kubeconfigs[0], "ccm-a", &[]);
    let led = wait_for(WAIT, || async {
        (lease_holder(&client).await.as_deref() == Some("ccm-a")).then_some(())
    })
    .await;
    assert!(led.is_some(), "A leads");
    let _b = start_controller(&kubeconfigs[1], "ccm-b", &[]);
    for i in 0..20 {
        Svc::lb("default", &format!("svc-{i}"))
            .create(&client)
            .await;
    }
    wait_addresses(&client, "default", "svc-19", 1).await;
    let stopped = Instant::now();
    a.terminate(Duration::from_secs(10));
    Svc::lb("default", "during-hand-over").create(&client).await;
    let taken = wait_for(WAIT, || async {
        (lease_holder(&client).await.as_deref() == Some("ccm-b")).then(Instant::now)
    })
    .await
    .expect("B takes the lease");
    wait_addresses(&client, "default", "during-hand-over", 1).await;
    let addressed = Instant::now();
    eprintln!(
        "SIGTERM hand-over: B held the lease after {:.2}s, a Service created at the SIGTERM was addressed after {:.2}s",
        (taken - stopped).as_secs_f64(),
        (addressed - stopped).as_secs_f64()
    );
    // The standby retries every 2 s; a released lease is taken at the next attempt.
    assert!(
        taken - stopped < Duration::from_secs(4),
        "{:?}",
        taken - stopped
    );
}
