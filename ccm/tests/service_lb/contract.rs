//! The service-lb controller, as the real binary against a real apiserver: the CCM contract,
//! the annotations, bad input, and the controller's class rules.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use rig::ccm::*;
use rig::pool::*;
use rig::process::wait_for;
use rig::service::*;

const ALLOCATED: &str = "baremetal-ccm.io/AddressAllocated";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_gets_an_address_with_vip_mode_finalizer_annotation_and_events() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/30"]).await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);

    Svc::lb("default", "web").create(&client).await;
    let ips = wait_addresses(&client, "default", "web", 1).await;
    assert_eq!(ips, ["192.0.2.0"], "the first address of the pool");

    let service = Api::<Service>::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    assert_eq!(
        ingress(&service),
        [("192.0.2.0".to_owned(), Some("VIP".to_owned()))]
    );
    assert!(
        service
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .contains(&"service.kubernetes.io/load-balancer-cleanup".to_owned())
    );
    assert_eq!(
        service
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .get("baremetal-ccm.io/allocated-from")
            .map(String::as_str),
        Some("pool-a")
    );
    assert_eq!(
        condition(&service, ALLOCATED).map(|c| c.0),
        Some("True".into())
    );
    let ensured = wait_event(&client, "default", "web", "EnsuredLoadBalancer").await;
    assert!(ensured.contains("192.0.2.0"), "{ensured}");
    // One Event per assignment: no EnsuringLoadBalancer before it (see docs/service-lb.md).
    let reasons: Vec<String> = events_for(&client, "default", "web")
        .await
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(reasons, ["EnsuredLoadBalancer"], "{reasons:?}");

    // A second Service gets the next address; the first keeps its own.
    Svc::lb("default", "api").create(&client).await;
    assert_eq!(
        wait_addresses(&client, "default", "api", 1).await,
        ["192.0.2.1"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_and_type_change_release_the_address() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_pool(
        &client,
        "tiny",
        serde_json::json!({"addresses": ["192.0.2.10-192.0.2.10"], "announce": {"mode": "l2"}}),
    )
    .await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    let api: Api<Service> = Api::namespaced(client.clone(), "default");

    Svc::lb("default", "first").create(&client).await;
    assert_eq!(
        wait_addresses(&client, "default", "first", 1).await,
        ["192.0.2.10"]
    );
    Svc::lb("default", "second").create(&client).await;
    let (reason, _) = wait_condition(&client, "default", "second", ALLOCATED, "False").await;
    assert_eq!(reason, "PoolExhausted");

    // Deleting the first: the finalizer is removed, the Service disappears, the address moves on.
    api.delete("first", &DeleteParams::default()).await.unwrap();
    let gone = wait_for(WAIT, || async {
        api.get_opt("first")
            .await
            .ok()
            .flatten()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(gone.is_some(), "the finalizer was removed");
    assert_eq!(
        wait_addresses(&client, "default", "second", 1).await,
        ["192.0.2.10"]
    );
    wait_event(&client, "default", "first", "DeletedLoadBalancer").await;

    // Changing the type away from LoadBalancer clears everything we wrote.
    let patch = serde_json::json!({"spec": {"type": "ClusterIP"}});
    api.patch("second", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let cleared = wait_for(WAIT, || async {
        let svc = api.get("second").await.ok()?;
        let clean = ingress(&svc).is_empty()
            && condition(&svc, ALLOCATED).is_none()
            && !svc
                .metadata
                .finalizers
                .clone()
                .unwrap_or_default()
                .iter()
                .any(|f| f.contains("load-balancer-cleanup"))
            && !svc
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .contains_key("baremetal-ccm.io/allocated-from");
        clean.then_some(())
    })
    .await;
    assert!(
        cleared.is_some(),
        "status, condition, finalizer and annotation removed: {:?}",
        api.get("second").await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_class_less_and_our_class_are_served() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/28"]).await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);

    Svc::lb("default", "other")
        .class("metallb.io/metallb")
        .create(&client)
        .await;
    Svc::lb("default", "ours")
        .class("baremetal-ccm.io/lb")
        .create(&client)
        .await;
    Svc::lb("default", "default-class").create(&client).await;
    wait_addresses(&client, "default", "ours", 1).await;
    wait_addresses(&client, "default", "default-class", 1).await;
    let other = Api::<Service>::namespaced(client.clone(), "default")
        .get("other")
        .await
        .unwrap();
    assert!(ingress(&other).is_empty());
    assert!(
        other.metadata.finalizers.is_none(),
        "a Service of another class is not touched"
    );
    let events = events_for(&client, "default", "other").await;
    assert!(events.is_empty(), "{events:?}");
}

/// Regression: the controller used to release every Service not of its class that held the
/// cleanup finalizer, which every implementation shares: it stripped another implementation's
/// finalizer and cleared its addresses (found by the 100,000-Service benchmark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_implementations_finalizer_and_address_are_left_alone() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/28"]).await;
    Svc::lb("default", "theirs")
        .class("metallb.io/metallb")
        .create(&client)
        .await;
    let api = Api::<Service>::namespaced(client.clone(), "default");
    let finalizer = serde_json::json!({"metadata": {"finalizers": ["service.kubernetes.io/load-balancer-cleanup"]}});
    api.patch("theirs", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .unwrap();
    set_ingress(&client, "default", "theirs", "198.51.100.7").await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    // The controller had its chance: it listed both and addressed the later one.
    Svc::lb("default", "ours").create(&client).await;
    wait_addresses(&client, "default", "ours", 1).await;
    let theirs = api.get("theirs").await.unwrap();
    assert_eq!(
        ingress(&theirs),
        [("198.51.100.7".to_owned(), Some("VIP".to_owned()))],
        "their address stays"
    );
    assert_eq!(
        theirs.metadata.finalizers.as_deref(),
        Some(&["service.kubernetes.io/load-balancer-cleanup".to_owned()][..]),
        "their finalizer stays"
    );
    let events = events_for(&client, "default", "theirs").await;
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_class_only_mode_ignores_class_less_services() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/28"]).await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &["--lb-class-only"]);
    Svc::lb("default", "ours")
        .class("baremetal-ccm.io/lb")
        .create(&client)
        .await;
    Svc::lb("default", "class-less").create(&client).await;
    wait_addresses(&client, "default", "ours", 1).await;
    let svc = Api::<Service>::namespaced(client.clone(), "default")
        .get("class-less")
        .await
        .unwrap();
    assert!(ingress(&svc).is_empty() && svc.metadata.finalizers.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_stay_pending_with_a_warning_and_a_condition() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "v4", &["192.0.2.0/30"]).await;
    create_pool(&client, "manual", serde_json::json!({"addresses": ["198.51.100.0/30"], "autoAssign": false, "announce": {"mode": "bgp"}})).await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    Svc::lb("default", "holder")
        .annotate("baremetal-ccm.io/ips", "192.0.2.1")
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "holder", 1).await,
        ["192.0.2.1"]
    );

    let cases = [
        (
            "unknown-pool",
            Svc::lb("default", "unknown-pool").annotate("baremetal-ccm.io/pool", "nope"),
            "UnknownPool",
        ),
        (
            "outside",
            Svc::lb("default", "outside").annotate("baremetal-ccm.io/ips", "203.0.113.9"),
            "RequestedAddressOutsidePool",
        ),
        (
            "in-use",
            Svc::lb("default", "in-use").annotate("baremetal-ccm.io/ips", "192.0.2.1"),
            "AddressInUse",
        ),
        (
            "malformed",
            Svc::lb("default", "malformed").annotate("baremetal-ccm.io/ips", "192.0.2.1,,x"),
            "MalformedAnnotation",
        ),
        (
            "bad-key",
            Svc::lb("default", "bad-key").annotate("baremetal-ccm.io/sharing-key", "has space"),
            "MalformedAnnotation",
        ),
        (
            // 200 KB of garbage: quoted as a short excerpt, never copied whole.
            "huge",
            Svc::lb("default", "huge").annotate("baremetal-ccm.io/ips", &"9".repeat(200_000)),
            "MalformedAnnotation",
        ),
        (
            "v6-only",
            Svc::lb("default", "v6-only").families("RequireDualStack", &["IPv4", "IPv6"]),
            "ImpossibleFamilyRequest",
        ),
    ];
    for (name, svc, _) in &cases {
        let _ = name;
        svc.clone().create(&client).await;
    }
    for (name, _, reason) in cases {
        let (got, message) = wait_condition(&client, "default", name, ALLOCATED, "False").await;
        assert_eq!(got, reason, "{name}: {message}");
        assert!(
            message.len() <= 1024,
            "{name}: a {}-byte message",
            message.len()
        );
        let warning = wait_event(&client, "default", name, "SyncLoadBalancerFailed").await;
        assert!(!warning.is_empty());
        let svc = Api::<Service>::namespaced(client.clone(), "default")
            .get(name)
            .await
            .unwrap();
        assert!(ingress(&svc).is_empty(), "{name} stays pending");
    }
    // Nothing else moved, and a requested address from a non-auto pool is honoured.
    let holder = Api::<Service>::namespaced(client.clone(), "default")
        .get("holder")
        .await
        .unwrap();
    assert_eq!(ingress(&holder)[0].0, "192.0.2.1");
    Svc::lb("default", "manual-ip")
        .annotate("baremetal-ccm.io/ips", "198.51.100.2")
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "manual-ip", 1).await,
        ["198.51.100.2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharing_and_the_deprecated_field() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_namespace(&client, "other", &[]).await;
    create_bgp_pool(&client, "pool-a", &["192.0.2.0/29"]).await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);

    Svc::lb("default", "dns-udp")
        .port("UDP", 53)
        .annotate("baremetal-ccm.io/sharing-key", "dns")
        .create(&client)
        .await;
    let shared = wait_addresses(&client, "default", "dns-udp", 1).await;
    Svc::lb("default", "dns-tcp")
        .port("TCP", 53)
        .annotate("baremetal-ccm.io/sharing-key", "dns")
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "dns-tcp", 1).await,
        shared,
        "same key, disjoint ports: shared"
    );

    Svc::lb("default", "dns-clash")
        .port("UDP", 53)
        .annotate("baremetal-ccm.io/sharing-key", "dns")
        .annotate("baremetal-ccm.io/ips", &shared[0])
        .create(&client)
        .await;
    let (reason, _) = wait_condition(&client, "default", "dns-clash", ALLOCATED, "False").await;
    assert_eq!(reason, "SharingPortClash");

    Svc::lb("other", "hijack")
        .port("TCP", 443)
        .annotate("baremetal-ccm.io/sharing-key", "dns")
        .annotate("baremetal-ccm.io/ips", &shared[0])
        .create(&client)
        .await;
    let (reason, _) = wait_condition(&client, "other", "hijack", ALLOCATED, "False").await;
    assert_eq!(reason, "CrossNamespaceSharingNotAllowed");

    Svc::lb("default", "legacy")
        .load_balancer_ip("192.0.2.6")
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "legacy", 1).await,
        ["192.0.2.6"]
    );
    let warning = wait_event(&client, "default", "legacy", "DeprecatedLoadBalancerIP").await;
    assert!(warning.contains("baremetal-ccm.io/ips"), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_follows_the_family_policy_and_order() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_bgp_pool(&client, "dual", &["192.0.2.0/30", "2001:db8::/126"]).await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    Svc::lb("default", "single").create(&client).await;
    let single = wait_addresses(&client, "default", "single", 1).await;
    assert_eq!(single, ["192.0.2.0"], "SingleStack IPv4 by default");

    Svc::lb("default", "v6-first")
        .families("RequireDualStack", &["IPv6", "IPv4"])
        .create(&client)
        .await;
    let both = wait_addresses(&client, "default", "v6-first", 2).await;
    assert_eq!(
        both,
        ["2001:db8::", "192.0.2.1"],
        "one per family, in ipFamilies order"
    );

    Svc::lb("default", "prefer")
        .families("PreferDualStack", &["IPv4", "IPv6"])
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "prefer", 2).await,
        ["192.0.2.2", "2001:db8::1"]
    );

    Svc::lb("default", "v6-single")
        .families("SingleStack", &["IPv6"])
        .create(&client)
        .await;
    assert_eq!(
        wait_addresses(&client, "default", "v6-single", 1).await,
        ["2001:db8::2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_label_change_brings_a_pending_service_into_scope() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    create_namespace(&client, "shop", &[]).await;
    create_pool(
        &client,
        "public",
        serde_json::json!({
            "addresses": ["203.0.113.0/30"],
            "allocationScope": {"namespaceSelector": {"matchLabels": {"tier": "public"}}},
            "announce": {"mode": "bgp"},
        }),
    )
    .await;
    let _ccm = start_controller(&cluster.admin_kubeconfig(), "ccm-a", &[]);
    Svc::lb("shop", "web").create(&client).await;
    let (reason, message) = wait_condition(&client, "shop", "web", ALLOCATED, "False").await;
    assert_eq!(reason, "NoEligiblePool", "{message}");

    // Labelling the namespace puts the Service in the pool's scope: it is retried at once.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let label = serde_json::json!({"metadata": {"labels": {"tier": "public"}}});
    namespaces
        .patch("shop", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    assert_eq!(
        wait_addresses(&client, "shop", "web", 1).await,
        ["203.0.113.0"]
    );
    let (reason, _) = wait_condition(&client, "shop", "web", ALLOCATED, "True").await;
    assert_eq!(reason, "Allocated");
}
