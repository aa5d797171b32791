//! `baremetal-ccm migrate metallb` against a real API server: MetalLB's objects read from the
//! cluster (its CRDs installed, schema-less), Services as MetalLB leaves them, the dry run's
//! forecast, and then the controller under the converted pools doing exactly what the
//! forecast said — every held address kept.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use rig::ccm::*;
use rig::metallb;
use rig::service::*;

/// MetalLB's kinds as CRDs that keep whatever they are given: enough to store and list them.
fn metallb_crds() -> Vec<CustomResourceDefinition> {
    [
        ("IPAddressPool", "ipaddresspools", "v1beta1"),
        ("L2Advertisement", "l2advertisements", "v1beta1"),
        ("BGPPeer", "bgppeers", "v1beta2"),
    ]
    .into_iter()
    .map(|(kind, plural, version)| {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.metallb.io")},
            "spec": {"group": "metallb.io", "scope": "Namespaced",
                "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase()},
                "versions": [{"name": version, "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}}}]}
        }))
        .unwrap()
    })
    .collect()
}

/// MetalLB's pool `lan` (192.0.2.0/24) with `extra` spec fields.
async fn lan_pool(client: &kube::Client, extra: serde_json::Value) {
    let mut spec = serde_json::json!({"addresses": ["192.0.2.0/24"]});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    metallb::create(
        client,
        serde_json::json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "lan", "namespace": metallb::NAMESPACE}, "spec": spec}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dry_run_forecasts_the_takeover_and_the_controller_then_does_exactly_that() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let kubeconfig = cluster.admin_kubeconfig();
    cluster.install_crds(&metallb_crds()).await.unwrap();
    create_namespace(&client, metallb::NAMESPACE, &[]).await;
    lan_pool(&client, serde_json::json!({"avoidBuggyIPs": true})).await;
    metallb::create(
        &client,
        serde_json::json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "lan", "namespace": metallb::NAMESPACE},
        "spec": {"ipAddressPools": ["lan"]}}),
    )
    .await;
    // As MetalLB leaves them: its annotations, an address in the status, nothing of ours.
    let held = [
        ("plain", 80, "192.0.2.4", vec![]),
        (
            "pair-a",
            80,
            "192.0.2.5",
            vec![("metallb.io/allow-shared-ip", "pair")],
        ),
        (
            "pair-b",
            443,
            "192.0.2.5",
            vec![("metallb.io/allow-shared-ip", "pair")],
        ),
        (
            "asked",
            80,
            "192.0.2.9",
            vec![("metallb.io/loadBalancerIPs", "192.0.2.9")],
        ),
        ("outside", 80, "198.51.100.1", vec![]),
    ];
    for (name, port, ip, annotations) in &held {
        let mut svc = Svc::lb("default", name).port("TCP", *port);
        for (key, value) in annotations {
            svc = svc.annotate(key, value);
        }
        svc.create(&client).await;
        set_ingress(&client, "default", name, ip).await;
    }
    Svc::lb("default", "fresh").create(&client).await;

    // The conversion: one L2 pool, nothing blocking.
    let (code, yaml, _) = metallb::migrate(&kubeconfig, &[]);
    assert_eq!(code, Some(0));
    let pools: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(pools.len(), 1, "{yaml}");
    assert_eq!(pools[0]["metadata"]["name"], "lan");
    assert_eq!(pools[0]["spec"]["announce"]["mode"], "l2");

    // The forecast: every held address kept, the fresh one addressed, nothing moved.
    let (code, table, _) = metallb::migrate(&kubeconfig, &["--dry-run"]);
    eprintln!("{table}");
    assert_eq!(code, Some(0), "{table}");
    let forecast: BTreeMap<String, Vec<String>> = (table.lines())
        .filter(|l| l.starts_with("default/"))
        .map(|l| {
            let cells: Vec<String> = l.split('\t').map(str::to_owned).collect();
            (
                cells[0].trim_start_matches("default/").to_owned(),
                cells[1..].to_vec(),
            )
        })
        .collect();
    for name in ["plain", "pair-a", "pair-b", "asked"] {
        assert_eq!(forecast[name][1], "kept", "{name}: {table}");
    }
    assert_eq!(forecast["outside"][1], "kept (outside pools)", "{table}");
    assert_eq!(forecast["fresh"][1], "addressed", "{table}");
    // avoidBuggyIPs: not .0; .1–.3 are free; .4 and .5 are held.
    assert_eq!(forecast["fresh"][2], "192.0.2.1", "{table}");
    assert!(table.contains("No address moves"), "{table}");

    // Under the converted pool, the controller does what the forecast said.
    metallb::apply_converted(&client, &yaml).await;
    let ccm = start_controller(&kubeconfig, "ccm", &[]);
    assert_eq!(
        wait_addresses(&client, "default", "fresh", 1).await,
        ["192.0.2.1"]
    );
    assert!(settle(&cluster, Duration::from_secs(2)).await);
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    for (name, _, ip, _) in &held {
        let service = services.get(name).await.unwrap();
        assert_eq!(
            ingress(&service),
            vec![((*ip).to_owned(), Some("VIP".to_owned()))],
            "{name}"
        );
    }

    // A Service whose own annotation asks for another address than it holds would move: the
    // dry run says so and exits 2 (the controller stopped first: asked, it would move it).
    drop(ccm);
    let services_patch =
        serde_json::json!({"metadata": {"annotations": {"baremetal-ccm.io/ips": "192.0.2.77"}}});
    services
        .patch(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(&services_patch),
        )
        .await
        .unwrap();
    let (code, table, _) = metallb::migrate(&kubeconfig, &["--dry-run"]);
    assert_eq!(code, Some(2), "{table}");
    assert!(
        (table.lines()).any(|l| l.starts_with("default/plain\t192.0.2.4\tMOVED\t192.0.2.77")),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_without_an_equivalent_prints_nothing_and_fails_unless_skipped() {
    let cluster = cluster(false).await;
    let client = cluster.client();
    let kubeconfig = cluster.admin_kubeconfig();
    cluster.install_crds(&metallb_crds()).await.unwrap();
    create_namespace(&client, metallb::NAMESPACE, &[]).await;
    lan_pool(&client, serde_json::json!({})).await;
    metallb::create(
        &client,
        serde_json::json!({
        "apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
        "metadata": {"name": "in-vrf", "namespace": metallb::NAMESPACE},
        "spec": {"myASN": 64512, "peerASN": 64500, "peerAddress": "198.51.100.1", "vrf": "red"}}),
    )
    .await;
    let (code, printed, report) = metallb::migrate(&kubeconfig, &[]);
    assert_eq!(code, Some(2));
    assert!(printed.is_empty(), "nothing printed half-way");
    assert!(report.contains("spec.vrf"), "{report}");
    let (code, yaml, _) = metallb::migrate(&kubeconfig, &["--skip-unsupported"]);
    assert_eq!(code, Some(0));
    assert!(yaml.contains("name: lan"), "{yaml}");
    assert!(
        !yaml.contains("in-vrf"),
        "the peer in a VRF is left out: {yaml}"
    );
}
