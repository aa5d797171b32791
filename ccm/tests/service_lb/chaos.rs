//! Chaos runs that keep the central promises from regressing: during a create/delete churn
//! (plain Services, requested addresses, sharing keys) the controller is SIGKILLed again and
//! again, or the leader's connection stalls while a second replica waits. A watch checks at
//! every event that no address is held by two Services that may not share it and that no
//! Service's address is ever replaced by another; at the end nothing is stuck Terminating and
//! the pool's `used` is exact. Deterministic from a seed (printed; `CHAOS_SEED` replays one).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams};
use rig::ccm::*;
use rig::cluster::TestCluster;
use rig::invariants::{Invariants, watch_invariants};
use rig::pool::*;
use rig::process::{Process, wait_for};
use rig::proxy::StallingProxy;
use rig::rbac::*;
use rig::service::*;

const NAMESPACE: &str = "default";
const SHARING: &str = "baremetal-ccm.io/sharing-key";

/// SplitMix64: a small deterministic generator, so that a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("chaos seed: {seed} (replay with CHAOS_SEED={seed})");
    seed
}

/// One step of the churn: create a Service of a random kind, or delete a random one.
async fn churn_step(client: &kube::Client, rng: &mut Rng, live: &mut Vec<String>, n: usize) {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let roll = rng.below(100);
    if roll < 28 && !live.is_empty() {
        let victim = live.swap_remove(rng.below(live.len() as u64) as usize);
        api.delete(&victim, &DeleteParams::default()).await.unwrap();
        return;
    }
    let name = format!("svc-{n}");
    let service = match roll {
        // A requested address from a small contested set.
        28..=42 => Svc::lb(NAMESPACE, &name).annotate(
            "baremetal-ccm.io/ips",
            &format!("192.0.2.{}", 40 + rng.below(6)),
        ),
        // A sharing key, with a port that may clash with the key's other holders.
        43..=62 => {
            let port = [80, 443, 8080][rng.below(3) as usize];
            Svc::lb(NAMESPACE, &name)
                .port("TCP", port)
                .annotate(SHARING, &format!("k{}", rng.below(4)))
        }
        _ => Svc::lb(NAMESPACE, &name),
    };
    service.create(client).await;
    live.push(name);
}

/// After the churn: nothing stuck Terminating, the pool's `used` equals the distinct
/// addresses held, and no invariant was broken.
async fn final_checks(cluster: &TestCluster, invariants: &Arc<Mutex<Invariants>>) {
    let client = cluster.client();
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let drained = wait_for(Duration::from_secs(60), || async {
        let services = api.list(&ListParams::default()).await.ok()?;
        (services.items.iter())
            .all(|s| s.metadata.deletion_timestamp.is_none())
            .then_some(())
    })
    .await;
    let terminating: Vec<String> = (api.list(&ListParams::default()).await.unwrap().items)
        .into_iter()
        .filter(|s| s.metadata.deletion_timestamp.is_some())
        .filter_map(|s| s.metadata.name)
        .collect();
    assert!(
        drained.is_some(),
        "Services stuck Terminating: {terminating:?}"
    );
    let held = || async {
        let services = api.list(&ListParams::default()).await.unwrap().items;
        (services.iter())
            .flat_map(|s| ingress(s).into_iter().map(|(ip, _)| ip))
            .collect::<BTreeSet<String>>()
            .len()
    };
    let exact = wait_for(Duration::from_secs(30), || async {
        let used = wait_pool_status(&client, "chaos", |_| true).await.used;
        (used == held().await as u64).then_some(())
    })
    .await;
    assert!(
        exact.is_some(),
        "pool used {} != {} distinct addresses held",
        wait_pool_status(&client, "chaos", |_| true).await.used,
        held().await
    );
    let invariants = invariants.lock().unwrap();
    eprintln!(
        "checked {} watch events; violations: {:?}",
        invariants.events, invariants.violations
    );
    assert!(invariants.events > 100, "the watch saw the churn");
    assert!(
        invariants.violations.is_empty(),
        "{:#?}",
        invariants.violations
    );
}

async fn chaos_cluster() -> TestCluster {
    let cluster = cluster(false).await;
    create_pool(
        &cluster.client(),
        "chaos",
        serde_json::json!({"addresses": ["192.0.2.0/26"], "announce": {"mode": "none"}}),
    )
    .await;
    cluster
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_churn_never_duplicates_or_renumbers() {
    let mut rng = Rng(seed());
    let cluster = chaos_cluster().await;
    let client = cluster.client();
    let invariants = watch_invariants(client.clone(), NAMESPACE);
    let kubeconfig = cluster.admin_kubeconfig();
    let mut ccm = start_controller(&kubeconfig, "chaos", &["--leader-elect=false"]);
    let mut live = Vec::new();
    let mut kills = 0;
    for n in 0..240 {
        churn_step(&client, &mut rng, &mut live, n).await;
        // A SIGKILL at a random point of every stretch of about 30 operations.
        if rng.below(30) == 0 {
            ccm.kill();
            kills += 1;
            ccm = start_controller(&kubeconfig, "chaos", &["--leader-elect=false"]);
        }
        tokio::time::sleep(Duration::from_millis(10 + rng.below(40))).await;
    }
    eprintln!("{kills} SIGKILLs during 240 operations");
    final_checks(&cluster, &invariants).await;
    drop(ccm);
}

/// A kubeconfig like `original` whose server is `proxy`.
fn through_proxy(
    cluster: &TestCluster,
    original: &std::path::Path,
    proxy: &StallingProxy,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(original).unwrap();
    let replaced = text.replace(cluster.url(), &format!("https://{}", proxy.address));
    assert_ne!(text, replaced, "the kubeconfig names the apiserver's URL");
    let path = original.with_extension("proxied");
    std::fs::write(&path, replaced).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_connection_stalls_hands_over_without_duplicating_or_renumbering() {
    let mut rng = Rng(seed());
    let cluster = chaos_cluster().await;
    let client = cluster.client();
    let invariants = watch_invariants(client.clone(), NAMESPACE);
    let target: std::net::SocketAddr = cluster
        .url()
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let proxy = StallingProxy::start(target).await.unwrap();
    let kubeconfigs = admin_accounts(&cluster, &["ccm-a", "ccm-b"]).await;
    let proxied = through_proxy(&cluster, &kubeconfigs[0], &proxy);
    let mut a: Process = start_controller(&proxied, "ccm-a", &[]);
    let led = wait_for(WAIT, || async {
        (lease_holder(&client).await.as_deref() == Some("ccm-a")).then_some(())
    })
    .await;
    assert!(led.is_some(), "A leads through the proxy");
    let _b = start_controller(&kubeconfigs[1], "ccm-b", &[]);
    let mut live = Vec::new();
    let mut n = 0;
    let step = |n: &mut usize| {
        *n += 1;
        *n
    };
    for _ in 0..40 {
        churn_step(&client, &mut rng, &mut live, step(&mut n)).await;
        tokio::time::sleep(Duration::from_millis(20 + rng.below(60))).await;
    }
    // A's connection stalls; the churn goes on until B holds the lease, and a bit after.
    proxy.freeze();
    let stalled = std::time::Instant::now();
    while lease_holder(&client).await.as_deref() != Some("ccm-b") {
        assert!(
            stalled.elapsed() < Duration::from_secs(45),
            "B did not take the lease over"
        );
        churn_step(&client, &mut rng, &mut live, step(&mut n)).await;
        tokio::time::sleep(Duration::from_millis(100 + rng.below(100))).await;
    }
    eprintln!(
        "B held the lease {:.1}s after A's connection stalled",
        stalled.elapsed().as_secs_f64()
    );
    for _ in 0..30 {
        churn_step(&client, &mut rng, &mut live, step(&mut n)).await;
        tokio::time::sleep(Duration::from_millis(20 + rng.below(60))).await;
    }
    assert!(
        wait_exit(&mut a, Duration::from_secs(5)).await,
        "A exited after losing certainty: {}",
        a.log_tail(2000)
    );
    // The path never recovers for A's old connections; A comes back as a standby.
    proxy.sever();
    a = start_controller(&proxied, "ccm-a", &[]);
    for _ in 0..30 {
        churn_step(&client, &mut rng, &mut live, step(&mut n)).await;
        tokio::time::sleep(Duration::from_millis(20 + rng.below(60))).await;
    }
    final_checks(&cluster, &invariants).await;
    assert_eq!(lease_holder(&client).await.as_deref(), Some("ccm-b"));
    drop(a);
}
