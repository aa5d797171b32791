//! Contention between Services and between writers, counted from the apiserver's side:
//! Services waiting for one address cost nothing while it changes hands; Services another
//! implementation addressed with conflicting addresses are taken over as they are; and a
//! second controller that keeps rewriting a Service's status gets a bounded answer.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams};
use rig::ccm::*;
use rig::cluster::TestCluster;
use rig::pool::*;
use rig::process::wait_for;
use rig::rbac::*;
use rig::service::*;

const CONTROLLER_USER: &str = "system:serviceaccount:kube-system:ccm";
const ALLOCATED: &str = "baremetal-ccm.io/AddressAllocated";
const CONFLICT: &str = "baremetal-ccm.io/AddressConflict";
const CONTESTED: &str = "baremetal-ccm.io/AddressContested";

/// An audited cluster with one /24 pool, and the controller's kubeconfig: its own
/// ServiceAccount, so that the audit log tells its writes from the test's.
async fn audited_cluster_with_pool() -> (TestCluster, std::path::PathBuf) {
    let cluster = cluster(true).await;
    let kubeconfig = admin_accounts(&cluster, &["ccm"]).await.remove(0);
    create_pool(
        &cluster.client(),
        "pool-a",
        serde_json::json!({"addresses": ["192.0.2.0/24"], "announce": {"mode": "bgp"}}),
    )
    .await;
    (cluster, kubeconfig)
}

/// The controller's successful writes to Services named `names` in `default`, and the Events
/// it created about them.
fn controller_writes(cluster: &TestCluster, names: &[String]) -> (usize, usize) {
    let writes = cluster.audited_writes().unwrap();
    let ours = writes.iter().filter(|w| {
        w.user.username == CONTROLLER_USER
            && w.response_status
                .as_ref()
                .is_some_and(|s| (200..300).contains(&s.code))
    });
    let (mut services, mut events) = (0, 0);
    for write in ours {
        let Some(object) = &write.object_ref else {
            continue;
        };
        match object.resource.as_str() {
            "services" if object.name.as_ref().is_some_and(|n| names.contains(n)) => {
                services += 1;
            }
            "events" => events += 1,
            _ => {}
        }
    }
    (services, events)
}

/// The one of `claimants` that holds 192.0.2.77.
async fn holder_of(client: &kube::Client, claimants: &[String]) -> String {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    wait_for(WAIT, || async {
        for name in claimants {
            let service = api.get(name).await.ok()?;
            if ingress(&service)
                .first()
                .is_some_and(|(ip, _)| ip == "192.0.2.77")
            {
                return Some(name.clone());
            }
        }
        None
    })
    .await
    .expect("one claimant holds the address")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_waiting_for_one_address_are_not_rewritten_while_it_changes_hands() {
    let (cluster, kubeconfig) = audited_cluster_with_pool().await;
    let client = cluster.client();
    let _ccm = start_controller(&kubeconfig, "ccm", &[]);
    const CLAIMANTS: usize = 30;
    let mut claimants = Vec::new();
    for i in 0..=CLAIMANTS {
        let name = format!("claim-{i}");
        Svc::lb("default", &name)
            .annotate("baremetal-ccm.io/ips", "192.0.2.77")
            .create(&client)
            .await;
        claimants.push(name);
    }
    // Whichever is reconciled first holds the address (not necessarily the first created).
    let first = holder_of(&client, &claimants).await;
    for name in claimants.iter().filter(|n| **n != first) {
        wait_condition(&client, "default", name, ALLOCATED, "False").await;
    }
    assert!(settle(&cluster, Duration::from_secs(2)).await);
    // The address changes hands three times; each time one claimant wins it.
    let waiting: Vec<String> = claimants.clone();
    let (writes_before, events_before) = controller_writes(&cluster, &waiting);
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut bystander_latency = Vec::new();
    for round in 0..3 {
        let holder = holder_of(&client, &claimants).await;
        api.delete(&holder, &DeleteParams::default()).await.unwrap();
        claimants.retain(|n| *n != holder);
        // A bystander in another namespace is addressed at once meanwhile.
        let started = Instant::now();
        let bystander = format!("bystander-{round}");
        Svc::lb("default", &bystander).create(&client).await;
        wait_addresses(&client, "default", &bystander, 1).await;
        bystander_latency.push(started.elapsed());
    }
    assert!(settle(&cluster, Duration::from_secs(2)).await);
    let (writes_after, events_after) = controller_writes(&cluster, &waiting);
    let (writes, events) = (writes_after - writes_before, events_after - events_before);
    eprintln!(
        "3 hand-overs among {CLAIMANTS} claimants: {writes} Service writes, {events} Events; bystanders addressed in {bystander_latency:?}"
    );
    // Per hand-over: the holder's release (status, finalizer) and the winner's allocation
    // (annotation, status); nothing for the claimants still waiting.
    assert!(
        writes <= 3 * 4,
        "{writes} writes to the claimants for 3 hand-overs"
    );
    // Events: deleting/deleted for the holder, ensured for the winner, and the bystanders'.
    assert!(events <= 3 * 4, "{events} Events for 3 hand-overs");
}

/// 300 Services waiting on an exhausted pool (one address): each release wakes the few that
/// waited longest, not all 300 — counted in the controller's reconciles — and the address
/// still goes to one of them every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_retries_the_longest_waiting_services_not_every_pending_one() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_pool(
        &client,
        "tiny",
        serde_json::json!({"addresses": ["192.0.2.200/32"], "announce": {"mode": "bgp"}}),
    )
    .await;
    let kubeconfig = cluster.admin_kubeconfig();
    let metrics = Metrics::on_free_port(&kubeconfig);
    let _ccm = start_controller(&kubeconfig, "ccm", &[&metrics.flag()]);
    const WAITING: usize = 300;
    let names: Vec<String> = (0..=WAITING).map(|i| format!("queue-{i:03}")).collect();
    for name in &names {
        Svc::lb("default", name).create(&client).await;
    }
    let mut holder = holder_of_tiny(&client, &names).await;
    const SYNCS: &str = "baremetal_ccm_service_lb_sync_duration_seconds_count";
    metrics
        .wait_sum("baremetal_ccm_service_lb_pending_services", WAITING as f64)
        .await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let mut remaining = names.clone();
    let mut per_release = Vec::new();
    for _ in 0..3 {
        let before = metrics.sum(SYNCS).await;
        api.delete(&holder, &DeleteParams::default()).await.unwrap();
        remaining.retain(|n| *n != holder);
        let next = holder_of_tiny(&client, &remaining).await;
        assert_ne!(next, holder);
        holder = next;
        // Whatever the release set off has run once the reconciles stop growing.
        let mut last = metrics.sum(SYNCS).await;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = metrics.sum(SYNCS).await;
            if now == last {
                break;
            }
            last = now;
        }
        per_release.push(last - before);
    }
    eprintln!("{WAITING} Services waiting on one address: reconciles per release {per_release:?}");
    for count in per_release {
        // The deleted holder's own, the woken (1 + 4), the winner's again after its write,
        // stragglers of the watch: far below the 300 waiting.
        assert!(count <= 30.0, "{count} reconciles for one release");
    }
}

/// The Service among `names` that holds the tiny pool's address.
async fn holder_of_tiny(client: &kube::Client, names: &[String]) -> String {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    wait_for(WAIT, || async {
        let list = api.list(&Default::default()).await.ok()?;
        list.items.into_iter().find_map(|service| {
            let name = service.metadata.name.clone()?;
            (names.contains(&name)
                && ingress(&service)
                    .first()
                    .is_some_and(|(ip, _)| ip == "192.0.2.200"))
            .then_some(name)
        })
    })
    .await
    .expect("one of them holds the address")
}

/// A Service as another implementation left it: name, address, port, annotations.
type Prepared = (
    &'static str,
    &'static str,
    i32,
    &'static [(&'static str, &'static str)],
);

/// MetalLB's Services as MetalLB leaves them (its annotations, an address in the status, no
/// annotation or finalizer of ours): a plain one, a pair sharing one address through
/// `metallb.io/allow-shared-ip` on disjoint ports, and one that asked for its address with
/// `metallb.io/loadBalancerIPs`. Taken over with every address kept and the pair still
/// shared; each gets a Normal Event naming what was read. A Service created afresh with
/// MetalLB's annotation gets the address it asks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_metallb_addressed_are_taken_over_with_their_sharing_and_requested_addresses() {
    let (cluster, kubeconfig) = audited_cluster_with_pool().await;
    let client = cluster.client();
    let prepared: [Prepared; 4] = [
        ("plain", "192.0.2.4", 80, &[]),
        (
            "pair-a",
            "192.0.2.5",
            80,
            &[("metallb.io/allow-shared-ip", "pair")],
        ),
        (
            "pair-b",
            "192.0.2.5",
            443,
            &[("metallb.io/allow-shared-ip", "pair")],
        ),
        (
            "asked",
            "192.0.2.9",
            80,
            &[("metallb.io/loadBalancerIPs", "192.0.2.9")],
        ),
    ];
    for (name, ip, port, annotations) in prepared {
        let mut svc = Svc::lb("default", name).port("TCP", port);
        for (key, value) in annotations {
            svc = svc.annotate(key, value);
        }
        svc.create(&client).await;
        set_ingress(&client, "default", name, ip).await;
    }
    let names: Vec<String> = prepared.iter().map(|p| p.0.to_owned()).collect();
    let mut ccm = start_controller(&kubeconfig, "ccm", &[]);
    for name in ["pair-a", "pair-b", "asked"] {
        let note = wait_event(&client, "default", name, "MetalLBAnnotationsHonoured").await;
        assert!(note.contains("metallb.io/"), "{note}");
    }
    assert!(settle(&cluster, Duration::from_secs(2)).await);
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    for (name, ip, _, _) in prepared {
        let service = api.get(name).await.unwrap();
        assert_eq!(
            ingress(&service),
            vec![(ip.to_owned(), Some("VIP".to_owned()))],
            "{name} kept its address"
        );
        assert_eq!(condition(&service, CONFLICT), None, "{name}: no conflict");
        assert_eq!(
            condition(&service, ALLOCATED).map(|c| c.0),
            Some("True".into()),
            "{name} is addressed"
        );
    }
    let plain = events_for(&client, "default", "plain").await;
    assert!(
        !plain
            .iter()
            .any(|(_, r, _)| r == "MetalLBAnnotationsHonoured"),
        "a Service without MetalLB's annotations is told nothing: {plain:?}"
    );
    // A restart writes nothing more.
    let (writes_before, _) = controller_writes(&cluster, &names);
    drop(ccm);
    ccm = start_controller(&kubeconfig, "ccm", &[]);
    assert!(settle(&cluster, Duration::from_secs(3)).await);
    assert_eq!(controller_writes(&cluster, &names).0, writes_before);
    // Re-created with MetalLB's annotation: the address it asks for, not the first free one.
    api.delete("asked", &DeleteParams::default()).await.unwrap();
    wait_for(WAIT, || async {
        api.get_opt("asked").await.unwrap().is_none().then_some(())
    })
    .await
    .expect("deleted");
    (Svc::lb("default", "asked").annotate("metallb.io/loadBalancerIPs", "192.0.2.9"))
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "asked", 1).await,
        ["192.0.2.9"]
    );
    drop(ccm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_another_implementation_addressed_are_taken_over_without_moving_any() {
    let (cluster, kubeconfig) = audited_cluster_with_pool().await;
    let client = cluster.client();
    // As another implementation left them: a plain one, and a pair sharing .5 on disjoint
    // ports through an annotation we do not read.
    let prepared = [
        ("plain", "192.0.2.4", 80),
        ("pair-a", "192.0.2.5", 80),
        ("pair-b", "192.0.2.5", 443),
    ];
    for (name, ip, port) in prepared {
        Svc::lb("default", name)
            .port("TCP", port)
            .annotate("metallb.io/allow-shared-ip", "pair")
            .create(&client)
            .await;
        set_ingress(&client, "default", name, ip).await;
    }
    let names: Vec<String> = prepared.iter().map(|(n, _, _)| (*n).to_owned()).collect();
    // MetalLB's annotations not read: its sharing key is then one we do not read.
    let off = ["--metallb-annotations=false"];
    let (mut ccm, admin) = start_controller_with_admin(&kubeconfig, "ccm", &off);
    let (reason, message) = wait_condition(&client, "default", "pair-b", CONFLICT, "True").await;
    assert_eq!(reason, "AddressConflict");
    assert!(message.contains("also held by default/pair-a"), "{message}");
    wait_event(&client, "default", "pair-b", "AddressConflict").await;
    assert!(settle(&cluster, Duration::from_secs(2)).await);
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    for (name, ip, _) in prepared {
        let service = api.get(name).await.unwrap();
        assert_eq!(
            ingress(&service),
            vec![(ip.to_owned(), Some("VIP".to_owned()))],
            "{name} kept its address"
        );
    }
    let metrics = http_get(admin, "/metrics").await.unwrap();
    assert!(
        metrics.contains("baremetal_ccm_service_lb_conflicting_services 1"),
        "{metrics}"
    );
    // A restart changes nothing: the flagged Service is still one we never addressed.
    let (writes_before, _) = controller_writes(&cluster, &names);
    drop(ccm);
    ccm = start_controller(&kubeconfig, "ccm", &off);
    assert!(settle(&cluster, Duration::from_secs(3)).await);
    assert_eq!(controller_writes(&cluster, &names).0, writes_before);
    let flagged = api.get("pair-b").await.unwrap();
    assert_eq!(
        condition(&flagged, CONFLICT).map(|c| c.0),
        Some("True".into())
    );
    // Once the earlier holder is gone, the later one holds the address properly.
    api.delete("pair-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_condition(&client, "default", "pair-b", ALLOCATED, "True").await;
    let resolved = wait_for(WAIT, || async {
        let service = api.get("pair-b").await.ok()?;
        condition(&service, CONFLICT)
            .is_none()
            .then_some(ingress(&service))
    })
    .await
    .expect("the conflict condition is cleared");
    assert_eq!(
        resolved,
        vec![("192.0.2.5".to_owned(), Some("VIP".to_owned()))]
    );
    drop(ccm);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_writer_rewriting_a_status_gets_a_bounded_number_of_restores() {
    let (cluster, kubeconfig) = audited_cluster_with_pool().await;
    let client = cluster.client();
    let _ccm = start_controller(&kubeconfig, "ccm", &[]);
    Svc::lb("default", "fought").create(&client).await;
    let ours = wait_addresses(&client, "default", "fought", 1).await;
    assert!(settle(&cluster, Duration::from_secs(2)).await);
    let names = vec!["fought".to_owned()];
    let (before, _) = controller_writes(&cluster, &names);
    // Another controller puts its own address back whenever it sees ours, for 15 s.
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut rewrites = 0;
    while Instant::now() < deadline {
        let service = api.get("fought").await.unwrap();
        if ingress(&service).first().map(|(ip, _)| ip.as_str()) != Some("192.0.2.250") {
            set_ingress(&client, "default", "fought", "192.0.2.250").await;
            rewrites += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (after, _) = controller_writes(&cluster, &names);
    let restores = after - before;
    eprintln!("the other writer rewrote {rewrites} times; we wrote {restores} times");
    assert!(
        restores <= 4,
        "our writes stay bounded while another writer fights: {restores}"
    );
    assert!(restores >= 1, "we restored our address at least once");
    let (reason, message) = wait_condition(&client, "default", "fought", CONTESTED, "True").await;
    assert_eq!(reason, "AddressContested");
    assert!(message.contains(&ours[0]), "{message}");
    let warnings: Vec<_> = events_for(&client, "default", "fought")
        .await
        .into_iter()
        .filter(|(_, reason, _)| reason == "AddressContested")
        .collect();
    assert_eq!(warnings.len(), 1, "one Warning: {warnings:?}");
}
