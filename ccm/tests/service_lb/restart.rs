//! Restart safety and single-writer guarantees of the service-lb controller, counted from the
//! apiserver's side (its audit log), and pool edits that never move an address.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use rig::ccm::*;
use rig::cluster::TestCluster;
use rig::pool::*;
use rig::process::wait_for;
use rig::rbac::*;
use rig::service::*;

const ALLOCATED: &str = "baremetal-ccm.io/AddressAllocated";
const OUTSIDE: &str = "baremetal-ccm.io/AddressOutsidePool";

/// Every test Service's (`svc-*`) ingress addresses, by name.
async fn assignment(api: &Api<Service>) -> BTreeMap<String, Vec<String>> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("svc-"))
        })
        .map(|s| {
            (
                s.metadata.name.clone().unwrap_or_default(),
                ingress(&s).into_iter().map(|(ip, _)| ip).collect(),
            )
        })
        .collect()
}

fn writes_to_services(cluster: &TestCluster) -> Vec<rig::cluster::AuditedRequest> {
    cluster
        .audited_writes()
        .unwrap()
        .into_iter()
        .filter(|w| {
            w.object_ref.as_ref().is_some_and(|o| {
                o.resource == "services" && o.namespace.as_deref() == Some("default")
            })
        })
        .filter(|w| w.user.username != "system:apiserver")
        .filter(|w| w.user.username != "rig-admin" || w.verb != "create")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_burst_then_restarted_keeps_every_address_and_idle_restart_writes_nothing() {
    let cluster = cluster(true).await;
    let client = cluster.client();
    create_bgp_pool(&client, "burst", &["198.51.100.0/24"]).await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");

    let mut ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    for i in 0..120 {
        Svc::lb("default", &format!("svc-{i:03}"))
            .create(&client)
            .await;
    }
    // Kill it (SIGKILL) once part of the burst has addresses.
    let partial = wait_for(WAIT, || async {
        let done = assignment(&api)
            .await
            .values()
            .filter(|v| !v.is_empty())
            .count();
        (done >= 20).then_some(done)
    })
    .await;
    assert!(
        partial.is_some(),
        "the controller assigned addresses before being killed"
    );
    ccm.kill();
    let before = assignment(&api).await;

    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-b", &[]);
    let complete = wait_for(Duration::from_secs(60), || async {
        let now = assignment(&api).await;
        now.values().all(|v| v.len() == 1).then_some(now)
    })
    .await;
    let Some(complete) = complete else {
        let now = assignment(&api).await;
        let missing: Vec<_> = now.iter().filter(|(_, v)| v.len() != 1).collect();
        panic!(
            "every Service gets an address after the restart; {} of {} not: {missing:?}",
            missing.len(),
            now.len()
        );
    };
    for (name, ips) in &before {
        if !ips.is_empty() {
            assert_eq!(
                &complete[name], ips,
                "{name} kept the address it had before the kill"
            );
        }
    }
    let distinct: BTreeSet<&String> = complete.values().flatten().collect();
    assert_eq!(distinct.len(), 120, "no address held twice");
    // Settled: the pool status has caught up with the last assignment too.
    wait_pool_status(&client, "burst", |s| s.used == 120).await;
    // A graceful stop releases the lease, so the next replica takes over at once.
    let mut stopping = _ccm;
    stopping.terminate(Duration::from_secs(10));

    // An idle restart: same assignment, zero writes to Services.
    assert!(
        rig::ccm::settle(&cluster, Duration::from_secs(3)).await,
        "audit log settled"
    );
    let settled = writes_to_services(&cluster).len();
    let settled_all = controller_writes(&cluster).len();
    let (_ccm, admin) = start_controller_with_admin(&cluster.admin_kubeconfig(), "ccm-c", &[]);
    // Wait until the new replica holds the lease (it then rebuilds and would act at once).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    let leased = wait_for(WAIT, || async {
        let lease = leases.get("baremetal-ccm").await.ok()?;
        (lease.spec?.holder_identity.as_deref() == Some("ccm-c")).then_some(())
    })
    .await;
    assert!(leased.is_some(), "the restarted controller took the lease");
    // Its metrics count all 120 allocations only after it rebuilt them and computed the pool
    // status (which it then found unchanged).
    let rebuilt = wait_for(WAIT, || async {
        let body = http_get(admin, "/metrics").await?;
        body.contains(r#"service_lb_allocated_addresses{pool="burst",family="IPv4"} 120"#)
            .then_some(())
    })
    .await;
    assert!(
        rebuilt.is_some(),
        "the restarted controller rebuilt every allocation"
    );
    let idle = rig::ccm::settle(&cluster, Duration::from_secs(5)).await;
    assert!(idle, "audit log settled");
    assert_eq!(
        writes_to_services(&cluster).len(),
        settled,
        "an idle restart writes nothing to Services"
    );
    let extra: Vec<_> = controller_writes(&cluster)
        .into_iter()
        .skip(settled_all)
        .collect();
    assert!(
        extra.is_empty(),
        "an idle restart writes no pool status and no Event either: {extra:?}"
    );
    assert_eq!(assignment(&api).await, complete);
}

/// Writes the controller (running as `rig-admin`, like the test) makes, other than Lease
/// renewals: Service and pool patches, Events. The test's own creations are left out.
fn controller_writes(cluster: &TestCluster) -> Vec<rig::cluster::AuditedRequest> {
    cluster
        .audited_writes()
        .unwrap()
        .into_iter()
        .filter(|w| w.user.username == "rig-admin")
        .filter(|w| {
            w.object_ref.as_ref().is_none_or(|o| {
                o.resource != "leases"
                    && !(w.verb == "create"
                        && ["services", "ippools", "namespaces"].contains(&o.resource.as_str()))
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_controllers_started_together_have_one_writer() {
    let cluster = cluster(true).await;
    let client = cluster.client();
    let kubeconfigs = admin_accounts(&cluster, &["ccm-a", "ccm-b"]).await;
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/28"]).await;
    let _a = start_controller(&kubeconfigs[0], "ccm-a", &[]);
    let _b = start_controller(&kubeconfigs[1], "ccm-b", &[]);
    for i in 0..8 {
        Svc::lb("default", &format!("svc-{i}"))
            .create(&client)
            .await;
    }
    for i in 0..8 {
        wait_addresses(&client, "default", &format!("svc-{i}"), 1).await;
    }
    let writers: BTreeSet<String> = writes_to_services(&cluster)
        .into_iter()
        .map(|w| w.user.username)
        .collect();
    assert_eq!(
        writers.len(),
        1,
        "exactly one replica wrote Services: {writers:?}"
    );
    assert!(
        writers
            .iter()
            .next()
            .unwrap()
            .starts_with("system:serviceaccount:kube-system:ccm-")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_or_deleting_a_pool_keeps_addresses_and_flags_them() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/29"]).await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    Svc::lb("default", "low")
        .annotate("baremetal-ccm.io/ips", "192.0.2.1")
        .create(&client)
        .await;
    Svc::lb("default", "high")
        .annotate("baremetal-ccm.io/ips", "192.0.2.6")
        .create(&client)
        .await;
    wait_addresses(&client, "default", "high", 1).await;
    wait_addresses(&client, "default", "low", 1).await;

    let pools: Api<baremetal_ccm_core::crd::ippool::IPPool> = Api::all(client.clone());
    let shrink = serde_json::json!({"spec": {"addresses": ["192.0.2.0/30"]}});
    pools
        .patch("pool-a", &PatchParams::default(), &Patch::Merge(&shrink))
        .await
        .unwrap();
    let (reason, message) = wait_condition(&client, "default", "high", OUTSIDE, "True").await;
    assert!(message.contains("192.0.2.6"), "{reason}: {message}");
    wait_event(&client, "default", "high", "AddressOutsidePool").await;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        ingress(&api.get("high").await.unwrap())[0].0,
        "192.0.2.6",
        "the address is kept"
    );
    assert_eq!(
        condition(&api.get("low").await.unwrap(), OUTSIDE),
        None,
        "the address inside the pool is not flagged"
    );

    let status = wait_pool_status(&client, "pool-a", |s| {
        pool_condition(s, "Degraded").is_some_and(|c| c.0 == "True")
    })
    .await;
    let (_, _, message) = pool_condition(&status, "Degraded").unwrap();
    assert!(
        message.contains("default/high") && !message.contains("default/low"),
        "{message}"
    );

    pools
        .delete("pool-a", &DeleteParams::default())
        .await
        .unwrap();
    wait_condition(&client, "default", "low", OUTSIDE, "True").await;
    assert_eq!(
        ingress(&api.get("low").await.unwrap())[0].0,
        "192.0.2.1",
        "kept after the pool is deleted"
    );
    // New Services wait: there is no pool.
    Svc::lb("default", "new").create(&client).await;
    let (reason, _) = wait_condition(&client, "default", "new", ALLOCATED, "False").await;
    assert_eq!(reason, "NoEligiblePool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_status_reports_usage_overlaps_invalid_pools_and_metrics() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "first", &["192.0.2.0/29", "2001:db8::/120"]).await;
    create_pool(&client, "second", serde_json::json!({"addresses": ["192.0.2.4/30"], "priority": 5, "announce": {"mode": "bgp"}})).await;
    // CEL cannot order IPv6 addresses: the controller rejects this one.
    create_pool(&client, "reversed", serde_json::json!({"addresses": ["2001:db8:1::9-2001:db8:1::1"], "announce": {"mode": "none"}})).await;
    let (_ccm, admin) = start_controller_with_admin(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    Svc::lb("default", "web").create(&client).await;
    assert_eq!(
        wait_addresses(&client, "default", "web", 1).await,
        ["192.0.2.0"]
    );

    let first = wait_pool_status(&client, "first", |s| s.used == 1).await;
    assert_eq!(first.families["IPv4"].total, "8");
    assert_eq!(
        (
            first.families["IPv4"].used.as_str(),
            first.families["IPv4"].free.as_str()
        ),
        ("1", "7")
    );
    assert_eq!(
        (
            first.families["IPv6"].total.as_str(),
            first.families["IPv6"].used.as_str()
        ),
        ("256", "0")
    );
    assert_eq!(first.free, "263");
    assert_eq!(
        pool_condition(&first, "Valid").map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(
        pool_condition(&first, "Overlapping").map(|c| c.0),
        Some("False".into())
    );

    let second = wait_pool_status(&client, "second", |s| {
        pool_condition(s, "Overlapping").is_some()
    })
    .await;
    let (status, _, message) = pool_condition(&second, "Overlapping").unwrap();
    assert_eq!(status, "True");
    assert!(message.contains("first"), "{message}");

    let reversed = wait_pool_status(&client, "reversed", |s| {
        pool_condition(s, "Valid").is_some()
    })
    .await;
    let (status, reason, message) = pool_condition(&reversed, "Valid").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidPool"));
    assert!(message.contains("reversed"), "{message}");

    let metrics = wait_for(WAIT, || async {
        let body = http_get(admin, "/metrics").await?;
        body.contains(r#"service_lb_allocated_addresses{pool="first",family="IPv4"} 1"#)
            .then_some(body)
    })
    .await;
    assert!(
        metrics.is_some(),
        "allocation metric: {:?}",
        http_get(admin, "/metrics").await
    );
    let body = metrics.unwrap();
    assert!(
        body.contains(r#"service_lb_pool_addresses{pool="first",family="IPv6"} 256"#),
        "{body}"
    );
    assert_eq!(
        http_get(admin, "/readyz")
            .await
            .map(|b| b.trim().to_owned())
            .as_deref(),
        Some("ok")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_loses_the_lease_stops() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let mut ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(client.clone(), "kube-system");
    let held = wait_for(WAIT, || async {
        let lease = leases.get("baremetal-ccm").await.ok()?;
        (lease.spec?.holder_identity.as_deref() == Some("ccm-a")).then_some(())
    })
    .await;
    assert!(held.is_some(), "the controller took the lease");
    // Another replica takes the lease over (as after a network partition).
    let steal = serde_json::json!({"spec": {"holderIdentity": "intruder", "leaseTransitions": 9}});
    leases
        .patch(
            "baremetal-ccm",
            &PatchParams::default(),
            &Patch::Merge(&steal),
        )
        .await
        .unwrap();
    assert!(
        wait_exit(&mut ccm, Duration::from_secs(10)).await,
        "the replica exits once another holds the lease: {}",
        ccm.log_tail(2000)
    );
    let log = std::fs::read_to_string(ccm.log_path()).unwrap();
    assert!(log.contains("lost leadership"), "{log}");
}
